"""Configuration: ``WORKSPACE_*`` environment variables, read once into one frozen object.

Only the composition root (``server.app``) and the command line read settings;
everything else receives the values it needs as arguments.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "WORKSPACE_"
#: The secret used when WORKSPACE_JWT_SECRET is unset. Refused in production.
DEVELOPMENT_JWT_SECRET = "development-secret-do-not-use-in-production"
#: Shortest admin password accepted when WORKSPACE_ENV=production.
PRODUCTION_MIN_ADMIN_PASSWORD = 12
#: Shortest JWT secret accepted (RFC 7518 §3.2: an HS256 key is at least 256 bits).
MIN_JWT_SECRET_BYTES = 32
DEFAULT_DATABASE_URL = "sqlite:///./data/workspace.db"


#: Settings whose empty value is a choice (none), not "use the default".
EMPTY_MEANS_NONE = frozenset({"holidays_country"})


class SettingsError(ValueError):
    """A WORKSPACE_* variable is malformed or not allowed in this environment."""


def _doc(text: str, **kw):
    return field(metadata={"doc": text}, **kw)


@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. The environment variable is ``WORKSPACE_`` + the upper-cased name."""

    env: str = _doc("`development` or `production`", default="development")
    host: str = _doc("address the gRPC server binds", default="127.0.0.1")
    grpc_port: int = _doc("gRPC port (0 picks a free one)", default=50051)
    metrics_port: int = _doc(
        "Prometheus metrics at http://WORKSPACE_HOST:port/metrics (0 picks a free one)", default=9464
    )
    stats_interval_seconds: float = _doc(
        "how often each replica measures and publishes its figures (MonitoringService; StreamStats' default tick)",
        default=1.0,
    )
    http_port: int = _doc("the gateway's one HTTP port: REST, gRPC-Web and gRPC through Envoy", default=8080)
    gateway_upstreams: str = _doc(
        "the server replicas behind the gateway, host:port separated by commas; empty: WORKSPACE_HOST's gRPC port",
        default="",
    )
    gateway_admin_port: int = _doc("Envoy's admin interface, bound to 127.0.0.1 only", default=9901)
    gateway_health_seconds: float = _doc(
        "how often the gateway asks each replica's gRPC health; a NOT_SERVING replica gets no new calls",
        default=2.0,
    )
    cors_origins: str = _doc(
        "browser origins allowed to call through the gateway, comma-separated (`*`: any); empty: none", default=""
    )
    database_url: str = _doc("SQLAlchemy URL; sqlite:// and postgresql:// are accepted", default=DEFAULT_DATABASE_URL)
    admin_password: str | None = _doc("password of the `admin` account created on first start", default=None)
    jwt_secret: str = _doc("HMAC secret for access tokens", default=DEVELOPMENT_JWT_SECRET)
    access_token_ttl: int = _doc("access token lifetime, seconds", default=15 * 60)
    refresh_token_ttl: int = _doc("refresh token lifetime, seconds", default=7 * 24 * 3600)
    refresh_reuse_grace: float = _doc(
        "seconds a just-rotated refresh token still works (lost responses); 0 disables", default=5.0
    )
    auth_cache_seconds: float = _doc(
        "how long a replica trusts its cached view of a session (logout/disable on other replicas)", default=5.0
    )
    login_max_failures: int = _doc("failed logins for one username before it is throttled", default=5)
    login_lockout_seconds: int = _doc("first lockout after too many failures; doubles each time", default=30)
    argon2_time_cost: int = _doc("argon2id iterations", default=3)
    argon2_memory_kib: int = _doc("argon2id memory, KiB", default=65536)
    argon2_parallelism: int = _doc("argon2id lanes", default=2)
    hash_workers: int = _doc("threads that hash passwords", default=2)
    report_workers: int = _doc(
        "processes that draw PDF reports, started on first use; 0: a thread of the server, which then slows its"
        " other calls while it draws",
        default=1,
    )
    max_message_bytes: int = _doc("largest request accepted, bytes", default=1024 * 1024)
    shutdown_grace: float = _doc("seconds in-flight calls get to finish on SIGTERM", default=10.0)
    shutdown_drain: float = _doc(
        "seconds between health turning NOT_SERVING and refusing new calls (lets load balancers notice)", default=0.0
    )
    db_pool_size: int = _doc("database connections per replica", default=5)
    chat_max_message_chars: int = _doc("longest chat message, characters after trimming", default=2000)
    stream_heartbeat_seconds: float = _doc("a quiet event stream carries a heartbeat this often", default=20.0)
    stream_queue_size: int = _doc("events a stream may fall behind before it is ended (STREAM_TOO_SLOW)", default=1000)
    event_retention_days: float = _doc(
        "events older than this are deleted; a stream resuming from before them must resynchronise", default=30.0
    )
    presence_grace_seconds: float = _doc(
        "a person whose last stream closed goes offline after this long (a reconnect within it does not flicker)",
        default=10.0,
    )
    keepalive_seconds: float = _doc(
        "a connection quiet this long gets an HTTP/2 ping, which the client's gRPC library answers", default=10.0
    )
    keepalive_timeout_seconds: float = _doc(
        "a ping unanswered this long closes the connection and its streams (a frozen or cut-off client)",
        default=10.0,
    )
    event_poll_seconds: float = _doc(
        "how often a replica checks the event log without being woken (a lost notification only delays)", default=2.0
    )
    holidays_country: str = _doc(
        "country whose public holidays ListEvents shows (ISO 3166-1 alpha-2, from the holidays package); "
        "set it empty for none",
        default="FR",
    )
    holidays_subdivision: str = _doc(
        "subdivision of that country for regional holidays (e.g. `57` for Moselle); empty: national ones only",
        default="",
    )
    agenda_max_range_days: int = _doc("longest range one ListEvents call may ask for, days", default=366)
    log_level: str = _doc("debug, info, warning or error", default="info")
    replica_id: str = _doc("name of this replica in logs and stats", default_factory=socket.gethostname)

    def validate_for_server(self) -> None:
        """The checks only the server can make: they need its packages (the gateway image has this file alone)."""
        from .domain.holidays import UnknownRegion, check_region

        country = self.holidays_country.strip().upper()
        regions = (("holidays_country", ""), ("holidays_subdivision", self.holidays_subdivision.strip()))
        for name, subdivision in regions:
            try:
                check_region(country, subdivision)
            except UnknownRegion as e:
                raise SettingsError(f"{PREFIX}{name.upper()}: {e}") from None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``WORKSPACE_*`` variables; raise ``SettingsError`` naming the variable on bad values."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is None or (raw == "" and f.name not in EMPTY_MEANS_NONE):
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                if kind == "int":
                    values[f.name] = int(raw)
                elif kind == "float":
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise SettingsError(f"{PREFIX}{f.name.upper()}={raw!r} is not a valid {kind}") from None
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"{PREFIX}{name.upper()}: {why}")

        if self.env not in ("development", "production"):
            raise bad("env", "must be 'development' or 'production'")
        for name in ("grpc_port", "http_port", "gateway_admin_port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise bad(name, "must be between 0 and 65535")
        for item in filter(None, (i.strip() for i in self.gateway_upstreams.split(","))):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) <= 65535:
                raise bad("gateway_upstreams", f"{item!r} is not host:port")
        for name in (
            "access_token_ttl",
            "refresh_token_ttl",
            "login_max_failures",
            "login_lockout_seconds",
            "argon2_time_cost",
            "argon2_parallelism",
            "hash_workers",
            "db_pool_size",
            "chat_max_message_chars",
            "stream_queue_size",
        ):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        if self.report_workers < 0:
            raise bad("report_workers", "must not be negative")
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise bad("argon2_memory_kib", "must be at least 8 x argon2_parallelism")
        for name in (
            "stream_heartbeat_seconds",
            "event_poll_seconds",
            "presence_grace_seconds",
            "keepalive_seconds",
            "keepalive_timeout_seconds",
            "gateway_health_seconds",
            "stats_interval_seconds",
        ):
            if not 0.05 <= getattr(self, name) <= 3600:
                raise bad(name, "must be between 0.05 and 3600 seconds")
        if not 0.00001 <= self.event_retention_days <= 36500:
            raise bad("event_retention_days", "must be between 0.00001 and 36500")
        if self.chat_max_message_chars > 100_000:
            raise bad("chat_max_message_chars", "must be at most 100000")
        if self.max_message_bytes < 4096:
            raise bad("max_message_bytes", "must be at least 4096")
        for name in ("refresh_reuse_grace", "auth_cache_seconds", "shutdown_grace", "shutdown_drain"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        database_url(self.database_url, asynchronous=True)  # raises SettingsError naming the variable
        if not 1 <= self.agenda_max_range_days <= 3660:
            raise bad("agenda_max_range_days", "must be between 1 and 3660")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise bad("log_level", "must be debug, info, warning or error")
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise bad("jwt_secret", f"must be at least {MIN_JWT_SECRET_BYTES} bytes (HS256 wants 256 bits)")
        if self.production:
            if self.jwt_secret == DEVELOPMENT_JWT_SECRET:
                raise bad("jwt_secret", "must be set to a secret of your own in production")
            if self.admin_password is not None and len(self.admin_password) < PRODUCTION_MIN_ADMIN_PASSWORD:
                raise bad(
                    "admin_password", f"must be at least {PRODUCTION_MIN_ADMIN_PASSWORD} characters in production"
                )

    @property
    def async_database_url(self) -> str:
        return database_url(self.database_url, asynchronous=True)

    @property
    def sync_database_url(self) -> str:
        return database_url(self.database_url, asynchronous=False)

    @property
    def database_url_for_display(self) -> str:
        """The database URL with any password masked, for banners and logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def describe(self) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) rows, for docs and ``--help``."""
        rows = []
        for f in fields(self):
            default = "hostname" if f.name == "replica_id" else repr(f.default) if f.default is not None else "unset"
            rows.append((PREFIX + f.name.upper(), default, f.metadata["doc"]))
        return rows


def database_url(url: str, *, asynchronous: bool) -> str:
    """Normalise a user-facing URL to the driver we use (aiosqlite / psycopg 3)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(f"{PREFIX}DATABASE_URL={url!r} is not a URL (sqlite:///path or postgresql://...)")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return ("sqlite+aiosqlite://" if asynchronous else "sqlite://") + rest
    if base in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    raise SettingsError(f"{PREFIX}DATABASE_URL: unsupported database {base!r} (use sqlite or postgresql)")


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL, or None for other databases and in-memory SQLite."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite"):
        return None
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    return Path(path) if path and path != ":memory:" else None
