"""What drawing a lot's PDF report costs the replica's other calls: WhoAmI latency while reports are drawn.

    .venv/bin/python bench/report.py [--items 2000] [--probes 300] [--database-url URL]

One run starts two real servers on one fresh database (SQLite by default; PostgreSQL: a schema of its own,
dropped afterwards): one with ``WORKSPACE_REPORT_WORKERS=1`` (the default: reports are drawn in a worker
process) and one with ``WORKSPACE_REPORT_WORKERS=0`` (in a thread of the server). It fills a lot with
``--items`` items, then, against each server in turn:

1. ``idle``: ``--probes`` WhoAmI calls one after the other, nothing else running (the baseline);
2. ``reports``: the same probes while another channel asks for the lot's report again and again.

It prints p50 and p99 of the probes, each as a ratio of the same server's idle figures, how long a report
took and how many were drawn meanwhile. Two cores are shared by this client, the server and its worker, so
only ratios measured in one run mean much. It prints and never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import grpc
from _common import ServerProcess, bench_database, machine, migrated_server_env
from google.type import date_pb2
from workspace.v1 import auth_pb2, auth_pb2_grpc, lots_pb2, lots_pb2_grpc

CALL_TIMEOUT = 60.0
BATCH = 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def login(channel: grpc.aio.Channel, password: str) -> tuple[tuple[str, str], ...]:
    reply = await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username="admin", password=password), timeout=30
    )
    return (("authorization", f"Bearer {reply.tokens.access_token}"),)


async def fill_lot(address: str, password: str, items: int) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        md = await login(channel, password)
        lots = lots_pb2_grpc.LotsServiceStub(channel)
        lot = lots_pb2.Lot(
            reference=f"BENCH-{secrets.token_hex(4)}",
            supplier="Bench supplier",
            received_date=date_pb2.Date(year=2026, month=11, day=2),
        )
        made = (await lots.CreateLot(lots_pb2.CreateLotRequest(lot=lot), metadata=md, timeout=CALL_TIMEOUT)).lot
        kinds = (lots_pb2.ITEM_TYPE_LAPTOP, lots_pb2.ITEM_TYPE_DESKTOP, lots_pb2.ITEM_TYPE_MONITOR)
        for start in range(0, items, BATCH):
            lines = [
                lots_pb2.NewLotItem(
                    serial_number=f"{lot.reference}-{n:06d}",
                    type=kinds[n % len(kinds)],
                    brand=("Dell", "Lenovo", "HP")[n % 3],
                    model=f"Model {n % 17}",
                    entry_method=lots_pb2.ENTRY_METHOD_SCAN,
                )
                for n in range(start, min(items, start + BATCH))
            ]
            request = lots_pb2.AddItemsRequest(lot_id=made.id, items=lines)
            await lots.AddItems(request, metadata=md, timeout=CALL_TIMEOUT)
        return made.id


async def probe(address: str, password: str, lot_id: int, probes: int, with_reports: bool) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel, grpc.aio.insecure_channel(address) as other:
        md = await login(channel, password)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        lots = lots_pb2_grpc.LotsServiceStub(other)
        report_times: list[float] = []
        stop = asyncio.Event()

        async def draw_reports() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                body = await lots.GetLotReport(
                    lots_pb2.GetLotReportRequest(lot_id=lot_id), metadata=md, timeout=CALL_TIMEOUT
                )
                assert body.data.startswith(b"%PDF"), "not a PDF"
                report_times.append(time.perf_counter() - started)

        for _ in range(20):  # warm-up: connections, caches
            await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=md, timeout=CALL_TIMEOUT)
        drawing = asyncio.create_task(draw_reports()) if with_reports else None
        if drawing is not None:
            await asyncio.sleep(1.0)  # the first report starts the worker process: not what is measured
        latencies = []
        for _ in range(probes):
            started = time.perf_counter()
            await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=md, timeout=CALL_TIMEOUT)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)  # probes, not load
        stop.set()
        if drawing is not None:
            await drawing
        return {
            "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99),
            "reports": len(report_times),
            "report_s": statistics.mean(report_times) if report_times else 0.0,
        }


async def run(args: argparse.Namespace, database_url: str, workdir: Path) -> None:
    password = secrets.token_urlsafe(16)
    rows = []
    lot_id = 0
    for workers in ("1", "0"):
        env = migrated_server_env(database_url, password, WORKSPACE_REPORT_WORKERS=workers)
        server = ServerProcess(f"server-w{workers}", [sys.executable, "-m", "server", "serve"], env, workdir)
        address = server.start()
        try:
            if not lot_id:
                lot_id = await fill_lot(address, password, args.items)
            idle = await probe(address, password, lot_id, args.probes, with_reports=False)
            busy = await probe(address, password, lot_id, args.probes, with_reports=True)
        finally:
            server.stop()
        where = "worker process" if workers == "1" else "server thread"
        rows.append((where, "idle", idle, idle))
        rows.append((where, "reports", busy, idle))
    print(
        f"\n{'reports drawn in':16} {'phase':8} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>6} {'p99 x':>6} "
        f"{'reports':>8} {'s/report':>9}"
    )
    for where, phase, figures, idle in rows:
        print(
            f"{where:16} {phase:8} {figures['p50']:8.2f} {figures['p99']:8.2f} "
            f"{figures['p50'] / idle['p50']:6.2f} {figures['p99'] / idle['p99']:6.2f} "
            f"{int(figures['reports']):8d} {figures['report_s']:9.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="items in the lot (the report's size)")
    parser.add_argument("--probes", type=int, default=300, help="WhoAmI calls measured per phase")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print("machine:", machine())
    print(f"items: {args.items}, probes per phase: {args.probes}")
    with bench_database(args.database_url, "bench-report-") as (url, workdir):
        asyncio.run(run(args, url, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
