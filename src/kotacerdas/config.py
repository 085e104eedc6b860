"""Settings: one object, read from the environment (prefix KOTACERDAS_) only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The development secret is public (it is in this file); production refuses it.
DEVELOPMENT_SECRET = "dev-secret-change-me"
LOCALES = ("id", "en")


class SettingsError(Exception):
    """A setting has a wrong value; the message names it in one line."""


class Settings(BaseSettings):
    """Every setting of a kotacerdas installation."""

    model_config = SettingsConfigDict(env_prefix="KOTACERDAS_", env_file=None, extra="ignore")

    mode: Literal["development", "production"] = Field(
        "development", description="`production` refuses the development secret key and sets secure cookies."
    )
    data_dir: Path = Field(Path("kotacerdas-data"), description="Folder for the SQLite database and uploads.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means `sqlite:///<data_dir>/kotacerdas.db`. PostgreSQL: "
        "`postgresql+psycopg://user:pass@host/db`.",
    )
    secret_key: str = Field(DEVELOPMENT_SECRET, description="Signs sessions and CSRF tokens. At least 32 characters.")
    timezone: str = Field("Asia/Jakarta", description="Time zone for display (UTC is stored).")
    default_locale: Literal["id", "en"] = Field("id", description="Language when the visitor has not chosen one.")
    region_code: str = Field("16.05", description="Kemendagri code of the kabupaten/kota this installation serves.")
    region_name: str = Field("Kabupaten Musi Rawas", description="Name shown in the portal's header.")
    public_base_url: str = Field("http://127.0.0.1:8000", description="Public address, used in links in emails.")
    map_tile_url: str = Field(
        "",
        description="Leaflet tile URL template, e.g. `https://tile.openstreetmap.org/{z}/{x}/{y}.png`; "
        "empty shows boundaries on a blank background.",
    )
    map_tile_attribution: str = Field("", description="Attribution text for the tile layer.")
    session_hours: int = Field(12, ge=1, le=24 * 30, description="How long a login lasts without activity.")
    login_max_failures: int = Field(5, ge=1, le=100, description="Failed logins allowed per user or address.")
    login_window_minutes: int = Field(15, ge=1, le=24 * 60, description="Window for counting failed logins.")
    sqlite_busy_timeout_ms: int = Field(5000, ge=0, description="How long SQLite waits for a lock.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("region_code")
    @classmethod
    def _region_code_shape(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
            raise ValueError("must be a kabupaten/kota code like 16.05")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "sqlite+pysqlite://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_secret(self) -> Settings:
        if self.mode == "production" and (self.secret_key == DEVELOPMENT_SECRET or len(self.secret_key) < 32):
            raise ValueError("secret_key: production needs your own secret key of at least 32 characters")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the embedded default filled in."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'kotacerdas.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(**overrides) -> Settings:
    """Read settings from the environment; a wrong value becomes one SettingsError line naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc and ":" in message:
            loc, message = (part.strip() for part in message.split(":", 1))
        name = f"KOTACERDAS_{loc.upper()}" if loc else "KOTACERDAS_*"
        raise SettingsError(f"{name}: {message}") from None
