"""What every benchmark shares: machine facts, latency percentiles, peak memory, the results file."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "musi-rawas"


def machine() -> dict[str, Any]:
    """Facts about the machine the figures were measured on."""
    try:
        with open("/proc/meminfo") as handle:
            mem_kib = int(handle.readline().split()[1])
    except OSError:
        mem_kib = 0
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "python_speed_ms": python_speed_ms(),
    }


def python_speed_ms() -> float:
    """Milliseconds of one core for a fixed piece of pure-Python work (dicts, strings, datetimes), best of five.

    The same code has measured 2-3 times slower here on some days than on others (a shared virtual machine):
    this figure, recorded with every result, says which kind of day a result comes from."""
    from datetime import UTC, datetime, timedelta

    def work() -> None:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        rows = {}
        for i in range(20_000):
            moment = start + timedelta(minutes=i)
            rows[f"MR-2026-{i:06d}"] = {"at": moment.isoformat(timespec="seconds"), "n": i * 3 % 7}
        sorted(rows.values(), key=lambda row: row["n"])

    best = float("inf")
    for _round in range(5):
        began = time.process_time()
        work()
        best = min(best, time.process_time() - began)
    return round(best * 1000, 1)


def percentiles(samples_seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of latency samples, in milliseconds."""
    if not samples_seconds:
        return {}
    ordered = sorted(samples_seconds)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {
        "p50_ms": round(cuts[49] * 1000, 4),
        "p95_ms": round(cuts[94] * 1000, 4),
        "p99_ms": round(cuts[98] * 1000, 4),
        "max_ms": round(ordered[-1] * 1000, 4),
        "count": len(ordered),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name: str, figures: dict[str, Any], *, targets: dict[str, Any], passed: bool) -> Path:
    """Write bench/results/NAME.json with the machine, the figures, the targets and whether they were met."""
    # CI's quick smoke runs write elsewhere so that they never overwrite the committed full-run figures.
    results_dir = Path(os.environ.get("KOTACERDAS_BENCH_RESULTS_DIR") or RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "machine": machine(),
        "targets": targets,
        "targets_met": passed,
        "peak_rss_mib": peak_rss_mib(),
        **figures,
    }
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(document, indent=2, ensure_ascii=False), file=sys.stdout)
    return path


def wait_for_preloads(timeout: float = 120.0) -> None:
    """Wait until an in-process app's start-up preloads are done (the map indexes, the asset figures): they start in
    a timer thread a second after the app's start-up (`app.PRELOAD_DELAY_S`), then in threads of their own."""
    import threading

    for thread in [t for t in threading.enumerate() if t.name == "kotacerdas-preload"]:
        thread.join(timeout=timeout)
    preloads = ("kotacerdas-asset-indicators", "kotacerdas-asset-map-index", "kotacerdas-map-index")
    for thread in [t for t in threading.enumerate() if t.name in preloads]:
        thread.join(timeout=timeout)
