"""The monitoring dashboard, in-process under a real Xvfb, against a real server.

The GUI tests run on SQLite only: the dashboard reads the same RPCs whatever the database (the server's
tests cover both), and each GUI story costs tens of seconds of a 2-core machine's time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ttkbootstrap as ttk
from dashboard.app import DashboardApp
from dashboard.cards import CardsView
from dashboard.config import Thresholds
from dashboard.figures import CardValue, cards
from dashboard.settings_dialog import ThresholdsDialog
from dashboard.window import MainWindow
from workspace.v1 import auth_pb2, chat_pb2, monitoring_pb2, users_pb2
from workspace_client import FileTokenStore, NotSignedIn, Session, StreamState, Unreachable, event_stream

from .certificates import make_authority
from .databases import fresh_database
from .desktop import VirtualDisplay, close_root, new_root, pump, settle, virtual_display
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def screen() -> Iterator[VirtualDisplay]:
    yield from virtual_display()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("dashboard")) as url:
        process = ServerProcess(url).start()
        yield process
        assert process.terminate() == 0, process.log_text()


@pytest.fixture
def window(screen: VirtualDisplay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ttk.Window]:
    monkeypatch.setenv("WORKSPACE_CLIENT_CONFIG_DIR", str(tmp_path / "config"))
    root = new_root("Workspace dashboard")
    yield root  # type: ignore[misc]
    close_root(root)


def open_dashboard(root: ttk.Window, address: str, username: str = "admin", password: str = ADMIN_PASSWORD):  # type: ignore[no-untyped-def]
    app = DashboardApp(root, address, thresholds=Thresholds(), resume=False)
    log_in(root, app, address, username, password)
    return app


def log_in(root: ttk.Window, app: DashboardApp, address: str, username: str, password: str) -> None:
    assert app.login is not None
    app.login.entries["server"].delete(0, "end")
    app.login.entries["server"].insert(0, address)
    app.login.entries["username"].delete(0, "end")
    app.login.entries["username"].insert(0, username)
    app.login.entries["password"].insert(0, password)
    app.login.button.invoke()


def main_of(root: ttk.Window, app: DashboardApp) -> MainWindow:
    pump(root, lambda: app.main is not None, 20, "the main window")
    assert app.main is not None
    return app.main


def status(main: MainWindow) -> str:
    return main.status.state.cget("text")


def card(main: MainWindow, key: str) -> CardValue:
    widget = main.cards.cards[key]
    return CardValue(widget.value.cget("text"), widget.detail.cget("text"), widget.level)


class Person:
    """Someone using the desktop app, through the client library: logged in, streaming, chatting."""

    def __init__(self, address: str, admin: Session, folder: Path) -> None:
        self.username, password = f"ann-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        request = users_pb2.CreateUserRequest(
            user=users_pb2.User(username=self.username, display_name="Ann Example"), password=password
        )
        self.user = admin.call(admin.users.CreateUser, request).user
        self.session = Session(address, token_store=FileTokenStore(folder / self.username))
        self.session.login(self.username, password)
        self.stream = event_stream(self.session, on_item=lambda item: None).start()
        group = chat_pb2.CreateGroupConversationRequest(name="load")
        self.conversation = self.session.call(self.session.chat.CreateGroupConversation, group).conversation

    def chat(self, messages: int) -> None:
        for i in range(messages):
            request = chat_pb2.SendMessageRequest(
                conversation_id=self.conversation.id, text=f"message {i}", request_id=uuid.uuid4().hex
            )
            self.session.call(self.session.chat.SendMessage, request)
            self.session.call(self.session.auth.WhoAmI, auth_pb2.WhoAmIRequest())

    def report(self, message: str) -> monitoring_pb2.ClientIssue:
        issue = monitoring_pb2.ClientIssue(
            kind=monitoring_pb2.CLIENT_ISSUE_KIND_ERROR,
            message=message,
            client_version="workspace-desktop 0.1.0",
            platform="Debian 12",
            context="Traceback (most recent call last): ...",
        )
        request = monitoring_pb2.ReportClientIssueRequest(issue=issue)
        return self.session.call(self.session.monitoring.ReportClientIssue, request).issue

    def close(self) -> None:
        self.stream.stop()
        self.session.close()


def in_background(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# --- login ------------------------------------------------------------------------------------------------


def test_login_says_clearly_why_it_failed(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    app = DashboardApp(window, sqlite_server.address, thresholds=Thresholds(), resume=False)

    def message() -> str:
        assert app.login is not None
        return app.login.message.cget("text")

    log_in(window, app, sqlite_server.address, "admin", "not-the-password")
    pump(window, lambda: "Wrong username or password" in message(), 15, "the wrong-password message")

    admin = Session(sqlite_server.address, token_store=FileTokenStore(tmp_path / "admin"))
    admin.login("admin", ADMIN_PASSWORD)
    # An ordinary account may not watch the system.
    bob = users_pb2.User(username=f"bob-{uuid.uuid4().hex[:6]}")
    bob = admin.call(admin.users.CreateUser, users_pb2.CreateUserRequest(user=bob, password="pw-12345678")).user
    log_in(window, app, sqlite_server.address, bob.username, "pw-12345678")
    pump(window, lambda: "not an administrator" in message(), 15, "the not-an-administrator message")
    assert app.main is None
    settle(window, 0.3)
    screen.screenshot("dashboard-login-refused", window)

    log_in(window, app, "127.0.0.1:1", "admin", ADMIN_PASSWORD)
    pump(window, lambda: "Cannot reach the server at 127.0.0.1:1" in message(), 30, "the unreachable message")

    for _ in range(6):  # the account is throttled after repeated failures
        log_in(window, app, sqlite_server.address, bob.username, "wrong-password")
        pump(window, lambda: str(app.login.button.cget("state")) == "normal", 15, "the answer")
        if "Too many failed attempts" in message():
            break
    assert "Too many failed attempts" in message() and "Try again in" in message()
    admin.close()


# --- the whole story --------------------------------------------------------------------------------------


def test_admin_watches_load_activity_and_issues_live(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    app = open_dashboard(window, sqlite_server.address)
    main = main_of(window, app)
    pump(window, lambda: status(main).startswith("● Live"), 20, "the first figures")
    assert card(main, "version").value != "—" and card(main, "replicas").value == "1 live"
    assert card(main, "database").level == "ok" and card(main, "database").value.endswith(" ms")

    admin = Session(sqlite_server.address, token_store=FileTokenStore(tmp_path / "admin"))
    admin.login("admin", ADMIN_PASSWORD)
    person = Person(sqlite_server.address, admin, tmp_path)
    load = in_background(lambda: person.chat(40))
    try:
        pump(window, lambda: float(card(main, "messages").value) >= 20, 60, "messages per minute to rise")
        pump(window, lambda: int(card(main, "people").value) >= 1, 30, "a connected person")
        pump(window, lambda: int(card(main, "streams").value) >= 3, 30, "open streams")  # events + stats + activity
        load.join(60)
        history = main.history
        assert max(v for v in history.series[("messages", "messages/min")] if v == v) >= 20
        assert ("calls", "Chat.SendMessage") in history.series and ("p99", "Chat.SendMessage") in history.series
        assert any(kind == "cpu" for kind, _ in history.series) and any(kind == "memory" for kind, _ in history.series)
        ticks = main.ticks
        pump(window, lambda: main.ticks >= ticks + 2, 15, "more ticks")
        assert main.charts.full_draws >= 1 and main.charts.blits >= 1  # most ticks only blit the lines
        settle(window, 0.5)
        screen.screenshot("dashboard-1280x800-charts", window)

        # Another client's action appears in the live feed, newest first.
        main.notebook.select(main.activity)
        issue = person.report("The app froze while sending a file")
        pump(
            window,
            lambda: any(r["action"] == "client_issue.report" and r["person"] == person.username for r in rows(main)),
            15,
            "the report in the activity feed",
        )
        assert rows(main)[0]["action"] == "client_issue.report"
        ids = [int(i) for i in main.activity.table.tree.get_children()]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))

        # Filters: one person, one action.
        main.activity.person_entry.insert(0, person.username[:6])
        pump(window, lambda: rows(main) and all(r["person"] == person.username for r in rows(main)), 5, "the filter")
        main.activity.action.set("message.send")
        pump(window, lambda: rows(main) and all(r["action"] == "message.send" for r in rows(main)), 5, "action filter")
        main.activity.action.set("(every action)")
        main.activity.person_entry.delete(0, "end")

        # Paused, the feed holds new entries; resumed, they are all there.
        main.activity.pause_button.invoke()
        shown = len(rows(main))
        person.chat(2)
        pump(window, lambda: main.activity.held >= 2, 15, "entries held while paused")
        assert len(rows(main)) == shown and "2 new" in main.activity.note.cget("text")
        main.activity.pause_button.invoke()
        assert len(rows(main)) == shown + 2
        settle(window, 0.3)
        screen.screenshot("dashboard-1280x800-activity", window)

        # The issue is listed, readable, and can be marked resolved.
        main.notebook.select(main.issues)
        pump(window, lambda: str(issue.id) in main.issues.table.tree.get_children(), 15, "the issue in the list")
        main.issues.table.select(str(issue.id))
        window.update()
        details = main.issues.text.get("1.0", "end")
        assert "The app froze while sending a file" in details and "Debian 12" in details and person.username in details
        main.issues.resolve_button.invoke()
        pump(window, lambda: str(issue.id) not in main.issues.table.tree.get_children(), 15, "the issue to go")
        main.issues.show_resolved.set(True)
        main.issues.refresh()
        pump(
            window,
            lambda: any(r["id"] == str(issue.id) and r["status"].startswith("resolved") for r in issue_rows(main)),
            15,
            "the resolved issue",
        )
        main.issues.table.select(str(issue.id))
        settle(window, 0.3)
        screen.screenshot("dashboard-1280x800-issues", window)

        # Connected people, with presence and since when.
        main.notebook.select(main.people)
        pump(
            window,
            lambda: any(r["username"] == person.username and r["state"] == "online" for r in main.people.table.rows()),
            15,
            "the person online",
        )
        (row,) = [r for r in main.people.table.rows() if r["username"] == person.username]
        assert row["name"] == "Ann Example" and row["since"][:2] == "20"

        # Accounts: create one, disable it, enable it again.
        main.notebook.select(main.accounts)
        name = f"carol-{uuid.uuid4().hex[:6]}"
        main.accounts.username.set(name)
        main.accounts.display_name.set("Carol")
        main.accounts.password.set("pw-carol-12345")
        main.accounts.create_button.invoke()
        pump(window, lambda: account(main, name) is not None, 15, "the new account")
        assert account(main, name)["state"] == "active" and f"Created {name}" in main.accounts.note.cget("text")
        main.accounts.table.select(str(account(main, name)["id"]))
        window.update()
        assert main.accounts.toggle_button.cget("text") == "Disable"
        main.accounts.toggle_button.invoke()
        pump(window, lambda: (account(main, name) or {}).get("state") == "disabled", 15, "the account disabled")
        main.accounts.table.select(str(account(main, name)["id"]))
        window.update()
        assert main.accounts.toggle_button.cget("text") == "Enable"
        main.accounts.toggle_button.invoke()
        pump(window, lambda: (account(main, name) or {}).get("state") == "active", 15, "the account enabled")
        # A new password for Carol: her session ends, the new password works.
        carol = Session(sqlite_server.address, token_store=FileTokenStore(tmp_path / "carol"))
        carol.login(name, "pw-carol-12345")
        main.accounts.table.select(str(account(main, name)["id"]))
        window.update()
        main.accounts.new_password.set("pw-carol-reset-1")
        main.accounts.reset_button.invoke()
        pump(window, lambda: "New password set" in main.accounts.note.cget("text"), 15, "the password reset")
        assert "1 session(s) ended" in main.accounts.note.cget("text") and main.accounts.new_password.get() == ""
        again = Session(sqlite_server.address, token_store=FileTokenStore(tmp_path / "carol-again"))
        again.login(name, "pw-carol-reset-1")
        with pytest.raises(NotSignedIn):  # her old session is over
            carol.call(carol.auth.WhoAmI, auth_pb2.WhoAmIRequest())
        main.accounts.username.set(name)
        main.accounts.password.set("pw-carol-12345")
        main.accounts.create_button.invoke()
        pump(window, lambda: "ALREADY_EXISTS" in main.accounts.note.cget("text"), 15, "the duplicate refused")
        settle(window, 0.3)
        screen.screenshot("dashboard-1280x800-accounts", window)
        main.notebook.select(main.people)
        window.geometry("900x600")
        settle(window, 1.0)
        screen.screenshot("dashboard-900x600-people", window)
        window.geometry("1280x800")

        # The same window, small.
        main.notebook.select(main.charts)
        window.geometry("900x600")
        settle(window, 1.5)
        screen.screenshot("dashboard-900x600-charts", window)
        window.geometry("1280x800")
        settle(window, 0.5)
    finally:
        person.close()
        admin.close()
    app.logout()
    pump(window, lambda: app.login is not None and app.main is None, 10, "the login screen")


def rows(main: MainWindow) -> list[dict[str, str]]:
    return main.activity.table.rows()


def issue_rows(main: MainWindow) -> list[dict[str, str]]:
    return main.issues.table.rows()


def account(main: MainWindow, username: str) -> dict[str, str] | None:
    return next((r for r in main.accounts.table.rows() if r["username"] == username), None)


# --- an outage --------------------------------------------------------------------------------------------


def test_outage_shows_and_the_dashboard_recovers_by_itself(
    window: ttk.Window, screen: VirtualDisplay, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with fresh_database("sqlite", tmp_path_factory.mktemp("outage")) as url:
        first = ServerProcess(url).start()
        second: ServerProcess | None = None
        try:
            port = first.address.rsplit(":", 1)[1]
            app = open_dashboard(window, first.address)
            main = main_of(window, app)
            main.notebook.select(main.activity)
            pump(window, lambda: status(main).startswith("● Live") and main.ticks >= 3, 20, "live figures")
            pump(window, lambda: "feed live" in main.status.feed.cget("text"), 20, "the live feed")
            main.notebook.select(main.charts)

            assert first.terminate() == 0
            pump(window, lambda: "Connection lost" in status(main), 20, "the outage in the status bar")
            assert main.cards.cards["people"].level == "none"  # stale figures are greyed, not dropped
            gap_start = len(main.history.times)
            pump(window, lambda: len(main.history.times) >= gap_start + 3, 15, "time to pass in the charts")
            screen.screenshot("dashboard-outage", window)

            second = ServerProcess(url, WORKSPACE_GRPC_PORT=port).start()
            assert second.address == first.address
            # Someone acts while the dashboard is still reconnecting: the feed must catch up on it, once.
            admin = Session(second.address, token_store=FileTokenStore(tmp_path / "admin"))
            pump(window, lambda: _try_login(admin), 30, "the restarted server")
            request = users_pb2.CreateUserRequest(
                user=users_pb2.User(username=f"dave-{uuid.uuid4().hex[:6]}"), password="pw-12345678"
            )
            dave = admin.call(admin.users.CreateUser, request).user
            pump(window, lambda: status(main).startswith("● Live"), 60, "the dashboard to recover by itself")
            pump(window, lambda: "feed live" in main.status.feed.cget("text"), 60, "the feed to recover")
            main.notebook.select(main.activity)
            pump(
                window,
                lambda: [r["action"] for r in rows(main) if dave.username in r["detail"]] == ["user.create"],
                20,
                "the entry written during the outage, once",
            )
            ids = [int(i) for i in main.activity.table.tree.get_children()]
            assert len(ids) == len(set(ids))

            # The charts kept their history and show the outage as a gap: NaN points, no line across it.
            series = list(main.history.series[("messages", "messages/min")])
            finite = [i for i, v in enumerate(series) if v == v]
            assert finite and finite[0] < gap_start - 1 and finite[-1] > gap_start
            assert any(v != v for v in series[finite[0] : finite[-1]])
            main.notebook.select(main.charts)
            settle(window, 1.0)
            screen.screenshot("dashboard-after-outage", window)
            assert main.stats_state == StreamState.CONNECTED
            admin.close()
            app.close()
        finally:
            for process in (first, second):
                if process is not None:
                    process.terminate()


def _try_login(session: Session) -> bool:
    try:
        session.login("admin", ADMIN_PASSWORD, timeout=2)
    except Unreachable:
        return False
    return True


def test_thresholds_turn_cards_amber_and_red(window: ttk.Window, tmp_path: Path) -> None:
    """The thresholds dialog saves the config file; the cards take their colour from it."""
    stats = monitoring_pb2.Stats(
        replicas=[
            monitoring_pb2.ReplicaStats(
                replica_id="a",
                version="0.1.0",
                uptime={"seconds": 3600},
                database=monitoring_pb2.DatabaseStats(
                    kind="sqlite", reachable=True, query_latency={"nanos": 2_000_000}
                ),
            )
        ],
        totals=monitoring_pb2.StatsTotals(live_replicas=1, error_rate=0.05, calls_per_second=2),
    )
    view = CardsView(window)
    view.pack(fill="x")
    view.show(cards(stats, Thresholds()))
    window.update()
    assert view.cards["errors"].level == "amber" and view.cards["errors"].value.cget("text") == "5.0 %"
    assert "warning" in view.cards["errors"].cget("style")
    assert view.cards["database"].level == "ok" and view.cards["uptime"].level == "ok"

    saved: list[Thresholds] = []
    dialog = ThresholdsDialog(window, Thresholds(), saved.append)
    amber, red = dialog.vars["error_rate"]
    amber.set("1")
    red.set("oops")
    dialog.save_button.invoke()
    assert "Not saved" in dialog.message.cget("text") and not saved
    red.set("4")
    dialog.save_button.invoke()
    (thresholds,) = saved
    assert Thresholds.load(tmp_path / "config" / "dashboard.json").by_key["error_rate"].red == 4
    view.show(cards(stats, thresholds))
    window.update()
    assert view.cards["errors"].level == "red" and "danger" in view.cards["errors"].cget("style")
    assert Thresholds.load(tmp_path / "missing.json").by_key["error_rate"].red == 20  # the default


def test_the_dashboard_bench_runs_briefly() -> None:
    """bench/dashboard.py end to end in a quick mode: its figures are read by people, never asserted here."""
    done = subprocess.run(
        [sys.executable, "bench/dashboard.py", "--seconds", "2", "--baseline-seconds", "1", "--warmup", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for window in ("bare Tk", "activity tab", "charts tab"):
        assert f"\n{window} " in done.stdout, done.stdout
    charts_ticks = int(done.stdout.split("charts tab")[1].split()[1])
    assert charts_ticks > 0, done.stdout  # the dashboard in the bench did log in and receive figures


def test_the_dashboard_connects_with_tls_when_told(window: ttk.Window, tmp_path: Path) -> None:
    """`python -m dashboard --ca-file ca.pem`: it trusts that CA and talks TLS to a TLS-only server."""
    authority = make_authority(tmp_path / "tls")
    with fresh_database("sqlite", tmp_path) as url:
        server = ServerProcess(
            url, WORKSPACE_TLS_CERT_FILE=str(authority.chain), WORKSPACE_TLS_KEY_FILE=str(authority.server_key)
        ).start()
        try:
            app = DashboardApp(
                window,
                server.address,
                thresholds=Thresholds(),
                resume=False,
                session_options={"ca_file": str(authority.ca)},
            )
            log_in(window, app, server.address, "admin", ADMIN_PASSWORD)
            main = main_of(window, app)
            pump(window, lambda: status(main).startswith("● Live"), 30, "live figures over TLS")
        finally:
            assert server.terminate() == 0
