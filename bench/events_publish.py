"""Publishing an event until the public sees it: POST /api/v1/events → visible in the list API and the Atom feed.

A real server (`kotacerdas serve`, one process, SQLite, background worker off) on a fresh database with the Musi
Rawas regions and SEEDED warnings already published. An operator publishes PUBLISHES new warnings through the JSON
API, one at a time; for each, from the moment the POST is sent, two pollers (keep-alive connections, one for the
list, one for the feed) ask again and again until the new event is in GET /api/v1/events and in GET
/peristiwa/feed.atom (its entry's <id> ends with /peristiwa/{id}).

Same-run baseline: a plain GET of each endpoint on the same server, as many times.

Target: publish → visible p99 < 200 ms in each.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles, write_result
from bench.events_fanout import FLOOD, api, events_database
from bench.server import start_server, stop

TARGET_P99_MS = 200.0
LIST_PATH = "/api/v1/events"
ATOM_PATH = "/peristiwa/feed.atom"
POLL_TIMEOUT_S = 10.0


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def poll_until(port: int, path: str, needle: bytes, started: float, found: dict[str, float], name: str) -> None:
    """Ask for `path` until its body holds `needle`; the seconds since `started` go into found[name]."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while time.monotonic() - started < POLL_TIMEOUT_S:
            status, body = _get(connection, path)
            if status == 200 and needle in body:
                found[name] = time.monotonic() - started
                return
    finally:
        connection.close()


def plain_gets(port: int, path: str, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    try:
        for _n in range(count):
            began = time.monotonic()
            status, _body = _get(connection, path)
            if status == 200:
                samples.append(time.monotonic() - began)
    finally:
        connection.close()
    return samples


def measure(seeded: int, publishes: int, tmp: Path) -> dict[str, Any]:
    settings, token = events_database(tmp)
    process, port = start_server(settings, workers=1, log=tmp / "server.log")
    try:
        for n in range(seeded):
            body = FLOOD | {"level": "waspada", "title": f"Banjir lama {n}"}
            status, answer, _elapsed = api(port, "POST", LIST_PATH, token, body)
            if status != 201:
                raise RuntimeError(f"seeding answered {status}: {answer}")
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        atom_status, _body = _get(probe, ATOM_PATH)
        probe.close()
        if atom_status != 200:
            raise RuntimeError(f"GET {ATOM_PATH} answered {atom_status}")
        paths = {"list_api": LIST_PATH, "atom_feed": ATOM_PATH}
        visible: dict[str, list[float]] = {name: [] for name in paths}
        missed: dict[str, int] = dict.fromkeys(paths, 0)
        post_times: list[float] = []
        for n in range(publishes):
            body = FLOOD | {"level": "awas", "title": f"Banjir baru {n}"}
            started = time.monotonic()
            status, answer, elapsed = api(port, "POST", LIST_PATH, token, body)
            if status != 201:
                raise RuntimeError(f"publishing answered {status}: {answer}")
            post_times.append(elapsed)
            found: dict[str, float] = {}
            needles = {"list_api": b'"id":%d,' % answer["id"], "atom_feed": b"/peristiwa/%d<" % answer["id"]}
            pollers = [
                threading.Thread(target=poll_until, args=(port, path, needles[name], started, found, name))
                for name, path in paths.items()
            ]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join()
            for name in paths:
                if name in found:
                    visible[name].append(found[name])
                else:
                    missed[name] += 1
            time.sleep(0.2)
        baselines = {name: percentiles(plain_gets(port, path, publishes)) for name, path in paths.items()}
    finally:
        stop(process)
    figures: dict[str, Any] = {
        "seeded_events": seeded,
        "publishes": publishes,
        "post_answer": percentiles(post_times),
        "publish_to_visible": {name: percentiles(samples) for name, samples in visible.items()},
        "not_visible_within_10_s": missed,
        "baseline_plain_get": baselines,
    }
    return figures


def run(quick: bool) -> bool:
    seeded, publishes = (20, 10) if quick else (150, 100)
    with tempfile.TemporaryDirectory(prefix="kc-bench-publish-") as tmp:
        figures = measure(seeded, publishes, Path(tmp))
    passed = all(
        figures["publish_to_visible"][name].get("p99_ms", float("inf")) < TARGET_P99_MS
        and figures["not_visible_within_10_s"][name] == 0
        for name in figures["publish_to_visible"]
    )
    figures["load_average"] = os.getloadavg()
    write_result(
        "events_publish",
        figures,
        targets={"publish_to_visible_p99_ms": TARGET_P99_MS, "every_publish_visible": True},
        passed=passed,
    )
    print(json.dumps(figures["publish_to_visible"]))
    return passed
