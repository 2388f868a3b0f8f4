"""Turning a ``Stats`` message into what the cards and charts show: plain numbers and short texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from workspace.v1 import monitoring_pb2

from .config import Thresholds

#: A replica younger than this shows its uptime in amber: it restarted recently.
RECENT_RESTART_SECONDS = 120.0
#: The stream kinds, short, for the open streams card (events, activity, stats).
STREAM_ABBREVIATIONS = {"events": "ev", "activity": "act", "stats": "st"}
LEVEL_STYLE = {"ok": "success", "amber": "warning", "red": "danger", "none": "secondary"}
WORST = {"none": 0, "ok": 1, "amber": 2, "red": 3}


@dataclass(frozen=True)
class CardValue:
    value: str
    detail: str
    level: str  # ok, amber, red, none


def seconds(duration) -> float:  # type: ignore[no-untyped-def]
    return duration.seconds + duration.nanos / 1e9


def short_duration(total: float) -> str:
    total = int(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def short_number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def local_time(timestamp, *, short: bool = False) -> str:  # type: ignore[no-untyped-def]
    """A timestamp in local time; ``short``: only the time of day when it is today."""
    if not timestamp.seconds:
        return "—"
    moment = datetime.fromtimestamp(timestamp.seconds, UTC).astimezone()
    if short and moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def rpc_name(method: str) -> str:
    """``/workspace.v1.ChatService/SendMessage`` -> ``Chat.SendMessage``."""
    service, _, name = method.rpartition("/")
    service = service.rsplit(".", 1)[-1].removesuffix("Service")
    return f"{service}.{name}" if service else name


def worst(*levels: str) -> str:
    return max(levels, key=WORST.__getitem__, default="none")


def cards(stats: monitoring_pb2.Stats, thresholds: Thresholds) -> dict[str, CardValue]:
    totals, replicas = stats.totals, list(stats.replicas)
    streams: dict[str, int] = {}
    for replica in replicas:
        for count in replica.open_streams:
            streams[count.kind] = streams.get(count.kind, 0) + count.count
    by_kind = " · ".join(f"{STREAM_ABBREVIATIONS.get(kind, kind)} {n}" for kind, n in sorted(streams.items())) or "none"
    error_pct, server_pct = totals.error_rate * 100, totals.server_error_rate * 100
    uptimes = [seconds(r.uptime) for r in replicas]
    versions = sorted({r.version for r in replicas})
    cpu = max((r.process.cpu_percent for r in replicas), default=0.0)
    memory = max((r.process.memory_rss_bytes for r in replicas), default=0) / 1e6
    unreachable = [r.replica_id for r in replicas if not r.database.reachable]
    latency = max((seconds(r.database.query_latency) * 1000 for r in replicas), default=0.0)
    database_kind = replicas[0].database.kind if replicas else ""
    pool_use = sum(r.database.pool_in_use for r in replicas)
    pool_size = sum(r.database.pool_size for r in replicas)
    return {
        "people": CardValue(
            str(totals.connected_people),
            "with a live stream",
            thresholds.level("connected_people", totals.connected_people),
        ),
        "streams": CardValue(str(totals.open_streams), by_kind, thresholds.level("open_streams", totals.open_streams)),
        "messages": CardValue(
            short_number(totals.messages_per_minute),
            "over the last 60 s",
            thresholds.level("messages_per_minute", totals.messages_per_minute),
        ),
        "events": CardValue(
            short_number(totals.events_per_second),
            f"delivered {short_number(totals.deliveries_per_second)}/s",
            thresholds.level("events_per_second", totals.events_per_second),
        ),
        "errors": CardValue(
            f"{error_pct:.1f} %",
            f"server side {server_pct:.1f} %",
            thresholds.level("error_rate", error_pct),
        ),
        "uptime": CardValue(
            short_duration(max(uptimes)) if uptimes else "—",
            f"youngest {short_duration(min(uptimes))}" if len(uptimes) > 1 else "since last start",
            ("amber" if min(uptimes) < RECENT_RESTART_SECONDS else "ok") if uptimes else "none",
        ),
        "version": CardValue(
            ", ".join(versions) or "—",
            "mixed versions" if len(versions) > 1 else "every replica",
            ("amber" if len(versions) > 1 else "ok") if versions else "none",
        ),
        "replicas": CardValue(
            f"{totals.live_replicas} live",
            f"CPU {cpu:.0f} % · {memory:.0f} MB",
            "red"
            if not replicas
            else worst(thresholds.level("cpu_percent", cpu), thresholds.level("memory_mb", memory)),
        ),
        "database": CardValue(
            "unreachable" if unreachable else f"{latency:.1f} ms",
            f"from {', '.join(unreachable)}" if unreachable else f"{database_kind} · pool {pool_use}/{pool_size}",
            "red" if unreachable else (thresholds.level("db_latency_ms", latency) if replicas else "none"),
        ),
    }


CARD_TITLES = {
    "people": "Connected",
    "streams": "Open streams",
    "messages": "Messages/min",
    "events": "Events/s",
    "errors": "Error rate",
    "uptime": "Uptime",
    "version": "Version",
    "replicas": "Replicas",
    "database": "Database",
}
