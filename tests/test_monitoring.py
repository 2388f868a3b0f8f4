"""Monitoring: the figures each replica measures and publishes (GetStats, StreamStats, Prometheus' /metrics),
and the issues client apps report (ReportClientIssue, ListClientIssues, ResolveClientIssue).

Figures are read from real servers. A test whose figures must not be disturbed by other tests starts a
server of its own that measures itself every 0.2 s, and waits (bounded) until a GetStats shows what the load
must have caused: a figure is at most one tick old, so every check on one is a wait, never a sleep. Nothing
here asserts how long anything took.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from workspace.v1 import auth_pb2, monitoring_pb2, monitoring_pb2_grpc, users_pb2

import server as server_package
from server.settings import database_url

from .api import Client, Person, create_person, disable, expect_error, group, log_in, people, send, violations
from .databases import fresh_database
from .servers import ADMIN_PASSWORD, ServerProcess, wait_until
from .streams import WAIT, Stream

#: Servers of their own measure themselves this often, so a figure catches up within a fraction of a second.
QUICK_TICKS = {"WORKSPACE_STATS_INTERVAL_SECONDS": "0.2"}
#: How long a figure may take to show what the test did before the test fails.
FIGURES_WAIT = 10.0
NOWHERE = 2**62  # an id nothing has
DATABASE_KINDS = {"sqlite": "sqlite", "postgres": "postgresql"}

ERROR = monitoring_pb2.CLIENT_ISSUE_KIND_ERROR
FEEDBACK = monitoring_pb2.CLIENT_ISSUE_KIND_FEEDBACK

SEND_MESSAGE = "/workspace.v1.ChatService/SendMessage"
WHO_AM_I = "/workspace.v1.AuthService/WhoAmI"
GET_USER = "/workspace.v1.UsersService/GetUser"


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients of servers started in a test: closed after it."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def admin_of(address: str, clients: list[Client]) -> Client:
    client = log_in(address, "admin", ADMIN_PASSWORD)
    clients.append(client)
    return client


# --- calls --------------------------------------------------------------------------------------------


def monitoring(client: Client) -> monitoring_pb2_grpc.MonitoringServiceStub:
    return monitoring_pb2_grpc.MonitoringServiceStub(client.channel)


def get_stats(client: Client) -> monitoring_pb2.Stats:
    return monitoring(client).GetStats(monitoring_pb2.GetStatsRequest(), metadata=client.md, timeout=10).stats


def report(client: Client, kind: int = ERROR, message: str = "it broke", **fields) -> monitoring_pb2.ClientIssue:
    request = monitoring_pb2.ReportClientIssueRequest(
        issue=monitoring_pb2.ClientIssue(kind=kind, message=message, **fields)
    )
    return monitoring(client).ReportClientIssue(request, metadata=client.md, timeout=10).issue


def list_issues(
    client: Client, page_size: int = 0, page_token: str = "", show_resolved: bool = False
) -> monitoring_pb2.ListClientIssuesResponse:
    request = monitoring_pb2.ListClientIssuesRequest(
        page_size=page_size, page_token=page_token, show_resolved=show_resolved
    )
    return monitoring(client).ListClientIssues(request, metadata=client.md, timeout=10)


def all_issues(client: Client, show_resolved: bool = False, page_size: int = 200) -> list[monitoring_pb2.ClientIssue]:
    """Every listed issue, page after page."""
    seen, token = [], ""
    while True:
        page = list_issues(client, page_size, token, show_resolved)
        seen += page.issues
        token = page.next_page_token
        if not token:
            return seen


def resolve(client: Client, issue_id: int) -> monitoring_pb2.ClientIssue:
    request = monitoring_pb2.ResolveClientIssueRequest(issue_id=issue_id)
    return monitoring(client).ResolveClientIssue(request, metadata=client.md, timeout=10).issue


def seconds(duration: Duration) -> float:
    return duration.ToNanoseconds() / 1e9


class StatsStream:
    """One ``StreamStats`` call, read in a background thread; every wait on it is bounded."""

    def __init__(self, client: Client, interval: Duration | None = None, metadata=None) -> None:
        request = monitoring_pb2.StreamStatsRequest(interval=interval)
        md = client.md if metadata is None else metadata
        self.call = monitoring(client).StreamStats(request, metadata=md, timeout=120)
        self._items: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._items.put(response.stats)
        except grpc.RpcError as error:
            self._items.put(error)

    def _take(self, timeout: float) -> object:
        try:
            return self._items.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no tick arrived within {timeout}s") from None

    def tick(self, timeout: float = WAIT) -> monitoring_pb2.Stats:
        item = self._take(timeout)
        if isinstance(item, grpc.RpcError):
            raise AssertionError(f"the stream ended: {item.code().name}: {item.details()}")
        assert isinstance(item, monitoring_pb2.Stats)
        return item

    def ending(self, timeout: float = WAIT) -> tuple[list[monitoring_pb2.Stats], grpc.RpcError]:
        """The ticks still to come, and the error the stream ends with."""
        ticks = []
        while True:
            item = self._take(timeout)
            if isinstance(item, grpc.RpcError):
                return ticks, item
            ticks.append(item)

    def end(self, timeout: float = WAIT) -> grpc.RpcError:
        """The error the stream ends with within ``timeout``, past any ticks before it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the stream was still open after {timeout}s") from None
            if isinstance(item, grpc.RpcError):
                return item

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(WAIT)


@pytest.fixture
def stream_stats() -> Iterator[Callable[..., StatsStream]]:
    """Open StreamStats calls; every one is cancelled after the test."""
    opened: list[StatsStream] = []

    def open_(client: Client, interval: Duration | None = None, metadata=None) -> StatsStream:
        stream = StatsStream(client, interval, metadata)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()


# --- reading figures ----------------------------------------------------------------------------------


def only_replica(stats: monitoring_pb2.Stats) -> monitoring_pb2.ReplicaStats:
    assert len(stats.replicas) == 1, [r.replica_id for r in stats.replicas]
    return stats.replicas[0]


def streams_of(replica: monitoring_pb2.ReplicaStats) -> dict[str, int]:
    return {s.kind: s.count for s in replica.open_streams}


def rpc_of(replica: monitoring_pb2.ReplicaStats, method: str) -> monitoring_pb2.RpcStats:
    """The figures of one method; all zero if it was not called within the window."""
    return next((r for r in replica.rpcs if r.method == method), monitoring_pb2.RpcStats(method=method))


def wait_for_stats(
    client: Client, condition: Callable[[monitoring_pb2.Stats], bool], what: str, timeout: float = FIGURES_WAIT
) -> monitoring_pb2.Stats:
    """Poll GetStats until ``condition`` holds; returns that answer (the last one is shown on a timeout)."""
    last: list[monitoring_pb2.Stats] = []

    def holds() -> monitoring_pb2.Stats | None:
        stats = get_stats(client)
        last[:] = [stats]
        return stats if condition(stats) else None

    try:
        return wait_until(holds, timeout, what)  # type: ignore[return-value]
    except AssertionError as e:
        raise AssertionError(f"{e}; the last answer:\n{last[0] if last else None}") from None


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page: (sample name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 if it is not there (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def handled(samples: dict, method: str, code: str) -> float:
    service, _, name = method.lstrip("/").rpartition("/")
    return sample(
        samples, "grpc_server_handled_total", grpc_type="unary", grpc_service=service, grpc_method=name, grpc_code=code
    )


def published(url: str) -> set[str]:
    """The instance ids with a row in ``replica_figures``, straight from the database."""
    engine = create_engine(database_url(url, asynchronous=False))
    try:
        with engine.connect() as connection:
            return set(connection.execute(text("SELECT instance_id FROM replica_figures")).scalars())
    finally:
        engine.dispose()


# --- who may ------------------------------------------------------------------------------------------


def first_tick(client: Client, metadata) -> monitoring_pb2.Stats:
    call = monitoring(client).StreamStats(monitoring_pb2.StreamStatsRequest(), metadata=metadata, timeout=10)
    try:
        return next(call).stats
    finally:
        call.cancel()


def test_a_person_may_report_issues_but_not_see_figures_or_issues(server: ServerProcess, person: Person) -> None:
    client, md, stub = person.client, person.client.md, monitoring(person.client)
    denied = grpc.StatusCode.PERMISSION_DENIED
    expect_error(denied, stub.GetStats, monitoring_pb2.GetStatsRequest(), metadata=md)
    expect_error(denied, first_tick, client, md)
    expect_error(denied, stub.ListClientIssues, monitoring_pb2.ListClientIssuesRequest(), metadata=md)
    mine = report(client)
    request = monitoring_pb2.ResolveClientIssueRequest(issue_id=mine.id)
    expect_error(denied, stub.ResolveClientIssue, request, metadata=md)
    expect_error(
        denied, stub.ResolveClientIssue, monitoring_pb2.ResolveClientIssueRequest(issue_id=NOWHERE), metadata=md
    )


def test_without_a_token_every_monitoring_call_is_unauthenticated(server: ServerProcess, admin: Client) -> None:
    stub, none = monitoring(admin), ()
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    issue = monitoring_pb2.ClientIssue(kind=ERROR, message="from nobody")
    expect_error(unauthenticated, stub.GetStats, monitoring_pb2.GetStatsRequest(), metadata=none)
    expect_error(unauthenticated, first_tick, admin, none)
    expect_error(unauthenticated, stub.ListClientIssues, monitoring_pb2.ListClientIssuesRequest(), metadata=none)
    request = monitoring_pb2.ResolveClientIssueRequest(issue_id=1)
    expect_error(unauthenticated, stub.ResolveClientIssue, request, metadata=none)
    report_request = monitoring_pb2.ReportClientIssueRequest(issue=issue)
    expect_error(unauthenticated, stub.ReportClientIssue, report_request, metadata=none)
    assert "from nobody" not in [i.message for i in all_issues(admin, show_resolved=True)]


def test_an_administrator_sees_figures_and_issues(server: ServerProcess, admin: Client, person: Person) -> None:
    mine = report(person.client, message="for the administrator")
    assert server_package.__version__ in {r.version for r in get_stats(admin).replicas}
    assert first_tick(admin, admin.md).replicas
    assert mine in all_issues(admin)
    assert resolve(admin, mine.id).resolver_id == admin.user.id


# --- GetStats -----------------------------------------------------------------------------------------


def test_get_stats_describes_the_replica_that_answers(start_server, database_kind: str, clients: list[Client]) -> None:
    own = start_server(WORKSPACE_REPLICA_ID="replica-a", **QUICK_TICKS)
    admin = admin_of(own.address, clients)

    stats = get_stats(admin)
    replica = only_replica(stats)
    assert stats.totals.live_replicas == 1
    assert replica.replica_id == "replica-a"
    assert replica.instance_id and replica.instance_id != replica.replica_id
    assert replica.version == server_package.__version__ == "0.1.0"
    assert stats.time.ToNanoseconds() >= replica.report_time.ToNanoseconds()  # put together from that report
    assert replica.start_time.ToNanoseconds() < replica.report_time.ToNanoseconds()
    lived = replica.report_time.ToNanoseconds() - replica.start_time.ToNanoseconds()
    assert seconds(replica.uptime) > 0
    assert abs(replica.uptime.ToNanoseconds() - lived) < 1_000, (replica.uptime, lived)

    database = replica.database
    assert database.kind == DATABASE_KINDS[database_kind]
    assert database.reachable and database.error == ""
    assert seconds(database.query_latency) > 0
    assert database.check_time.seconds > 0
    assert database.pool_size > 0
    assert 0 <= database.pool_in_use <= database.pool_size

    assert replica.process.memory_rss_bytes > 10 * 2**20
    assert replica.process.threads > 1
    assert replica.process.cpu_percent >= 0

    later = wait_for_stats(
        admin, lambda s: s.time.ToNanoseconds() > stats.time.ToNanoseconds(), "a later tick"
    ).replicas[0]
    assert (later.instance_id, later.start_time) == (replica.instance_id, replica.start_time)
    assert later.uptime.ToNanoseconds() > replica.uptime.ToNanoseconds()


def test_the_shared_server_is_the_only_replica_on_its_database_named_after_its_host(
    server: ServerProcess, admin: Client
) -> None:
    # A replica another test started on this database withdraws when it stops (or drops out in three ticks).
    stats = wait_for_stats(admin, lambda s: len(s.replicas) == 1, "the shared server to be alone")
    assert stats.totals.live_replicas == 1
    assert stats.replicas[0].replica_id == socket.gethostname()


def test_a_stopped_replica_withdraws_its_figures_and_a_crashed_one_drops_out(
    start_server, clients: list[Client]
) -> None:
    first = start_server(WORKSPACE_REPLICA_ID="same-name", **QUICK_TICKS)
    stopped = only_replica(get_stats(admin_of(first.address, clients)))
    assert published(first.database_url) == {stopped.instance_id}
    assert first.terminate() == 0
    assert published(first.database_url) == set()  # gone at once, not after three ticks

    second = start_server(first.database_url, WORKSPACE_REPLICA_ID="same-name", **QUICK_TICKS)
    admin = admin_of(second.address, clients)
    crashed = only_replica(get_stats(admin))
    assert crashed.replica_id == stopped.replica_id == "same-name"
    assert crashed.instance_id != stopped.instance_id  # the same name, another process
    assert second.kill() < 0
    assert published(first.database_url) == {crashed.instance_id}  # a crash leaves its row behind ...

    third = start_server(first.database_url, WORKSPACE_REPLICA_ID="same-name", **QUICK_TICKS)
    admin = admin_of(third.address, clients)
    # ... which stops counting three ticks after its last report
    alone = wait_for_stats(admin, lambda s: len(s.replicas) == 1, "the crashed replica to drop out")
    assert alone.replicas[0].instance_id not in (stopped.instance_id, crashed.instance_id)


def test_the_figures_follow_the_load(start_server, open_stream: Callable[..., Stream], clients: list[Client]) -> None:
    own = start_server(**QUICK_TICKS)
    admin = admin_of(own.address, clients)
    ann, bob = people(admin, own, 2)
    clients += [ann.client, bob.client]
    for stream in (open_stream(ann.client), open_stream(bob.client)):
        stream.live()
    made = group(ann.client, "figures", [bob.user.id])
    for i in range(5):
        send(ann.client, made.id, f"message {i}")
    for _ in range(30):
        admin.whoami()
    for _ in range(3):
        expect_error(
            grpc.StatusCode.NOT_FOUND,
            admin.users.GetUser,
            users_pb2.GetUserRequest(user_id=NOWHERE),
            metadata=admin.md,
        )

    def shows_the_load(stats: monitoring_pb2.Stats) -> bool:
        replica = stats.replicas[0]
        return (
            streams_of(replica).get("events") == 2
            and rpc_of(replica, SEND_MESSAGE).calls == 5
            and rpc_of(replica, WHO_AM_I).calls >= 30
            and rpc_of(replica, GET_USER).calls == 3
            and replica.messages_per_minute >= 5
            and replica.deliveries_per_second > 0
        )

    stats = wait_for_stats(admin, shows_the_load, "the figures to show the load")
    replica = only_replica(stats)
    assert replica.connected_people == 2 and stats.totals.connected_people == 2
    assert streams_of(replica) == {"events": 2, "activity": 0, "stats": 0}
    assert stats.totals.open_streams == 2
    assert replica.messages_per_minute >= 5 and stats.totals.messages_per_minute >= 5
    assert replica.events_per_second > 0  # the group and its messages were stored
    assert stats.totals.deliveries_per_second == replica.deliveries_per_second > 0

    sent = rpc_of(replica, SEND_MESSAGE)
    assert sent.error_rate == 0 and sent.server_error_rate == 0
    assert sent.calls_per_second == pytest.approx(5 / 60)
    assert 0 < seconds(sent.p50_latency) <= seconds(sent.p99_latency)
    assert rpc_of(replica, WHO_AM_I).error_rate == 0
    missing = rpc_of(replica, GET_USER)
    assert missing.error_rate == 1.0 and missing.server_error_rate == 0  # NOT_FOUND is the caller's
    assert stats.totals.calls_per_second == pytest.approx(sum(r.calls_per_second for r in replica.rpcs))
    assert stats.totals.calls_per_second > 0
    assert 0 < stats.totals.error_rate < 1 and stats.totals.server_error_rate == 0

    # Prometheus says the same.
    samples = scrape(own.metrics_url)
    assert handled(samples, SEND_MESSAGE, "OK") == 5
    assert handled(samples, SEND_MESSAGE, "INTERNAL") == 0
    assert handled(samples, GET_USER, "NOT_FOUND") == 3
    assert handled(samples, WHO_AM_I, "OK") >= 30
    labels = {"grpc_type": "unary", "grpc_service": "workspace.v1.ChatService", "grpc_method": "SendMessage"}
    assert sample(samples, "grpc_server_started_total", **labels) == 5
    assert sample(samples, "grpc_server_handling_seconds_count", **labels) == 5
    assert sample(samples, "grpc_server_handling_seconds_bucket", le="+Inf", **labels) == 5
    assert sample(samples, "workspace_rpc_in_flight", **labels) == 0
    stream_labels = {"grpc_type": "server_stream", "grpc_service": "workspace.v1.ChatService"}
    assert sample(samples, "workspace_rpc_in_flight", grpc_method="StreamEvents", **stream_labels) == 2
    assert sample(samples, "workspace_open_streams", kind="events") == 2
    assert sample(samples, "workspace_open_streams", kind="stats") == 0
    assert sample(samples, "workspace_messages_created_total") >= 5
    assert sample(samples, "workspace_events_stored_total") >= sample(samples, "workspace_messages_created_total")
    assert sample(samples, "workspace_stream_events_delivered_total") > 0
    assert sample(samples, "workspace_stream_events_dropped_total") == 0
    size = sample(samples, "workspace_db_pool_size")
    assert size > 0
    in_use, idle = (sample(samples, "workspace_db_pool_connections", state=s) for s in ("in_use", "idle"))
    assert in_use + idle == size


def test_a_failing_call_counts_as_an_error_of_its_method_in_both_views(start_server, clients: list[Client]) -> None:
    own = start_server(**QUICK_TICKS)
    admin = admin_of(own.address, clients)
    stranger = Client(own.address)
    clients.append(stranger)
    for password in ("wrong-1", "wrong-2"):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, stranger.login, "admin", password)
    login = "/workspace.v1.AuthService/Login"

    def counted(stats: monitoring_pb2.Stats) -> bool:
        return rpc_of(stats.replicas[0], login).calls == 3  # the admin's login and the two wrong ones

    replica = only_replica(wait_for_stats(admin, counted, "the logins to be counted"))
    assert rpc_of(replica, login).error_rate == pytest.approx(2 / 3)
    assert rpc_of(replica, login).server_error_rate == 0
    samples = scrape(own.metrics_url)
    assert handled(samples, login, "UNAUTHENTICATED") == 2
    assert handled(samples, login, "OK") == 1


# --- StreamStats --------------------------------------------------------------------------------------


def test_stream_stats_ticks_at_once_then_every_interval_and_counts_itself_while_open(
    start_server, stream_stats: Callable[..., StatsStream], clients: list[Client]
) -> None:
    own = start_server(**QUICK_TICKS)  # measures five times per stream tick: each tick brings new figures
    admin = admin_of(own.address, clients)
    stream = stream_stats(admin, Duration(seconds=1))
    ticks = [stream.tick() for _ in range(3)]
    times = [t.time.ToNanoseconds() for t in ticks]
    assert times == sorted(set(times)), times
    for tick in ticks:
        assert [r.instance_id for r in tick.replicas] == [ticks[0].replicas[0].instance_id]

    while_open = wait_for_stats(
        admin, lambda s: streams_of(s.replicas[0]).get("stats", 0) >= 1, "the open stream to be counted"
    )
    assert streams_of(only_replica(while_open))["stats"] == 1
    assert while_open.totals.open_streams == 1

    stream.close()
    wait_for_stats(admin, lambda s: streams_of(s.replicas[0]).get("stats") == 0, "the closed stream to be uncounted")


@pytest.mark.parametrize(
    "interval",
    [
        Duration(nanos=500_000_000),
        Duration(seconds=61),
        Duration(seconds=60, nanos=1),
        Duration(),
        Duration(seconds=-1),
    ],
    ids=["half-a-second", "61s", "just-over-60s", "zero", "negative"],
)
def test_stream_stats_refuses_an_interval_outside_1_to_60_seconds(
    server: ServerProcess, admin: Client, stream_stats, interval: Duration
) -> None:
    ticks, error = stream_stats(admin, interval).ending()
    assert ticks == []
    assert set(violations(error)) == {"interval"}


@pytest.mark.parametrize("interval", [None, Duration(seconds=1), Duration(seconds=60)], ids=["unset", "1s", "60s"])
def test_stream_stats_accepts_1_to_60_seconds_and_sends_a_tick_at_once(
    server: ServerProcess, admin: Client, stream_stats, interval: Duration | None
) -> None:
    stream = stream_stats(admin, interval)
    assert stream.tick().replicas  # not after 60 s: at once


def test_a_stats_stream_ends_at_once_when_its_server_stops(tmp_path: Path, stream_stats) -> None:
    """It must not hold the shutdown for its grace (30 s here, longer than ``terminate`` waits)."""
    with fresh_database("sqlite", tmp_path) as url:  # not about the database: once is enough
        own = ServerProcess(url, WORKSPACE_SHUTDOWN_GRACE="30").start()
        admin = log_in(own.address, "admin", ADMIN_PASSWORD)
        try:
            watching = stream_stats(admin, Duration(seconds=60))
            watching.tick()
            assert own.terminate() == 0
            _, error = watching.ending()
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert "shutting down" in error.details()
        finally:
            admin.close()


def test_a_persons_stream_stats_is_refused_before_any_tick(server: ServerProcess, person: Person, stream_stats) -> None:
    ticks, error = stream_stats(person.client, Duration(seconds=1)).ending()
    assert ticks == []
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()


def test_a_stats_stream_ends_when_its_administrator_logs_out_is_disabled_or_demoted(
    tmp_path: Path, stream_stats
) -> None:
    with fresh_database("sqlite", tmp_path) as url:  # not about the database: once is enough
        own = ServerProcess(url).start()
        clients: list[Client] = []
        try:
            admin = log_in(own.address, "admin", ADMIN_PASSWORD)
            clients.append(admin)
            leaving, disabled, demoted = (create_person(admin, own.address, role=users_pb2.ROLE_ADMIN) for _ in "123")
            clients += [leaving.client, disabled.client, demoted.client]
            streams = {
                p.user.username: stream_stats(p.client, Duration(seconds=1)) for p in (leaving, disabled, demoted)
            }
            for stream in streams.values():
                stream.tick()

            leaving.client.auth.Logout(auth_pb2.LogoutRequest(), metadata=leaving.client.md, timeout=10)
            disable(admin, disabled.user.id)
            demotion = users_pb2.UpdateUserRequest(
                user=users_pb2.User(id=demoted.user.id, role=users_pb2.ROLE_USER), update_mask=FieldMask(paths=["role"])
            )
            admin.users.UpdateUser(demotion, metadata=admin.md, timeout=10)

            # A tick every second: each stream has had several chances to notice within the wait.
            ended = {name: stream.end(timeout=5).code() for name, stream in streams.items()}
            expected = {
                leaving.user.username: grpc.StatusCode.UNAUTHENTICATED,
                disabled.user.username: grpc.StatusCode.UNAUTHENTICATED,
                demoted.user.username: grpc.StatusCode.PERMISSION_DENIED,
            }
            assert ended == expected
        finally:
            for client in clients:
                client.close()
            own.terminate()


# --- several replicas ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_every_replica_answers_for_all_and_a_stopped_one_drops_out(tmp_path: Path, open_stream) -> None:
    with fresh_database("postgres", tmp_path) as url:
        a = ServerProcess(url, WORKSPACE_REPLICA_ID="replica-a", **QUICK_TICKS).start()
        b = ServerProcess(url, WORKSPACE_REPLICA_ID="replica-b", **QUICK_TICKS).start()
        clients: list[Client] = []
        try:
            on_a = log_in(a.address, "admin", ADMIN_PASSWORD)
            on_b = log_in(b.address, "admin", ADMIN_PASSWORD)
            clients += [on_a, on_b]
            ann, bob = people(on_a, a, 2)
            ann_on_b = log_in(b.address, ann.user.username, ann.password)
            bob_on_b = log_in(b.address, bob.user.username, bob.password)
            clients += [ann.client, bob.client, ann_on_b, bob_on_b]
            open_stream(ann.client).live()  # ann on A ...
            open_stream(ann_on_b).live()  # ... and on B
            open_stream(bob_on_b).live()  # bob on B

            def all_streams_seen(stats: monitoring_pb2.Stats) -> bool:
                return [streams_of(r).get("events") for r in stats.replicas] == [1, 2]

            for admin in (on_a, on_b):
                stats = wait_for_stats(admin, all_streams_seen, "both replicas and their streams")
                assert [r.replica_id for r in stats.replicas] == ["replica-a", "replica-b"]
                assert len({r.instance_id for r in stats.replicas}) == 2
                assert [r.connected_people for r in stats.replicas] == [1, 2]
                assert stats.totals.live_replicas == 2
                assert stats.totals.open_streams == 3
                assert stats.totals.connected_people == 2  # ann counts once
                assert all(r.database.kind == "postgresql" and r.database.reachable for r in stats.replicas)

            assert b.terminate() == 0
            assert published(url) == {stats.replicas[0].instance_id}  # B withdrew its figures as it stopped
            stats = wait_for_stats(
                on_a,
                lambda s: len(s.replicas) == 1 and s.totals.connected_people == 1,
                "the stopped replica and its people to drop out",
            )
            assert stats.replicas[0].replica_id == "replica-a"
            assert stats.totals.live_replicas == 1 and stats.totals.open_streams == 1
        finally:
            for client in clients:
                client.close()
            a.terminate()
            b.terminate()


# --- client issues ------------------------------------------------------------------------------------


def test_anyone_signed_in_reports_an_issue_and_gets_it_back_as_stored(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    issue = report(
        person.client,
        FEEDBACK,
        "  \n The send button could be bigger.\t ",
        client_version="workspace-desktop 0.3.1",
        platform="Debian 12",
        context="on the chat screen\n  with two conversations open",
        # output-only: ignored
        id=NOWHERE,
        reporter_id=admin.user.id,
        resolver_id=admin.user.id,
        resolve_time={"seconds": 1},
    )
    assert issue.id > 0 and issue.id != NOWHERE
    assert issue.kind == FEEDBACK
    assert issue.message == "The send button could be bigger."
    assert (issue.client_version, issue.platform) == ("workspace-desktop 0.3.1", "Debian 12")
    assert issue.context == "on the chat screen\n  with two conversations open"
    assert issue.reporter_id == person.user.id
    assert issue.create_time.seconds > 0
    assert not issue.HasField("resolve_time") and issue.resolver_id == 0

    listed = [i for i in all_issues(admin) if i.id == issue.id]
    assert listed == [issue]
    by_admin = report(admin, ERROR, "an administrator may report too")
    assert by_admin.reporter_id == admin.user.id and by_admin.id > issue.id


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({}, "issue"),
        ({"issue": {"message": "no kind"}}, "issue.kind"),
        ({"issue": {"kind": 7, "message": "an unknown kind"}}, "issue.kind"),
        ({"issue": {"kind": ERROR}}, "issue.message"),
        ({"issue": {"kind": ERROR, "message": " \n\t  "}}, "issue.message"),
        ({"issue": {"kind": ERROR, "message": "m" * 2001}}, "issue.message"),
        ({"issue": {"kind": ERROR, "message": "x", "client_version": "v" * 101}}, "issue.client_version"),
        ({"issue": {"kind": ERROR, "message": "x", "platform": "p" * 101}}, "issue.platform"),
        ({"issue": {"kind": ERROR, "message": "x", "context": "c" * 10_001}}, "issue.context"),
    ],
    ids=[
        "no-issue",
        "no-kind",
        "unknown-kind",
        "empty-message",
        "blank-message",
        "message-2001",
        "client-version-101",
        "platform-101",
        "context-10001",
    ],
)
def test_a_bad_report_names_the_field_it_breaks(
    server: ServerProcess, person: Person, request_fields: dict, field: str
) -> None:
    stub = monitoring(person.client)
    request = monitoring_pb2.ReportClientIssueRequest(**request_fields)
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.ReportClientIssue, request, metadata=person.client.md)
    assert set(violations(error)) == {field}


def test_every_broken_field_of_a_report_is_named_at_once(server: ServerProcess, person: Person) -> None:
    issue = monitoring_pb2.ClientIssue(message="m" * 2001, client_version="v" * 101, platform="p" * 101)
    issue.context = "c" * 10_001
    request = monitoring_pb2.ReportClientIssueRequest(issue=issue)
    stub = monitoring(person.client)
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.ReportClientIssue, request, metadata=person.client.md)
    assert set(violations(error)) == {
        "issue.kind",
        "issue.message",
        "issue.client_version",
        "issue.platform",
        "issue.context",
    }


def test_a_report_of_an_unknown_kind_names_its_other_broken_fields_too(server: ServerProcess, person: Person) -> None:
    issue = monitoring_pb2.ClientIssue(kind=7, message="  ", platform="p" * 101)
    request = monitoring_pb2.ReportClientIssueRequest(issue=issue)
    stub = monitoring(person.client)
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.ReportClientIssue, request, metadata=person.client.md)
    assert set(violations(error)) == {"issue.kind", "issue.message", "issue.platform"}


def test_the_longest_report_is_accepted_and_the_message_limit_counts_after_trimming(
    server: ServerProcess, person: Person
) -> None:
    issue = report(
        person.client,
        ERROR,
        "  " + "m" * 2000 + "\n",
        client_version="v" * 100,
        platform="p" * 100,
        context="c" * 10_000,
    )
    assert issue.message == "m" * 2000
    assert (len(issue.client_version), len(issue.platform), len(issue.context)) == (100, 100, 10_000)
    assert report(person.client, ERROR, "é" * 2000).message == "é" * 2000  # characters, not bytes


def test_issues_are_listed_newest_first_page_by_page(start_server, clients: list[Client]) -> None:
    own = start_server()  # no other test's issues
    admin = admin_of(own.address, clients)
    person = create_person(admin, own.address)
    clients.append(person.client)
    reported = [report(person.client, ERROR if i % 2 else FEEDBACK, f"issue {i}") for i in range(5)]

    pages, token = [], ""
    while True:
        page = list_issues(admin, page_size=2, page_token=token)
        pages.append([i.message for i in page.issues])
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 5, pages
    assert pages == [["issue 4", "issue 3"], ["issue 2", "issue 1"], ["issue 0"]]
    assert all_issues(admin) == list(reversed(reported))
    assert list_issues(admin).issues == list(reversed(reported))  # page_size 0: 50


def test_listing_refuses_a_bad_page_size_or_a_token_of_another_filter(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    for _ in range(3):
        report(person.client, message="so that there is a next page")
    stub = monitoring(admin)

    def refused(**fields) -> set[str]:
        request = monitoring_pb2.ListClientIssuesRequest(**fields)
        error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.ListClientIssues, request, metadata=admin.md)
        return set(violations(error))

    assert refused(page_size=-1) == {"page_size"}
    assert refused(page_size=201) == {"page_size"}
    assert len(list_issues(admin, page_size=200).issues) <= 200

    open_token = list_issues(admin, page_size=1).next_page_token
    all_token = list_issues(admin, page_size=1, show_resolved=True).next_page_token
    assert open_token and all_token
    assert refused(page_size=1, page_token=open_token, show_resolved=True) == {"page_token"}
    assert refused(page_size=1, page_token=all_token) == {"page_token"}
    assert refused(page_token="not-a-token") == {"page_token"}
    assert list_issues(admin, page_size=1, page_token=open_token).issues  # with its own filter: fine


def test_a_resolved_issue_leaves_the_default_list_and_stays_in_the_full_one(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    first, second = report(person.client, message="first"), report(person.client, message="second")
    mine = {first.id, second.id}

    def listed(show_resolved: bool) -> list[int]:
        return [i.id for i in all_issues(admin, show_resolved, page_size=2) if i.id in mine]

    assert listed(False) == listed(True) == [second.id, first.id]
    resolved = resolve(admin, first.id)
    assert resolved.resolver_id == admin.user.id and resolved.HasField("resolve_time")
    assert resolved.resolve_time.ToNanoseconds() >= first.create_time.ToNanoseconds()
    assert (resolved.id, resolved.message, resolved.reporter_id) == (first.id, "first", person.user.id)
    assert listed(False) == [second.id]
    assert listed(True) == [second.id, first.id]
    (shown,) = [i for i in all_issues(admin, show_resolved=True) if i.id == first.id]
    assert shown == resolved


def test_resolving_again_keeps_the_first_resolution(server: ServerProcess, admin: Client, person: Person) -> None:
    other_admin = create_person(admin, server.address, role=users_pb2.ROLE_ADMIN)
    try:
        issue = report(person.client, message="resolve me twice")
        first = resolve(admin, issue.id)
        again = resolve(other_admin.client, issue.id)
        assert again == first
        assert again.resolver_id == admin.user.id != other_admin.user.id
        (shown,) = [i for i in all_issues(admin, show_resolved=True) if i.id == issue.id]
        assert shown == first
    finally:
        other_admin.client.close()


def test_concurrent_resolutions_keep_the_first(server: ServerProcess, admin: Client) -> None:
    others = [create_person(admin, server.address, role=users_pb2.ROLE_ADMIN) for _ in range(3)]
    admins = [admin, *(o.client for o in others)]
    try:
        issues = [report(admin, message=f"resolved by four at once {i}") for i in range(20)]
        disagreements = []
        with ThreadPoolExecutor(len(admins)) as pool:
            for issue in issues:
                answers = list(pool.map(resolve, admins, [issue.id] * len(admins)))
                (stored,) = [i for i in all_issues(admin, show_resolved=True) if i.id == issue.id]
                if any(answer != stored for answer in answers):
                    disagreements.append((issue.id, sorted({a.resolver_id for a in answers}), stored.resolver_id))
        assert disagreements == []
    finally:
        for other in others:
            other.client.close()


def test_resolving_needs_the_id_of_an_existing_issue(server: ServerProcess, admin: Client) -> None:
    stub = monitoring(admin)
    request = monitoring_pb2.ResolveClientIssueRequest(issue_id=NOWHERE)
    error = expect_error(grpc.StatusCode.NOT_FOUND, stub.ResolveClientIssue, request, metadata=admin.md)
    assert str(NOWHERE) in error.details()
    for bad in (0, -3):
        request = monitoring_pb2.ResolveClientIssueRequest(issue_id=bad)
        error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.ResolveClientIssue, request, metadata=admin.md)
        assert set(violations(error)) == {"issue_id"}
