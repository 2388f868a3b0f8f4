"""What gzip saves and costs: a 1,000-message chat history fetched with and without compression.

    .venv/bin/python bench/compression.py [--messages 1000] [--rounds 20] [--database-url URL]

One run starts the real server (``python -m server migrate`` then ``serve``, default settings) on a fresh
database (PostgreSQL: a schema of its own, dropped afterwards) and the gateway in front of it (``python -m
gateway envoy``, the configuration ``make run`` and the gateway image use). It fills one conversation with
``--messages`` chat messages (sentences of varied words, 40 to 200 characters, as people write them), then
fetches the whole history ``--rounds`` times on each path: ``ChatService.ListMessages`` allows pages of
at most 200, so a history of 1,000 is five calls, each continuing from the last one's ``next_page_token``.

1. ``gRPC direct``: straight to the server, the client accepting only ``identity`` (the channel argument
   ``grpc.compression_enabled_algorithms_bitset`` = 1), so the server sends its replies as they are;
2. ``gRPC direct gzip``: the same with grpc's default, which accepts gzip: the server gzips replies of 1 KiB
   and more (``server/api/compression.py``);
3. ``gRPC/Envoy`` and ``gRPC/Envoy gzip``: the same through the gateway (Envoy passes the compressed frames);
4. ``REST/Envoy``: ``GET /v1/conversations/{id}/messages?page_size=200`` over HTTP/1.1, keep-alive, without
   ``accept-encoding``;
5. ``REST/Envoy gzip``: the same with ``accept-encoding: gzip``: Envoy's compressor gzips the JSON.

Bytes are counted on the wire, not estimated: every path goes through a TCP relay in this process that counts
what passes each way (HTTP/2 or HTTP/1.1 framing and headers included; no TLS). It prints, per history
fetched: bytes received and sent by the client, their ratio to the uncompressed path, the time (median over
the rounds, client decoding included), and the CPU the server and Envoy spent. The relay and the client share
the machine's cores with the server and Envoy. It prints and never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import random
import secrets
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from _common import GatewayProcess, ServerProcess, bench_database, machine, migrated_server_env
from workspace.v1 import auth_pb2, auth_pb2_grpc, chat_pb2, chat_pb2_grpc

PAGE = 200  # the largest page ListMessages allows
CALL_TIMEOUT = 30.0
#: grpc's channel argument naming the algorithms a client accepts; 1 is the bit of ``identity`` alone.
IDENTITY_ONLY = (("grpc.compression_enabled_algorithms_bitset", 1),)
WORDS = (
    "the pallet from Lyon arrived this morning with laptops desktops screens and cables; we tested the "
    "batteries of twelve Latitude 7490 and three need a new one. Can someone check the serial numbers of the "
    "EliteDesk units before Friday? I moved the scrapped ones to the back shelf, next to the printers. "
    "Reminder: the report for the town hall is due on Monday, with every item inventoried and wiped"
).split()


class CountingRelay:
    """A TCP relay to ``target`` that counts the bytes passing each way, for all its connections together."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.to_client = 0
        self.to_server = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, upstream, "to_server"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "to_client"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counter: str) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self.lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def read(self) -> tuple[int, int]:
        with self.lock:
            return self.to_client, self.to_server

    def close(self) -> None:
        self.listener.close()


def sentence(rng: random.Random) -> str:
    words = []
    while len(" ".join(words)) < rng.randint(40, 200):
        words.append(rng.choice(WORDS))
    return " ".join(words)[:200]


def fill(address: str, password: str, messages: int) -> tuple[str, int]:
    """Log in as admin and write ``messages`` messages into a new group; (access token, conversation id)."""
    with grpc.insecure_channel(address) as channel:
        login = auth_pb2.LoginRequest(username="admin", password=password)
        token = auth_pb2_grpc.AuthServiceStub(channel).Login(login, timeout=CALL_TIMEOUT).tokens.access_token
        md = (("authorization", f"Bearer {token}"),)
        chat = chat_pb2_grpc.ChatServiceStub(channel)
        group = chat_pb2.CreateGroupConversationRequest(name="compression bench")
        conversation = chat.CreateGroupConversation(group, metadata=md, timeout=CALL_TIMEOUT).conversation.id
        rng = random.Random(7)
        for i in range(messages):
            request = chat_pb2.SendMessageRequest(conversation_id=conversation, text=sentence(rng), request_id=f"b{i}")
            chat.SendMessage(request, metadata=md, timeout=CALL_TIMEOUT)
    return token, conversation


def grpc_history(address: str, token: str, conversation: int, accept_gzip: bool) -> Callable[[], int]:
    """A function fetching the whole history over one gRPC channel; returns the messages it got."""
    channel = grpc.insecure_channel(address, options=() if accept_gzip else IDENTITY_ONLY)
    chat = chat_pb2_grpc.ChatServiceStub(channel)
    md = (("authorization", f"Bearer {token}"),)

    def fetch() -> int:
        got, page_token = 0, ""
        while True:
            request = chat_pb2.ListMessagesRequest(conversation_id=conversation, page_size=PAGE, page_token=page_token)
            reply = chat.ListMessages(request, metadata=md, timeout=CALL_TIMEOUT)
            got += len(reply.messages)
            page_token = reply.next_page_token
            if not page_token:
                return got

    fetch.close = channel.close  # type: ignore[attr-defined]
    return fetch


def rest_history(address: str, token: str, conversation: int, accept_gzip: bool) -> Callable[[], int]:
    """The same over REST, one keep-alive HTTP/1.1 connection, decoding the JSON (and gzip) as a client does."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=CALL_TIMEOUT)
    headers = {"authorization": f"Bearer {token}"}
    if accept_gzip:
        headers["accept-encoding"] = "gzip"

    def fetch() -> int:
        got, page_token = 0, ""
        while True:
            path = f"/v1/conversations/{conversation}/messages?page_size={PAGE}&page_token={page_token}"
            connection.request("GET", path, headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            if reply.status != 200:
                raise RuntimeError(f"GET {path}: {reply.status} {body[:200]!r}")
            if reply.getheader("content-encoding") == "gzip":
                body = gzip.decompress(body)
            elif accept_gzip:
                raise RuntimeError("asked for gzip, got the JSON as it is")
            page = json.loads(body)
            got += len(page["messages"])
            page_token = page["next_page_token"]
            if not page_token:
                return got

    fetch.close = connection.close  # type: ignore[attr-defined]
    return fetch


@dataclass
class Row:
    path: str
    received: float
    sent: float
    ms: float
    server_ms: float | None
    envoy_ms: float | None


def measure(
    name: str,
    fetch: Callable[[], int],
    relay: CountingRelay,
    rounds: int,
    messages: int,
    server: ServerProcess,
    envoy: GatewayProcess,
) -> Row:
    if fetch() != messages:  # warm-up: connection, first page cached by the database
        raise RuntimeError(f"{name}: the history is not {messages} messages long")
    received0, sent0 = relay.read()
    cpu0 = (server.cpu(), envoy.cpu())
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fetch()
        times.append((time.perf_counter() - started) * 1000)
    received1, sent1 = relay.read()
    cpu1 = (server.cpu(), envoy.cpu())
    fetch.close()  # type: ignore[attr-defined]
    cpu = [None if a is None or b is None else (b - a) * 1000 / rounds for a, b in zip(cpu0, cpu1, strict=True)]
    return Row(name, (received1 - received0) / rounds, (sent1 - sent0) / rounds, statistics.median(times), *cpu)


def run(args: argparse.Namespace, database_url: str, workdir: Path) -> None:
    password = secrets.token_urlsafe(16)
    # Rate limits off: the history is written as fast as the server takes it (the limits are measured elsewhere).
    env = migrated_server_env(database_url, password, WORKSPACE_RATE_LIMITS="off")
    server = ServerProcess("server", [sys.executable, "-m", "server", "serve"], env, workdir)
    envoy: GatewayProcess | None = None
    relays: list[CountingRelay] = []
    try:
        address = server.start()
        envoy = GatewayProcess([address], workdir)
        gateway = envoy.start()
        started = time.perf_counter()
        token, conversation = fill(address, password, args.messages)
        print(f"wrote {args.messages} messages in {time.perf_counter() - started:.1f} s")
        direct, through_envoy = CountingRelay(address), CountingRelay(gateway)
        relays += [direct, through_envoy]
        paths = [
            ("gRPC direct", grpc_history, direct, False),
            ("gRPC direct gzip", grpc_history, direct, True),
            ("gRPC/Envoy", grpc_history, through_envoy, False),
            ("gRPC/Envoy gzip", grpc_history, through_envoy, True),
            ("REST/Envoy", rest_history, through_envoy, False),
            ("REST/Envoy gzip", rest_history, through_envoy, True),
        ]
        rows = []
        for name, client, relay, accept_gzip in paths:
            fetch = client(relay.address, token, conversation, accept_gzip)
            rows.append(measure(name, fetch, relay, args.rounds, args.messages, server, envoy))
    finally:
        for relay in relays:
            relay.close()
        if envoy is not None:
            envoy.stop()
        server.stop()

    def ms(value: float | None) -> str:
        return f"{value:10.1f}" if value is not None else f"{'n/a':>10}"

    pages = -(-args.messages // PAGE)
    print(f"\nper history of {args.messages} messages ({pages} calls of up to {PAGE}), {args.rounds} rounds each")
    print(f"{'path':18} {'bytes in':>10} {'bytes out':>10} {'in x':>6} {'ms':>8} {'server ms':>10} {'envoy ms':>10}")
    baseline = {"gRPC direct": rows[0].received, "gRPC/Envoy": rows[2].received, "REST/Envoy": rows[4].received}
    for row in rows:
        base = baseline[row.path.removesuffix(" gzip")]
        print(
            f"{row.path:18} {row.received:10.0f} {row.sent:10.0f} {row.received / base:6.2f} {row.ms:8.1f} "
            f"{ms(row.server_ms)} {ms(row.envoy_ms)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages in the history")
    parser.add_argument("--rounds", type=int, default=20, help="times each path fetches the whole history")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print("machine:", machine())
    with bench_database(args.database_url, "bench-compression-") as (url, workdir):
        run(args, url, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
