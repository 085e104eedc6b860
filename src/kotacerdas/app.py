"""The application factory: `create_app(settings)` builds the whole web app (pages, JSON API, operations)."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from xstatic.pkg import leaflet as xstatic_leaflet

from kotacerdas import __version__
from kotacerdas.config import Settings, load_settings
from kotacerdas.db import make_engine, make_sessionmaker
from kotacerdas.errors import DomainError, NotAuthenticated
from kotacerdas.i18n import _
from kotacerdas.middleware import (
    CsrfCookieMiddleware,
    LocaleMiddleware,
    Metrics,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
)
from kotacerdas.problems import problem_response
from kotacerdas.web.templating import STATIC_DIR, make_environment, render

log = logging.getLogger("kotacerdas")
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).parent / "static"

API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")
# Background work of `serve` waits a little after the app's start-up, so that the server answers its first requests
# (a restart's health checks) without competing with it for the interpreter (docs/performance.md, startup): the map
# and indicator preloads start 1 s after, once uvicorn serves (it binds its socket right after the start-up), and the
# in-app worker's first pass 2 s after. A map request before then loads the index itself, as without the preload.
PRELOAD_DELAY_S = 1.0
WORKER_FIRST_PASS_DELAY_S = 2.0


def wants_problem_json(request: Request) -> bool:
    """API paths answer errors as problem+json; pages answer with an HTML page."""
    path = request.url.path
    return path.startswith(API_PREFIXES) or "json" in request.headers.get("accept", "").split(",")[0]


def _http_title(status: int) -> str:
    return {
        400: _("Bad request"),
        401: _("Not logged in"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Method not allowed"),
        409: _("Conflict"),
        413: _("Request too large"),
        415: _("Unsupported media type"),
        422: _("Invalid input"),
        429: _("Too many requests"),
    }.get(status, _("Server error") if status >= 500 else _("Request error"))


def _error_page(request: Request, *, status: int, title: str, detail: str, headers: dict | None = None):
    response = render(request, "error.html", {"status": status, "title": title, "detail": detail}, status_code=status)
    response.headers.update(headers or {})
    return response


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        if not wants_problem_json(request):
            if isinstance(exc, NotAuthenticated):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/masuk?next={quote(target)}", status_code=303)
            return _error_page(
                request,
                status=exc.status_code,
                title=_http_title(exc.status_code),
                detail=exc.detail,
                headers=exc.headers,
            )
        return problem_response(
            status=exc.status_code,
            slug=exc.slug,
            title=_http_title(exc.status_code),
            detail=exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {
                "field": ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")),
                "reason": error.get("type"),
                "message": error.get("msg"),
            }
            for error in exc.errors()
        ]
        detail = _("Some values are missing or wrong; see errors.")
        if not wants_problem_json(request):
            return _error_page(request, status=422, title=_http_title(422), detail=detail)
        return problem_response(
            status=422,
            slug="invalid-input",
            title=_http_title(422),
            detail=detail,
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else _http_title(exc.status_code)
        if exc.status_code == 404:
            detail = _("The page or item you asked for does not exist.")
        if not wants_problem_json(request):
            return _error_page(request, status=exc.status_code, title=_http_title(exc.status_code), detail=detail)
        return problem_response(
            status=exc.status_code,
            slug=f"http-{exc.status_code}",
            title=_http_title(exc.status_code),
            detail=detail,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            status=500,
            slug="server-error",
            title=_http_title(500),
            detail=_("Something went wrong on our side. It has been logged."),
            instance=request.url.path,
        )


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put `router`'s routes in the app's own list, in order, as they were built when their module was imported.

    `app.include_router` (FastAPI 0.165) keeps the router apart and analyses each of its routes a second time
    (signature, dependencies, parameter models) when a request first walks past it: 0.7 s for the first 404 or the
    first page of the later routers, and the analysis made at import is thrown away. Included without a prefix,
    tags or dependencies the routes are the same either way (the same OpenAPI document); only
    `app.dependency_overrides` would not reach them, and nothing uses it. A router that includes routers of its own
    is included the usual way, so `create_app` lists such a module's routers instead.
    """
    if all(isinstance(route, APIRoute) for route in router.routes):
        app.router.routes.extend(router.routes)
    else:
        app.include_router(router)


def create_app(settings: Settings) -> FastAPI:
    """Build the web app for `settings`. Nothing connects to the database until a request needs it."""
    from kotacerdas.accounts import api as accounts_api
    from kotacerdas.accounts import pages as accounts_pages
    from kotacerdas.agencies import api as agencies_api
    from kotacerdas.agencies import pages as agencies_pages
    from kotacerdas.assets import api as assets_api
    from kotacerdas.assets import console as assets_console
    from kotacerdas.assets import pages as assets_pages
    from kotacerdas.assets import public as assets_public
    from kotacerdas.assets import transfer_web as assets_transfer
    from kotacerdas.dashboards import pages as dashboards_pages
    from kotacerdas.events import api as events_api
    from kotacerdas.events import clusters_web as events_clusters
    from kotacerdas.events import console as events_console
    from kotacerdas.events import feeds_web as events_feeds
    from kotacerdas.events import pages as events_pages
    from kotacerdas.events import stream as events_stream
    from kotacerdas.events import subscriptions_web as events_subscriptions
    from kotacerdas.notifications import api as notifications_api
    from kotacerdas.notifications import pages as notifications_pages
    from kotacerdas.ops import router as ops_router
    from kotacerdas.regions import api as regions_api
    from kotacerdas.regions import pages as regions_pages
    from kotacerdas.reports import api as reports_api
    from kotacerdas.reports import console as reports_console
    from kotacerdas.reports import open311 as reports_open311
    from kotacerdas.reports import pages as reports_pages
    from kotacerdas.sensors import api as sensors_api
    from kotacerdas.sensors import console as sensors_console
    from kotacerdas.sensors import pages as sensors_pages
    from kotacerdas.sensors import rules_web as sensors_rules
    from kotacerdas.sensors import sensorthings

    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from kotacerdas.events.live import start_live, stop_live

        # The live stream's hub (and on PostgreSQL its LISTEN connection) before the first request.
        app.state.live = await start_live(settings=settings, engine=engine, session_factory=app.state.sessionmaker)
        from kotacerdas.sensors.live import start_tiles, stop_tiles

        # The live sensor tiles' hub: one poller of current values for every tile stream of this process.
        app.state.sensor_tiles = await start_tiles(settings=settings, session_factory=app.state.sessionmaker)
        worker = None
        if settings.worker_in_app:
            from kotacerdas.worker import start_worker_thread

            worker = start_worker_thread(
                settings, session_factory=app.state.sessionmaker, first_pass_delay_s=WORKER_FIRST_PASS_DELAY_S
            )
        ingest = None
        if settings.ingest_in_app:
            from kotacerdas.sensors.ingest import start_ingest_thread

            ingest = start_ingest_thread(settings, session_factory=app.state.sessionmaker, metrics=app.state.metrics)
        preloads = None
        if settings.map_index_preload:

            def start_preloads() -> None:
                # In the timer's thread: the modules' imports too stay off the event loop.
                from kotacerdas.assets.indicators import preload_in_background as preload_asset_indicators
                from kotacerdas.assets.mapindex import preload_in_background as preload_asset_map
                from kotacerdas.reports.mapindex import preload_in_background as preload_report_map

                preload_report_map(settings, session_factory=app.state.sessionmaker)
                preload_asset_map(settings, session_factory=app.state.sessionmaker)
                preload_asset_indicators(settings, session_factory=app.state.sessionmaker)

            preloads = threading.Timer(PRELOAD_DELAY_S, start_preloads)
            preloads.name = "kotacerdas-preload"
            preloads.daemon = True
            preloads.start()
        try:
            yield
        finally:
            if preloads is not None:
                preloads.cancel()  # a stop within the delay: no preload starts
            await stop_tiles(app.state.sensor_tiles)
            await stop_live(app.state.live)
            if worker is not None:
                thread, stop_event = worker
                stop_event.set()
                # A delivery in progress finishes (bounded by the SMTP and webhook timeouts); the thread is a
                # daemon, so a stuck one never holds the process.
                thread.join(timeout=30)
            if ingest is not None:
                ingest_thread, ingest_stop = ingest
                ingest_stop.set()
                # The batch in progress is committed and acknowledged; unacknowledged messages come back later.
                ingest_thread.join(timeout=30)
            engine.dispose()

    app = FastAPI(
        title="kotacerdas API",
        version=__version__,
        description="JSON API of the kotacerdas smart-city platform. Errors are RFC 9457 problem+json.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.templates = make_environment(settings)
    app.state.metrics = Metrics()

    secure = settings.mode == "production"
    # Added innermost first: metrics see the final status; the locale wraps everything so errors are translated.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(CsrfCookieMiddleware, secure_cookies=secure)
    app.add_middleware(LocaleMiddleware, default_locale=settings.default_locale, secure_cookies=secure)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    _install_error_handlers(app)
    # Swagger UI comes from a Python package: FastAPI's own docs page loads it from a CDN that an intranet
    # server cannot reach.
    app.mount("/static/vendor/swagger-ui", StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="kotacerdas API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon.png",
        )

    app.mount("/static/vendor/leaflet", StaticFiles(directory=xstatic_leaflet.BASE_DIR), name="leaflet")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        ops_router,
        regions_api.router,
        agencies_api.router,
        accounts_api.router,
        notifications_api.router,
        reports_api.router,
        reports_open311.router,
        dashboards_pages.router,
        regions_pages.router,
        agencies_pages.router,
        accounts_pages.router,
        notifications_pages.router,
        reports_pages.router,
        reports_console.router,
        # Before assets_api: its /api/v1/assets/{asset_id} would take /api/v1/assets/export.csv.
        assets_transfer.router,
        assets_public.router,  # also before assets_api: /api/v1/assets/map and /indicators are fixed paths
        assets_api.router,
        assets_pages.router,
        assets_console.router,
        # The events' fixed paths (feeds, the stream, subscriptions) before /peristiwa/{id} and /api/v1/events/{id}.
        events_stream.router,
        events_feeds.router,
        events_subscriptions.api,
        events_subscriptions.pages,
        events_clusters.router,
        events_api.router,
        events_pages.router,
        events_console.router,
        sensorthings.router,
        sensors_rules.api_router,
        sensors_rules.console_router,
        sensors_pages.router,
        sensors_api.router,
        sensors_console.router,
    ):
        _add_routes(app, router)
    return app


def create_app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from KOTACERDAS_* variables."""
    from kotacerdas.gcpolicy import settle_for_serving

    web_app = create_app(load_settings())
    settle_for_serving()
    return web_app
