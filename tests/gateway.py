"""A real Envoy in front of real servers, as ``python -m gateway envoy`` runs it: for the gateway tests.

The gateway listens on a free port (port 0; the bound port is read from Envoy's admin interface, whose own
address Envoy writes to a file) and checks its replicas' health every 0.2 s, so tests wait little.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .servers import ROOT, START_TIMEOUT, wait_until


class GatewayProcess:
    def __init__(self, upstreams: list[str], *, ca_file: str | None = None, **env: str) -> None:
        #: the CA that signed the gateway's certificate when it serves TLS (WORKSPACE_GATEWAY_TLS_*)
        self.ca_file = ca_file
        self.folder = Path(tempfile.mkdtemp(prefix="gateway-test-"))
        self.env = {
            **os.environ,
            "WORKSPACE_HOST": "127.0.0.1",
            "WORKSPACE_HTTP_PORT": "0",
            "WORKSPACE_GATEWAY_ADMIN_PORT": "0",
            "WORKSPACE_GATEWAY_UPSTREAMS": ",".join(upstreams),
            "WORKSPACE_GATEWAY_HEALTH_SECONDS": "0.2",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """host:port for gRPC clients (HTTP/2 on the same port as REST; over TLS when ``ca_file`` is set)."""
        return f"127.0.0.1:{self.port}"

    def start(self, healthy: bool = True) -> GatewayProcess:
        admin_path = self.folder / "admin-address"
        # Started from the test's main thread, which lives as long as the session: Envoy ends with its thread.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "envoy", "--admin-address-path", str(admin_path)],
            cwd=ROOT,
            env=self.env,
            stdout=(self.folder / "access.log").open("wb"),
            stderr=(self.folder / "envoy.log").open("wb"),
        )
        wait_until(lambda: (admin_path.exists() and admin_path.read_text().strip()) or self.exited(), START_TIMEOUT)
        if self.exited():
            raise RuntimeError(f"envoy exited with {self.process.returncode}: {self.log_text()}")
        self.admin = f"http://{admin_path.read_text().strip()}"
        self.port = wait_until(self._listener_port, START_TIMEOUT, "the gateway to listen")  # type: ignore[assignment]
        if healthy:
            self.wait_health(200)
        return self

    def _listener_port(self) -> int | None:
        listeners = json.loads(fetch(f"{self.admin}/listeners?format=json")[1])
        for listener in listeners.get("listener_statuses", []):
            port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
            if port:
                return int(port)
        return None

    def wait_health(self, status: int, timeout: float = 10.0) -> None:
        wait_until(
            lambda: fetch(f"{self.url}/healthz", ca_file=self.ca_file)[0] == status,
            timeout,
            f"/healthz to answer {status}",
        )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log_text(self) -> str:
        return (self.folder / "envoy.log").read_text(errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in (self.folder / "access.log").read_text().splitlines() if line.startswith("{")
        ]

    def terminate(self, timeout: float = 10.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def fetch(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    ca_file: str | None = None,
) -> tuple[int, str, dict[str, str]]:
    """One HTTP request: (status, body text, headers with lower-case names). JSON bodies are encoded.

    An https URL is checked against ``ca_file``'s certificates (the test CA), or the system's without one.
    """
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
            return reply.status, reply.read().decode(), {k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}
    except (urllib.error.URLError, ConnectionError):
        return 0, "", {}
