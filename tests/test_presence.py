"""Presence and typing: who is online, away or offline, what they say about themselves, who is typing, and
which streams hear about it.

Streams are read as in ``test_streams``: a background thread per stream, every wait bounded, every stream
cancelled at the end. "Nothing arrived" is shown with a marker message: everything before the marker is
checked. Streams carry the presence of everyone connecting in a test (the watchers too), so a check looks at
the presence changes of the one person it is about. Going offline is tested on servers whose grace is half
a second; the shared server keeps the default grace (10 s), long enough to count as "still in the grace".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from workspace.v1 import chat_pb2, presence_pb2

from .api import (
    Client,
    Person,
    another_device,
    direct,
    disable,
    expect_error,
    get_presence,
    group,
    log_in,
    people,
    presence_of,
    send,
    send_typing,
    update_presence,
    violations,
)
from .databases import fresh_database
from .servers import ADMIN_PASSWORD, ServerProcess, wait_until
from .streams import WAIT, Stream

ONLINE = presence_pb2.PRESENCE_STATE_ONLINE
AWAY = presence_pb2.PRESENCE_STATE_AWAY
OFFLINE = presence_pb2.PRESENCE_STATE_OFFLINE
UNSPECIFIED = presence_pb2.PRESENCE_STATE_UNSPECIFIED
NOWHERE = 2**62  # an id nothing has
#: The grace of the servers that show going offline, and the setting that gives it.
GRACE = 0.5
QUICK_GRACE = {"WORKSPACE_PRESENCE_GRACE_SECONDS": str(GRACE)}
#: How long going offline may take on such a server before the test fails.
OFFLINE_WAIT = 10.0


@pytest.fixture
def watch(open_stream: Callable[..., Stream]) -> Callable[..., Stream]:
    """``open_stream``, but handing out everything: presence changes and typing are what this file is about."""

    def open_(client: Client, after_event_id: int = 0) -> Stream:
        return open_stream(client, after_event_id, ignore=())

    return open_


def live(stream: Stream) -> Stream:
    """The stream, once its replay is over (there is none: it starts live)."""
    stream.live()
    return stream


def invalid(call, *args, **kwargs) -> dict[str, str]:
    """The field violations of a call that must fail with INVALID_ARGUMENT."""
    return violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, *args, **kwargs))


def state_name(state: int) -> str:
    return presence_pb2.PresenceState.Name(state)


def wait_for_state(client: Client, user_id: int, state: int, timeout: float = WAIT) -> presence_pb2.Presence:
    """Poll GetPresence until ``user_id`` is in ``state``; returns that answer."""

    def reached() -> presence_pb2.Presence | None:
        answer = presence_of(client, user_id)
        return answer if answer.state == state else None

    return wait_until(reached, timeout, f"user {user_id} to be {state_name(state)}")  # type: ignore[return-value]


def presence_change(stream: Stream, user_id: int, timeout: float = WAIT) -> chat_pb2.Event:
    """The next ``presence_changed`` event about ``user_id``, past those about other people; anything else fails."""
    deadline = time.monotonic() + timeout
    while True:
        event = stream.event(max(0.0, deadline - time.monotonic()))
        assert event.HasField("presence_changed"), f"expected a presence change of {user_id}, got {event}"
        if event.presence_changed.user_id == user_id:
            return event


def until_marker(stream: Stream, marker_id: int) -> list[chat_pb2.Event]:
    """Every event before the message ``marker_id`` (heartbeats skipped, typing included), without the marker."""
    seen = []
    while True:
        event = stream.event()
        if event.HasField("message_created") and event.message_created.id == marker_id:
            return seen
        seen.append(event)


def changes_of(events: Sequence[chat_pb2.Event], user_id: int) -> list[tuple[str, str]]:
    """(state, status text) of every presence change about ``user_id`` among ``events``."""
    return [
        (state_name(e.presence_changed.state), e.presence_changed.status_text)
        for e in events
        if e.HasField("presence_changed") and e.presence_changed.user_id == user_id
    ]


def not_presence(events: Sequence[chat_pb2.Event]) -> list[chat_pb2.Event]:
    return [e for e in events if not e.HasField("presence_changed")]


def next_not_presence(stream: Stream, timeout: float = WAIT) -> chat_pb2.Event:
    """The next event that is not a presence change (people connecting in the test cause those)."""
    deadline = time.monotonic() + timeout
    while True:
        event = stream.event(max(0.0, deadline - time.monotonic()))
        if not event.HasField("presence_changed"):
            return event


def assert_typing(event: chat_pb2.Event, conversation_id: int, user_id: int) -> None:
    assert event.HasField("typing"), event
    assert event.id == 0, event
    assert (event.typing.conversation_id, event.typing.user_id) == (conversation_id, user_id), event
    ahead = event.typing.expire_time.ToNanoseconds() - event.create_time.ToNanoseconds()
    assert 1e9 <= ahead <= 30e9, f"expire_time is {ahead / 1e9}s after create_time"


def quick_world(start_server: Callable[..., ServerProcess]) -> tuple[ServerProcess, Client]:
    """A server of its own whose presence grace is half a second, and its admin."""
    quick = start_server(**QUICK_GRACE)
    return quick, log_in(quick.address, "admin", ADMIN_PASSWORD)


# --- GetPresence --------------------------------------------------------------------------------------


def test_get_presence_asks_about_1_to_500_positive_ids(server: ServerProcess, person: Person) -> None:
    def refused(user_ids: list[int]) -> set[str]:
        request = presence_pb2.GetPresenceRequest(user_ids=user_ids)
        return set(invalid(person.client.presence.GetPresence, request, metadata=person.client.md))

    assert refused([]) == {"user_ids"}
    assert refused(list(range(1, 502))) == {"user_ids"}
    assert refused([person.user.id, 0]) == {"user_ids[1]"}
    assert refused([-5, person.user.id]) == {"user_ids[0]"}
    answer = get_presence(person.client, [person.user.id, *range(NOWHERE - 499, NOWHERE)])  # 500 is fine
    assert [p.user_id for p in answer] == [person.user.id]


def test_anyone_may_ask_about_anyone_once_each_in_the_order_asked(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol, dave = people(admin, server, 4)  # ann shares no conversation with anyone
    disable(admin, dave.user.id)
    asked = [carol.user.id, NOWHERE, bob.user.id, carol.user.id, dave.user.id, ann.user.id, bob.user.id]
    answer = get_presence(ann.client, asked)
    assert [p.user_id for p in answer] == [carol.user.id, bob.user.id, ann.user.id]
    for never_connected in answer:
        assert never_connected.state == OFFLINE, never_connected
        assert not never_connected.HasField("last_seen_time"), never_connected
        assert never_connected.status_text == ""


# --- online and offline -------------------------------------------------------------------------------


def test_a_stream_makes_its_person_online_and_more_streams_change_nothing(
    server: ServerProcess, admin: Client, watch
) -> None:
    ann, bob = people(admin, server, 2)
    made = group(bob.client, "who is here", [ann.user.id])
    watcher = live(watch(bob.client))
    assert presence_of(bob.client, ann.user.id).state == OFFLINE

    laptop = live(watch(ann.client))
    wait_for_state(bob.client, ann.user.id, ONLINE)
    assert presence_change(watcher, ann.user.id).presence_changed.state == ONLINE
    phone = another_device(server, ann)
    try:
        on_phone = live(watch(phone))
        assert presence_of(bob.client, ann.user.id).state == ONLINE
        laptop.close()  # one stream is left
        assert presence_of(bob.client, ann.user.id).state == ONLINE
        on_phone.close()  # the last one: still online during the grace (the default 10 s here)
        assert presence_of(bob.client, ann.user.id).state == ONLINE
        marker = send(bob.client, made.id, "marker").message
        assert changes_of(until_marker(watcher, marker.id), ann.user.id) == []
    finally:
        phone.close()


def test_devices_connecting_at_the_same_moment_all_get_their_stream(start_server, watch) -> None:
    """Several streams of one person opening at once write the same presence rows: none may fail."""
    server = start_server(WORKSPACE_PRESENCE_GRACE_SECONDS="0.5")
    admin = log_in(server.address, "admin", ADMIN_PASSWORD)
    (ann,) = people(admin, server, 1)
    devices = [another_device(server, ann) for _ in range(6)]
    with ThreadPoolExecutor(len(devices)) as pool:
        streams = list(pool.map(lambda device: live(watch(device)), devices))
    wait_for_state(admin, ann.user.id, ONLINE)
    for stream in streams:
        stream.close()
    wait_for_state(admin, ann.user.id, OFFLINE)


def test_the_last_stream_closing_makes_its_person_offline_after_the_grace(start_server, watch) -> None:
    quick, admin = quick_world(start_server)
    ann, bob = people(admin, quick, 2)
    group(bob.client, "who left", [ann.user.id])
    watcher = live(watch(bob.client))
    stream = live(watch(ann.client))
    wait_for_state(bob.client, ann.user.id, ONLINE)
    online = presence_change(watcher, ann.user.id)
    assert online.presence_changed.state == ONLINE

    stream.close()
    gone = wait_for_state(bob.client, ann.user.id, OFFLINE, OFFLINE_WAIT)
    assert gone.HasField("last_seen_time"), gone
    assert gone.last_seen_time.seconds >= online.create_time.seconds  # connected until at least then
    offline = presence_change(watcher, ann.user.id, OFFLINE_WAIT)
    assert offline.presence_changed.state == OFFLINE
    assert offline.presence_changed.HasField("last_seen_time")


def test_reconnecting_within_the_grace_never_shows_offline(start_server, watch) -> None:
    quick, admin = quick_world(start_server)
    ann, bob = people(admin, quick, 2)
    made = group(bob.client, "flaky network", [ann.user.id])
    watcher = live(watch(bob.client))
    first = live(watch(ann.client))
    assert presence_change(watcher, ann.user.id).presence_changed.state == ONLINE

    first.close()
    second = live(watch(ann.client))  # at once, well within the grace
    hold_until = time.monotonic() + 3 * GRACE  # the old stream's grace is long over by then
    while time.monotonic() < hold_until:
        assert presence_of(bob.client, ann.user.id).state == ONLINE
        time.sleep(0.05)
    marker = send(bob.client, made.id, "marker").message
    states = [state for state, _ in changes_of(until_marker(watcher, marker.id), ann.user.id)]
    assert "PRESENCE_STATE_OFFLINE" not in states

    second.close()  # and now for real: the watcher hears it
    assert presence_change(watcher, ann.user.id, OFFLINE_WAIT).presence_changed.state == OFFLINE


def test_a_frozen_client_goes_offline_when_it_stops_answering_pings(start_server, watch) -> None:
    """A process that stops (SIGSTOP: a laptop lid closing) keeps its socket open but answers no HTTP/2 ping;
    the server closes its connection after the keepalive timeout, and the grace follows. A client that is
    merely quiet answers the pings and stays online through many of them."""
    quick = start_server(**QUICK_GRACE, WORKSPACE_KEEPALIVE_SECONDS="0.5", WORKSPACE_KEEPALIVE_TIMEOUT_SECONDS="1")
    admin = log_in(quick.address, "admin", ADMIN_PASSWORD)
    ann, bob = people(admin, quick, 2)
    group(bob.client, "lid closed", [ann.user.id])
    watcher = live(watch(bob.client))  # bob is quiet, not frozen
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.stream_holder", quick.address, ann.user.username, ann.password],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "live"
        assert presence_change(watcher, ann.user.id).presence_changed.state == ONLINE
        os.kill(holder.pid, signal.SIGSTOP)
        offline = presence_change(watcher, ann.user.id, OFFLINE_WAIT)
        assert offline.presence_changed.state == OFFLINE
        assert holder.poll() is None  # it was the server that let go: the process is still there, stopped
    finally:
        holder.kill()
        holder.wait()
    # Bob's idle stream answered every ping meanwhile (seconds of 0.5 s keepalives): still open, still online.
    marker = send(bob.client, group(bob.client, "still here").id, "still here").message
    until_marker(watcher, marker.id)
    assert presence_of(admin, bob.user.id).state == ONLINE


# --- UpdatePresence -----------------------------------------------------------------------------------


def test_update_presence_checks_the_mask_and_the_values(server: ServerProcess, person: Person) -> None:
    client = person.client
    assert set(invalid(update_presence, client, [], state=AWAY)) == {"update_mask"}
    for paths in (["user_id"], ["last_seen_time"], ["state", "nonsense"]):
        assert set(invalid(update_presence, client, paths, state=AWAY)) == {"update_mask"}, paths
    for state in (OFFLINE, UNSPECIFIED):
        assert set(invalid(update_presence, client, ["state"], state=state)) == {"presence.state"}, state
    for text in ("x" * 101, "in a\nmeeting", "ring \x07 ring", "\x1b[31mred"):
        assert set(invalid(update_presence, client, ["status_text"], status_text=text)) == {"presence.status_text"}, (
            text
        )

    answer = update_presence(client, ["status_text"], status_text="  " + "é" * 100 + " ")
    assert answer.user_id == person.user.id
    assert answer.status_text == "é" * 100  # trimmed first, then counted in characters
    assert update_presence(client, ["status_text"], status_text="   ").status_text == ""
    assert presence_of(client, person.user.id).status_text == ""


def test_a_connected_person_goes_away_and_comes_back(server: ServerProcess, admin: Client, watch) -> None:
    ann, bob = people(admin, server, 2)
    live(watch(ann.client))
    wait_for_state(bob.client, ann.user.id, ONLINE)

    answer = update_presence(ann.client, ["state"], state=AWAY)
    assert (answer.user_id, answer.state) == (ann.user.id, AWAY)
    assert presence_of(bob.client, ann.user.id).state == AWAY
    assert update_presence(ann.client, ["state"], state=ONLINE).state == ONLINE
    assert presence_of(bob.client, ann.user.id).state == ONLINE


def test_without_a_stream_one_is_offline_whatever_one_asks_but_away_is_remembered(
    server: ServerProcess, admin: Client, watch
) -> None:
    ann, bob = people(admin, server, 2)
    assert update_presence(ann.client, ["state"], state=ONLINE).state == OFFLINE
    assert update_presence(ann.client, ["state"], state=AWAY).state == OFFLINE
    assert presence_of(bob.client, ann.user.id).state == OFFLINE

    live(watch(ann.client))
    wait_until(lambda: presence_of(bob.client, ann.user.id).state != OFFLINE, WAIT, "ann to connect")
    assert presence_of(bob.client, ann.user.id).state == AWAY


def test_a_status_text_can_be_set_at_any_time(server: ServerProcess, admin: Client, watch) -> None:
    ann, bob = people(admin, server, 2)
    answer = update_presence(ann.client, ["status_text"], status_text="  in a meeting ")
    assert (answer.state, answer.status_text) == (OFFLINE, "in a meeting")
    seen = presence_of(bob.client, ann.user.id)
    assert (seen.state, seen.status_text) == (OFFLINE, "in a meeting")

    live(watch(ann.client))
    assert wait_for_state(bob.client, ann.user.id, ONLINE).status_text == "in a meeting"
    answer = update_presence(ann.client, ["state", "status_text"], state=AWAY, status_text="lunch")
    assert (answer.state, answer.status_text) == (AWAY, "lunch")
    answer = update_presence(ann.client, ["status_text"], status_text="")  # the state is not in the mask
    assert (answer.state, answer.status_text) == (AWAY, "")
    seen = presence_of(bob.client, ann.user.id)
    assert (seen.state, seen.status_text) == (AWAY, "")


# --- presence changes on streams ----------------------------------------------------------------------


def test_presence_changes_reach_those_who_share_a_conversation_and_my_other_devices(start_server, watch) -> None:
    quick, admin = quick_world(start_server)
    ann, bob, dave = people(admin, quick, 3)  # the changes are ann's; dave shares nothing with her
    made = group(bob.client, "team", [ann.user.id])
    pair = direct(bob.client, dave.user.id).conversation
    watcher = live(watch(bob.client))
    outsider = live(watch(dave.client))

    laptop = live(watch(ann.client))
    online = presence_change(watcher, ann.user.id).presence_changed
    assert (online.user_id, online.state) == (ann.user.id, ONLINE)
    phone = another_device(quick, ann)
    try:
        on_phone = live(watch(phone))  # a second stream: nothing changes

        steps = [
            (["state"], AWAY, "", ("PRESENCE_STATE_AWAY", "")),
            (["state"], ONLINE, "", ("PRESENCE_STATE_ONLINE", "")),
            (["status_text"], UNSPECIFIED, "in a meeting", ("PRESENCE_STATE_ONLINE", "in a meeting")),
        ]
        for paths, state, text, expected in steps:
            update_presence(ann.client, paths, state=state, status_text=text)
            for stream in (watcher, on_phone):
                changed = presence_change(stream, ann.user.id).presence_changed
                assert (state_name(changed.state), changed.status_text) == expected, paths

        update_presence(ann.client, ["state"], state=ONLINE)  # already online: nothing to tell
        update_presence(ann.client, ["status_text"], status_text="in a meeting")  # the same text
        marker = send(ann.client, made.id, "marker").message
        for stream in (watcher, on_phone):
            assert changes_of(until_marker(stream, marker.id), ann.user.id) == []

        laptop.close()
        on_phone.close()
        offline = presence_change(watcher, ann.user.id, OFFLINE_WAIT).presence_changed
        assert (offline.state, offline.status_text) == (OFFLINE, "in a meeting")
    finally:
        phone.close()

    last = send(bob.client, pair.id, "for dave").message
    assert changes_of(until_marker(outsider, last.id), ann.user.id) == []


# --- typing -------------------------------------------------------------------------------------------


def test_send_typing_needs_a_conversation_of_the_caller(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    for conversation_id in (0, -1):
        assert set(invalid(send_typing, ann.client, conversation_id)) == {"conversation_id"}
    expect_error(grpc.StatusCode.NOT_FOUND, send_typing, carol.client, pair.id)
    expect_error(grpc.StatusCode.NOT_FOUND, send_typing, ann.client, NOWHERE)
    send_typing(bob.client, pair.id)


def test_typing_reaches_the_other_members_only(server: ServerProcess, admin: Client, watch) -> None:
    ann, bob, carol, dave = people(admin, server, 4)  # ann types; dave is not in the group
    made = group(ann.client, "typing", [bob.user.id, carol.user.id])
    pair = direct(ann.client, dave.user.id).conversation
    members = [live(watch(p.client)) for p in (bob, carol)]
    outsider = live(watch(dave.client))
    phone = another_device(server, ann)
    try:
        own = live(watch(phone))

        send_typing(ann.client, made.id)
        for stream in members:
            assert_typing(next_not_presence(stream), made.id, ann.user.id)
        marker = send(ann.client, made.id, "marker").message
        for stream in members:
            assert not_presence(until_marker(stream, marker.id)) == []  # one typing event, nothing more
        assert not_presence(until_marker(own, marker.id)) == []  # not to the typer's own devices
        last = send(ann.client, pair.id, "for dave").message
        assert not_presence(until_marker(outsider, last.id)) == []
    finally:
        phone.close()


def test_typing_is_delivered_at_most_once_every_two_seconds(server: ServerProcess, admin: Client, watch) -> None:
    ann, bob = people(admin, server, 2)
    pair = direct(ann.client, bob.user.id).conversation
    stream = live(watch(bob.client))

    with ThreadPoolExecutor(8) as pool:  # a flood: 200 at once, each answered OK
        list(pool.map(lambda _: send_typing(ann.client, pair.id), range(200)))
    assert_typing(next_not_presence(stream), pair.id, ann.user.id)
    marker = send(ann.client, pair.id, "marker").message
    assert not_presence(until_marker(stream, marker.id)) == []  # the other 199 were not delivered

    time.sleep(2.2)  # more than two seconds after the first was delivered
    send_typing(ann.client, pair.id)
    assert_typing(next_not_presence(stream), pair.id, ann.user.id)


def test_a_resumed_stream_does_not_replay_typing(server: ServerProcess, admin: Client, watch) -> None:
    ann, bob = people(admin, server, 2)
    pair = direct(ann.client, bob.user.id).conversation
    first = watch(bob.client)
    _, heartbeat = first.live()

    send_typing(ann.client, pair.id)
    assert_typing(next_not_presence(first), pair.id, ann.user.id)
    after = send(ann.client, pair.id, "after typing").message
    assert next_not_presence(first).message_created == after

    replayed, _ = watch(bob.client, heartbeat.last_event_id).live()
    assert [e.message_created for e in not_presence(replayed)] == [after]  # the message, not the typing


# --- several replicas ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_presence_and_typing_cross_replicas(tmp_path: Path, watch) -> None:
    with fresh_database("postgres", tmp_path) as url:
        a, b = ServerProcess(url).start(), ServerProcess(url).start()
        clients: list[Client] = []
        streams: list[Stream] = []
        try:
            admin = log_in(a.address, "admin", ADMIN_PASSWORD)
            ann, bob = people(admin, a, 2)
            clients += [admin, ann.client, bob.client]
            pair = direct(ann.client, bob.user.id).conversation
            bob_on_b = log_in(b.address, bob.user.username, bob.password)
            clients.append(bob_on_b)

            stream = live(watch(bob_on_b))  # bob connects to B ...
            streams.append(stream)
            wait_for_state(ann.client, bob.user.id, ONLINE)  # ... and A says he is online

            send_typing(ann.client, pair.id)  # typing on A reaches bob on B
            assert_typing(next_not_presence(stream), pair.id, ann.user.id)
        finally:
            for stream in streams:
                stream.close()
            for client in clients:
                client.close()
            a.terminate()
            b.terminate()
