"""StreamEvents: live events, resuming with no gap and no duplicate, heartbeats, and how a stream ends.

A stream is read by a background thread into a queue; the test takes items
from the queue with a timeout, and every stream is cancelled at the end.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from workspace.v1 import auth_pb2, chat_pb2, chat_pb2_grpc

from .api import (
    Client,
    Person,
    all_messages,
    another_device,
    direct,
    disable,
    expect_error,
    group,
    log_in,
    mark_read,
    people,
    reason,
    rich_details,
    send,
    violations,
)
from .databases import fresh_database
from .servers import ADMIN_PASSWORD, ServerProcess, wait_until
from .streams import WAIT, Stream


class Sender(threading.Thread):
    """Posts messages one after the other in a thread, while the test reads."""

    def __init__(self, client: Client, conversation_id: int, texts: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.client, self.conversation_id, self.texts = client, conversation_id, list(texts)
        self.sent: list[chat_pb2.Message] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for text in self.texts:
                self.sent.append(send(self.client, self.conversation_id, text).message)
        except BaseException as e:
            self.error = e

    def finish(self, timeout: float = 60.0) -> list[chat_pb2.Message]:
        self.join(timeout)
        assert not self.is_alive(), f"the sender did not finish within {timeout}s"
        if self.error is not None:
            raise self.error
        return self.sent


def messages(events: Sequence[chat_pb2.Event]) -> list[chat_pb2.Message]:
    """The messages of ``events``, which must all be ``message_created``."""
    assert all(e.HasField("message_created") for e in events), [e.WhichOneof("payload") for e in events]
    return [e.message_created for e in events]


def describe(event: chat_pb2.Event) -> tuple[object, ...]:
    """An event in a form that compares and prints well."""
    kind = event.WhichOneof("payload")
    if kind == "message_created":
        return ("message", event.message_created.conversation_id, event.message_created.text)
    if kind == "conversation_created":
        return ("conversation", event.conversation_created.id, event.conversation_created.name)
    if kind == "read_marker_moved":
        marker = event.read_marker_moved
        return ("marker", marker.conversation_id, marker.last_read_message_id)
    return ("heartbeat", event.heartbeat.last_event_id, event.heartbeat.live)


def resume_point(error: grpc.RpcError, code: grpc.StatusCode, expected_reason: str) -> int:
    """The ``last_event_id`` a stream ended by the server says to resume from."""
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    assert reason(error) == expected_reason
    info = next(d for d in rich_details(error) if isinstance(d, error_details_pb2.ErrorInfo))
    return int(info.metadata["last_event_id"])


def stream_error(code: grpc.StatusCode, client: Client, after_event_id: int, metadata=None) -> grpc.RpcError:
    """The error a stream opened with these arguments fails with (on its first read)."""
    request = chat_pb2.StreamEventsRequest(after_event_id=after_event_id)
    call = client.chat.StreamEvents(request, metadata=client.md if metadata is None else metadata, timeout=WAIT)
    try:
        return expect_error(code, next, call)
    finally:
        call.cancel()


def newest_event_id(client: Client, open_stream: Callable[..., Stream]) -> int:
    stream = open_stream(client)
    replayed, live = stream.live()
    assert replayed == []
    stream.close()
    return live.last_event_id


# --- starting live ----------------------------------------------------------------------------------


def test_a_stream_starts_live_with_a_heartbeat_naming_the_newest_event(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob, carol = people(admin, server, 3)
    watcher = open_stream(ann.client)
    replayed, live = watcher.live()
    assert replayed == []  # the first message is the heartbeat: no replay without after_event_id
    made = group(ann.client, "plans", [bob.user.id])
    sent = send(ann.client, made.id, "hello").message
    created, posted = watcher.events(2)
    assert created.conversation_created.id == made.id and posted.message_created.id == sent.id
    assert live.last_event_id < created.id < posted.id
    for person in (bob, carol):  # a member of the group or not, "now" is the newest event of the server
        replayed, heartbeat = open_stream(person.client).live()
        assert replayed == [] and heartbeat.last_event_id >= posted.id  # or later: presence of those connecting


# --- live delivery ----------------------------------------------------------------------------------


def test_messages_and_new_conversations_arrive_live_in_order(server: ServerProcess, admin: Client, open_stream) -> None:
    ann, bob, carol = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    stream = open_stream(bob.client)
    stream.live()

    first = send(ann.client, pair.id, "one").message
    second = send(bob.client, pair.id, "  two  ", reply_to_message_id=first.id).message
    assert messages(stream.events(2)) == [first, second]

    made = group(ann.client, "after I subscribed", [bob.user.id, carol.user.id])
    created = stream.event()
    assert created.conversation_created == made
    sent = [send(p.client, made.id, f"in the group {i}").message for i, p in enumerate((ann, carol, bob, ann))]
    assert messages(stream.events(len(sent))) == sent


def test_my_read_markers_reach_me_from_every_device_and_nobody_elses_do(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "markers", [bob.user.id])
    older, newer = (send(ann.client, made.id, text).message for text in ("older", "newer"))
    stream = open_stream(bob.client)
    stream.live()
    phone = another_device(server, bob)
    try:
        mark_read(phone, made.id, newer.id)
        moved = stream.event()
        assert moved.read_marker_moved == chat_pb2.ReadMarker(conversation_id=made.id, last_read_message_id=newer.id)

        mark_read(phone, made.id, older.id)  # backwards: the marker does not move, there is nothing to tell
        mark_read(ann.client, made.id, newer.id)  # someone else's marker
        latest = send(ann.client, made.id, "marker").message
        assert stream.event().message_created == latest  # nothing came in between

        mark_read(bob.client, made.id, latest.id)  # the streaming device itself
        assert describe(stream.event()) == ("marker", made.id, latest.id)
    finally:
        phone.close()


def test_nothing_of_a_conversation_i_am_not_in_reaches_my_stream(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob, dave = people(admin, server, 3)
    theirs = group(ann.client, "theirs", [bob.user.id])
    pair = direct(ann.client, dave.user.id).conversation
    stream = open_stream(dave.client)
    stream.live()

    another = group(bob.client, "another", [ann.user.id])
    for i in range(3):
        send(ann.client, theirs.id, f"not for dave {i}")
        send(bob.client, another.id, f"not for dave either {i}")
    last = send(bob.client, theirs.id, "still not").message
    mark_read(ann.client, theirs.id, last.id)
    direct(bob.client, ann.user.id)

    marker = send(ann.client, pair.id, "for dave").message
    assert stream.event().message_created == marker


# --- resuming ---------------------------------------------------------------------------------------


def test_a_resumed_stream_replays_exactly_what_i_missed_then_goes_live(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob, carol = people(admin, server, 3)
    made = group(ann.client, "resume", [bob.user.id])
    watcher = open_stream(ann.client)  # ann sees every event of this test but bob's read marker
    watcher.live()
    stream = open_stream(bob.client)
    stream.live()
    for text in ("one", "two"):
        send(ann.client, made.id, text)
    assert [describe(e) for e in stream.events(2)] == [("message", made.id, "one"), ("message", made.id, "two")]
    resume_from = stream.position
    stream.close()
    watcher.events(2)

    # while bob is away
    three = send(ann.client, made.id, "three").message
    four = send(bob.client, made.id, "four").message
    second = group(ann.client, "second", [bob.user.id])
    five = send(ann.client, second.id, "five").message
    phone = another_device(server, bob)
    try:
        mark_read(phone, made.id, three.id)
    finally:
        phone.close()
    hidden = group(carol.client, "hidden", [ann.user.id])
    send(carol.client, hidden.id, "not for bob")
    mark_read(ann.client, made.id, four.id)
    newest = watcher.events(7)[-1].id

    resumed = open_stream(bob.client, resume_from)
    replayed, live = resumed.live()
    assert [describe(e) for e in replayed] == [
        ("message", made.id, "three"),
        ("message", made.id, "four"),
        ("conversation", second.id, "second"),
        ("message", second.id, "five"),
        ("marker", made.id, three.id),
    ]
    assert messages([replayed[0], replayed[1], replayed[3]]) == [three, four, five]
    assert replayed[2].conversation_created == second
    assert live.last_event_id == newest

    six = send(ann.client, second.id, "six").message
    assert resumed.event().message_created == six


def test_resuming_again_and_again_while_messages_keep_coming_loses_and_repeats_nothing(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "hand-over", [bob.user.id])
    texts = [f"message {i}" for i in range(80)]
    stream = open_stream(bob.client)
    stream.live()
    sender = Sender(ann.client, made.id, texts)
    sender.start()

    received: list[chat_pb2.Message] = []
    reconnects = 0
    while len(received) < len(texts):
        for _ in range(1 + reconnects % 4):  # a few items, then away again: mid-replay, at the heartbeat, live
            event = stream.next()
            if event.HasField("message_created"):
                received.append(event.message_created)
            if len(received) == len(texts):
                break
        stream.close()
        stream = open_stream(bob.client, stream.position)
        reconnects += 1
        assert reconnects < 10 * len(texts), f"{len(received)} messages after {reconnects} reconnections"

    sent = sender.finish()
    assert [m.text for m in received] == texts
    assert received == sent
    replayed, _ = stream.live()
    assert replayed == []  # and nothing after the last one either
    assert reconnects >= 20


# --- bad requests -----------------------------------------------------------------------------------


def test_a_flood_of_concurrent_sends_and_retries_loses_and_repeats_nothing(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    """200 messages from 16 threads at once, then every one retried at once with its request id: 200 stored,
    the retries answer the first messages, the reader gets each once in log order, others are still served."""
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "flood", [bob.user.id])
    reader = open_stream(bob.client)
    reader.live()
    request_ids = [uuid.uuid4().hex for _ in range(200)]

    def post(i: int) -> chat_pb2.Message:
        return send(ann.client, made.id, f"flood {i}", request_id=request_ids[i]).message

    with ThreadPoolExecutor(16) as pool:
        first = list(pool.map(post, range(200)))
        again = list(pool.map(post, range(200)))
        assert bob.client.whoami().id == bob.user.id  # someone else, served during the flood
    assert [m.id for m in again] == [m.id for m in first]
    assert [m.text for m in first] == [f"flood {i}" for i in range(200)]
    assert len({m.id for m in first}) == 200

    received = [e.message_created for e in reader.events(200)]  # the reader checks ids only ever grow
    assert sorted(m.id for m in received) == sorted(m.id for m in first)
    marker = send(ann.client, made.id, "after the flood").message
    assert reader.event().message_created.id == marker.id  # and nothing more came before it
    assert len(all_messages(bob.client, made.id)) == 201


def test_after_event_id_must_not_be_negative(person: Person) -> None:
    error = stream_error(grpc.StatusCode.INVALID_ARGUMENT, person.client, -1)
    assert set(violations(error)) == {"after_event_id"}


def test_an_event_id_the_server_has_not_reached_asks_for_a_resync(person: Person, open_stream) -> None:
    newest = newest_event_id(person.client, open_stream)
    # Not newest + 1: a presence change of an earlier test's person may take that id meanwhile.
    for unknown in (newest + 1000, 2**62):
        error = stream_error(grpc.StatusCode.OUT_OF_RANGE, person.client, unknown)
        assert reason(error) == "RESYNC_REQUIRED"
    replayed, live = open_stream(person.client, newest).live()  # the newest itself is known: nothing to replay
    assert replayed == [] and live.last_event_id >= newest


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer not-a-token"),)], ids=["none", "garbage"])
def test_a_stream_needs_a_valid_token(person: Person, metadata) -> None:
    stream_error(grpc.StatusCode.UNAUTHENTICATED, person.client, 0, metadata)


# --- heartbeats -------------------------------------------------------------------------------------


def test_a_quiet_stream_gets_heartbeats_that_move_past_events_it_may_not_see(start_server, open_stream) -> None:
    server = start_server(WORKSPACE_STREAM_HEARTBEAT_SECONDS="0.5")
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    ann, bob, carol = people(admin, server, 3)
    theirs = group(bob.client, "theirs", [carol.user.id])
    observer = open_stream(bob.client)
    observer.live()
    stream = open_stream(ann.client)
    _, live = stream.live()
    idle = stream.next()
    assert idle.heartbeat == chat_pb2.Heartbeat(last_event_id=live.last_event_id, live=False)

    for i in range(3):
        send(bob.client, theirs.id, f"not for ann {i}")
        send(carol.client, theirs.id, f"still not for ann {i}")
    mark_read(carol.client, theirs.id, send(bob.client, theirs.id, "the last").message.id)
    unseen = [e.id for e in observer.events(7)]  # carol's marker is hers: bob never learns its id
    deadline = time.monotonic() + WAIT
    while True:  # only heartbeats, until one covers what the others did
        event = stream.next()
        assert event.HasField("heartbeat") and not event.heartbeat.live, event
        if event.heartbeat.last_event_id > unseen[-1]:
            break
        assert time.monotonic() < deadline, f"no heartbeat moved past event {unseen[-1]} within {WAIT}s"
    resume_from = event.heartbeat.last_event_id
    stream.close()

    replayed, again = open_stream(ann.client, resume_from).live()
    # Nothing of theirs comes back. (The log may have moved on meanwhile: on a slow machine Ann's stream closing
    # can outlast the presence grace and record her going offline and online again; that is hers to see.)
    assert [e for e in replayed if e.WhichOneof("payload") != "presence_changed"] == []
    assert again.last_event_id >= resume_from


# --- how a stream ends ------------------------------------------------------------------------------


def test_a_reader_too_slow_is_ended_and_resumes_where_it_stopped(start_server, open_stream) -> None:
    server = start_server(WORKSPACE_STREAM_QUEUE_SIZE="20")
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    ann, fast, slow = people(admin, server, 3)
    made = group(ann.client, "busy", [fast.user.id, slow.user.id])
    fast_stream = open_stream(fast.client)
    fast_stream.live()
    # Without BDP probing the slow reader's receive window stays small, so the server's writes soon block.
    channel = grpc.insecure_channel(server.address, options=[("grpc.http2.bdp_probe", 0)])
    request = chat_pb2.StreamEventsRequest()
    # its deadline bounds the wait below if the server never ends the stream
    call = chat_pb2_grpc.ChatServiceStub(channel).StreamEvents(request, metadata=slow.client.md, timeout=30)
    got: list[chat_pb2.Event] = []
    try:
        first = next(call).event
        assert first.heartbeat.live
        # then the slow reader reads nothing while the others talk
        sent = [send(ann.client, made.id, f"{i:04d} " + "x" * 1995).message for i in range(150)]
        assert messages(fast_stream.events(len(sent))) == sent
        sent.append(send(ann.client, made.id, "the fast reader is still there").message)
        assert fast_stream.event().message_created == sent[-1]

        with pytest.raises(grpc.RpcError) as info:
            for response in call:  # the slow reader reads again
                got.append(response.event)
    finally:
        call.cancel()
        channel.close()

    assert 0 < len(got) < len(sent) - 20, f"{len(got)} of {len(sent)} messages, then {info.value.code().name}"
    assert messages(got) == sent[: len(got)]
    replayed, _ = open_stream(slow.client, got[-1].id).live()
    assert messages(replayed) == sent[len(got) :]
    # The error names the last event the reader received: resuming from it repeats nothing and skips nothing.
    assert resume_point(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_TOO_SLOW") == got[-1].id


def test_resuming_from_before_the_retention_window_asks_for_a_resync(start_server, open_stream) -> None:
    # Rate limits off: the wait below opens a stream every 20 ms, past the default 5 a second per person.
    server = start_server(WORKSPACE_EVENT_RETENTION_DAYS="0.00002", WORKSPACE_RATE_LIMITS="off")  # about 1.7 s
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "short memory", [bob.user.id])
    first = send(ann.client, made.id, "soon forgotten").message
    stream = open_stream(bob.client)
    _, live = stream.live()
    stream.close()

    def forgotten() -> bool:
        call = bob.client.chat.StreamEvents(
            chat_pb2.StreamEventsRequest(after_event_id=1), metadata=bob.client.md, timeout=WAIT
        )
        try:
            next(call)
            return False
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error
            return reason(error) == "RESYNC_REQUIRED"
        finally:
            call.cancel()

    wait_until(forgotten, timeout=20, message="events older than the retention window to be pruned")
    assert first.id < live.last_event_id
    _, again = open_stream(bob.client, live.last_event_id).live()  # the newest id still resumes
    assert again.last_event_id >= live.last_event_id


@pytest.mark.parametrize("ending", ["logout", "disabled"])
def test_a_stream_ends_when_its_session_does(start_server, open_stream, ending: str) -> None:
    """A stream outlives its access token, but not a logout or a disabled account (checked each heartbeat)."""
    server = start_server(WORKSPACE_STREAM_HEARTBEAT_SECONDS="0.5", WORKSPACE_AUTH_CACHE_SECONDS="0.2")
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    (ann,) = people(admin, server, 1)
    stream = open_stream(ann.client)
    stream.live()
    other_device = open_stream(another_device(server, ann))
    other_device.live()
    if ending == "logout":
        ann.client.auth.Logout(auth_pb2.LogoutRequest(), metadata=ann.client.md, timeout=WAIT)
    else:
        disable(admin, ann.user.id)
    _, error = stream.ending()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and reason(error) == "SESSION_ENDED", error
    if ending == "logout":  # a logout ends that device's session only
        assert other_device.next().HasField("heartbeat")
    else:
        _, error = other_device.ending()
        assert reason(error) == "SESSION_ENDED"


def test_a_server_shutting_down_ends_its_streams_saying_where_to_resume(start_server, open_stream) -> None:
    server = start_server()
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    ann, bob, carol = people(admin, server, 3)
    made = group(ann.client, "until the end", [bob.user.id])
    busy = open_stream(bob.client)
    busy.live()
    quiet = open_stream(carol.client)  # receives nothing but its live heartbeat
    _, quiet_live = quiet.live()
    sent = [send(ann.client, made.id, text).message for text in ("one", "two")]
    received = busy.events(2)
    assert messages(received) == sent

    assert server.terminate() == 0  # SIGTERM
    left, error = busy.ending()
    assert left == []
    assert resume_point(error, grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN") == received[-1].id
    left, error = quiet.ending()
    assert left == []
    assert resume_point(error, grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN") == quiet_live.last_event_id


# --- several replicas -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_replicas_deliver_every_message_once_in_order_even_when_one_is_killed(tmp_path: Path, open_stream) -> None:
    with fresh_database("postgres", tmp_path) as url:
        a, b = ServerProcess(url).start(), ServerProcess(url).start()
        clients: list[Client] = []
        try:
            admin = log_in(a.address, "admin", ADMIN_PASSWORD)
            ann, bob = people(admin, a, 2)
            clients += [admin, ann.client, bob.client]
            made = group(ann.client, "across replicas", [bob.user.id])
            bob_on_b = log_in(b.address, bob.user.username, bob.password)
            clients.append(bob_on_b)

            # a sender on A, a reader on B
            reader = open_stream(bob_on_b)
            reader.live()
            sender = Sender(ann.client, made.id, [f"first {i}" for i in range(500)])
            sender.start()
            received = messages(reader.events(500))
            assert received == sender.finish()

            # B dies in the middle; the reader goes on with A from the last event it received
            sender = Sender(ann.client, made.id, [f"second {i}" for i in range(500)])
            sender.start()
            received = messages(reader.events(200))
            assert b.kill() == -signal.SIGKILL
            rest, error = reader.ending()
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            received += messages([e for e in rest if not e.HasField("heartbeat")])

            resumed = open_stream(bob.client, reader.position)
            replayed, _ = resumed.live()
            received += messages(replayed)
            sent = sender.finish()
            received += messages(resumed.events(len(sent) - len(received)))
            assert [m.text for m in received] == [m.text for m in sent]
            assert received == sent
            after = send(ann.client, made.id, "and nothing else before this").message
            assert resumed.event().message_created == after
        finally:
            for client in clients:
                client.close()
            a.terminate()
            b.kill()
