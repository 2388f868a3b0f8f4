"""The desktop app's tools, under Xvfb against a real server: shortcuts reordered with the mouse, lot scans that
wait while the server is unreachable, and presence that turns away when the person leaves the app idle."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import ttkbootstrap as ttk
from desktop.app import DesktopApp
from desktop.idle import IdleWatcher
from desktop.lots import waiting_file
from workspace.v1 import lots_pb2, lots_pb2_grpc, presence_pb2, shortcuts_pb2, shortcuts_pb2_grpc
from workspace_client import FileTokenStore, Session, Unreachable

from .databases import fresh_database
from .desktop import VirtualDisplay, close_root, new_root, pump, settle
from .desktop_app import (  # noqa: F401 (fixtures are used by name)
    QUICK,
    admin_session,
    log_in,
    main_of,
    new_account,
    screen,
    sqlite_server,
    window,
)
from .servers import ADMIN_PASSWORD, ServerProcess

pytestmark = pytest.mark.timeout(300)


def _own_session(address: str, username: str, password: str, folder: Path) -> Session:
    """The same person on another device (the client library), to see what the server has."""
    session = Session(address, token_store=FileTokenStore(folder / f"other-{username}"))
    session.login(username, password)
    return session


# --- shortcuts ----------------------------------------------------------------------------------------------


def _drag(tree: ttk.Treeview, row: str, to: str, *, release: bool = True) -> None:
    """Press on ``row``, move the mouse in a few steps onto ``to``, and (unless told not to) release there."""
    x, y, _w, h = tree.bbox(row)
    _x, to_y, _w, to_h = tree.bbox(to)
    x, y, to_y = x + 40, y + h // 2, to_y + to_h // 2
    tree.event_generate("<ButtonPress-1>", x=x, y=y)
    steps = 4
    for step in range(1, steps + 1):
        tree.event_generate("<B1-Motion>", x=x, y=y + (to_y - y) * step // steps, state=0x100)
        tree.update()
    if release:
        tree.event_generate("<ButtonRelease-1>", x=x, y=to_y, state=0x100)


def test_shortcuts_and_categories_reordered_by_dragging(
    window: ttk.Window,
    sqlite_server: ServerProcess,
    screen: VirtualDisplay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two presses in a row on one row are a double click, which opens the shortcut: not in a browser here.
    monkeypatch.setattr("desktop.shortcuts.webbrowser.open", lambda url: None)
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)
    mine = _own_session(address, me.username, password, tmp_path)
    stub = shortcuts_pb2_grpc.ShortcutsServiceStub(mine.channel)
    made = {}
    for name in ("Work", "Reading"):
        request = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name=name))
        made[name] = mine.call(stub.CreateCategory, request).category.id
    for title, category in (("Wiki", 0), ("Tickets", 0), ("Mail", 0), ("Docs", made["Work"])):
        shortcut = shortcuts_pb2.Shortcut(title=title, url=f"https://{title.lower()}.example.com", category_id=category)
        mine.call(stub.CreateShortcut, shortcuts_pb2.CreateShortcutRequest(shortcut=shortcut))

    def on_server() -> list[tuple[str, int]]:
        found = mine.call(stub.ListShortcuts, shortcuts_pb2.ListShortcutsRequest()).shortcuts
        return [(s.title, s.category_id) for s in found]

    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    view = main.shortcuts
    main.notebook.select(view)
    tree = view.list

    def titles() -> list[str]:
        return [tree.item(i)["text"].strip() for i in tree.get_children()]

    def moved(order: list[str]) -> None:
        """Waits for the list reloaded after a drop, in that order."""
        loads = view.loads
        pump(window, lambda: view.loads > loads and titles() == order, 15, f"the list reloaded as {order}")

    # In "All shortcuts": the uncategorised ones first, then Work's.
    everything = ["Wiki", "Tickets", "Mail", "Docs"]
    pump(window, lambda: titles() == everything, 15, "the shortcuts")
    window.update()
    rows = tree.get_children()

    # A press that hardly moves is a click: it selects, and nothing moves.
    x, y, _w, h = tree.bbox(rows[2])
    tree.event_generate("<ButtonPress-1>", x=x + 40, y=y + h // 2)
    tree.event_generate("<B1-Motion>", x=x + 42, y=y + h // 2 - 2, state=0x100)
    tree.event_generate("<ButtonRelease-1>", x=x + 42, y=y + h // 2 - 2)
    assert tree.selection() == (rows[2],) and titles() == everything

    # During a drag the row follows the pointer; Escape puts it back, and the release then does nothing.
    _drag(tree, rows[2], rows[0], release=False)
    assert titles() == ["Mail", "Wiki", "Tickets", "Docs"]
    settle(window, 0.3)
    screen.screenshot("desktop-shortcuts-dragging", window)
    tree.event_generate("<Escape>")
    tree.event_generate("<ButtonRelease-1>", x=40, y=10, state=0x100)
    assert titles() == everything
    settle(window, 0.2)
    assert [title for title, _ in on_server()] == everything

    # The third dragged onto the first: it lands on top, at once on screen, then on the server and reloaded.
    _drag(tree, rows[2], rows[0])
    assert titles() == ["Mail", "Wiki", "Tickets", "Docs"]
    moved(["Mail", "Wiki", "Tickets", "Docs"])
    assert on_server() == [("Mail", 0), ("Wiki", 0), ("Tickets", 0), ("Docs", made["Work"])]
    # The top one dragged down onto Docs: below it, so into Work (its Category column says so while dragging).
    _drag(tree, tree.get_children()[0], tree.get_children()[3], release=False)
    assert tree.set(tree.get_children()[3], "category") == "Work"
    tree.event_generate("<ButtonRelease-1>", x=40, y=10, state=0x100)
    moved(["Wiki", "Tickets", "Docs", "Mail"])
    assert on_server() == [("Wiki", 0), ("Tickets", 0), ("Docs", made["Work"]), ("Mail", made["Work"])]

    # Categories reorder the same way; "All shortcuts" and "Not in a category" stay on top.
    categories = view.category_list
    work, reading = str(made["Work"]), str(made["Reading"])
    assert categories.get_children() == ("all", "none", work, reading)
    _drag(categories, reading, "all")
    assert categories.get_children() == ("all", "none", reading, work)
    pump(window, lambda: [c.name for c in view.categories] == ["Reading", "Work"], 15, "the categories moved")
    listed = mine.call(stub.ListCategories, shortcuts_pb2.ListCategoriesRequest()).categories
    assert [c.name for c in listed] == ["Reading", "Work"]
    app.close()
    mine.close()
    admin.close()


# --- lots ---------------------------------------------------------------------------------------------------


def _items(session: Session, lot_id: int) -> list[str]:
    stub = lots_pb2_grpc.LotsServiceStub(session.channel)
    reply = session.call(stub.ListItems, lots_pb2.ListItemsRequest(lot_id=lot_id, page_size=200))
    return [item.serial_number for item in reply.items]


def _add(session: Session, lot_id: int, serial: str) -> None:
    stub = lots_pb2_grpc.LotsServiceStub(session.channel)
    item = lots_pb2.NewLotItem(
        serial_number=serial, type=lots_pb2.ITEM_TYPE_LAPTOP, entry_method=lots_pb2.ENTRY_METHOD_MANUAL
    )
    session.call(stub.AddItems, lots_pb2.AddItemsRequest(lot_id=lot_id, items=[item]))


def test_scans_wait_while_the_server_is_away_and_go_once_it_is_back_even_after_a_restart(
    window: ttk.Window,
    screen: VirtualDisplay,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_database("sqlite", tmp_path_factory.mktemp("scans")) as url:
        first = ServerProcess(url, **QUICK).start()
        second: ServerProcess | None = None
        third: ServerProcess | None = None
        try:
            address, port = first.address, first.address.rsplit(":", 1)[1]
            admin = admin_session(address, tmp_path)
            me, password = new_account(admin)
            # A lot that already has a serial: scanning it into ours is a real refusal, even after the outage.
            stub = lots_pb2_grpc.LotsServiceStub(admin.channel)
            other = lots_pb2.Lot(
                reference="OTHER-1", supplier="Elsewhere", received_date={"year": 2026, "month": 1, "day": 5}
            )
            other = admin.call(stub.CreateLot, lots_pb2.CreateLotRequest(lot=other)).lot
            taken = f"TAKEN-{uuid.uuid4().hex[:6].upper()}"
            _add(admin, other.id, taken)
            admin.close()

            app = DesktopApp(window, address, resume=False)
            log_in(app, address, me.username, password)
            main = main_of(window, app)
            view = main.lots
            main.notebook.select(view)
            pump(window, lambda: view.loads >= 1 and main.live, 20, "the lots and the live stream")
            view.new_lot["reference"].insert(0, "LOT-OFFLINE")
            view.new_lot["supplier"].insert(0, "City hall")
            view.create_button.invoke()
            pump(window, lambda: view.open_id and view.lots[view.open_id].reference == "LOT-OFFLINE", 15, "the lot")
            lot_id = view.open_id

            assert first.terminate() == 0
            serials = [f"SN-{uuid.uuid4().hex[:8].upper()}" for _ in range(3)]
            scanned = [serials[0], taken, *serials[1:]]  # the refused one between the others
            for serial in scanned:
                view.scan.insert(0, serial)
                view.scan.event_generate("<Return>")
                window.update()
                assert view.scan.focus_get() is view.scan  # scanning goes on
            pump(window, lambda: view.offline and not view.scanning, 20, "the server found away")
            assert "4 scans waiting to be sent" in view.waiting.cget("text")
            rows = view.item_list.get_children()
            assert [view.item_list.item(r)["text"] for r in rows] == scanned
            assert {view.item_list.item(r)["values"][3] for r in rows} == {"waiting"}
            assert not view.items
            saved = json.loads(waiting_file(app.session).read_text())["scans"]  # closing the app would lose none
            assert [s["serial"] for s in saved] == scanned
            settle(window, 0.3)
            screen.screenshot("desktop-lots-offline", window)

            # The server comes back; the first scan had in fact landed before its answer was lost (played here by
            # adding it with the library before the app retries): the retry counts it as added.
            held = view.connection_back
            monkeypatch.setattr(view, "connection_back", lambda: None)
            pump(window, lambda: view.offline and not view.scanning, 20, "no retry on its way")
            view.after_cancel(view._after.pop("retry"))
            second = ServerProcess(url, WORKSPACE_GRPC_PORT=port, **QUICK).start()
            assert second.address == address
            admin = Session(address, token_store=FileTokenStore(tmp_path / "admin-again"))
            pump(window, lambda: _try_login(admin, "admin", ADMIN_PASSWORD), 30, "the restarted server")
            _add(admin, lot_id, serials[0])
            held()
            pump(window, lambda: not view.scans and not view.scanning, 30, "the waiting scans sent")
            assert sorted(_items(admin, lot_id)) == sorted(serials)  # each once, the refused one not at all
            assert [view.item_list.item(r)["text"] for r in view.item_list.get_children()] == scanned
            assert sorted(i.serial_number for i in view.items.values()) == sorted(serials)
            refused = view.item_list.get_children()[1]
            assert view.item_list.item(refused)["values"][3] == "not added"
            assert "already in lot 'OTHER-1'" in view.scan_result.cget("text")  # not hidden by the later "Added"
            view.scan_result.configure(text="")
            view.item_list.selection_set(refused)  # the row says why, when selected
            pump(window, lambda: "already in lot 'OTHER-1'" in view.scan_result.cget("text"), 5, "the reason")
            assert not view.waiting.winfo_manager() and not waiting_file(app.session).exists()
            assert view.lot_list.item(str(lot_id))["values"][2] == "Open: 0/3"
            settle(window, 0.3)
            screen.screenshot("desktop-lots-back-online", window)

            # Another outage, and the app is closed with a scan waiting: the next run sends it.
            assert second.terminate() == 0
            late = f"SN-{uuid.uuid4().hex[:8].upper()}"
            view.scan.insert(0, late)
            view.scan.event_generate("<Return>")
            pump(window, lambda: view.offline and not view.scanning, 20, "the second outage")
            app.close()
            third = ServerProcess(url, WORKSPACE_GRPC_PORT=port, **QUICK).start()
            root = new_root("Workspace again")
            again = DesktopApp(root, address, resume=False)
            log_in(again, address, me.username, password)
            lots = main_of(root, again).lots
            pump(root, lambda: not lots.scans and not lots.scanning and lots.loads >= 1, 30, "the kept scan sent")
            assert sorted(_items(admin, lot_id)) == sorted([*serials, late])
            assert not waiting_file(again.session).exists()
            again.close()
            close_root(root)
            admin.close()
        finally:
            for process in (first, second, third):
                if process is not None:
                    process.terminate()


def _try_login(session: Session, username: str, password: str) -> bool:
    try:
        session.login(username, password, timeout=2)
    except Unreachable:
        return False
    return True


# --- presence -------------------------------------------------------------------------------------------------


def test_away_when_idle_and_online_again_at_the_next_input(
    window: ttk.Window, sqlite_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSPACE_DESKTOP_IDLE_MINUTES", "2.5")
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin)

    def state() -> int:
        request = presence_pb2.GetPresenceRequest(user_ids=[me.id])
        return admin.call(admin.presence.GetPresence, request).presences[0].state

    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    pump(window, lambda: main.live, 20, "the live stream")
    assert state() == presence_pb2.PRESENCE_STATE_ONLINE
    assert main.idle.idle_seconds == 150  # from the environment; a test cannot wait that long:
    main.idle.stop()
    assert app.session is not None
    idle = main.idle = IdleWatcher(main, app.controller, app.session, idle_seconds=0.5, check_ms=100)
    idle.start()
    pump(window, lambda: idle.told is True, 15, "away after half a second without input")
    assert state() == presence_pb2.PRESENCE_STATE_AWAY
    main.chat.event_generate("<Motion>", x=20, y=20)
    pump(window, lambda: idle.told is False, 15, "online again at the next input")
    assert state() == presence_pb2.PRESENCE_STATE_ONLINE
    app.close()
    admin.close()
