"""Configuration: ``WORKSPACE_*`` environment variables, read once into one frozen object.

Only the composition root (``server.app``) and the command line read settings;
everything else receives the values it needs as arguments.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
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


#: Default rate limits (token buckets: a sustained rate per second, and the burst a full bucket allows).
#: Far above what a person at a desk does, so only scripts gone wrong and floods meet them.
RATE_LOGIN = "10/s burst 100"
RATE_WRITE = "50/s burst 500"
RATE_WRITE_ADDRESS = "200/s burst 2000"
RATE_READ = "100/s burst 1000"
RATE_READ_ADDRESS = "500/s burst 5000"
RATE_STREAM = "5/s burst 50"
RATE_STREAM_ADDRESS = "20/s burst 200"
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*s(?:\s+burst\s+(\d+))?\s*$")


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
    tls_cert_file: str = _doc(
        "PEM certificate chain the gRPC server presents (TLS, docs/DEPLOYMENT.md); empty: plaintext."
        " Set together with WORKSPACE_TLS_KEY_FILE",
        default="",
    )
    tls_key_file: str = _doc("PEM private key of WORKSPACE_TLS_CERT_FILE", default="")
    gateway_tls_cert_file: str = _doc(
        "PEM certificate chain the gateway presents on WORKSPACE_HTTP_PORT (HTTPS, gRPC over TLS); empty:"
        " plaintext. Set together with WORKSPACE_GATEWAY_TLS_KEY_FILE",
        default="",
    )
    gateway_tls_key_file: str = _doc("PEM private key of WORKSPACE_GATEWAY_TLS_CERT_FILE", default="")
    gateway_upstream_ca_file: str = _doc(
        "PEM CA certificates the gateway trusts for its replicas; set: it talks TLS to them (they serve"
        " WORKSPACE_TLS_CERT_FILE); empty: plaintext",
        default="",
    )
    database_url: str = _doc("SQLAlchemy URL; sqlite:// and postgresql:// are accepted", default=DEFAULT_DATABASE_URL)
    database_pooler: str = _doc(
        "`none`, or `transaction`: WORKSPACE_DATABASE_URL reaches PostgreSQL through a pooler in transaction mode"
        " (PgBouncer), so prepared statements are off and cross-replica wake-ups need WORKSPACE_DATABASE_LISTEN_URL"
        " (docs/OPERATIONS.md)",
        default="none",
    )
    database_listen_url: str = _doc(
        "PostgreSQL URL the replica LISTENs on for other replicas' wake-ups and typing: a direct or session-mode"
        " connection; empty: WORKSPACE_DATABASE_URL, or none with WORKSPACE_DATABASE_POOLER=transaction (the"
        " event hub then only polls, every WORKSPACE_EVENT_POLL_SECONDS). With a transaction pooler, `migrate`"
        " runs on it too",
        default="",
    )
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
    rate_limits: str = _doc(
        "`on`: every RPC is rate-limited by class, per person and per client address (docs/OPERATIONS.md); "
        "`off`: no limit at all",
        default="on",
    )
    rate_login_address: str = _doc(
        "Login and Refresh calls per client address: `RATE/s burst N` (a token bucket), or `off`", default=RATE_LOGIN
    )
    rate_write_person: str = _doc(
        "calls that change something, per person: `RATE/s burst N` or `off`", default=RATE_WRITE
    )
    rate_write_address: str = _doc(
        "calls that change something, per client address: `RATE/s burst N` or `off`", default=RATE_WRITE_ADDRESS
    )
    rate_read_person: str = _doc("other unary calls, per person: `RATE/s burst N` or `off`", default=RATE_READ)
    rate_read_address: str = _doc(
        "other unary calls, per client address: `RATE/s burst N` or `off`", default=RATE_READ_ADDRESS
    )
    rate_stream_person: str = _doc(
        "streams opened (StreamEvents, StreamActivity, StreamStats), per person: `RATE/s burst N` or `off`",
        default=RATE_STREAM,
    )
    rate_stream_address: str = _doc(
        "streams opened, per client address: `RATE/s burst N` or `off`", default=RATE_STREAM_ADDRESS
    )
    rate_max_streams_per_person: int = _doc(
        "streams one person may have open on one replica; a newer one ends their oldest (`TOO_MANY_STREAMS`)",
        default=20,
    )
    rate_trusted_proxies: str = _doc(
        "addresses or networks (CIDR), comma-separated, of the gateways whose `x-forwarded-for` names the client "
        "address; from any other peer the header is ignored. Empty: none (each call counts for its peer)",
        default="",
    )
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
        postgres = database_url(self.database_url, asynchronous=True).startswith("postgresql")
        if self.database_pooler not in ("none", "transaction"):
            raise bad("database_pooler", "must be 'none' or 'transaction'")
        if self.database_pooler != "none" and not postgres:
            raise bad("database_pooler", "applies to PostgreSQL only (WORKSPACE_DATABASE_URL is not postgresql://)")
        if self.database_listen_url:
            if not postgres:
                raise bad(
                    "database_listen_url", "applies to PostgreSQL only (WORKSPACE_DATABASE_URL is not postgresql://)"
                )
            if self.database_listen_url.partition("://")[0].split("+", 1)[0] not in ("postgresql", "postgres"):
                raise bad("database_listen_url", "must be a postgresql:// URL")
        for cert, key in (("tls_cert_file", "tls_key_file"), ("gateway_tls_cert_file", "gateway_tls_key_file")):
            check_tls_pair(self, cert, key)
        if self.gateway_upstream_ca_file:
            check_ca_file(self, "gateway_upstream_ca_file")
        if not 1 <= self.agenda_max_range_days <= 3660:
            raise bad("agenda_max_range_days", "must be between 1 and 3660")
        if self.rate_limits not in ("on", "off"):
            raise bad("rate_limits", "must be 'on' or 'off'")
        for name in RATE_SETTINGS:
            parse_rate(name, getattr(self, name))  # raises SettingsError naming the variable
        if self.rate_max_streams_per_person < 1:
            raise bad("rate_max_streams_per_person", "must be at least 1")
        self.trusted_proxies  # noqa: B018 - raises SettingsError naming the variable
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
    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """WORKSPACE_RATE_TRUSTED_PROXIES as networks."""
        networks = []
        for item in filter(None, (i.strip() for i in self.rate_trusted_proxies.split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}RATE_TRUSTED_PROXIES: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return tuple(networks)

    @property
    def async_database_url(self) -> str:
        return database_url(self.database_url, asynchronous=True)

    @property
    def sync_database_url(self) -> str:
        return database_url(self.database_url, asynchronous=False)

    @property
    def listen_conninfo(self) -> str | None:
        """The libpq URL the event listener connects to, or None: no LISTEN (SQLite, or a transaction pooler
        without WORKSPACE_DATABASE_LISTEN_URL: LISTEN there would never hear anything)."""
        if self.database_listen_url:
            url = self.database_listen_url
        elif self.database_pooler == "none" and self.async_database_url.startswith("postgresql"):
            url = self.database_url
        else:
            return None
        return "postgresql://" + url.partition("://")[2]

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


def _readable(settings: Settings, name: str) -> Path:
    """The file a setting names, or a SettingsError naming the variable when it is missing or unreadable."""
    path = Path(getattr(settings, name))
    variable = PREFIX + name.upper()
    if not path.is_file():
        raise SettingsError(f"{variable}: no such file: {path}")
    try:
        path.read_bytes()
    except OSError as e:
        raise SettingsError(f"{variable}: cannot read {path}: {e.strerror or e}") from None
    return path


def check_tls_pair(settings: Settings, cert_name: str, key_name: str) -> None:
    """Both or neither; readable PEM files; the key is the certificate's (``ssl`` checks, as grpc would)."""
    import ssl

    cert, key = getattr(settings, cert_name), getattr(settings, key_name)
    if not cert and not key:
        return
    if not cert or not key:
        missing, given = (cert_name, key_name) if not cert else (key_name, cert_name)
        raise SettingsError(f"{PREFIX}{missing.upper()}: must be set with {PREFIX}{given.upper()} (both or neither)")
    cert_path, key_path = _readable(settings, cert_name), _readable(settings, key_name)
    if b"-----BEGIN CERTIFICATE-----" not in cert_path.read_bytes():
        raise SettingsError(f"{PREFIX}{cert_name.upper()}: {cert_path} holds no PEM certificate")
    if b"PRIVATE KEY-----" not in key_path.read_bytes():
        raise SettingsError(f"{PREFIX}{key_name.upper()}: {key_path} holds no PEM private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path, password=b"")  # an encrypted key fails: grpc cannot use one
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
            raise SettingsError(
                f"{PREFIX}{key_name.upper()}: {key_path} is not the key of the certificate in"
                f" {PREFIX}{cert_name.upper()}"
            ) from None
        raise SettingsError(
            f"{PREFIX}{cert_name.upper()} / {PREFIX}{key_name.upper()}: {cert_path} and {key_path} are not a"
            f" PEM certificate chain and its unencrypted key ({e.reason or e})"
        ) from None


def check_ca_file(settings: Settings, name: str) -> None:
    import ssl

    path = _readable(settings, name)
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as e:
        raise SettingsError(f"{PREFIX}{name.upper()}: {path} holds no PEM CA certificate ({e.reason or e})") from None


#: The settings that hold one rate limit each (``parse_rate``).
RATE_SETTINGS = (
    "rate_login_address",
    "rate_write_person",
    "rate_write_address",
    "rate_read_person",
    "rate_read_address",
    "rate_stream_person",
    "rate_stream_address",
)


def parse_rate(name: str, text: str) -> tuple[float, int] | None:
    """``"RATE/s burst N"`` as (calls per second, burst), ``"off"`` as None; ``burst N`` is optional (then the
    rate rounded up, at least 1). Raises ``SettingsError`` naming the variable."""
    if text.strip().lower() == "off":
        return None
    match = _RATE.match(text)
    variable = PREFIX + name.upper()
    if match is None:
        raise SettingsError(f"{variable}={text!r} is not a rate: write e.g. '10/s burst 40' or 'off'")
    rate = float(match.group(1))
    burst = int(match.group(2)) if match.group(2) else max(1, math.ceil(rate))
    if not 0.001 <= rate <= 1_000_000:
        raise SettingsError(f"{variable}={text!r}: the rate must be between 0.001 and 1000000 per second")
    if not 1 <= burst <= 10_000_000:
        raise SettingsError(f"{variable}={text!r}: the burst must be between 1 and 10000000")
    return rate, burst


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
