"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when KOTACERDAS_TEST_POSTGRES_URL is set.

`--db sqlite` or `--db postgres` picks one backend (CI runs the suite once for each). The helpers at the end
(problem answers, stored rows, tokens, CSRF and login, a live server) are imported by the test modules:
`from conftest import …`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kotacerdas.accounts import service as accounts
from kotacerdas.app import create_app
from kotacerdas.config import Settings
from kotacerdas.db import Base, make_engine, make_sessionmaker
from kotacerdas.i18n import gettext, reset_locale, set_locale
from kotacerdas.migrate import upgrade_database
from kotacerdas.problems import PROBLEM_MEDIA_TYPE
from kotacerdas.sensors import store

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "musi-rawas"
BOUNDARIES_FILE = SHARED_DATA / "wilayah-16.05.geojson"
POSTGRES_URL = os.environ.get("KOTACERDAS_TEST_POSTGRES_URL", "")
TEST_PASSWORD = "rahasia-uji-123"
TEST_ACTOR = accounts.Actor.system("test")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres", "all"),
        default="all",
        help="database backend(s) for database tests; 'all' is SQLite plus PostgreSQL when "
        "KOTACERDAS_TEST_POSTGRES_URL is set",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    choice = config.getoption("--db")
    if choice == "sqlite":
        return ["sqlite"]
    if choice == "postgres":
        if not POSTGRES_URL:
            raise pytest.UsageError("--db postgres needs KOTACERDAS_TEST_POSTGRES_URL")
        return ["postgres"]
    return ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config))


class _Databases:
    """Migrated databases made once per test session and reset between tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite_template: Path | None = None
        self.postgres_url: str | None = None
        self.postgres_admin: sa.Engine | None = None

    def sqlite_url(self) -> str:
        if self.sqlite_template is None:
            self.sqlite_template = self.root / "template.db"
            engine = make_engine(Settings(database_url=f"sqlite:///{self.sqlite_template}"))
            upgrade_database(engine)
            engine.dispose()
        target = self.root / f"test-{uuid.uuid4().hex[:10]}.db"
        shutil.copyfile(self.sqlite_template, target)
        return f"sqlite:///{target}"

    def postgres(self) -> str:
        if self.postgres_url is None:
            name = f"kc_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            self.postgres_admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with self.postgres_admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
            self.postgres_url = (
                sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
            )
            engine = make_engine(Settings(database_url=self.postgres_url))
            upgrade_database(engine)
            engine.dispose()
        return self.postgres_url

    def reset_postgres(self) -> None:
        engine = sa.create_engine(self.postgres_url)
        with engine.begin() as connection:
            # The ORM's tables and the observation store's, which are not ORM models (sensors/store.py).
            names = {table.name for table in Base.metadata.sorted_tables}
            names |= set(sa.inspect(connection).get_table_names()) & store.STORE_TABLES
            tables = ", ".join(f'"{name}"' for name in sorted(names))
            connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        engine.dispose()

    def drop(self) -> None:
        if self.postgres_admin is not None and self.postgres_url is not None:
            name = sa.engine.make_url(self.postgres_url).database
            with self.postgres_admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.postgres_admin.dispose()


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Databases]:
    databases = _Databases(tmp_path_factory.mktemp("databases"))
    yield databases
    databases.drop()


@pytest.fixture
def settings(backend: str, _databases: _Databases, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test, on a fresh, migrated database of the backend under test."""
    url = _databases.sqlite_url() if backend == "sqlite" else _databases.postgres()
    yield Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        secret_key="test-secret-" + "x" * 32,
        worker_in_app=False,
        map_index_preload=False,
    )
    if backend == "postgres":
        _databases.reset_postgres()


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: sa.Engine):
    """A session for service tests; the test commits when it wants the change to be visible elsewhere."""
    with make_sessionmaker(engine)() as session:
        yield session


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def make_user(session):
    """Create a user with TEST_PASSWORD and commit it."""

    def make(username: str = "admin", role: str = "admin", agency_id: int | None = None):
        user = accounts.create_user(
            session,
            actor=TEST_ACTOR,
            username=username,
            full_name=username.title(),
            password=TEST_PASSWORD,
            role=role,
            agency_id=agency_id,
        )
        session.commit()
        return user

    return make


@pytest.fixture
def api_token(session, make_user):
    """A Bearer token of a fresh admin user."""
    return new_api_token(session, make_user("tokenadmin", "admin"), name="t")


@pytest.fixture
def auth_headers(api_token) -> dict[str, str]:
    return bearer(api_token)


# --- helpers ---------------------------------------------------------------------------------------------------


def translated(message: str, locale: str) -> str:
    """`message` in `locale`, as the catalogue has it."""
    token = set_locale(locale)
    try:
        return gettext(message)
    finally:
        reset_locale(token)


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem with this status, a kotacerdas type, a title and a detail; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:kotacerdas:problem:")
    assert body["title"] and body["detail"]
    return body


def stored(session, statement):
    """The first value `statement` finds in what the app committed."""
    # End this session's snapshot and forget loaded rows: the answer is what the app committed.
    session.rollback()
    session.expire_all()
    return session.scalar(statement)


def row_count(session, model, *where) -> int:
    """How many committed rows of `model` match `where`."""
    return stored(session, sa.select(sa.func.count()).select_from(model).where(*where))


def new_api_token(session, user, name: str = "test") -> str:
    """A new API token of `user`, committed; the plain token."""
    _token, plain = accounts.create_api_token(session, actor=TEST_ACTOR, user_id=user.id, name=name)
    session.commit()
    return plain


def bearer(plain: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plain}"}


def csrf_from(client, url: str) -> str:
    """The CSRF token of the form on the page at `url`."""
    response = client.get(url)
    assert response.status_code == 200, response.text
    return CSRF.search(response.text).group(1)


def post_login(client, username: str, password: str = TEST_PASSWORD, next_url: str = ""):
    """Send the login form as a browser would (with the page's CSRF token); the response, not followed."""
    return client.post(
        "/masuk",
        data={"username": username, "password": password, "csrf_token": csrf_from(client, "/masuk"), "next": next_url},
        follow_redirects=False,
    )


def free_port() -> int:
    """A loopback port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(app: FastAPI, *, name: str = "live-uvicorn", timeout: float = 30.0) -> Iterator[str]:
    """`app` under a real uvicorn in a thread, on a free loopback port (sync endpoints run concurrently in its
    threadpool); its base URL. Fails the test when the server does not start within `timeout` seconds."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the live server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Receiver:
    """A webhook receiver: what it got, and the status it answers with."""

    url: str
    requests: list[dict] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def receiver():
    """A real HTTP server on loopback that records each POST (headers, raw body) and answers `receiver.status`."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"ok": state.status < 300}).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def users_by_name(session, make_user, roles: dict[str, tuple[str, str | None]]):
    """A function giving a staff user by name, made on first use: `roles` maps a name to (role, OPD short name or
    None); the username is the name with dots for underscores."""
    from kotacerdas.agencies import service as agencies

    made: dict[str, object] = {}

    def get(name: str):
        if name not in made:
            role, agency = roles[name]
            agency_id = agencies.get_agency_by_short_name(session, short_name=agency).id if agency else None
            made[name] = make_user(name.replace("_", "."), role, agency_id)
        return made[name]

    return get
