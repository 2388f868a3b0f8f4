"""The desktop app, in-process under a real Xvfb, against a real server, driven through its widgets.

The GUI stories run on SQLite only: the app uses the same RPCs whatever the database (the server's tests cover
both), and each GUI story costs tens of seconds of a 2-core machine's time. The person on the other end of the
chat is a script using the client library (``workspace_client``), as another device would.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
import ttkbootstrap as ttk
from desktop.app import DesktopApp
from workspace.v1 import agenda_pb2, chat_pb2, lots_pb2, monitoring_pb2, users_pb2
from workspace_client import FileTokenStore, Session, Unreachable

from .certificates import make_authority
from .databases import fresh_database
from .desktop import VirtualDisplay, close_root, new_root, pump, settle
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
from .servers import ADMIN_PASSWORD, ServerProcess

pytestmark = pytest.mark.timeout(300)
# --- login ------------------------------------------------------------------------------------------------


def test_login_says_why_it_failed(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    user, password = new_account(admin)
    admin.close()
    app = DesktopApp(window, address, resume=False)

    def message() -> str:
        assert app.login is not None
        return str(app.login.message.cget("text"))

    log_in(app, address, user.username, "not-the-password")
    pump(window, lambda: "Wrong username or password" in message(), 15, "the wrong-password message")
    settle(window, 0.3)
    screen.screenshot("desktop-login", window)

    log_in(app, "127.0.0.1:1", user.username, password)
    pump(window, lambda: "Cannot reach the server at 127.0.0.1:1" in message(), 30, "the unreachable message")

    app.login.entries["password"].delete(0, "end")  # type: ignore[union-attr]
    app.login.button.invoke()  # type: ignore[union-attr]
    assert "Enter the server address, your username and your password" in message()

    # A throttled account says when to try again.
    for _ in range(8):
        log_in(app, address, user.username, "wrong-password")
        pump(window, lambda: str(app.login.button.cget("state")) == "normal", 15, "the answer")  # type: ignore[union-attr]
        if "Too many failed attempts" in message():
            break
    assert "Too many failed attempts" in message() and "Try again in" in message()
    app.close()


def test_staying_signed_in_or_not(window: ttk.Window, sqlite_server: ServerProcess, tmp_path: Path) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    user, password = new_account(admin)
    admin.close()
    app = DesktopApp(window, address, resume=False)

    # Not staying signed in: nothing is written to the token store, and the next start asks again.
    log_in(app, address, user.username, password, stay=False)
    main = main_of(window, app)
    tokens = Path(tmp_path / "config" / "tokens")
    assert not tokens.exists() or not any(tokens.iterdir())
    main.settings.logout_button.invoke()
    pump(window, lambda: app.login is not None, 10, "the login screen after logging out")

    # Staying signed in: the next start of the app goes straight to the main window.
    log_in(app, address, user.username, password, stay=True)
    main_of(window, app)
    assert any(tokens.iterdir())
    app.close()
    app = main = None  # type: ignore[assignment]
    close_root(window)  # the app closed it: the second start of the app has a root of its own
    second = new_root("Workspace")
    try:
        again = DesktopApp(second, address, resume=True)
        resumed = main_of(second, again)
        assert resumed.session.user is not None and resumed.session.user.username == user.username
        again.close()
    finally:
        close_root(second)


# --- chatting ------------------------------------------------------------------------------------------------


def test_chatting_with_someone_live(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    ann = Other(address, admin, tmp_path)
    # A group with a long history, and a message Dana has not read yet.
    group = chat_pb2.CreateGroupConversationRequest(name="Team room", member_ids=[me.id])
    room = ann.session.call(ann.session.chat.CreateGroupConversation, group).conversation
    for i in range(120):
        ann.say(room.id, f"history {i:03d}")

    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    chat = main.chat
    pump(window, lambda: status(main) == "● Connected" and main.live, 20, "the live stream")
    pump(window, lambda: row(main, room.id).get("unread") == "120", 15, "the unread badge of the team room")
    assert row(main, room.id)["last"] == "history 119"
    pump(window, lambda: chat.people.exists(str(ann.user.id)), 15, "Ann in the people directory")
    assert chat.people.item(str(ann.user.id))["values"][0] == "offline"

    # Ann comes online (her stream opens): her dot turns green in the directory.
    ann.stream.start()
    pump(window, lambda: chat.people.item(str(ann.user.id))["values"][0] == "online", 15, "Ann online")

    # A direct conversation, started from the people directory.
    chat.people.selection_set(str(ann.user.id))
    chat.message_button.invoke()
    pump(window, lambda: chat.open_id and row(main, chat.open_id).get("name") == "Ann Example", 15, "the direct chat")
    direct_id = chat.open_id
    assert "online" in str(chat.subtitle.cget("text"))

    # Dana types: Ann sees "typing"; Dana sends: Ann receives the message once.
    chat.compose.focus_force()
    chat.compose.insert("end", "Hello An")
    chat.compose.event_generate("<Key>", keysym="n")
    chat.send_button.invoke()
    pump(window, lambda: [m.text for m in ann.seen("message_created")] == ["Hello Ann"], 15, "Ann to get it")
    pump(window, lambda: [t.user_id for t in ann.seen("typing")] == [me.id], 15, "Ann to see Dana typing")
    pump(window, lambda: "Hello Ann" in chat.message_text() and not chat.outbox, 10, "the sent message")
    assert count(chat.message_text(), "Hello Ann") == 1

    # Ann types, then answers: Dana sees both, live.
    ann.type(direct_id)
    pump(window, lambda: chat.typing_text() == "Ann Example is typing…", 15, "Ann typing")
    settle(window, 0.2)
    answer = ann.say(direct_id, "Hi Dana, how are you?")
    pump(window, lambda: "Hi Dana, how are you?" in chat.message_text(), 15, "Ann's answer")
    assert chat.typing_text() == ""  # her message ends her typing
    assert row(main, direct_id)["unread"] == ""  # open: read at once

    # Reply to Ann's message, react to it.
    chat.select_message(answer.id)
    chat.start_reply()
    chat.compose.insert(0, "Fine, thanks")
    chat.compose.event_generate("<Return>")
    pump(window, lambda: "↪ Ann Example: Hi Dana, how are you?" in chat.message_text(), 15, "the reply")
    pump(window, lambda: any(m.text == "Fine, thanks" for m in ann.seen("message_created")), 15, "Ann to get it")
    reply = next(m for m in ann.seen("message_created") if m.text == "Fine, thanks")
    assert reply.reply_to_message_id == answer.id
    chat.select_message(answer.id)
    chat.react_buttons[0].invoke()
    pump(window, lambda: "♥ 1" in chat.message_text(), 15, "the reaction")

    # Edit and delete her own message (delete asks for a second click).
    mine = next(m for m in chat.messages.values() if m.text == "Hello Ann")
    chat.select_message(mine.id)
    chat.edit_button.invoke()
    assert chat.compose.get() == "Hello Ann"
    chat.compose.delete(0, "end")
    chat.compose.insert(0, "Hello Ann!")
    chat.send_button.invoke()
    pump(window, lambda: "Hello Ann!" in chat.message_text() and "(edited)" in chat.message_text(), 15, "the edit")
    pump(window, lambda: [m.text for m in ann.seen("message_edited")] == ["Hello Ann!"], 15, "Ann to see the edit")
    chat.select_message(mine.id)
    chat.delete_button.invoke()
    assert chat.delete_button.cget("text") == "Confirm delete"
    chat.delete_button.invoke()
    pump(window, lambda: "This message was deleted." in chat.message_text(), 15, "the deletion")
    assert "Hello Ann!" not in chat.message_text()
    pump(window, lambda: len(ann.seen("message_deleted")) == 1, 15, "Ann to see the deletion")
    settle(window, 0.5)
    screen.screenshot("desktop-chat", window)

    # A draft stays with its conversation.
    chat.compose.insert(0, "half a thought")
    chat.list.selection_set(str(room.id))
    pump(window, lambda: chat.open_id == room.id and chat.messages, 15, "the team room")
    assert chat.compose.get() == ""
    pump(window, lambda: row(main, room.id).get("unread") == "", 10, "the team room read")

    # The history loads as the view is scrolled up, one page at a time, never twice.
    assert len(chat.messages) == 50
    for _ in range(4):
        chat.text.yview_moveto(0)
        pump(window, lambda: not chat.loading_older, 15, "an older page")
    pump(window, lambda: len(chat.messages) == 120, 15, "the whole history")
    text = chat.message_text()
    assert "The beginning of the conversation" in text
    assert all(count(text, f"history {i:03d}\n") == 1 for i in range(120))
    settle(window, 0.3)
    screen.screenshot("desktop-history", window)

    chat.list.selection_set(str(direct_id))
    pump(window, lambda: chat.open_id == direct_id and chat.messages, 15, "back to Ann")
    assert chat.compose.get() == "half a thought"

    # A message in a conversation that is not open: the badge counts it.
    ann.say(room.id, "are you there?")
    pump(window, lambda: row(main, room.id) == {**row(main, room.id), "unread": "1", "last": "are you there?"}, 15)

    # Ann goes offline: the dot follows.
    ann.stream.stop()
    pump(window, lambda: chat.people.item(str(ann.user.id))["values"][0] == "offline", 15, "Ann offline")
    pump(window, lambda: "offline" in str(chat.subtitle.cget("text")), 5, "the conversation header")

    # A group with Ann, from the people list.
    chat.group_button.invoke()
    assert "select the people in the list" in str(main.errors.label.cget("text"))
    main.errors.dismiss_button.invoke()
    chat.people.selection_set(str(ann.user.id))
    chat.group_name.insert(0, "Project X")
    chat.group_button.invoke()
    pump(window, lambda: chat.open_id and chat.title.cget("text") == "Project X", 15, "the new group")
    assert row(main, chat.open_id)["name"] == "Project X" and "2 members" in chat.subtitle.cget("text")
    listed = ann.session.call(ann.session.chat.ListConversations, chat_pb2.ListConversationsRequest()).conversations
    assert "Project X" in [c.name for c in listed]  # Ann is in it (her stream is closed just now)

    # An error is a sentence, and "Report a problem" sends it to the administrators.
    chat.compose.delete(0, "end")
    chat.compose.insert(0, "x" * 2500)
    chat.send_button.invoke()
    pump(window, lambda: main.errors.visible, 15, "the error bar")
    shown = str(main.errors.label.cget("text"))
    assert shown.startswith("Could not send") and "Traceback" not in shown and "INVALID_ARGUMENT" in shown
    settle(window, 0.3)
    screen.screenshot("desktop-error", window)
    main.status.report_button.invoke()
    assert main.report is not None
    main.report.send_button.invoke()
    pump(window, lambda: main.report.issue_id > 0, 15, "the report to be sent")  # type: ignore[union-attr]
    issues = admin.call(admin.monitoring.ListClientIssues, monitoring_pb2.ListClientIssuesRequest(page_size=50)).issues
    issue = next(i for i in issues if i.id == main.report.issue_id)
    assert issue.message == shown and issue.reporter_id == me.id
    assert issue.client_version.startswith("workspace-desktop ") and "Traceback" in issue.context
    main.report.destroy()
    main.errors.dismiss_button.invoke()
    assert not main.errors.winfo_ismapped() or not main.errors.visible

    # Settings: the display name and the theme.
    main.notebook.select(main.settings)
    main.settings.display_name.delete(0, "end")
    main.settings.display_name.insert(0, "Dana D.")
    main.settings.rename_button.invoke()
    pump(window, lambda: "Dana D." in str(main.settings.name_result.cget("text")), 15, "the new name")
    got = ann.session.call(ann.session.users.GetUser, users_pb2.GetUserRequest(user_id=me.id)).user
    assert got.display_name == "Dana D."
    assert main.status.who.cget("text").startswith("Dana D. @ ")
    settle(window, 0.3)
    screen.screenshot("desktop-settings", window)
    main.settings.theme_buttons["Dark"].invoke()
    main.notebook.select(main.chat)
    settle(window, 0.5)
    screen.screenshot("desktop-chat-dark", window)
    assert ttk.Style().theme_use() == "bootstrap-dark"
    assert main.agenda.columns[0].cget("background") == main.chat.text.cget("background") != "#ffffff"
    assert json.loads((tmp_path / "config" / "desktop.json").read_text()) == {"theme": "bootstrap-dark"}
    main.notebook.select(main.agenda)
    settle(window, 0.4)
    screen.screenshot("desktop-agenda-dark", window)
    main.settings.theme_buttons["Light"].invoke()

    # A small window still shows the whole chat.
    main.notebook.select(main.chat)
    window.geometry("800x560")
    settle(window, 0.8)
    screen.screenshot("desktop-chat-small", window)
    for view in (main.agenda, main.shortcuts, main.lots, main.settings):
        main.notebook.select(view)
        settle(window, 0.4)
        screen.screenshot(f"desktop-{type(view).__name__.removesuffix('View').lower()}-small", window)
    app.close()
    ann.close()
    admin.close()


def test_change_password_in_settings(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    settings = main.settings
    main.notebook.select(settings)
    entries = list(settings.passwords.values())
    entries[0].insert(0, "wrong-password")
    entries[1].insert(0, "new-password-1")
    entries[2].insert(0, "new-password-2")
    settings.password_button.invoke()
    assert settings.password_result.cget("text") == "The two new passwords differ."
    entries[2].delete(0, "end")
    entries[2].insert(0, "new-password-1")
    settings.password_button.invoke()
    pump(window, lambda: "does not match the current password" in settings.password_result.cget("text"), 15)
    entries[0].delete(0, "end")
    entries[0].insert(0, password)
    settings.password_button.invoke()
    pump(window, lambda: settings.password_result.cget("text") == "Password changed.", 15, "the change")
    check = Session(address, token_store=FileTokenStore(tmp_path / "check"))
    check.login(me.username, "new-password-1")
    check.close()
    app.close()
    admin.close()


# --- shortcuts -------------------------------------------------------------------------------------------------


def test_shortcuts_add_search_reorder_open_and_delete(
    window: ttk.Window,
    sqlite_server: ServerProcess,
    screen: VirtualDisplay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("desktop.shortcuts.webbrowser.open", opened.append)  # no browser on the test machine
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    view = main.shortcuts
    main.notebook.select(view)
    pump(window, lambda: view.loads >= 1, 15, "the shortcuts")
    assert "No shortcuts here yet" in view.empty.cget("text")

    def titles() -> list[str]:
        return [view.list.item(i)["text"].strip() for i in view.list.get_children()]

    for name in ("Work", "Reading"):
        view.category_name.insert(0, name)
        view.category_button.invoke()
        pump(window, lambda name=name: name in [c.name for c in view.categories], 15, f"the category {name}")
    for title, url, category in (
        ("Wiki", "wiki.example.com", "Work"),
        ("Tickets", "https://tickets.example.com/board", "Work"),
        ("News", "https://news.example.org", "Reading"),
    ):
        view.fields["title"].insert(0, title)
        view.fields["address"].insert(0, url)
        view.category_choice.set(category)
        view.save_button.invoke()
        pump(window, lambda title=title: title in titles(), 15, f"the shortcut {title}")
    assert titles() == ["Wiki", "Tickets", "News"]
    assert view.list.item(view.list.get_children()[0])["values"][0] == "https://wiki.example.com"

    # One category, reordered with the buttons.
    work = next(c for c in view.categories if c.name == "Work")
    view.category_list.selection_set(str(work.id))
    pump(window, lambda: titles() == ["Wiki", "Tickets"], 15, "the Work category")
    assert view.category_list.item(str(work.id))["values"][0] == 2
    view.list.selection_set(view.list.get_children()[1])
    view.up_button.invoke()
    pump(window, lambda: titles() == ["Tickets", "Wiki"], 15, "the new order")

    # Search, open, edit, delete.
    view.category_list.selection_set("all")
    view.search.insert(0, "news")
    pump(window, lambda: titles() == ["News"], 15, "the search")
    view.list.selection_set(view.list.get_children()[0])
    view.open_button.invoke()
    assert opened == ["https://news.example.org"]
    view.edit_button.invoke()
    assert view.fields["title"].get() == "News" and view.category_choice.get() == "Reading"
    view.fields["title"].delete(0, "end")
    view.fields["title"].insert(0, "Morning news")
    view.save_button.invoke()
    pump(window, lambda: titles() == ["Morning news"], 15, "the edit")
    view.list.selection_set(view.list.get_children()[0])
    view.delete_button.invoke()
    assert view.delete_button.cget("text") == "Confirm"
    view.delete_button.invoke()
    pump(window, lambda: titles() == [], 15, "the deletion")
    assert "No shortcut matches" in view.empty.cget("text")
    view.search.delete(0, "end")
    pump(window, lambda: titles() == ["Tickets", "Wiki"], 15, "everything again")
    view.list.selection_set(view.list.get_children()[0])
    settle(window, 0.4)
    screen.screenshot("desktop-shortcuts", window)

    # A server refusal is a sentence in the form.
    view.fields["title"].insert(0, "Bad")
    view.fields["address"].insert(0, "ftp://files.example.com")
    view.save_button.invoke()
    pump(window, lambda: "INVALID_ARGUMENT" in view.form_result.cget("text"), 15, "the refusal")
    app.close()
    admin.close()


# --- lots ----------------------------------------------------------------------------------------------------


def test_scanning_a_lot_inventorying_it_and_saving_its_report(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    view = main.lots
    main.notebook.select(view)
    pump(window, lambda: view.loads >= 1, 15, "the lots")

    reference = f"LOT-{uuid.uuid4().hex[:6].upper()}"
    view.new_lot["reference"].insert(0, reference)
    view.new_lot["supplier"].insert(0, "City hall")
    view.create_button.invoke()
    pump(window, lambda: view.open_id and view.lots[view.open_id].reference == reference, 15, "the new lot")
    lot_id = view.open_id
    assert view.lot_list.item(str(lot_id))["values"][2] == "Open: 0/0"

    # Three serials from the "scanner": typed into the field that keeps the focus, each ended by Enter.
    view.brand.set("Lenovo")
    view.model.set("ThinkPad T14")
    serials = [f"SN-{uuid.uuid4().hex[:8].upper()}" for _ in range(3)]
    for serial in serials:
        assert view.scan.focus_get() is view.scan
        view.scan.insert(0, serial)
        view.scan.event_generate("<Return>")
        window.update()
    pump(window, lambda: len(view.items) == 3 and not view.scanning, 15, "three scanned items")
    assert [view.item_list.item(i)["text"] for i in view.item_list.get_children()] == serials
    assert {i.entry_method for i in view.items.values()} == {lots_pb2.ENTRY_METHOD_SCAN}
    assert view.lot_list.item(str(lot_id))["values"][2] == "Open: 0/3"

    # The same serial again is refused with a sentence; one typed by hand is marked so.
    view.scan.insert(0, serials[0])
    view.scan.event_generate("<Return>")
    pump(window, lambda: "Not added" in view.scan_result.cget("text"), 15, "the duplicate refused")
    view.type_choice.set("Monitor")
    view.brand.set("Dell")
    view.model.set("P2419H")
    view.scan.insert(0, "MON-" + serials[0])
    view.manual_button.invoke()
    pump(window, lambda: len(view.items) == 4, 15, "the item added by hand")
    manual = next(i for i in view.items.values() if i.serial_number.startswith("MON-"))
    assert manual.entry_method == lots_pb2.ENTRY_METHOD_MANUAL and manual.brand == "Dell"

    # Brand completion from what was typed before.
    view.brand.set("Le")
    view.complete_brands()
    pump(window, lambda: "Lenovo" in view.brand.cget("values"), 15, "the brand suggestion")
    view.brand.set("Lenovo")
    view.model.set("")
    view.complete_models()
    pump(window, lambda: "ThinkPad T14" in view.model.cget("values"), 15, "the model suggestion")

    # Inventory: three refurbished at once, the monitor scrapped: the lot finishes.
    view.item_list.selection_set([str(i.id) for i in view.items.values() if i.serial_number in serials])
    view.operating_system.insert(0, "Debian 12")
    view.inventory_button.invoke()
    pump(window, lambda: view.lot_list.item(str(lot_id))["values"][2] == "Open: 3/4", 15, "three processed")
    view.item_list.selection_set(str(manual.id))
    view.state_choice.set("Scrapped")
    view.operating_system.delete(0, "end")
    view.inventory_button.invoke()
    pump(window, lambda: view.lot_list.item(str(lot_id))["values"][2] == "Finished (4)", 15, "the lot finished")
    assert view.status.cget("text").startswith("Finished on ") and "3 refurbished" in view.status.cget("text")
    first = view.items[int(view.item_list.get_children()[0])]
    assert (first.technician, first.operating_system) == ("Dana Desk", "Debian 12")

    # The PDF report, saved to a file.
    report = tmp_path / "report.pdf"
    view.save_report(str(report))
    pump(window, lambda: "Report saved" in view.scan_result.cget("text"), 30, "the report")
    assert report.read_bytes().startswith(b"%PDF")

    # The filter finds it by a serial number; "Open" hides it.
    view.query.set(serials[1][-5:])
    pump(window, lambda: view.lot_list.get_children() == (str(lot_id),), 15, "the lot found by serial")
    view.status_filter.set("Open")
    view.status_filter.event_generate("<<ComboboxSelected>>")
    pump(window, lambda: view.lot_list.get_children() == (), 15, "no open lot with it")
    view.status_filter.set("Any status")
    view.query.set("")
    pump(window, lambda: view.lot_list.exists(str(lot_id)), 15, "all lots again")
    view.lot_list.selection_set(str(lot_id))
    settle(window, 0.4)
    screen.screenshot("desktop-lots", window)
    window.geometry("800x560")
    settle(window, 0.8)
    screen.screenshot("desktop-lots-small-full", window)
    app.close()
    admin.close()


# --- agenda --------------------------------------------------------------------------------------------------


def test_agenda_week_with_events_and_holidays(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    view = main.agenda
    main.notebook.select(view)
    pump(window, lambda: view.loads >= 1, 15, "the agenda")

    # The week of 14 July 2026 (a Tuesday): France's national day is there, read-only.
    view.day = date(2026, 7, 13)
    loads = view.loads
    view.load()
    pump(window, lambda: view.loads > loads, 15, "the week of 13 July")
    names = "Mon Tue Wed Thu Fri Sat Sun".split()
    assert [h.cget("text") for h in view.headers] == [f"{n}\n{d}" for n, d in zip(names, range(13, 20), strict=True)]
    holiday = next(o for o in view.occurrences if o.kind == agenda_pb2.OCCURRENCE_KIND_HOLIDAY)
    assert holiday.title in view.texts()[1] and holiday.read_only
    view.select(holiday)
    assert "public holiday" in view.result.cget("text")

    # A weekly meeting, three times, created through the form.
    view.fields["title"].insert(0, "Team meeting")
    view._set("date", "2026-07-15")
    view._set("start", "10:00")
    view._set("end", "11:30")
    view.fields["location"].insert(0, "Room 2")
    view.colour.set("Green")
    view.repeat.set("Every week")
    view.fields["count"].insert(0, "3")
    view.save_button.invoke()
    pump(window, lambda: "Team meeting ↻" in view.texts()[2], 15, "the meeting in the week")
    assert "10:00 - 11:30" in view.texts()[2] and "Room 2" in view.texts()[2]
    assert view.save_button.cget("text") == "Save"

    # A two-day all-day event.
    view.new_button.invoke()
    view.fields["title"].insert(0, "Inventory days")
    view.colour.set("Orange")
    view._set("date", "2026-07-16")
    view.all_day_box.invoke()
    view._set("end", "2026-07-17")
    view.save_button.invoke()
    pump(window, lambda: "Inventory days" in view.texts()[4], 15, "the all-day event")
    assert "All day" in view.texts()[3] and "Inventory days" not in view.texts()[2]
    settle(window, 0.4)
    screen.screenshot("desktop-agenda", window)
    window.geometry("800x560")
    settle(window, 0.8)
    screen.screenshot("desktop-agenda-small-full", window)
    window.geometry("1280x800")

    # One day at a time.
    view.mode_buttons["day"].invoke()
    loads = view.loads
    pump(window, lambda: view.loads > loads and len(view.texts()) == 1, 15, "the day view")
    assert view.range_label.cget("text") == "Monday 13 July 2026" and "—" in view.texts()[0]
    view.next_button.invoke()
    view.next_button.invoke()
    pump(window, lambda: "Team meeting" in view.texts()[0], 15, "Wednesday in the day view")
    view.mode_buttons["week"].invoke()
    pump(window, lambda: len(view.texts()) == 7 and "Team meeting" in view.texts()[2], 15, "the week again")

    # The month: five weeks from Monday 29 June; the meeting on its three Wednesdays, the holiday on the 14th.
    view.mode_buttons["month"].invoke()
    pump(window, lambda: len(view.texts()) == 35 and "Team meeting" in view.texts()[16], 15, "the month")
    assert view.range_label.cget("text") == "July 2026"
    texts = view.texts()
    assert [i for i, text in enumerate(texts) if "Team meeting ↻" in text] == [16, 23, 30]
    assert "10:00 Team meeting" in texts[16] and holiday.title in texts[15]
    assert texts[0].startswith("29") and texts[2].startswith("1\n")
    settle(window, 0.4)
    screen.screenshot("desktop-agenda-month", window)
    view.next_button.invoke()
    pump(window, lambda: view.range_label.cget("text") == "August 2026" and view.texts()[0].startswith("27"), 15)
    assert [i for i, text in enumerate(view.texts()) if "Team meeting" in text] == [2]  # 29 July, the third
    view.previous_button.invoke()
    pump(window, lambda: view.range_label.cget("text") == "July 2026" and "Team" in view.texts()[16], 15)
    view.day = date(2026, 7, 13)  # the month's arrows moved it to the 1st
    loads = view.loads
    view.mode_buttons["week"].invoke()
    pump(window, lambda: view.loads > loads and "Team meeting" in view.texts()[2], 15, "the week again")

    # The repetition: next week yes, three weeks later no.
    view.next_button.invoke()
    pump(window, lambda: "Team meeting" in view.texts()[2], 15, "the next occurrence")
    view.next_button.invoke()
    view.next_button.invoke()
    pump(window, lambda: view.headers[0].cget("text") == "Mon\n03" and view.loads and "—" in view.texts()[2], 15)
    assert "Team meeting" not in view.texts()[2]
    view.previous_button.invoke()
    view.previous_button.invoke()
    view.previous_button.invoke()
    pump(window, lambda: "Team meeting" in view.texts()[2] and view.headers[0].cget("text") == "Mon\n13", 15)

    # Edit the meeting from the week (a click on it), then delete it (a second click confirms).
    meeting = next(o for o in view.occurrences if o.title == "Team meeting")
    view.select(meeting)
    pump(window, lambda: view.event is not None and view.event.title == "Team meeting", 15, "the event in the form")
    assert view.fields["start"].get() == "10:00" and view.colour.get() == "Green" and view.repeat.get() == "Every week"
    view._set("title", "Team meeting (moved)")
    view._set("start", "14:00")
    view._set("end", "15:00")
    view.save_button.invoke()
    pump(window, lambda: "14:00 - 15:00" in view.texts()[2], 15, "the edited meeting")
    assert "Team meeting (moved)" in view.texts()[2]
    view.delete_button.invoke()
    assert view.delete_button.cget("text") == "Confirm"
    view.delete_button.invoke()
    pump(window, lambda: "Team meeting" not in view.texts()[2], 15, "the meeting deleted")
    app.close()
    admin.close()


# --- an outage ----------------------------------------------------------------------------------------------


def test_outage_reconnects_catches_up_and_sends_the_outbox_once(
    window: ttk.Window, screen: VirtualDisplay, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with fresh_database("sqlite", tmp_path_factory.mktemp("outage")) as url:
        first = ServerProcess(url, **QUICK).start()
        second: ServerProcess | None = None
        try:
            port = first.address.rsplit(":", 1)[1]
            admin = admin_session(first.address, tmp_path)
            me, password = new_account(admin)
            ann = Other(first.address, admin, tmp_path)
            direct = chat_pb2.CreateDirectConversationRequest(user_id=me.id)
            conversation = ann.session.call(ann.session.chat.CreateDirectConversation, direct).conversation
            ann.say(conversation.id, "before the outage")
            admin.close()

            app = DesktopApp(window, first.address, resume=False)
            log_in(app, first.address, me.username, password)
            main = main_of(window, app)
            chat = main.chat
            pump(window, lambda: status(main) == "● Connected" and main.live, 20, "the live stream")
            pump(window, lambda: chat.list.exists(str(conversation.id)), 15, "the conversation")
            chat.list.selection_set(str(conversation.id))
            pump(window, lambda: "before the outage" in chat.message_text(), 15, "the conversation open")

            assert first.terminate() == 0
            pump(window, lambda: "Reconnecting" in status(main), 20, "the outage in the status bar")
            # Written during the outage: it waits in the outbox, greyed, and goes out once.
            chat.compose.insert(0, "sent while offline")
            chat.send_button.invoke()
            pump(window, lambda: "sending…" in chat.message_text() and chat.outbox, 5, "the pending message")
            pump(window, lambda: "1 message waiting" in str(main.status.detail.cget("text")), 20, "the outbox count")
            settle(window, 0.3)
            screen.screenshot("desktop-reconnecting", window)

            second = ServerProcess(url, WORKSPACE_GRPC_PORT=port, **QUICK).start()
            assert second.address == first.address
            # Ann writes while the app is still reconnecting: it must catch up on these, once each.
            pump(window, lambda: _try_login(ann.session, ann.username, ann.password), 30, "the restarted server")
            for i in range(3):
                ann.say(conversation.id, f"during the outage {i}")
            pump(window, lambda: status(main) == "● Connected" and main.live, 60, "the app to reconnect by itself")
            pump(window, lambda: not chat.outbox, 20, "the outbox to be sent")
            pump(window, lambda: "during the outage 2" in chat.message_text(), 20, "the messages missed")
            text = chat.message_text()
            for needle in ("before the outage", "during the outage 0", "during the outage 1", "during the outage 2"):
                assert count(text, needle) == 1, needle
            assert count(text, "sent while offline") == 1 and "sending…" not in text
            page = ann.session.call(
                ann.session.chat.ListMessages, chat_pb2.ListMessagesRequest(conversation_id=conversation.id)
            ).messages
            assert [m.text for m in page].count("sent while offline") == 1
            assert len(chat.messages) == len(page) == 5
            settle(window, 0.3)
            screen.screenshot("desktop-after-outage", window)
            app.close()
            ann.close()
        finally:
            for process in (first, second):
                if process is not None:
                    process.terminate()


def _try_login(session: Session, username: str, password: str) -> bool:
    try:
        session.login(username, password, timeout=2)
    except Unreachable:
        return False
    return True


def test_the_app_connects_with_tls_when_told(window: ttk.Window, tmp_path: Path) -> None:
    """`python -m desktop --ca-file ca.pem`: the app trusts that CA and talks TLS to a TLS-only server."""
    authority = make_authority(tmp_path / "tls")
    with fresh_database("sqlite", tmp_path) as url:
        server = ServerProcess(
            url, WORKSPACE_TLS_CERT_FILE=str(authority.chain), WORKSPACE_TLS_KEY_FILE=str(authority.server_key)
        ).start()
        try:
            app = DesktopApp(window, server.address, resume=False, session_options={"ca_file": str(authority.ca)})
            log_in(app, server.address, "admin", ADMIN_PASSWORD)
            main = main_of(window, app)
            pump(window, lambda: status(main) == "● Connected" and main.live, 30, "the live stream over TLS")
        finally:
            assert server.terminate() == 0


def test_unfocused_window_counts_new_messages_in_its_title_and_notifies(
    window: ttk.Window, sqlite_server: ServerProcess, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin, "Dana")
    ann = Other(address, admin, tmp_path)
    admin.close()
    shown: list[tuple[str, str]] = []
    app = DesktopApp(window, address, resume=False, notifier=lambda title, body: shown.append((title, body)))
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    chat = main.chat
    pump(window, lambda: main.live, 20, "the live stream")
    assert window.title() == "Workspace — Dana"
    group = chat_pb2.CreateGroupConversationRequest(name="Team room", member_ids=[me.id])
    room = ann.session.call(ann.session.chat.CreateGroupConversation, group).conversation
    pump(window, lambda: room.id in chat.conversations, 15, "the new conversation")

    # The window loses focus; Ann writes: a badge in the title, and a notification.
    window.event_generate("<FocusOut>")
    ann.say(room.id, "Are you there?")
    pump(window, lambda: window.title() == "(1) Workspace — Dana", 15, "the badge")
    assert shown == [("Ann Example in Team room", "Are you there?")]
    ann.say(room.id, "Hello?")
    pump(window, lambda: window.title() == "(2) Workspace — Dana", 15, "the second message in the badge")
    assert [body for _, body in shown] == ["Are you there?", "Hello?"]

    # Back to the window: the badge goes.
    window.event_generate("<FocusIn>")
    assert window.title() == "Workspace — Dana"

    # A message while the window has focus: no badge, no notification.
    ann.say(room.id, "There you are")
    pump(window, lambda: row(main, room.id).get("last") == "There you are", 15, "the message in the list")
    settle(window, 0.3)
    assert window.title() == "Workspace — Dana" and len(shown) == 2

    # Her own messages never count, focused or not.
    chat.open(room.id)
    pump(window, lambda: "There you are" in chat.message_text(), 15, "the conversation")
    window.event_generate("<FocusOut>")
    chat.compose.insert(0, "Yes, here")
    chat.send_button.invoke()
    pump(window, lambda: "Yes, here" in chat.message_text() and not chat.outbox, 15, "her message sent")
    settle(window, 0.3)
    assert window.title() == "Workspace — Dana" and len(shown) == 2

    # Logged out: the title is the app's alone.
    main.settings.logout_button.invoke()
    pump(window, lambda: app.login is not None, 10, "the login screen")
    assert window.title() == "Workspace"
    ann.close()
    app.close()


def test_notifications_use_notify_send_when_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.notify import notify_send

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    notify_send("Ann Example", "Are you there?")  # no notify-send: nothing happens, nothing fails
    tool = tmp_path / "bin" / "notify-send"
    tool.parent.mkdir()
    said = tmp_path / "said.json"
    tool.write_text(f'#!{sys.executable}\nimport json, sys\nopen({str(said)!r}, "w").write(json.dumps(sys.argv[1:]))\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tool.parent))
    notify_send("Ann Example", "Are you there?")
    deadline = time.monotonic() + 15
    while not (said.exists() and said.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    arguments = json.loads(said.read_text())
    assert arguments[-3:] == ["--", "Ann Example", "Are you there?"] and "--app-name=Workspace" in arguments
