"""Desktop apps under test: a real X server (Xvfb) on a free display, Tk driven in the test's own thread.

The app runs in-process: the test creates the Tk root, drives widgets with ``invoke()``, ``insert()`` and
``event_generate()``, and pumps Tk's event loop with ``pump(root, condition)`` until what it waits for is on
screen (a deadline, never a sleep). Screenshots go to tests/artifacts/ (Pillow's ImageGrab on the display).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import select
import shutil
import subprocess
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .servers import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREEN = "1280x800x24"


class VirtualDisplay:
    """``Xvfb -displayfd``: the X server picks a free display number and tells us which."""

    def __init__(self, screen: str = SCREEN) -> None:
        self.screen = screen
        self.display = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> VirtualDisplay:
        if shutil.which("Xvfb") is None:
            pytest.fail("Xvfb is not installed: `make system` installs it (Debian package xvfb)", pytrace=False)
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", self.screen, "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_end)
        number = b""
        deadline = time.monotonic() + timeout
        try:
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise RuntimeError(f"Xvfb did not announce its display within {timeout}s")
                chunk = os.read(read_end, 16)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited with {self.process.wait()}")
                number += chunk
        finally:
            os.close(read_end)
        self.display = f":{int(number)}"
        return self

    def screenshot(self, name: str, widget: tk.Misc | None = None) -> Path:
        """Save the screen (or one window's area) as tests/artifacts/<name>.png."""
        from PIL import ImageGrab

        bbox = None
        if widget is not None:
            x, y = widget.winfo_rootx(), widget.winfo_rooty()
            bbox = (x, y, x + widget.winfo_width(), y + widget.winfo_height())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        ImageGrab.grab(bbox=bbox, xdisplay=self.display).save(path)
        return path

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_SHARED: VirtualDisplay | None = None


def virtual_display() -> Iterator[VirtualDisplay]:
    """A virtual screen while the generator runs, DISPLAY pointing at it: a test module's fixture yields from it.

    One X server serves every module of a test process and stops when the process ends. Tk keeps its display
    connection until its interpreter is collected, and an interpreter can outlive its module (a style or a
    callback still holds the root): stopping the X server under it makes Tk end the whole process ("XIO: fatal
    IO error"), so the second GUI module in a process would never run.
    """
    global _SHARED
    if _SHARED is None or _SHARED.process is None or _SHARED.process.poll() is not None:
        _SHARED = VirtualDisplay().start()
        atexit.register(_SHARED.stop)
    display = _SHARED
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display.display
    yield display
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous


#: Every Tk root the tests made, alive until the process ends (see ``new_root``).
_ROOTS: list[tk.Misc] = []


def _release_roots() -> None:
    _ROOTS.clear()
    gc.collect()


def new_root(title: str, geometry: str = "1280x800+0+0") -> tk.Misc:
    """A ttkbootstrap root window for one test; ``close_root`` ends it.

    The root object itself is kept until the process ends. A Tcl interpreter must be deleted by the thread that
    made it: if the last reference to a root (or to any widget, variable or image, which hold the root) went
    away in a worker thread (an RPC's callback finishing, a garbage collection that a worker's allocation set
    off), Tcl would abort the whole process ("Tcl_AsyncDelete: async handler deleted by the wrong thread").
    Keeping the roots here means their interpreters are only deleted at exit, in the main thread, while the X
    server still runs (atexit runs this before the display's own handler, registered earlier).
    """
    import ttkbootstrap as ttk

    if not _ROOTS:
        atexit.register(_release_roots)
    root = ttk.Window(title=title, themename="bootstrap-light")
    root.geometry(geometry)
    _ROOTS.append(root)
    return root


def close_root(root: tk.Misc) -> None:
    """Destroy a test's root window (the app may have destroyed it already) and collect what it held, here."""
    with contextlib.suppress(tk.TclError):
        root.destroy()
    gc.collect()


def pump(root: tk.Misc, condition: Callable[[], object], timeout: float = 15.0, message: str = "condition") -> object:
    """Run Tk's event loop until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        root.update()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.01)


def settle(root: tk.Misc, seconds: float) -> None:
    """Keep the window alive and drawn for a moment (before a screenshot): the loop runs, nothing is waited for."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        root.update()
        time.sleep(0.01)
