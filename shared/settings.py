"""Settings from the environment (12-factor). One object, read once per process."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import credentials

# Values people paste from examples: refused in production, whatever their length.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "secret", "password", "admin", "default", "example"}
)
MIN_SECRET_LENGTH = 32
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/clientes"
    redis_url: str = "redis://127.0.0.1:6379/0"
    port: int = 8000
    # Slow and idle clients (SPEC §12), per API process: the time a request's headers may take,
    # how long an idle keep-alive connection stays open, and the connections served at once
    # (past it, 503).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_keepalive_seconds: int = Field(default=5, ge=1)
    http_max_concurrency: int = Field(default=500, ge=1)
    timezone: str = "America/Bogota"

    # Unset, these three come from CREDENTIALS_FILE, which the first start (shared.prestart)
    # fills with generated values (shared.credentials).
    api_bootstrap_key: str | None = None
    secret_key: str = ""
    admin_username: str = "admin"
    admin_password: str = ""
    credentials_file: str = credentials.DEFAULT_FILE
    # A streaming replica for what may lag a moment (lookups, lists, report queries); unset,
    # everything reads the primary.
    read_database_url: str | None = None
    # Failed /admin logins allowed per client address and per username in a window; past it,
    # 429 until the window ends (counted in Redis).
    admin_login_max_failures: int = Field(default=5, ge=1)
    admin_login_window_seconds: int = Field(default=900, ge=1)

    rate_limit_per_minute: int = Field(default=6000, ge=1)
    # Unknown API keys per client address a minute; past it, 429 before any database query.
    auth_failures_per_minute: int = Field(default=30, ge=1)
    # The longest a verified key is trusted from the API's cache without asking the database
    # again: the bound on a revocation whose notification was lost.
    api_key_cache_seconds: float = Field(default=30.0, gt=0, le=60)
    # Long polls (`?wait`) under way at once per API key, and in all per API process (the size
    # of their own Redis pool); one more is answered at once.
    long_polls_per_key: int = Field(default=10, ge=1)
    long_polls_max: int = Field(default=200, ge=1)
    db_pool_size: int = Field(default=10, ge=1)
    db_statement_timeout_ms: int = Field(default=5000, ge=100)

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: str = "var/exports"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "clientes-exports"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    result_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # Workers heartbeat every second from a thread, even during a long query: a minute of
    # silence means the worker died.
    job_stale_after_seconds: int = Field(default=60, ge=5)
    # A job still queued, untouched this long, may have lost its message (Redis restarted empty,
    # or the API could not publish): the scheduler publishes it again. A job that was merely
    # waiting its turn gets a duplicate message, which is harmless: only one claim wins.
    job_republish_after_seconds: int = Field(default=600, ge=1)
    scheduler_interval_seconds: float = Field(default=30.0, gt=0)
    # An attempt waits out a storage outage (or a full disk) this long, with backoff, before it
    # gives up; never past its time limit. The job's remaining attempts follow.
    storage_retry_seconds: float = Field(default=900.0, ge=0)
    # A stored file that no succeeded job offers (its attempt lost, or crashed before recording
    # it) is deleted once this old; younger ones may still be about to be recorded.
    orphan_grace_seconds: float = Field(default=3600.0, gt=0)
    # SPEC §12: jobs queued or running per API key (one more is a 429), and the longest
    # loyalty report window a client may ask for.
    job_max_active_per_key: int = Field(default=20, ge=1)
    report_max_days: int = Field(default=366, ge=1)

    # Webhooks (SPEC §11): the wait after each failed attempt, in seconds; when the list runs
    # out the event is given up. The default backs off exponentially over some 24 h.
    webhook_retry_seconds: str = "10,30,60,300,900,1800,3600,7200,14400,28800,28800"
    # Receivers on loopback, private, link-local or multicast addresses (development, tests).
    webhook_allow_private: bool = False

    log_level: str = "INFO"
    # Valid `buscar` requests answered from ASGI, before FastAPI's machinery
    # (services/query_api/clientes/fast_lane.py); off, the FastAPI route answers them all.
    buscar_fast_lane: bool = True

    # Browser apps on these origins may call the API (SPEC §9): comma-separated, empty = none.
    cors_origins: str = ""

    @field_validator("database_url", "redis_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("webhook_retry_seconds")
    @classmethod
    def _delays(cls, value: str) -> str:
        parse_delays(value)
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return parse_delays(self.webhook_retry_seconds)

    @model_validator(mode="before")
    @classmethod
    def _generated_credentials(cls, data: Any) -> Any:
        """What the environment leaves unset comes from the generated credentials file."""
        if not isinstance(data, dict):
            return data
        stored = credentials.load(data.get("credentials_file") or credentials.DEFAULT_FILE)
        for field, value in stored.items():
            if not data.get(field):
                data[field] = value
        return data

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_bare(cls, value: str) -> str:
        for origin in filter(None, (part.strip() for part in value.split(","))):
            # A browser's Origin is scheme://host[:port]: a path or a slash would never match.
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CORS_ORIGINS: {origin!r} is not an origin like https://host:port"
                )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [part.strip() for part in self.cors_origins.split(",") if part.strip()]

    @model_validator(mode="after")
    def _strong_secrets(self) -> Settings:
        if self.environment == "production":
            for name in ("secret_key", "admin_password"):
                if problem := weakness(getattr(self, name)):
                    raise ValueError(f"{name.upper()} {problem} (refused in production)")
            return self
        # Development and tests without a credentials file: random per process, so never a
        # value anyone can know (cursors then verify only in the process that signed them).
        self.secret_key = self.secret_key or secrets.token_urlsafe(MIN_SECRET_LENGTH)
        self.admin_password = self.admin_password or secrets.token_urlsafe(MIN_SECRET_LENGTH)
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The plain postgresql:// URL with the psycopg 3 driver named, as SQLAlchemy wants."""
        return to_psycopg_url(self.database_url)


def parse_delays(text: str) -> tuple[float, ...]:
    """ "10,30,60" -> (10.0, 30.0, 60.0): positive seconds, at least one."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"a comma list of seconds, like 10,30,60; got {text!r}") from None
    if not delays or any(delay <= 0 for delay in delays):
        raise ValueError(f"a comma list of positive seconds, like 10,30,60; got {text!r}")
    return delays


def weakness(secret: str) -> str | None:
    """Why a secret is too weak for production, or None."""
    if not secret:
        return "is not set"
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(secret)) < 8:
        return "repeats too few characters"
    return None


def to_psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise ValueError(f"DATABASE_URL must start with postgresql://, got {url.split(':', 1)[0]}")


def to_libpq_url(url: str) -> str:
    """The form psql, pg_dump and psycopg.connect take."""
    return "postgresql://" + to_psycopg_url(url).removeprefix("postgresql+psycopg://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
