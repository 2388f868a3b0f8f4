"""``workspace.v1.MonitoringService``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.duration_pb2 import Duration
from workspace.v1 import monitoring_pb2, monitoring_pb2_grpc

from ..auth.interceptor import caller
from ..domain.errors import Unauthenticated, Validator
from ..domain.model import Principal
from ..domain.monitoring import (
    ClientIssue,
    ClientIssueKind,
    Monitoring,
    ReplicaFigures,
    SystemFigures,
    check_issue_text,
)
from . import paging
from .convert import check_id, timestamp

#: The shortest and longest time between two ticks a stream may ask for.
INTERVAL_MIN_SECONDS = 1.0
INTERVAL_MAX_SECONDS = 60.0

KIND_FROM_PROTO = {
    monitoring_pb2.CLIENT_ISSUE_KIND_ERROR: ClientIssueKind.ERROR,
    monitoring_pb2.CLIENT_ISSUE_KIND_FEEDBACK: ClientIssueKind.FEEDBACK,
}
KIND_TO_PROTO = {kind: value for value, kind in KIND_FROM_PROTO.items()}


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _replica(figures: ReplicaFigures) -> monitoring_pb2.ReplicaStats:
    database = figures.database
    process = figures.process
    return monitoring_pb2.ReplicaStats(
        replica_id=figures.replica_id,
        instance_id=figures.instance_id,
        version=figures.version,
        start_time=timestamp(figures.start_time),
        uptime=_duration((figures.report_time - figures.start_time).total_seconds()),
        report_time=timestamp(figures.report_time),
        connected_people=figures.connected_people,
        open_streams=[monitoring_pb2.StreamCount(kind=k, count=n) for k, n in sorted(figures.open_streams.items())],
        messages_per_minute=figures.messages_per_minute,
        events_per_second=figures.events_per_second,
        deliveries_per_second=figures.deliveries_per_second,
        rpcs=[
            monitoring_pb2.RpcStats(
                method=r.method,
                calls=r.calls,
                calls_per_second=r.calls_per_second,
                p50_latency=_duration(r.p50_seconds),
                p99_latency=_duration(r.p99_seconds),
                error_rate=r.error_rate,
                server_error_rate=r.server_error_rate,
            )
            for r in figures.rpcs
        ],
        database=monitoring_pb2.DatabaseStats(
            kind=database.kind,
            reachable=database.reachable,
            query_latency=_duration(database.query_seconds),
            check_time=timestamp(database.check_time),
            error=database.error,
            pool_size=database.pool_size,
            pool_in_use=database.pool_in_use,
        ),
        process=monitoring_pb2.ProcessStats(
            cpu_percent=process.cpu_percent, memory_rss_bytes=process.memory_rss_bytes, threads=process.threads
        ),
    )


def stats_to_proto(figures: SystemFigures) -> monitoring_pb2.Stats:
    t = figures.totals
    return monitoring_pb2.Stats(
        time=timestamp(figures.time),
        replicas=[_replica(r) for r in figures.replicas],
        totals=monitoring_pb2.StatsTotals(
            live_replicas=t.live_replicas,
            connected_people=t.connected_people,
            open_streams=t.open_streams,
            messages_per_minute=t.messages_per_minute,
            events_per_second=t.events_per_second,
            deliveries_per_second=t.deliveries_per_second,
            calls_per_second=t.calls_per_second,
            error_rate=t.error_rate,
            server_error_rate=t.server_error_rate,
        ),
    )


def issue_to_proto(issue: ClientIssue) -> monitoring_pb2.ClientIssue:
    return monitoring_pb2.ClientIssue(
        id=issue.id,
        kind=KIND_TO_PROTO[issue.kind],
        message=issue.message,
        client_version=issue.client_version,
        platform=issue.platform,
        context=issue.context,
        reporter_id=issue.reporter_id,
        create_time=timestamp(issue.create_time),
        resolve_time=timestamp(issue.resolve_time),
        resolver_id=issue.resolver_id or 0,
    )


class OpenStatsStreams:
    """How many StreamStats streams this replica serves now (one of the figures it reports)."""

    def __init__(self) -> None:
        self.count = 0


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(
        self,
        monitoring: Monitoring,
        open_streams: OpenStatsStreams,
        current: Callable[[Principal], Awaitable[Principal | None]],
    ) -> None:
        self._monitoring = monitoring
        self._open = open_streams
        #: the caller as they are now (None once their session ended), looked up again at every tick
        self._current = current

    async def GetStats(
        self, request: monitoring_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetStatsResponse:
        return monitoring_pb2.GetStatsResponse(stats=stats_to_proto(await self._monitoring.stats(caller())))

    async def StreamStats(self, request: monitoring_pb2.StreamStatsRequest, context: grpc.aio.ServicerContext) -> None:
        v = Validator()
        interval = self._monitoring.tick_seconds
        if request.HasField("interval"):
            interval = request.interval.seconds + request.interval.nanos / 1e9
            v.check(
                INTERVAL_MIN_SECONDS <= interval <= INTERVAL_MAX_SECONDS,
                "interval",
                f"must be between {INTERVAL_MIN_SECONDS:g} s and {INTERVAL_MAX_SECONDS:g} s",
            )
        v.raise_if_any()
        actor = caller()
        figures = await self._monitoring.stats(actor)  # refused here for a non-admin, before any tick
        self._open.count += 1
        try:
            while True:
                await context.write(monitoring_pb2.StreamStatsResponse(stats=stats_to_proto(figures)))
                # As for event streams: a session that ended, an account disabled or demoted, ends the stream.
                current = await self._current(actor)
                if current is None:
                    raise Unauthenticated("the session has ended; log in again", reason="SESSION_ENDED")
                actor = current
                # The next tick newer than the one sent (never the same figures twice), about ``interval`` on.
                wait = max(0.0, interval - self._monitoring.tick_seconds)
                figures = await self._monitoring.after(actor, figures, not_before=wait)
        finally:
            self._open.count -= 1

    async def ReportClientIssue(
        self, request: monitoring_pb2.ReportClientIssueRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ReportClientIssueResponse:
        v = Validator()
        issue = request.issue
        if not request.HasField("issue"):
            v.add("issue", "is required")
            v.raise_if_any()
        kind = KIND_FROM_PROTO.get(issue.kind)
        if issue.kind == monitoring_pb2.CLIENT_ISSUE_KIND_UNSPECIFIED:
            v.add("issue.kind", "is required: CLIENT_ISSUE_KIND_ERROR or CLIENT_ISSUE_KIND_FEEDBACK")
        elif kind is None:
            v.add("issue.kind", f"unknown kind {issue.kind}")
        check_issue_text(
            v,
            message=issue.message,
            client_version=issue.client_version,
            platform=issue.platform,
            context=issue.context,
        )
        v.raise_if_any()
        assert kind is not None
        stored = await self._monitoring.report_issue(
            caller(),
            kind=kind,
            message=issue.message,
            client_version=issue.client_version,
            platform=issue.platform,
            context=issue.context,
        )
        return monitoring_pb2.ReportClientIssueResponse(issue=issue_to_proto(stored))

    async def ListClientIssues(
        self, request: monitoring_pb2.ListClientIssuesRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ListClientIssuesResponse:
        v = Validator()
        size = paging.page_size(v, request.page_size)
        filters = {"list": "client issues", "resolved": request.show_resolved}
        before = paging.decode_id(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._monitoring.list_issues(
            caller(), after_key=before, show_resolved=request.show_resolved, limit=size
        )
        token = paging.encode_token(str(page.next_after_key), filters) if page.next_after_key else ""
        return monitoring_pb2.ListClientIssuesResponse(
            issues=[issue_to_proto(i) for i in page.issues], next_page_token=token
        )

    async def ResolveClientIssue(
        self, request: monitoring_pb2.ResolveClientIssueRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ResolveClientIssueResponse:
        v = Validator()
        check_id(v, "issue_id", request.issue_id)
        v.raise_if_any()
        issue = await self._monitoring.resolve_issue(caller(), request.issue_id)
        return monitoring_pb2.ResolveClientIssueResponse(issue=issue_to_proto(issue))
