"""JSON API of the accounts domain."""

from fastapi import APIRouter

from kotacerdas.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=PROBLEM_RESPONSES)
