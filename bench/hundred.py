"""A hundred people at work: ten groups of ten, each person typing then sending a message every second.

    .venv/bin/python bench/hundred.py [--seconds 60] [--database-url URL] [--replicas N]

By default the real server runs on a fresh SQLite file; with a PostgreSQL URL it runs ``--replicas`` server
processes (2 by default) on a schema of its own, and the people are spread over them round-robin, so
messages cross replicas. Each person has one ``StreamEvents`` stream and, once a second (each on their
own phase), calls ``SendTyping`` then ``SendMessage`` in their group. Every member's stream records every
message of the group, the sender's included. At the end it prints delivery latency p50/p99 (send call to
receipt, same clock), deliveries, typing events seen, RPC errors by code, and messages lost or duplicated
per receiver (goal: none). It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
from _common import ServerProcess, bench_database, is_postgres, machine, migrated_server_env

PEOPLE = 100
GROUP_SIZE = 10


async def run(args: argparse.Namespace, url: str, workdir: Path, log) -> str:  # type: ignore[no-untyped-def]
    from workspace.v1 import (
        auth_pb2,
        auth_pb2_grpc,
        chat_pb2,
        chat_pb2_grpc,
        presence_pb2,
        presence_pb2_grpc,
        users_pb2,
        users_pb2_grpc,
    )

    password = secrets.token_urlsafe(18)
    env = await asyncio.to_thread(migrated_server_env, url, password, WORKSPACE_LOG_LEVEL="warning")
    replicas = args.replicas if is_postgres(url) else 1
    servers = [
        ServerProcess(f"server-{i}", [sys.executable, "-m", "server", "serve"], env, workdir) for i in range(replicas)
    ]
    try:
        for server in servers:
            await asyncio.to_thread(server.start)
        log(f"{replicas} server process(es): {', '.join(s.address for s in servers)}")
        channels = [grpc.aio.insecure_channel(server.address) for server in servers]
        admin_auth = auth_pb2_grpc.AuthServiceStub(channels[0])

        async def login(channel: grpc.aio.Channel, username: str) -> tuple[tuple[str, str]]:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(username=username, password=password)
            )
            return (("authorization", f"Bearer {reply.tokens.access_token}"),)

        admin = (
            (
                "authorization",
                "Bearer "
                + (
                    await admin_auth.Login(auth_pb2.LoginRequest(username="admin", password=password))
                ).tokens.access_token,
            ),
        )
        users = users_pb2_grpc.UsersServiceStub(channels[0])
        ids = []
        for i in range(PEOPLE):
            created = await users.CreateUser(
                users_pb2.CreateUserRequest(user=users_pb2.User(username=f"person{i:03d}"), password=password),
                metadata=admin,
            )
            ids.append(created.user.id)
        people = [
            (i, channels[i % replicas], await login(channels[i % replicas], f"person{i:03d}")) for i in range(PEOPLE)
        ]
        groups: dict[int, int] = {}  # person index -> conversation id
        for g in range(PEOPLE // GROUP_SIZE):
            members = list(range(g * GROUP_SIZE, (g + 1) * GROUP_SIZE))
            _, channel, md = people[members[0]]
            made = await chat_pb2_grpc.ChatServiceStub(channel).CreateGroupConversation(
                chat_pb2.CreateGroupConversationRequest(name=f"team {g}", member_ids=[ids[m] for m in members[1:]]),
                metadata=md,
            )
            for m in members:
                groups[m] = made.conversation.id
        log(f"{PEOPLE} people in {len(set(groups.values()))} groups of {GROUP_SIZE}")

        latencies: list[float] = []
        seen: Counter[tuple[int, int, int]] = Counter()  # (receiver, sender, seq) -> times received
        typing_seen = 0
        errors: Counter[str] = Counter()
        sent: Counter[int] = Counter()  # sender -> messages sent
        live = asyncio.Semaphore(0)
        stop_sending = asyncio.Event()
        expected = float("inf")  # deliveries to wait for, known once sending stops
        all_delivered = asyncio.Event()

        async def reader(index: int, channel: grpc.aio.Channel, md) -> None:  # type: ignore[no-untyped-def]
            nonlocal typing_seen, expected
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            try:
                async for response in stub.StreamEvents(chat_pb2.StreamEventsRequest(), metadata=md):
                    event = response.event
                    if event.heartbeat.live:
                        live.release()
                    elif event.HasField("message_created"):
                        sender, seq, sent_ns = event.message_created.text.split(" ")[:3]
                        latencies.append((time.perf_counter_ns() - int(sent_ns)) / 1e6)
                        seen[index, int(sender), int(seq)] += 1
                        if len(latencies) >= expected:
                            all_delivered.set()
                    elif event.HasField("typing"):
                        typing_seen += 1
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    errors[f"stream {e.code().name}"] += 1

        async def sender(index: int, channel: grpc.aio.Channel, md) -> None:  # type: ignore[no-untyped-def]
            chat = chat_pb2_grpc.ChatServiceStub(channel)
            presence = presence_pb2_grpc.PresenceServiceStub(channel)
            conversation = groups[index]
            await asyncio.sleep(index / PEOPLE)  # everyone on their own phase within the second
            next_at = time.perf_counter()
            seq = 0
            while not stop_sending.is_set():
                try:
                    await presence.SendTyping(presence_pb2.SendTypingRequest(conversation_id=conversation), metadata=md)
                    text = f"{index} {seq} {time.perf_counter_ns()} hello from person {index}"
                    await chat.SendMessage(
                        chat_pb2.SendMessageRequest(
                            conversation_id=conversation, text=text, request_id=f"{index}-{seq}"
                        ),
                        metadata=md,
                    )
                    sent[index] += 1
                except grpc.aio.AioRpcError as e:
                    errors[f"send {e.code().name}"] += 1
                seq += 1
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        readers = [asyncio.create_task(reader(i, channel, md)) for i, channel, md in people]
        for _ in people:
            await asyncio.wait_for(live.acquire(), 60)
        log(f"{PEOPLE} streams live; sending for {args.seconds:g} s")
        started = time.perf_counter()
        senders = [asyncio.create_task(sender(i, channel, md)) for i, channel, md in people]
        await asyncio.sleep(args.seconds)
        stop_sending.set()
        await asyncio.gather(*senders)
        elapsed = time.perf_counter() - started
        expected = sum(sent.values()) * GROUP_SIZE
        if len(latencies) < expected:
            with contextlib.suppress(TimeoutError):  # not there 10 s after the last send: counted as lost
                await asyncio.wait_for(all_delivered.wait(), 10)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for channel in channels:
            await channel.close()
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)

    lost = duplicated = 0
    for receiver in range(PEOPLE):
        group = groups[receiver]
        for member in (m for m in range(PEOPLE) if groups[m] == group):
            for seq in range(sent[member]):
                count = seen[receiver, member, seq]
                lost += count == 0
                duplicated += max(0, count - 1)
    lat = sorted(latencies) or [float("nan")]
    database = "postgresql" if is_postgres(url) else "sqlite"
    return (
        f"{database:<10} {replicas:>8} {sum(sent.values()):>6} {sum(sent.values()) / elapsed:>7.1f} "
        f"{len(latencies):>9} {lat[len(lat) // 2]:>8.1f} {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:>8.1f} "
        f"{typing_seen:>7} {lost:>5} {duplicated:>5}  {dict(errors) or '-'}"
    )


async def main_async(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    info = machine()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, grpcio {info['grpcio']}")
    with bench_database(args.database_url, "workspace-bench-", log, "hundred.db") as (url, workdir):
        row = await run(args, url, workdir, log)
    print()
    head = (
        f"{'database':<10} {'replicas':>8} {'sent':>6} {'msg/s':>7} {'delivered':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'typing':>7} {'lost':>5} {'dup':>5}  errors"
    )
    print(head)
    print("-" * len(head))
    print(row)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of sending (default 60)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file; PostgreSQL gets a schema of its own")
    parser.add_argument("--replicas", type=int, default=2, help="server processes on PostgreSQL (default 2)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
