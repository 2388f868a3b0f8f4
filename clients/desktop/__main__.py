"""``python -m desktop [--address HOST:PORT]``: the Workspace desktop app: chat, agenda, shortcuts, lots, settings."""

from __future__ import annotations

import argparse
import os

import ttkbootstrap as ttk

from .app import DesktopApp
from .settings import saved_theme


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m desktop", description=__doc__)
    parser.add_argument(
        "--address",
        default=os.environ.get("WORKSPACE_DESKTOP_ADDRESS", "127.0.0.1:50051"),
        help="the server's host:port (default: $WORKSPACE_DESKTOP_ADDRESS or 127.0.0.1:50051)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS (the system's trusted roots)")
    parser.add_argument("--ca-file", help="TLS with this CA certificate file (PEM)")
    parser.add_argument("--theme", help="bootstrap-light or bootstrap-dark (default: the one chosen in Settings)")
    parser.add_argument("--size", default="1280x800", help="the window's size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    theme = args.theme or saved_theme()
    root = ttk.Window(title="Workspace", themename=theme, minsize=(760, 520))
    root.geometry(args.size)
    DesktopApp(root, args.address, session_options={"tls": args.tls, "ca_file": args.ca_file}, theme=theme)
    root.mainloop()


if __name__ == "__main__":
    main()
