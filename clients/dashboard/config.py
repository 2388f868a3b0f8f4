"""The dashboard's settings: when a card turns amber or red. Kept in a JSON file the settings dialog writes.

The file is ``dashboard.json`` in the client config folder (``$WORKSPACE_CLIENT_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/workspace``, else ``~/.config/workspace``); a missing file or key means the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workspace_client.tokens import config_dir


@dataclass(frozen=True)
class Threshold:
    """A card is amber at ``amber`` or more, red at ``red`` or more (in the card's unit)."""

    key: str
    label: str
    unit: str
    amber: float
    red: float

    def level(self, value: float) -> str:
        if value >= self.red:
            return "red"
        if value >= self.amber:
            return "amber"
        return "ok"


#: The defaults: fit for a small company's single replica; raise them for a bigger installation.
DEFAULT_THRESHOLDS = (
    Threshold("connected_people", "People connected", "people", 500, 2000),
    Threshold("open_streams", "Open streams", "streams", 1000, 4000),
    Threshold("messages_per_minute", "Messages per minute", "messages/min", 600, 3000),
    Threshold("events_per_second", "Events per second", "events/s", 100, 500),
    Threshold("error_rate", "Error rate", "% of calls", 5, 20),
    Threshold("db_latency_ms", "Database latency", "ms", 50, 250),
    Threshold("cpu_percent", "Replica CPU", "% of one core", 70, 90),
    Threshold("memory_mb", "Replica memory", "MB", 1024, 2048),
)


def config_path() -> Path:
    return config_dir() / "dashboard.json"


class Thresholds:
    """The thresholds in force, by key."""

    def __init__(self, overrides: dict[str, dict[str, float]] | None = None) -> None:
        self.by_key = {t.key: t for t in DEFAULT_THRESHOLDS}
        for key, values in (overrides or {}).items():
            if key in self.by_key:
                base = self.by_key[key]
                amber, red = float(values.get("amber", base.amber)), float(values.get("red", base.red))
                self.by_key[key] = Threshold(key, base.label, base.unit, amber, red)

    def level(self, key: str, value: float) -> str:
        return self.by_key[key].level(value)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_key.values())

    @classmethod
    def load(cls, path: Path | None = None) -> Thresholds:
        path = path or config_path()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        return cls(data.get("thresholds", {}))

    def save(self, path: Path | None = None) -> Path:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"thresholds": {t.key: {"amber": t.amber, "red": t.red} for t in self}}
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path
