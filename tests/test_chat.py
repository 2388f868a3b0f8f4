"""Conversations and messages, as their members (and everyone else) see them."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from workspace.v1 import chat_pb2, users_pb2

from .api import (
    Client,
    Person,
    conversation,
    create_person,
    direct,
    disable,
    expect_error,
    group,
    list_conversations,
    list_messages,
    mark_read,
    send,
    unique_name,
    violations,
)
from .servers import ADMIN_PASSWORD, ServerProcess

NOWHERE = 2**62  # an id nothing has


def people(admin: Client, server: ServerProcess, count: int) -> list[Person]:
    return [create_person(admin, server.address) for _ in range(count)]


def invalid(call, *args, **kwargs) -> dict[str, str]:
    """The field violations of a call that must fail with INVALID_ARGUMENT."""
    return violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, *args, **kwargs))


def all_conversations(client: Client, page_size: int = 0) -> list[chat_pb2.Conversation]:
    seen, token = [], ""
    while True:
        page = list_conversations(client, page_size=page_size, page_token=token)
        seen += page.conversations
        token = page.next_page_token
        if not token:
            return seen


def ids(items) -> list[int]:
    return [item.id for item in items]


# --- direct conversations ------------------------------------------------------------------------


def test_a_direct_conversation_is_created_once_and_found_again_from_either_side(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    first = direct(ann.client, bob.user.id)
    assert first.created
    made = first.conversation
    assert made.id > 0 and made.kind == chat_pb2.CONVERSATION_KIND_DIRECT and made.name == ""
    assert made.creator_id == ann.user.id
    assert sorted(m.user_id for m in made.members) == sorted([ann.user.id, bob.user.id])
    assert all(m.role == chat_pb2.MEMBER_ROLE_MEMBER for m in made.members)
    assert all(m.join_time.seconds > 0 for m in made.members)
    assert made.create_time.seconds > 0 and made.last_activity_time == made.create_time
    assert not made.HasField("last_message") and made.unread_count == 0 and made.last_read_message_id == 0

    again = direct(ann.client, bob.user.id)
    assert not again.created and again.conversation.id == made.id
    other_side = direct(bob.client, ann.user.id)
    assert not other_side.created and other_side.conversation.id == made.id
    assert other_side.conversation.creator_id == ann.user.id


@pytest.mark.parametrize("user_id", [0, -1])
def test_a_direct_conversation_needs_a_positive_user_id(person: Person, user_id: int) -> None:
    assert set(invalid(direct, person.client, user_id)) == {"user_id"}


def test_nobody_has_a_direct_conversation_with_themselves(person: Person) -> None:
    assert set(invalid(direct, person.client, person.user.id)) == {"user_id"}


def test_a_direct_conversation_needs_an_existing_enabled_account(server: ServerProcess, admin: Client) -> None:
    ann, disabled, deleted = people(admin, server, 3)
    disable(admin, disabled.user.id)
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=deleted.user.id), metadata=admin.md, timeout=10)
    for user_id in (NOWHERE, disabled.user.id, deleted.user.id):
        expect_error(grpc.StatusCode.NOT_FOUND, direct, ann.client, user_id)
    assert list_conversations(ann.client).conversations == []


def test_a_direct_conversation_with_a_since_disabled_account_is_not_found(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    direct(ann.client, bob.user.id)
    disable(admin, bob.user.id)
    expect_error(grpc.StatusCode.NOT_FOUND, direct, ann.client, bob.user.id)


def test_a_new_account_never_inherits_a_deleted_accounts_direct_conversation(
    server: ServerProcess, admin: Client
) -> None:
    """Even where the database hands a deleted account's id to the next account (SQLite rowids)."""
    bob, ann = people(admin, server, 2)  # ann is the newest account
    old = direct(bob.client, ann.user.id).conversation
    send(ann.client, old.id, "from the old ann")
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=ann.user.id), metadata=admin.md, timeout=10)
    zed = create_person(admin, server.address)
    reply = direct(bob.client, zed.user.id)
    assert reply.created and reply.conversation.id != old.id
    assert sorted(m.user_id for m in reply.conversation.members) == sorted([bob.user.id, zed.user.id])
    theirs = direct(zed.client, bob.user.id)
    assert not theirs.created and theirs.conversation.id == reply.conversation.id
    expect_error(grpc.StatusCode.NOT_FOUND, list_messages, zed.client, old.id)
    assert ids(list_conversations(zed.client).conversations) == [reply.conversation.id]


def test_simultaneous_requests_from_both_sides_make_one_direct_conversation(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    calls = [(ann.client, bob.user.id), (bob.client, ann.user.id)] * 5
    with ThreadPoolExecutor(len(calls)) as pool:
        replies = list(pool.map(lambda call: direct(*call), calls))
    assert len({r.conversation.id for r in replies}) == 1
    assert sum(r.created for r in replies) == 1
    assert len(list_conversations(ann.client).conversations) == 1


# --- groups --------------------------------------------------------------------------------------


def test_a_group_lists_its_creator_first_as_admin_and_trims_its_name(server: ServerProcess, admin: Client) -> None:
    ann, bob, cid = people(admin, server, 3)
    made = group(ann.client, "  Launch team \n", [bob.user.id, cid.user.id])
    assert made.id > 0 and made.kind == chat_pb2.CONVERSATION_KIND_GROUP and made.name == "Launch team"
    assert made.creator_id == ann.user.id
    assert made.members[0].user_id == ann.user.id and made.members[0].role == chat_pb2.MEMBER_ROLE_ADMIN
    assert {m.user_id for m in made.members[1:]} == {bob.user.id, cid.user.id} and len(made.members) == 3
    assert all(m.role == chat_pb2.MEMBER_ROLE_MEMBER for m in made.members[1:])
    assert not made.HasField("last_message") and made.last_activity_time == made.create_time
    # The other members see it too, the same way.
    seen = conversation(bob.client, made.id)
    assert seen.name == "Launch team" and [m.user_id for m in seen.members] == [m.user_id for m in made.members]


def test_a_group_may_have_only_its_creator(person: Person) -> None:
    made = group(person.client, "notes to self")
    assert [(m.user_id, m.role) for m in made.members] == [(person.user.id, chat_pb2.MEMBER_ROLE_ADMIN)]
    assert ids(list_conversations(person.client).conversations) == [made.id]


def test_duplicate_members_and_the_creator_are_listed_once(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "twice", [bob.user.id, ann.user.id, bob.user.id, bob.user.id])
    assert [m.user_id for m in made.members] == [ann.user.id, bob.user.id]
    assert made.members[0].role == chat_pb2.MEMBER_ROLE_ADMIN


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * 101, "  " + "é" * 101 + "  "])
def test_a_group_name_must_have_1_to_100_characters(person: Person, name: str) -> None:
    assert set(invalid(group, person.client, name)) == {"name"}


@pytest.mark.parametrize("name", ["x", "x" * 100, "é" * 100, "  " + "y" * 100 + "  "])
def test_a_group_name_of_up_to_100_characters_is_fine(person: Person, name: str) -> None:
    assert group(person.client, name).name == name.strip()


def test_group_members_must_be_existing_enabled_accounts_reported_by_index(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob, disabled, deleted = people(admin, server, 4)
    disable(admin, disabled.user.id)
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=deleted.user.id), metadata=admin.md, timeout=10)
    assert set(invalid(group, ann.client, "g", [bob.user.id, 0])) == {"member_ids[1]"}
    assert set(invalid(group, ann.client, "g", [-3, bob.user.id])) == {"member_ids[0]"}
    requested = [bob.user.id, NOWHERE, bob.user.id, disabled.user.id, deleted.user.id]
    assert set(invalid(group, ann.client, "g", requested)) == {"member_ids[1]", "member_ids[3]", "member_ids[4]"}
    assert list_conversations(ann.client).conversations == []  # nothing was created
    assert list_conversations(bob.client).conversations == []


def test_a_group_has_at_most_499_other_members(server: ServerProcess, admin: Client, person: Person) -> None:
    def account(_: int) -> int:
        request = users_pb2.CreateUserRequest(user=users_pb2.User(username=unique_name("crowd")), password="pw-crowd-1")
        return admin.users.CreateUser(request, metadata=admin.md, timeout=30).user.id

    with ThreadPoolExecutor(8) as pool:
        crowd = list(pool.map(account, range(500)))
    # 499 others, plus duplicates and the creator's own id: 500 members.
    made = group(person.client, "everyone", [*crowd[:499], person.user.id, crowd[0], crowd[498]])
    assert len(made.members) == 500 and made.members[0].user_id == person.user.id
    assert {m.user_id for m in made.members[1:]} == set(crowd[:499])
    assert set(invalid(group, person.client, "too many", crowd)) == {"member_ids"}


# --- reading one conversation --------------------------------------------------------------------


@pytest.mark.parametrize("conversation_id", [0, -1])
def test_get_conversation_needs_a_positive_id(person: Person, conversation_id: int) -> None:
    assert set(invalid(conversation, person.client, conversation_id)) == {"conversation_id"}


def test_other_peoples_conversations_are_not_found(server: ServerProcess, admin: Client) -> None:
    ann, bob, eve = people(admin, server, 3)
    private = direct(ann.client, bob.user.id).conversation
    team = group(ann.client, "team", [bob.user.id])
    message = send(ann.client, team.id, "secret").message
    for conversation_id in (private.id, team.id, NOWHERE):
        expect_error(grpc.StatusCode.NOT_FOUND, conversation, eve.client, conversation_id)
        expect_error(grpc.StatusCode.NOT_FOUND, list_messages, eve.client, conversation_id)
        expect_error(grpc.StatusCode.NOT_FOUND, mark_read, eve.client, conversation_id, message.id)
    assert list_conversations(eve.client).conversations == []


def test_get_conversation_shows_the_last_message_and_the_callers_unread_state(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    assert not conversation(bob.client, made.id).HasField("last_message")
    first = send(ann.client, made.id, "one").message
    second = send(ann.client, made.id, "two").message
    seen = conversation(bob.client, made.id)
    assert seen.last_message == second and seen.last_activity_time == second.create_time
    assert seen.unread_count == 2 and seen.last_read_message_id == 0
    mark_read(bob.client, made.id, first.id)
    seen = conversation(bob.client, made.id)
    assert seen.unread_count == 1 and seen.last_read_message_id == first.id
    assert conversation(ann.client, made.id).unread_count == 0  # one's own messages are never unread


# --- listing conversations -----------------------------------------------------------------------


def test_conversations_are_listed_by_most_recent_activity(server: ServerProcess, admin: Client) -> None:
    ann, bob, cid = people(admin, server, 3)
    g1 = group(ann.client, "first")
    d = direct(ann.client, bob.user.id).conversation
    g2 = group(ann.client, "second", [cid.user.id])
    g3 = group(ann.client, "third")
    assert ids(list_conversations(ann.client).conversations) == [g3.id, g2.id, d.id, g1.id]
    send(ann.client, g1.id, "bump")
    assert ids(list_conversations(ann.client).conversations) == [g1.id, g3.id, g2.id, d.id]
    last = send(bob.client, d.id, "hello").message
    listed = list_conversations(ann.client).conversations
    assert ids(listed) == [d.id, g1.id, g3.id, g2.id]
    assert listed[0].last_message == last and listed[0].last_activity_time == last.create_time
    assert listed[0].unread_count == 1
    for c in listed:
        expected = c.last_message.create_time if c.HasField("last_message") else c.create_time
        assert c.last_activity_time == expected
    keys = [(c.last_activity_time.ToNanoseconds(), c.id) for c in listed]
    assert keys == sorted(keys, reverse=True)
    # Everyone sees only their own conversations.
    assert ids(list_conversations(bob.client).conversations) == [d.id]
    assert ids(list_conversations(cid.client).conversations) == [g2.id]


def test_paging_through_conversations_returns_each_once(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = [group(ann.client, f"g{i}", [bob.user.id]).id for i in range(7)]
    send(bob.client, made[2], "bump")
    everything = ids(list_conversations(ann.client, page_size=200).conversations)
    assert sorted(everything) == sorted(made) and everything[0] == made[2]
    pages, token = [], ""
    while True:
        page = list_conversations(ann.client, page_size=2, page_token=token)
        assert len(page.conversations) <= 2
        pages.append(ids(page.conversations))
        token = page.next_page_token
        if not token:
            break
    assert [c for page in pages for c in page] == everything
    assert len(pages) == 4


def test_conversation_pages_hold_50_by_default(person: Person) -> None:
    made = [group(person.client, f"g{i}").id for i in range(51)]
    first = list_conversations(person.client)
    assert len(first.conversations) == 50 and first.next_page_token
    rest = list_conversations(person.client, page_token=first.next_page_token)
    assert len(rest.conversations) == 1 and not rest.next_page_token
    assert sorted(ids(first.conversations) + ids(rest.conversations)) == sorted(made)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"page_token": "garbage!"}, "page_token"),
        ({"page_token": "bm90LWEtdG9rZW4"}, "page_token"),
    ],
)
def test_listing_rejects_bad_paging(person: Person, fields: dict, field: str) -> None:
    made = group(person.client, "paging")
    assert set(invalid(list_conversations, person.client, **fields)) == {field}
    assert set(invalid(list_messages, person.client, made.id, **fields)) == {field}


def test_total_unread_count_adds_up_every_conversation(server: ServerProcess, admin: Client) -> None:
    ann, bob, cid = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    team = group(ann.client, "team", [bob.user.id, cid.user.id])
    send(bob.client, pair.id, "1")
    send(bob.client, pair.id, "2")
    send(bob.client, team.id, "3")
    send(ann.client, team.id, "mine")  # never unread for ann
    last = send(cid.client, team.id, "4").message
    send(cid.client, team.id, "5")
    listed = list_conversations(ann.client, page_size=1)  # the total covers every page, not just this one
    assert len(listed.conversations) == 1 and listed.total_unread_count == 5
    counts = {c.id: c.unread_count for c in all_conversations(ann.client)}
    assert counts == {pair.id: 2, team.id: 3}
    assert list_conversations(bob.client).total_unread_count == 3  # ann's and cid's messages in the team
    assert list_conversations(cid.client).total_unread_count == 2  # bob's and ann's before cid wrote
    reply = mark_read(ann.client, team.id, last.id)
    assert (reply.last_read_message_id, reply.unread_count, reply.total_unread_count) == (last.id, 1, 3)
    assert list_conversations(ann.client).total_unread_count == 3


# --- sending -------------------------------------------------------------------------------------


def test_a_message_is_stored_trimmed_with_its_sender_and_request_id(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    request_id = "Retry.Me_01-" + uuid.uuid4().hex
    reply = send(ann.client, made.id, " \t\u00a0Hello,\n  world!\u2003\n", request_id=request_id)
    assert reply.created
    message = reply.message
    assert message.id > 0 and message.conversation_id == made.id and message.sender_id == ann.user.id
    assert message.text == "Hello,\n  world!" and message.request_id == request_id
    assert message.reply_to_message_id == 0 and message.create_time.seconds > 0
    assert list(list_messages(bob.client, made.id).messages) == [message]
    later = send(bob.client, made.id, "hi").message
    assert later.id > message.id and later.sender_id == bob.user.id


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000\u00a0", "x" * 2001, "é" * 2001, " " + "y" * 2001 + " "])
def test_message_text_must_have_1_to_2000_characters(person: Person, text: str) -> None:
    made = group(person.client, "texts")
    assert set(invalid(send, person.client, made.id, text)) == {"text"}
    assert list_messages(person.client, made.id).messages == []


@pytest.mark.parametrize("text", ["x" * 2000, "é" * 2000, "  " + "z" * 2000 + "\n", "🙂" * 2000])
def test_a_message_of_exactly_2000_characters_is_fine(person: Person, text: str) -> None:
    made = group(person.client, "long")
    assert send(person.client, made.id, text).message.text == text.strip()


def test_the_message_length_limit_is_a_setting(start_server) -> None:
    server = start_server(WORKSPACE_CHAT_MAX_MESSAGE_CHARS="10")
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    person = create_person(admin, server.address)
    made = group(person.client, "short")
    assert send(person.client, made.id, "é" * 10).message.text == "é" * 10
    assert set(invalid(send, person.client, made.id, "x" * 11)) == {"text"}


@pytest.mark.parametrize(
    "request_id",
    ["", "x" * 65, "has space", "slash/no", "é", "new\nline", "colon:no", "a+b", "trailing\n", "Z" * 64 + "\n"],
)
def test_a_request_id_must_be_1_to_64_safe_characters(person: Person, request_id: str) -> None:
    made = group(person.client, "ids")
    assert set(invalid(send, person.client, made.id, "hello", request_id=request_id)) == {"request_id"}


@pytest.mark.parametrize("request_id", ["a", "Z" * 64, "A-z_0.9", "550e8400-e29b-41d4-a716-446655440000"])
def test_request_ids_of_letters_digits_dots_underscores_and_dashes_are_fine(person: Person, request_id: str) -> None:
    made = group(person.client, "ids")
    assert send(person.client, made.id, "hello", request_id=request_id).message.request_id == request_id


def test_a_reply_answers_a_message_of_the_same_conversation(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    here = direct(ann.client, bob.user.id).conversation
    there = group(ann.client, "elsewhere", [bob.user.id])
    hidden = group(bob.client, "bob alone")
    question = send(bob.client, here.id, "lunch?").message
    elsewhere = send(bob.client, there.id, "other").message
    invisible = send(bob.client, hidden.id, "private").message
    answer = send(ann.client, here.id, "yes", reply_to_message_id=question.id).message
    assert answer.reply_to_message_id == question.id
    for wrong in (elsewhere.id, invisible.id, NOWHERE, -1):
        assert set(invalid(send, ann.client, here.id, "no", reply_to_message_id=wrong)) == {"reply_to_message_id"}
    assert ids(list_messages(bob.client, here.id).messages) == [answer.id, question.id]


@pytest.mark.parametrize("conversation_id", [0, -7])
def test_sending_needs_a_positive_conversation_id(person: Person, conversation_id: int) -> None:
    assert set(invalid(send, person.client, conversation_id, "hello")) == {"conversation_id"}


def test_only_members_may_send_and_nothing_is_created_otherwise(server: ServerProcess, admin: Client) -> None:
    ann, bob, eve = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    team = group(ann.client, "team", [bob.user.id])
    for made in (pair, team):
        expect_error(grpc.StatusCode.NOT_FOUND, send, eve.client, made.id, "let me in")
        assert list_messages(ann.client, made.id).messages == []
        assert not conversation(bob.client, made.id).HasField("last_message")
    expect_error(grpc.StatusCode.NOT_FOUND, send, eve.client, NOWHERE, "anyone?")


def test_every_bad_field_of_a_message_is_reported_together(person: Person) -> None:
    made = group(person.client, "many")
    assert set(invalid(send, person.client, made.id, "  ", request_id="no spaces")) == {"text", "request_id"}


def test_a_bad_conversation_id_is_reported_with_the_other_bad_fields(person: Person) -> None:
    assert set(invalid(send, person.client, 0, "", request_id="")) == {"conversation_id", "text", "request_id"}


def test_a_retry_with_the_same_request_id_returns_the_first_message(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    first = send(ann.client, made.id, "only once", request_id="retry-1")
    assert first.created
    retry = send(ann.client, made.id, "only once", request_id="retry-1")
    assert not retry.created and retry.message == first.message
    assert ids(list_messages(bob.client, made.id).messages) == [first.message.id]
    assert conversation(bob.client, made.id).unread_count == 1


def test_request_ids_belong_to_their_sender(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    mine = send(ann.client, made.id, "from ann", request_id="same-id")
    theirs = send(bob.client, made.id, "from bob", request_id="same-id")
    assert mine.created and theirs.created and theirs.message.id != mine.message.id
    assert theirs.message.sender_id == bob.user.id and theirs.message.text == "from bob"
    assert len(list_messages(ann.client, made.id).messages) == 2


def test_simultaneous_retries_create_one_message(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: send(ann.client, made.id, "racing", request_id="race-1"), range(8)))
    assert len({r.message.id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    assert len(list_messages(bob.client, made.id).messages) == 1


def test_an_oversized_message_is_refused(person: Person) -> None:
    made = group(person.client, "big")
    error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, send, person.client, made.id, "x" * (5 * 1024 * 1024))
    assert "larger than max" in error.details()
    assert list_messages(person.client, made.id).messages == []


# --- listing messages ----------------------------------------------------------------------------


def test_messages_page_backwards_newest_first(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    sent = [send((ann, bob)[i % 2].client, made.id, f"message {i}").message.id for i in range(10)]
    assert sent == sorted(sent)
    pages, token = [], ""
    while True:
        page = list_messages(bob.client, made.id, page_size=3, page_token=token)
        pages.append(ids(page.messages))
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [m for page in pages for m in page] == sent[::-1]
    assert ids(list_messages(ann.client, made.id, page_size=200).messages) == sent[::-1]


def test_message_pages_hold_50_by_default(person: Person) -> None:
    made = group(person.client, "chatty")
    for i in range(51):
        send(person.client, made.id, f"m{i}")
    first = list_messages(person.client, made.id)
    assert len(first.messages) == 50 and first.next_page_token
    rest = list_messages(person.client, made.id, page_token=first.next_page_token)
    assert len(rest.messages) == 1 and not rest.next_page_token
    assert rest.messages[0].text == "m0"


def test_a_message_page_token_only_continues_its_own_conversation(person: Person) -> None:
    one, two = group(person.client, "one"), group(person.client, "two")
    for i in range(4):
        send(person.client, one.id, f"one {i}")
        send(person.client, two.id, f"two {i}")
    token = list_messages(person.client, one.id, page_size=3).next_page_token
    assert token
    assert set(invalid(list_messages, person.client, two.id, page_size=3, page_token=token)) == {"page_token"}
    assert len(list_messages(person.client, one.id, page_size=3, page_token=token).messages) == 1


@pytest.mark.parametrize("conversation_id", [0, -1])
def test_listing_messages_needs_a_positive_conversation_id(person: Person, conversation_id: int) -> None:
    assert set(invalid(list_messages, person.client, conversation_id)) == {"conversation_id"}


# --- read markers --------------------------------------------------------------------------------


def test_the_read_marker_only_moves_forward(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    m1, m2, m3 = (send(bob.client, made.id, f"m{i}").message for i in range(3))
    assert conversation(ann.client, made.id).unread_count == 3
    reply = mark_read(ann.client, made.id, m2.id)
    assert (reply.last_read_message_id, reply.unread_count, reply.total_unread_count) == (m2.id, 1, 1)
    reply = mark_read(ann.client, made.id, m3.id)
    assert (reply.last_read_message_id, reply.unread_count, reply.total_unread_count) == (m3.id, 0, 0)
    reply = mark_read(ann.client, made.id, m1.id)  # older: changes nothing
    assert (reply.last_read_message_id, reply.unread_count, reply.total_unread_count) == (m3.id, 0, 0)
    assert conversation(ann.client, made.id).last_read_message_id == m3.id
    # A message of one's own is never unread, and reading one's own message is allowed.
    mine = send(ann.client, made.id, "thanks").message
    assert conversation(ann.client, made.id).unread_count == 0
    assert mark_read(ann.client, made.id, mine.id).last_read_message_id == mine.id
    # Bob's count is his own: ann's reply is unread for him, his own messages never are.
    assert conversation(bob.client, made.id).unread_count == 1
    assert list_conversations(bob.client).total_unread_count == 1


def test_unread_counts_are_per_person(server: ServerProcess, admin: Client) -> None:
    ann, bob, cid = people(admin, server, 3)
    team = group(ann.client, "team", [bob.user.id, cid.user.id])
    send(bob.client, team.id, "one")
    last = send(bob.client, team.id, "two").message
    mark_read(ann.client, team.id, last.id)
    assert conversation(ann.client, team.id).unread_count == 0
    assert conversation(cid.client, team.id).unread_count == 2
    assert conversation(bob.client, team.id).unread_count == 0


def test_read_markers_follow_the_person_to_every_device(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    phone = Client(server.address)
    phone.login(ann.user.username, ann.password)
    made = direct(bob.client, ann.user.id).conversation
    send(bob.client, made.id, "one")
    last = send(bob.client, made.id, "two").message
    assert conversation(phone, made.id).unread_count == 2
    assert mark_read(ann.client, made.id, last.id).unread_count == 0
    on_phone = conversation(phone, made.id)
    assert on_phone.unread_count == 0 and on_phone.last_read_message_id == last.id
    listed = list_conversations(phone)
    assert listed.total_unread_count == 0 and listed.conversations[0].last_read_message_id == last.id
    newer = send(bob.client, made.id, "three").message
    assert mark_read(phone, made.id, newer.id).last_read_message_id == newer.id
    assert conversation(ann.client, made.id).last_read_message_id == newer.id
    phone.close()


@pytest.mark.parametrize("message_id", [0, -1])
def test_mark_read_needs_a_positive_message_id(person: Person, message_id: int) -> None:
    made = group(person.client, "marks")
    send(person.client, made.id, "hello")
    assert set(invalid(mark_read, person.client, made.id, message_id)) == {"message_id"}


def test_mark_read_needs_a_message_of_the_same_conversation(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    here = direct(ann.client, bob.user.id).conversation
    there = group(ann.client, "there", [bob.user.id])
    hidden = group(bob.client, "bob alone")
    send(bob.client, here.id, "here")
    for wrong in (
        send(bob.client, there.id, "there").message.id,
        send(bob.client, hidden.id, "hidden").message.id,
        NOWHERE,
    ):
        assert set(invalid(mark_read, ann.client, here.id, wrong)) == {"message_id"}
    assert conversation(ann.client, here.id).last_read_message_id == 0


@pytest.mark.parametrize("conversation_id", [0, -1])
def test_mark_read_needs_a_positive_conversation_id(person: Person, conversation_id: int) -> None:
    assert set(invalid(mark_read, person.client, conversation_id, 1)) == {"conversation_id"}


# --- accounts that go away -----------------------------------------------------------------------


def test_a_deleted_accounts_messages_stay_without_a_sender(server: ServerProcess, admin: Client) -> None:
    ann, bob, cid = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    team = group(bob.client, "team", [ann.user.id, cid.user.id])
    send(bob.client, pair.id, "hi ann")
    send(ann.client, pair.id, "hi bob")
    last = send(ann.client, pair.id, "bye").message
    send(ann.client, team.id, "bye all")
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=ann.user.id), metadata=admin.md, timeout=10)

    messages = list_messages(bob.client, pair.id).messages
    assert [(m.text, m.sender_id) for m in messages] == [("bye", 0), ("hi bob", 0), ("hi ann", bob.user.id)]
    assert messages[0].id == last.id
    seen = conversation(bob.client, pair.id)
    assert [m.user_id for m in seen.members] == [bob.user.id]
    assert seen.last_message.id == last.id and seen.last_message.sender_id == 0
    assert [m.user_id for m in conversation(cid.client, team.id).members] == [bob.user.id, cid.user.id]
    assert [(m.text, m.sender_id) for m in list_messages(cid.client, team.id).messages] == [("bye all", 0)]
    assert {c.id for c in list_conversations(bob.client).conversations} == {pair.id, team.id}
    # They are still messages from someone else: unread until read.
    assert seen.unread_count == 2 and conversation(cid.client, team.id).unread_count == 1
