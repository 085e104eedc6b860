"""The `kotacerdas` command: run the portal, migrate, seed the demo, manage users and regions."""

from __future__ import annotations

import ast
import csv
import gc
import getpass
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from kotacerdas import __version__
from kotacerdas.config import Settings, SettingsError, load_settings
from kotacerdas.errors import DomainError

if TYPE_CHECKING:
    from rich.progress import Progress
    from sqlalchemy.engine import Engine

app = typer.Typer(
    help="kotacerdas: platform kota cerdas. Setiap pengaturan dibaca dari variabel lingkungan KOTACERDAS_*.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Basis data / database.", no_args_is_help=True)
user_app = typer.Typer(help="Pengguna / users.", no_args_is_help=True)
wilayah_app = typer.Typer(help="Wilayah (kecamatan, desa/kelurahan) / regions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
aset_app = typer.Typer(help="Aset (jalan, jembatan, fasilitas) / assets: import and export.", no_args_is_help=True)
app.add_typer(wilayah_app, name="wilayah")
app.add_typer(aset_app, name="aset")
sensors_app = typer.Typer(help="Sensor dan perangkat / sensors and devices.", no_args_is_help=True)
app.add_typer(sensors_app, name="sensors")

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print one clear line and stop with exit code 2."""
    err_console.print(f"[bold red]Galat / Error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def settings_or_fail(**overrides) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        fail(str(exc))


@contextmanager
def transaction(settings: Settings):
    """A session whose work is committed at the end, or rolled back (and reported in one line) on a DomainError."""
    from kotacerdas.db import make_engine, make_sessionmaker

    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            try:
                yield session
                session.commit()
            except DomainError as exc:
                session.rollback()
                _report_domain_error(exc)
    finally:
        engine.dispose()


def _report_domain_error(exc: DomainError) -> NoReturn:
    # Items that only name a field restate the message (one line is enough); items that locate something, such as
    # a feature of an imported file, get a line each.
    located = [error for error in exc.errors if set(error) - {"field", "reason", "message"}]
    for error in located[:200]:
        where = ", ".join(f"{key}={value}" for key, value in error.items() if key != "reason")
        err_console.print(f"  - {where}: {error.get('reason', '')}", highlight=False, soft_wrap=True)
    if len(located) > 200:
        err_console.print(f"  … {len(located) - 200} more", highlight=False)
    fail(exc.detail)


def progress_bar() -> Progress:
    # Only the import commands draw one: `serve` starts without loading it.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


# `revision: str = "0001"` and `down_revision: str | None = None` lines of the migration scripts.
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)


def _head_revision() -> str | None:
    """The head revision of the migration scripts, read as text; None when there is not exactly one or a script
    does not read as expected (Alembic then decides)."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for script in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        found = dict(match.groups() for match in _REVISION_LINE.finditer(script.read_text(encoding="utf-8")))
        try:
            revision, down = ast.literal_eval(found["revision"]), ast.literal_eval(found["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            return None
        downs = [down] if isinstance(down, str) else down or []
        if not isinstance(revision, str) or not all(isinstance(item, str) for item in downs):
            return None
        revisions.add(revision)
        replaced.update(downs)
    heads = revisions - replaced
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database is already at the newest migration, found without loading Alembic."""
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    head = _head_revision()
    if head is None:
        return False
    # An unreachable database raises here, once, and upgrade() reports it.
    with engine.connect() as connection:
        try:
            current = set(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))
        except SQLAlchemyError:
            return False  # never migrated: the upgrade creates the schema
    return current == {head}


def upgrade(settings: Settings) -> None:
    from sqlalchemy.exc import OperationalError

    from kotacerdas.db import make_engine

    engine = make_engine(settings)
    try:
        # Loading Alembic and its upgrade machinery costs about 0.1 s of every start; most starts have nothing
        # to migrate.
        if _at_head(engine):
            return
        from kotacerdas.migrate import upgrade_database

        upgrade_database(engine)
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())  # psycopg's message spans lines; the error is one line
        fail(f"KOTACERDAS_DATABASE_URL: database unreachable ({exc.orig.__class__.__name__}: {reason})")
    finally:
        engine.dispose()


def _version(value: bool) -> None:
    if value:
        console.print(f"kotacerdas {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """kotacerdas."""


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = settings_or_fail()
    upgrade(settings)
    console.print("Basis data mutakhir / database is up to date.")


@db_app.command("seed")
def db_seed() -> None:
    """Store the reference data: the built-in regions, the default OPD list and report categories (no accounts)."""
    from kotacerdas.accounts import service as accounts
    from kotacerdas.agencies import service as agencies
    from kotacerdas.assets import types as asset_types
    from kotacerdas.regions import service as regions
    from kotacerdas.reports import service as reports

    settings = settings_or_fail()
    upgrade(settings)
    with transaction(settings) as session:
        region_count = regions.seed_builtin_regions(session, settings=settings)
        actor = accounts.Actor.system("cli")
        agency_count = agencies.seed_default_agencies(session, settings=settings, actor=actor)
        category_count = reports.seed_default_categories(session, actor=actor)
        type_count = asset_types.seed_default_types(session, actor=actor)
    console.print(
        f"Wilayah / regions: {region_count}; OPD: {agency_count}; kategori aduan: {category_count}; "
        f"jenis aset: {type_count}"
    )


def serve_app(settings: Settings, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    if workers > 1 and settings.is_sqlite:
        console.print("[yellow]SQLite: one worker process is enough; use PostgreSQL for several.[/]")
    if workers > 1:
        _end_start_up()
        # Worker processes rebuild the app from the environment; the settings were checked above.
        uvicorn.run(
            "kotacerdas.app:create_app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            proxy_headers=True,
        )
    else:
        from kotacerdas.app import create_app

        web_app = create_app(settings)
        _end_start_up()
        uvicorn.run(web_app, host=host, port=port, log_level="info", proxy_headers=True)


def _end_start_up() -> None:
    """Collect garbage again (`serve` stops it while starting), leaving out the objects start-up built to last."""
    from kotacerdas.gcpolicy import settle_for_serving

    settle_for_serving()
    gc.enable()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (PostgreSQL only).")] = 1,
    migrate: Annotated[bool, typer.Option(help="Migrate the database before serving.")] = True,
) -> None:
    """Serve the portal and the API."""
    # Importing and building the app make some 170,000 objects that live as long as the process, and almost no
    # garbage: the cycle collector would walk them again and again, about 0.12 s of the start.
    gc.disable()
    try:
        settings = settings_or_fail()
        if migrate:
            upgrade(settings)
        serve_app(settings, host=host, port=port, workers=workers)
    finally:
        gc.enable()  # also when the start fails


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, operator, opd_admin, opd_staff or pimpinan.")] = "admin",
    full_name: Annotated[str | None, typer.Option(help="Full name (default: the username).")] = None,
    agency: Annotated[str | None, typer.Option(help="Short name of the OPD, for opd_admin and opd_staff.")] = None,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password; asked for when not given (or read from KOTACERDAS_PASSWORD).")
    ] = None,
) -> None:
    """Create a staff account."""
    from kotacerdas.accounts import service as accounts
    from kotacerdas.agencies import service as agencies

    settings = settings_or_fail()
    password = password or os.environ.get("KOTACERDAS_PASSWORD")
    if password is None:
        password = getpass.getpass("Kata sandi / password: ")
        if getpass.getpass("Ulangi / repeat: ") != password:
            fail("the two passwords differ")
    upgrade(settings)
    with transaction(settings) as session:
        agency_id = agencies.get_agency_by_short_name(session, short_name=agency).id if agency else None
        user = accounts.create_user(
            session,
            actor=accounts.Actor.system("cli"),
            username=username,
            full_name=full_name or username,
            password=password,
            role=role,
            agency_id=agency_id,
            email=email,
        )
        console.print(f"Pengguna dibuat / user created: {user.username} ({user.role})")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run every job one time and exit (for cron or a check).")
    ] = False,
) -> None:
    """Run the background worker: deliver the outbox (email, webhooks) and the other periodic jobs."""
    import logging
    import signal
    import threading

    from kotacerdas.worker import run_worker

    settings = settings_or_fail()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upgrade(settings)
    stop_event = threading.Event()
    # SIGTERM (systemd, docker stop) and Ctrl-C end the loop after the job in progress.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop_event.set())
    if settings.worker_in_app:
        console.print(
            "[yellow]KOTACERDAS_WORKER_IN_APP is true: `serve` runs a worker too. That is safe on PostgreSQL; "
            "on SQLite set it to false when this worker runs.[/]"
        )
    run_worker(settings, once=once, stop_event=stop_event)


@app.command()
def ingest(
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (default KOTACERDAS_MQTT_CLIENT_ID); one per worker.")
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT (0: off).")
    ] = 0,
    write_acl: Annotated[
        Path | None, typer.Option(help="Write the Mosquitto ACL file of the devices' keys to this path and exit.")
    ] = None,
    retire: Annotated[
        bool,
        typer.Option(
            "--retire", help="Leave the shared group for good: unsubscribe, store what is queued, end the session."
        ),
    ] = False,
) -> None:
    """Store the observations devices publish over MQTT (QoS 1, acknowledged after commit; docs/mqtt.md)."""
    import logging
    import signal
    import threading

    from kotacerdas.middleware import Metrics
    from kotacerdas.sensors.ingest import run_ingest

    settings = settings_or_fail()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upgrade(settings)
    if write_acl is not None:
        from kotacerdas.sensors.devices import mosquitto_acl

        with transaction(settings) as session:
            write_acl.write_text(mosquitto_acl(session), encoding="utf-8")
        console.print(f"ACL Mosquitto ditulis / written: {write_acl}")
        return
    stop_event = threading.Event()
    # SIGTERM and Ctrl-C end the loop after the batch in progress (committed and acknowledged).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop_event.set())
    metrics = Metrics()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    if settings.ingest_in_app:
        console.print("[yellow]KOTACERDAS_INGEST_IN_APP is true: `serve` runs an ingest worker too.[/]")
    from kotacerdas.gcpolicy import settle_for_serving

    # Each message makes a few containers that live until its batch commits: the same collector settings as `serve`.
    settle_for_serving()
    run_ingest(settings, stop_event=stop_event, metrics=metrics, client_id=client_id, retire=retire)


@wilayah_app.command("import")
def wilayah_import(
    file: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection with kode, nama, level, induk.")],
    dry_run: Annotated[bool, typer.Option(help="Check the file and store nothing.")] = False,
) -> None:
    """Import kecamatan and desa/kelurahan boundaries; any bad feature stops the whole import."""
    from kotacerdas.accounts import service as accounts
    from kotacerdas.regions import service as regions

    settings = settings_or_fail()
    if not file.is_file():
        fail(f"{file}: file not found")
    upgrade(settings)
    with transaction(settings) as session, progress_bar() as progress:
        task = progress.add_task("Memeriksa / checking", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = regions.import_boundaries(
            session,
            settings=settings,
            data=file.read_bytes(),
            actor=accounts.Actor.system("cli"),
            progress=advance,
            dry_run=dry_run,
        )
        if dry_run:
            session.rollback()
    verb = "would import" if dry_run else "imported"
    console.print(
        f"Wilayah {verb}: {result.created} baru/new, {result.updated} diperbarui/updated, "
        f"{result.total} fitur/features."
    )


# How many bad rows `aset import` prints; every one goes to the errors file.
SHOWN_IMPORT_ERRORS = 50


@aset_app.command("import")
def aset_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8, comma-separated) or GeoJSON FeatureCollection.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file and store nothing.")] = False,
    partial: Annotated[bool, typer.Option("--partial", help="Store the good rows even when some are bad.")] = False,
    type_code: Annotated[
        str | None, typer.Option("--type", help="Asset type code for rows without one (e.g. jalan).")
    ] = None,
    opd: Annotated[str | None, typer.Option("--opd", help="Short name of the owner OPD for rows without one.")] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Where to write the bad rows (default: FILE.errors.csv).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=0, max=16, help="Processes that check rows; 0: one per core for large files.")
    ] = 0,
) -> None:
    """Import assets; a row whose id.<system> number is stored updates that asset. Any bad row: nothing is stored
    (exit code 1), the first 50 are printed and all of them written to a CSV file."""
    from kotacerdas.accounts import service as accounts
    from kotacerdas.assets import transfer

    settings = settings_or_fail()
    if not file.is_file():
        fail(f"{file}: file not found")
    errors_path = errors or file.with_name(file.name + ".errors.csv")
    upgrade(settings)
    total = None
    with file.open("rb") as handle:
        try:
            file_format = transfer.detect_format(file.name, handle.read(2048))
        except DomainError as exc:
            fail(exc.detail)
        if file_format == "csv":
            handle.seek(0)
            total = max(sum(piece.count(b"\n") for piece in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)
    # A GeoJSON feature is some hundreds of bytes.
    workers = workers or transfer.auto_workers(total if total is not None else file.stat().st_size // 300)
    shown: list = []
    error_file = None
    writer = None

    def on_error(error: transfer.RowError) -> None:
        nonlocal error_file, writer
        if writer is None:  # the errors file is made only when there is a bad row
            error_file = errors_path.open("w", encoding="utf-8", newline="")
            writer = csv.writer(error_file)
            writer.writerow(["place", "number", "field", "reason", "message"])
        writer.writerow([error.place_kind, error.place, error.field, error.reason, error.message])
        if len(shown) < SHOWN_IMPORT_ERRORS:
            shown.append(error)

    try:
        with transaction(settings) as session, progress_bar() as progress, file.open("rb") as source:
            session.connection(execution_options={"kotacerdas_write": not dry_run})
            task = progress.add_task("Memeriksa / checking" if dry_run else "Mengimpor / importing", total=total)
            result = transfer.import_assets(
                session, settings=settings, actor=accounts.Actor.system("cli"), by=None, source=source,
                filename=file.name, dry_run=dry_run, partial=partial, default_type=type_code, default_agency=opd,
                progress=lambda done: progress.update(task, completed=done, total=max(total or 0, done)),
                on_error=on_error, workers=workers,
            )  # fmt: skip
    finally:
        if error_file is not None:
            error_file.close()
    for error in shown:
        err_console.print(
            f"  {error.place_kind} {error.place}: {error.field}: {error.message}", highlight=False, soft_wrap=True
        )
    if result.error_count > len(shown):
        err_console.print(f"  … {result.error_count - len(shown)} more", highlight=False)
    if result.error_count:
        err_console.print(f"Baris bermasalah / bad rows: {errors_path}", highlight=False)
    else:
        errors_path.unlink(missing_ok=True)  # a report of an earlier run would mislead
    verb = "akan / would be" if dry_run else "tersimpan / stored" if result.stored else "tidak disimpan / not stored"
    console.print(
        f"Aset {verb}: {result.inserted} baru/new, {result.updated} diperbarui/updated, "
        f"{result.inspections} inspeksi/inspections; {result.rows} baris/rows, {result.bad_rows} bermasalah/bad."
    )
    if result.bad_rows and not partial:
        raise typer.Exit(1)


@aset_app.command("export")
def aset_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write.")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="geojson, csv or xlsx (default: from the file name).")
    ] = None,
    type_codes: Annotated[list[str] | None, typer.Option("--type", help="Asset type code (repeatable).")] = None,
    conditions: Annotated[
        list[str] | None, typer.Option("--condition", help="Condition, or 'unknown' (repeatable).")
    ] = None,
    kecamatan: Annotated[str | None, typer.Option(help="Kecamatan code, e.g. 16.05.09.")] = None,
    desa: Annotated[str | None, typer.Option(help="Desa/kelurahan code.")] = None,
    opd: Annotated[str | None, typer.Option("--opd", help="Owner OPD's short name.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Text in the name, or an external id.")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Archived assets instead of active ones.")] = False,
) -> None:
    """Export assets (filtered) to GeoJSON, CSV or XLSX; the CSV and XLSX have the columns the import reads."""
    from kotacerdas.agencies import service as agencies
    from kotacerdas.assets import service as assets
    from kotacerdas.assets import transfer

    chosen = (file_format or output.suffix.lstrip(".")).lower()
    if chosen not in ("geojson", "csv", "xlsx"):
        fail("--format: geojson, csv or xlsx")
    settings = settings_or_fail()
    upgrade(settings)
    with transaction(settings) as session:
        agency_id = agencies.get_agency_by_short_name(session, short_name=opd).id if opd else None
        filters = assets.AssetFilters(
            type_codes=type_codes or None, conditions=conditions or None, kecamatan_code=kecamatan, desa_code=desa,
            agency_id=agency_id, q=q, active=not archived,
        )  # fmt: skip
        export = transfer.Export(session, filters=filters)
        if chosen == "xlsx":
            export.write_xlsx(output)
        else:
            with output.open("w", encoding="utf-8", newline="") as target:
                for piece in export.iter_csv() if chosen == "csv" else export.iter_geojson():
                    target.write(piece)
    console.print(f"Aset diekspor / assets exported: {export.written} → {output}")


@sensors_app.command("simulate")
def sensors_simulate(
    via: Annotated[str, typer.Option(help="mqtt (kotacerdas/{key}/up, QoS 1) or http (CreateObservations).")] = "mqtt",
    broker: Annotated[
        str | None, typer.Option(help="MQTT broker host:port (default KOTACERDAS_MQTT_HOST:KOTACERDAS_MQTT_PORT).")
    ] = None,
    mqtt_login: Annotated[
        str, typer.Option(help="device: one connection per device, its key as login (a broker with an ACL); shared.")
    ] = "device",
    url: Annotated[str, typer.Option(help="Base URL of the portal, for --via http.")] = "http://127.0.0.1:8000",
    rate: Annotated[
        float, typer.Option(min=0, help="At most this many messages (requests) a second; 0: no limit.")
    ] = 0,
    duration: Annotated[float, typer.Option(min=0, help="Seconds to run (wall clock); 0: until Ctrl-C.")] = 60,
    speed: Annotated[float, typer.Option(min=0.001, help="Simulated time runs this many times faster.")] = 1,
    interval: Annotated[
        float, typer.Option(min=1, help="Simulated seconds between a device's readings (rain: 600, traffic: 300).")
    ] = 60,
    scenario: Annotated[str, typer.Option(help="normal, or banjir: heavy rain that floods the rivers.")] = "normal",
    things: Annotated[
        str | None, typer.Option(help="Devices by kode, Thing id or kind, comma-separated (default: all).")
    ] = None,
    devices: Annotated[
        Path | None, typer.Option(help="Device file (default: <data folder>/sensor-demo-devices.json from the demo).")
    ] = None,
    start: Annotated[str | None, typer.Option(help="Simulated start, ISO 8601 with a zone (default: now).")] = None,
) -> None:
    """Publish realistic readings of the demo's devices over MQTT or HTTP (docs/sensors.md)."""
    import signal
    import threading
    from datetime import datetime

    from kotacerdas.sensors import simulate as sim

    settings = settings_or_fail()
    if via not in ("mqtt", "http"):
        fail("--via: mqtt or http")
    if mqtt_login not in ("device", "shared"):
        fail("--mqtt-login: device or shared")
    if scenario not in sim.SCENARIOS:
        fail(f"--scenario: one of {', '.join(sim.SCENARIOS)}")
    host, port = settings.mqtt_host, settings.mqtt_port
    if broker:
        host, _colon, port_text = broker.rpartition(":")
        if not host or not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
            fail("--broker: host:port, e.g. 127.0.0.1:1883")
        port = int(port_text)
    started = None
    if start:
        try:
            started = datetime.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not an ISO 8601 time")
        if started.tzinfo is None:
            fail("--start: give a time zone (Z or +07:00)")
    path = devices or settings.data_dir / sim.DEVICES_FILE
    if not path.is_file():
        fail(f"{path}: no device file; run `kotacerdas demo` first (it writes the demo devices and their keys)")
    try:
        device_file = sim.DeviceFile.read(path)
        chosen = sim.select_devices(device_file.devices, things.split(",") if things else None)
    except (ValueError, KeyError) as exc:
        fail(f"{path}: {exc}")
    options = sim.SimulationOptions(
        via=via, broker=(host, port), mqtt_login=mqtt_login, url=url, rate=rate, duration=duration, speed=speed,
        interval=interval, scenario=scenario, start=started,
    )  # fmt: skip
    stop_event = threading.Event()
    # Ctrl-C and SIGTERM stop after the message in progress (and wait for the broker's acknowledgements).
    previous = {
        signum: signal.signal(signum, lambda *_args: stop_event.set()) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    target = f"{host}:{port}" if via == "mqtt" else url
    console.print(f"Simulasi / simulating {len(chosen)} perangkat / devices → {via} {target} ({scenario}, ×{speed:g})")
    try:
        stats = sim.run_simulation(
            chosen, options, seed=device_file.seed, storms=device_file.storms, stop_event=stop_event
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    span = f"{stats.first_time:%Y-%m-%d %H:%M} → {stats.last_time:%Y-%m-%d %H:%M} UTC" if stats.last_time else "-"
    console.print(
        f"Terkirim / sent: {stats.messages} pesan / messages ({stats.observations} pengamatan / observations), "
        f"diterima / acknowledged: {stats.acknowledged}; waktu simulasi / simulated time: {span}"
    )
    for error in stats.errors[:10]:
        err_console.print(f"  - {error}", highlight=False, soft_wrap=True)
    if stats.errors or stats.acknowledged < stats.messages:
        raise typer.Exit(1)


def find_demo_boundaries() -> Path | None:
    """The Musi Rawas reference boundaries beside the repository, when present."""
    candidates = [Path.cwd().parent / "shared/data/musi-rawas/wilayah-16.05.geojson"]
    candidates.append(Path(__file__).resolve().parents[3] / "shared/data/musi-rawas/wilayah-16.05.geojson")
    return next((path for path in candidates if path.is_file()), None)


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the portal after seeding.")] = True,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    wilayah: Annotated[
        Path | None, typer.Option(help="Boundaries GeoJSON (default: ../shared/data/musi-rawas/ when present).")
    ] = None,
) -> None:
    """Create the data folder, migrate, seed the Musi Rawas demo and serve it."""
    from kotacerdas.demo import DEMO_PASSWORD, seed_demo

    settings = settings_or_fail()
    if settings.mode == "production":
        fail("KOTACERDAS_MODE: the demo creates accounts with a published password; not in production")
    boundaries = wilayah or find_demo_boundaries()
    if wilayah is not None and not wilayah.is_file():
        fail(f"{wilayah}: file not found")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings)
    with transaction(settings) as session, progress_bar() as progress:
        summary = seed_demo(session, settings=settings, boundaries=boundaries, progress=_progress_callback(progress))
    console.print(f"Data: {settings.data_dir.resolve()}  ({settings.sqlalchemy_url.split('://')[0]})")
    for line in summary.lines():
        console.print(f"  {line}")
    if boundaries is None:
        console.print("[yellow]Batas wilayah tidak ditemukan; peta memakai titik pusat kecamatan.[/]")
    console.print(f"\nPortal: http://{host}:{port}/")
    console.print(
        f"Login admin demo: [bold]admin[/] / [bold]{DEMO_PASSWORD}[/]  (juga: {', '.join(summary.other_users)})"
    )
    if serve_after:
        serve_app(settings, host=host, port=port, workers=1)


def _progress_callback(progress: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, int] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    return update


def main() -> None:
    app()
