"""The worker: periodic jobs that never stop the loop when one fails, the CLI command and the in-app thread."""

from __future__ import annotations

import os
import threading
import time

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TEST_ACTOR, stored
from kotacerdas import worker
from kotacerdas.app import create_app
from kotacerdas.cli import app as cli_app
from kotacerdas.notifications import service as notifications
from kotacerdas.notifications.models import OutboxMessage


def test_a_failing_job_does_not_stop_the_others(session_factory, settings):
    ran = []

    def boom(session_factory, settings, now):
        raise RuntimeError("database on fire")

    jobs = [
        worker.Job("boom", 0, boom),
        worker.Job("after", 0, lambda session_factory, settings, now: ran.append(now)),
    ]

    outcome = worker.run_jobs(session_factory, settings, jobs=jobs)

    assert outcome == {"boom": "RuntimeError", "after": "ok"}
    assert len(ran) == 1


def test_the_loop_survives_a_job_that_raises_every_time_until_it_is_stopped(session_factory, settings):
    fast = settings.model_copy(update={"worker_interval_seconds": 1})
    ticks = []
    stop = threading.Event()

    def boom(session_factory, settings, now):
        raise ValueError("always")

    def count(session_factory, settings, now):
        ticks.append(now)
        if len(ticks) == 2:
            stop.set()

    jobs = [worker.Job("boom", 0, boom), worker.Job("count", 0, count)]
    thread = threading.Thread(
        target=worker.run_worker,
        args=(fast,),
        kwargs={"stop_event": stop, "session_factory": session_factory, "jobs": jobs},
    )
    thread.start()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert len(ticks) == 2


def test_a_job_runs_no_more_often_than_its_interval(session_factory, settings):
    runs = []
    jobs = [worker.Job("hourly", 3600, lambda *args: runs.append(1))]
    last_run: dict[str, float] = {}

    first = worker.run_jobs(session_factory, settings, jobs=jobs, last_run=last_run)
    second = worker.run_jobs(session_factory, settings, jobs=jobs, last_run=last_run)

    assert (first, second, len(runs)) == ({"hourly": "ok"}, {"hourly": "skipped"}, 1)


def test_the_outbox_is_one_of_the_periodic_jobs():
    assert "notifications.deliver_outbox" in {job.name for job in worker.PERIODIC_JOBS}


def test_run_worker_once_delivers_the_outbox(session, mail_settings, mail_server):
    notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=mail_settings)
    session.commit()

    worker.run_worker(mail_settings, once=True)

    assert len(mail_server.messages) == 1
    assert stored(session, sa.select(OutboxMessage.status)) == "sent"


def test_the_worker_command_once(session, mail_settings, mail_server):
    notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=mail_settings)
    session.commit()
    clean = {name: None for name in os.environ if name.startswith("KOTACERDAS_")}
    env = {
        **clean,
        "KOTACERDAS_DATA_DIR": str(mail_settings.data_dir),
        "KOTACERDAS_DATABASE_URL": mail_settings.database_url,
        "KOTACERDAS_SMTP_HOST": "127.0.0.1",
        "KOTACERDAS_SMTP_PORT": str(mail_settings.smtp_port),
        "KOTACERDAS_WORKER_IN_APP": "false",
    }

    result = CliRunner().invoke(cli_app, ["worker", "--once"], env=env, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert len(mail_server.messages) == 1


def worker_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "kotacerdas-worker"]


def test_the_app_runs_the_worker_thread_while_it_serves(session, mail_settings, mail_server):
    in_app = mail_settings.model_copy(update={"worker_in_app": True, "worker_interval_seconds": 1})
    notifications.queue_test_email(session, actor=TEST_ACTOR, to="warga@example.id", settings=in_app)
    session.commit()

    with TestClient(create_app(in_app)):
        assert len(worker_threads()) == 1
        deadline = time.monotonic() + 10
        while not mail_server.messages and time.monotonic() < deadline:
            time.sleep(0.05)

    assert len(mail_server.messages) == 1
    assert worker_threads() == []


def test_no_worker_thread_when_it_runs_apart(settings):
    assert settings.worker_in_app is False
    with TestClient(create_app(settings)):
        assert worker_threads() == []
