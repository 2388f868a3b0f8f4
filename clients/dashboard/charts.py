"""Live charts over the last minutes, drawn with matplotlib inside Tk.

One tick a second must not cost the window its responsiveness, so each tick redraws only the lines (blitting
them over a saved background of the axes, ticks and labels); the whole figure is drawn again only when an
axis' range or the set of lines changes, when the window is resized, or when the tab comes into view. A tab
that is not shown is not drawn at all. A lost connection leaves a gap: a NaN point breaks each line, so no
line is drawn across the outage, and the history before it stays.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
from collections import deque
from collections.abc import Callable

import ttkbootstrap as ttk
from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from workspace.v1 import monitoring_pb2

from .figures import rpc_name, seconds

#: How much history the charts keep and show, seconds.
WINDOW_SECONDS = 300
#: RPCs measured per tick (the busiest ones), and lines per RPC chart (the busiest over the window).
TOP_RPCS = 8
TOP_LINES = 5
NAN = float("nan")
#: Pixels around each axes that a blit restores and copies with it.
BLIT_PAD = 3


class History:
    """Aligned series over a sliding window: one time axis, one deque of values per series key."""

    def __init__(self, window: float = WINDOW_SECONDS, capacity: int = 2 * WINDOW_SECONDS) -> None:
        self.window = window
        self.times: deque[float] = deque(maxlen=capacity)
        self.series: dict[tuple[str, str], deque[float]] = {}

    def add(self, time: float, values: dict[tuple[str, str], float]) -> None:
        self.times.append(time)
        for key in values.keys() - self.series.keys():
            self.series[key] = deque([NAN] * (len(self.times) - 1), maxlen=self.times.maxlen)
        for key, series in self.series.items():
            series.append(values.get(key, NAN))
        while self.times and self.times[0] < time - self.window:
            self.times.popleft()
            for series in self.series.values():
                series.popleft()
        for key in [k for k, s in self.series.items() if all(math.isnan(v) for v in s)]:
            del self.series[key]

    def gap(self, time: float) -> None:
        """The figures stopped: a NaN row, so every line breaks here."""
        if self.times and not all(math.isnan(s[-1]) for s in self.series.values()):
            self.add(time, {})

    def keys(self, chart: str) -> list[str]:
        return sorted(name for kind, name in self.series if kind == chart)


def stats_row(stats: monitoring_pb2.Stats) -> dict[tuple[str, str], float]:
    """The values one tick adds to the charts."""
    row: dict[tuple[str, str], float] = {
        ("messages", "messages/min"): stats.totals.messages_per_minute,
        ("events", "stored"): stats.totals.events_per_second,
        ("events", "delivered"): stats.totals.deliveries_per_second,
    }
    calls: dict[str, float] = {}
    p99: dict[str, float] = {}
    for replica in stats.replicas:
        row[("cpu", replica.replica_id)] = replica.process.cpu_percent
        row[("memory", replica.replica_id)] = replica.process.memory_rss_bytes / 1e6
        for rpc in replica.rpcs:
            name = rpc_name(rpc.method)
            calls[name] = calls.get(name, 0.0) + rpc.calls_per_second
            p99[name] = max(p99.get(name, 0.0), seconds(rpc.p99_latency) * 1000)
    busiest = sorted(calls, key=lambda n: -calls[n])[:TOP_RPCS]
    for name in busiest:
        row[("calls", name)] = calls[name]
        row[("p99", name)] = p99[name]
    return row


#: chart key, title, y unit
CHARTS = (
    ("messages", "Messages per minute", "msg/min"),
    ("events", "Events per second", "events/s"),
    ("calls", "Calls per second, busiest RPCs", "calls/s"),
    ("p99", "p99 latency, busiest RPCs", "ms"),
    ("cpu", "CPU per replica", "% of a core"),
    ("memory", "Memory per replica", "MB"),
)


def _mean(values) -> float:  # type: ignore[no-untyped-def]
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else 0.0


def _padded(ax) -> Bbox:  # type: ignore[no-untyped-def]
    """The axes' box and a few pixels around it: a line ending on the edge must not leave stale pixels behind
    (the blit rounds the box inwards, so the last column would otherwise keep the previous tick's line)."""
    x0, y0, x1, y1 = ax.bbox.extents
    return Bbox.from_extents(x0 - BLIT_PAD, y0 - BLIT_PAD, x1 + BLIT_PAD, y1 + BLIT_PAD)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    return next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= value)


class ChartsView(ttk.Frame):
    """Six small charts; ``render()`` once per tick draws only what changed, and only if ``visible()``."""

    def __init__(self, parent: tk.Misc, history: History, visible: Callable[[], bool]) -> None:
        super().__init__(parent)
        self.history = history
        self.visible = visible
        self.figure = Figure(figsize=(10, 5), dpi=100, layout="constrained")
        self.axes = {}
        for index, (key, title, unit) in enumerate(CHARTS):
            ax = self.figure.add_subplot(2, 3, index + 1)
            ax.set_title(title, fontsize=9, loc="left")
            ax.set_ylabel(unit, fontsize=8)
            ax.set_xlim(-history.window, 0)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            self.axes[key] = ax
        for ax in list(self.axes.values())[3:]:
            ax.set_xlabel("seconds (0 = now)", fontsize=8)
        self.lines: dict[tuple[str, str], object] = {}
        self.canvas = FigureCanvasTkAgg(self.figure, master=self)
        self.canvas.get_tk_widget().pack(fill="both", expand=True)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self._backgrounds: dict[str, object] = {}
        self._needs_full = True
        #: How many times the whole figure was drawn, and how many ticks only blitted the lines (for tests).
        self.full_draws = 0
        self.blits = 0
        #: The longest ``render()`` so far, seconds (the window does nothing else meanwhile).
        self.slowest_draw = 0.0

    def invalidate(self) -> None:
        self._needs_full = True

    def render(self) -> None:
        if not self.visible() or not self.history.times:
            return
        started = time.perf_counter()
        self._render()
        self.slowest_draw = max(self.slowest_draw, time.perf_counter() - started)

    def _render(self) -> None:
        now = self.history.times[-1]
        xs = [t - now for t in self.history.times]
        changed = self._needs_full
        for key, ax in self.axes.items():
            names = self._names(key)
            changed |= self._sync_lines(key, ax, names)
            top = 0.0
            for name in names:
                values = self.history.series[(key, name)]
                line = self.lines[(key, name)]
                line.set_data(xs, list(values))  # type: ignore[attr-defined]
                finite = [v for v in values if not math.isnan(v)]
                top = max(top, max(finite, default=0.0))
            current = ax.get_ylim()[1]
            wanted = nice_ceiling(top * 1.1)
            if wanted > current or wanted < current / 4:
                ax.set_ylim(0, wanted)
                changed = True
        if changed:
            self._needs_full = False
            self.canvas.draw()  # _on_draw saves the backgrounds and draws the lines
            self.full_draws += 1
            return
        for key, ax in self.axes.items():
            background = self._backgrounds.get(key)
            if background is None:
                continue
            self.canvas.restore_region(background)
            for (chart, _), line in self.lines.items():
                if chart == key:
                    ax.draw_artist(line)
            self.canvas.blit(_padded(ax))
        self.blits += 1

    def _names(self, key: str) -> list[str]:
        """The series a chart shows: for the RPC charts, the busiest RPCs over the window (a stable set)."""
        names = self.history.keys(key)
        if key not in ("calls", "p99"):
            return names
        busy = {name: _mean(self.history.series.get(("calls", name), ())) for name in self.history.keys("calls")}
        return sorted(n for n in sorted(busy, key=lambda n: -busy[n])[:TOP_LINES] if n in names)

    def _sync_lines(self, key: str, ax, names: list[str]) -> bool:  # type: ignore[no-untyped-def]
        """Add and remove lines to match the series; True if the set changed (the legend must be redrawn)."""
        changed = False
        for name in names:
            if (key, name) not in self.lines:
                (line,) = ax.plot([], [], label=name, linewidth=1.2, animated=True)
                self.lines[(key, name)] = line
                changed = True
        for chart, name in [k for k in self.lines if k[0] == key and k[1] not in names]:
            self.lines.pop((chart, name)).remove()  # type: ignore[attr-defined]
            changed = True
        if changed:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            if len(names) > 1 or key in ("calls", "p99", "cpu", "memory"):
                legend = ax.legend(fontsize=6, loc="upper left", frameon=False)
                legend.set_in_layout(False)  # a long RPC name must not squeeze the axes
        return changed

    def _on_draw(self, _event) -> None:  # type: ignore[no-untyped-def]
        self._backgrounds = {key: self.canvas.copy_from_bbox(_padded(ax)) for key, ax in self.axes.items()}
        for (chart, _), line in self.lines.items():
            self.axes[chart].draw_artist(line)
        self.canvas.blit(self.figure.bbox)
