"""Unary-call throughput and latency: a bare grpc.aio echo server against the real Workspace server.

    .venv/bin/python bench/unary.py [--seconds 10] [--concurrency 50] [--database-url URL] [--json]

One run starts, one at a time and each in its own subprocess:

1. a bare ``grpc.aio`` echo server (this file with ``--echo-server``: one generic handler, bytes in, the
   same bytes out, no interceptors, no protobuf);
2. the same bare server driven with ``AuthService/WhoAmI`` answered by the generated servicer alone (a
   fixed response as big as the real one, no interceptors): what gRPC and protobuf cost by themselves,
   so the gap between it and the real ``WhoAmI`` is the server's own code (auth, access log, metrics);
3. the real server (``python -m server migrate`` then ``python -m server serve``) on a fresh database,
   driven with ``AuthService/WhoAmI`` (answered from the in-memory principal cache) and then with
   ``UsersService/GetUser`` (one database read per call);
4. the echo server again, so the drift of the machine over the run shows; the baseline is the mean of the
   two echo runs.

The load generator is this process: one ``grpc.aio`` channel and ``--concurrency`` workers, each keeping one
call in flight, for a warm-up and then ``--seconds`` of measurement. It prints calls per second, p50 and
p99 latency, each as a ratio of echo, and the CPU each side used (100% = one core). The echo calls carry
an ``authorization`` header of the same length as the real token so both servers receive the same bytes.

It prints and never asserts: the PASS/MISS column is information. The exit status is 0 unless something
broke (a server that does not start, a target with no successful call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _common import ServerProcess, child_env, is_postgres, machine, migrated_server_env, postgres_schema

THIS = Path(__file__).resolve()
ECHO_METHOD = "/bench.Echo/Echo"
#: Per-call deadline: a stuck server fails calls instead of hanging the bench.
CALL_TIMEOUT = 10.0
#: The goals from the issue: qps as a fraction of echo's (at least), p99 as a multiple of echo's (at most).
GOALS = {"WhoAmI": (0.8, 2.0), "GetUser": (0.5, 2.0)}


# --------------------------------------------------------------------------------------------- echo server


def bare_whoami_response() -> object:
    """What the real server's WhoAmI answers for the bootstrap admin (same fields, same size)."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from workspace.v1 import auth_pb2, users_pb2

    now = Timestamp(seconds=int(time.time()))
    return auth_pb2.WhoAmIResponse(
        user=users_pb2.User(
            id=1,
            username="admin",
            display_name="Administrator",
            role=users_pb2.ROLE_ADMIN,
            create_time=now,
            update_time=now,
            last_login_time=now,
        )
    )


async def echo_server(host: str, port: int) -> None:
    """The baselines: a bytes echo, and ``AuthService/WhoAmI`` answered from the generated servicer alone."""
    from workspace.v1 import auth_pb2_grpc

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    response = bare_whoami_response()

    class BareAuth(auth_pb2_grpc.AuthServiceServicer):
        async def WhoAmI(self, request: object, context: grpc.aio.ServicerContext) -> object:
            return response  # no interceptors, no token, no lookup: gRPC and protobuf only

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )  # no serializers: bytes in, bytes out
    server.add_generic_rpc_handlers((handler,))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(BareAuth(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"echo listening on {host}:{bound}", flush=True)
    await stop.wait()
    await server.stop(1)


# ------------------------------------------------------------------------------------ server subprocesses


# ------------------------------------------------------------------------------------------- the load


@dataclass
class Result:
    target: str
    server: str
    seconds: float
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None  # fraction of one core over the measured window
    client_cpu: float | None = None

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


async def drive(
    target: str,
    server: ServerProcess,
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    warmup: float,
    seconds: float,
) -> Result:
    """``concurrency`` workers, one call in flight each; calls that complete inside the window count."""
    begin = time.perf_counter()
    t0 = begin + warmup
    t1 = t0 + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    marks: dict[str, tuple[float | None, float]] = {}

    async def worker() -> None:
        clock = time.perf_counter
        while (started := clock()) < t1:
            try:
                await call()
            except grpc.aio.AioRpcError as e:
                if t0 <= clock() <= t1:
                    errors[e.code().name] += 1
                continue
            ended = clock()
            if t0 <= ended <= t1:
                latencies.append(ended - started)

    async def cpu_sampler() -> None:
        for name, at in (("start", t0), ("end", t1)):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            marks[name] = (server.cpu(), time.process_time())

    await asyncio.gather(cpu_sampler(), *(worker() for _ in range(concurrency)))
    result = Result(target, server.name, seconds, latencies, errors)
    (srv0, cli0), (srv1, cli1) = marks["start"], marks["end"]
    if srv0 is not None and srv1 is not None:
        result.server_cpu = (srv1 - srv0) / seconds
    result.client_cpu = (cli1 - cli0) / seconds
    return result


# ----------------------------------------------------------------------------------------- the phases


async def bench_baseline(
    args: argparse.Namespace, workdir: Path, label: str, token_length: int, log: Callable[[str], None]
) -> Result:
    """``label`` "echo #N" drives the bytes echo; "WhoAmI bare" the servicer-only WhoAmI."""
    from workspace.v1 import auth_pb2, auth_pb2_grpc

    server = ServerProcess(
        label,
        [sys.executable, str(THIS), "--echo-server", "--port", "0"],
        child_env({}),
        workdir,
    )
    try:
        address = await asyncio.to_thread(server.start)
        log(f"{label}: bare grpc.aio server on {address}")
        payload = secrets.token_bytes(args.payload_bytes)
        metadata = (("authorization", "Bearer " + "x" * token_length),)
        async with grpc.aio.insecure_channel(address) as channel:
            if label.startswith("echo"):
                echo = channel.unary_unary(ECHO_METHOD)  # no serializers: bytes in, bytes out

                async def call() -> object:
                    return await echo(payload, metadata=metadata, timeout=CALL_TIMEOUT)

            else:
                whoami = auth_pb2_grpc.AuthServiceStub(channel).WhoAmI
                request = auth_pb2.WhoAmIRequest()

                async def call() -> object:
                    return await whoami(request, metadata=metadata, timeout=CALL_TIMEOUT)

            await call()
            target = "echo" if label.startswith("echo") else label
            return await drive(target, server, call, args.concurrency, args.warmup, args.seconds)
    finally:
        await asyncio.to_thread(server.stop)


async def bench_real(
    args: argparse.Namespace, workdir: Path, database_url: str, log: Callable[[str], None]
) -> tuple[list[Result], int]:
    from workspace.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc

    password = secrets.token_urlsafe(18)
    env = await asyncio.to_thread(
        migrated_server_env,
        database_url,
        password,
        WORKSPACE_LOG_LEVEL=args.log_level,
        # One caller at full speed measures the server, not its rate limits (docs/OPERATIONS.md).
        WORKSPACE_RATE_LIMITS="off",
        **dict(kv.split("=", 1) for kv in args.server_env),
    )
    argv = [sys.executable, "-m", "server", "serve"]
    if args.profile:
        argv = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "server", "serve"]
    server = ServerProcess("server", argv, env, workdir)
    try:
        address = await asyncio.to_thread(server.start)
        log(
            f"server: python -m server serve (pid {server.proc.pid}) on {address}, log level {args.log_level}, "
            f"stderr to {server.stderr_path}"
        )
        async with grpc.aio.insecure_channel(address) as channel:
            login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(username="admin", password=password), timeout=CALL_TIMEOUT
            )
            token = login.tokens.access_token
            metadata = (("authorization", f"Bearer {token}"),)
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            users = users_pb2_grpc.UsersServiceStub(channel)
            me = await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=metadata, timeout=CALL_TIMEOUT)
            whoami_request = auth_pb2.WhoAmIRequest()
            get_request = users_pb2.GetUserRequest(user_id=me.user.id)
            got = await users.GetUser(get_request, metadata=metadata, timeout=CALL_TIMEOUT)
            log(f"server: WhoAmI answers {me.ByteSize()} bytes, GetUser(user_id={me.user.id}) {got.ByteSize()} bytes")

            async def whoami() -> object:
                return await auth.WhoAmI(whoami_request, metadata=metadata, timeout=CALL_TIMEOUT)

            async def get_user() -> object:
                return await users.GetUser(get_request, metadata=metadata, timeout=CALL_TIMEOUT)

            results = []
            for target, call in (("WhoAmI", whoami), ("GetUser", get_user)):
                results.append(await drive(target, server, call, args.concurrency, args.warmup, args.seconds))
                log(f"{target}: {results[-1].qps:.0f} qps")
            return results, len(token)
    finally:
        await asyncio.to_thread(server.stop)
        if server.proc is not None and server.proc.returncode not in (0, None):
            log(f"server exited with status {server.proc.returncode}:\n{server.tail()}")


# ------------------------------------------------------------------------------------------- reporting


def fmt_pct(x: float | None) -> str:
    return f"{x * 100:.0f}%" if x is not None else "n/a"


def report(echo_runs: list[Result], real: list[Result]) -> tuple[str, dict[str, object]]:
    base_qps = statistics.fmean(r.qps for r in echo_runs)
    base_p50 = statistics.fmean(r.percentile(50) for r in echo_runs)
    base_p99 = statistics.fmean(r.percentile(99) for r in echo_runs)
    head = (
        f"{'target':<12} {'calls':>8} {'qps':>8} {'p50 ms':>8} {'p99 ms':>8} {'qps/echo':>9} {'p99/echo':>9} "
        f"{'srv cpu':>8} {'cli cpu':>8} {'errors':>7}  goal (qps >=, p99 <= x echo)"
    )
    lines = [head, "-" * len(head)]
    rows: list[dict[str, object]] = []

    def row(name: str, r: Result | None, qps: float, p50: float, p99: float) -> None:
        qps_ratio, p99_ratio = qps / base_qps, p99 / base_p99
        goal = ""
        verdict: str | None = None
        if name in GOALS:
            min_qps, max_p99 = GOALS[name]
            ok = qps_ratio >= min_qps and p99_ratio <= max_p99
            verdict = "PASS" if ok else "MISS"
            misses = [
                *(["qps"] if qps_ratio < min_qps else []),
                *(["p99"] if p99_ratio > max_p99 else []),
            ]
            goal = f"{verdict} (>= {min_qps:.1f}, <= {max_p99:.1f}x)"
            if misses:
                goal += f" missed: {', '.join(misses)}"
        calls = f"{r.calls:>8}" if r else f"{'':>8}"
        cpu = f"{fmt_pct(r.server_cpu):>8} {fmt_pct(r.client_cpu):>8}" if r else f"{'':>8} {'':>8}"
        errors = f"{sum(r.errors.values()):>7}" if r else f"{'':>7}"
        lines.append(
            f"{name:<12} {calls} {qps:>8.0f} {p50:>8.2f} {p99:>8.2f} {qps_ratio:>9.2f} {p99_ratio:>9.2f} "
            f"{cpu} {errors}  {goal}"
        )
        rows.append(
            {
                "target": name,
                "calls": r.calls if r else None,
                "qps": round(qps, 1),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "qps_vs_echo": round(qps_ratio, 3),
                "p99_vs_echo": round(p99_ratio, 3),
                "server_cpu": None if r is None or r.server_cpu is None else round(r.server_cpu, 3),
                "client_cpu": None if r is None or r.client_cpu is None else round(r.client_cpu, 3),
                "errors": dict(r.errors) if r else {},
                "goal": verdict,
            }
        )

    for i, r in enumerate(echo_runs, 1):
        row(f"echo #{i}", r, r.qps, r.percentile(50), r.percentile(99))
    row("echo", None, base_qps, base_p50, base_p99)
    for r in real:
        row(r.target, r, r.qps, r.percentile(50), r.percentile(99))
    if len(echo_runs) == 2:
        a, b = echo_runs
        lines.append(
            f"echo drift over the run: qps {(b.qps / a.qps - 1) * 100:+.1f}%, "
            f"p99 {(b.percentile(99) / a.percentile(99) - 1) * 100:+.1f}% (the baseline 'echo' is their mean)"
        )
    for r in (*echo_runs, *real):
        if r.errors:
            lines.append(f"errors in {r.target} on {r.server}: {dict(r.errors)}")
    return "\n".join(lines), {"rows": rows}


# ------------------------------------------------------------------------------------------------ main


async def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    info = machine()
    log(
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, grpcio {info['grpcio']}, "
        f"{info['platform']}"
    )
    log(
        f"load: {args.concurrency} calls in flight on one channel, {args.warmup:g} s warm-up then {args.seconds:g} s "
        f"measured per target; echo payload {args.payload_bytes} bytes each way"
    )
    log("order: echo #1, WhoAmI bare, then the real server (WhoAmI, then GetUser), then echo #2")
    with tempfile.TemporaryDirectory(prefix="workspace-bench-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            if args.database_url:
                url = args.database_url
                if is_postgres(url):
                    url = stack.enter_context(postgres_schema(url, log))
            else:
                url = f"sqlite:///{workdir / 'bench.db'}"
            shown = re.sub(r"//[^@/]*:[^@/]*@", "//***@", url)
            log(f"database: {shown}")
            # The echo run's header must be as long as the real token, which is not known yet: a JWT from
            # this server is about 200 characters; the second echo run uses the real length.
            echo1 = await bench_baseline(args, workdir, "echo #1", 200, log)
            log(f"echo #1: {echo1.qps:.0f} qps")
            bare = await bench_baseline(args, workdir, "WhoAmI bare", 200, log)
            log(f"WhoAmI bare: {bare.qps:.0f} qps")
            real, token_length = await bench_real(args, workdir, url, log)
            echo2 = await bench_baseline(args, workdir, "echo #2", token_length, log)
            log(f"echo #2: {echo2.qps:.0f} qps")
    results = [echo1, bare, *real, echo2]
    table, data = report([echo1, echo2], [bare, *real])
    print()
    print(table)
    if args.json:
        data.update(
            machine=info,
            settings={
                "seconds": args.seconds,
                "warmup": args.warmup,
                "concurrency": args.concurrency,
                "payload_bytes": args.payload_bytes,
                "log_level": args.log_level,
                "database": url.split("://", 1)[0],
            },
        )
        print(json.dumps(data, indent=2))
    if any(r.calls == 0 for r in results):
        print("error: a target completed no call in the measured window", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each (default 1)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (default 50)")
    parser.add_argument(
        "--database-url",
        help="the real server's database (default: a fresh SQLite file); for postgresql:// URLs the bench "
        "creates a schema of its own, points search_path at it and drops it afterwards",
    )
    parser.add_argument(
        "--log-level", default="info", help="the real server's WORKSPACE_LOG_LEVEL (default info, its own default)"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra variable for the real server"
    )
    parser.add_argument("--payload-bytes", type=int, default=64, help="echo request and response size (default 64)")
    parser.add_argument("--profile", metavar="FILE", help="run the real server under cProfile, writing FILE")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    if args.echo_server:
        asyncio.run(echo_server(args.host, args.port))
        return 0
    for kv in args.server_env:
        if "=" not in kv:
            parser.error(f"--server-env wants KEY=VALUE, not {kv!r}")
    if args.concurrency < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--concurrency must be at least 1, --seconds positive, --warmup not negative")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
