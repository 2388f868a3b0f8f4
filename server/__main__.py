"""``python -m server serve | migrate | settings`` (also installed as ``workspace-server``)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import signal
import sys

from . import __version__
from .settings import Settings, SettingsError

log = logging.getLogger("workspace.server")


def _banner(app) -> str:  # type: ignore[no-untyped-def]
    s = app.settings
    lines = [
        f"Workspace {__version__} listening on {app.address} (gRPC, plaintext; reflection and health on)",
        f"  database: {s.database_url_for_display}",
        f"  metrics: http://{app.address.rsplit(':', 1)[0]}:{app.metrics_port}/metrics (Prometheus)",
    ]
    boot = app.bootstrap
    if boot is not None and boot.generated_password:
        lines += [
            "  first start: created the account 'admin' with this password (shown once, change it):",
            f"      {boot.generated_password}",
        ]
    elif boot is not None and boot.created:
        lines.append("  first start: created the account 'admin' with the password in WORKSPACE_ADMIN_PASSWORD")
    lines += [
        f"  try:   grpcurl -plaintext {app.address} list",
        f'         grpcurl -plaintext -d \'{{"username": "admin", "password": "..."}}\' '
        f"{app.address} workspace.v1.AuthService/Login",
        "  stop:  Ctrl-C (or SIGTERM) drains calls for WORKSPACE_SHUTDOWN_GRACE seconds, then exits",
    ]
    return "\n".join(lines)


#: Allocations between two young-generation collections (Python's default is 700). A stream fan-out
#: allocates thousands of short-lived objects per event; at 700 the collector runs so often, and its older
#: generations so soon after, that it set the p99 delivery latency (bench/fanout.py, docs/PERFORMANCE.md).
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Keep start-up's long-lived objects out of every collection, and collect the young one less often."""
    gc.freeze()  # SQLAlchemy, protobuf and grpc's objects from start-up are never rescanned
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _dump_stacks() -> None:
    """Every thread's stack, then every task's chain of awaits (Task.print_stack shows one frame, and fails on
    frames without a line number)."""
    faulthandler.dump_traceback(sys.stderr, all_threads=True)
    tasks = asyncio.all_tasks()
    waiting = [t for t in tasks if t.get_coro().__qualname__.startswith("AioServer._request")]
    print(f"{len(tasks)} tasks, {len(waiting)} of them gRPC's slots waiting for calls (not shown)", file=sys.stderr)
    for task in tasks - set(waiting):
        print(f"Stack for {task!r} (outermost first):", file=sys.stderr)
        awaited = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                print(f"  awaiting {awaited!r}", file=sys.stderr)
                break
            code = frame.f_code
            print(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}', file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    sys.stderr.flush()


async def serve(settings: Settings) -> None:
    from .app import build

    app = await build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 <pid>`: the stack of every thread and every asyncio task, on stderr (a stuck server, a
    # stop that does not finish). Nothing else changes.
    loop.add_signal_handler(signal.SIGUSR1, _dump_stacks)
    await app.start()
    tune_garbage_collector()
    log.info("server started", extra={"address": app.address, "port": app.port, "version": __version__})
    print(_banner(app), flush=True)
    await stop.wait()
    await app.stop()


def healthcheck(address: str, service: str, timeout: float) -> int:
    """Ask ``grpc.health.v1.Health/Check``; print the status; 0 only for SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = address.replace("0.0.0.0", "127.0.0.1", 1)
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as e:
            print(f"{address}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address} {service or '(server)'}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="The Workspace gRPC server.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the server (the default)")
    commands.add_parser("migrate", help="apply database migrations, then exit")
    commands.add_parser("settings", help="list every WORKSPACE_* variable with its default")
    probe = commands.add_parser("healthcheck", help="exit 0 if the server answers SERVING (for container probes)")
    probe.add_argument("--address", help="host:port (default: WORKSPACE_HOST:WORKSPACE_GRPC_PORT)")
    probe.add_argument("--service", default="", help="service name to check; '' is the whole server")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        if args.command != "healthcheck":
            settings.validate_for_server()
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "healthcheck":
        return healthcheck(args.address or f"{settings.host}:{settings.grpc_port}", args.service, args.timeout)
    from .observability.logging import configure_logging

    configure_logging(settings.log_level, settings.replica_id)
    if args.command == "settings":
        for name, default, doc in settings.describe():
            print(f"{name:34} {default:40} {doc}")
        return 0
    if args.command == "migrate":
        from .storage.migrate import upgrade

        upgrade(settings.database_url)
        log.info("database migrated", extra={"database": settings.database_url_for_display})
        return 0
    try:
        asyncio.run(serve(settings))
    except RuntimeError as e:  # grpc raises RuntimeError when the port cannot be bound
        log.error("cannot start", extra={"error": str(e)})
        print(f"cannot start: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
