"""ActivityService: every change through any service leaves one entry, written with the change (a change
that fails leaves none); entries never hold a password, a token or a message's text; administrators list
them with filters and follow them on a stream that resumes from an id like the chat stream."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from workspace.v1 import (
    activity_pb2,
    activity_pb2_grpc,
    auth_pb2,
    monitoring_pb2,
    monitoring_pb2_grpc,
    shortcuts_pb2,
    shortcuts_pb2_grpc,
    users_pb2,
)

from .api import (
    Client,
    Person,
    add_reaction,
    create_person,
    edit,
    expect_error,
    group,
    log_in,
    send,
    unique_name,
    violations,
)
from .servers import ServerProcess
from .streams import WAIT

NOWHERE = 2**62


def stub(client: Client) -> activity_pb2_grpc.ActivityServiceStub:
    return activity_pb2_grpc.ActivityServiceStub(client.channel)


def entries(client: Client, **filters) -> list[activity_pb2.ActivityEntry]:
    """Every page of ListActivity with these filters, newest first."""
    found, token = [], ""
    while True:
        request = activity_pb2.ListActivityRequest(page_token=token, page_size=200, **filters)
        reply = stub(client).ListActivity(request, metadata=client.md, timeout=10)
        found += reply.entries
        token = reply.next_page_token
        if not token:
            return found


def newest_id(admin: Client) -> int:
    reply = stub(admin).ListActivity(activity_pb2.ListActivityRequest(page_size=1), metadata=admin.md, timeout=10)
    return reply.entries[0].id if reply.entries else 0


def since(admin: Client, after_id: int, **filters) -> list[activity_pb2.ActivityEntry]:
    """Entries newer than ``after_id``, oldest first."""
    return [e for e in reversed(entries(admin, **filters)) if e.id > after_id]


def actions(found: list[activity_pb2.ActivityEntry]) -> list[str]:
    return [e.action for e in found]


class ActivityStream:
    """StreamActivity read by a background thread into a queue; cancelled by ``close``."""

    def __init__(self, client: Client, after_id: int = 0) -> None:
        self.call = stub(client).StreamActivity(
            activity_pb2.StreamActivityRequest(after_id=after_id), metadata=client.md
        )
        self.items: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as e:
            self.items.put(e)

    def next(self, timeout: float = WAIT) -> activity_pb2.StreamActivityResponse | grpc.RpcError:
        return self.items.get(timeout=timeout)

    def live(self) -> activity_pb2.Heartbeat:
        """Every replayed entry until the live heartbeat, and the heartbeat."""
        self.replayed: list[activity_pb2.ActivityEntry] = []
        while True:
            item = self.next()
            assert not isinstance(item, grpc.RpcError), item
            if item.HasField("heartbeat"):
                if item.heartbeat.live:
                    return item.heartbeat
                continue
            self.replayed.append(item.entry)

    def entry(self, timeout: float = WAIT) -> activity_pb2.ActivityEntry:
        while True:
            item = self.next(timeout)
            assert not isinstance(item, grpc.RpcError), item
            if item.HasField("entry"):
                return item.entry

    def error(self, timeout: float = WAIT) -> grpc.RpcError:
        while True:
            item = self.next(timeout)
            if isinstance(item, grpc.RpcError):
                return item

    def close(self) -> None:
        self.call.cancel()


@pytest.fixture
def watch() -> Iterator[Callable[..., ActivityStream]]:
    opened: list[ActivityStream] = []

    def open_(client: Client, after_id: int = 0) -> ActivityStream:
        stream = ActivityStream(client, after_id)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()


# --- what is recorded -----------------------------------------------------------------------------------


def test_log_ins_and_failed_log_ins_are_recorded_without_the_password(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    start = newest_id(admin)
    again = log_in(server.address, person.user.username, person.password)
    again.close()
    wrong = f"not-the-password-{uuid.uuid4().hex}"
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        admin.auth.Login,
        auth_pb2.LoginRequest(username=person.user.username, password=wrong),
    )
    found = since(admin, start)
    assert actions(found) == ["auth.login", "auth.login_failed"], found
    login, failed = found
    assert (login.actor_id, login.actor_username, login.resource_type) == (
        person.user.id,
        person.user.username,
        "session",
    )
    assert (failed.actor_id, failed.actor_username) == (0, person.user.username)
    for entry in found:
        assert person.password not in str(entry) and wrong not in str(entry)


def test_account_changes_are_recorded_with_the_fields_changed(server: ServerProcess, admin: Client) -> None:
    start = newest_id(admin)
    made = create_person(admin, server.address)
    made.client.close()
    admin.users.UpdateUser(
        users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=made.user.id, display_name="Renamed"), update_mask=FieldMask(paths=["display_name"])
        ),
        metadata=admin.md,
    )
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=made.user.id), metadata=admin.md)
    found = [e for e in since(admin, start) if e.resource_type == "user"]
    assert actions(found) == ["user.create", "user.update", "user.delete"], found
    assert {e.resource_id for e in found} == {str(made.user.id)}
    assert all(e.actor_id == admin.user.id for e in found)
    assert "display_name" in found[1].detail
    assert made.password not in str(since(admin, start))


def test_a_change_that_fails_records_nothing(server: ServerProcess, admin: Client, person: Person) -> None:
    start = newest_id(admin)
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        admin.users.CreateUser,
        users_pb2.CreateUserRequest(user=users_pb2.User(username="x"), password="short"),
        metadata=admin.md,
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        person.client.users.DeleteUser,
        users_pb2.DeleteUserRequest(user_id=admin.user.id),
        metadata=person.client.md,
    )
    assert since(admin, start) == []


def test_chat_changes_are_recorded_but_never_the_text(server: ServerProcess, admin: Client, person: Person) -> None:
    made = group(person.client, "logged", [admin.user.id])
    start = newest_id(admin)
    secret = f"the text itself {uuid.uuid4().hex}"
    request_id = uuid.uuid4().hex
    message = send(person.client, made.id, secret, request_id=request_id).message
    send(person.client, made.id, secret, request_id=request_id)  # an idempotent retry: nothing new
    edit(person.client, message.id, secret + " edited")
    add_reaction(admin, message.id, "👍")
    found = since(admin, start)
    assert actions(found) == ["message.send", "message.edit", "message.react"], found
    assert found[0].resource_id == str(message.id) and found[0].actor_id == person.user.id
    assert "👍" in found[2].detail
    assert all(secret not in str(e) for e in found)


def test_shortcuts_and_client_issues_are_recorded(server: ServerProcess, admin: Client, person: Person) -> None:
    start = newest_id(admin)
    shortcuts = shortcuts_pb2_grpc.ShortcutsServiceStub(person.client.channel)
    made = shortcuts.CreateShortcut(
        shortcuts_pb2.CreateShortcutRequest(shortcut=shortcuts_pb2.Shortcut(title="t", url="https://a.example")),
        metadata=person.client.md,
    ).shortcut
    shortcuts.DeleteShortcut(shortcuts_pb2.DeleteShortcutRequest(shortcut_id=made.id), metadata=person.client.md)
    issue = monitoring_pb2.ClientIssue(kind=monitoring_pb2.CLIENT_ISSUE_KIND_FEEDBACK, message="nice")
    monitoring_pb2_grpc.MonitoringServiceStub(person.client.channel).ReportClientIssue(
        monitoring_pb2.ReportClientIssueRequest(issue=issue), metadata=person.client.md
    )
    found = since(admin, start)
    assert actions(found) == ["shortcut.create", "shortcut.delete", "client_issue.report"], found
    assert found[0].resource_id == str(made.id) and all(e.actor_id == person.user.id for e in found)


def test_a_password_change_is_recorded_and_no_entry_holds_a_secret(server: ServerProcess, admin: Client) -> None:
    someone = create_person(admin, server.address)
    start = newest_id(admin)
    new_password = f"new-password-{uuid.uuid4().hex}"
    someone.client.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(old_password=someone.password, new_password=new_password),
        metadata=someone.client.md,
    )
    found = since(admin, start)
    assert "auth.change_password" in actions(found), found
    secrets = (someone.password, new_password, someone.client.access_token, someone.client.refresh_token)
    for entry in entries(admin):  # the whole log
        text = str(entry)
        assert not any(s and s in text for s in secrets), entry
    someone.client.close()


# --- listing --------------------------------------------------------------------------------------------


def test_activity_is_listed_newest_first_page_by_page_and_filtered(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    start = newest_id(admin)
    for i in range(5):
        group(person.client, f"filtered {i}")
    mine = [e for e in since(admin, start) if e.actor_id == person.user.id]
    assert actions(mine) == ["conversation.create_group"] * 5

    pages, token = [], ""
    while True:
        request = activity_pb2.ListActivityRequest(actor_id=person.user.id, page_size=2, page_token=token)
        reply = stub(admin).ListActivity(request, metadata=admin.md)
        pages.append([e.id for e in reply.entries])
        token = reply.next_page_token
        if not token:
            break
    flat = [i for page in pages for i in page]
    assert flat == sorted(flat, reverse=True) and len(flat) == len(set(flat))
    assert [e.id for e in mine] == sorted(i for i in flat if i > start)

    by_action = entries(admin, action="conversation.create_group", actor_id=person.user.id)
    assert {e.id for e in mine} <= {e.id for e in by_action}
    one = mine[2]
    exact = entries(admin, resource_type="conversation", resource_id=one.resource_id)
    assert [e.id for e in exact] == [one.id]
    window = entries(admin, start_time=one.create_time, actor_id=person.user.id)
    assert {e.id for e in mine[2:]} <= {e.id for e in window}
    assert all(e.create_time.ToNanoseconds() >= one.create_time.ToNanoseconds() for e in window)
    before = entries(admin, end_time=one.create_time, actor_id=person.user.id)
    assert all(e.create_time.ToNanoseconds() < one.create_time.ToNanoseconds() for e in before)


def test_listing_checks_its_filters(admin: Client) -> None:
    def refused(**fields) -> set[str]:
        request = activity_pb2.ListActivityRequest(**fields)
        return set(
            violations(
                expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub(admin).ListActivity, request, metadata=admin.md)
            )
        )

    assert refused(resource_id="5") == {"resource_id"}
    assert refused(page_size=-1) == {"page_size"}
    assert refused(actor_id=-1) == {"actor_id"}
    assert refused(action="a" * 41) == {"action"}
    assert refused(start_time=Timestamp(seconds=2_000_000_000), end_time=Timestamp(seconds=1_000_000_000)) == {
        "end_time"
    }
    first = stub(admin).ListActivity(activity_pb2.ListActivityRequest(page_size=1), metadata=admin.md)
    if first.next_page_token:
        assert refused(page_token=first.next_page_token, action="user.create") == {"page_token"}


def test_only_administrators_read_the_log(person: Person) -> None:
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        stub(person.client).ListActivity,
        activity_pb2.ListActivityRequest(),
        metadata=person.client.md,
    )
    expect_error(grpc.StatusCode.UNAUTHENTICATED, stub(person.client).ListActivity, activity_pb2.ListActivityRequest())


# --- the stream -----------------------------------------------------------------------------------------


def test_the_stream_goes_live_then_carries_each_new_entry(
    server: ServerProcess, admin: Client, person: Person, watch
) -> None:
    stream = watch(admin)
    heartbeat = stream.live()
    assert stream.replayed == [] and heartbeat.last_event_id >= newest_id(admin)
    made = group(person.client, "seen live")
    entry = stream.entry()
    assert (entry.action, entry.resource_id, entry.actor_id) == (
        "conversation.create_group",
        str(made.id),
        person.user.id,
    )
    assert entry.id > heartbeat.last_event_id


def test_the_stream_resumes_with_exactly_what_it_missed(
    server: ServerProcess, admin: Client, person: Person, watch
) -> None:
    first = watch(admin)
    resume_at = first.live().last_event_id
    first.close()
    made = [group(person.client, f"missed {i}") for i in range(3)]
    second = watch(admin, resume_at)
    second.live()
    mine = [e for e in second.replayed if e.actor_id == person.user.id]
    assert [e.resource_id for e in mine] == [str(c.id) for c in made]
    assert [e.id for e in second.replayed] == sorted(e.id for e in second.replayed)
    assert all(e.id > resume_at for e in second.replayed)


def test_the_stream_refuses_an_unknown_id_and_non_administrators(
    server: ServerProcess, admin: Client, person: Person, watch
) -> None:
    error = watch(admin, NOWHERE).error()
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error.details()
    error = watch(person.client).error()
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()


def test_chat_streams_never_carry_activity(server: ServerProcess, admin: Client, person: Person, open_stream) -> None:
    made = group(person.client, "no activity here", [admin.user.id])
    chat = open_stream(person.client)
    chat.live()
    name = unique_name()
    created = create_person(admin, server.address, display_name=name)  # activity, not chat
    created.client.close()
    marker = send(admin, made.id, "marker").message
    event = chat.event()
    assert event.HasField("message_created") and event.message_created.id == marker.id, event
