"""The SQLite writer queue: every kotacerdas process on one database file queues its writers on a file lock next to
the database, so that several worker processes share the file without SQLite's polling busy handler."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from kotacerdas.config import Settings
from kotacerdas.db import make_engine, release_writer_queue


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A bare SQLite file of its own: these tests make their own table, whatever backend the run is for."""
    return Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'queue.db'}", secret_key="t" * 40)


def _writer_lock_taken(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _lock_file(settings: Settings) -> Path:
    return Path(f"{sa.engine.make_url(settings.sqlalchemy_url).database}-writer.lock")


def _write_connection(engine):
    return engine.connect().execution_options(kotacerdas_write=True)


def test_a_write_transaction_holds_the_file_lock_until_it_ends(settings):
    engine = make_engine(settings)
    lock_file = _lock_file(settings)
    try:
        with _write_connection(engine) as connection:
            connection.begin()
            connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            assert _writer_lock_taken(lock_file)
            connection.commit()
        assert not _writer_lock_taken(lock_file)
        with engine.connect() as reader:
            reader.exec_driver_sql("SELECT 1")
            assert not _writer_lock_taken(lock_file)  # readers do not queue
    finally:
        engine.dispose()


def test_writers_of_two_engines_wait_for_each_other(settings):
    """Two engines stand for two processes (a file lock belongs to an open file, not to a process). One holds a
    write transaction for a while; the other's writer waits and then writes, and nothing is lost."""
    first, second = make_engine(settings), make_engine(settings)
    try:
        with first.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        holding, done = threading.Event(), []

        def hold() -> None:
            with _write_connection(first) as connection:
                connection.begin()
                connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                holding.set()
                threading.Event().wait(0.3)
                connection.commit()
                done.append("first")

        def write(engine, n: int) -> None:
            with _write_connection(engine) as connection:
                connection.begin()
                connection.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
                connection.commit()

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(5)
        write(second, 2)
        done.append("second")
        holder.join()
        assert done == ["first", "second"]
        engines = (first, second)
        threads = [threading.Thread(target=write, args=(engine, 10 + i)) for i in range(8) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with second.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 18
    finally:
        first.dispose()
        second.dispose()


def test_release_writer_queue_gives_the_queue_back_before_the_connection_is(settings):
    """The compaction gives the queue back after its copy commits and keeps its connection for the checkpoint: the
    file lock is free at once, a second release does nothing, and the connection's return to the pool neither
    releases twice nor fails. Inside a transaction it refuses (the writes would not hold the queue)."""
    engine = make_engine(settings)
    try:
        with _write_connection(engine) as connection:
            connection.begin()
            connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            with pytest.raises(RuntimeError):
                release_writer_queue(connection)
            connection.commit()
            lock_file = _lock_file(settings)
            assert _writer_lock_taken(lock_file)  # held until given back
            release_writer_queue(connection)
            assert not _writer_lock_taken(lock_file)
            release_writer_queue(connection)
            with _write_connection(engine) as other, other.begin():  # another writer gets in meanwhile
                other.exec_driver_sql("INSERT INTO t VALUES (1)")
            # As the compaction does, on the driver connection: no transaction begins (it would queue again).
            connection.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        with _write_connection(engine) as connection, connection.begin():
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            assert _writer_lock_taken(lock_file)
        assert not _writer_lock_taken(lock_file)
        with engine.connect() as reader:
            assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    finally:
        engine.dispose()
