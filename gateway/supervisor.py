"""``make run``: the server and Envoy as two child processes, started in order and stopped in order.

The server starts first; Envoy starts once the server answers SERVING, and the addresses are printed once
the gateway's ``/healthz`` answers 200. Ctrl-C (or SIGTERM) stops the server first, so that its streams
end with their resume status through a gateway that is still there, then Envoy. If either child exits on
its own, the other is stopped and the exit code says so. Envoy ends itself when the thread that started it
exits, so it is started from this process's main thread, which lives as long as it does.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.settings import Settings

from .__main__ import envoy_command, write_config
from .config import reachable_host, upstreams

#: How long each child may take to become ready before ``make run`` gives up.
START_TIMEOUT = 60.0


def _server_ready(address: str, ca_file: str = "") -> bool:
    """SERVING? Over TLS trusting ``ca_file`` (the server's own chain, WORKSPACE_TLS_CERT_FILE) when given."""
    if ca_file:
        with open(ca_file, "rb") as roots:
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots.read()))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _gateway_ready(url: str) -> bool:
    # Envoy on this machine, over HTTPS when it serves TLS: its readiness is asked, not its identity.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(ready, process: subprocess.Popen, stop: threading.Event) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None and not stop.is_set():
        if ready():
            return True
        stop.wait(0.2)
    return False


def _stop(process: subprocess.Popen, timeout: float) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _banner(settings: Settings, grpc_address: str) -> str:
    host = reachable_host(settings.host)
    tls = bool(settings.gateway_tls_cert_file)
    web = f"{'https' if tls else 'http'}://{host}:{settings.http_port}"
    grpcurl = "-cacert CA_FILE" if tls else "-plaintext"
    origins = settings.cors_origins or "none: set WORKSPACE_CORS_ORIGINS for browser pages on other origins"
    return "\n".join(
        [
            f"Gateway (Envoy) on {web}: REST, gRPC-Web and gRPC; the server itself on {grpc_address}",
            f'  REST:      curl -s -X POST {web}/v1/auth:login -d \'{{"username": "admin", "password": "..."}}\'',
            f"  gRPC:      grpcurl {grpcurl} {host}:{settings.http_port} list",
            f"  gRPC-Web:  {web} (allowed origins: {origins})",
            f"  health:    curl -i {web}/healthz",
            f"  Envoy admin (this machine only): http://127.0.0.1:{settings.gateway_admin_port}",
            "  stop:      Ctrl-C stops the server (calls drain, streams end with a resume status), then Envoy",
        ]
    )


def run(settings: Settings) -> int:
    if settings.grpc_port == 0 or settings.http_port == 0:
        print(
            "make run needs fixed ports: set WORKSPACE_GRPC_PORT and WORKSPACE_HTTP_PORT to non-zero", file=sys.stderr
        )
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    host, port = upstreams(settings)[0]
    grpc_address = f"{host}:{port}"
    # Own sessions: Ctrl-C reaches this process only, which stops the children in order.
    server = subprocess.Popen([sys.executable, "-m", "server", "serve"], start_new_session=True)
    envoy: subprocess.Popen | None = None
    try:
        if not _wait(lambda: _server_ready(grpc_address, settings.tls_cert_file), server, stop):
            return 0 if stop.is_set() else _failed("the server", server)
        envoy = subprocess.Popen(envoy_command(write_config(settings)), start_new_session=True)
        scheme = "https" if settings.gateway_tls_cert_file else "http"
        healthz = f"{scheme}://{reachable_host(settings.host)}:{settings.http_port}/healthz"
        if not _wait(lambda: _gateway_ready(healthz), envoy, stop):
            return 0 if stop.is_set() else _failed("Envoy", envoy)
        print(_banner(settings, grpc_address), flush=True)
        while not stop.wait(0.5):
            for name, process in (("the server", server), ("Envoy", envoy)):
                if process.poll() is not None:
                    return _failed(name, process)
        return 0
    finally:
        server_code = _stop(server, settings.shutdown_drain + settings.shutdown_grace + 15)
        if envoy is not None:
            _stop(envoy, 10)
        if stop.is_set() and server_code != 0:
            print(f"the server exited with {server_code} while stopping", file=sys.stderr)


def _failed(name: str, process: subprocess.Popen) -> int:
    code = process.poll()
    print(f"{name} exited with {code}" if code is not None else f"{name} did not become ready", file=sys.stderr)
    return 1
