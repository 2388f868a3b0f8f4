"""``workspace-admin``: moving a live workspace from SQLite to PostgreSQL, and backing SQLite up and restoring it.

Every story fills a database through a real server's RPCs, runs the command as an operator would (a separate
process), then starts a server on the result and checks through the RPCs that people see what they saw.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text
from workspace.v1 import monitoring_pb2, shortcuts_pb2

from server.settings import database_url, sqlite_path
from server.storage.migrate import alembic_config
from server.storage.models import Base

from .api import (
    Client,
    add_reaction,
    all_messages,
    create_person,
    delete_message,
    edit,
    group,
    list_conversations,
    log_in,
    mark_read,
    send,
)
from .databases import empty_postgres_schema, fresh_database
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess
from .streams import Stream
from .test_agenda import PARIS, all_day, create, occurrences, timed, utc, weekly
from .test_lots import FOR_PARTS, REFURBISHED, SCRAPPED, add, all_items, all_lots, get_lot, inventory, make_lot
from .test_monitoring import list_issues, report
from .test_shortcuts import category, listed, shortcut
from .test_shortcuts import stub as shortcuts


def workspace_admin(*args: str) -> subprocess.CompletedProcess[str]:
    """``workspace-admin ARGS`` in a process of its own, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "server.admin", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The message of an expected failure: exit status 2, one line on stderr, no stack trace."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


def row_counts(stdout: str) -> dict[str, tuple[int, int, str]]:
    """The row-count check printed at the end: table -> (source, target, verdict)."""
    table = stdout[stdout.index("row counts, source and target:") :].splitlines()[2:]
    counts = {}
    for line in table:
        parts = line.split()
        if len(parts) == 4 and parts[0] in Base.metadata.tables:
            counts[parts[0]] = (int(parts[1].replace(",", "")), int(parts[2].replace(",", "")), parts[3])
    return counts


@contextmanager
def running(url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(url).start()
    try:
        yield process
    finally:
        assert process.terminate() == 0, process.log_text()


# --- migrate-data ---------------------------------------------------------------------------------------------


def fill(address: str) -> dict[str, object]:
    """A small company's workspace, made through the RPCs; returns who is who and what was made."""
    admin = log_in(address, "admin", ADMIN_PASSWORD)
    alice, bob = create_person(admin, address, display_name="Alice Ærø"), create_person(admin, address)
    team = group(alice.client, "Équipe 🚀", [bob.user.id])
    first = send(alice.client, team.id, "Bonjour à tous").message
    send(bob.client, team.id, "Salut !\n" + "long line " * 190, reply_to_message_id=first.id)
    edit(alice.client, first.id, "Bonjour à toutes et à tous")
    gone = send(alice.client, team.id, "oops").message
    delete_message(alice.client, gone.id)
    last = send(alice.client, team.id, "Réunion à 9 h").message
    add_reaction(bob.client, first.id, "👍")
    add_reaction(alice.client, first.id, "🎉")
    mark_read(bob.client, team.id, last.id)

    tools = category(alice.client, "Outils")
    shortcut(alice.client, "Wiki", "https://wiki.example.com/", tools.id, "the team's wiki")
    shortcut(alice.client, "Tickets", "https://tickets.example.com/")
    dropped = shortcut(alice.client, "Old", "https://old.example.com/")
    request = shortcuts_pb2.DeleteShortcutRequest(shortcut_id=dropped.id)
    shortcuts(alice.client).DeleteShortcut(request, metadata=alice.client.md, timeout=10)  # a gap in the ids

    standup = timed("Stand-up", datetime(2026, 3, 16, 9, tzinfo=PARIS), datetime(2026, 3, 16, 9, 15, tzinfo=PARIS))
    standup.recurrence.CopyFrom(weekly(count=4))
    create(alice.client, standup)
    create(alice.client, all_day("Inventaire", date(2026, 3, 18), date(2026, 3, 20), shared_with_everyone=True))

    lot = make_lot(bob.client, note="deux palettes\nécrans à tester")
    items = add(bob.client, lot.id, *(f"SN-{uuid.uuid4().hex[:8]}" for _ in range(5))).items
    inventory(bob.client, items[0].id, REFURBISHED, operating_system="Debian 13")
    inventory(bob.client, items[1].id, FOR_PARTS)
    inventory(bob.client, items[1].id, SCRAPPED, technician="Jules")  # a correction: two records

    report(alice.client, monitoring_pb2.CLIENT_ISSUE_KIND_ERROR, "the window froze", client_version="1.2.3")
    for client in (admin, alice.client, bob.client):
        client.close()
    return {"alice": alice, "bob": bob, "team": team.id, "lot": lot.id, "dropped_shortcut": dropped.id}


def served(address: str, made: dict[str, object]) -> dict[str, object]:
    """Everything the RPCs serve about the workspace, as each person sees it."""
    alice, bob = made["alice"], made["bob"]
    seen: dict[str, object] = {}
    for name, person in (("alice", alice), ("bob", bob)):
        client = log_in(address, person.user.username, person.password)  # the same password works
        me = client.whoami()
        seen[f"{name} account"] = (me.id, me.username, me.display_name, me.role, me.create_time)
        seen[f"{name} conversations"] = list(list_conversations(client).conversations)
        seen[f"{name} messages"] = all_messages(client, made["team"])
        seen[f"{name} agenda"] = occurrences(client, utc(2026, 3, 1), utc(2026, 5, 1), zone="Europe/Paris")
        seen[f"{name} shortcuts"] = listed(client)
        client.close()
    bob_client = log_in(address, bob.user.username, bob.password)
    seen["lot"] = get_lot(bob_client, made["lot"])
    seen["items"] = all_items(bob_client, made["lot"])
    seen["lots"] = all_lots(bob_client)
    bob_client.close()
    admin = log_in(address, "admin", ADMIN_PASSWORD)
    seen["issues"] = list(list_issues(admin).issues)
    admin.close()
    return seen


def test_migrate_data_moves_a_live_workspace_from_sqlite_to_postgresql(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as source, empty_postgres_schema() as target:
        with running(source) as old:
            made = fill(old.address)
            before = served(old.address, made)
            bob = made["bob"]
            reader = log_in(old.address, bob.user.username, bob.password)
            stream = Stream(reader, after_event_id=1)  # everything bob may see (event 1 is older than him)
            replayed, _ = stream.live()
            stream.close()
            reader.close()
        assert len(replayed) >= 8
        resume_from = replayed[len(replayed) // 2].id  # where bob's client got to before the move
        still_to_come = replayed[len(replayed) // 2 + 1 :]

        result = workspace_admin("migrate-data", "--from", source, "--to", target, "--batch-size", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        counts = row_counts(result.stdout)
        assert set(counts) == set(Base.metadata.tables), "a table is missing from the row-count check"
        assert all(verdict == "OK" and s == t for s, t, verdict in counts.values()), counts
        assert counts["messages"][0] == 4 and counts["lot_inventory_records"][0] == 3, counts
        assert "alembic_version" not in counts

        with running(target) as new:
            assert served(new.address, made) == before
            desktop = Client(new.address)  # alice's desktop app, logged in before the move, stays logged in
            desktop.refresh_token = made["alice"].client.refresh_token
            desktop.refresh()
            assert desktop.whoami().id == made["alice"].user.id
            desktop.close()

            reader = log_in(new.address, bob.user.username, bob.password)
            resumed = Stream(reader, after_event_id=resume_from)
            caught_up, _ = resumed.live()
            assert caught_up == still_to_come, "the resumed stream brings exactly what came after the resume point"

            alice = made["alice"]
            writer = log_in(new.address, alice.user.username, alice.password)
            fresh = send(writer, made["team"], "first message on PostgreSQL").message
            arrived = resumed.event()
            assert arrived.HasField("message_created") and arrived.message_created.id == fresh.id
            assert arrived.id > replayed[-1].id, "new events continue after the copied ones"
            assert fresh.id > max(m.id for m in before["alice messages"]), "the messages' sequence was reset"
            later = shortcut(writer, "New", "https://new.example.com/")
            assert later.id > made["dropped_shortcut"], "an id SQLite handed out and deleted is never reused"
            resumed.close()
            reader.close()
            writer.close()

        again = workspace_admin("migrate-data", "--from", source, "--to", target)
        refused(again, "already holds data", "--force")
        assert "rows copied" not in again.stdout

        forced = workspace_admin("migrate-data", "--from", source, "--to", target, "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "--force: deleting everything" in forced.stdout
        assert all(verdict == "OK" for _, _, verdict in row_counts(forced.stdout).values())
        with running(target) as replaced:  # exactly the source again: the message sent on PostgreSQL is gone
            assert served(replaced.address, made) == before


def test_migrate_data_refuses_what_it_cannot_do_and_says_why(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as current, fresh_database("sqlite", tmp_path) as old:
        command.downgrade(alembic_config(old), "-1")
        unreachable = "postgresql://postgres@127.0.0.1:1/test"
        refused(workspace_admin("migrate-data", "--from", "nonsense", "--to", current), "--from", "not a database URL")
        refused(workspace_admin("migrate-data", "--from", current, "--to", "mysql://x/y"), "--to", "not a database URL")
        missing = f"sqlite:///{tmp_path / 'missing.db'}"
        refused(workspace_admin("migrate-data", "--from", missing, "--to", current), "no SQLite database at")
        assert not (tmp_path / "missing.db").exists(), "looking at a missing database must not create it"
        refused(workspace_admin("migrate-data", "--from", old, "--to", current), "not the newest", "make migrate")
        refused(workspace_admin("migrate-data", "--from", current, "--to", unreachable), "--to: cannot connect")
        refused(workspace_admin("migrate-data", "--from", current, "--to", current), "same database")
        stranger = tmp_path / "stranger.db"
        sqlite3.connect(stranger).execute("CREATE TABLE notes (body TEXT)").connection.close()
        refused(
            workspace_admin("migrate-data", "--from", f"sqlite:///{stranger}", "--to", current),
            "not a Workspace database",
        )
        usage = workspace_admin("migrate-data", "--from", current, "--to", current, "--batch-size", "0")
        assert usage.returncode == 2 and "--batch-size" in usage.stderr and "Traceback" not in usage.stderr


def test_migrate_data_copies_back_from_postgresql_to_sqlite(tmp_path: Path) -> None:
    """The way back (PostgreSQL as the source, SQLite as the target) keeps everything too."""
    round_trip = f"sqlite:///{tmp_path / 'copies' / 'back.db'}"
    with fresh_database("sqlite", tmp_path) as source, fresh_database("postgres", tmp_path) as middle:
        with running(source) as old:
            made = fill(old.address)
            before = served(old.address, made)
        there = workspace_admin("migrate-data", "--from", source, "--to", middle, "--batch-size", "3")
        assert there.returncode == 0, there.stdout + there.stderr
        back = workspace_admin("migrate-data", "--from", middle, "--to", round_trip)
        assert back.returncode == 0, back.stdout + back.stderr
        assert all(verdict == "OK" for _, _, verdict in row_counts(back.stdout).values())
        with running(round_trip) as new:
            assert served(new.address, made) == before
            alice = made["alice"]
            writer = log_in(new.address, alice.user.username, alice.password)
            assert shortcut(writer, "New").id > made["dropped_shortcut"], "the sequence's mark came back too"
            writer.close()


def _add_user(url: str, username: str) -> None:
    """An account written straight into an SQLite file (SQLite does not enforce VARCHAR lengths; PostgreSQL does)."""
    path = sqlite_path(database_url(url, asynchronous=False))
    assert path is not None
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "INSERT INTO users (username, username_key, display_name, display_name_key, role, disabled,"
            " password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, 'user', 0, 'x', ?, ?)",
            (username, username.casefold(), username, username.casefold(), *["2026-11-26 08:00:00.000000"] * 2),
        )


def test_a_copy_that_fails_midway_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as good, fresh_database("sqlite", tmp_path) as bad:
        with empty_postgres_schema() as target:
            _add_user(good, "alice")
            assert workspace_admin("migrate-data", "--from", good, "--to", target).returncode == 0
            _add_user(bad, "bob")
            _add_user(bad, "x" * 40)  # too long for users.username on PostgreSQL
            failed = workspace_admin("migrate-data", "--from", bad, "--to", target, "--force")
            refused(failed, "rolled back", "too long")
            engine = create_engine(database_url(target, asynchronous=False))
            try:
                with engine.connect() as connection:
                    assert connection.execute(text("SELECT username FROM users")).scalars().all() == ["alice"]
            finally:
                engine.dispose()


# --- backup and restore -----------------------------------------------------------------------------------------


class Chatter:
    """Sends numbered messages one after the other until stopped; remembers which ones were acknowledged."""

    def __init__(self, client: Client, conversation_id: int) -> None:
        self.client, self.conversation_id = client, conversation_id
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            text = f"message {number}"
            send(self.client, self.conversation_id, text)
            self.acknowledged.append(text)
            number += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_backup_taken_while_people_chat_restores_to_a_working_server(tmp_path: Path) -> None:
    from .servers import wait_until

    backup_file = tmp_path / "backups" / "workspace.backup"
    with fresh_database("sqlite", tmp_path) as url:
        with running(url) as live:
            admin = log_in(live.address, "admin", ADMIN_PASSWORD)
            alice = create_person(admin, live.address)
            team = group(alice.client, "Backups", [])
            chatter = Chatter(alice.client, team.id)
            wait_until(lambda: len(chatter.acknowledged) >= 20, 30, "some messages")
            sent_before = len(chatter.acknowledged)
            result = workspace_admin("backup", "--database", url, "--to", str(backup_file))
            sent_after = len(chatter.acknowledged)
            wait_until(lambda: len(chatter.acknowledged) >= sent_after + 5, 30, "messages after the backup")
            chatter.stop()
            assert result.returncode == 0, result.stdout + result.stderr
            assert "integrity_check ok" in result.stdout

            in_use = workspace_admin("restore", "--database", url, "--from", str(backup_file), "--force")
            refused(in_use, "in use", "stop the server")
            refused(workspace_admin("restore", "--database", url, "--from", str(backup_file)), "holds data", "--force")
            refused(workspace_admin("backup", "--database", url, "--to", str(backup_file)), "exists", "--force")
            written = len(chatter.acknowledged)
            admin.close()
            alice.client.close()

        with sqlite3.connect(backup_file) as check:
            assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert check.execute("PRAGMA journal_mode").fetchone() == ("delete",), "one self-contained file"

        restored = f"sqlite:///{tmp_path / 'restored' / 'workspace.db'}"
        result = workspace_admin("restore", "--database", restored, "--from", str(backup_file))
        assert result.returncode == 0, result.stdout + result.stderr
        with running(restored) as server:
            reader = log_in(server.address, alice.user.username, alice.password)
            texts = [m.text for m in reversed(all_messages(reader, team.id))]
            # one consistent moment: every message up to some point during the backup, in order, none after
            assert sent_before <= len(texts) <= sent_after + 1, (sent_before, len(texts), sent_after)
            assert texts == [f"message {n}" for n in range(len(texts))]
            assert len(texts) < written
            newest = send(reader, team.id, "after the restore").message
            assert newest.id > max(m.id for m in all_messages(reader, team.id) if m.text != "after the restore")
            reader.close()

        # the original, stopped now, can be replaced with --force; its stale WAL files go with it
        path = sqlite_path(database_url(url, asynchronous=False))
        assert path is not None
        Path(f"{path}-wal").write_bytes(b"stale")
        forced = workspace_admin("restore", "--database", url, "--from", str(backup_file), "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert not Path(f"{path}-wal").exists()
        with sqlite3.connect(path) as check:
            assert check.execute("SELECT count(*) FROM messages").fetchone() == (len(texts),)


def test_backup_and_restore_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        pg = "postgresql://postgres@127.0.0.1:5432/test"
        refused(workspace_admin("backup", "--database", pg, "--to", str(tmp_path / "x")), "pg_dump")
        refused(workspace_admin("restore", "--database", pg, "--from", str(tmp_path / "x")), "pg_restore")
        refused(workspace_admin("backup", "--database", "sqlite://", "--to", str(tmp_path / "x")), "in-memory")
        missing = f"sqlite:///{tmp_path / 'missing.db'}"
        refused(workspace_admin("backup", "--database", missing, "--to", str(tmp_path / "x")), "no SQLite database")
        refused(workspace_admin("restore", "--database", url, "--from", str(tmp_path / "none")), "no file at")
        text_file = tmp_path / "notes.txt"
        text_file.write_text("not a database")
        refused(workspace_admin("restore", "--database", url, "--from", str(text_file)), "not an SQLite database")
        stranger = tmp_path / "stranger.db"
        sqlite3.connect(stranger).execute("CREATE TABLE notes (body TEXT)").connection.close()
        refused(workspace_admin("restore", "--database", url, "--from", str(stranger)), "not a Workspace backup")
        refused(
            workspace_admin("backup", "--database", f"sqlite:///{stranger}", "--to", str(tmp_path / "s.backup")),
            "not a Workspace database",
        )
        assert not (tmp_path / "s.backup").exists()
        # an empty, migrated database may be replaced without --force: it holds nothing yet
        backup_file = tmp_path / "empty.backup"
        assert workspace_admin("backup", "--database", url, "--to", str(backup_file)).returncode == 0
        assert workspace_admin("restore", "--database", url, "--from", str(backup_file)).returncode == 0
        assert [p.name for p in tmp_path.glob("*.partial")] == [], "no temporary file is left behind"
