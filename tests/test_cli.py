"""The `kotacerdas` command as an administrator uses it: settings errors, demo, migrations, users, boundaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from kotacerdas import __version__
from kotacerdas.accounts.models import User
from kotacerdas.agencies.models import Agency
from kotacerdas.cli import app
from kotacerdas.config import Settings
from kotacerdas.db import make_engine
from kotacerdas.demo import DEMO_PASSWORD
from kotacerdas.migrate import alembic_config, current_revision
from kotacerdas.regions.models import Region

PASSWORD = "rahasia-uji-123"


def run_cli(args: list[str], **env: str | None):
    """Run the command in-process with exactly these KOTACERDAS_* variables (others are removed)."""
    clean = {name: None for name in os.environ if name.startswith("KOTACERDAS_")}
    return CliRunner().invoke(app, args, env={**clean, **env}, catch_exceptions=False)


def env_of(settings: Settings) -> dict[str, str]:
    return {"KOTACERDAS_DATA_DIR": str(settings.data_dir), "KOTACERDAS_DATABASE_URL": settings.database_url}


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return {
                model.__tablename__: connection.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Region, Agency, User)
            }
    finally:
        engine.dispose()


def regions_snapshot(settings: Settings) -> list[tuple]:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            statement = sa.select(Region.code, Region.name, Region.level, Region.parent_code, Region.geometry)
            return [tuple(row) for row in connection.execute(statement.order_by(Region.code))]
    finally:
        engine.dispose()


def users_named(settings: Settings, username: str) -> int:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            statement = sa.select(sa.func.count()).select_from(User).where(User.username == username)
            return connection.scalar(statement)
    finally:
        engine.dispose()


def square(lon: float, lat: float, half: float) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def bowtie(lon: float, lat: float, half: float) -> dict:
    """A self-intersecting ring: its edges cross in the middle."""
    ring = [[lon - half, lat - half], [lon + half, lat + half], [lon + half, lat - half], [lon - half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature(code: str, name: str, level: str, parent: str, geometry: dict) -> dict:
    return {
        "type": "Feature",
        "properties": {"kode": code, "nama": name, "level": level, "induk": parent},
        "geometry": geometry,
    }


def valid_features() -> list[dict]:
    """Kabupaten Musi Rawas, kecamatan Tugumulyo and desa Surodadi as nested squares (real codes, made-up shapes)."""
    return [
        feature("16.05", "Kabupaten Musi Rawas", "kabupaten", "16", square(103.0, -3.1, 0.5)),
        feature("16.05.01", "Tugumulyo", "kecamatan", "16.05", square(102.96, -3.17, 0.05)),
        feature("16.05.01.2002", "Surodadi", "desa", "16.05.01", square(102.9625, -3.2014, 0.01)),
    ]


def write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


# --- version and settings ----------------------------------------------------------------------------------------


def kotacerdas_command() -> list[str]:
    """The installed `kotacerdas` script beside this Python, else the same entry point through `python -c`."""
    script = shutil.which("kotacerdas", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from kotacerdas.cli import main; main()"]


def test_version_is_printed_by_the_installed_command():
    result = subprocess.run([*kotacerdas_command(), "--version"], capture_output=True, text=True)

    assert result.returncode == 0
    assert result.stdout.strip() == f"kotacerdas {__version__}"


def test_version_option_in_process():
    result = run_cli(["--version"])

    assert result.exit_code == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KOTACERDAS_TIMEZONE", "Mars/Olympus", "KOTACERDAS_TIMEZONE"),
        ("KOTACERDAS_DATABASE_URL", "mysql://x", "KOTACERDAS_DATABASE_URL"),
        ("KOTACERDAS_MODE", "production", "KOTACERDAS_SECRET_KEY"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve"]])
def test_a_wrong_setting_stops_with_one_line_and_exit_code_2(tmp_path, variable, value, named, command):
    result = run_cli(command, KOTACERDAS_DATA_DIR=str(tmp_path / "data"), **{variable: value})

    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert not (tmp_path / "data" / "kotacerdas.db").exists()


def test_a_wrong_setting_from_the_shell_is_one_line(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("KOTACERDAS_")}
    env.update(KOTACERDAS_DATA_DIR=str(tmp_path), KOTACERDAS_TIMEZONE="Mars/Olympus")
    result = subprocess.run([*kotacerdas_command(), "db", "upgrade"], env=env, capture_output=True, text=True)

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "KOTACERDAS_TIMEZONE" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_refuses_production(tmp_path):
    result = run_cli(
        ["demo", "--no-serve"],
        KOTACERDAS_DATA_DIR=str(tmp_path),
        KOTACERDAS_MODE="production",
        KOTACERDAS_SECRET_KEY="s" * 40,
    )

    assert result.exit_code == 2
    assert "KOTACERDAS_MODE" in result.stderr


# --- db upgrade --------------------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_embedded_database_at_the_newest_revision(tmp_path):
    data_dir = tmp_path / "fresh-data"

    result = run_cli(["db", "upgrade"], KOTACERDAS_DATA_DIR=str(data_dir))

    assert result.exit_code == 0, result.stderr
    assert (data_dir / "kotacerdas.db").is_file()
    engine = make_engine(Settings(data_dir=data_dir))
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert current_revision(engine) == head
    finally:
        engine.dispose()


def test_db_upgrade_of_an_up_to_date_database_changes_nothing(settings):
    before = counts(settings)

    first = run_cli(["db", "upgrade"], **env_of(settings))
    second = run_cli(["db", "upgrade"], **env_of(settings))

    assert first.exit_code == second.exit_code == 0, first.stderr + second.stderr
    assert counts(settings) == before


def test_db_upgrade_of_an_unreachable_database_is_one_line(tmp_path):
    result = run_cli(
        ["db", "upgrade"],
        KOTACERDAS_DATA_DIR=str(tmp_path),
        KOTACERDAS_DATABASE_URL="postgresql+psycopg://kotacerdas@127.0.0.1:1/kotacerdas",
    )

    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "KOTACERDAS_DATABASE_URL" in lines[0]


# --- demo --------------------------------------------------------------------------------------------------------


def test_demo_twice_seeds_once(settings):
    first = run_cli(["demo", "--no-serve"], **env_of(settings))
    assert first.exit_code == 0, first.stderr
    after_first = counts(settings)

    second = run_cli(["demo", "--no-serve"], **env_of(settings))
    assert second.exit_code == 0, second.stderr

    assert counts(settings) == after_first
    assert after_first["regions"] >= 1
    assert after_first["agencies"] >= 1
    assert after_first["users"] == 5
    # The demo prints its admin login.
    assert "admin" in first.stdout and DEMO_PASSWORD in first.stdout


def test_db_seed_stores_reference_data_once_and_no_accounts(settings):
    first = run_cli(["db", "seed"], **env_of(settings))
    assert first.exit_code == 0, first.stderr
    seeded = counts(settings)

    assert run_cli(["db", "seed"], **env_of(settings)).exit_code == 0

    assert counts(settings) == seeded
    # 1 kabupaten, 14 kecamatan, 199 desa/kelurahan; 20 OPD and 14 kecamatan offices; no accounts.
    assert seeded == {"regions": 214, "agencies": 34, "users": 0}


# --- user create -------------------------------------------------------------------------------------------------


def test_user_create_then_the_same_username_again(settings):
    args = ["user", "create", "--username", "siti", "--full-name", "Siti Aminah", "--role", "admin"]

    created = run_cli([*args, "--password", PASSWORD], **env_of(settings))
    assert created.exit_code == 0, created.stderr
    assert "siti" in created.stdout

    again = run_cli([*args, "--password", PASSWORD], **env_of(settings))
    assert again.exit_code == 2
    lines = error_lines(again)
    assert len(lines) == 1, again.stderr
    assert users_named(settings, "siti") == 1


def test_user_create_reads_the_password_from_the_environment(settings):
    result = run_cli(["user", "create", "--username", "budi"], KOTACERDAS_PASSWORD=PASSWORD, **env_of(settings))

    assert result.exit_code == 0, result.stderr
    assert users_named(settings, "budi") == 1


@pytest.mark.parametrize(
    "extra",
    [["--role", "raja"], ["--password", "pendek"], ["--role", "opd_staff"]],
    ids=["unknown-role", "short-password", "opd-role-without-opd"],
)
def test_user_create_with_a_wrong_value_stores_nothing(settings, extra):
    args = ["user", "create", "--username", "rina"]
    if "--password" not in extra:
        args += ["--password", PASSWORD]

    result = run_cli([*args, *extra], **env_of(settings))

    assert result.exit_code == 2
    assert users_named(settings, "rina") == 0


# --- wilayah import ----------------------------------------------------------------------------------------------


def test_wilayah_import_stores_the_boundaries(settings, tmp_path):
    path = write_geojson(tmp_path / "wilayah.geojson", valid_features())

    result = run_cli(["wilayah", "import", str(path)], **env_of(settings))

    assert result.exit_code == 0, result.stderr
    stored = {code: geometry for code, _name, _level, _parent, geometry in regions_snapshot(settings)}
    assert {"16.05", "16.05.01", "16.05.01.2002"} <= set(stored)
    assert stored["16.05.01.2002"] is not None


def test_wilayah_import_dry_run_stores_nothing(settings, tmp_path):
    path = write_geojson(tmp_path / "wilayah.geojson", valid_features())
    before = regions_snapshot(settings)

    result = run_cli(["wilayah", "import", "--dry-run", str(path)], **env_of(settings))

    assert result.exit_code == 0, result.stderr
    assert regions_snapshot(settings) == before


def test_wilayah_import_of_a_file_that_is_not_geojson(settings, tmp_path):
    path = tmp_path / "wilayah.geojson"
    path.write_text("kode,nama\n16.05.01,Tugumulyo\n")
    before = regions_snapshot(settings)

    result = run_cli(["wilayah", "import", str(path)], **env_of(settings))

    assert result.exit_code == 2
    assert error_lines(result)
    assert regions_snapshot(settings) == before


def test_wilayah_import_of_json_that_is_not_a_feature_collection(settings, tmp_path):
    path = tmp_path / "wilayah.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [102.9, -3.1]}))
    before = regions_snapshot(settings)

    result = run_cli(["wilayah", "import", str(path)], **env_of(settings))

    assert result.exit_code == 2
    assert error_lines(result)
    assert regions_snapshot(settings) == before


def test_wilayah_import_with_self_intersecting_polygons_names_each_and_stores_nothing(settings, tmp_path):
    features = valid_features()
    features.append(feature("16.05.02", "Muara Beliti", "kecamatan", "16.05", bowtie(103.0, -3.2, 0.05)))
    features.append(feature("16.05.01.2003", "Sukomulyo", "desa", "16.05.01", bowtie(102.95, -3.16, 0.01)))
    path = write_geojson(tmp_path / "wilayah.geojson", features)
    before = regions_snapshot(settings)

    result = run_cli(["wilayah", "import", str(path)], **env_of(settings))

    assert result.exit_code == 2
    item_lines = [line for line in error_lines(result) if line.strip().startswith("- ")]
    assert len(set(item_lines)) == 2, result.stderr
    assert regions_snapshot(settings) == before


def test_wilayah_import_of_a_missing_file(settings, tmp_path):
    result = run_cli(["wilayah", "import", str(tmp_path / "tidak-ada.geojson")], **env_of(settings))

    assert result.exit_code == 2
    assert len(error_lines(result)) == 1


def test_the_head_revision_read_as_text_is_alembics(settings):
    """`serve` skips Alembic when the database is at head; the head it reads as text must be Alembic's own."""
    from alembic.script import ScriptDirectory

    from kotacerdas import cli

    engine = make_engine(settings)
    try:
        assert [cli._head_revision()] == ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    finally:
        engine.dispose()
