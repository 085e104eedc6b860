"""Inputs every JSON API shares: the request-body size guard (413 before a large body is read), a bounding box
`west,south,east,north`, and photos sent as base64 text."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from kotacerdas.errors import InvalidInput, PayloadTooLarge
from kotacerdas.i18n import _
from kotacerdas.reports import photos

# A report carries up to MAX_PHOTOS photos of MAX_PHOTO_BYTES each as base64 (4/3 of the size, plus MIME line
# breaks): 3 × 14.4 MB ≈ 43 MB of text. Anything larger is refused before it is read, let alone parsed.
MAX_PHOTO_BODY_BYTES = 45 * 1024 * 1024
# Every other body is a few fields of text (a category with 20 questions is a few tens of kB).
MAX_BODY_BYTES = 1024 * 1024


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        _("The request is larger than %(limit)d MB.") % {"limit": max(1, limit // (1024 * 1024))},
        errors=[{"field": "body", "reason": "too_large", "limit": limit}],
    )


def max_body(limit: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let an endpoint accept bodies up to `limit` bytes instead of MAX_BODY_BYTES."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.max_body_bytes = limit  # type: ignore[attr-defined]
        return endpoint

    return mark


class BodyLimitedRoute(APIRoute):
    """A route that answers 413 (problem+json) to a body over its endpoint's limit, before reading or parsing it.

    A declared Content-Length is checked up front; a chunked body is counted as it arrives and refused as soon as
    it passes the limit (the server never holds more than the limit in memory).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = getattr(self.endpoint, "max_body_bytes", MAX_BODY_BYTES)

        async def limited(request: Request) -> Response:
            declared = request.headers.get("content-length")
            if declared is not None:
                # The server delivers no more than the declared length, so a declared size within the limit is
                # all the checking needed.
                if declared.strip().isdecimal() and int(declared) > limit:
                    raise _too_large(limit)
                return await handler(request)
            if "chunked" not in request.headers.get("transfer-encoding", "").lower():
                return await handler(request)
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            body, replayed = b"".join(chunks), False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await request.receive()

            return await handler(Request(request.scope, replay))

        return limited


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """A bounding box `west,south,east,north` in degrees; InvalidInput (field bbox) when malformed, out of range or
    inverted."""
    parts = text.split(",")
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise _invalid_bbox(_("The bounding box is four numbers: west,south,east,north."), "format") from None
    if not all(-180 <= lon <= 180 for lon in (west, east)) or not all(-90 <= lat <= 90 for lat in (south, north)):
        raise _invalid_bbox(_("The bounding box lies outside the range of longitudes and latitudes."), "range")
    if not (west < east and south < north):
        raise _invalid_bbox(_("The bounding box must have west < east and south < north."), "order")
    return west, south, east, north


def _invalid_bbox(message: str, reason: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": "bbox", "reason": reason}])


def decode_photos(items: list[str]) -> list[bytes]:
    """Photos sent as base64 text (plain or data: URLs), each checked for size; an error names the photo's index."""
    decoded = []
    for index, text in enumerate(items):
        try:
            decoded.append(photos.decode_base64_photo(text, field="photos"))
        except InvalidInput as exc:
            for error in exc.errors:
                error.setdefault("index", index)
            raise
    return decoded
