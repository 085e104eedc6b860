"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when KOTACERDAS_TEST_POSTGRES_URL is set.

`--db sqlite` or `--db postgres` picks one backend (CI runs the suite once for each).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from kotacerdas.accounts import service as accounts
from kotacerdas.app import create_app
from kotacerdas.config import Settings
from kotacerdas.db import Base, make_engine, make_sessionmaker
from kotacerdas.migrate import upgrade_database

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "musi-rawas"
BOUNDARIES_FILE = SHARED_DATA / "wilayah-16.05.geojson"
POSTGRES_URL = os.environ.get("KOTACERDAS_TEST_POSTGRES_URL", "")
TEST_PASSWORD = "rahasia-uji-123"


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
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
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
    yield Settings(data_dir=tmp_path / "data", database_url=url, secret_key="test-secret-" + "x" * 32)
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
            actor=accounts.Actor.system("test"),
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
    user = make_user("tokenadmin", "admin")
    _token, plain = accounts.create_api_token(session, actor=accounts.Actor.system("test"), user_id=user.id, name="t")
    session.commit()
    return plain


@pytest.fixture
def auth_headers(api_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}
