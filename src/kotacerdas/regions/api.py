"""JSON API of the regions domain."""

from fastapi import APIRouter

from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["regions"], responses=PROBLEM_RESPONSES)
