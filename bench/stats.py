"""What watching costs: the server's CPU with and without ten dashboards on ``MonitoringService.StreamStats``.

    .venv/bin/python bench/stats.py [--seconds 20] [--dashboards 10] [--load 50] [--database-url URL]

One run starts the real server (``python -m server serve``, default settings: a stats tick every second) on a
fresh database (PostgreSQL: a schema of its own, dropped afterwards) and keeps a steady background load on it
(``--load`` ``WhoAmI`` calls per second, so that the figures have something to count). Then three phases of
``--seconds`` each:

1. ``without #1``: no dashboard;
2. ``with``: ``--dashboards`` admins each watching ``StreamStats`` at the default tick (1 s);
3. ``without #2``: none again, so the machine's drift shows; the baseline is the mean of the two.

For each phase it prints the server's CPU (100% = one core, from /proc), the ticks the dashboards received and
their size. The ratio ``with / without`` is the cost of watching. It prints and never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from pathlib import Path

import grpc
from _common import ServerProcess, bench_database, machine, migrated_server_env
from workspace.v1 import auth_pb2, auth_pb2_grpc, monitoring_pb2, monitoring_pb2_grpc

PHASES = ("without #1", "with", "without #2")


async def log_in(channel: grpc.aio.Channel, password: str) -> tuple[tuple[str, str], ...]:
    reply = await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username="admin", password=password), timeout=30
    )
    return (("authorization", f"Bearer {reply.tokens.access_token}"),)


async def steady_load(channel: grpc.aio.Channel, bearer, per_second: float, stop: asyncio.Event) -> int:  # type: ignore[no-untyped-def]
    """``per_second`` WhoAmI calls, evenly spaced, until ``stop``; returns how many succeeded."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    done, period, due = 0, 1.0 / per_second, time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer, timeout=10)
            done += 1
        due += period
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
    return done


async def watch(channel: grpc.aio.Channel, bearer, ticks: list[int]) -> None:  # type: ignore[no-untyped-def]
    """One dashboard: counts the ticks and their bytes until cancelled."""
    stream = monitoring_pb2_grpc.MonitoringServiceStub(channel).StreamStats(
        monitoring_pb2.StreamStatsRequest(), metadata=bearer
    )
    try:
        async for reply in stream:
            ticks[0] += 1
            ticks[1] += reply.ByteSize()
    finally:
        stream.cancel()


async def phase(server: ServerProcess, channel, bearer, dashboards: int, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    ticks = [0, 0]
    watchers = [asyncio.create_task(watch(channel, bearer, ticks)) for _ in range(dashboards)]
    await asyncio.sleep(1.0)  # every dashboard connected and past its first tick
    ticks[:] = [0, 0]
    cpu0, wall0 = server.cpu() or 0.0, time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = server.cpu() or 0.0, time.monotonic()
    counted = list(ticks)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return {
        "cpu": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        "ticks": counted[0],
        "bytes": counted[1] / counted[0] if counted[0] else 0.0,
    }


async def run(args: argparse.Namespace, database_url: str, workdir: Path) -> None:
    password = secrets.token_urlsafe(12)
    server = ServerProcess(
        "server", [sys.executable, "-m", "server", "serve"], migrated_server_env(database_url, password), workdir
    )
    address = server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            bearer = await log_in(channel, password)
            stop = asyncio.Event()
            load = asyncio.create_task(steady_load(channel, bearer, args.load, stop))
            await asyncio.sleep(2.0)  # the load's figures fill the first ticks
            results = {}
            for name in PHASES:
                dashboards = args.dashboards if name == "with" else 0
                results[name] = await phase(server, channel, bearer, dashboards, args.seconds)
            stop.set()
            calls = await load
    finally:
        server.stop()
    baseline = (results["without #1"]["cpu"] + results["without #2"]["cpu"]) / 2
    print(f"{'phase':12} {'dashboards':>10} {'server CPU':>11} {'ratio':>7} {'ticks':>7} {'bytes/tick':>11}")
    for name in PHASES:
        r = results[name]
        dashboards = args.dashboards if name == "with" else 0
        ratio = r["cpu"] / baseline if baseline else float("nan")
        print(f"{name:12} {dashboards:>10} {r['cpu']:>10.1f}% {ratio:>7.2f} {r['ticks']:>7} {r['bytes']:>11.0f}")
    extra = results["with"]["cpu"] - baseline
    print(f"background load: {calls} WhoAmI calls ({args.load:g}/s requested)")
    print(
        f"cost of {args.dashboards} dashboards at one tick a second: {extra:+.1f}% of one core "
        f"({extra / args.dashboards:+.2f}% each), ratio {results['with']['cpu'] / baseline:.2f} of without"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--dashboards", type=int, default=10, help="StreamStats watchers in the middle phase")
    parser.add_argument("--load", type=float, default=50.0, help="background WhoAmI calls per second")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print(f"{args.seconds:g} s per phase, {args.dashboards} dashboards, {args.load:g} background calls/s")
    with bench_database(args.database_url, "bench-stats-") as (url, workdir):
        asyncio.run(run(args, url, workdir))


if __name__ == "__main__":
    main()
