"""Fan-out: one conversation, many open streams; a bare grpc.aio broadcast server against the real one.

    .venv/bin/python bench/fanout.py [--subscribers 100 1000] [--rate 10] [--seconds 10] [--database-url URL]

For each subscriber count, in the same run and with the same load:

1. a bare ``grpc.aio`` broadcast server (this file with ``--broadcast-server``: messages in memory, no
   database, no auth): ``Publish`` (unary) puts the bytes on every ``Subscribe`` stream's queue;
2. the real server (``python -m server migrate`` and ``serve``, on a fresh SQLite file by default): one
   group of two people; every subscriber is a ``StreamEvents`` stream of the reader (the same person on
   many devices, which costs the server what many people would), and the sender posts with ``SendMessage``.

This process opens the streams (spread over channels of 100), waits until each is live, reads the server's
resident memory before and after (the idle cost per stream), then sends ``--rate`` messages a second for
``--seconds``. Each message carries its sequence number and send time; every subscriber records when it
arrives. It prints delivery latency p50/p99 (send call to receipt, the same clock), deliveries per second,
memory per idle stream, and lost or duplicated deliveries, with the real server's figures as ratios of the
baseline's. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _common import ServerProcess, child_env, is_postgres, machine, migrated_server_env, postgres_schema

THIS = Path(__file__).resolve()
PER_CHANNEL = 100
PAYLOAD_BYTES = 120  # about what a short chat message weighs on the wire
CALL_TIMEOUT = 10.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --------------------------------------------------------------------------------------- baseline server


async def broadcast_server(port: int) -> None:
    """Bytes in, the same bytes to every subscriber: no database, no auth, no serialisation."""
    from workspace.v1 import chat_pb2

    live = chat_pb2.StreamEventsResponse(event=chat_pb2.Event(heartbeat=chat_pb2.Heartbeat(live=True)))
    queues: set[asyncio.Queue[bytes]] = set()

    async def publish(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        for queue in queues:
            queue.put_nowait(request)
        return b""

    async def subscribe(request: bytes, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        queues.add(queue)
        try:
            yield live.SerializeToString()
            while True:
                yield await queue.get()
        finally:
            queues.discard(queue)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.Broadcast",
                {
                    "Publish": grpc.unary_unary_rpc_method_handler(publish),
                    "Subscribe": grpc.unary_stream_rpc_method_handler(subscribe),
                },
            ),
        )
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"broadcast listening on 127.0.0.1:{bound}", flush=True)
    await stop.wait()
    await server.stop(0)


# ------------------------------------------------------------------------------------------ measurement


@dataclass
class Run:
    name: str
    subscribers: int
    sent: int = 0
    send_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    received: list[dict[int, int]] = field(default_factory=list)  # per subscriber: seq -> times seen
    first_send: float = 0.0
    last_receipt: float = 0.0
    memory_per_stream_kib: float = 0.0
    expected: float = float("inf")  # deliveries to wait for, once sending is over
    all_received: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, subscriber: int, seq: int, sent_ns: int) -> None:
        now = time.perf_counter_ns()
        self.latencies_ms.append((now - sent_ns) / 1e6)
        if len(self.latencies_ms) >= self.expected:
            self.all_received.set()
        self.received[subscriber][seq] = self.received[subscriber].get(seq, 0) + 1
        self.last_receipt = now / 1e9

    def lost_and_duplicated(self) -> tuple[int, int]:
        lost = dup = 0
        for seen in self.received:
            lost += sum(1 for seq in range(self.sent) if seq not in seen)
            dup += sum(n - 1 for n in seen.values() if n > 1)
        return lost, dup

    def row(self, base: Run | None) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        deliveries = len(self.latencies_ms) / max(1e-9, self.last_receipt - self.first_send)
        lost, dup = self.lost_and_duplicated()
        text = (
            f"{self.name:<10} {self.subscribers:>6} {self.sent:>6} {p50:>8.1f} {p99:>8.1f} {deliveries:>10.0f} "
            f"{self.memory_per_stream_kib:>8.1f} {lost:>6} {dup:>5}"
        )
        if base is not None:
            b = sorted(base.latencies_ms) or [float("nan")]
            b99 = b[min(len(b) - 1, int(len(b) * 0.99))]
            b_deliveries = len(base.latencies_ms) / max(1e-9, base.last_receipt - base.first_send)
            text += f"   p99 x{p99 / b99:.2f} (goal <= 1.5), deliveries x{deliveries / b_deliveries:.2f} (goal >= 0.5)"
        return text


async def drive(
    run: Run,
    server: ServerProcess,
    open_stream,  # type: ignore[no-untyped-def]  # (channel, index) -> async iterator of (seq, sent_ns) or None
    send,  # type: ignore[no-untyped-def]  # (seq) -> awaitable
    args: argparse.Namespace,
    log,  # type: ignore[no-untyped-def]
) -> None:
    channels = [grpc.aio.insecure_channel(server.address) for _ in range(max(1, -(-run.subscribers // PER_CHANNEL)))]
    run.received = [{} for _ in range(run.subscribers)]
    live = asyncio.Semaphore(0)

    async def subscriber(index: int) -> None:
        first = True
        async for item in open_stream(channels[index // PER_CHANNEL], index):
            if first:
                live.release()
                first = False
            if item is not None:
                run.record(index, *item)

    rss_before = rss_kib(server.proc.pid)
    tasks = [asyncio.create_task(subscriber(i)) for i in range(run.subscribers)]
    for _ in range(run.subscribers):
        await asyncio.wait_for(live.acquire(), 60)
    await asyncio.sleep(1.0)
    run.memory_per_stream_kib = (rss_kib(server.proc.pid) - rss_before) / run.subscribers
    log(f"{run.name}: {run.subscribers} streams live, {run.memory_per_stream_kib:.1f} KiB each")
    interval = 1.0 / args.rate
    run.first_send = time.perf_counter()
    deadline = run.first_send + args.seconds
    next_at = run.first_send
    while time.perf_counter() < deadline:
        await send(run.sent)
        run.sent += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    run.send_seconds = time.perf_counter() - run.first_send
    run.expected = run.sent * run.subscribers
    if len(run.latencies_ms) < run.expected:
        with contextlib.suppress(TimeoutError):  # what has not arrived 15 s after the last send counts as lost
            await asyncio.wait_for(run.all_received.wait(), 15)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()


def message_text(seq: int) -> str:
    """What every sent message says: its sequence number and send time, padded to a chat message's size."""
    return f"{seq} {time.perf_counter_ns()} ".ljust(PAYLOAD_BYTES - 40, ".")


def received(response) -> tuple[int, int] | None:  # type: ignore[no-untyped-def]
    """(seq, sent_ns) of a StreamEventsResponse carrying a message; None for the live heartbeat."""
    event = response.event
    if event.HasField("message_created"):
        seq, sent_ns = event.message_created.text.split(" ", 2)[:2]
        return int(seq), int(sent_ns)
    return None


async def bench_baseline(args: argparse.Namespace, workdir: Path, subscribers: int, log) -> Run:  # type: ignore[no-untyped-def]
    server = ServerProcess("broadcast", [sys.executable, str(THIS), "--broadcast-server"], child_env({}), workdir)
    from workspace.v1 import chat_pb2

    run = Run("baseline", subscribers)
    try:
        await asyncio.to_thread(server.start)
        async with grpc.aio.insecure_channel(server.address) as sender:
            publish = sender.unary_unary("/bench.Broadcast/Publish")

            async def open_stream(channel, index):  # type: ignore[no-untyped-def]
                # The same messages as the real server's, parsed the same way: the client does equal work.
                subscribe = channel.unary_stream(
                    "/bench.Broadcast/Subscribe", response_deserializer=chat_pb2.StreamEventsResponse.FromString
                )
                async for response in subscribe(b""):
                    yield received(response)

            async def send(seq: int) -> None:
                message = chat_pb2.Message(id=seq, conversation_id=1, sender_id=1, text=message_text(seq))
                message.create_time.GetCurrentTime()
                event = chat_pb2.Event(id=seq, message_created=message)
                event.create_time.CopyFrom(message.create_time)
                await publish(chat_pb2.StreamEventsResponse(event=event).SerializeToString(), timeout=CALL_TIMEOUT)

            await drive(run, server, open_stream, send, args, log)
    finally:
        await asyncio.to_thread(server.stop)
    return run


async def bench_real(args: argparse.Namespace, workdir: Path, url: str, subscribers: int, log) -> Run:  # type: ignore[no-untyped-def]
    from workspace.v1 import auth_pb2, auth_pb2_grpc, chat_pb2, chat_pb2_grpc, users_pb2, users_pb2_grpc

    password = secrets.token_urlsafe(18)
    env = await asyncio.to_thread(
        migrated_server_env,
        url,
        password,
        WORKSPACE_LOG_LEVEL="warning",
        WORKSPACE_STREAM_QUEUE_SIZE="10000",
        # One reader opens every stream: measure the fan-out, not the cap on one person's streams.
        WORKSPACE_RATE_LIMITS="off",
    )
    server = ServerProcess("server", [sys.executable, "-m", "server", "serve"], env, workdir)
    run = Run("server", subscribers)
    try:
        await asyncio.to_thread(server.start)
        async with grpc.aio.insecure_channel(server.address) as channel:
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            users = users_pb2_grpc.UsersServiceStub(channel)
            chat = chat_pb2_grpc.ChatServiceStub(channel)

            async def login(username: str, secret: str) -> tuple[tuple[str, str]]:
                reply = await auth.Login(auth_pb2.LoginRequest(username=username, password=secret))
                return (("authorization", f"Bearer {reply.tokens.access_token}"),)

            admin = await login("admin", password)
            reader = await users.CreateUser(
                users_pb2.CreateUserRequest(user=users_pb2.User(username="reader"), password=password), metadata=admin
            )
            reader_md = await login("reader", password)
            group = await chat.CreateGroupConversation(
                chat_pb2.CreateGroupConversationRequest(name="fan-out", member_ids=[reader.user.id]), metadata=admin
            )
            conversation_id = group.conversation.id

            async def open_stream(channel, index):  # type: ignore[no-untyped-def]
                stub = chat_pb2_grpc.ChatServiceStub(channel)
                async for response in stub.StreamEvents(chat_pb2.StreamEventsRequest(), metadata=reader_md):
                    if response.event.HasField("message_created") or response.event.heartbeat.live:
                        yield received(response)

            async def send(seq: int) -> None:
                await chat.SendMessage(
                    chat_pb2.SendMessageRequest(
                        conversation_id=conversation_id, text=message_text(seq), request_id=f"fan-{seq}"
                    ),
                    metadata=admin,
                    timeout=CALL_TIMEOUT,
                )

            await drive(run, server, open_stream, send, args, log)
    finally:
        await asyncio.to_thread(server.stop)
    return run


async def main_async(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    info = machine()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, grpcio {info['grpcio']}")
    log(f"load: {args.rate:g} messages/s for {args.seconds:g} s to each subscriber count {args.subscribers}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="workspace-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        for count in args.subscribers:
            url = args.database_url or f"sqlite:///{workdir / f'fanout-{count}.db'}"
            if is_postgres(url):
                url = stack.enter_context(postgres_schema(url, log))
            base = await bench_baseline(args, workdir, count, log)
            real = await bench_real(args, workdir, url, count, log)
            rows += [base.row(None), real.row(base)]
    print()
    head = (
        f"{'server':<10} {'subs':>6} {'sent':>6} {'p50 ms':>8} {'p99 ms':>8} {'deliv/s':>10} {'KiB/sub':>8} "
        f"{'lost':>6} {'dup':>5}"
    )
    print(head)
    print("-" * len(head))
    print("\n".join(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000], help="stream counts (100 1000)")
    parser.add_argument("--rate", type=float, default=10.0, help="messages sent per second (default 10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sending (default 10)")
    parser.add_argument("--database-url", help="the real server's database (default: a fresh SQLite file)")
    parser.add_argument("--broadcast-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.broadcast_server:
        asyncio.run(broadcast_server(0))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
