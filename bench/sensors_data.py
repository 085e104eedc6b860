"""The databases of the sensors benchmarks (observation_store, ingest_http, current_values): each benchmark has its
own SQLite file in the bench folder and its own PostgreSQL database beside the test one, made fresh per run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.reports_data import DEFAULT_POSTGRES, SECRET, bench_dir
from kotacerdas.config import Settings


@dataclass(frozen=True)
class BenchDatabase:
    """Where one benchmark keeps its data: `sqlite_file` in the bench folder, PostgreSQL database `pg_database`."""

    sqlite_file: str
    pg_database: str
    data_dir: str

    def sqlite_path(self) -> Path:
        return bench_dir() / self.sqlite_file

    def postgres_url(self) -> str:
        server = os.environ.get("KOTACERDAS_BENCH_POSTGRES_URL") or os.environ.get(
            "KOTACERDAS_TEST_POSTGRES_URL", DEFAULT_POSTGRES
        )
        return sa.engine.make_url(server).set(database=self.pg_database).render_as_string(hide_password=False)

    def settings_for(self, backend: str, **overrides: Any) -> Settings:
        """The app's settings on this database, without the background worker and the map preload."""
        url = f"sqlite:///{self.sqlite_path()}" if backend == "sqlite" else self.postgres_url()
        return Settings(
            data_dir=bench_dir() / self.data_dir, database_url=url, secret_key=SECRET, worker_in_app=False,
            map_index_preload=False, **overrides,
        )  # fmt: skip

    def fresh(self, backend: str) -> None:
        """Delete the SQLite file (and its WAL and lock), or drop and create the PostgreSQL database."""
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm", "-writer.lock"):
                Path(f"{self.sqlite_path()}{suffix}").unlink(missing_ok=True)
            return
        admin_url = sa.engine.make_url(self.postgres_url()).set(database="postgres")
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{self.pg_database}"')
        admin.dispose()
