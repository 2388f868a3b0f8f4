"""What the desktop app's GUI tests share: the screen, a server, a root window, the person on the other end.

Test modules take the fixtures by importing them (``from .desktop_app import screen, sqlite_server, window``):
each module gets its own server and display share.
"""

from __future__ import annotations

import threading
import tkinter as tk
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ttkbootstrap as ttk
from desktop.app import DesktopApp
from desktop.window import MainWindow
from workspace.v1 import chat_pb2, presence_pb2, users_pb2
from workspace_client import FileTokenStore, Session, event_stream

from .databases import fresh_database
from .desktop import VirtualDisplay, close_root, new_root, pump, virtual_display
from .servers import ADMIN_PASSWORD, ServerProcess

QUICK = {"WORKSPACE_PRESENCE_GRACE_SECONDS": "0.5", "WORKSPACE_STREAM_HEARTBEAT_SECONDS": "2"}


@pytest.fixture(scope="module")
def screen() -> Iterator[VirtualDisplay]:
    yield from virtual_display()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("desktop")) as url:
        process = ServerProcess(url, **QUICK).start()
        yield process
        assert process.terminate() == 0, process.log_text()


@pytest.fixture
def window(screen: VirtualDisplay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ttk.Window]:
    monkeypatch.setenv("WORKSPACE_CLIENT_CONFIG_DIR", str(tmp_path / "config"))
    root = new_root("Workspace")
    yield root  # type: ignore[misc]
    close_root(root)


class Other:
    """The other person in the chat: a script on the client library, with its own event stream."""

    def __init__(self, address: str, admin: Session, folder: Path, name: str = "Ann Example") -> None:
        self.username, self.password = f"ann-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        request = users_pb2.CreateUserRequest(
            user=users_pb2.User(username=self.username, display_name=name), password=self.password
        )
        self.user = admin.call(admin.users.CreateUser, request).user
        self.session = Session(address, token_store=FileTokenStore(folder / self.username))
        self.session.login(self.username, self.password)
        self.events: list[chat_pb2.Event] = []
        self._lock = threading.Lock()
        self.stream = event_stream(self.session, on_item=self._got)

    def _got(self, response: chat_pb2.StreamEventsResponse) -> None:
        with self._lock:
            self.events.append(response.event)

    def seen(self, kind: str) -> list[Any]:
        with self._lock:
            return [getattr(e, kind) for e in self.events if e.WhichOneof("payload") == kind]

    def say(self, conversation_id: int, text: str) -> chat_pb2.Message:
        request = chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text, request_id=uuid.uuid4().hex)
        return self.session.call(self.session.chat.SendMessage, request).message

    def type(self, conversation_id: int) -> None:
        request = presence_pb2.SendTypingRequest(conversation_id=conversation_id)
        self.session.call(self.session.presence.SendTyping, request)

    def close(self) -> None:
        self.stream.stop()
        self.session.close()


def new_account(admin: Session, name: str = "Dana Desk") -> tuple[users_pb2.User, str]:
    password = f"pw-{uuid.uuid4().hex}"
    user = users_pb2.User(username=f"dana-{uuid.uuid4().hex[:8]}", display_name=name)
    user = admin.call(admin.users.CreateUser, users_pb2.CreateUserRequest(user=user, password=password)).user
    return user, password


def admin_session(address: str, folder: Path) -> Session:
    admin = Session(address, token_store=FileTokenStore(folder / "admin"))
    admin.login("admin", ADMIN_PASSWORD)
    return admin


def log_in(app: DesktopApp, address: str, username: str, password: str, stay: bool = True) -> None:
    assert app.login is not None
    entries = app.login.entries
    entries["server"].delete(0, "end")
    entries["server"].insert(0, address)
    entries["username"].delete(0, "end")
    entries["username"].insert(0, username)
    entries["password"].insert(0, password)
    if app.login.stay.get() != stay:
        app.login.stay_box.invoke()
    app.login.button.invoke()


def main_of(root: tk.Misc, app: DesktopApp) -> MainWindow:
    pump(root, lambda: app.main is not None, 20, "the main window")
    assert app.main is not None
    return app.main


def status(main: MainWindow) -> str:
    return str(main.status.state.cget("text"))


def row(main: MainWindow, conversation_id: int) -> dict[str, str]:
    tree = main.chat.list
    if not tree.exists(str(conversation_id)):
        return {}
    item = tree.item(str(conversation_id))
    return {"name": item["text"].strip(), "last": item["values"][0], "unread": str(item["values"][1])}


def count(text: str, needle: str) -> int:
    return text.count(needle)
