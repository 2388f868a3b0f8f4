"""Rate limits (issue 9): token buckets per class of RPC, per person and per client address; the stream cap.

Real servers started with low limits; nothing asserts a time: a refused caller waits the delay its RetryInfo
gives, then is served again.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from workspace.v1 import auth_pb2, monitoring_pb2, monitoring_pb2_grpc

from gateway.config import DESCRIPTOR_PATH
from server.app import SERVICE_NAMES, rate_limits
from server.observability.metrics import RpcMetrics
from server.rate_limits import READ_NAMES, READ_PREFIXES, RateClass
from server.settings import RATE_SETTINGS, Settings, SettingsError

from . import api
from .api import Client, create_person, expect_error, group, reason, rich_details, send
from .gateway import GatewayProcess, fetch
from .servers import ADMIN_PASSWORD, ServerProcess
from .streams import Stream

StartServer = Callable[..., ServerProcess]
#: Every limit high, so that a test lowers only the one it looks at.
HIGH = "1000/s burst 10000"
ALL_HIGH = {"WORKSPACE_" + name.upper(): HIGH for name in RATE_SETTINGS}


def limited(start_server: StartServer, **env: str) -> ServerProcess:
    return start_server(**{**ALL_HIGH, **env})


def admin_of(server: ServerProcess) -> Client:
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    return admin


def retry_delay(error: grpc.RpcError) -> float:
    retry = [d for d in rich_details(error) if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry, "no RetryInfo"
    return retry[0].retry_delay.ToTimedelta().total_seconds()


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    return next(d for d in rich_details(error) if isinstance(d, error_details_pb2.ErrorInfo))


def refused(call: Callable[[], object], limit: str, per: str, longest: float = 60) -> float:
    """Call until refused (a few calls at most), check the refusal, return its retry delay."""
    for _ in range(20):
        try:
            call()
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            assert reason(error) == "RATE_LIMITED"
            info = error_info(error)
            assert (info.metadata["limit"], info.metadata["per"]) == (limit, per)
            assert f"too many {limit} calls" in error.details() and "per second" in error.details()
            delay = retry_delay(error)
            assert 0 < delay <= longest, delay
            return delay
    raise AssertionError("never refused")


def whoami(client: Client, metadata: tuple[tuple[str, str], ...] = ()) -> object:
    return client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=client.md + metadata, timeout=10)


def update_presence(client: Client) -> object:
    return api.update_presence(client, ["status_text"], status_text="busy")


def next_message(stream: Stream) -> str:
    """The text of the next message the stream carries (past the conversation's creation)."""
    for _ in range(5):
        event = stream.event()
        if event.HasField("message_created"):
            return event.message_created.text
    raise AssertionError("no message on the stream")


# --- the classes --------------------------------------------------------------------------------------


def test_every_rpc_of_every_service_has_a_class() -> None:
    classes = rate_limits(Settings(), RpcMetrics()).classes
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes()).file
    every = {
        f"/{f.package}.{s.name}/{m.name}"
        for f in files
        if f.package == "workspace.v1"
        for s in f.service
        for m in s.method
    }
    assert every and set(classes) == every
    pool = descriptor_pool.Default()
    for name in SERVICE_NAMES:
        for method in pool.FindServiceByName(name).methods:
            path = f"/{name}/{method.name}"
            if method.server_streaming:
                assert classes[path] is RateClass.STREAM, path
            elif method.name in READ_NAMES or method.name.startswith(READ_PREFIXES):
                assert classes[path] in (RateClass.READ, RateClass.LOGIN), path
    assert {p for p, c in classes.items() if c is RateClass.LOGIN} == {
        "/workspace.v1.AuthService/Login",
        "/workspace.v1.AuthService/Refresh",
    }
    assert {p.rpartition("/")[2] for p, c in classes.items() if c is RateClass.STREAM} == {
        "StreamEvents",
        "StreamActivity",
        "StreamStats",
    }
    writes = {p.rpartition("/")[2] for p, c in classes.items() if c is RateClass.WRITE}
    assert {"SendMessage", "SendTyping", "UpdatePresence", "Logout", "CreateUser", "MarkRead"} <= writes
    assert not any(w.startswith(READ_PREFIXES) for w in writes)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKSPACE_RATE_WRITE_PERSON", "fast"),
        ("WORKSPACE_RATE_READ_ADDRESS", "0/s burst 3"),
        ("WORKSPACE_RATE_STREAM_PERSON", "5/s burst 0"),
        ("WORKSPACE_RATE_LIMITS", "maybe"),
        ("WORKSPACE_RATE_MAX_STREAMS_PER_PERSON", "0"),
        ("WORKSPACE_RATE_TRUSTED_PROXIES", "10.0.0.0/8,gateway"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_rates_read_as_documented() -> None:
    settings = Settings.from_env({"WORKSPACE_RATE_WRITE_PERSON": "2.5/s", "WORKSPACE_RATE_READ_PERSON": "off"})
    assert settings.rate_write_person == "2.5/s"
    Settings.from_env({"WORKSPACE_RATE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, ::1"}).validate()


def test_a_server_refuses_to_start_with_a_bad_limit(start_server: StartServer) -> None:
    with pytest.raises(RuntimeError, match="WORKSPACE_RATE_READ_PERSON"):
        start_server(WORKSPACE_RATE_READ_PERSON="10 per second")


# --- per person ---------------------------------------------------------------------------------------


def test_reads_and_writes_are_limited_per_person_and_refill(start_server: StartServer) -> None:
    server = limited(start_server, WORKSPACE_RATE_READ_PERSON="1/s burst 3", WORKSPACE_RATE_WRITE_PERSON="1/s burst 3")
    admin = admin_of(server)
    ann, bob = create_person(admin, server.address), create_person(admin, server.address)
    delay = refused(lambda: whoami(ann.client), "read", "person")
    assert delay <= 1.0  # one token comes back each second
    whoami(bob.client)  # another person is not affected
    update_presence(ann.client)  # nor another class
    time.sleep(delay + 0.05)  # the delay RetryInfo gave: then a token is there
    whoami(ann.client)
    refused(lambda: update_presence(ann.client), "write", "person")
    update_presence(bob.client)
    with urllib.request.urlopen(server.metrics_url, timeout=10) as reply:
        metrics = reply.read().decode()
    assert 'workspace_rate_limited_total{limit="read",per="person"} 1.0' in metrics
    assert 'workspace_rate_limited_total{limit="write",per="person"} 1.0' in metrics


def test_opening_streams_is_limited_per_person(start_server: StartServer) -> None:
    server = limited(start_server, WORKSPACE_RATE_STREAM_PERSON="0.5/s burst 2")
    admin = admin_of(server)
    ann = create_person(admin, server.address)
    first, second = Stream(ann.client), Stream(ann.client)
    first.live(), second.live()
    third = Stream(ann.client)
    _, error = third.ending()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason(error) == "RATE_LIMITED"
    assert error_info(error).metadata["limit"] == "stream" and 0 < retry_delay(error) <= 2
    Stream(admin).live()  # another person opens theirs
    for stream in (first, second):
        stream.close()


# --- per address --------------------------------------------------------------------------------------


def test_calls_are_limited_per_address_whoever_makes_them(start_server: StartServer) -> None:
    server = limited(start_server, WORKSPACE_RATE_READ_ADDRESS="1/s burst 4")
    admin = admin_of(server)
    ann, bob = create_person(admin, server.address), create_person(admin, server.address)
    whoami(ann.client), whoami(ann.client)
    whoami(bob.client), whoami(bob.client)
    refused(lambda: whoami(bob.client), "read", "address")
    error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, whoami, ann.client)
    assert "from your address" in error.details()
    # A client that names another address is not believed: it did not come through a trusted gateway.
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, whoami, ann.client, (("x-forwarded-for", "10.1.2.3"),))


def test_writes_and_stream_openings_are_limited_per_address(start_server: StartServer) -> None:
    server = limited(
        start_server, WORKSPACE_RATE_WRITE_ADDRESS="0.5/s burst 4", WORKSPACE_RATE_STREAM_ADDRESS="0.2/s burst 2"
    )
    admin = admin_of(server)
    ann, bob = create_person(admin, server.address), create_person(admin, server.address)  # two writes
    update_presence(ann.client)
    update_presence(bob.client)
    delay = refused(lambda: update_presence(ann.client), "write", "address")
    assert delay <= 2.0  # one token every two seconds
    streams = [Stream(ann.client), Stream(bob.client)]
    for stream in streams:
        stream.live()
    _, error = Stream(bob.client).ending()
    assert reason(error) == "RATE_LIMITED" and error_info(error).metadata["per"] == "address"
    assert "from your address" in error.details() and "too many stream calls" in error.details()
    for stream in streams:
        stream.close()


def test_logins_are_limited_per_address_beside_the_failed_login_throttle(start_server: StartServer) -> None:
    server = limited(start_server, WORKSPACE_RATE_LOGIN_ADDRESS="0.2/s burst 3")
    admin = admin_of(server)  # one
    stranger = Client(server.address)
    for name in ("nobody-1", "nobody-2"):  # two (and two failures for two usernames: far from their throttle)
        expect_error(grpc.StatusCode.UNAUTHENTICATED, stranger.login, name, "guess")
    error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, stranger.login, "admin", ADMIN_PASSWORD)
    assert reason(error) == "RATE_LIMITED" and "too many login calls" in error.details()
    assert 0 < retry_delay(error) <= 5
    # Refresh is a login call too.
    assert reason(expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, admin.refresh)) == "RATE_LIMITED"
    whoami(admin)  # other classes are not affected


def test_a_trusted_gateway_names_the_client_address(start_server: StartServer) -> None:
    server = limited(
        start_server, WORKSPACE_RATE_READ_ADDRESS="0.01/s burst 2", WORKSPACE_RATE_TRUSTED_PROXIES="127.0.0.0/8"
    )
    admin = admin_of(server)

    def as_from(address: str) -> object:
        return whoami(admin, (("x-forwarded-for", f"203.0.113.9, {address}"),))

    as_from("10.0.0.1"), as_from("10.0.0.1")
    refused(lambda: as_from("10.0.0.1"), "read", "address", longest=100)
    as_from("10.0.0.2")  # the last entry is the address: another one has its own bucket


# --- the gateway --------------------------------------------------------------------------------------


def test_the_gateway_answers_429_with_retry_after(start_server: StartServer) -> None:
    server = limited(
        start_server,
        WORKSPACE_RATE_READ_ADDRESS="0.01/s burst 3",
        WORKSPACE_RATE_TRUSTED_PROXIES="127.0.0.1",
    )
    gateway = GatewayProcess([server.address]).start()
    try:
        status, text, _ = fetch(
            gateway.url + "/v1/auth:login", "POST", {"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert status == 200, text
        token = json.loads(text)["tokens"]["access_token"]
        headers = {"authorization": f"Bearer {token}", "x-forwarded-for": "10.0.0.1"}
        answers = [fetch(gateway.url + "/v1/auth/me", headers=headers) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200], answers
        # Another claimed address does not help: Envoy appends the real peer, and that is what counts.
        status, text, reply_headers = fetch(
            gateway.url + "/v1/auth/me", headers={**headers, "x-forwarded-for": "10.9.9.9"}
        )
        assert status == 429, text
        body = json.loads(text)
        assert body["code"] == 8 and "too many read calls" in body["message"]
        assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in body["details"]), body
        assert reply_headers["retry-after"].isdigit() and int(reply_headers["retry-after"]) >= 1, reply_headers
    finally:
        gateway.terminate()


# --- never limited, or not at all ---------------------------------------------------------------------


def test_health_and_reflection_are_never_limited(start_server: StartServer) -> None:
    tiny = "0.01/s burst 1"
    server = start_server(**{"WORKSPACE_" + name.upper(): tiny for name in RATE_SETTINGS})
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(10):
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        for _ in range(3):
            answers = list(
                reflect.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
                )
            )
            assert answers and answers[0].list_services_response.service


def test_limits_off_disables_every_limit_and_the_stream_cap(start_server: StartServer) -> None:
    tiny = "0.01/s burst 1"
    server = start_server(
        WORKSPACE_RATE_LIMITS="off",
        WORKSPACE_RATE_MAX_STREAMS_PER_PERSON="1",
        **{"WORKSPACE_" + name.upper(): tiny for name in RATE_SETTINGS},
    )
    admin = admin_of(server)
    ann = create_person(admin, server.address)
    for _ in range(5):
        whoami(ann.client)
        update_presence(ann.client)
    streams = [Stream(ann.client) for _ in range(3)]
    for stream in streams:
        stream.live()
    made = group(ann.client, "all three hear it")
    send(ann.client, made.id, "hello")
    for stream in streams:
        assert next_message(stream) == "hello"
        stream.close()


# --- the cap on open streams --------------------------------------------------------------------------


def test_a_new_stream_over_the_cap_ends_the_oldest(start_server: StartServer) -> None:
    server = start_server(WORKSPACE_RATE_MAX_STREAMS_PER_PERSON="2")
    admin = admin_of(server)
    ann, bob = create_person(admin, server.address), create_person(admin, server.address)
    oldest, middle = Stream(ann.client), Stream(ann.client)
    oldest.live(), middle.live()
    bobs = [Stream(bob.client), Stream(bob.client)]
    for stream in bobs:
        stream.live()
    newest = Stream(ann.client)
    newest.live()
    _, error = oldest.ending()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason(error) == "TOO_MANY_STREAMS"
    assert "newer stream" in error.details() and "at most 2" in error.details()
    # The two newest and the other person's streams carry on.
    made = group(ann.client, "still here", [bob.user.id])
    send(ann.client, made.id, "after the cap")
    for stream in (middle, newest, *bobs):
        assert next_message(stream) == "after the cap"
        stream.close()
    with urllib.request.urlopen(server.metrics_url, timeout=10) as reply:
        assert 'workspace_rate_limited_total{limit="open_streams",per="person"} 1.0' in reply.read().decode()


def test_the_cap_counts_every_kind_of_stream(start_server: StartServer) -> None:
    server = start_server(WORKSPACE_RATE_MAX_STREAMS_PER_PERSON="1")
    admin = admin_of(server)
    events = Stream(admin)
    events.live()
    stats = monitoring_pb2_grpc.MonitoringServiceStub(admin.channel).StreamStats(
        monitoring_pb2.StreamStatsRequest(), metadata=admin.md, timeout=60
    )
    assert next(stats).stats.replicas
    _, error = events.ending()
    assert reason(error) == "TOO_MANY_STREAMS"
    assert next(stats).stats.replicas  # the newer one goes on
    stats.cancel()
