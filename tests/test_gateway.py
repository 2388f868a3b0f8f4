"""The gateway, through a real Envoy: REST (JSON transcoding) for every service, errors as HTTP statuses with
JSON bodies, a server stream read over REST as it arrives, plain gRPC on the same port, /healthz, keepalive,
and two replicas where stopping one costs a unary caller nothing.

gRPC-Web, made by a real gRPC-Web client library, is in ``test_grpcweb``; the configuration itself (what
``render`` writes, and that Envoy accepts it) is at the end of this file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from workspace.v1 import presence_pb2

from gateway.__main__ import envoy_command, write_config
from gateway.config import PASS_THROUGH_STREAMS, read_services, render
from server.settings import Settings, SettingsError

from .api import Client, Person, create_person, group, log_in, people, presence_of, send
from .databases import fresh_database
from .gateway import GatewayProcess, fetch
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess, wait_until
from .streams import Stream

# --- helpers ------------------------------------------------------------------------------------------


class Rest:
    """One person speaking REST to the gateway: JSON in, (status, JSON) out, their bearer token attached."""

    def __init__(self, gateway: GatewayProcess, token: str = "") -> None:
        self.gateway, self.token = gateway, token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict]:
        if self.token:
            headers.setdefault("authorization", f"Bearer {self.token}")
        status, text, _ = fetch(self.gateway.url + path, method, body, headers)
        assert text, f"{method} {path} answered {status} with no body"
        return status, json.loads(text)

    def ok(self, method: str, path: str, body: Any = None) -> dict:
        status, answer = self.call(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer


def rest_login(gateway: GatewayProcess, username: str, password: str) -> Rest:
    answer = Rest(gateway).ok("POST", "/v1/auth:login", {"username": username, "password": password})
    return Rest(gateway, answer["tokens"]["access_token"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_of(rest: Rest, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict]:
    """An error answer: its HTTP status and its body, which always has the shape of a google.rpc.Status."""
    status, answer = rest.call(method, path, body, **headers)
    assert status >= 400, (method, path, status, answer)
    assert set(answer) == {"code", "message", "details"}, answer
    return status, answer


# --- REST: every service ------------------------------------------------------------------------------


def test_rest_logs_in_and_reads_and_writes_accounts(gateway: GatewayProcess, server: ServerProcess) -> None:
    admin = rest_login(gateway, "admin", ADMIN_PASSWORD)
    me = admin.ok("GET", "/v1/auth/me")["user"]
    assert (me["username"], me["role"]) == ("admin", "ROLE_ADMIN")
    assert "display_name" in me and "create_time" in me  # proto field names, zero values included

    name = f"rest-{uuid.uuid4().hex[:12]}"
    made = admin.ok("POST", "/v1/users", {"user": {"username": name, "display_name": "Rest"}, "password": "pw-" + name})
    user_id = made["user"]["id"]
    assert admin.ok("GET", f"/v1/users/{user_id}")["user"]["username"] == name
    renamed = admin.ok("PATCH", f"/v1/users/{user_id}?update_mask=display_name", {"display_name": "Renamed"})
    assert renamed["user"]["display_name"] == "Renamed"

    seen, token = [], ""
    while True:  # paging: every account once
        page = admin.ok("GET", f"/v1/users?page_size=2&page_token={token}")
        assert len(page["users"]) <= 2
        seen += [u["id"] for u in page["users"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) and user_id in seen

    person = rest_login(gateway, name, "pw-" + name)
    assert person.ok("GET", "/v1/auth/me")["user"]["display_name"] == "Renamed"
    admin.ok("DELETE", f"/v1/users/{user_id}")
    status, _ = error_of(person, "GET", "/v1/auth/me")
    assert status == 401  # deleted: the session is over


def test_rest_chat_and_presence(gateway: GatewayProcess, server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    ann_rest = rest_login(gateway, ann.user.username, ann.password)
    bob_rest = rest_login(gateway, bob.user.username, bob.password)

    made = ann_rest.ok("POST", "/v1/conversations", {"name": "over http", "member_ids": [str(bob.user.id)]})
    conversation_id = made["conversation"]["id"]
    sent = [
        ann_rest.ok(
            "POST", f"/v1/conversations/{conversation_id}/messages", {"text": f"hello {i}", "request_id": f"r{i}"}
        )
        for i in range(3)
    ]
    again = ann_rest.ok(
        "POST", f"/v1/conversations/{conversation_id}/messages", {"text": "hello 0", "request_id": "r0"}
    )
    assert again["message"]["id"] == sent[0]["message"]["id"]  # a retry over REST creates nothing

    page = bob_rest.ok("GET", f"/v1/conversations/{conversation_id}/messages?page_size=2")
    assert [m["text"] for m in page["messages"]] == ["hello 2", "hello 1"]
    older = bob_rest.ok(
        "GET", f"/v1/conversations/{conversation_id}/messages?page_size=2&page_token={page['next_page_token']}"
    )
    assert [m["text"] for m in older["messages"]] == ["hello 0"]
    listed = bob_rest.ok("GET", "/v1/conversations")["conversations"]
    assert [c["unread_count"] for c in listed if c["id"] == conversation_id] == [3]
    newest = sent[-1]["message"]["id"]
    read = bob_rest.ok("POST", f"/v1/conversations/{conversation_id}:markRead", {"message_id": newest})
    assert read["unread_count"] == 0, read

    bob_rest.ok("PATCH", "/v1/presence?update_mask=status_text", {"status_text": "at lunch"})
    found = ann_rest.ok("GET", f"/v1/presence?user_ids={bob.user.id}")["presences"]
    assert [(p["user_id"], p["status_text"]) for p in found] == [(str(bob.user.id), "at lunch")]
    assert presence_of(ann.client, bob.user.id).status_text == "at lunch"  # the same server behind it


def test_rest_monitoring(gateway: GatewayProcess, server: ServerProcess, person: Person) -> None:
    admin = rest_login(gateway, "admin", ADMIN_PASSWORD)
    stats = admin.ok("GET", "/v1/stats")["stats"]
    assert stats["totals"]["live_replicas"] >= 1 and stats["replicas"][0]["database"]["reachable"] is True
    mine = rest_login(gateway, person.user.username, person.password)
    issue = {"issue": {"kind": "CLIENT_ISSUE_KIND_FEEDBACK", "message": "over REST", "platform": "curl"}}
    reported = mine.ok("POST", "/v1/clientIssues", issue)["issue"]
    assert (reported["reporter_id"], reported["message"]) == (str(person.user.id), "over REST")
    resolved = admin.ok("POST", f"/v1/clientIssues/{reported['id']}:resolve", {})["issue"]
    assert resolved["resolver_id"] != "0" and "resolve_time" in resolved
    status, body = error_of(mine, "GET", "/v1/stats")
    assert (status, body["code"]) == (403, 7)

    lines, hang_up = read_lines(gateway, "/v1/stats:stream?interval=1s", admin.token)
    try:  # a tick at once, then every second, each a whole JSON object on its line
        first, second = lines.get(timeout=10)["stats"], lines.get(timeout=10)["stats"]
        assert datetime.fromisoformat(first["time"]) < datetime.fromisoformat(second["time"])
    finally:
        hang_up()


# --- REST: errors -------------------------------------------------------------------------------------


def test_each_error_is_an_http_status_with_a_json_status_body(
    gateway: GatewayProcess, server: ServerProcess, admin: Client, person: Person
) -> None:
    admin_rest = rest_login(gateway, "admin", ADMIN_PASSWORD)
    person_rest = rest_login(gateway, person.user.username, person.password)

    status, body = error_of(admin_rest, "POST", "/v1/users", {"user": {"username": ""}, "password": "x"})
    assert (status, body["code"]) == (400, 3)
    bad_request = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert {v["field"] for v in bad_request[0]["field_violations"]} >= {"user.username"}, body

    status, body = error_of(Rest(gateway), "GET", "/v1/auth/me")
    assert (status, body["code"]) == (401, 16)
    assert "authorization" in body["message"]

    status, body = error_of(person_rest, "POST", "/v1/users", {"user": {"username": "nope"}, "password": "pw-long-1"})
    assert (status, body["code"]) == (403, 7)

    status, body = error_of(admin_rest, "GET", "/v1/users/999999999")
    assert (status, body["code"]) == (404, 5)

    taken = {"user": {"username": person.user.username}, "password": "another-password"}
    status, body = error_of(admin_rest, "POST", "/v1/users", taken)
    assert (status, body["code"]) == (409, 6)

    status, body = error_of(admin_rest, "GET", "/v1/no/such/thing")
    assert (status, body["code"]) == (404, 5)
    status, body = error_of(admin_rest, "GET", "/v1/users?no_such_parameter=1")
    assert status == 400 and "no_such_parameter" in body["message"]
    status, body = error_of(admin_rest, "POST", "/v1/auth:login", b"{not json", **{"content-type": "application/json"})
    assert (status, body["code"]) == (400, 3)


def test_a_throttled_login_is_429_with_its_retry_delay(
    gateway: GatewayProcess, server: ServerProcess, admin: Client
) -> None:
    victim = create_person(admin, server.address)
    anonymous = Rest(gateway)
    statuses = []
    for _ in range(10):
        status, body = error_of(
            anonymous, "POST", "/v1/auth:login", {"username": victim.user.username, "password": "no"}
        )
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert body["code"] == 8
    retry = [d for d in body["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry and retry[0]["retry_delay"].endswith("s"), body


# --- streams and gRPC on the same port ----------------------------------------------------------------


def read_lines(gateway: GatewayProcess, path: str, token: str) -> tuple[queue.Queue, Callable[[], None]]:
    """GET ``path`` and put each line of the body on a queue as it arrives (newline-delimited JSON).

    Returns the queue and the function that hangs up. It shuts the socket down first: closing the response
    while the reading thread waits inside it would wait for the stream's next line (a heartbeat, 25 s away).
    """
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    connection.request("GET", path, headers={"authorization": f"Bearer {token}"})
    sock = connection.sock
    reply = connection.getresponse()
    assert reply.status == 200, reply.read()
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for line in reply:
                if line.strip():
                    lines.put(json.loads(line))
        except Exception:  # the test closed the connection: the pump just stops
            pass

    threading.Thread(target=pump, daemon=True).start()

    def hang_up() -> None:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        connection.close()

    return lines, hang_up


def test_a_server_stream_arrives_over_rest_as_it_happens(
    gateway: GatewayProcess, server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "streamed over http", [bob.user.id])
    lines, hang_up = read_lines(gateway, "/v1/events:stream", bob.client.access_token)
    try:
        first = lines.get(timeout=10)["event"]
        assert first["heartbeat"]["live"] is True, first
        for text in ("one", "two"):  # each arrives while the response is still open
            message = send(ann.client, made.id, text).message
            while True:
                event = lines.get(timeout=10)["event"]
                if "message_created" in event:
                    break
            assert (event["message_created"]["id"], event["message_created"]["text"]) == (str(message.id), text)
    finally:
        hang_up()


def test_plain_grpc_goes_through_the_same_port(gateway: GatewayProcess, server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "grpc through envoy", [bob.user.id])
    through = log_in(gateway.address, bob.user.username, bob.password)
    try:
        assert through.whoami().id == bob.user.id
        stream = Stream(through)
        try:
            stream.live()
            message = send(ann.client, made.id, "via envoy").message
            assert stream.event().message_created.id == message.id
        finally:
            stream.close()
    finally:
        through.close()


# --- health, replicas, keepalive ----------------------------------------------------------------------


@pytest.fixture
def fresh_url(database_kind: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(database_kind, tmp_path) as url:
        yield url


def test_healthz_follows_the_replica_down_and_back(fresh_url: str) -> None:
    port = str(free_port())
    replica = ServerProcess(fresh_url, WORKSPACE_GRPC_PORT=port, WORKSPACE_SHUTDOWN_DRAIN="3").start()
    gateway = GatewayProcess([replica.address]).start()
    try:
        replica.process.send_signal(signal.SIGTERM)  # draining: NOT_SERVING while still answering
        gateway.wait_health(503)
        status, text, _ = fetch(f"{gateway.url}/healthz")
        assert (status, json.loads(text)) == (503, {"status": "NOT_SERVING"})
        assert replica.process.wait(30) == 0
        status, body = error_of(Rest(gateway), "POST", "/v1/auth:login", {"username": "admin", "password": "x"})
        assert (status, body["code"]) == (503, 14)  # nobody to answer: said in the same JSON shape

        again = ServerProcess(fresh_url, WORKSPACE_GRPC_PORT=port).start()  # the same replica, restarted
        try:
            gateway.wait_health(200)
            assert rest_login(gateway, "admin", ADMIN_PASSWORD).ok("GET", "/v1/auth/me")["user"]["username"] == "admin"
        finally:
            again.terminate()
    finally:
        gateway.terminate()
        replica.terminate()


def test_stopping_one_of_two_replicas_costs_a_unary_caller_nothing(tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:  # several replicas: PostgreSQL
        # Stopping, a replica says NOT_SERVING for a second before refusing calls: longer than the gateway's
        # health interval (0.2 s here), as DEPLOYMENT.md asks. What still reaches it is retried elsewhere.
        # Four threads of one person calling as fast as they can: no rate limit (docs/OPERATIONS.md) here.
        first = ServerProcess(url, WORKSPACE_SHUTDOWN_DRAIN="1", WORKSPACE_RATE_LIMITS="off").start()
        second = ServerProcess(url, WORKSPACE_RATE_LIMITS="off").start()
        gateway = GatewayProcess([first.address, second.address]).start()
        client = log_in(gateway.address, "admin", ADMIN_PASSWORD)
        rest = rest_login(gateway, "admin", ADMIN_PASSWORD)
        errors: list[BaseException] = []
        calls = [0]
        stop = threading.Event()

        def keep_calling() -> None:
            while not stop.is_set():
                try:
                    assert client.whoami().username == "admin"
                    assert rest.ok("GET", "/v1/auth/me")["user"]["username"] == "admin"
                    calls[0] += 2
                except BaseException as e:
                    errors.append(e)

        callers = [threading.Thread(target=keep_calling, daemon=True) for _ in range(4)]
        try:
            for caller in callers:
                caller.start()
            wait_until(lambda: calls[0] >= 100, 30, "calls through both replicas")
            assert first.terminate() == 0
            before = calls[0]
            wait_until(lambda: calls[0] >= before + 200, 30, "calls after one replica stopped")
        finally:
            stop.set()
            for caller in callers:
                caller.join(15)
            client.close()
            gateway.terminate()
            second.terminate()
        assert errors == [], errors[:3]
        upstreams = {entry["upstream"] for entry in gateway.access_log()}
        assert {first.address, second.address} <= upstreams  # both replicas did serve


def test_a_client_that_vanishes_behind_the_gateway_goes_offline(fresh_url: str) -> None:
    """Envoy answers the server's pings itself, so it pings its own clients: a frozen one is let go."""
    quick = {"WORKSPACE_KEEPALIVE_SECONDS": "0.5", "WORKSPACE_KEEPALIVE_TIMEOUT_SECONDS": "1"}
    replica = ServerProcess(fresh_url, WORKSPACE_PRESENCE_GRACE_SECONDS="0.5", **quick).start()
    gateway = GatewayProcess([replica.address], **quick).start()
    admin = log_in(replica.address, "admin", ADMIN_PASSWORD)
    ann = create_person(admin, replica.address)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.stream_holder", gateway.address, ann.user.username, ann.password],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "live"
        wait_until(lambda: presence_of(admin, ann.user.id).state == presence_pb2.PRESENCE_STATE_ONLINE, 10)
        os.kill(holder.pid, signal.SIGSTOP)
        wait_until(lambda: presence_of(admin, ann.user.id).state == presence_pb2.PRESENCE_STATE_OFFLINE, 20)
    finally:
        holder.kill()
        holder.wait()
        admin.close()
        gateway.terminate()
        replica.terminate()


# --- the configuration --------------------------------------------------------------------------------


def settings(**env: str) -> Settings:
    return Settings.from_env({f"WORKSPACE_{k.upper()}": v for k, v in env.items()})


def test_every_service_is_transcoded_and_only_streams_have_no_timeout() -> None:
    services = read_services()
    assert "workspace.v1.ChatService" in services.names and "workspace.v1.AuthService" in services.names
    assert "/workspace.v1.ChatService/StreamEvents" in services.streaming_paths
    config = render(settings(stream_heartbeat_seconds="40"))
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = {f["name"]: f["typed_config"] for f in manager["http_filters"]}
    assert filters["envoy.filters.http.grpc_json_transcoder"]["services"] == list(services.names)
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    for route in routes:
        path = route["match"].get("path", "")
        if path in (*services.streaming_paths, *PASS_THROUGH_STREAMS):
            assert route["route"]["timeout"] == "0s"
            assert float(route["route"]["idle_timeout"].rstrip("s")) > 40  # above the heartbeat
        else:
            assert route["route"]["timeout"] != "0s", route
    assert float(manager["stream_idle_timeout"].rstrip("s")) > 40
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_the_upstreams_come_from_one_setting() -> None:
    def endpoints(**env: str) -> list[tuple[str, int]]:
        cluster = render(settings(**env))["static_resources"]["clusters"][0]
        found = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        return [
            (
                e["endpoint"]["address"]["socket_address"]["address"],
                e["endpoint"]["address"]["socket_address"]["port_value"],
            )
            for e in found
        ]

    assert endpoints() == [("127.0.0.1", 50051)]
    assert endpoints(host="0.0.0.0", grpc_port="6000") == [("127.0.0.1", 6000)]
    assert endpoints(gateway_upstreams="server-1:50051, server-2:50052") == [("server-1", 50051), ("server-2", 50052)]
    for bad in ("server-1", "server-1:", ":50051", "server:http", "server:70000"):
        with pytest.raises(SettingsError, match="WORKSPACE_GATEWAY_UPSTREAMS"):
            settings(gateway_upstreams=bad)


def test_cors_is_off_unless_origins_are_given() -> None:
    def policy(**env: str) -> dict | None:
        host = render(settings(**env))["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        return host["typed_config"]["route_config"]["virtual_hosts"][0].get("typed_per_filter_config")

    assert policy() is None
    given = policy(cors_origins="https://a.example, https://b.example")["envoy.filters.http.cors"]
    assert given["allow_origin_string_match"] == [{"exact": "https://a.example"}, {"exact": "https://b.example"}]


def test_envoy_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    config = write_config(
        settings(gateway_upstreams="server-1:50051,10.0.0.2:50051", cors_origins="*", host="0.0.0.0"), tmp_path
    )
    checked = subprocess.run(envoy_command(config, "--mode", "validate"), capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout + checked.stderr


# --- make run -----------------------------------------------------------------------------------------


def test_make_run_starts_both_and_stops_both_on_ctrl_c(fresh_url: str, tmp_path: Path) -> None:
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "WORKSPACE_DATABASE_URL": fresh_url,
        "WORKSPACE_GRPC_PORT": str(grpc_port),
        "WORKSPACE_HTTP_PORT": str(http_port),
        "WORKSPACE_GATEWAY_ADMIN_PORT": str(admin_port),
        "WORKSPACE_METRICS_PORT": "0",
        "WORKSPACE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WORKSPACE_ARGON2_TIME_COST": "1",
        "WORKSPACE_ARGON2_MEMORY_KIB": "8192",
        "PYTHONUNBUFFERED": "1",
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    output: list[str] = []
    try:
        assert run.stdout is not None
        for line in run.stdout:
            output.append(line)
            if line.startswith("Gateway (Envoy) on"):
                break
        banner = "".join(output)
        assert f"http://127.0.0.1:{http_port}" in banner and f"127.0.0.1:{grpc_port}" in banner, banner
        gateway = GatewayProcess([])  # only to talk to it
        gateway.port = http_port
        assert fetch(f"{gateway.url}/healthz")[0] == 200
        assert rest_login(gateway, "admin", ADMIN_PASSWORD).ok("GET", "/v1/auth/me")["user"]["username"] == "admin"
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
    for port in (grpc_port, http_port):  # both children are gone
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port


def test_gateway_md_lists_the_route_of_every_rpc() -> None:
    """docs/GATEWAY.md keeps a table row per RPC with its route, as the descriptor set says it."""
    from google.api import annotations_pb2
    from google.protobuf import descriptor_pb2

    from gateway.config import DESCRIPTOR_PATH, PACKAGE

    text = (ROOT / "docs" / "GATEWAY.md").read_text()
    missing = []
    for file in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes()).file:
        if file.package != PACKAGE:
            continue
        for service in file.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                row = f"| `{method.name}` | `{verb.upper()} {getattr(rule, verb)}` |"
                if row not in text:
                    missing.append(row)
    assert missing == [], "add these rows to docs/GATEWAY.md:\n" + "\n".join(missing)
