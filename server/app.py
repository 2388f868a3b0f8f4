"""The composition root: the only code that reads ``Settings`` and builds objects from them.

``build(settings)`` wires storage, auth, the domain services, the servicers and
the interceptors into a ready ``Application``; ``python -m server serve`` and
the tests both call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from sqlalchemy import text
from workspace.v1 import (
    activity_pb2,
    activity_pb2_grpc,
    agenda_pb2,
    agenda_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    lots_pb2,
    lots_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    presence_pb2,
    presence_pb2_grpc,
    shortcuts_pb2,
    shortcuts_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)

from . import __version__
from .api.activity import ActivityServicer
from .api.agenda import AgendaServicer
from .api.auth import AuthServicer
from .api.chat import ChatServicer
from .api.compression import SERVER_COMPRESSION_OPTION, ReplyCompression
from .api.errors import ErrorInterceptor
from .api.lots import LotsServicer
from .api.monitoring import MonitoringServicer, OpenStatsStreams
from .api.presence import PresenceServicer
from .api.shortcuts import ShortcutsServicer
from .api.users import UsersServicer
from .auth.interceptor import AuthInterceptor, PrincipalCache
from .auth.passwords import Argon2Hasher
from .auth.tokens import TokenCodec
from .domain.activity import Activity
from .domain.agenda import Agenda
from .domain.chat import Chat
from .domain.events import ServerShuttingDown
from .domain.holidays import PublicHolidays
from .domain.lot_report import render_lot_report
from .domain.lots import Lots
from .domain.model import LiveEvent, Principal
from .domain.monitoring import Monitoring
from .domain.presence import Presence
from .domain.sessions import BootstrapResult, LoginPolicy, Sessions
from .domain.shortcuts import Shortcuts
from .domain.users import Directory
from .events.hub import EventHub
from .events.listener import LIVE_CHANNEL, PostgresListener, live_to_json
from .events.streams import ActivityStreams, EventStreams
from .interception import Admission, InterceptorPipeline, Uninterrupted
from .observability.access_log import AccessLogInterceptor
from .observability.metrics import RpcMetrics, ServerCollector, ServerGauges
from .observability.stats import ReplicaMeter
from .rate_limits import Rate, RateClass, RateLimits, classify
from .settings import Settings, parse_rate
from .storage.database import create_engine, pool_usage, probe
from .storage.unit_of_work import SqlUnitOfWorkFactory
from .workers import WorkerProcesses

log = logging.getLogger("workspace.server")

#: Every Workspace service, by full name: health answers for each, reflection lists each.
SERVICE_NAMES = (
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name,
    chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    presence_pb2.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name,
    shortcuts_pb2.DESCRIPTOR.services_by_name["ShortcutsService"].full_name,
    activity_pb2.DESCRIPTOR.services_by_name["ActivityService"].full_name,
    agenda_pb2.DESCRIPTOR.services_by_name["AgendaService"].full_name,
    lots_pb2.DESCRIPTOR.services_by_name["LotsService"].full_name,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


#: How long a stopping server still answers the calls it refuses, once every admitted call has finished.
REFUSAL_GRACE_SECONDS = 1.0
#: The longest a stopping server waits for one background step (the last stats tick, its withdrawal).
STOP_STEP_SECONDS = 5.0


@dataclass
class Application:
    settings: Settings
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    sessions: Sessions
    metrics: RpcMetrics
    hub: EventHub
    listener: PostgresListener | None
    presence: Presence
    admission: Admission
    monitoring: Monitoring
    instance: str
    port: int
    _closers: list = field(default_factory=list)
    bootstrap: BootstrapResult | None = None
    #: where Prometheus scrapes (``http://host:port/metrics``), once started
    metrics_port: int = 0
    _metrics_server: object = None
    _ticks: asyncio.Task[None] | None = None
    _ticks_stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"{_host_for_url(self.settings.host)}:{self.port}"

    async def start(self) -> None:
        await self.sessions.prepare()
        self.bootstrap = await self.sessions.ensure_admin(self.settings.admin_password)
        await self.hub.start()
        await self.presence.start()
        if self.listener is not None:
            await self.listener.start()
        await self.server.start()
        metrics_server, _ = start_http_server(
            self.settings.metrics_port,
            addr=_host_for_url(self.settings.host).strip("[]"),
            registry=self.metrics.registry,
        )
        self._metrics_server, self.metrics_port = metrics_server, metrics_server.server_port
        self._ticks = asyncio.create_task(self._tick(), name="stats-ticks")
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def _tick(self) -> None:
        """Measure and publish this replica's figures every tick (MonitoringService reads them), until stop."""
        while not self._ticks_stop.is_set():
            try:
                await self.monitoring.tick()
            except Exception:
                log.exception("cannot measure this replica's figures")
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, never wait_for: see EventHub._run
                async with asyncio.timeout(self.settings.stats_interval_seconds):
                    await self._ticks_stop.wait()

    async def _stop_ticks(self) -> None:
        """End the stats loop between two ticks, and withdraw this replica's figures.

        Never cancel a tick mid-write: on PostgreSQL the cancelled transaction's connection can keep its
        lock on this replica's row while it is cleaned up, and the withdraw below then waits for it.
        """
        self._ticks_stop.set()
        if self._ticks is not None:
            try:
                async with asyncio.timeout(STOP_STEP_SECONDS):
                    await asyncio.shield(self._ticks)
            except TimeoutError:
                log.warning("the stats tick did not finish in time; cancelled")
                self._ticks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._ticks
        try:  # gone in three ticks anyway
            async with asyncio.timeout(STOP_STEP_SECONDS):
                await self.monitoring.withdraw(self.instance)
        except Exception:
            log.warning("could not withdraw this replica's figures; they expire in three ticks", exc_info=True)

    async def stop(self, grace: float | None = None) -> None:
        """Health turns NOT_SERVING, new calls are refused, in-flight calls get ``grace`` seconds, then all closes.

        With ``shutdown_drain`` set, calls are still served for that long after health turns NOT_SERVING, so
        load balancers that poll health stop sending calls here before they would be refused.
        """
        grace = self.settings.shutdown_grace if grace is None else grace
        await self.health.enter_graceful_shutdown()
        log.info("shutdown started", extra={"grace_seconds": grace, "drain_seconds": self.settings.shutdown_drain})
        if self.settings.shutdown_drain:
            await asyncio.sleep(self.settings.shutdown_drain)
        # From here new calls are refused with UNAVAILABLE (health and reflection still answer).
        self.admission.close("the server is shutting down; retry on another replica")
        # Streams never finish by themselves: end them now, telling clients where to resume elsewhere.
        await self.hub.stop(ServerShuttingDown.REASON, "the server is shutting down; reconnect")
        await self.monitoring.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self.presence.stop()
        await self._stop_ticks()
        try:
            async with asyncio.timeout(grace):
                await self.admission.drained()
        except TimeoutError:
            calls = self.admission.in_flight
            log.warning("calls still running after the grace period are cancelled", extra={"calls": calls})
        # A short grace, not none: a call that arrived as the last ones drained is being refused with
        # UNAVAILABLE (which a gateway retries elsewhere) and must get to say so; stop(0) would cancel it.
        await self.server.stop(REFUSAL_GRACE_SECONDS)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        for close in reversed(self._closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
        log.info("shutdown complete")


async def build(settings: Settings) -> Application:
    engine = create_engine(
        settings.async_database_url, pool_size=settings.db_pool_size, pooler=settings.database_pooler
    )
    uow = SqlUnitOfWorkFactory(engine)
    hasher = Argon2Hasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        workers=settings.hash_workers,
    )
    codec = TokenCodec(settings.jwt_secret, timedelta(seconds=settings.access_token_ttl))
    principals = PrincipalCache(
        lambda user_id, session_id: sessions.principal(user_id, session_id), ttl=settings.auth_cache_seconds
    )
    policy = LoginPolicy(
        max_failures=settings.login_max_failures,
        lockout=timedelta(seconds=settings.login_lockout_seconds),
        access_ttl=timedelta(seconds=settings.access_token_ttl),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl),
        reuse_grace=timedelta(seconds=settings.refresh_reuse_grace),
    )
    sessions = Sessions(uow, hasher, codec, principals, policy, utc_now)
    directory = Directory(uow, hasher, principals, utc_now)
    chat = Chat(uow, utc_now, max_message_chars=settings.chat_max_message_chars)
    shortcuts = Shortcuts(uow, utc_now)
    agenda = Agenda(
        uow,
        utc_now,
        PublicHolidays(settings.holidays_country, settings.holidays_subdivision),
        max_range_days=settings.agenda_max_range_days,
    )
    hub = EventHub(
        uow,
        queue_size=settings.stream_queue_size,
        poll_seconds=settings.event_poll_seconds,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
        retention=timedelta(days=settings.event_retention_days),
        clock=utc_now,
    )
    uow.events_committed = hub.wake

    async def current(principal: Principal) -> Principal | None:
        """The caller as they are now: None once their session ended or their account was disabled."""
        return await principals.get(principal.user_id, principal.session_id)

    async def still_signed_in(principal: Principal) -> bool:
        return await current(principal) is not None

    # This process among all that share the database (replica ids may repeat: hostnames, restarts).
    instance = f"{settings.replica_id}:{os.getpid()}:{secrets.token_hex(3)}"
    presence = Presence(
        uow, utc_now, hub.publish_live, instance=instance, grace_seconds=settings.presence_grace_seconds
    )
    streams = EventStreams(hub, uow, presence, still_signed_in)
    activity_streams = ActivityStreams(hub, uow, current)
    listener = None
    if engine.dialect.name == "postgresql":
        if settings.listen_conninfo is not None:
            listener = PostgresListener(settings.listen_conninfo, hub.wake, hub.offer_live, instance=instance)
        else:  # LISTEN through a transaction pooler would never hear anything: say so rather than pretend
            log.warning(
                "WORKSPACE_DATABASE_POOLER=transaction without WORKSPACE_DATABASE_LISTEN_URL: no LISTEN, so other"
                " replicas' events reach this one's streams only by polling, and their typing not at all",
                extra={"poll_seconds": settings.event_poll_seconds},
            )

        async def send_to_other_replicas(event: LiveEvent) -> None:
            async with engine.connect() as connection:
                notify = text("SELECT pg_notify(:channel, :payload)")
                await connection.execute(notify, {"channel": LIVE_CHANNEL, "payload": live_to_json(event, instance)})
                await connection.commit()

        hub.remote = send_to_other_replicas
    metrics = RpcMetrics()
    open_stats = OpenStatsStreams()

    def open_streams() -> dict[str, int]:
        by_kind = hub.subscribers_by_kind()
        return {"events": by_kind.get("events", 0), "activity": by_kind.get("activity", 0), "stats": open_stats.count}

    meter = ReplicaMeter(
        replica_id=settings.replica_id,
        instance_id=instance,
        version=__version__,
        database_kind=engine.dialect.name,
        clock=utc_now,
        rpcs=metrics.window,
        counts=lambda: asdict(hub.counts),
        people=hub.subscribed_people,
        open_streams=open_streams,
        probe=lambda: probe(engine),
        pool=lambda: pool_usage(engine),
    )
    monitoring = Monitoring(
        uow,
        utc_now,
        measure=meter.measure,
        tick_seconds=settings.stats_interval_seconds,
        presence_alive_since=presence.alive_since,
    )
    metrics.registry.register(
        ServerCollector(ServerGauges(open_streams, lambda: asdict(hub.counts), lambda: pool_usage(engine)))
    )

    # Outermost first: the access log times and logs everything, errors become statuses inside it.
    admission = Admission()
    interceptors = [
        AccessLogInterceptor(metrics),
        admission,
        Uninterrupted(),  # the work of a call whose caller went away still ends properly (and admission waits)
        ErrorInterceptor(),
        AuthInterceptor(codec, principals),
    ]
    if settings.rate_limits == "on":
        limits = rate_limits(settings, metrics)
        # By address before authentication (floods of bad tokens count too), by person after it.
        interceptors[4:] = [limits.by_address, interceptors[4], limits.by_person]
    # Innermost: only replies worth compressing keep the compression level below (server/api/compression.py).
    interceptors.append(ReplyCompression())
    server = grpc.aio.server(
        interceptors=[InterceptorPipeline(interceptors)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            SERVER_COMPRESSION_OPTION,  # gzip, for clients that accept it; negotiated per call by grpc
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Liveness: ping a quiet connection, close it when the ping goes unanswered. A stream only sends
            # (heartbeats every 20 s), so pings must not wait for data from the client. gRPC core times pings
            # out after ping_timeout_ms (60 s by default); keepalive_timeout_ms alone does not shorten that.
            ("grpc.keepalive_time_ms", round(settings.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", round(settings.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.ping_timeout_ms", round(settings.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
        ],
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(sessions), server)
    users_pb2_grpc.add_UsersServiceServicer_to_server(UsersServicer(directory), server)
    chat_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(chat, streams), server)
    presence_pb2_grpc.add_PresenceServiceServicer_to_server(PresenceServicer(presence), server)
    monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server(
        MonitoringServicer(monitoring, open_stats, current), server
    )
    shortcuts_pb2_grpc.add_ShortcutsServiceServicer_to_server(ShortcutsServicer(shortcuts), server)
    activity_pb2_grpc.add_ActivityServiceServicer_to_server(ActivityServicer(Activity(uow), activity_streams), server)
    agenda_pb2_grpc.add_AgendaServiceServicer_to_server(AgendaServicer(agenda, utc_now), server)
    reports = WorkerProcesses(settings.report_workers)
    if settings.report_workers:
        render = functools.partial(reports.run, render_lot_report)
    else:  # no extra process, at the cost of holding the GIL while a report is drawn (bench/report.py)
        render = functools.partial(asyncio.to_thread, render_lot_report)
    lots = Lots(uow, utc_now, render)
    lots_pb2_grpc.add_LotsServiceServicer_to_server(LotsServicer(lots), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    bind = f"{_host_for_url(settings.host)}:{settings.grpc_port}"
    credentials = server_credentials(settings)
    port = server.add_secure_port(bind, credentials) if credentials else server.add_insecure_port(bind)
    return Application(
        settings=settings,
        server=server,
        health=health_servicer,
        sessions=sessions,
        metrics=metrics,
        hub=hub,
        listener=listener,
        presence=presence,
        admission=admission,
        monitoring=monitoring,
        instance=instance,
        port=port,
        _closers=[engine.dispose, hasher.close, reports.close],
    )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from WORKSPACE_TLS_CERT_FILE / _KEY_FILE (checked by ``Settings.validate``); None: plaintext."""
    if not settings.tls_cert_file:
        return None
    with open(settings.tls_cert_file, "rb") as cert, open(settings.tls_key_file, "rb") as key:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


def rate_limits(settings: Settings, metrics: RpcMetrics) -> RateLimits:
    """The limits of WORKSPACE_RATE_*, for every RPC of every service (classified from the descriptors)."""
    pool = descriptor_pool.Default()

    def rate(name: str) -> Rate | None:
        parsed = parse_rate(name, getattr(settings, name))
        return None if parsed is None else Rate(*parsed)

    return RateLimits(
        classify(pool.FindServiceByName(name) for name in SERVICE_NAMES),
        per_person={
            RateClass.WRITE: rate("rate_write_person"),
            RateClass.READ: rate("rate_read_person"),
            RateClass.STREAM: rate("rate_stream_person"),
        },
        per_address={
            RateClass.LOGIN: rate("rate_login_address"),
            RateClass.WRITE: rate("rate_write_address"),
            RateClass.READ: rate("rate_read_address"),
            RateClass.STREAM: rate("rate_stream_address"),
        },
        max_streams_per_person=settings.rate_max_streams_per_person,
        trusted_proxies=settings.trusted_proxies,
        refused=metrics.rate_limited,
    )


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
