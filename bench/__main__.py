"""Run one benchmark: `python -m bench NAME [--quick]`. Each bench/NAME.py has `run(quick: bool) -> bool`."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Modules of bench/ that are shared helpers, not benchmarks.
HELPERS = ("common", "reports_data", "assets_data", "server")


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.stem for p in here.glob("*.py") if p.stem not in ("__init__", "__main__", *HELPERS))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=available())
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run in CI")
    args = parser.parse_args()
    module = importlib.import_module(f"bench.{args.name}")
    met = module.run(quick=args.quick)
    print(f"{args.name}: targets {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
