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

        # Children by label values: ``labels()`` takes a lock and builds a key on every call.
        self._per_method: dict[str, tuple[Gauge, Histogram]] = {}
        self._per_outcome: dict[tuple[str, str], Counter] = {}

    def started(self, method: str) -> None:
        children = self._per_method.get(method)
        if children is None:
            children = self._per_method[method] = (self._in_flight.labels(method), self._latency.labels(method))
        children[0].inc()

    def finished(self, method: str, code: str, seconds: float) -> None:
        in_flight, latency = self._per_method[method]
        in_flight.dec()
        latency.observe(seconds)
        calls = self._per_outcome.get((method, code))
        if calls is None:
            calls = self._per_outcome[method, code] = self._calls.labels(method, code)
        calls.inc()
