"""Fuzz the whole OpenAPI document of a live server with schemathesis.

Seeds the Musi Rawas demo into a temporary SQLite data folder, gives the demo admin an API token, starts
`kotacerdas serve` on a free loopback port and runs `st run` against /api/openapi.json with the token, so that
authenticated operations are exercised too. Fails on any 5xx, an undeclared status code, a wrong content type
or a body that does not match the schema.

    python .ci/fuzz.py [--max-examples N] [extra `st run` options…]

The schemathesis seed is printed; pass `--seed N` to repeat a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

# The server helpers are shared with the benchmarks (bench/server.py); this script runs from .ci/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.server import free_port, kotacerdas_command, stop, wait_ready  # noqa: E402

# Operations that can take the fuzzer's own credential away (revoke its token, deactivate or demote its user).
CREDENTIAL_BREAKERS = (("delete", "/api/v1/tokens/{token_id}"), ("patch", "/api/v1/users/{user_id}"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
START_TIMEOUT_S = 60.0


def create_admin_token(env: dict[str, str]) -> str:
    """An API token for the demo admin, made through the accounts service (the same path as the API)."""
    snippet = (
        "from kotacerdas.accounts import service as accounts\n"
        "from kotacerdas.config import load_settings\n"
        "from kotacerdas.db import make_engine, make_sessionmaker\n"
        "settings = load_settings()\n"
        "engine = make_engine(settings)\n"
        "with make_sessionmaker(engine)() as session:\n"
        "    user = accounts.get_user_by_username(session, username='admin')\n"
        "    _token, plain = accounts.create_api_token(\n"
        "        session, actor=accounts.Actor.system('ci-fuzz'), user_id=user.id, name='schemathesis')\n"
        "    session.commit()\n"
        "engine.dispose()\n"
        "print(plain)\n"
    )
    result = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"fuzz: could not create the API token:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def operation_ids(base: str) -> dict[tuple[str, str], str]:
    """(method, path) → operationId of the live OpenAPI document."""
    with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=30) as response:
        document = json.load(response)
    return {
        (method.lower(), path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def schemathesis(
    base: str, token: str, *, max_examples: int, cwd: str, env: dict, filters: list[str], extra: list[str]
):
    command = [
        "st",
        "run",
        f"{base}/api/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        # One worker: with several threads CPython 3.11's ast.parse (used by hypothesis) can fail with
        # "AST constructor recursion depth mismatch", an error of the tool rather than of the API.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        *filters,
        *extra,
    ]
    shown = ["Authorization: Bearer kc_…" if part.startswith("Authorization:") else part for part in command]
    print("fuzz:", " ".join(shown), flush=True)
    return subprocess.run(command, env=env, cwd=cwd, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("KOTACERDAS_FUZZ_EXAMPLES", "40")))
    args, extra = parser.parse_known_args()

    with tempfile.TemporaryDirectory(prefix="kc-fuzz-") as tmp:
        tmp_path = Path(tmp)
        env = {key: value for key, value in os.environ.items() if not key.startswith("KOTACERDAS_")}
        env.update(KOTACERDAS_DATA_DIR=str(tmp_path / "data"), PYTHONDONTWRITEBYTECODE="1")
        kotacerdas = kotacerdas_command()

        print("fuzz: seeding the demo into", tmp_path / "data", flush=True)
        subprocess.run([*kotacerdas, "demo", "--no-serve"], env=env, check=True, stdout=subprocess.DEVNULL)

        port = free_port()
        log = tmp_path / "server.log"
        with log.open("wb") as log_handle:
            server = subprocess.Popen(
                [*kotacerdas, "serve", "--port", str(port), "--no-migrate"],
                env=env,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
            )
        codes = []
        try:
            try:
                wait_ready(server, port, log=log, timeout=START_TIMEOUT_S)
            except RuntimeError as exc:
                sys.exit(f"fuzz: {exc}")
            base = f"http://127.0.0.1:{port}"
            ids = operation_ids(base)
            breakers = [ids[key] for key in CREDENTIAL_BREAKERS if key in ids]
            # First everything that leaves the fuzzer's token working, then each operation that may revoke the
            # token or deactivate its user, alone and with a fresh token, so that no pass runs unauthenticated.
            passes = [[f"--exclude-operation-id={operation}" for operation in breakers]]
            passes += [[f"--include-operation-id={operation}"] for operation in breakers]
            for filters in passes:
                token = create_admin_token(env)
                codes.append(
                    schemathesis(
                        base, token, max_examples=args.max_examples, cwd=tmp, env=env, filters=filters, extra=extra
                    )
                )
        finally:
            stop(server, timeout=15)
        code = next((code for code in codes if code != 0), 0)
        server_log = log.read_text(errors="replace")
        if code != 0 or "Traceback" in server_log:
            kept = Path(tempfile.mkstemp(prefix="kotacerdas-fuzz-server-", suffix=".log")[1])
            kept.write_text(server_log)
            # The server's own tracebacks say where a 5xx came from; the access log is in the kept file.
            print(f"fuzz: server log without access lines (full log: {kept}):")
            print("\n".join(line for line in server_log.splitlines() if not line.startswith("INFO:")))
    print(f"fuzz: {'passed' if code == 0 else 'FAILED'} ({len(codes)} schemathesis passes)")
    return code


if __name__ == "__main__":
    sys.exit(main())
