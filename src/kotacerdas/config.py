"""Settings: one object, read from the environment (prefix KOTACERDAS_) only when asked."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The development secret is public (it is in this file); production refuses it.
DEVELOPMENT_SECRET = "dev-secret-change-me"
LOCALES = ("id", "en")
# Lists read from the environment as comma-separated text (pydantic-settings would otherwise expect JSON).
CommaList = Annotated[list[str], NoDecode]
CommaDates = Annotated[list[date], NoDecode]


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
    smtp_host: str = Field("", description="Mail server for outgoing email; empty keeps emails queued in the outbox.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Mail server port (587 for STARTTLS, 465 for SSL).")
    smtp_security: Literal["none", "starttls", "ssl"] = Field("none", description="Encryption to the mail server.")
    smtp_username: str = Field("", description="Login at the mail server; empty sends without logging in.")
    smtp_password: str = Field("", description="Password at the mail server.")
    smtp_timeout_seconds: int = Field(20, ge=1, le=300, description="How long one SMTP delivery may take.")
    mail_from: str = Field(
        "kotacerdas <noreply@localhost>", description="Sender of outgoing email, e.g. `Pemkab <lapor@example.go.id>`."
    )
    outbox_max_attempts: int = Field(
        12, ge=1, le=100, description="Delivery attempts of one outgoing message before it is marked failed."
    )
    webhook_allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Host names webhooks may be sent to, comma-separated (e.g. `lapor.go.id,10.0.0.5`); "
        "empty allows none.",
    )
    media_allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Host names the server may fetch an Open311 `media_url` from, comma-separated; empty allows none.",
    )
    worker_in_app: bool = Field(
        True,
        description="Run the background worker (outbox, SLA checks) inside `serve`, its first round 2 s after the "
        "app starts (so that a restart answers its health checks first); false when `kotacerdas worker` runs apart.",
    )
    worker_interval_seconds: int = Field(5, ge=1, le=3600, description="How often the worker looks for due work.")
    map_index_preload: bool = Field(
        True,
        description="Load the in-memory indexes of the public report and asset maps, and count the infrastructure "
        "figures, in the background from 1 s after the app starts (once it answers), so that the first map request "
        "does not wait for them (seconds with a million reports or 250,000 assets); one before then loads them itself.",
    )
    local_days_off: CommaDates = Field(
        default_factory=list,
        description="Local days off (cuti bersama) that SLA deadlines skip, comma-separated ISO dates, e.g. "
        "`2026-12-24,2026-12-31`.",
    )
    report_code_prefix: str = Field(
        "MR", pattern=r"^[A-Z]{2,6}$", description="Prefix of report tracking codes, e.g. `MR` gives `MR-2026-000123`."
    )
    report_verify_days: int = Field(3, ge=1, le=60, description="Working days to verify a new report.")
    report_follow_up_days: int = Field(
        5, ge=1, le=60, description="Working days for the OPD to publish its follow-up plan after disposition."
    )
    report_reopen_days: int = Field(
        30, ge=1, le=365, description="Days after completion in which a reporter may reopen."
    )
    reports_per_ip_per_hour: int = Field(
        10, ge=1, le=1_000_000, description="Reports one address may submit per hour (the form and the APIs)."
    )
    events_require_approval: bool = Field(
        False,
        description="An operator's new event waits as a draft until an admin or another operator approves it.",
    )
    cap_sender: str = Field(
        "bpbd@musirawaskab.go.id",
        pattern=r"^[^\s,<&]+$",
        description="The CAP `sender` of this installation's warnings (an address without spaces or commas).",
    )
    event_cluster_min_reports: int = Field(
        3, ge=2, le=100, description="Open flood-type reports that make a cluster worth an event suggestion."
    )
    event_cluster_radius_km: float = Field(
        1.0, gt=0, le=50, description="How close (km) the reports of a cluster lie to its first report."
    )
    event_cluster_hours: int = Field(6, ge=1, le=168, description="The hours within which a cluster's reports came in.")
    event_cluster_report_groups: CommaList = Field(
        default_factory=lambda: ["drainase_banjir"],
        description="Report category groups whose reports can cluster into a flood event, comma-separated.",
    )
    sensor_raw_retention_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="Days raw sensor observations are kept; 0 keeps them forever. Hourly rollups and current "
        "values are always kept.",
    )
    sensor_compact_rows: int = Field(
        1_000_000,
        ge=1_000,
        le=100_000_000,
        description="SQLite: the worker merges the observation journal into the clustered table once it holds "
        "this many observations (docs/sensors.md).",
    )
    sensor_compact_interval_seconds: int = Field(
        300, ge=1, le=86_400, description="SQLite: the worker merges the observation journal at least this often."
    )
    sensor_compact_chunk_rows: int = Field(
        1_000_000,
        ge=1_000,
        le=10_000_000,
        description="SQLite: observations merged per compaction chunk, sorted beside the ingest and then copied in "
        "one transaction (ingest waits for at most one copy).",
    )
    sensor_offline_after_minutes: int = Field(
        60,
        ge=1,
        le=43_200,
        description="A device not heard from for this long is shown offline, unless its Thing sets its own "
        "offline_after_minutes.",
    )
    sensor_live_poll_seconds: float = Field(
        2.0,
        ge=0.1,
        le=60,
        description="How often each app process reads the current values of the Datastreams its live tiles show.",
    )
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker (Mosquitto) that devices publish to.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 for TLS).")
    mqtt_username: str = Field(
        "", description="The ingest worker's login at the broker; empty connects anonymously (docs/mqtt.md)."
    )
    mqtt_password: str = Field("", description="The ingest worker's password at the broker.")
    mqtt_tls: bool = Field(False, description="Connect to the broker over TLS.")
    mqtt_ca_file: Path | None = Field(
        None, description="CA certificate file for the broker's TLS certificate; empty uses the system's CAs."
    )
    mqtt_client_id: str = Field(
        "kotacerdas-ingest-1",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT client id of the ingest worker, fixed so that its persistent session (and the messages "
        "not yet acknowledged) survives a restart; each worker needs its own.",
    )
    mqtt_shared_group: str = Field(
        "kotacerdas",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Shared-subscription group (`$share/<group>/…`) of the ingest workers, which split the messages "
        "between them; empty subscribes plainly (every worker gets every message).",
    )
    ingest_in_app: bool = Field(
        False,
        description="Run the MQTT ingest worker inside `serve` (one machine); false when `kotacerdas ingest` "
        "runs apart.",
    )
    ingest_batch_size: int = Field(
        1000, ge=1, le=20_000, description="MQTT messages stored in one transaction (then acknowledged)."
    )
    ingest_batch_ms: int = Field(
        50, ge=1, le=10_000, description="How long a batch waits for more messages after its first."
    )
    open311_jurisdiction_id: str = Field(
        "musirawaskab.go.id", description="The Open311 `jurisdiction_id` this server answers to."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("webhook_allowed_hosts", "media_allowed_hosts", "local_days_off", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("region_code")
    @classmethod
    def _region_code_shape(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.isdecimal() and len(p) == 2 for p in parts):
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
