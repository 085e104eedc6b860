"""The background work `serve` starts after a delay (kotacerdas.app): the worker's first pass and the map and
indicator preloads run, but only once the delay has passed, so that the server's first requests do not compete
with them; a stop within the delay starts nothing."""

from __future__ import annotations

import gc
import threading
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from kotacerdas import app as app_module
from kotacerdas import worker
from kotacerdas.app import create_app
from kotacerdas.assets import indicators as asset_indicators
from kotacerdas.assets import mapindex as asset_mapindex
from kotacerdas.db import make_sessionmaker
from kotacerdas.reports import mapindex as report_mapindex
from kotacerdas.worker import Job, start_worker_thread

TIMEOUT_S = 30.0
DELAY_S = 0.3  # of the worker threads started here; the app's tests use the app's own delays
# A timed wait may end a clock tick before its timeout: the lower bounds below allow that much.
EARLY_S = 0.01


def wait_for(condition, timeout: float = TIMEOUT_S) -> float:
    """Poll `condition` every 10 ms until it holds; the monotonic time it was seen to hold. Fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)
    return time.monotonic()


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def probe_job(passes: list[float]) -> Job:
    def record(session_factory, settings, now: datetime) -> None:
        passes.append(time.monotonic())

    return Job("test.probe", 0, record)


def test_the_worker_thread_waits_its_first_pass_delay(settings, engine):
    passes: list[float] = []
    fast = settings.model_copy(update={"worker_interval_seconds": 1})
    started = time.monotonic()
    thread, stop = start_worker_thread(
        fast, session_factory=make_sessionmaker(engine), first_pass_delay_s=DELAY_S, jobs=[probe_job(passes)]
    )
    try:
        wait_for(lambda: len(passes) >= 2)  # the first pass, then the next tick: the loop goes on as before
    finally:
        stop.set()
        thread.join(timeout=TIMEOUT_S)
    assert not thread.is_alive()
    assert passes[0] - started >= DELAY_S - EARLY_S


def test_a_worker_stopped_within_its_delay_runs_no_job(settings, engine):
    passes: list[float] = []
    thread, stop = start_worker_thread(
        settings, session_factory=make_sessionmaker(engine), first_pass_delay_s=60, jobs=[probe_job(passes)]
    )
    stop.set()
    thread.join(timeout=TIMEOUT_S)
    assert not thread.is_alive()
    assert passes == []


def test_serve_runs_the_worker_first_pass_after_its_delay(settings, monkeypatch):
    passes: list[float] = []
    monkeypatch.setattr(worker, "PERIODIC_JOBS", [probe_job(passes)])
    in_app = settings.model_copy(update={"worker_in_app": True})
    delay = app_module.WORKER_FIRST_PASS_DELAY_S
    app = create_app(in_app)

    started = time.monotonic()
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        so_far = list(passes)
        if time.monotonic() - started < delay - EARLY_S:
            assert so_far == []  # the server answers before the worker's first pass
        assert len(threads_named("kotacerdas-worker")) == 1
        wait_for(lambda: passes)

    assert passes[0] - started >= delay - EARLY_S
    assert threads_named("kotacerdas-worker") == []


@pytest.fixture
def unfreeze():
    # The asset map's preload freezes the heap (assets.mapindex.settle_heap); give the test process its own back.
    yield
    gc.unfreeze()


def test_serve_preloads_the_maps_and_figures_after_its_delay(settings, unfreeze):
    preloading = settings.model_copy(update={"map_index_preload": True})
    delay = app_module.PRELOAD_DELAY_S
    app = create_app(preloading)
    engine = app.state.engine

    def loaded() -> dict[str, bool]:
        with app.state.sessionmaker() as session:
            return {
                "report map": report_mapindex.index_stats(session)["loaded"],
                "asset map": asset_mapindex.index_stats(session)["loaded"],
                "infrastructure figures": asset_indicators._CACHE.get(engine) is not None,
            }

    started = time.monotonic()
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        so_far = loaded()
        if time.monotonic() - started < delay - EARLY_S:
            assert not any(so_far.values())  # the server answers before the preloads start
        seen = wait_for(lambda: all(loaded().values()))

    assert seen - started >= delay - EARLY_S


def test_a_stop_within_the_preload_delay_preloads_nothing(settings, monkeypatch):
    monkeypatch.setattr(app_module, "PRELOAD_DELAY_S", 60)
    preloading = settings.model_copy(update={"map_index_preload": True})
    app = create_app(preloading)

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert len(threads_named("kotacerdas-preload")) == 1

    wait_for(lambda: threads_named("kotacerdas-preload") == [])
    with app.state.sessionmaker() as session:
        assert report_mapindex.index_stats(session) == {"loaded": False}
        assert asset_mapindex.index_stats(session) == {"loaded": False}
    assert asset_indicators._CACHE.get(app.state.engine) is None
