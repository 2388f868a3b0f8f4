"""A soak run: people with live streams and steady traffic for minutes, one replica restarted twice.

    .venv/bin/python bench/soak.py [--minutes 10] [--people 100] [--rate 20] [--restarts 2]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/test]

Two server replicas (``--replicas``) on one PostgreSQL database (a schema of its own, dropped afterwards; with
an SQLite URL, or none, one replica on a fresh SQLite file). ``--people`` people in groups of ten, spread
over the replicas; each keeps ``ChatService.StreamEvents`` open through the client library
(``workspace_client.event_stream``: reconnects with back-off and resumes after the last event id, as the
desktop apps do). ``--rate`` messages a second in all, from random people to their group; a send that fails
because its replica is away is retried with the same ``request_id`` (stored once) until it succeeds.
The last replica is stopped (SIGTERM) and started again on the same port ``--restarts`` times, evenly
through the run.

Every ``--sample`` seconds it records each replica's resident memory and open file descriptors (``/proc``).
At the end it prints them over time, and per person the messages of their group they never received (lost)
or received twice (duplicated), and the send errors that never succeeded. Goal (issue 9): memory flat after
warm-up, nothing lost. It prints and never asserts.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import grpc
from _common import ServerProcess, bench_database, is_postgres, machine, migrated_server_env

GROUP_SIZE = 10
SEND_RETRY_SECONDS = 60.0
#: After the traffic, how long streams get to catch up (longer than the client library's 30 s back-off cap).
SETTLE_SECONDS = 60.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Person:
    def __init__(self, name: str, password: str, address: str, tokens: Path) -> None:
        from workspace_client import FileTokenStore, Session

        self.name = name
        self.session = Session(address, token_store=FileTokenStore(tokens / name))
        self.session.login(name, password)
        self.user_id = 0
        self.group = 0
        self.received: Counter[int] = Counter()  # message id -> times received
        self.stream = None

    def follow(self) -> None:
        from workspace_client import event_stream

        def on_item(response) -> None:  # type: ignore[no-untyped-def]
            event = response.event
            if event.HasField("message_created"):
                self.received[event.message_created.id] += 1

        self.stream = event_stream(self.session, on_item=on_item).start()


def send_until_stored(person: Person, conversation_id: int, text: str) -> int | None:
    """SendMessage, retried with the same request_id while the replica is away; the message id, or None."""
    from workspace.v1 import chat_pb2
    from workspace_client import WorkspaceError

    request = chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text, request_id=secrets.token_hex(8))
    deadline = time.monotonic() + SEND_RETRY_SECONDS
    while True:
        try:
            return person.session.call(person.session.chat.SendMessage, request, timeout=10).message.id
        except WorkspaceError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)


def run(args: argparse.Namespace, url: str, replicas: int, workdir: Path, log) -> None:  # type: ignore[no-untyped-def]
    from workspace.v1 import chat_pb2, users_pb2
    from workspace_client import FileTokenStore, Session

    password = secrets.token_urlsafe(16)
    # Rate limits off: every simulated person calls from 127.0.0.1, which a real company never does.
    env = migrated_server_env(url, password, WORKSPACE_RATE_LIMITS="off")
    servers = []
    for i in range(replicas):
        server = ServerProcess(f"replica{i}", [sys.executable, "-m", "server", "serve"], env, workdir)
        server.start()
        servers.append(server)
    addresses = [s.address for s in servers]
    log(f"replicas: {', '.join(addresses)}")
    try:
        admin = Session(addresses[0], token_store=FileTokenStore(workdir / "tokens" / "admin"))
        admin.login("admin", password)
        people = []
        for i in range(args.people):
            name = f"soak{i:03d}"
            request = users_pb2.CreateUserRequest(user=users_pb2.User(username=name), password=password)
            user_id = admin.call(admin.users.CreateUser, request).user.id
            person = Person(name, password, addresses[i % replicas], workdir / "tokens")
            person.user_id = user_id
            people.append(person)
        groups: dict[int, list[Person]] = {}
        for start in range(0, len(people), GROUP_SIZE):
            members = people[start : start + GROUP_SIZE]
            request = chat_pb2.CreateGroupConversationRequest(
                name=f"team {start // GROUP_SIZE}", member_ids=[p.user_id for p in members[1:]]
            )
            made = members[0].session.call(members[0].session.chat.CreateGroupConversation, request)
            groups[made.conversation.id] = members
            for p in members:
                p.group = made.conversation.id
        for person in people:
            person.follow()
        time.sleep(3.0)  # every stream live before the first message
        log(f"{len(people)} people in {len(groups)} groups, streams open; traffic for {args.minutes} min")

        sent: dict[int, list[int]] = defaultdict(list)  # conversation -> message ids
        failed_sends = 0
        lock = threading.Lock()
        stop = threading.Event()
        pending: list[threading.Thread] = []

        def one_send(person: Person, n: int) -> None:
            nonlocal failed_sends
            message_id = send_until_stored(person, person.group, f"soak message {n}")
            with lock:
                if message_id is None:
                    failed_sends += 1
                else:
                    sent[person.group].append(message_id)

        def traffic() -> None:
            n = 0
            next_at = time.monotonic()
            while not stop.is_set():
                next_at += 1.0 / args.rate
                time.sleep(max(0.0, next_at - time.monotonic()))
                n += 1
                thread = threading.Thread(target=one_send, args=(random.choice(people), n), daemon=True)
                thread.start()
                pending.append(thread)

        samples: list[tuple[float, list[tuple[float, int]]]] = []
        started = time.monotonic()

        def sample() -> None:
            row = []
            for s in servers:
                pid = s.proc.pid if s.proc and s.proc.poll() is None else None
                row.append((rss_mb(pid), open_fds(pid)) if pid else (0.0, 0))
            samples.append((time.monotonic() - started, row))

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        total = args.minutes * 60
        restart_at = [total * (k + 1) / (args.restarts + 1) for k in range(args.restarts)]
        next_sample = 0.0
        while (elapsed := time.monotonic() - started) < total:
            if elapsed >= next_sample:
                sample()
                next_sample += args.sample
            if restart_at and elapsed >= restart_at[0]:
                restart_at.pop(0)
                victim = servers[-1]
                port = victim.address.rsplit(":", 1)[1]
                log(f"{elapsed:6.0f} s: restarting {victim.name} on port {port}")
                victim.stop()
                victim.env = {**env, "WORKSPACE_GRPC_PORT": port}
                victim.start()
            time.sleep(0.2)
        stop.set()
        sender.join()
        for thread in pending:
            thread.join(SEND_RETRY_SECONDS + 15)
        sample()
        # The last deliveries: a stream of the restarted replica may still be in its back-off (up to 30 s).
        # Wait until everyone has every message of their group, or SETTLE_SECONDS: what is missing then is lost.
        settle_until = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < settle_until and any(set(sent[p.group]) - set(p.received) for p in people):
            time.sleep(0.5)
        for person in people:
            person.stream.stop()

        lost = duplicated = delivered = 0
        worst: list[tuple[str, int, int]] = []
        for person in people:
            expected = set(sent[person.group])
            got = person.received
            person_lost = len(expected - set(got))
            person_dup = sum(count - 1 for count in got.values() if count > 1)
            lost += person_lost
            duplicated += person_dup
            delivered += sum(got.values())
            if person_lost or person_dup:
                worst.append((person.name, person_lost, person_dup))
        print(f"\n{'t (s)':>7} " + " ".join(f"{s.name + ' MB':>13} {s.name + ' fds':>13}" for s in servers))
        for at, row in samples:
            print(f"{at:7.0f} " + " ".join(f"{mb:13.1f} {fds:13d}" for mb, fds in row))
        stored = sum(len(ids) for ids in sent.values())
        print(f"\nmessages stored: {stored}; sends that never succeeded: {failed_sends}")
        print(f"deliveries: {delivered}; lost: {lost}; duplicated: {duplicated}")
        for name, person_lost, person_dup in worst[:10]:
            print(f"  {name}: lost {person_lost}, duplicated {person_dup}")
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second, in all")
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2, help="with PostgreSQL (SQLite: always 1)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print("machine:", machine())

    def log(line: str) -> None:
        print(line, flush=True)

    with bench_database(args.database_url, "bench-soak-", log, "soak.db") as (url, workdir):
        os.environ["WORKSPACE_CLIENT_CONFIG_DIR"] = str(workdir / "client")
        replicas = args.replicas if is_postgres(url) else 1
        run(args, url, replicas, workdir, log)
    return 0


if __name__ == "__main__":
    grpc_version = grpc.__version__  # imported first: the bench's own check that grpc is there
    sys.exit(main())
