"""gRPC-Web through the gateway, called by a real gRPC-Web client library: Connect's, run with Node.

``tests/grpcweb/client.mjs`` builds its stubs at run time from ``generated/descriptor.binpb`` and prints
one JSON line per step; these tests run it against the shared gateway and read what it printed. Its
streams are read line by line as they come, so the tests synchronise on what the client has seen.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from .api import Client, Person, group, send, unique_name
from .conftest import ALLOWED_ORIGIN
from .gateway import GatewayProcess, fetch
from .servers import ROOT, ServerProcess

CLIENT = ROOT / "tests" / "grpcweb" / "client.mjs"
#: How long one run of the Node client, or one awaited line of it, may take at most.
WAIT = 30.0
UNAUTHENTICATED = 16


@pytest.fixture(scope="module", autouse=True)
def node_client() -> None:
    """The Node client needs node and the npm packages that `make tools` (npm ci) installs."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the gRPC-Web tests run tests/grpcweb/client.mjs with Node 20")
    for package in ("@connectrpc/connect", "@connectrpc/connect-web", "@bufbuild/protobuf"):
        if not (ROOT / "node_modules" / package).is_dir():
            pytest.fail(f"node_modules/{package} is missing: run `make tools` (npm ci) first")


def client_args(gateway: GatewayProcess, scenario: str, username: str, password: str, *extra: str) -> list[str]:
    return [
        "node",
        str(CLIENT),
        scenario,
        "--base-url",
        gateway.url,
        "--username",
        username,
        "--password",
        password,
        *extra,
    ]


def run_client(gateway: GatewayProcess, scenario: str, username: str, password: str, *extra: str) -> list[dict]:
    """Run one scenario to its end; its JSON lines."""
    done = subprocess.run(
        client_args(gateway, scenario, username, password, *extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1] == {"step": "end"}, (done.stdout, done.stderr)
    return lines


def step(lines: list[dict], name: str) -> dict:
    found = [line for line in lines if line["step"] == name]
    assert len(found) == 1, lines
    return found[0]


class NodeStream:
    """The client's ``stream`` scenario, running: its lines are read by a thread as they come."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True
        )
        self.lines: queue.Queue[dict | None] = queue.Queue()
        self.seen: list[dict] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)  # the client ended

    def next_line(self, matches: Callable[[dict], bool], timeout: float = WAIT) -> dict:
        """The next line that ``matches``, skipping others (kept in ``seen``); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no matching line from the Node client in {timeout} s; seen: {self.seen}")
            if line is None:
                pytest.fail(f"the Node client ended; seen: {self.seen}; stderr: {self.log.read_text()}")
            self.seen.append(line)
            if matches(line):
                return line

    def close(self) -> int:
        """Close stdin (the client then cancels its stream and ends); its exit code."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            return self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("the Node client did not end when its stdin closed")


@pytest.fixture
def node_stream(gateway: GatewayProcess, tmp_path: Path) -> Iterator[Callable[[str, str], NodeStream]]:
    started: list[NodeStream] = []

    def start(username: str, password: str) -> NodeStream:
        stream = NodeStream(client_args(gateway, "stream", username, password), tmp_path / f"node-{len(started)}.log")
        started.append(stream)
        return stream

    yield start
    for stream in started:
        if stream.process.poll() is None:
            stream.process.kill()
            stream.process.wait()


def event_of(line: dict) -> dict[str, Any]:
    return line["event"] if line["step"] == "event" else {}


# Unary calls


def test_login_and_whoami_over_grpc_web(server: ServerProcess, gateway: GatewayProcess, person: Person) -> None:
    lines = run_client(gateway, "login", person.user.username, person.password)
    login, whoami = step(lines, "login"), step(lines, "whoami")
    assert (login["user"], login["user_id"]) == (person.user.username, person.user.id)
    assert login["access_token"] and login["refresh_token"]
    # WhoAmI went with the token in the `authorization` header, and the same token works over plain gRPC.
    assert (whoami["user"], whoami["user_id"]) == (person.user.username, person.user.id)
    # The gateway answered in gRPC-Web itself (not transcoded JSON, not plain gRPC).
    answers = [line for line in lines if line["step"] == "headers"]
    assert [(a["method"], a["headers"]["content-type"]) for a in answers] == [
        ("Login", "application/grpc-web+proto"),
        ("WhoAmI", "application/grpc-web+proto"),
    ]
    client = Client(server.address)
    client.access_token = login["access_token"]
    try:
        assert client.whoami().id == person.user.id
    finally:
        client.close()


def test_a_wrong_password_is_unauthenticated_with_its_details(gateway: GatewayProcess, person: Person) -> None:
    lines = run_client(gateway, "login", person.user.username, "not-the-password")
    assert [line["step"] for line in lines] == ["error", "end"]
    error = lines[0]
    assert (error["code"], error["name"]) == (UNAUTHENTICATED, "unauthenticated")
    assert error["message"] == "wrong username or password"
    # The rich details (grpc-status-details-bin) reach the library too.
    info = [d for d in error["details"] if d["@type"] == "google.rpc.ErrorInfo"]
    assert info and info[0]["reason"] == "WRONG_CREDENTIALS", error


# Server streaming


def test_stream_events_over_grpc_web_carries_live_messages(
    node_stream: Callable[[str, str], NodeStream], admin: Client, person: Person
) -> None:
    assert admin.user is not None
    conversation = group(admin, unique_name("grpc-web"), [person.user.id])
    stream = node_stream(person.user.username, person.password)
    stream.next_line(lambda line: line["step"] == "login")
    first = stream.next_line(lambda line: line["step"] == "event")
    assert first["event"].get("heartbeat", {}).get("live") is True, first

    text = f"hello over gRPC-Web {uuid.uuid4().hex}"
    sent = send(admin, conversation.id, text).message
    line = stream.next_line(lambda line: "messageCreated" in event_of(line))
    created = line["event"]["messageCreated"]
    assert created["text"] == text
    # 64-bit integers are strings in protobuf JSON.
    assert (created["id"], created["conversationId"], created["senderId"]) == (
        str(sent.id),
        str(conversation.id),
        str(admin.user.id),
    )
    assert int(line["event"]["id"]) > 0

    assert stream.close() == 0
    assert stream.next_line(lambda line: line["step"] in ("end", "error")) == {"step": "end"}


# CORS, as a browser sends it


def test_a_grpc_web_call_from_the_allowed_origin_gets_cors_headers(gateway: GatewayProcess, person: Person) -> None:
    lines = run_client(gateway, "login", person.user.username, person.password, "--origin", ALLOWED_ORIGIN)
    answers = [line for line in lines if line["step"] == "headers"]
    assert [a["method"] for a in answers] == ["Login", "WhoAmI"]
    for answer in answers:
        assert answer["headers"]["access-control-allow-origin"] == ALLOWED_ORIGIN
        # A page's script may read the gRPC status of the answer.
        exposed = answer["headers"]["access-control-expose-headers"].split(",")
        assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= set(exposed)


def test_a_grpc_web_call_from_another_origin_gets_no_cors_headers(gateway: GatewayProcess, person: Person) -> None:
    lines = run_client(gateway, "login", person.user.username, person.password, "--origin", "http://evil.example.test")
    answers = [line for line in lines if line["step"] == "headers"]
    assert answers and all(a["headers"]["access-control-allow-origin"] is None for a in answers)


#: The headers that Connect's gRPC-Web transport sets on a call with a token and a deadline.
GRPC_WEB_HEADERS = ("content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization")


def preflight(gateway: GatewayProcess, origin: str) -> tuple[int, dict[str, str]]:
    status, _, headers = fetch(
        f"{gateway.url}/workspace.v1.AuthService/Login",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": ",".join(GRPC_WEB_HEADERS),
        },
    )
    return status, headers


def test_the_preflight_of_a_grpc_web_call_allows_the_allowed_origin(gateway: GatewayProcess) -> None:
    status, headers = preflight(gateway, ALLOWED_ORIGIN)
    assert status == 200, headers
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert set(GRPC_WEB_HEADERS) <= allowed
    assert "POST" in headers["access-control-allow-methods"].split(",")


def test_the_preflight_from_another_origin_is_not_allowed(gateway: GatewayProcess) -> None:
    _, headers = preflight(gateway, "http://evil.example.test")
    assert "access-control-allow-origin" not in headers
