"""`kotacerdas aset import` and `kotacerdas aset export` as an administrator runs them on the server."""

from __future__ import annotations

import csv
import json
import os

import openpyxl
import sqlalchemy as sa
from typer.testing import CliRunner

from kotacerdas.assets.models import Asset, AssetInspection
from kotacerdas.cli import app
from kotacerdas.config import Settings
from kotacerdas.db import make_engine

from .helpers import INSIDE, agency_id


def run_cli(settings: Settings, *args: str):
    clean = {name: None for name in os.environ if name.startswith("KOTACERDAS_")}
    env = {**clean, "KOTACERDAS_DATA_DIR": str(settings.data_dir), "KOTACERDAS_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def asset_count(settings: Settings) -> int:
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(Asset))
    finally:
        engine.dispose()


def rows(count: int, *, bad_every: int = 0) -> str:
    lat, lon = INSIDE
    lines = ["jenis,nama,lintang,bujur,kondisi,id.simbada"]
    for i in range(count):
        kind = "kapal" if bad_every and i % bad_every == bad_every - 1 else "pju"
        lines.append(f"{kind},PJU {i},{lat + i * 1e-5:.6f},{lon},Berfungsi,S-{i}")
    return "\n".join(lines) + "\n"


def test_import_stores_a_good_file_and_prints_a_summary(seeded, settings, tmp_path):
    path = tmp_path / "pju.csv"
    path.write_text(rows(2500))  # more than one chunk
    result = run_cli(settings, "aset", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "2500 baru/new" in result.stdout
    assert asset_count(settings) == 2500
    assert not (tmp_path / "pju.csv.errors.csv").exists()


def test_import_with_bad_rows_stores_nothing_exits_1_and_writes_every_bad_row(seeded, settings, tmp_path):
    path = tmp_path / "pju.csv"
    path.write_text(rows(300, bad_every=5))  # 60 bad rows, more than the 50 printed
    result = run_cli(settings, "aset", "import", str(path))
    assert result.exit_code == 1
    assert asset_count(settings) == 0
    assert "line 6: type:" in result.stderr
    assert "… 10 more" in result.stderr
    with (tmp_path / "pju.csv.errors.csv").open(encoding="utf-8") as handle:
        report = list(csv.DictReader(handle))
    assert len(report) == 60
    assert [int(row["number"]) for row in report] == list(range(6, 302, 5))
    assert {(row["place"], row["field"], row["reason"]) for row in report} == {("line", "type", "unknown")}


def test_dry_run_reports_and_stores_nothing(seeded, settings, tmp_path):
    path = tmp_path / "pju.csv"
    path.write_text(rows(10))
    errors = tmp_path / "laporan.csv"
    result = run_cli(settings, "aset", "import", str(path), "--dry-run", "--errors", str(errors))
    assert result.exit_code == 0, result.output
    assert "10 baru/new" in result.stdout
    assert asset_count(settings) == 0


def test_type_and_opd_options_fill_empty_cells(seeded, settings, session, tmp_path):
    lat, lon = INSIDE
    path = tmp_path / "sekolah.csv"
    path.write_text(f"nama,lat,lon,attr.jenjang\nSD 1,{lat},{lon},SD\n")
    result = run_cli(settings, "aset", "import", str(path), "--type", "sekolah", "--opd", "Diskominfo")
    assert result.exit_code == 0, result.output
    asset = session.scalar(sa.select(Asset))
    assert asset.agency_id == agency_id(session, "Diskominfo")


def test_a_file_that_cannot_be_read_exits_2_with_the_reason(seeded, settings, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("jenis;nama;lintang;bujur\npju;PJU;-3.06;102.93\n")
    result = run_cli(settings, "aset", "import", str(path))
    assert result.exit_code == 2
    assert ";" in result.stderr
    assert asset_count(settings) == 0


def test_export_writes_each_format_and_the_csv_imports_again(seeded, settings, session, tmp_path):
    path = tmp_path / "pju.csv"
    path.write_text(rows(5))
    assert run_cli(settings, "aset", "import", str(path)).exit_code == 0
    for file_format in ("csv", "geojson", "xlsx"):
        target = tmp_path / f"aset.{file_format}"
        result = run_cli(settings, "aset", "export", "--format", file_format, "--type", "pju", "-o", str(target))
        assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "aset.geojson").read_text())["features"]) == 5
    sheet = openpyxl.load_workbook(tmp_path / "aset.xlsx", read_only=True).active
    assert len(list(sheet.iter_rows(values_only=True))) == 6
    result = run_cli(settings, "aset", "import", str(tmp_path / "aset.csv"))
    assert result.exit_code == 0, result.output
    assert "0 baru/new, 5 diperbarui/updated" in result.stdout
    assert asset_count(settings) == 5
    assert session.scalar(sa.select(sa.func.count()).select_from(AssetInspection)) == 5
