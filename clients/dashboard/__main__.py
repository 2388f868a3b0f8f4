"""``python -m dashboard [--address HOST:PORT]``: the administrator's monitoring window."""

from __future__ import annotations

import argparse
import os
import tkinter as tk

import ttkbootstrap as ttk

from .app import DashboardApp
from .config import Thresholds, config_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__)
    parser.add_argument(
        "--address",
        default=os.environ.get("WORKSPACE_DASHBOARD_ADDRESS", "127.0.0.1:50051"),
        help="the server's host:port (default: $WORKSPACE_DASHBOARD_ADDRESS or 127.0.0.1:50051)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS (the system's trusted roots)")
    parser.add_argument("--ca-file", help="TLS with this CA certificate file (PEM)")
    parser.add_argument("--theme", default="bootstrap-light", help="a ttkbootstrap theme (default bootstrap-light)")
    parser.add_argument("--size", default="1280x800", help="the window's size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    try:
        thresholds = Thresholds.load()
    except ValueError as error:
        parser.error(f"{error} (fix or remove {config_path()})")
    try:
        root = ttk.Window(title="Workspace dashboard", themename=args.theme, minsize=(800, 560))
    except tk.TclError as error:  # no screen: say so, not with a stack trace
        parser.exit(2, f"python -m dashboard: cannot open a window ({error}); run it in a desktop session\n")
    root.geometry(args.size)
    DashboardApp(root, args.address, thresholds=thresholds, session_options={"tls": args.tls, "ca_file": args.ca_file})
    root.mainloop()


if __name__ == "__main__":
    main()
