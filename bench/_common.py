"""What the benchmarks share: a throw-away PostgreSQL schema, server and gateway processes, the machine."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


@contextlib.contextmanager
def postgres_schema(url: str, log: Callable[[str], None]) -> Iterator[str]:
    """A fresh schema for the run, dropped afterwards; yields the URL with its search_path set to it."""
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    plain = url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    log(f"postgresql: created schema {schema}")
    option = "options=" + urllib.parse.quote(f"-csearch_path={schema}", safe="")
    try:
        yield url + ("&" if "?" in url else "?") + option
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        log(f"postgresql: dropped schema {schema}")


@contextlib.contextmanager
def bench_database(
    database_url: str, prefix: str, log: Callable[[str], None] = print, sqlite_name: str = "bench.db"
) -> Iterator[tuple[str, Path]]:
    """A scratch folder and the run's database URL, both gone afterwards.

    No URL: a fresh SQLite file in the folder. A PostgreSQL URL: a fresh schema in it (``postgres_schema``).
    Any other URL is used as it is.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        if not database_url:
            yield f"sqlite:///{workdir / sqlite_name}", workdir
        elif is_postgres(database_url):
            with postgres_schema(database_url, log) as url:
                yield url, workdir
        else:
            yield database_url, workdir


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
    }


LISTEN_LINE = re.compile(r"listening on (\S+):(\d+)")

#: How long a server gets to print its "listening on" line.
START_TIMEOUT = 60.0

#: Cheap password hashing, so Login (which is not measured) is quick; the measured calls never hash.
BENCH_SERVER_ENV = {
    "WORKSPACE_ARGON2_TIME_COST": "1",
    "WORKSPACE_ARGON2_MEMORY_KIB": "8192",
    "WORKSPACE_METRICS_PORT": "0",  # several servers per run
}


def migrated_server_env(database_url: str, admin_password: str, **settings: str) -> dict[str, str]:
    """The real server's environment (port 0, cheap hashing, ``settings``) after migrating its database."""
    env = child_env(
        {
            **BENCH_SERVER_ENV,
            "WORKSPACE_GRPC_PORT": "0",
            "WORKSPACE_DATABASE_URL": database_url,
            "WORKSPACE_ADMIN_PASSWORD": admin_password,
            **settings,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "server", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return env


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any WORKSPACE_* variable of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """A server in a subprocess: started, waited for until it prints its address, always stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self) -> str:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # Files, not pipes: nobody reads a pipe during the run, and a full one would stall the server.
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = LISTEN_LINE.search(self.stdout_path.read_text(errors="replace"))
            if match:
                host = "127.0.0.1" if match.group(1) in ("0.0.0.0", "[::]") else match.group(1)
                self.address = f"{host}:{match.group(2)}"
                return self.address
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start (exit status {self.proc.poll()}):\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        text = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def cpu(self) -> float | None:
        return cpu_seconds(self.proc.pid) if self.proc else None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class GatewayProcess:
    """``python -m gateway envoy`` in front of ``upstreams``: started, waited for until healthy, always stopped.

    Envoy binds free ports (its admin interface writes its own address to a file; the listener's port is read
    from the admin's ``/listeners``). Envoy exits when the thread that started it ends (a parent-death signal),
    so call ``start`` from the main thread.
    """

    def __init__(self, upstreams: list[str], workdir: Path, **settings: str) -> None:
        self.env = child_env(
            {
                "WORKSPACE_HOST": "127.0.0.1",
                "WORKSPACE_HTTP_PORT": "0",
                "WORKSPACE_GATEWAY_ADMIN_PORT": "0",
                "WORKSPACE_GATEWAY_UPSTREAMS": ",".join(upstreams),
                **settings,
            }
        )
        self.admin_path = workdir / "envoy-admin-address"
        self.stdout_path = workdir / "envoy.stdout"  # Envoy's access log
        self.stderr_path = workdir / "envoy.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def address(self) -> str:
        """host:port for gRPC (plaintext HTTP/2) and REST (HTTP/1.1) alike."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        argv = [sys.executable, "-m", "gateway", "envoy", "--admin-address-path", str(self.admin_path)]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        admin = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if not admin and self.admin_path.exists():
                admin = self.admin_path.read_text().strip()
            if admin and not self.port:
                self.port = self._listener_port(f"http://{admin}")
            if self.port and _http_status(f"http://{self.address}/healthz") == 200:
                return self.address
            time.sleep(0.05)
        raise RuntimeError(f"envoy did not become healthy (exit status {self.proc.poll()}):\n{self.tail()}")

    @staticmethod
    def _listener_port(admin: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"{admin}/listeners?format=json", timeout=5) as reply:
                for listener in json.load(reply).get("listener_statuses", []):
                    port = listener.get("local_address", {}).get("socket_address", {}).get("port_value")
                    if port:
                        return int(port)
        return 0

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cpu(self) -> float | None:
        return cpu_seconds(self.proc.pid) if self.proc else None  # the same pid: ``gateway envoy`` execs Envoy

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _http_status(url: str) -> int:
    """The status of a GET, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0
