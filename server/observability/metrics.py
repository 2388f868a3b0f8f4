"""Prometheus metrics: the standard gRPC server metrics (fed by the access log interceptor), and the
server's own figures (streams, events, the database pool) read from their sources at each scrape.

The gRPC metrics follow the names and labels of go-grpc-prometheus / java-grpc-prometheus, which
dashboards and alerts for gRPC servers expect: ``grpc_server_started_total``,
``grpc_server_handled_total`` (by ``grpc_code``) and the ``grpc_server_handling_seconds`` histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .stats import RpcWindow

#: Latency buckets, seconds: fine-grained below 50 ms where most calls land.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
#: Our streaming methods; every other method is unary (reflection is bidi, health's Watch server-streaming).
_STREAMING = {
    "/workspace.v1.ChatService/StreamEvents": "server_stream",
    "/workspace.v1.MonitoringService/StreamStats": "server_stream",
    "/grpc.health.v1.Health/Watch": "server_stream",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "bidi_stream",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "bidi_stream",
}


def _labels(method: str) -> tuple[str, str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return _STREAMING.get(method, "unary"), service, name


class RpcMetrics:
    """The hooks the access log interceptor calls, once per call. Each server has its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None, window: RpcWindow | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        #: the last minute of each RPC, for MonitoringService
        self.window = window or RpcWindow()
        self._started = Counter("grpc_server_started", "RPCs started on the server", _LABELS, registry=self.registry)
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            [*_LABELS, "grpc_code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, seconds",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._in_flight = Gauge("workspace_rpc_in_flight", "RPCs being served now", _LABELS, registry=self.registry)
        self._rate_limited = Counter(
            "workspace_rate_limited",
            "Calls refused by a rate limit (limit: login, write, read, stream; per: person, address), and streams"
            " ended because their person opened too many (limit: open_streams)",
            ["limit", "per"],
            registry=self.registry,
        )

        # Children by label values: ``labels()`` takes a lock and builds a key on every call.
        self._per_method: dict[str, tuple[Counter, Gauge, Histogram]] = {}
        self._per_outcome: dict[tuple[str, str], Counter] = {}

    def started(self, method: str) -> None:
        children = self._per_method.get(method)
        if children is None:
            labels = _labels(method)
            children = self._per_method[method] = (
                self._started.labels(*labels),
                self._in_flight.labels(*labels),
                self._latency.labels(*labels),
            )
        children[0].inc()
        children[1].inc()

    def rate_limited(self, limit: str, per: str) -> None:
        self._rate_limited.labels(limit, per).inc()

    def finished(self, method: str, code: str, seconds: float) -> None:
        _, in_flight, latency = self._per_method[method]
        in_flight.dec()
        latency.observe(seconds)
        handled = self._per_outcome.get((method, code))
        if handled is None:
            handled = self._per_outcome[method, code] = self._handled.labels(*_labels(method), code)
        handled.inc()
        self.window.record(method, code, seconds)


@dataclass(frozen=True)
class ServerGauges:
    """Where the server-wide figures come from; read at each scrape."""

    open_streams: Callable[[], dict[str, int]]
    hub_counts: Callable[[], dict[str, int]]
    pool: Callable[[], tuple[int, int]]


class ServerCollector(Collector):
    """Open streams, events delivered and dropped, and the database pool, as they are at scrape time."""

    def __init__(self, gauges: ServerGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        streams = GaugeMetricFamily(
            "workspace_open_streams",
            "Open streams on this replica, by kind: events (StreamEvents), activity (StreamActivity), stats",
            labels=["kind"],
        )
        for kind, count in sorted(self._gauges.open_streams().items()):
            streams.add_metric([kind], count)
        yield streams
        counts = self._gauges.hub_counts()
        for name, key, text in (
            ("workspace_events_stored", "stored", "Stored events read from the event log (every replica's)"),
            ("workspace_messages_created", "messages", "Chat messages among those events"),
            ("workspace_stream_events_delivered", "delivered", "Events put on this replica's streams"),
            (
                "workspace_stream_events_dropped",
                "dropped",
                "Events a stream could not take because it fell too far behind; it was ended and resumes",
            ),
        ):
            yield CounterMetricFamily(name, text, value=counts[key])
        size, in_use = self._gauges.pool()
        pool = GaugeMetricFamily("workspace_db_pool_connections", "Database connections, by state", labels=["state"])
        pool.add_metric(["in_use"], in_use)
        pool.add_metric(["idle"], max(0, size - in_use))
        yield pool
        yield GaugeMetricFamily("workspace_db_pool_size", "Database connections the pool keeps", value=size)
