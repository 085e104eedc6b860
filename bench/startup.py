"""Startup: from `kotacerdas serve` to the first 200 on /readyz, and the idle memory of the server process.

Same-run baselines: the time Python needs to import FastAPI, SQLAlchemy and uvicorn and exit (the floor of any
FastAPI app start), and a minimal ASGI app under uvicorn from start to its first 200. The data folder is migrated
and demo-seeded before timing; `serve` is timed both as shipped (it checks the migrations first) and with
`--no-migrate`, so the cost of the up-to-date migration check is visible. Where the time goes is measured apart, in
one process that takes the steps of `serve` one by one (`phases`), and with the list of heavy packages that are
loaded by then (`loaded_after_create_app`): shapely and numpy should only come with the first geometry.

`serve` is timed as a user's restart costs: bytecode allowed, as an installation starts (`pip install -e .`,
then `kotacerdas serve`, writes each module's bytecode at its first start and reuses it after). One untimed warm-up
start (with its first requests) writes the bytecode of every module a start loads, to a cache in the temporary
folder (PYTHONPYCACHEPREFIX, so the checkout stays clean); every timed start, and the baselines and `phases`, then
reuse it. This checkout's CI writes no bytecode (`.ci/run` exports PYTHONDONTWRITEBYTECODE), so Python compiles
every kotacerdas module again at each of its starts; that start is kept as a secondary figure,
`serve_no_bytecode`.

The machine is shared and the start is bound by one core, so the load average before and after the run is kept
with the figures (`load_average`): compare runs of similar load.

Targets: start to ready < 2 s; idle RSS < 200 MiB.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_result
from bench.server import free_port, kotacerdas_command, stop

READY_TARGET_S = 2.0
RSS_TARGET_MIB = 200.0
POLL_INTERVAL_S = 0.01
# The idle RSS is read this long after ready (and at least 0.5 s after the warm-up requests): past the background
# work that `serve` starts after a delay (kotacerdas.app: the preloads 1 s, the worker's first pass 2 s after).
IDLE_AFTER_READY_S = 3.0
START_TIMEOUT_S = 60.0
# Requests made before measuring idle memory: the pages, the API document and the probes, as a visitor would.
WARMUP_PATHS = ("/", "/healthz", "/readyz", "/metrics", "/api/openapi.json", "/masuk", "/?lang=en", "/nope")

BARE_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

# The steps of `kotacerdas serve` up to uvicorn.run, timed one by one in a fresh process (as serve: no cycle
# collection until the app is built).
PHASES = """
import gc, json, os, sys, time
started = time.perf_counter()
from kotacerdas import cli
imported_cli = time.perf_counter()
gc.disable()
settings = cli.settings_or_fail()
import kotacerdas.db
imported_db = time.perf_counter()
cli.upgrade(settings)
checked = time.perf_counter()
from kotacerdas.app import create_app
imported_app = time.perf_counter()
create_app(settings)
built = time.perf_counter()
heavy = ("shapely", "numpy", "alembic", "babel", "jinja2", "argon2", "rich", "typer")
print(json.dumps({
    "import_cli_s": imported_cli - started,
    "import_db_s": imported_db - imported_cli,
    "migration_check_s": checked - imported_db,
    "import_app_s": imported_app - checked,
    "create_app_s": built - imported_app,
    "loaded": [name for name in heavy if name in sys.modules],
}), flush=True)
os._exit(0)  # a server does not exit at start-up: leave the interpreter's clean-up out of the total
"""
PHASE_NAMES = (
    "interpreter_start_s",
    "import_cli_s",
    "import_db_s",
    "migration_check_s",
    "import_app_s",
    "create_app_s",
)


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                # The command name may contain spaces; the parent id is the 2nd field after the closing ")".
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _tree_rss_mib(pid: int) -> float:
    return round(sum(_rss_kib(p) for p in [pid, *_descendants(pid)]) / 1024, 1)


def _measure_server(command: list[str], *, env: dict[str, str], port: int, ready_path: str, log: Path) -> dict:
    """Start `command`, poll `ready_path` every 10 ms until 200, warm up, wait for the delayed background work, read
    the idle RSS, stop it."""
    with log.open("wb") as log_handle:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log_handle, stderr=subprocess.STDOUT)
        try:
            while True:
                elapsed = time.perf_counter() - started
                if process.poll() is not None:
                    output = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}: {output}")
                if elapsed > START_TIMEOUT_S:
                    raise RuntimeError(f"{' '.join(command)} not ready after {START_TIMEOUT_S} s")
                try:
                    if _get(port, ready_path, timeout=1.0) == 200:
                        ready_s = time.perf_counter() - started
                        break
                except OSError:
                    pass
                time.sleep(POLL_INTERVAL_S)
            for _round in range(3):
                for path in WARMUP_PATHS:
                    _get(port, path, timeout=30.0)  # not timed; the first page may wait for the preloads
            time.sleep(max(0.5, started + ready_s + IDLE_AFTER_READY_S - time.perf_counter()))
            rss = _tree_rss_mib(process.pid)
        finally:
            stop(process, timeout=10)
    return {"ready_s": ready_s, "rss_mib": rss}


def _phases(env: dict[str, str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PHASES], env=env, check=True, capture_output=True, text=True)
    total = time.perf_counter() - started
    phases = json.loads(done.stdout)
    # The rest of the process's life: the interpreter's start before the first line.
    phases["interpreter_start_s"] = total - sum(phases[name] for name in PHASE_NAMES[1:])
    return phases


def _import_floor(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import fastapi, sqlalchemy, uvicorn"], env=env, check=True)
    return time.perf_counter() - started


def _load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages of the machine."""
    with open("/proc/loadavg") as handle:
        return [float(value) for value in handle.read().split()[:3]]


def _median(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


def run(quick: bool) -> bool:
    runs = 3 if quick else 5
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="kc-bench-startup-") as tmp:
        tmp_path = Path(tmp)
        base_env = {key: value for key, value in os.environ.items() if not key.startswith("KOTACERDAS_")}
        base_env["KOTACERDAS_DATA_DIR"] = str(tmp_path / "data")
        # A user's start: bytecode written once and reused, here to a cache in the temporary folder.
        env = {key: value for key, value in base_env.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
        # This checkout's CI start (.ci/run): no bytecode written, every kotacerdas module compiled at each start.
        no_bytecode_env = {**base_env, "PYTHONDONTWRITEBYTECODE": "1"}
        kotacerdas = kotacerdas_command()

        print("seeding the demo (not timed)…", file=sys.stderr)
        seeded = subprocess.run(
            [*kotacerdas, "demo", "--no-serve"], env=env, cwd=Path.cwd(), capture_output=True, text=True
        )
        if seeded.returncode != 0:
            raise RuntimeError(f"kotacerdas demo --no-serve failed: {seeded.stderr[-2000:]}")
        (tmp_path / "bare_asgi.py").write_text(BARE_APP)
        # The warm-up start (untimed): writes the bytecode of every module a start and its first requests load.
        port = free_port()
        _measure_server(
            [*kotacerdas, "serve", "--port", str(port)],
            env=env,
            port=port,
            ready_path="/readyz",
            log=tmp_path / "warmup.log",
        )

        samples: dict[str, list[dict]] = {
            "serve": [],
            "serve_no_migrate": [],
            "serve_no_bytecode": [],
            "bare_uvicorn": [],
        }
        floor: list[float] = []
        phases: list[dict] = []
        for index in range(runs):
            floor.append(_import_floor(env))
            phases.append(_phases(env))
            port = free_port()
            samples["bare_uvicorn"].append(
                _measure_server(
                    [sys.executable, "-m", "uvicorn", "bare_asgi:app", "--app-dir", tmp, "--port", str(port)]
                    + ["--log-level", "warning"],
                    env=env,
                    port=port,
                    ready_path="/",
                    log=tmp_path / "bare.log",
                )
            )
            for name, extra, name_env in (
                ("serve", [], env),
                ("serve_no_migrate", ["--no-migrate"], env),
                ("serve_no_bytecode", [], no_bytecode_env),
            ):
                port = free_port()
                samples[name].append(
                    _measure_server(
                        [*kotacerdas, "serve", "--port", str(port), *extra],
                        env=name_env,
                        port=port,
                        ready_path="/readyz",
                        log=tmp_path / f"{name}.log",
                    )
                )
            print(
                f"run {index + 1}/{runs}: serve {samples['serve'][-1]['ready_s']:.3f} s, "
                f"--no-migrate {samples['serve_no_migrate'][-1]['ready_s']:.3f} s, "
                f"no bytecode {samples['serve_no_bytecode'][-1]['ready_s']:.3f} s, "
                f"bare uvicorn {samples['bare_uvicorn'][-1]['ready_s']:.3f} s, import floor {floor[-1]:.3f} s",
                file=sys.stderr,
            )

    def summary(name: str) -> dict:
        return {
            "start_to_ready_s": _median([s["ready_s"] for s in samples[name]]),
            "idle_rss_mib": _median([s["rss_mib"] for s in samples[name]], 1),
            "samples_s": [round(s["ready_s"], 3) for s in samples[name]],
            "samples_rss_mib": [s["rss_mib"] for s in samples[name]],
        }

    serve = summary("serve")
    no_migrate = summary("serve_no_migrate")
    figures = {
        "quick": quick,
        "runs": runs,
        "database": "SQLite (WAL), demo-seeded and migrated before timing",
        "bytecode": "written by one untimed warm-up start and reused (a user's restart); serve_no_bytecode: none "
        "written, every module compiled at each start (PYTHONDONTWRITEBYTECODE, as this checkout's CI)",
        "ready_probe": "GET /readyz every 10 ms until 200",
        "load_average": {"before": load_before, "after": _load_average()},
        "serve": serve,
        "serve_no_migrate": no_migrate,
        "serve_no_bytecode": summary("serve_no_bytecode"),
        "migration_check_s": round(serve["start_to_ready_s"] - no_migrate["start_to_ready_s"], 3),
        "phases": {
            "note": "the steps of serve up to uvicorn.run in one process, medians; import_db_s is SQLAlchemy",
            **{name: _median([p[name] for p in phases]) for name in PHASE_NAMES},
            "loaded_after_create_app": phases[-1]["loaded"],
        },
        "baselines": {
            "import_fastapi_sqlalchemy_uvicorn_s": _median(floor),
            "import_samples_s": [round(value, 3) for value in floor],
            "bare_uvicorn_asgi": summary("bare_uvicorn"),
        },
    }
    passed = serve["start_to_ready_s"] < READY_TARGET_S and serve["idle_rss_mib"] < RSS_TARGET_MIB
    write_result(
        "startup",
        figures,
        targets={"start_to_ready_s": f"< {READY_TARGET_S}", "idle_rss_mib": f"< {RSS_TARGET_MIB:.0f}"},
        passed=passed,
    )
    return passed
