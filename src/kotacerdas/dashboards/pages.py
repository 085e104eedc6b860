"""Public home (beranda) and the staff console home."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
