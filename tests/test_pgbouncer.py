"""PostgreSQL behind PgBouncer in transaction mode: ``WORKSPACE_DATABASE_POOLER=transaction`` works, and is needed.

Each test module run starts its own PgBouncer (a child process, its own ini file in a temporary folder, a free
port, transaction pooling, few server connections so that client connections really share them) in front of
a PostgreSQL database of its own, migrated directly. Real servers talk to PgBouncer; the tests talk to them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2
from sqlalchemy.engine import make_url
from workspace.v1 import (
    agenda_pb2,
    agenda_pb2_grpc,
    chat_pb2,
    lots_pb2,
    lots_pb2_grpc,
    shortcuts_pb2,
    shortcuts_pb2_grpc,
)

from server.settings import Settings, SettingsError
from server.storage.migrate import current_tables, upgrade

from .api import Client, Person, group, log_in, people, send, unique_name
from .databases import own_postgres_database
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess, wait_until
from .streams import Stream

pytestmark = pytest.mark.postgres

#: PgBouncer's server connections per database and user: fewer than a replica's pool, so they are shared.
PGBOUNCER_POOL = 2
#: How far the test without the setting goes before it gives up waiting for the failure (it comes far sooner).
MAX_ROUNDS = 30


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else "")
    if not found:
        pytest.fail("pgbouncer is not installed: `make system` installs it (Debian's package)", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Pooled:
    """A database and the PgBouncer in front of it."""

    #: straight to PostgreSQL
    direct_url: str
    #: through PgBouncer, transaction mode
    url: str
    process: subprocess.Popen[str]
    log: list[str]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pooled]:
    binary = pgbouncer_binary()
    folder = tmp_path_factory.mktemp("pgbouncer")
    with own_postgres_database("ws_pgb") as direct_url:
        upgrade(direct_url)  # migrations run on a direct connection, never through the pooler
        direct = make_url(direct_url)
        port = free_port()
        (folder / "users.txt").write_text(f'"{direct.username}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"""[databases]
{direct.database} = host={direct.host} port={direct.port or 5432} dbname={direct.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {PGBOUNCER_POOL}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
"""
        )
        # PgBouncer will not run as root: it reads its files first, then becomes nobody.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [binary, *user, str(folder / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        log: list[str] = []

        def read() -> None:
            assert process.stderr is not None
            log.extend(process.stderr)

        threading.Thread(target=read, daemon=True).start()
        try:
            wait_until(
                lambda: any("listening on 127.0.0.1" in line for line in log) or process.poll() is not None,
                15,
                "PgBouncer to listen",
            )
            assert process.poll() is None, f"PgBouncer exited with {process.returncode}: {''.join(log)}"
            url = direct.set(port=port).render_as_string(hide_password=False)
            yield Pooled(direct_url, url, process, log)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def behind(pooled: Pooled, **env: str) -> ServerProcess:
    """A server whose database URL is PgBouncer's."""
    return ServerProcess(pooled.url, WORKSPACE_DB_POOL_SIZE="5", WORKSPACE_RATE_LIMITS="off", **env).start()


POOLER = {"WORKSPACE_DATABASE_POOLER": "transaction"}


# --- helpers over the generated stubs ----------------------------------------------------------------------


def shortcuts(client: Client) -> shortcuts_pb2_grpc.ShortcutsServiceStub:
    return shortcuts_pb2_grpc.ShortcutsServiceStub(client.channel)


def lots(client: Client) -> lots_pb2_grpc.LotsServiceStub:
    return lots_pb2_grpc.LotsServiceStub(client.channel)


def agenda(client: Client) -> agenda_pb2_grpc.AgendaServiceStub:
    return agenda_pb2_grpc.AgendaServiceStub(client.channel)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def list_shortcuts(client: Client, category_id: int) -> list[shortcuts_pb2.Shortcut]:
    request = shortcuts_pb2.ListShortcutsRequest(category_id=category_id, only_category=True, page_size=100)
    return list(shortcuts(client).ListShortcuts(request, metadata=client.md, timeout=10).shortcuts)


def hammer(client: Client, conversation_id: int, threads: int, calls: int) -> list[grpc.RpcError]:
    """``threads`` x ``calls`` messages sent at once; the errors they met.

    Writes, because psycopg forgets what it prepared in a transaction that rolls back: the server's reads (which
    always roll back) never keep a prepared statement, its committed writes do.
    """

    def run(thread: int) -> list[grpc.RpcError]:
        errors = []
        for i in range(calls):
            try:
                send(client, conversation_id, f"load {thread}.{i}")
            except grpc.RpcError as e:
                errors.append(e)
        return errors

    with ThreadPoolExecutor(threads) as pool:
        return [e for found in pool.map(run, range(threads)) for e in found]


def message_events(stream: Stream, count: int) -> list[chat_pb2.Message]:
    """The next ``count`` stored events of ``stream``, which must all be new messages."""
    found = stream.events(count, timeout=20)
    assert all(e.HasField("message_created") for e in found), [e.WhichOneof("payload") for e in found]
    return [e.message_created for e in found]


# --- the settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"WORKSPACE_DATABASE_POOLER": "session"}, "WORKSPACE_DATABASE_POOLER"),
        (
            {"WORKSPACE_DATABASE_POOLER": "transaction", "WORKSPACE_DATABASE_URL": "sqlite:///x.db"},
            "WORKSPACE_DATABASE_POOLER",
        ),
        (
            {"WORKSPACE_DATABASE_URL": "postgresql://h/db", "WORKSPACE_DATABASE_LISTEN_URL": "sqlite:///x.db"},
            "WORKSPACE_DATABASE_LISTEN_URL",
        ),
        ({"WORKSPACE_DATABASE_LISTEN_URL": "postgresql://h/db"}, "WORKSPACE_DATABASE_LISTEN_URL"),
    ],
)
def test_bad_pooler_settings_are_refused_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(environ)


def test_where_the_listener_connects() -> None:
    direct = {"WORKSPACE_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/ws"}
    assert Settings.from_env(direct).listen_conninfo == "postgresql://u:p@db:5432/ws"
    pooled = {"WORKSPACE_DATABASE_URL": "postgresql://u:p@pgbouncer:6432/ws", **POOLER}
    assert Settings.from_env(pooled).listen_conninfo is None
    listen = {**pooled, "WORKSPACE_DATABASE_LISTEN_URL": "postgres://u:p@db:5432/ws"}
    assert Settings.from_env(listen).listen_conninfo == "postgresql://u:p@db:5432/ws"
    assert Settings.from_env({}).listen_conninfo is None  # SQLite


def run_migrate(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_never_runs_through_a_transaction_pooler(pooled: Pooled) -> None:
    refused = run_migrate(WORKSPACE_DATABASE_URL=pooled.url, **POOLER)
    assert refused.returncode == 2, refused.stderr
    assert "WORKSPACE_DATABASE_LISTEN_URL" in refused.stderr
    with own_postgres_database("ws_pgb") as direct_url:
        done = run_migrate(WORKSPACE_DATABASE_URL=pooled.url, WORKSPACE_DATABASE_LISTEN_URL=direct_url, **POOLER)
        assert done.returncode == 0, done.stderr
        assert "shortcuts" in current_tables(direct_url)


# --- through PgBouncer ---------------------------------------------------------------------------------------


def test_a_busy_mix_works_through_pgbouncer_in_transaction_mode(pooled: Pooled) -> None:
    server = behind(pooled, **POOLER, WORKSPACE_EVENT_POLL_SECONDS="0.2")
    clients: list[Client] = []
    streams: list[Stream] = []
    try:
        banner = "".join(server.stdout)
        assert "through a transaction pooler; no LISTEN" in banner, banner
        server.wait_for_log(lambda e: "WORKSPACE_DATABASE_LISTEN_URL" in e.get("msg", ""), what="the no-LISTEN warning")

        admin = log_in(server.address, "admin", ADMIN_PASSWORD)
        clients.append(admin)
        team: list[Person] = people(admin, server, 5)
        clients += [p.client for p in team]
        room = group(team[0].client, "pooled", [p.user.id for p in team[1:]])
        side_room = group(admin, "load")  # nobody streams it
        for person in team:
            stream = Stream(person.client)
            streams.append(stream)
            stream.live()

        # Everything at once, on many connections: chat, shortcut moves, a lots race, the agenda, more chat.
        owner = team[0].client
        made_category = (
            shortcuts(owner)
            .CreateCategory(
                shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name="Busy")),
                metadata=owner.md,
                timeout=10,
            )
            .category
        )
        made_shortcuts = [
            shortcuts(owner)
            .CreateShortcut(
                shortcuts_pb2.CreateShortcutRequest(
                    shortcut=shortcuts_pb2.Shortcut(
                        title=f"s{i}", url=f"https://example.com/{i}", category_id=made_category.id
                    )
                ),
                metadata=owner.md,
                timeout=10,
            )
            .shortcut
            for i in range(8)
        ]
        race_lots = [
            lots(p.client)
            .CreateLot(
                lots_pb2.CreateLotRequest(
                    lot=lots_pb2.Lot(
                        reference=unique_name("LOT"),
                        supplier="Mairie de Lyon",
                        received_date=date_pb2.Date(year=2026, month=11, day=20),
                    )
                ),
                metadata=p.client.md,
                timeout=10,
            )
            .lot
            for p in team[:2]
        ]
        serial = unique_name("SN")
        barrier = threading.Barrier(2)
        start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

        def chat(person: Person) -> list[chat_pb2.Message]:
            return [send(person.client, room.id, f"{person.user.username} {i}").message for i in range(10)]

        def move(i: int) -> None:
            request = shortcuts_pb2.MoveShortcutRequest(
                shortcut_id=made_shortcuts[i].id, category_id=made_category.id, position=(i * 3) % 8
            )
            shortcuts(owner).MoveShortcut(request, metadata=owner.md, timeout=10)

        def add_items(i: int) -> object:
            client = team[i].client
            request = lots_pb2.AddItemsRequest(
                lot_id=race_lots[i].id,
                items=[
                    lots_pb2.NewLotItem(
                        serial_number=serial if i == 0 else f" {serial.lower()} ",
                        type=lots_pb2.ITEM_TYPE_LAPTOP,
                        brand="Dell",
                        model="Latitude 7490",
                        entry_method=lots_pb2.ENTRY_METHOD_SCAN,
                    )
                ],
            )
            barrier.wait()
            try:
                return lots(client).AddItems(request, metadata=client.md, timeout=30)
            except grpc.RpcError as e:
                return e

        def plan(i: int) -> int:
            client = team[i].client
            event = agenda_pb2.AgendaEvent(
                title=f"meeting {i}",
                start_time=ts(start + timedelta(days=i)),
                end_time=ts(start + timedelta(days=i, hours=1)),
                time_zone="Europe/Paris",
            )
            made = agenda(client).CreateEvent(
                agenda_pb2.CreateEventRequest(event=event), metadata=client.md, timeout=10
            )
            listed = agenda(client).ListEvents(
                agenda_pb2.ListEventsRequest(
                    start_time=ts(start), end_time=ts(start + timedelta(days=10)), time_zone="UTC"
                ),
                metadata=client.md,
                timeout=30,
            )
            assert [o.event_id for o in listed.occurrences] == [made.event.id]
            return made.event.id

        with ThreadPoolExecutor(16) as pool:
            sent_by = [pool.submit(chat, person) for person in team]
            moves = [pool.submit(move, i) for i in range(8)]
            adds = [pool.submit(add_items, i) for i in range(2)]
            plans = [pool.submit(plan, i) for i in range(5)]
            load = pool.submit(hammer, admin, side_room.id, 4, 25)
            sent = [f.result(60) for f in sent_by]
            for f in moves + plans:
                f.result(60)
            results = [f.result(60) for f in adds]
            assert load.result(60) == []  # the same load breaks a server without the setting (test below)

        # chat: every stream got the 50 messages once each, in the same order, each sender's in the order sent
        received = [message_events(stream, 50) for stream in streams]
        assert all(r == received[0] for r in received)
        assert sorted(m.id for m in received[0]) == sorted(m.id for batch in sent for m in batch)
        for batch in sent:
            assert [m for m in received[0] if m.sender_id == batch[0].sender_id] == batch

        # shortcuts: positions renumbered without gaps or doubles
        after = list_shortcuts(owner, made_category.id)
        assert [s.position for s in after] == list(range(8))
        assert sorted(s.title for s in after) == sorted(s.title for s in made_shortcuts)

        # lots: the same serial in two lots at once: exactly one ALREADY_EXISTS
        winners = [r for r in results if isinstance(r, lots_pb2.AddItemsResponse)]
        losers = [r for r in results if isinstance(r, grpc.RpcError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0].code() == grpc.StatusCode.ALREADY_EXISTS, losers[0].details()
    finally:
        for stream in streams:
            stream.close()
        for client in clients:
            client.close()
        server.terminate()


def test_without_the_setting_prepared_statements_break_behind_pgbouncer(pooled: Pooled) -> None:
    """psycopg prepares a statement the fifth time a connection runs it; PgBouncer then sends the connection's
    next transactions to server connections that never saw it (or that already hold another client's of the
    same name). The test proves the setting is needed: the load the pooled server above takes fails here."""
    server = behind(pooled)
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    try:
        room = group(admin, "load")
        errors: list[grpc.RpcError] = []
        for _ in range(MAX_ROUNDS):
            errors = hammer(admin, room.id, 8, 10)
            if errors:
                break
        assert errors, f"{MAX_ROUNDS} rounds of concurrent sends went through: PgBouncer kept prepared statements?"
        assert {e.code() for e in errors} <= {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}, errors[0]
        server.wait_for_log(lambda e: "prepared statement" in str(e), what="a prepared-statement error in the log")
    finally:
        admin.close()
        server.terminate()


def test_a_replica_with_a_listen_url_is_woken_by_the_others_commits(pooled: Pooled) -> None:
    """B never polls (once an hour): only the notification A's commits send can bring it the messages."""
    a = behind(pooled, **POOLER)
    b = behind(pooled, **POOLER, WORKSPACE_DATABASE_LISTEN_URL=pooled.direct_url, WORKSPACE_EVENT_POLL_SECONDS="3600")
    clients: list[Client] = []
    stream: Stream | None = None
    try:
        assert "LISTEN on WORKSPACE_DATABASE_LISTEN_URL" in "".join(b.stdout)
        admin = log_in(a.address, "admin", ADMIN_PASSWORD)
        ann, bob = people(admin, a, 2)
        clients += [admin, ann.client, bob.client]
        room = group(ann.client, "across replicas", [bob.user.id])
        bob_on_b = log_in(b.address, bob.user.username, bob.password)
        clients.append(bob_on_b)
        stream = Stream(bob_on_b)
        stream.live()
        sent = [send(ann.client, room.id, f"hello {i}").message for i in range(20)]
        assert message_events(stream, 20) == sent
        late = send(ann.client, room.id, "and one more").message
        assert message_events(stream, 1) == [late]
    finally:
        if stream is not None:
            stream.close()
        for client in clients:
            client.close()
        a.terminate()
        b.terminate()
