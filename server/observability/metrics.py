"""Per-RPC counters and latencies (Prometheus), fed by the access log interceptor."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets, seconds: fine-grained below 50 ms where most calls land.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RpcMetrics:
    """The hooks the interceptor calls. Each server has its own registry, so tests can run several."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._calls = Counter(
            "workspace_rpc_calls", "Finished RPCs by method and status code", ["method", "code"], registry=self.registry
        )
        self._latency = Histogram(
            "workspace_rpc_duration_seconds",
            "RPC duration by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._in_flight = Gauge("workspace_rpc_in_flight", "RPCs being served", ["method"], registry=self.registry)

    def started(self, method: str) -> None:
        self._in_flight.labels(method).inc()

    def finished(self, method: str, code: str, seconds: float) -> None:
        self._in_flight.labels(method).dec()
        self._calls.labels(method, code).inc()
        self._latency.labels(method).observe(seconds)
