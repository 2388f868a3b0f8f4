"""The benchmarks still run end to end (briefly); their figures are read by people, never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .databases import POSTGRES_URL

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCH.parent, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_unary_bench_measures_echo_and_the_real_server(database: str) -> None:
    argv = [str(BENCH / "unary.py"), "--seconds", "0.3", "--warmup", "0.1", "--concurrency", "4"]
    if database == "postgres":
        argv += ["--database-url", POSTGRES_URL]
    out = run_bench(*argv)
    for row in ("echo #1", "echo #2", "WhoAmI bare", "WhoAmI", "GetUser"):
        assert f"\n{row} " in out, out
    assert "errors in" not in out, out  # every call in the window succeeded


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_storage_bench_measures_every_path(database: str) -> None:
    argv = [str(BENCH / "storage.py"), "--seconds", "0.2", "--concurrency", "4"]
    if database == "postgres":
        argv += ["--database-url", POSTGRES_URL]
    out = run_bench(*argv)
    for row in ("unit of work (server)", "SQLAlchemy Core", "bare driver"):
        assert f"\n{row} " in out, out


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_gateway_bench_measures_direct_and_through_envoy(database: str) -> None:
    argv = [str(BENCH / "gateway.py"), "--seconds", "0.3", "--warmup", "0.1", "--concurrency", "4"]
    argv += ["--calls", "WhoAmI,GetUser"]
    if database == "postgres":
        argv += ["--database-url", POSTGRES_URL]
    out = run_bench(*argv)
    for call in ("WhoAmI", "GetUser"):
        for path in ("direct #1", "gRPC/Envoy", "REST/Envoy", "direct #2"):
            assert f"\n{call} {path} " in out, out
    assert "errors in" not in out, out  # every call in the window succeeded, through Envoy too


def test_fanout_bench_measures_the_baseline_and_the_server() -> None:
    out = run_bench(str(BENCH / "fanout.py"), "--subscribers", "3", "--seconds", "0.5", "--rate", "10")
    rows = [
        row for row in map(str.split, out.splitlines()) if row[:1] in (["baseline"], ["server"]) and row[1].isdigit()
    ]
    assert [row[0] for row in rows] == ["baseline", "server"], out
    for row in rows:
        lost, duplicated = int(row[7]), int(row[8])
        assert (lost, duplicated) == (0, 0), out  # a stream that loses or repeats a message is a bug, not a figure


def test_hundred_people_bench_loses_and_repeats_nothing() -> None:
    out = run_bench(str(BENCH / "hundred.py"), "--seconds", "1")
    (row,) = [line.split() for line in out.splitlines() if line.startswith("sqlite ")]
    lost, duplicated, errors = int(row[8]), int(row[9]), row[10]
    assert (lost, duplicated, errors) == (0, 0, "-"), out


def test_stats_bench_measures_with_and_without_dashboards() -> None:
    out = run_bench(str(BENCH / "stats.py"), "--seconds", "1.5", "--dashboards", "3", "--load", "20")
    for row in ("without #1", "with", "without #2"):
        assert f"\n{row} " in out, out
    with_row = next(line for line in out.splitlines() if line.startswith("with "))
    assert int(with_row.split()[4]) > 0, out  # the dashboards did receive ticks


def test_report_bench_measures_both_ways_of_drawing() -> None:
    out = run_bench(str(BENCH / "report.py"), "--items", "40", "--probes", "10")
    rows = [line.split() for line in out.splitlines() if line.startswith(("worker process", "server thread"))]
    assert [(row[0], row[2]) for row in rows] == [
        ("worker", "idle"),
        ("worker", "reports"),
        ("server", "idle"),
        ("server", "reports"),
    ], out
    assert all(int(row[-2]) > 0 for row in rows if row[2] == "reports"), out  # reports were drawn meanwhile


def test_compression_bench_counts_fewer_bytes_with_gzip() -> None:
    out = run_bench(str(BENCH / "compression.py"), "--messages", "250", "--rounds", "2")
    rows = {line[:18].strip(): line[18:].split() for line in out.splitlines() if line.startswith(("gRPC", "REST/"))}
    paths = ("gRPC direct", "gRPC/Envoy", "REST/Envoy")
    assert set(rows) == {*paths, *(f"{path} gzip" for path in paths)}, out
    for path in paths:  # bytes on the wire, counted by the bench's relay: not times
        assert float(rows[f"{path} gzip"][0]) < float(rows[path][0]) / 2, out


def test_soak_bench_restarts_a_replica_and_counts_what_was_lost() -> None:
    argv = [str(BENCH / "soak.py"), "--minutes", "0.25", "--people", "10", "--rate", "4", "--restarts", "1"]
    out = run_bench(*argv, "--sample", "5", "--database-url", POSTGRES_URL)
    assert "restarting replica1" in out, out
    line = next(line for line in out.splitlines() if line.startswith("deliveries:"))
    assert line.endswith("lost: 0; duplicated: 0"), out  # losing or repeating a message is a bug, not a figure


def test_desktop_bench_times_the_screen_and_counts_memory_and_widgets() -> None:
    argv = [str(BENCH / "desktop.py"), "--messages", "15", "--interval-ms", "20-40", "--history", "260"]
    out = run_bench(*argv, "--small", "30")
    for row in ("bare event stream", "app's message view", "the app adds", "before opening", "260 messages"):
        assert f"\n{row} " in out, out
    history = next(line.split() for line in out.splitlines() if line.startswith("260 messages"))
    assert history[2:4] == ["260", "5"], out  # every message loaded, 5 older pages after the last one
    assert "scrolled to the beginning: yes" in out, out
    assert "a new message in the view of 260 (Tk's thread, 20 messages): median " in out, out
