"""HTML pages of the accounts domain."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
