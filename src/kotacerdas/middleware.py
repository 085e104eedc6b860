"""Pure ASGI middlewares: the request's language, the anonymous CSRF cookie, security headers, metrics."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kotacerdas.accounts.security import new_token
from kotacerdas.i18n import negotiate_locale, reset_locale, set_locale

LOCALE_COOKIE = "kc_lang"
CSRF_COOKIE = "kc_csrf"


def _cookies(scope: Scope) -> SimpleCookie:
    cookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                cookie.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is ignored, not an error page
                pass
    return cookie


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin-1")
    return None


class LocaleMiddleware:
    """Set the language for the request (?lang=, cookie, Accept-Language) and remember an explicit choice."""

    def __init__(self, app: ASGIApp, *, default_locale: str, secure_cookies: bool) -> None:
        self.app, self.default_locale, self.secure = app, default_locale, secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        path = scope.get("path", "")
        query = params.get("lang", [None])[0]
        if query is None and path.startswith("/open311/"):
            query = (params.get("locale", [""])[0] or "")[:2].lower() or None  # Open311 clients say `locale`
        cookies = _cookies(scope)
        cookie = cookies[LOCALE_COOKIE].value if LOCALE_COOKIE in cookies else None
        # Pages are Indonesian unless the visitor picks English: many phones in Indonesia run an English system
        # language, and the portal is Indonesian first. API clients get their messages in their Accept-Language.
        is_api = path.startswith(("/api/", "/open311/"))
        accept_language = _header(scope, b"accept-language") if is_api else None
        locale = negotiate_locale(
            query=query, cookie=cookie, accept_language=accept_language, default=self.default_locale
        )
        scope["kc_locale"] = locale
        remember = query == locale and cookie != locale

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append("Content-Language", locale)
                if remember:
                    secure = "; Secure" if self.secure else ""
                    headers.append(
                        "Set-Cookie", f"{LOCALE_COOKIE}={locale}; Path=/; Max-Age=31536000; SameSite=Lax{secure}"
                    )
            await send(message)

        token = set_locale(locale)
        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            reset_locale(token)


class CsrfCookieMiddleware:
    """Give every browser a random CSRF seed cookie, so that forms work before login too."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app, self.secure = app, secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        seed = cookies[CSRF_COOKIE].value if CSRF_COOKIE in cookies else None
        fresh = not seed or len(seed) < 20
        if fresh:
            seed = new_token()
        scope["kc_csrf_cookie"] = seed

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                secure = "; Secure" if self.secure else ""
                MutableHeaders(scope=message).append(
                    "Set-Cookie", f"{CSRF_COOKIE}={seed}; Path=/; HttpOnly; SameSite=Lax{secure}"
                )
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class SecurityHeadersMiddleware:
    """Conservative browser security headers on every response."""

    HEADERS = (
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("X-Frame-Options", "DENY"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kotacerdas_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "kotacerdas_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("method", "route"),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # MQTT ingest (sensors/ingest.py), counted by the worker running in this process.
        self.ingest_observations = Counter(
            "kotacerdas_ingest_observations", "Observations stored from MQTT messages", registry=self.registry
        )
        self.ingest_dead_letters = Counter(
            "kotacerdas_ingest_dead_letters",
            "MQTT messages refused into sensor_dead_letters, by reason",
            ("reason",),
            registry=self.registry,
        )


class MetricsMiddleware:
    """Count requests and time them per route template (not per URL, to keep the label set small)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        streaming = [False]

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                # An event stream lasts as long as the visitor stays: its length is not a response time.
                streaming[0] = any(
                    name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            if path is None:
                path = "/static" if scope.get("path", "").startswith("/static/") else "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, path, str(status[0])).inc()
            if not streaming[0]:
                self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
