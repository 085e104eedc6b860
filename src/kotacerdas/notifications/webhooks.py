"""Signed webhook calls: the JSON body, the headers and the HMAC-SHA256 signature receivers check.

A receiver verifies a delivery by computing `HMAC-SHA256(secret, "<X-Kotacerdas-Timestamp>.<raw body>")` in hex
and comparing it, in constant time, with the part after `sha256=` of `X-Kotacerdas-Signature`; it should also
refuse a timestamp more than a few minutes old (replay) and treat `X-Kotacerdas-Delivery` as the idempotency key
(a delivery is retried with the same id until it gets a 2xx).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kotacerdas import outbound
from kotacerdas.errors import InvalidInput
from kotacerdas.notifications.mail import DeliveryError

SIGNATURE_PREFIX = "sha256="
TIMEOUT_SECONDS = 10.0
# How old a signed timestamp a receiver should accept (the verify helper's default).
TOLERANCE_SECONDS = 300


def delivery_body(*, event: str, message_id: int, created_at: datetime, payload: Any) -> bytes:
    """The JSON document POSTed for one delivery (UTF-8, compact)."""
    document = {"event": event, "id": message_id, "created_at": created_at.isoformat(), "data": payload}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, *, timestamp: str, body: bytes) -> str:
    """The `X-Kotacerdas-Signature` value: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str, *, timestamp: str, body: bytes, signature: str, now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (`now` in Unix seconds)."""
    if not timestamp.isdecimal() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp=timestamp, body=body), signature)


def delivery_headers(*, event: str, message_id: int, timestamp: str, signature: str) -> dict[str, str]:
    """The headers of one delivery."""
    return {
        "X-Kotacerdas-Event": event,
        "X-Kotacerdas-Delivery": str(message_id),
        "X-Kotacerdas-Timestamp": timestamp,
        "X-Kotacerdas-Signature": signature,
    }


def send_webhook(
    *,
    url: str,
    secret: str,
    event: str,
    message_id: int,
    created_at: datetime,
    payload: Any,
    allowed_hosts: Iterable[str],
    now: datetime,
) -> None:
    """POST one signed delivery; DeliveryError unless the receiver answers 2xx (permanent when the host is no
    longer on the allowlist)."""
    body = delivery_body(event=event, message_id=message_id, created_at=created_at, payload=payload)
    timestamp = str(int(now.timestamp()))
    headers = delivery_headers(
        event=event, message_id=message_id, timestamp=timestamp, signature=sign(secret, timestamp=timestamp, body=body)
    )
    try:
        outbound.check_url_allowed(url, allowed_hosts=allowed_hosts)
    except InvalidInput as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    try:
        status = outbound.post_json(
            url, allowed_hosts=allowed_hosts, body=body, headers=headers, timeout=TIMEOUT_SECONDS
        )
    except InvalidInput as exc:
        raise DeliveryError(str(exc)) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")
