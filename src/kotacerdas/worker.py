"""The background worker: a loop that runs the periodic jobs (outbox delivery, and what other domains add).

It runs as `kotacerdas worker` on its own, or as a daemon thread inside `kotacerdas serve` when
`KOTACERDAS_WORKER_IN_APP` is true. Several workers may run at once on PostgreSQL (each job must be safe for
that: the outbox claims rows with `FOR UPDATE SKIP LOCKED`); on SQLite run one.

A domain adds its job to `PERIODIC_JOBS`, e.g. `Job("reports.flag_breaches", 300, flag_breaches)` where
`flag_breaches(session_factory, settings, now)` opens and commits its own short transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from kotacerdas.config import Settings
from kotacerdas.db import make_engine, make_sessionmaker, utcnow

log = logging.getLogger("kotacerdas.worker")

JobFunc = Callable[[sessionmaker[Session], Settings, datetime], Any]
# Batches of outbox deliveries one tick may send before the other jobs get their turn.
OUTBOX_ROUNDS_PER_TICK = 20
OUTBOX_BATCH = 50


@dataclass(frozen=True)
class Job:
    """A periodic job: `func(session_factory, settings, now)` runs at most every `interval_seconds` (0: every
    tick of the worker)."""

    name: str
    interval_seconds: float
    func: JobFunc


def deliver_outbox(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Send what is due in the outbox, batch after batch while batches come back full; how many were sent."""
    from kotacerdas.notifications import service as notifications

    sent = 0
    for _round in range(OUTBOX_ROUNDS_PER_TICK):
        stats = notifications.deliver_due(session_factory, settings=settings, limit=OUTBOX_BATCH)
        sent += stats.sent
        if stats.claimed < OUTBOX_BATCH:
            break
    return sent


# The jobs every worker runs, in order. Extend it from your domain's wiring (the list is read on each tick).
def flag_report_breaches(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Flag and escalate citizen reports whose SLA deadline passed (once per breach)."""
    from kotacerdas.reports import tasks

    return tasks.flag_breaches(session_factory, settings, now)


def suggest_events(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Suggest events to operators where open flood-type citizen reports cluster in place and time."""
    from kotacerdas.events import clusters

    return clusters.suggest_events(session_factory, settings, now)


def compact_observations(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """SQLite: merge the observation journal once it holds `sensor_compact_rows` or every
    `sensor_compact_interval_seconds` (sensors/store.py); observations merged."""
    from kotacerdas.sensors import store

    return store.compact_if_due(session_factory.kw["bind"], settings=settings, now=now)


def maintain_observations(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Observation store upkeep: PostgreSQL month partitions ahead, Datastream time extents, raw-data retention."""
    from kotacerdas.sensors import store

    engine = session_factory.kw["bind"]
    done = store.maintain(engine, settings=settings, now=now)
    return done["partitions"] + store.apply_retention(engine, settings=settings, now=now)


def evaluate_sensor_rules(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Evaluate the sensor warning rules (raise, escalate, end flood warnings; flag silent devices); rules changed."""
    from kotacerdas.sensors import rules

    return rules.run_rules(session_factory, settings, now)


PERIODIC_JOBS: list[Job] = [
    Job("notifications.deliver_outbox", 0, deliver_outbox),
    # A missed report deadline is escalated within 5 minutes.
    Job("reports.flag_breaches", 300, flag_report_breaches),
    # Clusters of flood reports are put to the operators within 5 minutes.
    Job("events.suggest_from_reports", 300, suggest_events),
    # The observation journal is checked every 10 s (merged when big or old enough); partitions, extents and
    # retention every 5 minutes.
    Job("sensors.compact_observations", 10, compact_observations),
    Job("sensors.maintain_observations", 300, maintain_observations),
    # Sensor rules every minute: their durations are counted on the observations' times, not on this interval.
    Job("sensors.evaluate_rules", 60, evaluate_sensor_rules),
]


def run_jobs(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    jobs: list[Job] | None = None,
    last_run: dict[str, float] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Run each job that is due once, each in its own try/except; what happened to each ("ok", "skipped" or the
    error's type), so that one failing job never stops the others or the loop."""
    last_run = last_run if last_run is not None else {}
    outcome: dict[str, str] = {}
    for job in list(PERIODIC_JOBS if jobs is None else jobs):
        started = time.monotonic()
        previous = last_run.get(job.name)
        if previous is not None and started - previous < job.interval_seconds:
            outcome[job.name] = "skipped"
            continue
        last_run[job.name] = started
        try:
            job.func(session_factory, settings, now or utcnow())
        except Exception as exc:
            log.exception("worker job %s failed; the worker goes on", job.name)
            outcome[job.name] = type(exc).__name__
        else:
            outcome[job.name] = "ok"
    return outcome


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    stop_event: threading.Event | None = None,
    session_factory: sessionmaker[Session] | None = None,
    jobs: list[Job] | None = None,
    first_pass_delay_s: float = 0.0,
) -> None:
    """Run the periodic jobs every `settings.worker_interval_seconds` until `stop_event` is set (or one round when
    `once`). Uses `session_factory` when given (the app's, in-process), else its own engine. The first round waits
    `first_pass_delay_s` (inside `serve`, so that the server's start does not compete with it)."""
    stop_event = stop_event or threading.Event()
    engine = None
    if session_factory is None:
        engine = make_engine(settings)
        session_factory = make_sessionmaker(engine)
    last_run: dict[str, float] = {}
    log.info("worker started: every %s s, jobs %s", settings.worker_interval_seconds, _job_names(jobs))
    try:
        if first_pass_delay_s > 0 and stop_event.wait(first_pass_delay_s):
            return
        while True:
            try:
                run_jobs(session_factory, settings, jobs=jobs, last_run=last_run)
            except Exception:  # never reached by a job's own error; a guard against bugs in the loop itself
                log.exception("worker round failed; the worker goes on")
            if once or stop_event.wait(settings.worker_interval_seconds):
                break
    finally:
        if engine is not None:
            engine.dispose()
        log.info("worker stopped")


def _job_names(jobs: list[Job] | None) -> str:
    return ", ".join(job.name for job in (PERIODIC_JOBS if jobs is None else jobs)) or "none"


def start_worker_thread(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session],
    first_pass_delay_s: float = 0.0,
    jobs: list[Job] | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """Start the worker as a daemon thread (for the app's lifespan); its thread and the event that stops it. Its
    first round waits `first_pass_delay_s`; a stop within that wait ends it before any job runs."""
    stop_event = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(settings,),
        kwargs={
            "stop_event": stop_event,
            "session_factory": session_factory,
            "first_pass_delay_s": first_pass_delay_s,
            "jobs": jobs,
        },
        name="kotacerdas-worker",
        daemon=True,
    )
    thread.start()
    return thread, stop_event
