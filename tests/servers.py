"""Real server processes for the tests: ``python -m server serve`` on a free port.

Each process gets its own environment; its JSON log lines are collected so a
test can wait for one ("wait for the condition with a deadline", never sleep).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-secret-0123456789abcdef-0123456789"
ADMIN_PASSWORD = "admin-password-for-tests"
#: argon2id stays argon2id in tests, only cheaper, so hundreds of logins take seconds.
FAST_HASHING = {"WORKSPACE_ARGON2_TIME_COST": "1", "WORKSPACE_ARGON2_MEMORY_KIB": "8192"}
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"listening on (\S+):(\d+)")
_METRICS = re.compile(r"metrics: (http://\S+/metrics)")


def wait_until(condition: Callable[[], object], timeout: float = 10.0, message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)


class ServerProcess:
    def __init__(self, database_url: str, **env: str) -> None:
        self.database_url = database_url
        self.env = {
            **os.environ,
            "WORKSPACE_DATABASE_URL": database_url,
            "WORKSPACE_GRPC_PORT": "0",
            "WORKSPACE_METRICS_PORT": "0",
            "WORKSPACE_HOST": "127.0.0.1",
            "WORKSPACE_JWT_SECRET": JWT_SECRET,
            "WORKSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "WORKSPACE_REFRESH_REUSE_GRACE": "0",
            "WORKSPACE_SHUTDOWN_GRACE": "5",
            "PYTHONUNBUFFERED": "1",
            **FAST_HASHING,
            **env,
        }
        self.logs: list[dict] = []
        self.stdout: list[str] = []
        self.address = ""
        #: where Prometheus scrapes this server
        self.metrics_url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_logs, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        wait_until(
            lambda: (self.address and self.metrics_url) or self.process.poll() is not None,
            START_TIMEOUT,
            "the server to listen",
        )
        if not self.address:
            raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_text()}")
        return self

    def _read_logs(self) -> None:
        assert self.process and self.process.stderr
        for line in self.process.stderr:
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"msg": line.rstrip(), "raw": True})

    def _read_stdout(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            self.stdout.append(line)
            metrics = _METRICS.search(line)
            if metrics:
                self.metrics_url = metrics.group(1)
            match = _LISTENING.search(line)
            if match and not self.address:
                self.address = f"{match.group(1)}:{match.group(2)}"

    def log_text(self) -> str:
        return "\n".join(json.dumps(entry) for entry in self.logs)

    def wait_for_log(self, predicate: Callable[[dict], bool], timeout: float = 10.0, what: str = "log line") -> dict:
        def find() -> dict | None:
            return next((entry for entry in list(self.logs) if predicate(entry)), None)

        return wait_until(find, timeout, what)  # type: ignore[return-value]

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # the server prints every thread's and task's stack
            time.sleep(1.0)
            self.process.kill()
            self.process.wait()
            tail = "\n".join(entry.get("msg", json.dumps(entry)) for entry in self.logs[-80:])
            raise AssertionError(
                f"server did not stop within {timeout}s after SIGTERM; its last words:\n{tail}"
            ) from None

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL, as a crash would do it: no shutdown, nothing said to clients; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(timeout)
