"""Away when idle: after a while without keyboard or mouse input in the app's window, the person's presence
becomes away (``PresenceService.UpdatePresence``); the next input makes it online again.

``WORKSPACE_DESKTOP_IDLE_MINUTES`` (default 10; 0 turns it off) says how long "a while" is. Only the state is
changed, never the status text the person wrote. The app has no way to choose a state by hand, so the state is
the watcher's to set.
"""

from __future__ import annotations

import logging
import os
import time
import tkinter as tk
from collections.abc import Callable

from google.protobuf import field_mask_pb2
from workspace.v1 import presence_pb2
from workspace_client import Session
from workspace_client.tk_bridge import Controller

log = logging.getLogger("desktop.idle")

IDLE_VARIABLE = "WORKSPACE_DESKTOP_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 10.0
#: How often idleness is checked, ms: away comes at most this late.
CHECK_MS = 5000
#: The input that counts as activity (bound on every widget of the app with ``bind_all``).
ACTIVITY = ("<Key>", "<Motion>", "<Button>")


def idle_seconds_from_environment() -> float:
    """``$WORKSPACE_DESKTOP_IDLE_MINUTES`` in seconds (fractions allowed); 0 or less: never away."""
    text = os.environ.get(IDLE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_IDLE_MINUTES * 60
    try:
        return float(text) * 60
    except ValueError:
        log.warning("%s=%r is not a number of minutes: using %s", IDLE_VARIABLE, text, DEFAULT_IDLE_MINUTES)
        return DEFAULT_IDLE_MINUTES * 60


def update_state(session: Session, state: presence_pb2.PresenceState.ValueType) -> presence_pb2.Presence:
    """Blocking: sets the caller's presence state (only ``state``: the status text stays as it is)."""
    request = presence_pb2.UpdatePresenceRequest(
        presence=presence_pb2.Presence(state=state), update_mask=field_mask_pb2.FieldMask(paths=["state"])
    )
    return session.call(session.presence.UpdatePresence, request).presence


class IdleWatcher:
    """Notes the time of every input (cheap: one number), looks every ``check_ms`` whether it is older than
    ``idle_seconds``. Widgets and timers on Tk's thread only; the RPC in a worker through ``controller.run``."""

    def __init__(
        self,
        widget: tk.Misc,
        controller: Controller,
        session: Session,
        idle_seconds: float | None = None,
        check_ms: int = CHECK_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.widget, self.controller, self.session, self.clock = widget, controller, session, clock
        self.idle_seconds = idle_seconds_from_environment() if idle_seconds is None else idle_seconds
        self.check_ms = check_ms
        self.last_input = clock()
        #: What the person is: True away, False online, None not known yet (no input and not idle yet).
        self.wanted: bool | None = None
        #: What the server was last told successfully (None: nothing yet).
        self.told: bool | None = None
        self._sending = False
        self.stopped = False
        self._bindings: list[tuple[str, str]] = []
        self._after: str | None = None

    @property
    def enabled(self) -> bool:
        return self.idle_seconds > 0

    def start(self) -> None:
        if not self.enabled or self._bindings:
            return
        self.last_input = self.clock()
        for sequence in ACTIVITY:
            self._bindings.append((sequence, self.widget.bind_all(sequence, self._input, add="+")))
        self._after = self.widget.after(self.check_ms, self._check)
        self.widget.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is self.widget:
            self.stop()

    def stop(self) -> None:
        self.stopped = True
        if self._after is not None:
            self.widget.after_cancel(self._after)
            self._after = None
        for sequence, funcid in self._bindings:
            _unbind_all(self.widget, sequence, funcid)
        self._bindings = []

    def _input(self, _event: tk.Event) -> None:
        self.last_input = self.clock()
        if self.wanted is not False:  # back (or the first input: a previous run may have left the person away)
            self.wanted = False
            self._sync()

    def _check(self) -> None:
        self._after = self.widget.after(self.check_ms, self._check)
        if self.clock() - self.last_input >= self.idle_seconds:
            self.wanted = True
        self._sync()  # also retries a call that failed (offline): input alone never retries, it is too frequent

    def _sync(self) -> None:
        """One call at a time, only when the server does not know yet."""
        if self.stopped or self._sending or self.wanted is None or self.wanted == self.told:
            return
        away = self.wanted
        self._sending = True
        state = presence_pb2.PRESENCE_STATE_AWAY if away else presence_pb2.PRESENCE_STATE_ONLINE

        def done(_presence: presence_pb2.Presence) -> None:
            self._sending, self.told = False, away
            self._sync()  # the person may have come back (or left) meanwhile

        def failed(error: Exception) -> None:
            # Offline (the status bar says so already) or refused: the next check tries again.
            self._sending = False
            log.info("could not set the presence to %s: %s", "away" if away else "online", error)

        self.controller.run(lambda: update_state(self.session, state), done, failed)


def _unbind_all(widget: tk.Misc, sequence: str, funcid: str) -> None:
    """Removes this one binding of ``bind_all`` (``unbind_all`` would remove every module's binding)."""
    script = widget.tk.call("bind", "all", sequence)
    kept = "\n".join(line for line in str(script).split("\n") if funcid not in line)
    widget.tk.call("bind", "all", sequence, kept)
    widget._root().deletecommand(funcid)  # bind_all registered it on the root (which deletes it when destroyed)
