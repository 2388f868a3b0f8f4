"""``python -m server serve | migrate | settings`` (also installed as ``workspace-server``)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import signal
import sys
from pathlib import Path

from . import __version__
from .settings import Settings, SettingsError

log = logging.getLogger("workspace.server")


def _display(url: str) -> str:
    """A database URL with any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _pooler_note(s: Settings) -> str:
    """How this replica hears about other replicas' events, when a transaction pooler is in the way."""
    if s.database_pooler != "transaction":
        return ""
    if s.database_listen_url:
        return " (through a transaction pooler; LISTEN on WORKSPACE_DATABASE_LISTEN_URL)"
    return (
        f" (through a transaction pooler; no LISTEN: other replicas' events arrive by polling every"
        f" {s.event_poll_seconds:g}s, set WORKSPACE_DATABASE_LISTEN_URL)"
    )


def _banner(app) -> str:  # type: ignore[no-untyped-def]
    s = app.settings
    transport = f"TLS with {s.tls_cert_file}" if s.tls_cert_file else "plaintext"
    lines = [
        f"Workspace {__version__} listening on {app.address} (gRPC, {transport}; reflection and health on)",
        f"  database: {s.database_url_for_display}{_pooler_note(s)}",
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
    # grpcurl trusts the system's CAs; a private CA is named with -cacert (the chain file, if it holds it).
    security = f"-cacert {s.tls_cert_file}" if s.tls_cert_file else "-plaintext"
    lines += [
        f"  try:   grpcurl {security} {app.address} list",
        f'         grpcurl {security} -d \'{{"username": "admin", "password": "..."}}\' '
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


def healthcheck(
    address: str, service: str, timeout: float, *, ca_file: str | None = None, server_name: str | None = None
) -> int:
    """Ask ``grpc.health.v1.Health/Check``; print the status; 0 only for SERVING.

    With ``ca_file`` the call goes over TLS, trusting the certificates in that file; ``server_name`` is the
    name the server's certificate must carry when it is not the address's host.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = address.replace("0.0.0.0", "127.0.0.1", 1)
    if ca_file is None:
        channel = grpc.insecure_channel(address)
    else:
        try:
            roots = Path(ca_file).read_bytes()
        except OSError as e:
            print(f"cannot read the CA file {ca_file}: {e.strerror or e}", file=sys.stderr)
            return 2
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
    with channel:
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
    probe.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="call over TLS (default: when WORKSPACE_TLS_CERT_FILE is set)",
    )
    probe.add_argument(
        "--ca-file",
        help="PEM CA certificates to trust over TLS (default: the chain in WORKSPACE_TLS_CERT_FILE)",
    )
    probe.add_argument("--server-name", help="the name the server's certificate carries, if not the address's host")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        if args.command != "healthcheck":
            settings.validate_for_server()
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "healthcheck":
        tls = bool(settings.tls_cert_file or args.ca_file) if args.tls is None else args.tls
        ca_file = (args.ca_file or settings.tls_cert_file) if tls else None
        if tls and not ca_file:
            print("healthcheck --tls: give --ca-file (WORKSPACE_TLS_CERT_FILE is not set)", file=sys.stderr)
            return 2
        address = args.address or f"{settings.host}:{settings.grpc_port}"
        return healthcheck(address, args.service, args.timeout, ca_file=ca_file, server_name=args.server_name)
    from .observability.logging import configure_logging

    configure_logging(settings.log_level, settings.replica_id)
    if args.command == "settings":
        for name, default, doc in settings.describe():
            print(f"{name:34} {default:40} {doc}")
        return 0
    if args.command == "migrate":
        from .storage.migrate import upgrade

        target = settings.database_url
        if settings.database_pooler == "transaction":
            # Alembic's DDL, version table and session state want one server connection: not a transaction pooler.
            if not settings.database_listen_url:
                print(
                    "cannot migrate through a transaction pooler (WORKSPACE_DATABASE_POOLER=transaction): set"
                    " WORKSPACE_DATABASE_LISTEN_URL to a direct connection, or run migrate with"
                    " WORKSPACE_DATABASE_URL direct and WORKSPACE_DATABASE_POOLER=none",
                    file=sys.stderr,
                )
                return 2
            target = settings.database_listen_url
        upgrade(target)
        log.info("database migrated", extra={"database": _display(target)})
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
