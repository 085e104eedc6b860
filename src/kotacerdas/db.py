"""Database: engine and session factory built from Settings, the declarative base, shared column types."""

from __future__ import annotations

import contextvars
import fcntl
import functools
import os
import sqlite3
import threading
import time
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.errors import Busy
from kotacerdas.i18n import _

# Fixed constraint names so that Alembic batch migrations can find them again on SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The largest integer primary key (PostgreSQL's INTEGER); ids in paths and bodies are bounded by it, so that a
# larger number is a 422 instead of a database overflow error.
MAX_INT_ID = 2**31 - 1


class Base(DeclarativeBase):
    """Base class of every table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """A datetime stored as UTC and always read back timezone-aware, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: kotacerdas stores timezone-aware UTC datetimes only")
        value = value.astimezone(UTC)
        # SQLite has no zone type; store naive UTC so that text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON documents: JSONB on PostgreSQL (indexable), JSON text on SQLite.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


# Connections per process and engine. Web requests hold at most REQUEST_CONNECTIONS of them at once
# (deps.get_session waits for one on the event loop); the rest serve the worker thread and the background loads.
POOL_SIZE, POOL_OVERFLOW = 10, 10
REQUEST_CONNECTIONS = 16


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """Create the engine for the configured database; SQLite gets WAL, foreign keys and full sync."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        if db_path and db_path != ":memory:":
            kwargs = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, **kwargs}
        engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        lock_path = Path(f"{db_path}-writer.lock") if db_path and db_path != ":memory:" else None
        _configure_sqlite(engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms, lock_path=lock_path)
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, **{"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, **kwargs}
    )


_WRITER_LOCK = "kotacerdas_writer_lock"
# The execution option of a connection whose transaction writes: it takes the writer queue at BEGIN.
WRITE_OPTION = "kotacerdas_write"
# Set while a web request holds the writer queue (it waits for it before its first thread, see deps.get_session):
# its transactions begin writing without taking the queue again. Worker threads get it with the request's context.
HOLDING_WRITER_QUEUE: contextvars.ContextVar[bool] = contextvars.ContextVar("kotacerdas_writer_queue", default=False)
_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()
# Session.info key of a web request that reads first and takes the writer queue only at `begin_writes`
# (an endpoint marked deps.writes_late, on SQLite).
LATE_WRITES = "kotacerdas_late_writes"


def writer_queue(engine: Engine) -> WriterQueue | None:
    """The queue that this engine's writers wait in (SQLite), or None (PostgreSQL, whose writers do not queue)."""
    return _QUEUES.get(engine)


class WriterQueue:
    """The queue SQLite writers wait in: a thread lock for this process's writers, then, when the database is a
    file, an exclusive `flock` on `<database>-writer.lock` shared with every other process on the database (the
    app's worker processes, the background worker, the command line).

    SQLite's own busy handler polls with growing sleeps (up to 100 ms): under load a few unlucky writers waited
    seconds or timed out while others got in (bench/reports_submit.py). A thread lock is handed over as soon as
    the writer before commits, and a process waiting for the file lock tries again every half millisecond, so
    several processes share one database file fairly. A process that dies holding the lock loses it with its
    file descriptors. Connections made outside kotacerdas still meet SQLite's busy timeout."""

    def __init__(self, lock_path: Path | None, timeout_s: float) -> None:
        self._thread_lock = threading.Lock()
        self._lock_path = lock_path
        self._fd: int | None = None
        self._timeout_s = timeout_s

    def acquire(self) -> None:
        deadline = time.monotonic() + self._timeout_s
        if not self._thread_lock.acquire(timeout=self._timeout_s):
            raise sqlite3.OperationalError("database is locked (waited for this process's other writers)")
        if self._lock_path is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._wait_for_file_lock(self._fd, deadline)
        except BaseException:
            self._thread_lock.release()
            raise

    def try_acquire(self) -> bool:
        """Take the queue if it is free right now, without waiting (from the event loop)."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        if self._lock_path is None:
            return True
        try:
            if self._fd is None:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            self._thread_lock.release()
            return False
        except BaseException:
            self._thread_lock.release()
            raise

    @staticmethod
    def _wait_for_file_lock(fd: int, deadline: float) -> None:
        # Polled every half millisecond rather than blocking, so that the wait has the busy timeout's bound. It is
        # fair enough: the process that just committed hands its lock on to its next writer only once that thread
        # gets the interpreter back, usually later than this poll.
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked (waited for other processes' writers)") from None
                time.sleep(0.0005)

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file (the engine is disposed); a later writer opens it again."""
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, lock_path: Path | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN handling defers locks until the first write, which turns
        # read-then-write transactions into "database is locked" errors; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Durable through a power cut (DESIGN.md): every commit is fsynced.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    writers = WriterQueue(lock_path, timeout_s=max(busy_timeout_ms / 1000, 0.001))
    _QUEUES[engine] = writers
    event.listen(engine, "engine_disposed", lambda _engine: writers.close())

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A write request takes the write lock up front: upgrading a read snapshot later fails at once
        # ("database is locked") when another writer committed in between, whatever the busy timeout.
        if HOLDING_WRITER_QUEUE.get():
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        if not connection.get_execution_options().get(WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN")
            return
        writers.acquire()
        connection.info[_WRITER_LOCK] = writers
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            del connection.info[_WRITER_LOCK]
            writers.release()
            raise

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # The session hands its connection back once the transaction has committed or rolled back.
        lock = record.info.pop(_WRITER_LOCK, None) if record is not None else None
        if lock is not None:
            lock.release()


def release_writer_queue(connection: sa.Connection) -> None:
    """Give the writer queue back now, after the connection's write transaction ended, instead of when the
    connection goes back to the pool: for work that keeps the connection a while longer without writing (the
    compaction's cleanup and checkpoint)."""
    if connection.in_transaction():
        raise RuntimeError("release_writer_queue() inside a transaction: its writes would not hold the queue")
    lock = connection.info.pop(_WRITER_LOCK, None)
    if lock is not None:
        lock.release()


def begin_writes(session: Session) -> None:
    """Where a read-then-write request starts writing: its reads and checks are done, its writes follow.

    In a request to an endpoint marked `deps.writes_late`, on SQLite, the read snapshot ends (what was read stays
    in hand: sessions do not expire on commit) and a transaction holding the writer queue begins, waiting in this
    thread for it; the queue is given back when the transaction ends. So a busy submission holds the queue for its
    writes and commit only, and the app's other processes write while it validates and locates
    (bench/reports_submit.py). Anything read before may be a moment old: read what must be exact (a count that
    enforces a limit) after this. Everywhere else (PostgreSQL, a session that already writes, a script) it does
    nothing."""
    if not session.info.pop(LATE_WRITES, False):
        return
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("begin_writes() after a write: the writes would not hold SQLite's writer queue")
    session.commit()
    try:
        session.connection(execution_options={WRITE_OPTION: True})
    except (sqlite3.OperationalError, sa.exc.OperationalError) as error:
        if "locked" not in str(error):
            raise
        raise Busy(_("The server is busy. Please try again in a moment."), headers={"Retry-After": "5"}) from None


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; sessions never expire objects on commit so that responses can read them."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def w3c_text(column: Any, *, dialect: str, offset: timedelta) -> sa.ColumnElement[str]:
    """`column` (a `UTCDateTime`) as W3C date-time text at a fixed UTC offset, e.g. 2026-03-02T09:15:00+07:00,
    formatted by the database: for long lists, where converting and formatting each value in Python costs more
    than the query (bench/open311_list.py). Indonesia's zones keep one offset all year."""
    minutes = int(offset.total_seconds() // 60)
    suffix = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if dialect == "sqlite":
        local = sa.func.strftime("%Y-%m-%dT%H:%M:%S", column, f"{minutes:+d} minutes", type_=sa.String)
    else:
        # timezone(interval, timestamptz) counts the interval east of UTC (ISO), unlike a '+07' zone name (POSIX).
        shifted = sa.func.timezone(sa.cast(sa.literal(f"{minutes} minutes"), sa.Interval), column)
        local = sa.func.to_char(shifted, 'YYYY-MM-DD"T"HH24:MI:SS', type_=sa.String)
    return local.concat(suffix)


ModelT = TypeVar("ModelT", bound=Base)


@functools.cache
def _insert_statement(table: sa.Table) -> sa.Insert:
    # One statement object per table: SQLAlchemy memoizes its cache key on the object, so it is not rebuilt.
    return table.insert()


def insert_row(session: Session, model: type[ModelT], **values: Any) -> ModelT:
    """Insert one row with a plain INSERT in the session's transaction and return it as a persistent object.

    For hot paths: the unit of work's flush costs about a millisecond per object, the INSERT a tenth of that
    (bench/reports_submit.py). Python-side column defaults are applied here, so every attribute of the object is
    loaded and reading it never queries. Nothing pending in the session is flushed first: rows this one refers to
    must be in the database already."""
    table = model.__table__
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.primary_key and column.autoincrement:
            continue
        elif column.default is not None and column.default.is_scalar:
            row[column.key] = column.default.arg
        elif column.default is not None and column.default.is_callable:
            row[column.key] = column.default.arg(None)
        else:
            row[column.key] = None
    result = session.connection().execute(_insert_statement(table), row)
    for column, key in zip(table.primary_key.columns, result.inserted_primary_key, strict=True):
        row[column.key] = key
    # Filled in as a load fills it (the state's dict, no attribute events): the declarative constructor's
    # instrumented setters cost more than the INSERT itself.
    # class_mapper, not inspect: it configures the mappers first when nothing has yet (a worker whose first act is
    # this insert), else make_transient_to_detached finds no attribute implementations.
    instance = sa.orm.class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(row)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def check_database(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
