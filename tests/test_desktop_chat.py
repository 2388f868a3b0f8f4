"""The desktop app's chat beyond sending: a group's members, searching messages, a long history scrolled up.

In-process under Xvfb against a real server (SQLite), driven through the widgets; the other people are scripts on
the client library (``Other``), and every effect is also checked on the server.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
import ttkbootstrap as ttk
from desktop.app import DesktopApp
from desktop.chat import day_of
from desktop.window import MainWindow
from workspace.v1 import chat_pb2
from workspace_client import FileTokenStore, Session

from .desktop import VirtualDisplay, pump, settle
from .desktop_app import (  # noqa: F401 (fixtures are used by name)
    QUICK,
    Other,
    admin_session,
    count,
    log_in,
    main_of,
    new_account,
    row,
    screen,
    sqlite_server,
    status,
    window,
)
from .servers import ServerProcess

pytestmark = pytest.mark.timeout(300)


def signed_in(address: str, username: str, password: str, folder: Path) -> Session:
    session = Session(address, token_store=FileTokenStore(folder / f"api-{username}"))
    session.login(username, password)
    return session


def say(session: Session, conversation_id: int, text: str) -> chat_pb2.Message:
    request = chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text, request_id=uuid.uuid4().hex)
    return session.call(session.chat.SendMessage, request).message


def member_ids(session: Session, conversation_id: int) -> set[int]:
    request = chat_pb2.GetConversationRequest(conversation_id=conversation_id)
    return {m.user_id for m in session.call(session.chat.GetConversation, request).conversation.members}


def group(session: Session, name: str, members: list[int]) -> chat_pb2.Conversation:
    request = chat_pb2.CreateGroupConversationRequest(name=name, member_ids=members)
    return session.call(session.chat.CreateGroupConversation, request).conversation


def start_app(window: ttk.Window, address: str, username: str, password: str) -> tuple[DesktopApp, MainWindow]:
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, username, password)
    main = main_of(window, app)
    pump(window, lambda: status(main) == "● Connected" and main.live, 20, "the live stream")
    return app, main


def test_managing_a_group_from_the_app(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    dana = signed_in(address, me.username, password, tmp_path)
    ann = Other(address, admin, tmp_path)
    bob = Other(address, admin, tmp_path, name="Bob Builder")
    crew = group(dana, "Crew", [ann.user.id])  # Dana's group: she is its admin
    hers = group(ann.session, "Ann's room", [me.id])  # Ann's group: Dana is a member only
    opening = chat_pb2.CreateDirectConversationRequest(user_id=ann.user.id)
    direct = dana.call(dana.chat.CreateDirectConversation, opening).conversation

    app, main = start_app(window, address, me.username, password)
    chat = main.chat
    pump(window, lambda: row(main, crew.id) and chat.people.exists(str(bob.user.id)), 15, "the groups and people")

    # A direct conversation has no members to manage.
    chat.list.selection_set(str(direct.id))
    pump(window, lambda: chat.open_id == direct.id and chat.messages == {}, 15, "the direct chat")
    assert not chat.members_button.winfo_manager()

    # As the group's admin: the members, admin marked; add Bob from the directory.
    chat.list.selection_set(str(crew.id))
    pump(window, lambda: chat.open_id == crew.id and chat.members_button.winfo_ismapped(), 15, "the group")
    chat.members_button.invoke()
    dialog = chat.members_dialog
    assert dialog is not None
    assert [dialog.members.item(i)["values"][0] for i in dialog.members.get_children()] == ["admin", "member"]
    assert dialog.members.item(str(me.id))["text"].strip() == "Dana Desk (you)"
    assert str(dialog.remove_button.cget("state")) == "normal" and dialog.candidates.winfo_manager()
    assert not dialog.candidates.exists(str(ann.user.id))  # already in it
    dialog.find_entry.insert(0, "bob")
    assert dialog.candidates.get_children() == (str(bob.user.id),)
    dialog.candidates.selection_set(str(bob.user.id))
    dialog.add_button.invoke()
    pump(window, lambda: dialog.result.cget("text") == "Added Bob Builder.", 15, "the answer")
    assert dialog.members.exists(str(bob.user.id)) and "3 members" in str(chat.subtitle.cget("text"))
    assert bob.user.id in member_ids(dana, crew.id)
    listed = bob.session.call(bob.session.chat.ListConversations, chat_pb2.ListConversationsRequest())
    assert crew.id in [c.id for c in listed.conversations]  # Bob sees the group
    settle(window, 0.4)
    screen.screenshot("desktop-chat-members", dialog)

    # ... and remove him again.
    dialog.members.selection_set(str(bob.user.id))
    dialog.remove_button.invoke()
    pump(window, lambda: dialog.result.cget("text") == "Removed Bob Builder.", 15, "Bob removed")
    assert not dialog.members.exists(str(bob.user.id)) and bob.user.id not in member_ids(dana, crew.id)
    dialog.destroy()
    assert chat.members_dialog is None

    # As a plain member: no adding or removing, and the server's refusal if the app tried (a stale role).
    chat.list.selection_set(str(hers.id))
    pump(window, lambda: chat.open_id == hers.id and chat.members_button.winfo_ismapped(), 15, "Ann's room")
    chat.members_button.invoke()
    dialog = chat.members_dialog
    assert dialog is not None and dialog.conversation_id == hers.id
    assert "Only the group's admins can add or remove people" in dialog.note.cget("text")
    assert str(dialog.remove_button.cget("state")) == "disabled" and not dialog.add_button.winfo_manager()
    dialog.add_people([bob.user.id])
    refusal = "Could not add people: only the group's admins may add people (PERMISSION_DENIED)"
    pump(window, lambda: dialog.result.cget("text") == refusal, 15, "the refusal")
    assert bob.user.id not in member_ids(ann.session, hers.id)

    # Ann (her admin) adds Bob: the open dialog follows, through the event stream.
    ann.session.call(
        ann.session.chat.AddMembers, chat_pb2.AddMembersRequest(conversation_id=hers.id, user_ids=[bob.user.id])
    )
    pump(window, lambda: dialog.members.exists(str(bob.user.id)), 15, "Bob added by Ann")

    # Leaving asks for a second click; then the group goes from the list.
    dialog.leave_button.invoke()
    assert dialog.leave_button.cget("text") == "Click again to leave" and hers.id in chat.conversations
    dialog.leave_button.invoke()
    pump(window, lambda: not row(main, hers.id) and chat.open_id == 0, 15, "the group gone from the list")
    assert chat.members_dialog is None
    # The app's notice, or the stream's if its event came before the call's answer.
    assert "You left “Ann's room”." in chat.message_text() or "no longer in this" in chat.message_text()
    assert me.id not in member_ids(ann.session, hers.id)
    settle(window, 0.5)  # a members_removed event about Dana arrives too: it changes nothing more
    assert not row(main, hers.id) and row(main, crew.id)
    app.close()
    for person in (ann, bob):
        person.close()
    dana.close()
    admin.close()


def test_searching_messages_and_opening_one(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    ann = Other(address, admin, tmp_path)
    word = "marmalade"  # in this module's server, only this story says it
    room = group(ann.session, "Kitchen", [me.id])
    old = ann.say(room.id, f"Who took the {word} jar from the shelf?")
    for i in range(130):  # the message searched for is three pages back
        ann.say(room.id, f"kitchen {i:03d}")
    direct = ann.session.call(
        ann.session.chat.CreateDirectConversation, chat_pb2.CreateDirectConversationRequest(user_id=me.id)
    ).conversation
    recent = ann.say(direct.id, f"I bought more {word.upper()}, it is in the fridge")

    app, main = start_app(window, address, me.username, password)
    chat = main.chat
    pump(window, lambda: row(main, room.id) and row(main, direct.id), 15, "the conversations")

    # An empty search asks for a word and calls nothing.
    before = chat.search_serial
    chat.search_entry.focus_force()
    chat.search_entry.event_generate("<Return>")
    assert "Type a word" in chat.search_hint.cget("text") and chat.search_serial == before
    assert not chat.searching()

    # Both messages are found (case ignored), newest first, with their conversation and sender.
    chat.search_entry.insert(0, word)
    chat.search_entry.focus_force()
    chat.search_entry.event_generate("<Return>")
    pump(window, lambda: len(chat.results.get_children()) == 2, 15, "the results")
    rows = [chat.results.item(i)["values"] for i in chat.results.get_children()]
    assert [r[:2] for r in rows] == [["Ann Example", "Ann Example"], ["Kitchen", "Ann Example"]]
    assert word.upper() in rows[0][3] and word in rows[1][3]
    assert chat.results_label.cget("text") == f"2 messages contain “{word}”"
    assert str(chat.more_button.cget("state")) == "disabled"
    settle(window, 0.4)
    screen.screenshot("desktop-chat-search", window)

    # Opening the old one opens its conversation, loads older pages until it is there, and selects it.
    chat.results.selection_set(str(old.id))
    chat.open_result_button.invoke()
    pump(window, lambda: chat.open_id == room.id and chat.selected == old.id, 20, "the message selected")
    assert not chat.searching() and chat.search_entry.get() == word
    chosen = chat.text.tag_ranges("selected")
    assert word in chat.text.get(chosen[0], chosen[-1]) and chat.text.bbox(chosen[0]) is not None
    assert str(chat.reply_button.cget("state")) == "normal"
    assert count(chat.message_text(), f"Who took the {word} jar") == 1
    settle(window, 0.3)
    screen.screenshot("desktop-chat-search-opened", window)

    # No match says so; Escape returns to the conversation.
    chat.search_entry.delete(0, "end")
    chat.search_entry.insert(0, "no-such-words-anywhere")
    chat.search_entry.focus_force()
    chat.search_entry.event_generate("<Return>")
    pump(window, lambda: "No message contains" in chat.results_label.cget("text"), 15, "no match")
    assert chat.results.get_children() == () and chat.searching()
    chat.search_entry.event_generate("<Escape>")
    assert not chat.searching() and chat.search_entry.get() == "" and chat.conversation_area.winfo_manager()
    assert recent.id not in chat.messages  # the view is the Kitchen's still
    app.close()
    ann.close()
    admin.close()


def test_scrolling_up_a_long_history_writes_each_page_once_above_the_last(
    window: ttk.Window, sqlite_server: ServerProcess, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    dana = signed_in(address, me.username, password, tmp_path)
    ann = Other(address, admin, tmp_path)
    room = group(ann.session, "Long story", [me.id])
    # Runs of 7 messages by one person then the other: the 50-message pages cut runs in the middle.
    for i in range(300):
        say(ann.session if (i // 7) % 2 == 0 else dana, room.id, f"line {i:03d}")

    app, main = start_app(window, address, me.username, password)
    chat = main.chat
    pump(window, lambda: row(main, room.id), 15, "the conversation")
    chat.list.selection_set(str(room.id))
    pump(window, lambda: chat.open_id == room.id and len(chat.messages) == 50, 15, "the last page")
    for _ in range(10):
        if not chat.older_token:
            break
        oldest = min(chat.messages)
        chat.text.yview_moveto(0)
        pump(window, lambda o=oldest: not chat.loading_older and min(chat.messages) < o, 15, "an older page")
        # The view stays on what it showed: the message that was first is still on screen.
        shown = chat.text.tag_ranges(f"m{oldest}")
        assert chat.text.bbox(f"{shown[-1]} -1c") is not None
    assert not chat.older_token and len(chat.messages) == 300

    text = chat.message_text()
    places = [text.find(f"line {i:03d}\n") for i in range(300)]
    assert all(count(text, f"line {i:03d}\n") == 1 for i in range(300)) and places == sorted(places)
    assert text.startswith("The beginning of the conversation\n")
    days = [day_of(chat.messages[i].create_time) for i in sorted(chat.messages)]
    changes = sum(1 for a, b in itertools.pairwise(days) if a != b)
    assert len(chat.text.tag_ranges("day")) // 2 == 1 + changes  # one date line per day, none at the page seams
    assert count(text, "Ann Example  ") + count(text, "You  ") == 300 // 7 + 1  # one header per run

    # Exactly what writing the whole view at once gives: the same text, the same tags.
    def tags() -> list[tuple[str, str, str]]:
        return sorted((kind, name, index) for kind, name, index in chat.text.dump("1.0", "end", tag=True))

    written = tags()
    chat._render()
    assert chat.message_text() == text and tags() == written
    assert len(chat.text.master.winfo_children()) == 2  # the Text and its scrollbar, in their frame

    # What comes next changes the view in place, never by writing 300 messages again, and still gives exactly
    # what a whole redraw gives: a message arriving live, one of mine edited, one of Ann's reacted to, and a
    # message waiting in the outbox.
    renders = 0
    whole = chat._render

    def counted(*args: Any, **kwargs: Any) -> None:
        nonlocal renders
        renders += 1
        whole(*args, **kwargs)

    chat._render = counted  # type: ignore[method-assign]
    arrived = ann.say(room.id, "line 300, live")
    pump(window, lambda: arrived.id in chat.messages, 15, "the live message")
    mine = max(i for i, m in chat.messages.items() if m.sender_id == me.id)
    chat.select_message(mine)
    chat.start_edit()
    chat.compose.delete(0, "end")
    chat.compose.insert(0, "line 299, edited")
    chat.send()
    pump(window, lambda: chat.messages[mine].text == "line 299, edited", 15, "the edit")
    chat.select_message(arrived.id)
    chat.toggle_reaction("♥")
    pump(window, lambda: chat.messages[arrived.id].reactions, 15, "the reaction")
    chat.set_online(False)  # the outbox holds the next one
    chat.compose.insert(0, "waiting in the outbox")
    chat.send()
    assert "sending…\nwaiting in the outbox\n" in chat.message_text()
    assert renders == 0
    text, written = chat.message_text(), tags()
    whole()
    assert chat.message_text() == text and tags() == written
    chat.set_online(True)  # it goes, and comes back from the server in place of its "sending…" row
    pump(window, lambda: not chat.outbox and "sending…" not in chat.message_text(), 15, "the outbox sent")
    assert renders == 0
    text, written = chat.message_text(), tags()
    whole()
    assert chat.message_text() == text and tags() == written
    assert text.endswith("waiting in the outbox\n") and count(text, "waiting in the outbox") == 1
    app.close()
    ann.close()
    dana.close()
    admin.close()


def test_emoji_written_into_a_message_and_put_as_a_reaction(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    ann = Other(address, admin, tmp_path)
    room = group(ann.session, "Coffee corner", [me.id])
    question = ann.say(room.id, "Anyone up for a break?")
    app, main = start_app(window, address, me.username, password)
    chat = main.chat
    pump(window, lambda: row(main, room.id), 15, "the conversation")
    chat.list.selection_set(str(room.id))
    pump(window, lambda: chat.open_id == room.id and question.id in chat.messages, 15, "Ann's question")

    # The ☺ menu writes where the cursor is.
    chat.compose.insert(0, " in five minutes")
    chat.compose.icursor(0)
    chat.emoji_menu.invoke(chat.emoji_menu.index("☕"))
    assert chat.compose.get() == "☕ in five minutes"
    chat.send_button.invoke()

    def on_server() -> dict[int, chat_pb2.Message]:
        request = chat_pb2.ListMessagesRequest(conversation_id=room.id, page_size=10)
        return {m.id: m for m in ann.session.call(ann.session.chat.ListMessages, request).messages}

    pump(window, lambda: "☕ in five minutes" in [m.text for m in on_server().values()], 15, "the coffee sent")

    # Any emoji of the menu as a reaction, on the server as it is on screen.
    chat.select_message(question.id)
    assert str(chat.more_reactions.cget("state")) == "normal"
    chat.emoji_button.invoke()  # the menu opens under its button
    settle(window, 0.3)
    screen.screenshot("desktop-chat-emoji", window)
    chat.emoji_menu.unpost()
    chat.reaction_menu.invoke(chat.reaction_menu.index("★"))
    pump(window, lambda: chat.messages[question.id].reactions, 15, "the star")
    assert [(r.emoji, list(r.user_ids)) for r in on_server()[question.id].reactions] == [("★", [me.id])]
    assert "★ 1" in chat.message_text()
    app.close()
    ann.close()
    admin.close()
