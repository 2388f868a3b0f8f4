"""What the desktop app adds to a message's way to the screen, and what a long conversation costs it in memory.

    .venv/bin/python bench/desktop.py [--messages 300] [--interval-ms 50-100] [--history 10000] [--small 100]

One run starts Xvfb (a virtual screen on a free display) and the real server on a fresh SQLite database (rate
limits off), creates two people through the API (Dana, whose app is measured, and Ann, a script on the client
library), and the conversations: a ``--history``-message one and a ``--small``-message one, sent in batches
before the app starts. Then, in this process, the app (``desktop.DesktopApp``) logs in as Dana, Tk's loop
running in the main thread as it does under ``python -m desktop``:

1. **latency**: Ann sends ``--messages`` messages, one every 50-100 ms, each with a unique marker, to a
   conversation open in the app. The time from the send to the marker appearing in the app's message view (the
   ``Text`` widget, checked from the Tk thread after each redraw of the view and by a 5 ms poll) is compared
   with the same messages' arrival at a bare ``workspace_client`` event stream of Dana's in this same process
   (the baseline: what the server and the library take; the difference is what the app adds);
2. **memory**: the process's resident memory (VmRSS from /proc) before opening a conversation, after opening
   the ``--small`` one and scrolling up to its beginning, and after the same with the ``--history`` one (the
   view's load-older path, 50 messages a page, until "The beginning of the conversation"), with the time Tk's
   thread spends writing each older page into the view (``ChatView._prepend``: it should not grow with what is
   already there); and the number of Tk widgets under the message view (recursively), which does not grow with
   the messages.

It prints a table and never asserts.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
import tkinter as tk
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import ServerProcess, machine, migrated_server_env
from dashboard import start_xvfb

# This script is called desktop, like the app's package: step aside so that ``import desktop`` finds the app.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.modules.pop("desktop", None)

BATCH = 100


#: Messages sent into the long conversation once it is all loaded, to time how the view takes a new one.
ARRIVALS = 20


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def widgets_under(widget: tk.Misc) -> int:
    return 1 + sum(widgets_under(child) for child in widget.winfo_children())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def pump(root: tk.Misc, condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        root.update()
        time.sleep(0.002)


def fill(session: Any, conversation_id: int, count: int, label: str) -> None:
    """``count`` messages through ``SendMessage``, in batches of ``BATCH`` sent by 4 threads."""
    from workspace.v1 import chat_pb2

    def send(i: int) -> None:
        request = chat_pb2.SendMessageRequest(
            conversation_id=conversation_id, text=f"{label} {i:05d}", request_id=uuid.uuid4().hex
        )
        session.call(session.chat.SendMessage, request)

    with ThreadPoolExecutor(4) as pool:
        for start in range(0, count, BATCH):
            list(pool.map(send, range(start, min(count, start + BATCH))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300, help="messages timed from Ann's send to the screen")
    parser.add_argument("--interval-ms", default="50-100", help="pause between two of them, ms (MIN-MAX)")
    parser.add_argument("--history", type=int, default=10_000, help="messages of the long conversation")
    parser.add_argument("--small", type=int, default=100, help="messages of the short conversation")
    args = parser.parse_args()
    low, _, high = args.interval_ms.partition("-")
    interval = (float(low) / 1000, float(high or low) / 1000)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print(f"latency: {args.messages} messages every {args.interval_ms} ms; memory: {args.small} and {args.history}")
    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    server: ServerProcess | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-desktop-") as scratch:
            workdir = Path(scratch)
            os.environ["WORKSPACE_CLIENT_CONFIG_DIR"] = str(workdir / "config")
            password = secrets.token_urlsafe(12)
            env = migrated_server_env(f"sqlite:///{workdir / 'bench.db'}", password, WORKSPACE_RATE_LIMITS="off")
            server = ServerProcess("server", [sys.executable, "-m", "server", "serve"], env, workdir)
            address = server.start()
            run(args, interval, address, password, workdir)
    finally:
        if server is not None:
            server.stop()
        xvfb.terminate()
        xvfb.wait(10)


def run(args: argparse.Namespace, interval: tuple[float, float], address: str, password: str, workdir: Path) -> None:
    import ttkbootstrap as ttk
    from desktop.app import DesktopApp
    from workspace.v1 import chat_pb2, users_pb2
    from workspace_client import FileTokenStore, Session, event_stream

    admin = Session(address, token_store=FileTokenStore(workdir / "admin"))
    admin.login("admin", password)
    people = {}
    for name, display_name in (("dana", "Dana Desk"), ("ann", "Ann Example")):
        secret = secrets.token_urlsafe(12)
        user = users_pb2.User(username=f"{name}-{uuid.uuid4().hex[:6]}", display_name=display_name)
        user = admin.call(admin.users.CreateUser, users_pb2.CreateUserRequest(user=user, password=secret)).user
        people[name] = (user, secret)
    admin.close()
    dana, dana_password = people["dana"]
    ann = Session(address, token_store=FileTokenStore(workdir / "ann"))
    ann.login(people["ann"][0].username, people["ann"][1])

    def room(name: str) -> int:
        request = chat_pb2.CreateGroupConversationRequest(name=name, member_ids=[dana.id])
        return ann.call(ann.chat.CreateGroupConversation, request).conversation.id

    live_id, empty_id, small_id, big_id = room("latency"), room("empty"), room("small"), room("history")
    started = time.monotonic()
    fill(ann, small_id, args.small, "small")
    fill(ann, big_id, args.history, "history")
    print(f"created {args.small + args.history} messages in {time.monotonic() - started:.1f} s")

    # The baseline: a bare event stream of Dana's, in this process.
    bare_seen: dict[str, float] = {}
    bare_live = threading.Event()
    bare_session = Session(address, token_store=FileTokenStore(workdir / "bare"))
    bare_session.login(dana.username, dana_password)

    def bare_item(response: chat_pb2.StreamEventsResponse) -> None:
        event = response.event
        if event.HasField("heartbeat") and event.heartbeat.live:
            bare_live.set()
        if event.WhichOneof("payload") == "message_created" and event.message_created.text.startswith("mark-"):
            bare_seen.setdefault(event.message_created.text, time.monotonic())

    bare = event_stream(bare_session, on_item=bare_item, deliver_heartbeats=True).start()

    # The app, logged in as Dana, its loop in this (main) thread.
    root = ttk.Window(title="Workspace", themename="bootstrap-light")
    root.geometry("1280x800+0+0")
    app = DesktopApp(root, address, resume=False)
    assert app.login is not None
    for field, value in (("server", address), ("username", dana.username), ("password", dana_password)):
        app.login.entries[field].delete(0, "end")
        app.login.entries[field].insert(0, value)
    app.login.button.invoke()
    pump(root, lambda: app.main is not None and app.main.live, 60, "the app's live stream")
    assert app.main is not None
    chat = app.main.chat
    pump(root, lambda: big_id in chat.conversations, 30, "the conversations")

    def open_and_wait(conversation_id: int) -> None:
        chat.open(conversation_id)
        pump(root, lambda: not chat.loading_older, 60, "the conversation's last page")

    open_and_wait(live_id)
    pump(root, bare_live.is_set, 30, "the bare stream")

    # 1. latency
    sent: dict[str, float] = {}
    shown: dict[str, float] = {}
    waiting: set[str] = set()
    lock = threading.Lock()

    def look() -> None:
        with lock:
            candidates = list(waiting)
        now = time.monotonic()
        for marker in candidates:
            if chat.text.search(marker, "1.0", "end"):
                shown[marker] = now
                with lock:
                    waiting.discard(marker)

    at_end = chat._at_end  # where a new message is written into the view

    def rendered(*a: Any, **k: Any) -> None:
        at_end(*a, **k)
        look()

    chat._at_end = rendered  # type: ignore[method-assign]

    def poll() -> None:
        look()
        root.after(5, poll)

    root.after(5, poll)

    def sender() -> None:
        for i in range(args.messages):
            marker = f"mark-{i:05d}-{uuid.uuid4().hex[:8]}"
            request = chat_pb2.SendMessageRequest(conversation_id=live_id, text=marker, request_id=uuid.uuid4().hex)
            with lock:
                waiting.add(marker)
            sent[marker] = time.monotonic()
            ann.call(ann.chat.SendMessage, request)
            time.sleep(random.uniform(*interval))

    thread = threading.Thread(target=sender)
    thread.start()
    pump(
        root,
        lambda: not thread.is_alive() and len(shown) == len(sent) == args.messages,
        60 + args.messages * interval[1] * 4,
        "every message on the screen",
    )
    thread.join()
    pump(root, lambda: len(bare_seen) >= args.messages, 30, "the bare stream's messages")
    chat._at_end = at_end  # type: ignore[method-assign]
    app_ms = [(shown[m] - sent[m]) * 1000 for m in sent]
    bare_ms = [(bare_seen[m] - sent[m]) * 1000 for m in sent]
    bare.stop()
    bare_session.close()

    # 2. memory
    writes: list[float] = []  # ms of Tk's thread per older page written into the view, of the last conversation

    def scroll_to_beginning() -> int:
        """Scroll the view to its top until it has loaded the first message: its own load-older path."""
        pages = [0]
        load_older = chat.load_older
        prepend = chat._prepend
        writes.clear()

        def counted() -> None:
            pages[0] += 1
            load_older()

        def timed(page: Any) -> None:
            started = time.perf_counter()
            prepend(page)
            writes.append((time.perf_counter() - started) * 1000)

        chat.load_older = counted  # type: ignore[method-assign]
        chat._prepend = timed  # type: ignore[method-assign]
        while chat.older_token:
            chat.text.yview_moveto(0.0)
            root.update()  # the scroll reaches ``_scrolled``, which asks for the page before
            if not chat.loading_older and chat.older_token:
                chat.load_older()
            pump(root, lambda: not chat.loading_older, 60, "an older page")
        chat.load_older = load_older  # type: ignore[method-assign]
        chat._prepend = prepend  # type: ignore[method-assign]
        return pages[0]

    memory: list[tuple[str, int, int, float, float, int]] = []

    def measure(label: str, seconds: float = 0.0, pages: int = 0) -> None:
        gc.collect()
        root.update()
        lines = int(chat.text.index("end-1c").split(".")[0])
        memory.append((label, len(chat.messages), pages, seconds, rss_mib(), lines))

    open_and_wait(empty_id)
    measure("before opening")
    widgets_before = widgets_under(chat.text.master)
    for label, conversation_id in ((f"{args.small} messages", small_id), (f"{args.history} messages", big_id)):
        started = time.monotonic()
        open_and_wait(conversation_id)
        pages = scroll_to_beginning()
        measure(label, time.monotonic() - started, pages)
    complete = "The beginning of the conversation" in chat.message_text()
    widgets_after = widgets_under(chat.text.master)

    # 3. new messages arriving in the view of --history messages: Tk's time for each, against a whole redraw
    arrivals: list[float] = []
    append = chat._append

    def timed_append(message: Any) -> None:
        started = time.perf_counter()
        append(message)
        arrivals.append((time.perf_counter() - started) * 1000)

    chat._append = timed_append  # type: ignore[method-assign]
    for i in range(ARRIVALS):
        request = chat_pb2.SendMessageRequest(conversation_id=big_id, text=f"late {i}", request_id=uuid.uuid4().hex)
        ann.call(ann.chat.SendMessage, request)
    pump(root, lambda: len(arrivals) >= ARRIVALS, 60, "the late messages")
    chat._append = append  # type: ignore[method-assign]
    started = time.perf_counter()
    chat._render()
    redraw_ms = (time.perf_counter() - started) * 1000
    window_widgets = widgets_under(root)
    app.close()
    ann.close()

    print()
    print(f"{'to the screen':28} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (("bare event stream", bare_ms), ("app's message view", app_ms)):
        print(
            f"{name:28} {len(values):>5} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f} "
            f"{max(values):>8.1f}"
        )
    added = [a - b for a, b in zip(app_ms, bare_ms, strict=True)]
    print(
        f"{'the app adds':28} {len(added):>5} {percentile(added, 50):>8.1f} {percentile(added, 99):>8.1f} "
        f"{max(added):>8.1f}"
    )
    print(f"(mean {statistics.fmean(app_ms):.1f} ms in the app, {statistics.fmean(bare_ms):.1f} ms bare)")
    print()
    print(
        f"{'conversation':22} {'loaded':>7} {'pages':>6} {'seconds':>8} {'RSS MiB':>8} {'+MiB':>7} {'text lines':>11}"
    )
    base = memory[0][4]
    for label, loaded, pages, seconds, rss, lines in memory:
        print(f"{label:22} {loaded:>7} {pages:>6} {seconds:>8.1f} {rss:>8.1f} {rss - base:>+7.1f} {lines:>11}")
    print(f"scrolled to the beginning: {'yes' if complete else 'no'}")
    if writes:
        tenth = max(1, len(writes) // 10)
        print(
            f"writing one older page into the view ({len(writes)} pages of the last): median "
            f"{statistics.median(writes):.1f} ms, first {tenth} {statistics.fmean(writes[:tenth]):.1f} ms, last "
            f"{tenth} {statistics.fmean(writes[-tenth:]):.1f} ms, max {max(writes):.1f} ms"
        )
    print(
        f"a new message in the view of {memory[-1][1]} (Tk's thread, {len(arrivals)} messages): median "
        f"{statistics.median(arrivals):.1f} ms, max {max(arrivals):.1f} ms; the whole view written again: "
        f"{redraw_ms:.0f} ms"
    )
    print(
        f"Tk widgets under the message view: {widgets_before} before, {widgets_after} with {memory[-1][1]} messages "
        f"(the whole window: {window_widgets})"
    )


if __name__ == "__main__":
    main()
