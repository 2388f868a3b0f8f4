"""Changing what was said and who is in a group: edits, deletions, reactions, search, jumping to a message,
adding and removing members, and what the streams of the people concerned see of it.

Streams are read as in ``test_streams``: a background thread per stream, every wait bounded, every stream
cancelled at the end. "Nothing arrived" is shown with a marker message: the next event is the marker.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from workspace.v1 import chat_pb2, users_pb2

from .api import (
    Client,
    Person,
    add_members,
    add_reaction,
    all_messages,
    conversation,
    delete_message,
    direct,
    disable,
    edit,
    expect_error,
    group,
    leave,
    list_conversations,
    list_messages,
    mark_read,
    people,
    remove_member,
    remove_reaction,
    search,
    send,
    unique_name,
    violations,
)
from .servers import ServerProcess
from .streams import Stream

NOWHERE = 2**62  # an id nothing has
ADMIN = chat_pb2.MEMBER_ROLE_ADMIN
MEMBER = chat_pb2.MEMBER_ROLE_MEMBER


def invalid(call, *args, **kwargs) -> dict[str, str]:
    """The field violations of a call that must fail with INVALID_ARGUMENT."""
    return violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, *args, **kwargs))


def ids(items) -> list[int]:
    return [item.id for item in items]


def reactions(message: chat_pb2.Message) -> list[tuple[str, list[int]]]:
    return [(r.emoji, list(r.user_ids)) for r in message.reactions]


def members(made: chat_pb2.Conversation) -> list[tuple[int, int]]:
    return [(m.user_id, m.role) for m in made.members]


def concerns(event: chat_pb2.Event, conversation_id: int) -> bool:
    """Whether a stored event is about the conversation."""
    kind = event.WhichOneof("payload")
    payload = getattr(event, kind)
    if isinstance(payload, chat_pb2.Message):
        return payload.conversation_id == conversation_id
    if isinstance(payload, chat_pb2.MembersChanged):
        return payload.conversation.id == conversation_id
    if isinstance(payload, chat_pb2.Conversation):
        return payload.id == conversation_id
    if isinstance(payload, chat_pb2.ReadMarker):
        return payload.conversation_id == conversation_id
    return False


def live(stream: Stream) -> Stream:
    """The stream, once its replay is over (there is none: it starts live)."""
    stream.live()
    return stream


def found(client: Client, query: str, page_size: int = 200) -> list[chat_pb2.Message]:
    """Every match of a search, page after page."""
    seen, token = [], ""
    while True:
        page = search(client, query, page_size=page_size, page_token=token)
        seen += page.messages
        token = page.next_page_token
        if not token:
            return seen


def word() -> str:
    """A word no other message contains."""
    return f"w{uuid.uuid4().hex[:12]}"


# --- editing -------------------------------------------------------------------------------------


def test_an_edit_changes_the_trimmed_text_and_keeps_everything_else(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob, carol = people(admin, server, 3)
    made = group(ann.client, "edits", [bob.user.id, carol.user.id])
    question = send(bob.client, made.id, "lunch?").message
    original = send(ann.client, made.id, "yes, at noon", request_id="edit-me-1", reply_to_message_id=question.id)
    original = original.message
    later = send(carol.client, made.id, "ok").message
    streams = [live(open_stream(p.client)) for p in (ann, bob, carol)]

    edited = edit(ann.client, original.id, "  \tyes, at one\n ")
    assert edited.text == "yes, at one" and edited.HasField("edit_time")
    assert not edited.HasField("delete_time")
    assert edited.edit_time.ToNanoseconds() >= original.create_time.ToNanoseconds()
    for name in ("id", "conversation_id", "sender_id", "create_time", "request_id", "reply_to_message_id"):
        assert getattr(edited, name) == getattr(original, name), name
    assert all_messages(bob.client, made.id) == [later, edited, question]
    for stream in streams:
        assert stream.event().message_edited == edited

    again = edit(ann.client, original.id, "yes, at two")
    assert again.text == "yes, at two" and again.id == original.id and again.create_time == original.create_time
    assert again.edit_time.ToNanoseconds() >= edited.edit_time.ToNanoseconds()
    assert all_messages(carol.client, made.id)[1] == again
    assert streams[1].event().message_edited == again


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000\u00a0", "x" * 2001, "é" * 2001, " " + "y" * 2001 + " "])
def test_an_edit_follows_the_rules_of_a_new_message(person: Person, text: str) -> None:
    made = group(person.client, "texts")
    message = send(person.client, made.id, "the original").message
    assert set(invalid(edit, person.client, message.id, text)) == {"text"}
    assert all_messages(person.client, made.id) == [message]


@pytest.mark.parametrize("text", ["x" * 2000, "  " + "é" * 2000 + "\n", "🙂" * 2000])
def test_an_edit_to_exactly_2000_characters_is_fine(person: Person, text: str) -> None:
    made = group(person.client, "long edits")
    message = send(person.client, made.id, "short").message
    assert edit(person.client, message.id, text).text == text.strip()


@pytest.mark.parametrize("message_id", [0, -1])
def test_an_edit_needs_a_positive_message_id_reported_with_a_bad_text(person: Person, message_id: int) -> None:
    assert set(invalid(edit, person.client, message_id, "fine")) == {"message_id"}
    assert set(invalid(edit, person.client, message_id, "  ")) == {"message_id", "text"}


def test_only_the_author_may_edit_a_message_they_can_see(server: ServerProcess, admin: Client) -> None:
    ann, bob, eve = people(admin, server, 3)
    made = group(ann.client, "mine", [bob.user.id, admin.user.id])
    hers = send(ann.client, made.id, "ann's words").message
    his = send(bob.client, made.id, "bob's words").message
    eves = send(eve.client, group(eve.client, "eve alone").id, "eve's words").message

    expect_error(grpc.StatusCode.NOT_FOUND, edit, eve.client, hers.id, "let me in")
    expect_error(grpc.StatusCode.NOT_FOUND, edit, ann.client, eves.id, "not mine to see")
    expect_error(grpc.StatusCode.NOT_FOUND, edit, ann.client, NOWHERE, "nothing there")
    expect_error(grpc.StatusCode.PERMISSION_DENIED, edit, bob.client, hers.id, "bob was here")
    expect_error(grpc.StatusCode.PERMISSION_DENIED, edit, ann.client, his.id, "the group's admin")
    expect_error(grpc.StatusCode.PERMISSION_DENIED, edit, admin, his.id, "the workspace admin")
    assert all_messages(bob.client, made.id) == [his, hers]


def test_a_deleted_message_cannot_be_edited(person: Person) -> None:
    made = group(person.client, "gone")
    message = send(person.client, made.id, "regrettable").message
    tombstone = delete_message(person.client, message.id)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, edit, person.client, message.id, "better words")
    assert all_messages(person.client, made.id) == [tombstone]


# --- deleting ------------------------------------------------------------------------------------


def test_a_deleted_message_leaves_a_tombstone_in_place_once(server: ServerProcess, admin: Client, open_stream) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "tombstones", [bob.user.id])
    first = send(ann.client, made.id, "first").message
    doomed = send(bob.client, made.id, "doomed").message
    add_reaction(ann.client, doomed.id, "👍")
    edit(bob.client, doomed.id, "doomed, edited")
    reply = send(ann.client, made.id, "a reply", reply_to_message_id=doomed.id).message
    streams = [live(open_stream(p.client)) for p in (ann, bob)]

    tombstone = delete_message(bob.client, doomed.id)
    assert tombstone.text == "" and tombstone.HasField("delete_time") and list(tombstone.reactions) == []
    for name in ("id", "conversation_id", "sender_id", "create_time"):
        assert getattr(tombstone, name) == getattr(doomed, name), name
    assert all_messages(ann.client, made.id) == [reply, tombstone, first]
    assert reply.reply_to_message_id == doomed.id
    for stream in streams:
        assert stream.event().message_deleted == tombstone

    assert delete_message(bob.client, doomed.id) == tombstone  # again: the same, and nothing new to tell
    assert all_messages(bob.client, made.id) == [reply, tombstone, first]
    marker = send(ann.client, made.id, "marker").message
    for stream in streams:
        assert stream.event().message_created == marker


def test_group_admins_and_member_workspace_admins_may_delete_anyones_message(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob, carol, eve = people(admin, server, 4)
    made = group(ann.client, "moderated", [bob.user.id, carol.user.id, admin.user.id])
    by_bob, by_carol, by_ann = (send(p.client, made.id, f"from {i}").message for i, p in enumerate((bob, carol, ann)))

    expect_error(grpc.StatusCode.PERMISSION_DENIED, delete_message, bob.client, by_carol.id)
    expect_error(grpc.StatusCode.PERMISSION_DENIED, delete_message, carol.client, by_ann.id)
    expect_error(grpc.StatusCode.NOT_FOUND, delete_message, eve.client, by_bob.id)
    assert not any(m.HasField("delete_time") for m in all_messages(ann.client, made.id))

    assert delete_message(ann.client, by_bob.id).HasField("delete_time")  # the creator is the group's admin
    assert delete_message(admin, by_carol.id).HasField("delete_time")  # a workspace admin who is a member
    assert delete_message(ann.client, by_ann.id).HasField("delete_time")  # one's own
    assert all(m.HasField("delete_time") and m.text == "" for m in all_messages(bob.client, made.id))

    elsewhere = group(bob.client, "without the admin", [carol.user.id])
    kept = send(carol.client, elsewhere.id, "not the admin's business").message
    expect_error(grpc.StatusCode.NOT_FOUND, delete_message, admin, kept.id)  # not a member: not found
    assert all_messages(bob.client, elsewhere.id) == [kept]


def test_in_a_direct_conversation_only_the_author_or_a_workspace_admin_in_it_may_delete(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    pair = direct(ann.client, bob.user.id).conversation
    hers = send(ann.client, pair.id, "ann's").message
    expect_error(grpc.StatusCode.PERMISSION_DENIED, delete_message, bob.client, hers.id)
    expect_error(grpc.StatusCode.NOT_FOUND, delete_message, admin, hers.id)
    assert delete_message(ann.client, hers.id).HasField("delete_time")

    with_admin = direct(admin, bob.user.id).conversation
    his = send(bob.client, with_admin.id, "bob's").message
    assert delete_message(admin, his.id).HasField("delete_time")
    mine = send(admin, with_admin.id, "the admin's").message
    expect_error(grpc.StatusCode.PERMISSION_DENIED, delete_message, bob.client, mine.id)


@pytest.mark.parametrize("message_id", [0, -1])
def test_deleting_needs_a_positive_message_id(person: Person, message_id: int) -> None:
    assert set(invalid(delete_message, person.client, message_id)) == {"message_id"}


def test_deleting_an_unknown_message_is_not_found(person: Person) -> None:
    expect_error(grpc.StatusCode.NOT_FOUND, delete_message, person.client, NOWHERE)


# --- reactions -----------------------------------------------------------------------------------


def test_reactions_group_by_emoji_in_order_of_first_use(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol = people(admin, server, 3)
    made = group(ann.client, "reactions", [bob.user.id, carol.user.id])
    older = send(ann.client, made.id, "older").message
    message = send(ann.client, made.id, "react to me").message

    assert reactions(add_reaction(bob.client, message.id, "🎉")) == [("🎉", [bob.user.id])]
    assert reactions(add_reaction(ann.client, message.id, "👍")) == [("🎉", [bob.user.id]), ("👍", [ann.user.id])]
    after = add_reaction(carol.client, message.id, "🎉")
    expected = [("🎉", [bob.user.id, carol.user.id]), ("👍", [ann.user.id])]
    assert reactions(after) == expected
    assert (after.id, after.text, after.sender_id, after.create_time) == (
        message.id,
        message.text,
        message.sender_id,
        message.create_time,
    )
    assert reactions(add_reaction(carol.client, message.id, "🎉")) == expected  # the same again: once
    assert reactions(add_reaction(bob.client, message.id, "👍")) == [
        ("🎉", [bob.user.id, carol.user.id]),
        ("👍", [ann.user.id, bob.user.id]),
    ]

    # Everywhere the message is shown, it shows its reactions.
    final = add_reaction(ann.client, message.id, "❤️")
    assert [e for e, _ in reactions(final)] == ["🎉", "👍", "❤️"]
    assert all_messages(carol.client, made.id) == [final, older]
    assert conversation(bob.client, made.id).last_message == final
    assert list_conversations(carol.client).conversations[0].last_message == final
    assert list(add_reaction(bob.client, older.id, "👀").reactions) == [
        chat_pb2.Reaction(emoji="👀", user_ids=[bob.user.id])
    ]


def test_a_reaction_taken_back_goes_with_its_last_user(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    pair = direct(ann.client, bob.user.id).conversation
    message = send(ann.client, pair.id, "hi").message
    add_reaction(ann.client, message.id, "👍")
    add_reaction(bob.client, message.id, "👍")
    add_reaction(bob.client, message.id, "😂")

    assert reactions(remove_reaction(ann.client, message.id, "👍")) == [("👍", [bob.user.id]), ("😂", [bob.user.id])]
    assert reactions(remove_reaction(ann.client, message.id, "👍")) == [("👍", [bob.user.id]), ("😂", [bob.user.id])]
    assert reactions(remove_reaction(ann.client, message.id, "🙈")) == [("👍", [bob.user.id]), ("😂", [bob.user.id])]
    assert reactions(remove_reaction(bob.client, message.id, "👍")) == [("😂", [bob.user.id])]
    last = remove_reaction(bob.client, message.id, "😂")
    assert list(last.reactions) == [] and last.text == "hi"
    assert all_messages(ann.client, pair.id) == [last]


def test_reactions_reach_streams_only_when_something_changed(server: ServerProcess, admin: Client, open_stream) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "live reactions", [bob.user.id])
    message = send(ann.client, made.id, "watch this").message
    streams = [live(open_stream(p.client)) for p in (ann, bob)]

    added = add_reaction(bob.client, message.id, "🔥")
    for stream in streams:
        assert stream.event().reactions_changed == added
    add_reaction(bob.client, message.id, "🔥")  # already there
    remove_reaction(ann.client, message.id, "🔥")  # ann never reacted
    removed = remove_reaction(bob.client, message.id, "🔥")
    assert list(removed.reactions) == []
    for stream in streams:
        assert stream.event().reactions_changed == removed
    remove_reaction(bob.client, message.id, "🔥")  # gone already
    marker = send(ann.client, made.id, "marker").message
    for stream in streams:
        assert stream.event().message_created == marker


def test_one_person_has_at_most_20_different_emojis_on_a_message(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "enthusiasm", [bob.user.id])
    message = send(bob.client, made.id, "great news").message
    emojis = [chr(0x1F600 + i) for i in range(22)]
    for emoji in emojis[:20]:
        add_reaction(ann.client, message.id, emoji)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, add_reaction, ann.client, message.id, emojis[20])
    assert len(add_reaction(ann.client, message.id, emojis[0]).reactions) == 20  # one she already has is fine
    assert len(add_reaction(bob.client, message.id, emojis[20]).reactions) == 21  # the limit is per person
    remove_reaction(ann.client, message.id, emojis[3])
    after = add_reaction(ann.client, message.id, emojis[21])
    mine = [r.emoji for r in after.reactions if ann.user.id in r.user_ids]
    assert len(mine) == 20 and emojis[21] in mine and emojis[3] not in mine
    assert all_messages(bob.client, made.id) == [after]


BAD_EMOJIS = ["", "x" * 33, "👍" * 33, "a b", " 👍", "👍\n", "\t", "👍\u00a0", "\u3000", "a\x00b", "\x7f", "\u0085"]


@pytest.mark.parametrize("emoji", BAD_EMOJIS)
def test_an_emoji_has_1_to_32_characters_without_spaces_or_controls(person: Person, emoji: str) -> None:
    made = group(person.client, "emojis")
    message = send(person.client, made.id, "hello").message
    assert set(invalid(add_reaction, person.client, message.id, emoji)) == {"emoji"}
    assert set(invalid(remove_reaction, person.client, message.id, emoji)) == {"emoji"}
    assert all_messages(person.client, made.id) == [message]


@pytest.mark.parametrize("emoji", ["x", "x" * 32, "👍" * 32, "👍🏽", "🇫🇷", "👨‍👩‍👧", ":+1:", "é" * 32])
def test_emojis_of_up_to_32_characters_are_fine(person: Person, emoji: str) -> None:
    made = group(person.client, "emojis")
    message = send(person.client, made.id, "hello").message
    assert reactions(add_reaction(person.client, message.id, emoji)) == [(emoji, [person.user.id])]
    assert list(remove_reaction(person.client, message.id, emoji).reactions) == []


@pytest.mark.parametrize("message_id", [0, -1])
def test_reactions_need_a_positive_message_id(person: Person, message_id: int) -> None:
    for call in (add_reaction, remove_reaction):
        assert set(invalid(call, person.client, message_id, "👍")) == {"message_id"}


def test_a_bad_message_id_and_a_bad_emoji_are_reported_together(person: Person) -> None:
    for call in (add_reaction, remove_reaction):
        assert set(invalid(call, person.client, 0, "")) == {"message_id", "emoji"}


def test_reactions_to_unseen_messages_are_not_found_and_to_deleted_ones_refused(
    server: ServerProcess, admin: Client
) -> None:
    ann, eve = people(admin, server, 2)
    made = group(ann.client, "private")
    hidden = send(ann.client, made.id, "not for eve").message
    for call in (add_reaction, remove_reaction):
        expect_error(grpc.StatusCode.NOT_FOUND, call, eve.client, hidden.id, "👍")
        expect_error(grpc.StatusCode.NOT_FOUND, call, ann.client, NOWHERE, "👍")
    assert all_messages(ann.client, made.id) == [hidden]
    delete_message(ann.client, hidden.id)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, add_reaction, ann.client, hidden.id, "👍")
    assert list(all_messages(ann.client, made.id)[0].reactions) == []


# --- search --------------------------------------------------------------------------------------


def test_search_ignores_case_even_beyond_ascii(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    pair = direct(ann.client, bob.user.id).conversation
    token = word()
    ete = send(bob.client, pair.id, f"Bonne ÉTÉ {token}").message
    plain = send(ann.client, pair.id, f"bonne ete {token}").message
    shout = send(ann.client, pair.id, f"HELLO {token.upper()} WORLD").message
    assert found(ann.client, "été") == [ete]
    assert found(bob.client, "Été") == [ete]
    assert found(ann.client, "ete") == [plain]
    assert found(ann.client, token) == [shout, plain, ete]
    assert found(bob.client, f"hello {token}") == [shout]
    assert found(ann.client, f"  {token.upper()}  ") == [shout, plain, ete]  # the query is trimmed


def test_search_finds_only_in_my_current_conversations_newest_first_page_by_page(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob, eve = people(admin, server, 3)
    token = word()
    team = group(ann.client, "team", [bob.user.id])
    pair = direct(ann.client, bob.user.id).conversation
    solo = group(eve.client, "eve alone")
    send(eve.client, solo.id, f"eve's {token}")
    sent = []
    for i in range(5):
        where = (team, pair)[i % 2]
        sent.append(send((ann, bob)[i // 2 % 2].client, where.id, f"match {i} [{token}]").message)
        send(ann.client, where.id, f"no match {i}")
    newest_first = sent[::-1]

    assert found(ann.client, token) == newest_first
    pages, page_token = [], ""
    while True:
        page = search(ann.client, token, page_size=2, page_token=page_token)
        pages.append(list(page.messages))
        page_token = page.next_page_token
        if not page_token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [m for p in pages for m in p] == newest_first
    assert ids(found(bob.client, token)) == ids(newest_first)
    assert [m.text for m in found(eve.client, token)] == [f"eve's {token}"]

    leave(bob.client, team.id)
    assert found(bob.client, token) == [m for m in newest_first if m.conversation_id == pair.id]


def test_search_takes_percent_and_underscore_literally(person: Person) -> None:
    made = group(person.client, "wildcards")
    token = word()
    percent = send(person.client, made.id, f"{token} 100% sure").message
    send(person.client, made.id, f"{token} 1000 times")
    underscore = send(person.client, made.id, f"{token} snake_case").message
    send(person.client, made.id, f"{token} snakeXcase")
    assert found(person.client, "100%") == [percent]
    assert found(person.client, f"{token} 100%") == [percent]
    assert found(person.client, "e_c") == [underscore]
    assert found(person.client, "%") == [percent]
    assert found(person.client, "_") == [underscore]


def test_search_skips_deleted_messages_and_finds_edited_ones_by_their_new_text(person: Person) -> None:
    made = group(person.client, "changes")
    old, new, token = word(), word(), word()
    doomed = send(person.client, made.id, f"{token} soon gone").message
    changed = send(person.client, made.id, f"{token} {old}").message
    delete_message(person.client, doomed.id)
    edited = edit(person.client, changed.id, f"{token} {new}")
    assert found(person.client, "soon gone") == []
    assert found(person.client, old) == []
    assert found(person.client, new) == [edited]
    assert found(person.client, token) == [edited]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": " \t\n "}, "query"),
        ({"query": "x" * 201}, "query"),
        ({"query": " " + "é" * 201 + " "}, "query"),
        ({"query": "hello", "page_size": -1}, "page_size"),
        ({"query": "hello", "page_size": 201}, "page_size"),
        ({"query": "hello", "page_token": "garbage!"}, "page_token"),
    ],
)
def test_search_rejects_bad_queries_and_paging(person: Person, fields: dict, field: str) -> None:
    assert set(invalid(search, person.client, **fields)) == {field}


def test_a_query_of_200_characters_is_fine(person: Person) -> None:
    made = group(person.client, "long query")
    message = send(person.client, made.id, "<" + "é" * 200 + ">").message
    assert found(person.client, "  " + "é" * 200 + "  ") == [message]


def test_a_search_page_token_only_continues_its_own_query(person: Person) -> None:
    made = group(person.client, "tokens")
    one, two = word(), word()
    for i in range(3):
        send(person.client, made.id, f"{one} {two} {i}")
    token = search(person.client, one, page_size=1).next_page_token
    assert token
    assert set(invalid(search, person.client, two, page_size=1, page_token=token)) == {"page_token"}
    assert len(search(person.client, one, page_size=1, page_token=token).messages) == 1


# --- around a message ----------------------------------------------------------------------------


def test_messages_around_one_show_half_a_page_newer_and_continue_older(server: ServerProcess, admin: Client) -> None:
    ann, bob = people(admin, server, 2)
    made = direct(ann.client, bob.user.id).conversation
    m = [0] + [send((ann, bob)[i % 2].client, made.id, f"m{i}").message.id for i in range(1, 11)]  # m[1]..m[10]
    assert m[1:] == sorted(m[1:])

    page = list_messages(bob.client, made.id, page_size=4, around_message_id=m[5])
    assert ids(page.messages) == [m[7], m[6], m[5], m[4]] and page.next_page_token
    rest = list_messages(bob.client, made.id, page_size=4, page_token=page.next_page_token)
    assert ids(rest.messages) == [m[3], m[2], m[1]] and not rest.next_page_token

    page = list_messages(ann.client, made.id, page_size=4, around_message_id=m[10])
    assert ids(page.messages) == [m[10], m[9], m[8], m[7]] and page.next_page_token
    rest = list_messages(ann.client, made.id, page_size=4, page_token=page.next_page_token)
    assert ids(rest.messages) == [m[6], m[5], m[4], m[3]]

    page = list_messages(ann.client, made.id, page_size=5, around_message_id=m[5])
    assert ids(page.messages) == [m[7], m[6], m[5], m[4], m[3]]
    page = list_messages(ann.client, made.id, around_message_id=m[5])  # 50 by default: everything
    assert ids(page.messages) == m[10:0:-1] and not page.next_page_token
    assert list(page.messages) == list(list_messages(ann.client, made.id).messages)


def test_around_needs_a_message_of_the_same_conversation_and_no_page_token(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob = people(admin, server, 2)
    here = group(ann.client, "here", [bob.user.id])
    there = group(ann.client, "there")
    hidden = group(bob.client, "bob alone")
    mine = [send(ann.client, here.id, f"m{i}").message for i in range(4)]
    elsewhere = send(ann.client, there.id, "there").message
    invisible = send(bob.client, hidden.id, "hidden").message
    token = list_messages(ann.client, here.id, page_size=2).next_page_token
    assert token

    def around(message_id: int, page_token: str = "") -> dict[str, str]:
        return invalid(
            list_messages, ann.client, here.id, page_size=2, page_token=page_token, around_message_id=message_id
        )

    assert set(around(mine[1].id, token)) == {"around_message_id"}
    for wrong in (elsewhere.id, invisible.id, NOWHERE, -1):
        assert set(around(wrong)) == {"around_message_id"}
    assert ids(list_messages(ann.client, here.id, page_size=2, around_message_id=mine[1].id).messages) == [
        mine[2].id,
        mine[1].id,
    ]


# --- adding members ------------------------------------------------------------------------------


def test_added_members_come_last_and_can_read_the_history_and_post(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol, dave = people(admin, server, 4)
    made = group(ann.client, "growing", [bob.user.id])
    history = [send(p.client, made.id, f"before {i}").message for i, p in enumerate((ann, bob, ann))]

    grown = add_members(ann.client, made.id, [dave.user.id, bob.user.id, carol.user.id, ann.user.id])
    assert grown.id == made.id and grown.name == "growing" and grown.kind == chat_pb2.CONVERSATION_KIND_GROUP
    assert members(grown) == [
        (ann.user.id, ADMIN),
        (bob.user.id, MEMBER),
        (dave.user.id, MEMBER),
        (carol.user.id, MEMBER),
    ]
    assert grown.members[:2] == made.members[:2]  # those already in keep their place and join time
    assert all(m.join_time.seconds > 0 for m in grown.members)
    assert members(conversation(bob.client, made.id)) == members(grown)

    for newcomer in (carol, dave):
        assert made.id in ids(list_conversations(newcomer.client).conversations)
        assert members(conversation(newcomer.client, made.id)) == members(grown)
        assert all_messages(newcomer.client, made.id) == history[::-1]
    hello = send(dave.client, made.id, "hello, I'm new").message
    assert all_messages(ann.client, made.id)[0] == hello

    again = add_members(ann.client, made.id, [carol.user.id, dave.user.id])  # all in already
    assert members(again) == members(grown)


def test_added_members_must_be_existing_enabled_accounts_reported_by_index(
    server: ServerProcess, admin: Client
) -> None:
    ann, bob, disabled, deleted = people(admin, server, 4)
    made = group(ann.client, "careful")
    disable(admin, disabled.user.id)
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=deleted.user.id), metadata=admin.md, timeout=10)
    assert set(invalid(add_members, ann.client, made.id, [])) == {"user_ids"}
    assert set(invalid(add_members, ann.client, made.id, [bob.user.id, 0])) == {"user_ids[1]"}
    assert set(invalid(add_members, ann.client, made.id, [-3, bob.user.id])) == {"user_ids[0]"}
    requested = [bob.user.id, NOWHERE, disabled.user.id, deleted.user.id]
    assert set(invalid(add_members, ann.client, made.id, requested)) == {"user_ids[1]", "user_ids[2]", "user_ids[3]"}
    assert members(conversation(ann.client, made.id)) == [(ann.user.id, ADMIN)]
    assert made.id not in ids(list_conversations(bob.client).conversations)


@pytest.mark.parametrize("conversation_id", [0, -1])
def test_adding_members_needs_a_positive_conversation_id(person: Person, conversation_id: int) -> None:
    assert set(invalid(add_members, person.client, conversation_id, [person.user.id])) == {"conversation_id"}


def test_only_a_group_admin_may_add_and_only_to_a_group(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol, eve = people(admin, server, 4)
    made = group(ann.client, "exclusive", [bob.user.id, admin.user.id])
    pair = direct(ann.client, bob.user.id).conversation
    expect_error(grpc.StatusCode.NOT_FOUND, add_members, eve.client, made.id, [carol.user.id])
    expect_error(grpc.StatusCode.NOT_FOUND, add_members, ann.client, NOWHERE, [carol.user.id])
    expect_error(grpc.StatusCode.NOT_FOUND, add_members, eve.client, pair.id, [carol.user.id])
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, add_members, ann.client, pair.id, [carol.user.id])
    expect_error(grpc.StatusCode.PERMISSION_DENIED, add_members, bob.client, made.id, [carol.user.id])
    expect_error(grpc.StatusCode.PERMISSION_DENIED, add_members, admin, made.id, [carol.user.id])
    assert [m.user_id for m in conversation(ann.client, made.id).members] == [ann.user.id, bob.user.id, admin.user.id]
    assert len(conversation(bob.client, pair.id).members) == 2
    assert list_conversations(carol.client).conversations == []


def test_a_group_grows_to_at_most_500_members(server: ServerProcess, admin: Client, person: Person) -> None:
    def account(_: int) -> int:
        request = users_pb2.CreateUserRequest(user=users_pb2.User(username=unique_name("crowd")), password="pw-crowd-1")
        return admin.users.CreateUser(request, metadata=admin.md, timeout=30).user.id

    with ThreadPoolExecutor(8) as pool:
        crowd = list(pool.map(account, range(500)))
    made = group(person.client, "almost full", crowd[:498])
    assert len(made.members) == 499
    assert set(invalid(add_members, person.client, made.id, [crowd[498], crowd[499]])) == {"user_ids"}
    assert len(conversation(person.client, made.id).members) == 499
    full = add_members(person.client, made.id, [crowd[0], crowd[498], crowd[1]])  # those in already do not count
    assert len(full.members) == 500 and full.members[-1].user_id == crowd[498]
    assert set(invalid(add_members, person.client, made.id, [crowd[499]])) == {"user_ids"}
    assert len(conversation(person.client, made.id).members) == 500


def test_everyone_in_the_group_learns_who_joined_and_the_newcomer_follows_it_live(
    server: ServerProcess, admin: Client, open_stream
) -> None:
    ann, bob, dave = people(admin, server, 3)
    made = group(ann.client, "welcome", [bob.user.id])
    send(ann.client, made.id, "before dave")
    streams = {p.user.id: live(open_stream(p.client)) for p in (ann, bob, dave)}

    grown = add_members(ann.client, made.id, [dave.user.id])
    for stream in streams.values():
        added = stream.event().members_added
        assert list(added.user_ids) == [dave.user.id]
        assert added.conversation.id == made.id and members(added.conversation) == members(grown)
    after = send(bob.client, made.id, "welcome, dave").message
    for stream in streams.values():
        assert stream.event().message_created == after


# --- removing members and leaving ----------------------------------------------------------------


def test_a_removed_member_loses_the_group_entirely(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol = people(admin, server, 3)
    made = group(ann.client, "shrinking", [bob.user.id, carol.user.id])
    message = send(ann.client, made.id, "you will miss this").message

    remove_member(ann.client, made.id, bob.user.id)
    assert members(conversation(carol.client, made.id)) == [(ann.user.id, ADMIN), (carol.user.id, MEMBER)]
    expect_error(grpc.StatusCode.NOT_FOUND, conversation, bob.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, list_messages, bob.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, send, bob.client, made.id, "let me back")
    expect_error(grpc.StatusCode.NOT_FOUND, mark_read, bob.client, made.id, message.id)
    assert made.id not in ids(list_conversations(bob.client).conversations)
    assert all_messages(ann.client, made.id) == [message]

    leave(carol.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, conversation, carol.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, list_messages, carol.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, send, carol.client, made.id, "let me back")
    expect_error(grpc.StatusCode.NOT_FOUND, mark_read, carol.client, made.id, message.id)
    assert list_conversations(carol.client).conversations == []
    assert members(conversation(ann.client, made.id)) == [(ann.user.id, ADMIN)]


def test_anyone_may_remove_themselves_but_only_admins_remove_others(server: ServerProcess, admin: Client) -> None:
    ann, bob, carol, eve = people(admin, server, 4)
    made = group(ann.client, "rules", [bob.user.id, carol.user.id])
    expect_error(grpc.StatusCode.PERMISSION_DENIED, remove_member, bob.client, made.id, carol.user.id)
    expect_error(grpc.StatusCode.PERMISSION_DENIED, remove_member, bob.client, made.id, ann.user.id)
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, eve.client, made.id, bob.user.id)
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, eve.client, made.id, eve.user.id)
    expect_error(grpc.StatusCode.NOT_FOUND, leave, eve.client, made.id)
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, ann.client, made.id, eve.user.id)  # not in it
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, ann.client, made.id, NOWHERE)
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, ann.client, NOWHERE, bob.user.id)
    expect_error(grpc.StatusCode.NOT_FOUND, leave, ann.client, NOWHERE)
    assert [m.user_id for m in conversation(ann.client, made.id).members] == [ann.user.id, bob.user.id, carol.user.id]

    remove_member(bob.client, made.id, bob.user.id)
    assert [m.user_id for m in conversation(carol.client, made.id).members] == [ann.user.id, carol.user.id]
    expect_error(grpc.StatusCode.NOT_FOUND, remove_member, ann.client, made.id, bob.user.id)  # gone already
    expect_error(grpc.StatusCode.NOT_FOUND, leave, bob.client, made.id)
    remove_member(ann.client, made.id, carol.user.id)
    assert members(conversation(ann.client, made.id)) == [(ann.user.id, ADMIN)]


def test_nobody_leaves_a_direct_conversation(server: ServerProcess, admin: Client) -> None:
    ann, bob, eve = people(admin, server, 3)
    pair = direct(ann.client, bob.user.id).conversation
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, remove_member, ann.client, pair.id, bob.user.id)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, remove_member, bob.client, pair.id, bob.user.id)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, leave, ann.client, pair.id)
    expect_error(grpc.StatusCode.NOT_FOUND, leave, eve.client, pair.id)
    assert len(conversation(bob.client, pair.id).members) == 2


@pytest.mark.parametrize("bad", [0, -1])
def test_removing_and_leaving_need_positive_ids(person: Person, bad: int) -> None:
    made = group(person.client, "ids")
    assert set(invalid(remove_member, person.client, bad, person.user.id)) == {"conversation_id"}
    assert set(invalid(remove_member, person.client, made.id, bad)) == {"user_id"}
    assert set(invalid(leave, person.client, bad)) == {"conversation_id"}
    assert members(conversation(person.client, made.id)) == [(person.user.id, ADMIN)]


def test_when_the_last_admin_leaves_the_longest_standing_member_takes_over(
    server: ServerProcess, admin: Client
) -> None:
    carol, bob, ann, dave = people(admin, server, 4)  # account ids: carol < bob; join order: bob before carol
    made = group(ann.client, "succession", [bob.user.id])
    add_members(ann.client, made.id, [carol.user.id])
    add_members(ann.client, made.id, [dave.user.id])
    carols = send(carol.client, made.id, "carol's").message

    leave(ann.client, made.id)
    after = conversation(carol.client, made.id)
    assert members(after) == [(bob.user.id, ADMIN), (carol.user.id, MEMBER), (dave.user.id, MEMBER)]
    # The new admin has an admin's powers, the others still do not.
    expect_error(grpc.StatusCode.PERMISSION_DENIED, remove_member, carol.client, made.id, dave.user.id)
    assert delete_message(bob.client, carols.id).HasField("delete_time")
    remove_member(bob.client, made.id, dave.user.id)
    assert add_members(bob.client, made.id, [ann.user.id]).members[-1].user_id == ann.user.id
    assert members(conversation(ann.client, made.id)) == [
        (bob.user.id, ADMIN),
        (carol.user.id, MEMBER),
        (ann.user.id, MEMBER),
    ]


def test_a_removed_members_stream_stops_carrying_the_group(server: ServerProcess, admin: Client, open_stream) -> None:
    ann, bob, carol, dave = people(admin, server, 4)
    made = group(ann.client, "before and after", [bob.user.id, carol.user.id])
    pair = direct(ann.client, bob.user.id).conversation
    old = send(ann.client, made.id, "from before").message
    bobs = open_stream(bob.client)
    _, before = bobs.live()
    carols = live(open_stream(carol.client))

    remove_member(ann.client, made.id, bob.user.id)
    for stream in (bobs, carols):
        removed = stream.event().members_removed
        assert list(removed.user_ids) == [bob.user.id] and removed.conversation.id == made.id
        assert [m.user_id for m in removed.conversation.members] == [ann.user.id, carol.user.id]

    # Everything the group does from now on, and then a marker in a conversation bob is still in.
    later = send(ann.client, made.id, "after bob").message
    edit(ann.client, old.id, "from before, edited")
    add_reaction(carol.client, old.id, "👋")
    delete_message(ann.client, later.id)
    add_members(ann.client, made.id, [dave.user.id])
    marker = send(ann.client, pair.id, "marker for bob").message
    assert bobs.event().message_created == marker
    kinds = [e.WhichOneof("payload") for e in carols.events(5)]
    assert kinds == ["message_created", "message_edited", "reactions_changed", "message_deleted", "members_added"]

    # Resuming from before the removal brings nothing of what the group did after it.
    replayed, _ = open_stream(bob.client, before.last_event_id).live()
    about_the_group = [e.WhichOneof("payload") for e in replayed if concerns(e, made.id)]
    assert set(about_the_group) <= {"members_removed"}
    assert replayed[-1].message_created == marker


def test_leaving_is_told_to_the_leaver_and_to_those_who_stay(server: ServerProcess, admin: Client, open_stream) -> None:
    ann, bob = people(admin, server, 2)
    made = group(ann.client, "farewell", [bob.user.id])
    pair = direct(ann.client, bob.user.id).conversation
    streams = [live(open_stream(p.client)) for p in (ann, bob)]

    leave(bob.client, made.id)
    for stream in streams:
        removed = stream.event().members_removed
        assert list(removed.user_ids) == [bob.user.id] and removed.conversation.id == made.id
        assert members(removed.conversation) == [(ann.user.id, ADMIN)]
    send(ann.client, made.id, "alone now")
    marker = send(ann.client, pair.id, "marker").message
    assert streams[1].event().message_created == marker
    assert [e.message_created.text for e in streams[0].events(2)] == ["alone now", "marker"]
