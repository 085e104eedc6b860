"""Settings: read from KOTACERDAS_* only when asked, a wrong value named in one line, every setting documented.

`python tests/test_config.py` prints the settings table of docs/configuration.md from the Settings model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest

from kotacerdas.config import DEVELOPMENT_SECRET, Settings, SettingsError, load_settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KOTACERDAS_") and name != "KOTACERDAS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


def _allowed(field) -> str:
    if get_origin(field.annotation) is Literal:
        return ", ".join(f"`{value}`" for value in get_args(field.annotation))
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    if low is not None and high is not None:
        return f"{low}–{high}"
    if low is not None:
        return f"≥ {low}"
    return f"≤ {high}" if high is not None else ""


def settings_table() -> str:
    """The Markdown table of every setting: variable, default, allowed values and meaning, from the Settings model."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list | tuple):
            default = ",".join(str(item) for item in default)
        if isinstance(default, Path):
            default = default.as_posix()
        shown = f"`{default}`" if default not in ("", None) else "(empty)"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `KOTACERDAS_{name.upper()}` | {shown} | {_allowed(field)} | {description} |")
    return "\n".join(rows) + "\n"


def test_settings_come_from_prefixed_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("KOTACERDAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KOTACERDAS_REGION_NAME", "Kabupaten Contoh")
    monkeypatch.setenv("KOTACERDAS_SESSION_HOURS", "8")

    settings = load_settings()

    assert settings.region_name == "Kabupaten Contoh"
    assert settings.session_hours == 8
    assert settings.sqlalchemy_url == f"sqlite:///{(tmp_path / 'kotacerdas.db').as_posix()}"
    assert settings.is_sqlite


def test_defaults_serve_musi_rawas_in_development():
    settings = load_settings()

    assert settings.mode == "development"
    assert settings.region_code == "16.05"
    assert settings.timezone == "Asia/Jakarta"
    assert settings.default_locale == "id"
    assert settings.sqlalchemy_url.startswith("sqlite:///")


def test_postgresql_url_is_used_as_given(monkeypatch):
    monkeypatch.setenv("KOTACERDAS_DATABASE_URL", "postgresql+psycopg://kc:pw@db.example/kotacerdas")

    settings = load_settings()

    assert settings.sqlalchemy_url == "postgresql+psycopg://kc:pw@db.example/kotacerdas"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KOTACERDAS_TIMEZONE", "Mars/Olympus", "KOTACERDAS_TIMEZONE"),
        ("KOTACERDAS_DATABASE_URL", "mysql://x", "KOTACERDAS_DATABASE_URL"),
        ("KOTACERDAS_REGION_CODE", "1605", "KOTACERDAS_REGION_CODE"),
        ("KOTACERDAS_SESSION_HOURS", "0", "KOTACERDAS_SESSION_HOURS"),
        ("KOTACERDAS_SESSION_HOURS", "lama", "KOTACERDAS_SESSION_HOURS"),
        ("KOTACERDAS_DEFAULT_LOCALE", "fr", "KOTACERDAS_DEFAULT_LOCALE"),
        ("KOTACERDAS_MODE", "staging", "KOTACERDAS_MODE"),
        ("KOTACERDAS_PUBLIC_BASE_URL", "kotacerdas.example", "KOTACERDAS_PUBLIC_BASE_URL"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_setting(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith(f"{named}:")
    assert "\n" not in message


def test_production_refuses_the_development_secret(monkeypatch):
    monkeypatch.setenv("KOTACERDAS_MODE", "production")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value).startswith("KOTACERDAS_SECRET_KEY:")
    assert DEVELOPMENT_SECRET not in str(caught.value)


def test_production_refuses_a_short_secret(monkeypatch):
    monkeypatch.setenv("KOTACERDAS_MODE", "production")
    monkeypatch.setenv("KOTACERDAS_SECRET_KEY", "short")

    with pytest.raises(SettingsError, match="^KOTACERDAS_SECRET_KEY:"):
        load_settings()


def test_production_accepts_its_own_long_secret(monkeypatch):
    monkeypatch.setenv("KOTACERDAS_MODE", "production")
    monkeypatch.setenv("KOTACERDAS_SECRET_KEY", "s" * 40)

    assert load_settings().mode == "production"


def test_importing_the_app_reads_no_setting():
    """Nothing reads the environment at import time: a broken setting only matters when settings are loaded."""
    env = {**os.environ, "KOTACERDAS_TIMEZONE": "Mars/Olympus", "KOTACERDAS_DATABASE_URL": "mysql://x"}
    code = "import kotacerdas.app, kotacerdas.cli, kotacerdas.models, kotacerdas.demo"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_every_setting_is_documented_in_docs_configuration():
    documented = DOCS.read_text(encoding="utf-8")
    missing = [
        f"KOTACERDAS_{name.upper()}"
        for name in Settings.model_fields
        if f"KOTACERDAS_{name.upper()}`" not in documented
    ]

    assert not missing, f"not in docs/configuration.md: {missing}"
    assert settings_table() in documented, (
        "docs/configuration.md's settings table is out of date; regenerate it with `python tests/test_config.py`"
    )


if __name__ == "__main__":
    sys.stdout.write(settings_table())
