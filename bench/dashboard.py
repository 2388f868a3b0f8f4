"""What the dashboard costs its own machine: its CPU at one tick a second, charts visible, under light load.

    .venv/bin/python bench/dashboard.py [--seconds 60] [--baseline-seconds 20] [--warmup 5] [--rate 2]

One run starts Xvfb (a virtual screen on a free display) and the real server on a fresh SQLite database, and
keeps a light load on it through the client library (one person streaming and sending ``--rate`` messages a
second, plus as many ``WhoAmI`` calls). Then three windows, each in a process of its own, one after another:

1. ``bare Tk``: an empty ttkbootstrap window running its event loop, no network (the floor);
2. ``activity tab``: the dashboard logged in as admin, live, the activity tab in front (charts not drawn);
3. ``charts tab``: the same with the charts in front, redrawn at every tick (the goal: under 10 % of one core).

For each it prints the process's CPU (100 % = one core, from /proc, over the measured seconds after a warm-up),
the stats ticks the window received, how often it drew the whole figure and how often it only blitted the
lines, and the worst lateness of a 100 ms Tk timer (how long the window was unresponsive at most).
It prints and never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _common import ROOT, ServerProcess, cpu_seconds, machine, migrated_server_env

PHASES = ("bare Tk", "activity tab", "charts tab")


# --- the child: one window --------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import ttkbootstrap as ttk

    root = ttk.Window(title="bench", themename="bootstrap-light")
    root.geometry("1280x800+0+0")
    counters = {"ticks": 0, "full_draws": 0, "blits": 0, "slowest_draw_ms": 0.0, "late_ms": 0.0}
    app = None
    if args.child != "bare Tk":
        # This script's folder comes first on sys.path, and this script is called dashboard too: step aside.
        here = Path(__file__).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        from dashboard.app import DashboardApp
        from dashboard.config import Thresholds

        app = DashboardApp(root, args.address, thresholds=Thresholds(), resume=False)
        app.login.username.set("admin")
        app.login.password.set(args.password)
        app.login.submit()

        def front() -> None:
            if app.main is None:
                root.after(100, front)
                return
            app.main.notebook.select(app.main.charts if args.child == "charts tab" else app.main.activity)

        root.after(100, front)

    expected = [time.monotonic() + 0.1]

    def heartbeat() -> None:
        now = time.monotonic()
        if now - started > args.warmup:
            counters["late_ms"] = max(counters["late_ms"], (now - expected[0]) * 1000)
        expected[0] = now + 0.1
        root.after(100, heartbeat)

    def finish() -> None:
        if app is not None and app.main is not None:
            charts = app.main.charts
            counters.update(
                ticks=app.main.ticks,
                full_draws=charts.full_draws,
                blits=charts.blits,
                slowest_draw_ms=charts.slowest_draw * 1000,
            )
        print(json.dumps(counters), flush=True)
        if app is not None:
            app.close()
        else:
            root.destroy()

    started = time.monotonic()
    root.after(100, heartbeat)
    root.after(round((args.warmup + args.seconds + 0.5) * 1000), finish)
    root.mainloop()


# --- the parent: server, load, measurements ---------------------------------------------------------------


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("Xvfb") is None:
        sys.exit("Xvfb is needed: `make system` installs it")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    while not number.endswith(b"\n"):
        ready, _, _ = select.select([read_end], [], [], 15)
        chunk = os.read(read_end, 16) if ready else b""
        if not chunk:
            proc.kill()
            sys.exit("Xvfb did not start")
        number += chunk
    os.close(read_end)
    return proc, f":{int(number)}"


def light_load(address: str, password: str, rate: float, stop: threading.Event, workdir: Path) -> None:
    from workspace.v1 import auth_pb2, chat_pb2, users_pb2
    from workspace_client import FileTokenStore, Session, WorkspaceError, event_stream

    admin = Session(address, token_store=FileTokenStore(workdir / "admin"))
    admin.login("admin", password)
    name, secret = f"load-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    admin.call(admin.users.CreateUser, users_pb2.CreateUserRequest(user=users_pb2.User(username=name), password=secret))
    person = Session(address, token_store=FileTokenStore(workdir / "person"))
    person.login(name, secret)
    stream = event_stream(person, on_item=lambda item: None).start()
    group = person.call(person.chat.CreateGroupConversation, chat_pb2.CreateGroupConversationRequest(name="bench"))
    due = time.monotonic()
    while not stop.is_set():
        request = chat_pb2.SendMessageRequest(
            conversation_id=group.conversation.id, text="hello", request_id=uuid.uuid4().hex
        )
        try:
            person.call(person.chat.SendMessage, request)
            person.call(person.auth.WhoAmI, auth_pb2.WhoAmIRequest())
        except WorkspaceError:
            if stop.is_set():
                break  # the server is stopping at the end of the run
            raise
        due += 1.0 / rate
        stop.wait(max(0.0, due - time.monotonic()))
    stream.stop()
    for session in (admin, person):
        session.close()


def measure(name: str, args: argparse.Namespace, seconds: float, env: dict[str, str]) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", name, "--seconds", str(seconds), "--warmup", str(args.warmup)]
    argv += ["--address", args.address, "--password", args.password]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(args.warmup)
    cpu0, wall0 = cpu_seconds(proc.pid) or 0.0, time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = cpu_seconds(proc.pid) or 0.0, time.monotonic()
    out, _ = proc.communicate(timeout=60)
    counters = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return {"cpu": 100.0 * (cpu1 - cpu0) / (wall1 - wall0), **counters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds with the charts in front")
    parser.add_argument("--baseline-seconds", type=float, default=20.0, help="measured seconds of the other two")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (login, first ticks)")
    parser.add_argument("--rate", type=float, default=2.0, help="messages (and WhoAmI calls) per second of load")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--password", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print(f"charts {args.seconds:g} s, others {args.baseline_seconds:g} s, warm-up {args.warmup:g} s", end="")
    print(f", load {args.rate:g} messages/s")
    xvfb, display = start_xvfb()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as scratch:
        workdir = Path(scratch)
        args.password = secrets.token_urlsafe(12)
        env = migrated_server_env(f"sqlite:///{workdir / 'bench.db'}", args.password)
        server = ServerProcess("server", [sys.executable, "-m", "server", "serve"], env, workdir)
        stop = threading.Event()
        try:
            args.address = server.start()
            load = threading.Thread(target=light_load, args=(args.address, args.password, args.rate, stop, workdir))
            load.start()
            child_env = {**os.environ, "DISPLAY": display, "WORKSPACE_CLIENT_CONFIG_DIR": str(workdir / "config")}
            results = {}
            for name in PHASES:
                seconds = args.seconds if name == "charts tab" else args.baseline_seconds
                results[name] = measure(name, args, seconds, child_env)
        finally:
            stop.set()
            server.stop()
            xvfb.terminate()
            xvfb.wait(10)
    print(
        f"{'window':14} {'CPU % of a core':>16} {'ticks':>6} {'full draws':>11} {'blits':>6} "
        f"{'slowest draw':>13} {'max lateness':>13}"
    )
    for name in PHASES:
        r = results[name]
        print(
            f"{name:14} {r['cpu']:>15.1f}% {r.get('ticks', 0):>6} {r.get('full_draws', 0):>11} "
            f"{r.get('blits', 0):>6} {r.get('slowest_draw_ms', 0):>10.0f} ms {r.get('late_ms', 0):>10.0f} ms"
        )
    cost = results["charts tab"]["cpu"] - results["bare Tk"]["cpu"]
    print(f"the dashboard with live charts: {results['charts tab']['cpu']:.1f}% of one core ({cost:+.1f} over bare Tk)")


if __name__ == "__main__":
    main()
