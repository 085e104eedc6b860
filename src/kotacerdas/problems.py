"""RFC 9457 problem details: the one error format of the JSON API."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:kotacerdas:problem:"


class ProblemDetail(BaseModel):
    """An error answer (RFC 9457); `detail` is in the request's language, `errors` lists each wrong field."""

    type: str = Field(description="URI naming the kind of problem")
    title: str = Field(description="Short summary of the kind of problem")
    status: int = Field(description="HTTP status code")
    detail: str = Field(description="What went wrong, in the request's language")
    instance: str | None = Field(None, description="The request path")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="One entry per wrong field or item")


def problem_response(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = ProblemDetail(
        type=PROBLEM_TYPE_BASE + slug, title=title, status=status, detail=detail, instance=instance, errors=errors or []
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": ProblemDetail.model_json_schema()}}}


# Declared on every API router so that the OpenAPI document tells clients (and schemathesis) the error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed request"),
    401: _problem("Not logged in, or the token is invalid"),
    403: _problem("Not allowed"),
    404: _problem("Not found"),
    409: _problem("Conflicts with stored data"),
    422: _problem("Invalid input"),
    429: _problem("Too many requests"),
}
