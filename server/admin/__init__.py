"""``workspace-admin``: operator commands that work on a database directly (the server is not involved)."""

from __future__ import annotations

from .cli import main

__all__ = ["main"]
