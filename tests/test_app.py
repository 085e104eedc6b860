"""The app as a whole: operations endpoints, problem+json errors, metrics, security headers, the schema, commits."""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import Request
from fastapi.testclient import TestClient

import kotacerdas.models  # noqa: F401  (every table on the metadata)
from conftest import assert_problem, running_server
from kotacerdas import __version__
from kotacerdas.accounts import service as accounts
from kotacerdas.accounts.models import ApiToken
from kotacerdas.app import create_app
from kotacerdas.config import Settings
from kotacerdas.db import HOLDING_WRITER_QUEUE, LATE_WRITES, Base, begin_writes, make_engine, writer_queue
from kotacerdas.deps import SessionDep, writes_late
from kotacerdas.problems import PROBLEM_MEDIA_TYPE
from kotacerdas.sensors.store import is_store_object

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}


# --- health, readiness, metrics ----------------------------------------------------------------------------------


def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "database": None}


def test_readyz_is_ready_when_the_database_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    # A closed loopback port: nothing listens on port 1.
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://kotacerdas@127.0.0.1:1/kotacerdas", secret_key="x" * 40
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        alive = client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["database"] == "unreachable"
    assert alive.status_code == 200


def test_metrics_count_requests_by_route_template(app, client):
    @app.get("/api/test-probe/{item_id}", include_in_schema=False)
    def probe(item_id: int) -> dict:
        return {"id": item_id}

    client.get("/healthz")
    client.get("/api/test-probe/41")
    client.get("/api/test-probe/42")
    client.get("/api/v1/tidak-ada-12345")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(r'kotacerdas_http_requests_total\{method="GET",route="/healthz",status="200"\} 1\.0', text)
    assert re.search(
        r'kotacerdas_http_requests_total\{method="GET",route="/api/test-probe/\{item_id\}",status="200"\} 2\.0', text
    )
    assert "/api/test-probe/41" not in text
    assert "tidak-ada-12345" not in text  # unknown URLs do not grow the label set
    assert "kotacerdas_http_request_duration_seconds_bucket" in text


# --- errors ------------------------------------------------------------------------------------------------------


def test_unknown_api_path_is_a_404_problem(client):
    response = client.get("/api/v1/tidak-ada")

    body = assert_problem(response, 404)
    assert body["instance"] == "/api/v1/tidak-ada"


def test_wrong_method_on_the_api_is_a_405_problem(client):
    assert_problem(client.delete("/healthz"), 405)


def test_invalid_parameter_is_a_422_problem_naming_the_field(app, client):
    @app.get("/api/test-probe/{item_id}", include_in_schema=False)
    def probe(item_id: int) -> dict:
        return {"id": item_id}

    body = assert_problem(client.get("/api/test-probe/bukan-angka"), 422)

    assert [error["field"] for error in body["errors"]] == ["item_id"]


def test_problem_detail_speaks_the_request_language(client):
    indonesian = client.get("/api/v1/tidak-ada", headers={"Accept-Language": "id"}).json()
    english = client.get("/api/v1/tidak-ada", headers={"Accept-Language": "en"}).json()

    assert english["detail"] == "The page or item you asked for does not exist."
    assert indonesian["detail"] != english["detail"]


def test_unhandled_error_is_a_500_problem_without_internals(app, settings):
    @app.get("/api/test-boom", include_in_schema=False)
    def boom() -> dict:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/test-boom")

    body = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert body["instance"] == "/api/test-boom"


def test_unknown_page_is_an_html_404(client):
    response = client.get("/halaman-yang-tidak-ada", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_every_api_operation_declares_its_problem_responses(client):
    document = client.get("/api/openapi.json").json()

    undeclared = []
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            problems = [
                status
                for status, response in operation.get("responses", {}).items()
                if status.startswith("4") and PROBLEM_MEDIA_TYPE in response.get("content", {})
            ]
            if not problems:
                undeclared.append(f"{method.upper()} {path}")
    assert not undeclared, f"declare responses=PROBLEM_RESPONSES on these routers: {undeclared}"


# --- security headers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/tidak-ada", "/api/openapi.json", "/"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)

    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# --- schema and transactions ---------------------------------------------------------------------------------------


def test_migrations_produce_exactly_the_models_schema(engine):
    """`kotacerdas db upgrade` and the models agree: autogenerate would find nothing to do."""
    with engine.connect() as connection:
        # The observation store's tables are not ORM models (written per database in migration 0007).
        opts = {"compare_type": True, "include_object": is_store_object}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, Base.metadata)

    assert differences == [], "migrations and models differ; write a migration:\n" + "\n".join(map(str, differences))


def test_an_acknowledged_write_is_committed_before_the_response_starts(app, settings, session, make_user):
    """DESIGN: a 2xx comes after commit. At the moment the status line goes out, another connection sees the row."""
    user = make_user("penulis", "admin")

    @app.post("/api/test-write", status_code=201, include_in_schema=False)
    def write(request: Request, db: SessionDep) -> dict:
        token, _plain = accounts.create_api_token(db, actor=accounts.Actor.system("test"), user_id=user.id, name="w")
        return {"id": token.id}

    seen_at_response_start: list[int] = []
    observer = make_engine(settings)

    async def asgi(scope, receive, send):
        async def watching_send(message):
            if message["type"] == "http.response.start" and scope["path"] == "/api/test-write":
                with observer.connect() as connection:
                    count = connection.scalar(sa.select(sa.func.count()).select_from(ApiToken))
                seen_at_response_start.append(count)
            await send(message)

        await app(scope, receive, watching_send)

    try:
        with TestClient(asgi) as client:
            response = client.post("/api/test-write")
    finally:
        observer.dispose()

    assert response.status_code == 201
    assert seen_at_response_start == [1]


def _send(http: httpx.Client, method: str, path: str, **kwargs) -> int | str:
    try:
        return http.request(method, path, **kwargs).status_code
    except httpx.HTTPError as exc:  # e.g. the connection closed without an answer
        return type(exc).__name__


def count_tokens(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(ApiToken))
    finally:
        engine.dispose()


CLIENTS, REQUESTS = 4, 10


def test_concurrent_writes_all_succeed(settings, api_token):
    """Several API clients writing at once (here: creating tokens) each get their 201, and every write is stored."""
    headers = {"Authorization": f"Bearer {api_token}"}

    def client(index: int) -> list[int | str]:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            return [_send(http, "POST", "/api/v1/tokens", json={"name": f"k-{index}-{n}"}) for n in range(REQUESTS)]

    with running_server(create_app(settings)) as base, ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [status for result in pool.map(client, range(CLIENTS)) for status in result]

    assert statuses == [201] * (CLIENTS * REQUESTS), Counter(statuses)
    assert count_tokens(settings) == 1 + CLIENTS * REQUESTS  # the fixture's token and every acknowledged one


def test_a_write_request_begins_writing_with_the_queue_it_waited_for(app, backend):
    """On SQLite a write request takes the writer queue before its first thread; its transaction then begins with
    the write lock (BEGIN IMMEDIATE) without queueing again, and the queue is free once the answer is out."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no writer queue")
    seen = {}

    @app.post("/api/test-queue", include_in_schema=False)
    def probe(db: SessionDep) -> dict:
        seen["holding"] = HOLDING_WRITER_QUEUE.get()
        db.execute(sa.text("SELECT 1"))
        seen["in_transaction"] = db.connection().connection.driver_connection.in_transaction
        return {}

    @app.get("/api/test-queue", include_in_schema=False)
    def read(db: SessionDep) -> dict:
        seen["reading"] = HOLDING_WRITER_QUEUE.get()
        return {}

    with TestClient(app) as client:
        assert client.post("/api/test-queue").status_code == 200
        assert client.get("/api/test-queue").status_code == 200
    queue = writer_queue(app.state.engine)
    assert seen == {"holding": True, "in_transaction": True, "reading": False}
    queue.acquire()  # free again (it would wait for the busy timeout and raise otherwise)
    queue.release()


def test_a_late_writer_reads_while_another_writes_and_writes_holding_the_queue(app, backend, settings):
    """A request to an endpoint marked `writes_late` reads without the writer queue (another writer holding it does
    not delay it) and, from `begin_writes`, writes in a transaction that holds the queue until it commits."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no writer queue")
    queue = writer_queue(app.state.engine)
    seen = {}

    @app.post("/api/test-late/{write}", include_in_schema=False)
    @writes_late
    def probe(db: SessionDep, write: int) -> dict:
        db.execute(sa.text("SELECT count(*) FROM users")).scalar()
        seen["read"] = True
        if write:
            begin_writes(db)
            seen["queue_taken_by_this_request"] = not queue.try_acquire()
            db.execute(sa.text("CREATE TABLE late_probe (n INTEGER)"))
            db.execute(sa.text("INSERT INTO late_probe VALUES (1)"))
        return {}

    with TestClient(app) as client:
        queue.acquire()  # another writer (a job, another process) holds the database
        try:
            assert client.post("/api/test-late/0").status_code == 200
        finally:
            queue.release()
        assert client.post("/api/test-late/1").status_code == 200
    assert seen == {"read": True, "queue_taken_by_this_request": True}
    queue.acquire()  # given back when the request's transaction ended
    queue.release()
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT n FROM late_probe")).scalar() == 1
    finally:
        engine.dispose()


def test_begin_writes_refuses_a_session_that_already_wrote(app, backend):
    if backend != "sqlite":
        pytest.skip("begin_writes does nothing on PostgreSQL")
    session = app.state.sessionmaker()
    session.info[LATE_WRITES] = True
    try:
        session.add(ApiToken(user_id=1, name="x", token_hash="h", prefix="p"))
        with pytest.raises(RuntimeError):
            begin_writes(session)
    finally:
        session.rollback()
        session.close()


def test_more_writers_at_once_than_pool_threads_all_succeed(settings, api_token):
    """More write requests at once than the server has threads (anyio's 40): writers wait for their turn without
    holding a thread, so the one holding the database's write lock can always finish. When they waited in threads,
    every thread waited for a writer that needed a thread to finish: 500s after the lock's timeout."""
    headers = {"Authorization": f"Bearer {api_token}"}
    writers = 60
    start = threading.Barrier(writers)

    def client(index: int) -> int | str:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            http.get("/healthz")  # connected before the barrier, so that the writes arrive together
            start.wait(timeout=30)
            return _send(http, "POST", "/api/v1/tokens", json={"name": f"w-{index}"})

    with running_server(create_app(settings)) as base, ThreadPoolExecutor(writers) as pool:
        statuses = list(pool.map(client, range(writers)))

    assert statuses == [201] * writers, Counter(statuses)
    assert count_tokens(settings) == 1 + writers


def test_concurrent_reads_that_write_and_writes_all_succeed(settings, session, make_user):
    """A GET may write too (a token's first use records `last_used_at`); with writers busy it still answers 200."""
    user = make_user("klien", "admin")
    fresh = [
        accounts.create_api_token(session, actor=accounts.Actor.system("test"), user_id=user.id, name=f"t{n}")[1]
        for n in range(CLIENTS * REQUESTS)
    ]
    session.commit()

    def client(index: int) -> list[int | str]:
        results = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for n in range(REQUESTS):
                headers = {"Authorization": f"Bearer {fresh[index * REQUESTS + n]}"}
                if index % 2:
                    results.append(_send(http, "GET", "/api/v1/me", headers=headers))
                else:
                    body = {"name": f"k-{index}-{n}"}
                    results.append(_send(http, "POST", "/api/v1/tokens", headers=headers, json=body))
        return results

    with running_server(create_app(settings)) as base, ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [status for result in pool.map(client, range(CLIENTS)) for status in result]

    expected = [201 if index % 2 == 0 else 200 for index in range(CLIENTS) for _n in range(REQUESTS)]
    assert statuses == expected, Counter(statuses)
