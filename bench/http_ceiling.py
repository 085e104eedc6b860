"""The least an HTTP ingest of CreateObservations can do, as a same-run yardstick for bench/ingest_http.py.

A bare ASGI app under the same uvicorn (one worker, or one per core) that, for each POST, parses the body with
orjson, turns each row's ISO 8601 time into integer microseconds, appends the rows in multi-row INSERTs to a plain
SQLite table (WAL, synchronous=FULL, no index but the rowid) in one transaction, and answers 201 with one Observation
URL per row, as the real endpoint does. No authentication, no checks of Datastreams, result types or times, no
current values, no audit row, no compaction: whatever the real server does on top of this is the price of those.
`GET /readyz` answers 200 so that bench/server.py can wait for it. The database path comes from
`KOTACERDAS_BENCH_CEILING_DB`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
_LOCAL = threading.local()
# One writer at a time, as SQLite allows; uvicorn's thread pool runs the requests.
_WRITER = threading.Lock()


def _connection() -> sqlite3.Connection:
    connection = getattr(_LOCAL, "connection", None)
    if connection is None:
        connection = sqlite3.connect(os.environ["KOTACERDAS_BENCH_CEILING_DB"], isolation_level=None, timeout=30)
        # The first requests come on two threads at once: one sets the database up, the other waits for it.
        with _WRITER:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS plain (id INTEGER PRIMARY KEY, datastream_id INTEGER, "
                "phenomenon_time INTEGER, result_type INTEGER, result_number REAL)"
            )
        connection.execute("PRAGMA synchronous = FULL")
        _LOCAL.connection = connection
    return connection


# Multi-row INSERTs, as the real journal takes a batch (sensors/store.py): fewer steps of the interpreter per row.
_ROWS_PER_STATEMENT = 128


@functools.lru_cache(maxsize=_ROWS_PER_STATEMENT)
def _insert_statement(count: int) -> str:
    values = ", ".join(["(?, ?, ?, ?)"] * count)
    return f"INSERT INTO plain (datastream_id, phenomenon_time, result_type, result_number) VALUES {values}"


@contextlib.contextmanager
def _other_processes() -> Iterator[None]:
    """With several uvicorn workers: a blocking flock beside the database, as the real server's writer queue between
    processes (SQLite's own busy handler would sleep in steps of up to 100 ms instead of waking at once)."""
    fd = getattr(_LOCAL, "lock_fd", None)
    if fd is None:
        fd = _LOCAL.lock_fd = os.open(
            os.environ["KOTACERDAS_BENCH_CEILING_DB"] + "-writer.lock", os.O_RDWR | os.O_CREAT
        )
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def store(body: bytes) -> bytes:
    """Parse, convert, append, commit; the answer's body."""
    rows = []
    append = rows.append
    fromisoformat = datetime.fromisoformat
    for group in orjson.loads(body):
        ds = group["Datastream"]["@iot.id"]
        for moment, value in group["dataArray"]:
            append((ds, (fromisoformat(moment) - EPOCH) // ONE_US, 1, value))
    connection = _connection()
    with _WRITER, _other_processes():
        connection.execute("BEGIN IMMEDIATE")
        first = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM plain").fetchone()[0]
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            part = rows[start : start + _ROWS_PER_STATEMENT]
            connection.execute(_insert_statement(len(part)), [value for row in part for value in row])
        connection.execute("COMMIT")
    return orjson.dumps(
        [f"http://127.0.0.1/sensorthings/v1.1/Observations({i})" for i in range(first, first + len(rows))]
    )


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        status, answer = 200, b"{}"
    else:
        try:
            status, answer = 201, await anyio.to_thread.run_sync(store, b"".join(chunks))
        except Exception as error:  # the benchmark shows the reason instead of a bare 500
            status, answer = 500, repr(error).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})
