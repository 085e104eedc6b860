"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from kotacerdas import __version__
from kotacerdas.db import check_database

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """Whether the process, and for readiness the database, is up."""

    status: str
    version: str
    database: str | None = None


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok", version=__version__)


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Database down"}})
async def readyz(request: Request, response: Response) -> Health:
    """Readiness: the database answers a query."""
    ok = await run_in_threadpool(check_database, request.app.state.engine)
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "unavailable", version=__version__, database="ok" if ok else "unreachable")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this process: request counts and latency histograms per route."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
