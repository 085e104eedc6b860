"""JSON API of the agencies domain."""

from fastapi import APIRouter

from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["agencies"], responses=PROBLEM_RESPONSES)
