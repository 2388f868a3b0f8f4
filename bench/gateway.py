"""The gateway's cost: the same unary call direct to the server, and through Envoy over gRPC and over REST.

    .venv/bin/python bench/gateway.py [--seconds 10] [--concurrency 50] [--database-url URL] [--calls WhoAmI,GetUser]

One run starts the real server (``python -m server migrate`` then ``python -m server serve``, default settings,
access log on) on a fresh database (PostgreSQL: a schema of its own, dropped afterwards) and one Envoy in front
of it (``python -m gateway envoy``, the configuration ``make run`` and the gateway image use, free ports). It
logs in once, then drives each call in turn, each for a warm-up and ``--seconds`` measured:

1. ``direct #1``: gRPC straight to the server (one ``grpc.aio`` channel);
2. ``gRPC/Envoy``: the same call on one ``grpc.aio`` channel to Envoy's port (plaintext HTTP/2);
3. ``REST/Envoy``: the same call as JSON over HTTP/1.1 to Envoy's port (``GET /v1/auth/me``,
   ``GET /v1/users/{id}``), transcoded by Envoy; one ``aiohttp`` session keeping ``--concurrency``
   connections alive (it costs the client about as much CPU per call as ``grpc.aio``; httpx's pool cost
   ten times as much here, and the client shares the cores);
4. ``direct #2``: direct again, so the drift of the machine over the run shows; the baseline is the mean of
   the two direct runs.

Each path has ``--concurrency`` calls in flight. The load generator is this process, on the same cores as
the server and Envoy, so a path that costs Envoy or the client more CPU also leaves less to the server. It
prints calls per second, p50 and p99 latency, each as a ratio of direct, the CPU each process used
(100% = one core) and what the rest of the machine used meanwhile (noise from outside). The goal from
the gateway issue: through Envoy at least 0.8 of the direct calls per second.

It prints and never asserts: the goal column is information. The exit status is 0 unless something broke
(a process that does not start, a path with no successful call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from _common import GatewayProcess, ServerProcess, bench_database, machine, migrated_server_env

#: Per-call deadline: a stuck server or gateway fails calls instead of hanging the bench.
CALL_TIMEOUT = 10.0
#: The goal from the gateway issue: calls per second through Envoy as a fraction of direct's (at least).
GOAL = 0.8
CALLS = ("WhoAmI", "GetUser")
PATHS = ("direct #1", "gRPC/Envoy", "REST/Envoy", "direct #2")


class HttpStatusError(Exception):
    """A REST call that did not answer 200."""


@dataclass
class Result:
    call: str
    path: str
    seconds: float
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None  # fraction of one core over the measured window
    envoy_cpu: float | None = None
    client_cpu: float | None = None
    other_cpu: float | None = None  # every other process on the machine (noise from outside the bench)

    @property
    def target(self) -> str:
        return f"{self.call} {self.path}"

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def qps(self) -> float:
        return self.calls / self.seconds

    def percentile(self, q: int) -> float:
        """The q-th percentile latency in milliseconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (all CPUs), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def error_name(e: Exception) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return e.code().name
    if isinstance(e, HttpStatusError):
        return str(e)
    return type(e).__name__


async def drive(
    result: Result,
    server: ServerProcess,
    gateway: GatewayProcess,
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    warmup: float,
) -> Result:
    """``concurrency`` workers, one call in flight each; calls that complete inside the window count."""
    begin = time.perf_counter()
    t0 = begin + warmup
    t1 = t0 + result.seconds
    marks: dict[str, tuple[float | None, float | None, float, float | None]] = {}

    async def worker() -> None:
        clock = time.perf_counter
        while (started := clock()) < t1:
            try:
                await call()
            except (grpc.aio.AioRpcError, aiohttp.ClientError, TimeoutError, HttpStatusError) as e:
                if t0 <= clock() <= t1:
                    result.errors[error_name(e)] += 1
                continue
            ended = clock()
            if t0 <= ended <= t1:
                result.latencies.append(ended - started)

    async def cpu_sampler() -> None:
        for name, at in (("start", t0), ("end", t1)):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            marks[name] = (server.cpu(), gateway.cpu(), time.process_time(), machine_busy_seconds())

    await asyncio.gather(cpu_sampler(), *(worker() for _ in range(concurrency)))
    (srv0, env0, cli0, all0), (srv1, env1, cli1, all1) = marks["start"], marks["end"]
    if srv0 is not None and srv1 is not None:
        result.server_cpu = (srv1 - srv0) / result.seconds
    if env0 is not None and env1 is not None:
        result.envoy_cpu = (env1 - env0) / result.seconds
    result.client_cpu = (cli1 - cli0) / result.seconds
    if all0 is not None and all1 is not None and result.server_cpu is not None and result.envoy_cpu is not None:
        ours = result.server_cpu + result.envoy_cpu + result.client_cpu
        result.other_cpu = max(0.0, (all1 - all0) / result.seconds - ours)
    return result


async def measure(
    args: argparse.Namespace,
    server: ServerProcess,
    gateway: GatewayProcess,
    password: str,
    log: Callable[[str], None],
) -> list[Result]:
    from workspace.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc

    async with grpc.aio.insecure_channel(server.address) as channel:
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username="admin", password=password), timeout=CALL_TIMEOUT
        )
        token = login.tokens.access_token
        metadata = (("authorization", f"Bearer {token}"),)
        me = await auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=metadata, timeout=CALL_TIMEOUT
        )
    user_id = me.user.id
    grpc_requests = {
        "WhoAmI": (auth_pb2_grpc.AuthServiceStub, "WhoAmI", auth_pb2.WhoAmIRequest()),
        "GetUser": (users_pb2_grpc.UsersServiceStub, "GetUser", users_pb2.GetUserRequest(user_id=user_id)),
    }
    rest_paths = {"WhoAmI": "/v1/auth/me", "GetUser": f"/v1/users/{user_id}"}
    base_url = f"http://{gateway.address}"

    def rest_client() -> aiohttp.ClientSession:
        # HTTP/1.1 with keep-alive: one connection per call in flight, each reused for the whole phase.
        return aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=args.concurrency),
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            headers={"authorization": f"Bearer {token}"},
        )

    async with rest_client() as client:
        for name in args.calls:
            async with client.get(rest_paths[name]) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"REST {rest_paths[name]} answered {reply.status}: {body!r}")
            log(f"REST {name}: GET {rest_paths[name]} answers {len(body)} bytes of JSON")

    results = []
    for name in args.calls:
        stub_type, method, request = grpc_requests[name]
        for path in PATHS:
            result = Result(name, path, args.seconds, [])
            if path == "REST/Envoy":
                async with rest_client() as client:
                    url = rest_paths[name]

                    async def rest_call(client: aiohttp.ClientSession = client, url: str = url) -> object:
                        async with client.get(url) as reply:
                            if reply.status != 200:
                                raise HttpStatusError(f"HTTP {reply.status}")
                            return await reply.json()

                    await rest_call()
                    await drive(result, server, gateway, rest_call, args.concurrency, args.warmup)
            else:
                address = gateway.address if path == "gRPC/Envoy" else server.address
                async with grpc.aio.insecure_channel(address) as channel:
                    stub_method = getattr(stub_type(channel), method)

                    async def grpc_call(stub_method: Callable = stub_method, request: object = request) -> object:
                        return await stub_method(request, metadata=metadata, timeout=CALL_TIMEOUT)

                    await grpc_call()
                    await drive(result, server, gateway, grpc_call, args.concurrency, args.warmup)
            log(f"{result.target}: {result.qps:.0f} calls/s")
            results.append(result)
    return results


# ------------------------------------------------------------------------------------------- reporting


def fmt_pct(x: float | None) -> str:
    return f"{x * 100:.0f}%" if x is not None else "n/a"


def report(results: list[Result], calls: list[str]) -> tuple[str, dict[str, object]]:
    head = (
        f"{'target':<20} {'calls':>8} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'÷ direct':>9} {'p99 ÷ dir':>9} "
        f"{'server':>7} {'envoy':>7} {'client':>7} {'other':>7} {'errors':>7}  goal (calls/s >= {GOAL} x direct)"
    )
    lines = [head, "-" * len(head)]
    rows: list[dict[str, object]] = []
    summary: list[str] = []

    def row(
        target: str, r: Result | None, stats: tuple[float, float, float], base: tuple[float, float], goal: bool
    ) -> None:
        (qps, p50, p99), (base_qps, base_p99) = stats, base
        ratio, p99_ratio = qps / base_qps, p99 / base_p99
        verdict = ("MET" if ratio >= GOAL else "MISSED") if goal else None
        calls_text = f"{r.calls:>8}" if r else f"{'':>8}"
        cpu = (
            " ".join(f"{fmt_pct(x):>7}" for x in (r.server_cpu, r.envoy_cpu, r.client_cpu, r.other_cpu))
            if r
            else " ".join([f"{'':>7}"] * 4)
        )
        errors = f"{sum(r.errors.values()):>7}" if r else f"{'':>7}"
        lines.append(
            f"{target:<20} {calls_text} {qps:>8.0f} {p50:>8.2f} {p99:>8.2f} {ratio:>9.2f} {p99_ratio:>9.2f} "
            f"{cpu} {errors}  {verdict or ''}"
        )
        rows.append(
            {
                "target": target,
                "calls": r.calls if r else None,
                "qps": round(qps, 1),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "qps_vs_direct": round(ratio, 3),
                "p99_vs_direct": round(p99_ratio, 3),
                "server_cpu": None if r is None or r.server_cpu is None else round(r.server_cpu, 3),
                "envoy_cpu": None if r is None or r.envoy_cpu is None else round(r.envoy_cpu, 3),
                "client_cpu": None if r is None or r.client_cpu is None else round(r.client_cpu, 3),
                "other_cpu": None if r is None or r.other_cpu is None else round(r.other_cpu, 3),
                "errors": dict(r.errors) if r else {},
                "goal": verdict,
            }
        )
        if verdict:
            summary.append(f"{target}: {ratio:.2f} of direct, {verdict}")

    for name in calls:
        mine = {r.path: r for r in results if r.call == name}
        directs = [mine["direct #1"], mine["direct #2"]]
        mean = (
            statistics.fmean(r.qps for r in directs),
            statistics.fmean(r.percentile(50) for r in directs),
            statistics.fmean(r.percentile(99) for r in directs),
        )
        base = (mean[0], mean[2])
        for path in PATHS:
            r = mine[path]
            row(r.target, r, (r.qps, r.percentile(50), r.percentile(99)), base, goal=path.endswith("/Envoy"))
        row(f"{name} direct (mean)", None, mean, base, goal=False)
        a, b = directs
        lines.append(
            f"{name} direct drift over the run: calls/s {(b.qps / a.qps - 1) * 100:+.1f}%, "
            f"p99 {(b.percentile(99) / a.percentile(99) - 1) * 100:+.1f}% (the baseline is their mean)"
        )
        lines.append("")
    lines.append(
        "CPU (100% = one core) in the measured window: the server, Envoy, this client, and every other process "
        "on the machine, hypervisor steal included (other: noise from outside the bench)"
    )
    lines.append(f"goal (gateway issue): through Envoy at least {GOAL} of the direct calls per second")
    lines += [f"  {line}" for line in summary]
    for r in results:
        if r.errors:
            lines.append(f"errors in {r.target}: {dict(r.errors)}")
    return "\n".join(lines), {"rows": rows}


# ------------------------------------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    info = machine()
    log(
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, grpcio {info['grpcio']}, "
        f"{info['platform']}"
    )
    log(
        f"load: {args.concurrency} calls in flight, {args.warmup:g} s warm-up then {args.seconds:g} s measured per "
        f"path; the load generator, the server and Envoy share these {info['cpus']} CPUs"
    )
    log(f"order, for each of {', '.join(args.calls)}: {', '.join(PATHS)}")
    with bench_database(args.database_url, "workspace-bench-", log) as (url, workdir), contextlib.ExitStack() as stack:
        log(f"database: {re.sub(r'//[^@/]*:[^@/]*@', '//***@', url)}")
        password = secrets.token_urlsafe(18)
        # One caller at full speed measures the paths, not the rate limits (docs/OPERATIONS.md).
        env = migrated_server_env(url, password, WORKSPACE_LOG_LEVEL=args.log_level, WORKSPACE_RATE_LIMITS="off")
        server = ServerProcess("server", [sys.executable, "-m", "server", "serve"], env, workdir)
        stack.callback(server.stop)
        server.start()
        log(f"server: python -m server serve (pid {server.proc.pid}) on {server.address}, log level {args.log_level}")
        # From this (the main) thread: Envoy exits when the thread that started it ends.
        gateway = GatewayProcess([server.address], workdir)
        stack.callback(gateway.stop)
        gateway.start()
        log(f"gateway: python -m gateway envoy (pid {gateway.proc.pid}) on {gateway.address}, healthy")
        results = asyncio.run(measure(args, server, gateway, password, log))
    table, data = report(results, args.calls)
    print()
    print(table)
    if args.json:
        data.update(
            machine=info,
            settings={
                "seconds": args.seconds,
                "warmup": args.warmup,
                "concurrency": args.concurrency,
                "log_level": args.log_level,
                "database": url.split("://", 1)[0],
                "aiohttp": aiohttp.__version__,
            },
        )
        print(json.dumps(data, indent=2))
    if any(r.calls == 0 for r in results):
        print("error: a path completed no call in the measured window", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per path (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each (default 1)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (default 50)")
    parser.add_argument(
        "--database-url",
        help="the server's database (default: a fresh SQLite file); for postgresql:// URLs the bench creates a "
        "schema of its own, points search_path at it and drops it afterwards",
    )
    parser.add_argument(
        "--calls",
        default="WhoAmI",
        help=f"comma-separated calls to measure, of {', '.join(CALLS)} (default WhoAmI; GetUser reads the "
        "database, so the server, not the gateway, limits it)",
    )
    parser.add_argument(
        "--log-level", default="info", help="the server's WORKSPACE_LOG_LEVEL (default info, its own default)"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    args.calls = [c.strip() for c in args.calls.split(",") if c.strip()]
    if not args.calls or any(c not in CALLS for c in args.calls):
        parser.error(f"--calls takes {', '.join(CALLS)}, comma-separated")
    if args.concurrency < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--concurrency must be at least 1, --seconds positive, --warmup not negative")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
