"""Desktop notifications where the platform has them: ``notify-send`` (libnotify) when it is on PATH.

Never blocks Tk's thread (the command runs in a thread of its own) and never fails: without ``notify-send``, or
when it cannot reach a notification server, nothing is shown and the window title's badge still counts.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

#: The notification disappears after this many ms (where the notification server honours it).
EXPIRE_MS = 6000


def notify_send(title: str, body: str) -> None:
    """Show ``title`` and ``body`` as a desktop notification, if ``notify-send`` exists; return at once."""
    command = shutil.which("notify-send")
    if command is None:
        return

    def show() -> None:
        try:
            subprocess.run(
                [command, "--app-name=Workspace", f"--expire-time={EXPIRE_MS}", "--", title, body],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            pass  # a notification is a courtesy: the badge in the title is what counts

    threading.Thread(target=show, name="notify-send", daemon=True).start()
