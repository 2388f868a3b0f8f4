"""The shared client library (clients/workspace_client) against a real server: tokens, refresh, streams."""

from __future__ import annotations

import os
import random
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from workspace.v1 import auth_pb2, chat_pb2, users_pb2
from workspace_client import (
    FileTokenStore,
    LoginRefused,
    NotSignedIn,
    Session,
    StreamState,
    Unreachable,
    backoff_delay,
    default_token_store,
    event_stream,
    stats_stream,
)
from workspace_client.streams import BACKOFF_BASE, BACKOFF_CAP

from .servers import ADMIN_PASSWORD, ServerProcess, wait_until


def admin_session(address: str, folder: Path, **options) -> Session:  # type: ignore[no-untyped-def]
    session = Session(address, token_store=FileTokenStore(folder), **options)
    session.login("admin", ADMIN_PASSWORD)
    return session


def whoami(session: Session) -> users_pb2.User:
    return session.call(session.auth.WhoAmI, auth_pb2.WhoAmIRequest()).user


def new_person(session: Session) -> tuple[str, str]:
    username, password = f"lib-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    request = users_pb2.CreateUserRequest(user=users_pb2.User(username=username), password=password)
    session.call(session.users.CreateUser, request)
    return username, password


# --- back-off: the schedule, not the clock ----------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    ceilings = [backoff_delay(attempt, rng=lambda: 1.0) for attempt in range(1, 12)]
    assert ceilings[:4] == [BACKOFF_BASE, 2 * BACKOFF_BASE, 4 * BACKOFF_BASE, 8 * BACKOFF_BASE]
    assert ceilings == sorted(ceilings)
    assert max(ceilings) == BACKOFF_CAP and ceilings[-1] == BACKOFF_CAP
    assert backoff_delay(1, rng=lambda: 0.0) == 0.0


def test_backoff_is_jittered_over_the_whole_window() -> None:
    rng = random.Random(7).random
    for attempt in (1, 3, 6, 20):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) == len(delays)  # two clients that failed together do not retry together
        assert min(delays) < ceiling / 4 and max(delays) > 3 * ceiling / 4  # full jitter: the whole window


# --- login errors -----------------------------------------------------------------------------------------


def test_login_errors_say_what_went_wrong(server: ServerProcess, tmp_path: Path) -> None:
    admin = admin_session(server.address, tmp_path / "admin")
    username, _ = new_person(admin)
    session = Session(server.address, token_store=FileTokenStore(tmp_path / "person"))

    with pytest.raises(LoginRefused) as wrong:
        session.login(username, "not-the-password")
    assert wrong.value.reason == "wrong_password" and "Wrong username or password" in str(wrong.value)

    def throttled() -> LoginRefused | None:
        try:
            session.login(username, "not-the-password")
        except LoginRefused as refused:
            return refused if refused.reason == "throttled" else None
        return None

    refused = wait_until(throttled, 30, "the account to be throttled")
    assert refused.retry_after and refused.retry_after > 0 and "Try again in" in str(refused)

    other, other_password = new_person(admin)
    disable = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=_user_id(admin, other), disabled=True), update_mask={"paths": ["disabled"]}
    )
    admin.call(admin.users.UpdateUser, disable)
    with pytest.raises(LoginRefused) as disabled:
        session.login(other, other_password)
    assert disabled.value.reason == "disabled"

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(Unreachable) as unreachable:
        Session(nowhere, token_store=FileTokenStore(tmp_path / "x")).login("admin", "x", timeout=2)
    assert nowhere in str(unreachable.value)
    with pytest.raises(NotSignedIn):
        whoami(Session(server.address, token_store=FileTokenStore(tmp_path / "y")))


def _user_id(admin: Session, username: str) -> int:
    request = users_pb2.ListUsersRequest(page_size=200, name_prefix=username, show_disabled=True)
    (user,) = [u for u in admin.call(admin.users.ListUsers, request).users if u.username == username]
    return user.id


# --- tokens -----------------------------------------------------------------------------------------------


def test_access_token_is_refreshed_before_it_expires(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(WORKSPACE_ACCESS_TOKEN_TTL="2")
    session = admin_session(server.address, tmp_path)
    first_access, first_refresh = session.access_token, FileTokenStore(tmp_path).load(session.store_key)
    assert whoami(session).username == "admin"
    assert session.refreshes == 0 and session.access_token == first_access

    wait_until(lambda: time.time() >= session.refresh_time, 5, "the refresh margin")
    assert whoami(session).username == "admin"
    assert (session.refreshes, session.last_refresh_reason) == (1, "expiry")
    assert session.access_token != first_access
    stored = FileTokenStore(tmp_path).load(session.store_key)
    assert stored and stored != first_refresh  # the rotated refresh token replaced the spent one


def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(WORKSPACE_ACCESS_TOKEN_TTL="1")
    # A device whose clock is an hour slow believes its token is fresh: only the server's refusal tells it.
    session = admin_session(server.address, tmp_path, clock=lambda: time.time() - 3600)
    stale = session.access_token

    def refused() -> bool:
        try:
            session.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=(("authorization", f"Bearer {stale}"),), timeout=5)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    wait_until(refused, 15, "the server to refuse the expired token")
    assert whoami(session).username == "admin"  # refused, refreshed, retried: the caller saw nothing
    assert (session.refreshes, session.last_refresh_reason) == (1, "refused")
    assert session.access_token != stale


def test_refresh_token_file_is_private_and_logout_removes_it(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKSPACE_CLIENT_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    store = default_token_store()  # this machine has no usable keyring backend: a file under XDG_CONFIG_HOME
    assert isinstance(store, FileTokenStore)
    assert store.directory == tmp_path / "workspace" / "tokens"

    session = Session(server.address, app="library-test", token_store=store)
    session.login("admin", ADMIN_PASSWORD)
    path = store.path(session.store_key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    assert path.read_text() and path.read_text() != session.access_token

    # The next run of the app continues the session from the file, without the password.
    again = Session(server.address, app="library-test", token_store=store)
    assert again.resume() is not None and again.user.username == "admin"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # still private after the rotation rewrote it

    again.logout()
    assert not path.exists()
    assert not again.signed_in
    with pytest.raises(NotSignedIn):
        whoami(again)
    assert Session(server.address, app="library-test", token_store=store).resume() is None


def test_the_config_dir_variable_forces_the_file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_CLIENT_CONFIG_DIR", str(tmp_path))
    store = default_token_store()
    assert isinstance(store, FileTokenStore) and store.directory == tmp_path / "tokens"


# --- the resumable stream ---------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.states: list[StreamState] = []
        self.lock = threading.Lock()

    def item(self, item: object) -> None:
        with self.lock:
            self.items.append(item)

    def state(self, change) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            if not self.states or self.states[-1] != change.state:
                self.states.append(change.state)


def test_stream_resumes_after_a_restart_without_losing_or_repeating(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = start_server()
    port = first.address.rsplit(":", 1)[1]
    session = admin_session(first.address, tmp_path)
    conversation = session.call(
        session.chat.CreateGroupConversation, chat_pb2.CreateGroupConversationRequest(name="restart")
    ).conversation

    def send(text: str) -> int:
        request = chat_pb2.SendMessageRequest(conversation_id=conversation.id, text=text, request_id=uuid.uuid4().hex)
        return session.call(session.chat.SendMessage, request).message.id

    released = threading.Event()

    def held_backoff(attempt: int) -> float:
        released.wait(60)  # the test decides when the stream may reconnect
        return 0.05

    events, ticks = Recorder(), Recorder()
    stream = event_stream(session, on_item=events.item, on_state=events.state, backoff=held_backoff)
    stats = stats_stream(session, on_item=ticks.item, on_state=ticks.state, backoff=lambda attempt: 0.2)
    stream.start()
    stats.start()
    try:
        wait_until(lambda: events.states[-1:] == [StreamState.CONNECTED], 10, "the stream to connect")

        def received() -> list[int]:
            with events.lock:
                return [r.event.message_created.id for r in events.items if r.event.HasField("message_created")]

        sent = [send(f"before {i}") for i in range(3)]
        wait_until(lambda: received() == sent, 10, "the messages sent before the restart")
        wait_until(lambda: ticks.items, 10, "a stats tick")

        assert first.terminate() == 0
        wait_until(lambda: events.states[-1] == StreamState.RECONNECTING, 10, "the stream to notice")
        wait_until(lambda: ticks.states[-1] == StreamState.RECONNECTING, 10, "the stats stream to notice")

        second = start_server(first.database_url, WORKSPACE_GRPC_PORT=port)
        assert second.address == first.address
        sent += wait_until(lambda: _try_send(send, "while away"), 20, "the restarted server to take a message")
        released.set()

        sent += [send(f"after {i}") for i in range(2)]
        wait_until(lambda: received() == sent, 20, "every message, once, in order")
        assert events.states == [
            StreamState.CONNECTING,
            StreamState.CONNECTED,
            StreamState.RECONNECTING,
            StreamState.CONNECTED,
        ]
        ticked = len(ticks.items)
        wait_until(lambda: ticks.states[-1] == StreamState.CONNECTED and len(ticks.items) > ticked, 20, "new ticks")
    finally:
        released.set()
        stream.stop()
        stats.stop()
    assert events.states[-1] == StreamState.STOPPED and ticks.states[-1] == StreamState.STOPPED
    assert len(received()) == len(set(received()))


def _try_send(send: Callable[[str], int], text: str) -> list[int] | None:
    try:
        return [send(text)]
    except Unreachable:
        return None


def test_stream_starts_afresh_when_the_server_asks_to_resynchronise(server: ServerProcess, tmp_path: Path) -> None:
    session = admin_session(server.address, tmp_path)
    resyncs: list[int] = []
    events = Recorder()
    # An id from another installation (or a database that was reset): the server answers RESYNC_REQUIRED.
    stream = event_stream(
        session,
        after_id=10**12,
        on_item=events.item,
        on_state=events.state,
        on_resync=lambda: resyncs.append(stream.position),
    )
    stream.start()
    try:
        wait_until(lambda: events.states[-1:] == [StreamState.CONNECTED], 10, "the stream to start afresh")
        assert resyncs == [0]  # the caller was told to reload its state, and the stream followed from 0
        assert 0 < stream.position < 10**12  # then the first heartbeat said where "now" is
    finally:
        stream.stop()


def test_stream_stops_when_the_session_is_ended(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = start_server(WORKSPACE_STREAM_HEARTBEAT_SECONDS="0.5")
    admin = admin_session(server.address, tmp_path / "admin")
    username, password = new_person(admin)
    person = Session(server.address, token_store=FileTokenStore(tmp_path / "person"))
    person.login(username, password)
    events = Recorder()
    changes: list[object] = []
    stream = event_stream(person, on_item=events.item, on_state=changes.append)
    stream.start()
    try:
        wait_until(lambda: stream.state == StreamState.CONNECTED, 10, "the stream to connect")
        disable = users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=_user_id(admin, username), disabled=True), update_mask={"paths": ["disabled"]}
        )
        admin.call(admin.users.UpdateUser, disable)
        wait_until(lambda: stream.state == StreamState.STOPPED, 20, "the stream to stop")
        last = changes[-1]
        assert last.state == StreamState.STOPPED and "log in again" in last.error  # type: ignore[attr-defined]
        assert StreamState.RECONNECTING not in [c.state for c in changes]  # type: ignore[attr-defined]
    finally:
        stream.stop()


def test_a_stream_replaced_by_a_newer_one_stops_instead_of_fighting_back(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Past WORKSPACE_RATE_MAX_STREAMS_PER_PERSON the server ends the oldest stream (TOO_MANY_STREAMS); the
    library stops it rather than reconnect, which would end the newer one in turn, forever."""
    server = start_server(WORKSPACE_RATE_MAX_STREAMS_PER_PERSON="1")
    admin = admin_session(server.address, tmp_path / "admin")
    username, password = new_person(admin)
    person = Session(server.address, token_store=FileTokenStore(tmp_path / "person"))
    person.login(username, password)
    old_changes: list[object] = []
    old = event_stream(person, on_item=lambda _: None, on_state=old_changes.append).start()
    new = event_stream(person, on_item=lambda _: None)
    try:
        wait_until(lambda: old.state == StreamState.CONNECTED, 10, "the first stream to connect")
        new.start()
        wait_until(lambda: old.state == StreamState.STOPPED, 10, "the first stream to stop")
        assert "TOO_MANY_STREAMS" in old_changes[-1].error or "newer" in old_changes[-1].error  # type: ignore[attr-defined]
        wait_until(lambda: new.state == StreamState.CONNECTED, 10, "the newer stream to connect")
        assert StreamState.RECONNECTING not in [c.state for c in old_changes]  # type: ignore[attr-defined]
        time.sleep(1.0)  # had the old one reconnected, the newer one would have been ended meanwhile
        assert new.state == StreamState.CONNECTED
    finally:
        old.stop()
        new.stop()
