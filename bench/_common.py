"""What the benchmarks share: a throw-away PostgreSQL schema, and a description of the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


@contextlib.contextmanager
def postgres_schema(url: str, log: Callable[[str], None]) -> Iterator[str]:
    """A fresh schema for the run, dropped afterwards; yields the URL with its search_path set to it."""
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    plain = url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    log(f"postgresql: created schema {schema}")
    option = "options=" + urllib.parse.quote(f"-csearch_path={schema}", safe="")
    try:
        yield url + ("&" if "?" in url else "?") + option
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        log(f"postgresql: dropped schema {schema}")


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
    }
