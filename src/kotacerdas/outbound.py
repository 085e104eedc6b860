"""Outbound HTTP for the whole app: only to allowlisted hosts, with timeouts, size caps and no cross-host redirects.

Every request the server makes to an outside address (webhooks, an Open311 `media_url`) goes through here, so that
a user who can type a URL cannot make the server reach its own network (SSRF). The allowlist holds host names
(or literal addresses) exactly as they appear in URLs; an entry matches that host only, not its subdomains.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from kotacerdas import __version__
from kotacerdas.errors import InvalidInput
from kotacerdas.i18n import _

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"kotacerdas/{__version__}"
MAX_REDIRECTS = 3
URL_MAX = 2000


def url_host(url: str) -> str | None:
    """The host of `url` as the allowlist compares it (lower case, no trailing dot), or None when it has none."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def check_url_allowed(url: str, *, allowed_hosts: Iterable[str], field: str = "url") -> None:
    """Refuse (InvalidInput naming `field`) a URL that is not http(s) to a host on the allowlist."""
    url = url or ""
    if len(url) > URL_MAX or any(unicodedata.category(char) in ("Cc", "Zs") for char in url):
        raise InvalidInput(
            _("The address is not a valid http:// or https:// URL."), errors=[{"field": field, "reason": "format"}]
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number raises ValueError here)
    except ValueError:
        raise InvalidInput(
            _("The address is not a valid http:// or https:// URL."), errors=[{"field": field, "reason": "format"}]
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            _("The address is not a valid http:// or https:// URL."), errors=[{"field": field, "reason": "format"}]
        )
    # Credentials in a URL end up in logs and the outbox; receivers authenticate the signature instead.
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            _("The address must not contain a user name or password."),
            errors=[{"field": field, "reason": "credentials"}],
        )
    host = url_host(url)
    allowed = {entry.strip().lower().rstrip(".") for entry in allowed_hosts if entry.strip()}
    if host not in allowed:
        raise InvalidInput(
            _("The server may not connect to %(host)s: that host is not on its allowlist.") % {"host": host},
            errors=[{"field": field, "reason": "host_not_allowed"}],
        )


def _client(timeout: float) -> httpx.Client:
    import httpx

    # Redirects are followed by hand so that each hop is checked against the allowlist and the host.
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, headers={"User-Agent": USER_AGENT})


def _unreachable(url: str, exc: Exception) -> InvalidInput:
    return InvalidInput(
        _("Could not reach %(host)s: %(reason)s") % {"host": url_host(url), "reason": type(exc).__name__},
        errors=[{"field": "url", "reason": "unreachable"}],
    )


def fetch_bytes(
    url: str, *, allowed_hosts: Iterable[str], max_bytes: int, timeout: float = 10.0
) -> tuple[bytes, str | None]:
    """GET `url` from an allowlisted host: the body and its Content-Type; InvalidInput when refused, unreachable,
    not 2xx, redirected to another host, slower than `timeout` in all, or larger than `max_bytes`."""
    import httpx  # on first use: httpx costs start-up time (bench/startup.py)

    allowed = list(allowed_hosts)
    check_url_allowed(url, allowed_hosts=allowed)
    deadline = time.monotonic() + timeout
    host = url_host(url)
    try:
        with _client(timeout) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if url_host(target) != host:
                            raise InvalidInput(
                                _("The address redirects to another host, which is not followed."),
                                errors=[{"field": "url", "reason": "redirect"}],
                            )
                        check_url_allowed(target, allowed_hosts=allowed)
                        url = target
                        continue
                    if not response.is_success:
                        raise InvalidInput(
                            _("%(host)s answered with HTTP status %(status)d.")
                            % {"host": host, "status": response.status_code},
                            errors=[{"field": "url", "reason": "http_status"}],
                        )
                    declared = response.headers.get("content-length", "")
                    if declared.isdecimal() and int(declared) > max_bytes:
                        raise _too_large(max_bytes)
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise _too_large(max_bytes)
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("total time exceeded")
                        chunks.append(chunk)
                    return b"".join(chunks), response.headers.get("content-type")
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from None
    raise InvalidInput(_("The address redirects too often."), errors=[{"field": "url", "reason": "redirect"}])


def _too_large(max_bytes: int) -> InvalidInput:
    return InvalidInput(
        _("The file is too large: at most %(size)d bytes.") % {"size": max_bytes},
        errors=[{"field": "url", "reason": "too_large"}],
    )


def post_json(
    url: str, *, allowed_hosts: Iterable[str], body: bytes, headers: Mapping[str, str], timeout: float = 10.0
) -> int:
    """POST `body` (JSON) to an allowlisted host; the response status (redirects are not followed). InvalidInput
    when the host is not allowed or cannot be reached in `timeout` seconds."""
    import httpx

    check_url_allowed(url, allowed_hosts=allowed_hosts)
    try:
        with _client(timeout) as client:
            response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
            return response.status_code
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from None
