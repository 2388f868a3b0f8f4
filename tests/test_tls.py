"""TLS end to end: a server with a certificate, the gateway terminating TLS and talking TLS to it, the client.

A throw-away CA (tests/certificates.py, the ``openssl`` CLI) signs a certificate for ``localhost`` and
``127.0.0.1``; the server presents it as a chain file (certificate then CA). Clients trust only that CA.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from workspace.v1 import auth_pb2, auth_pb2_grpc
from workspace_client import FileTokenStore, Session, Unreachable

from gateway.config import render
from server.settings import Settings, SettingsError

from .certificates import Authority, make_authority
from .databases import fresh_database
from .gateway import GatewayProcess, fetch
from .servers import ADMIN_PASSWORD, ROOT, ServerProcess

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")
GATEWAY_DOCKERFILE = ROOT / "docker" / "gateway.Dockerfile"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(
    database_kind: str, authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with fresh_database(database_kind, tmp_path_factory.mktemp(f"tls-{database_kind}")) as url:
        process = ServerProcess(
            url, WORKSPACE_TLS_CERT_FILE=str(authority.chain), WORKSPACE_TLS_KEY_FILE=str(authority.server_key)
        ).start()
        yield process
        assert process.terminate() == 0, process.log_text()


@pytest.fixture(scope="module")
def tls_gateway(tls_server: ServerProcess, authority: Authority) -> Iterator[GatewayProcess]:
    """HTTPS and gRPC over TLS to clients, TLS to the replica (calls and health checks)."""
    process = GatewayProcess(
        [tls_server.address],
        ca_file=str(authority.ca),
        WORKSPACE_GATEWAY_TLS_CERT_FILE=str(authority.chain),
        WORKSPACE_GATEWAY_TLS_KEY_FILE=str(authority.server_key),
        WORKSPACE_GATEWAY_UPSTREAM_CA_FILE=str(authority.ca),
    ).start()
    yield process
    process.terminate()


def secure_channel(address: str, authority: Authority) -> grpc.Channel:
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(authority.ca.read_bytes()))


def health(channel: grpc.Channel, timeout: float = 5.0) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status


def without_settings(**extra: str) -> dict[str, str]:
    """This environment without any WORKSPACE_* variable, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}, **extra}


# --- the server ---------------------------------------------------------------------------------------------


def test_a_tls_server_answers_tls_clients_and_refuses_plaintext(
    tls_server: ServerProcess, authority: Authority
) -> None:
    with secure_channel(tls_server.address, authority) as channel:
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING
        for name in ("localhost", "127.0.0.1"):  # both names the certificate carries
            host_port = f"{name}:{tls_server.address.rsplit(':', 1)[1]}"
            with secure_channel(host_port, authority) as by_name:
                assert health(by_name) == health_pb2.HealthCheckResponse.SERVING
        login = auth_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD)
        reply = auth_pb2_grpc.AuthServiceStub(channel).Login(login, timeout=10)
        assert reply.user.username == "admin" and reply.tokens.access_token

    with grpc.insecure_channel(tls_server.address) as plaintext, pytest.raises(grpc.RpcError) as refused:
        health(plaintext, timeout=3)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    # A client that does not trust the test CA (the system's roots) refuses the server's certificate.
    with grpc.secure_channel(tls_server.address, grpc.ssl_channel_credentials()) as untrusting:
        with pytest.raises(grpc.RpcError) as untrusted:
            health(untrusting, timeout=3)
    assert untrusted.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_the_banner_says_tls_and_how_to_call_it(tls_server: ServerProcess, authority: Authority) -> None:
    banner = "".join(tls_server.stdout)
    assert f"(gRPC, TLS with {authority.chain};" in banner, banner
    assert f"grpcurl -cacert {authority.chain} {tls_server.address} list" in banner, banner
    assert "-plaintext" not in banner, banner


def test_grpcurl_lists_and_calls_through_reflection_over_tls(tls_server: ServerProcess, authority: Authority) -> None:
    def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GRPCURL, *args], capture_output=True, text=True, timeout=30)

    listed = grpcurl("-cacert", str(authority.ca), tls_server.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"workspace.v1.ChatService", "grpc.health.v1.Health"} <= set(listed.stdout.split()), listed.stdout

    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD})
    login = grpcurl("-cacert", str(authority.ca), "-d", body, tls_server.address, "workspace.v1.AuthService/Login")
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["user"]["username"] == "admin"

    plaintext = grpcurl("-plaintext", "-max-time", "3", tls_server.address, "list")
    assert plaintext.returncode != 0


def test_the_healthcheck_command_speaks_tls(tls_server: ServerProcess, authority: Authority) -> None:
    def probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "server", "healthcheck", "--address", tls_server.address, "--timeout", "3"]
        return subprocess.run(
            [*argv, *args], cwd=ROOT, env=without_settings(**env), capture_output=True, text=True, timeout=30
        )

    # As a container probe runs it: the server's own settings; it trusts the CA at the end of the chain file.
    tls = {"WORKSPACE_TLS_CERT_FILE": str(authority.chain), "WORKSPACE_TLS_KEY_FILE": str(authority.server_key)}
    done = probe(**tls)
    assert (done.returncode, done.stdout.strip()) == (0, f"{tls_server.address} (server): SERVING"), done.stderr
    # From elsewhere: TLS because of --ca-file.
    done = probe("--ca-file", str(authority.ca))
    assert done.returncode == 0, done.stderr
    done = probe("--ca-file", str(authority.ca), "--service", "workspace.v1.ChatService")
    assert done.returncode == 0 and "workspace.v1.ChatService: SERVING" in done.stdout, done.stderr
    # Plaintext to a TLS server: not serving, exit 1.
    done = probe("--no-tls", **tls)
    assert done.returncode == 1, done.stdout
    # TLS without anything to trust, or with a CA file that is not there: a usage error, exit 2.
    done = probe("--tls")
    assert done.returncode == 2 and "--ca-file" in done.stderr, done.stderr
    done = probe("--ca-file", str(authority.ca.with_name("nowhere.pem")))
    assert done.returncode == 2 and "nowhere.pem" in done.stderr, done.stderr


def test_the_client_library_logs_in_over_tls(tls_server: ServerProcess, authority: Authority, tmp_path: Path) -> None:
    session = Session(tls_server.address, tls=True, ca_file=str(authority.ca), token_store=FileTokenStore(tmp_path))
    try:
        assert session.login("admin", ADMIN_PASSWORD).username == "admin"
        assert session.call(session.auth.WhoAmI, auth_pb2.WhoAmIRequest()).user.username == "admin"
        session.logout()
    finally:
        session.close()
    plaintext = Session(tls_server.address, token_store=FileTokenStore(tmp_path))
    try:
        with pytest.raises(Unreachable):
            plaintext.login("admin", ADMIN_PASSWORD, timeout=3)
    finally:
        plaintext.close()


# --- the gateway ---------------------------------------------------------------------------------------------


def test_the_gateway_serves_https_and_grpc_over_tls_to_a_tls_replica(
    tls_gateway: GatewayProcess, authority: Authority, tmp_path: Path
) -> None:
    # Healthy: its gRPC health checks reach the replica over TLS.
    status, text, _ = fetch(f"{tls_gateway.url}/healthz", ca_file=tls_gateway.ca_file)
    assert (status, json.loads(text)) == (200, {"status": "SERVING"})

    # REST over HTTPS (HTTP/1.1 chosen by ALPN), transcoded and sent to the replica over TLS.
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    status, text, _ = fetch(f"{tls_gateway.url}/v1/auth:login", "POST", login, ca_file=tls_gateway.ca_file)
    assert status == 200, text
    token = json.loads(text)["tokens"]["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    status, text, _ = fetch(f"{tls_gateway.url}/v1/auth/me", headers=headers, ca_file=tls_gateway.ca_file)
    assert (status, json.loads(text)["user"]["username"]) == (200, "admin")

    # gRPC over TLS (HTTP/2 chosen by ALPN): the client library, and health through the gateway.
    session = Session(tls_gateway.address, tls=True, ca_file=str(authority.ca), token_store=FileTokenStore(tmp_path))
    try:
        assert session.login("admin", ADMIN_PASSWORD).username == "admin"
        assert session.call(session.auth.WhoAmI, auth_pb2.WhoAmIRequest()).user.username == "admin"
    finally:
        session.close()
    with secure_channel(tls_gateway.address, authority) as channel:
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING

    # gRPC-Web over HTTPS, framed as a browser frames it: a data frame with the user, then trailers with status 0.
    frame = auth_pb2.WhoAmIRequest().SerializeToString()
    request = urllib.request.Request(
        f"{tls_gateway.url}/workspace.v1.AuthService/WhoAmI",
        data=b"\x00" + len(frame).to_bytes(4, "big") + frame,
        headers={**headers, "content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    context = ssl.create_default_context(cafile=tls_gateway.ca_file)
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        assert answer.headers["content-type"].startswith("application/grpc-web")
        reply = answer.read()
    size = int.from_bytes(reply[1:5], "big")
    assert reply[0] == 0 and auth_pb2.WhoAmIResponse.FromString(reply[5 : 5 + size]).user.username == "admin"
    assert b"grpc-status:0" in reply[5 + size :].replace(b" ", b""), reply

    # Plain HTTP on the TLS port gets nothing, and neither does a plaintext gRPC client.
    assert fetch(f"http://{tls_gateway.address}/healthz")[0] == 0
    with grpc.insecure_channel(tls_gateway.address) as plaintext, pytest.raises(grpc.RpcError):
        health(plaintext, timeout=3)


def test_the_gateway_image_probe_asks_over_https_when_the_gateway_serves_tls(
    tls_gateway: GatewayProcess, authority: Authority
) -> None:
    lines = GATEWAY_DOCKERFILE.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK ")]
    healthcheck = lines[start + 1]  # HEALTHCHECK --options \ then CMD [...] on the next line
    command = json.loads(healthcheck.split("CMD ", 1)[1])
    env = {"PATH": "/usr/bin:/bin", "WORKSPACE_HTTP_PORT": str(tls_gateway.port)}

    def probe(**extra: str) -> int:
        done = subprocess.run([sys.executable, *command[1:]], env={**env, **extra}, capture_output=True, timeout=30)
        return done.returncode

    assert probe(WORKSPACE_GATEWAY_TLS_CERT_FILE=str(authority.chain)) == 0
    assert probe() != 0  # plain HTTP to the TLS port


def test_a_gateway_that_speaks_plaintext_to_a_tls_replica_finds_it_unhealthy(tls_server: ServerProcess) -> None:
    gateway = GatewayProcess([tls_server.address]).start(healthy=False)
    try:
        gateway.wait_health(503)
        status, text, _ = fetch(f"{gateway.url}/v1/auth/me")
        assert status == 503, text
    finally:
        gateway.terminate()


def test_the_rendered_gateway_config_has_both_tls_contexts(authority: Authority) -> None:
    settings = Settings(
        gateway_upstreams="127.0.0.1:50051",
        gateway_tls_cert_file=str(authority.chain),
        gateway_tls_key_file=str(authority.server_key),
        gateway_upstream_ca_file=str(authority.ca),
    )
    settings.validate()
    config = render(settings)
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    downstream = chain["transport_socket"]["typed_config"]
    assert downstream["@type"].endswith("DownstreamTlsContext")
    assert downstream["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    certificate = downstream["common_tls_context"]["tls_certificates"][0]
    assert certificate["certificate_chain"]["filename"] == str(authority.chain)
    upstream = config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    assert upstream["@type"].endswith("UpstreamTlsContext")
    assert upstream["common_tls_context"]["validation_context"]["trusted_ca"]["filename"] == str(authority.ca)
    assert upstream["common_tls_context"]["alpn_protocols"] == ["h2"]

    plain = render(Settings(gateway_upstreams="127.0.0.1:50051"))
    assert "transport_socket" not in plain["static_resources"]["listeners"][0]["filter_chains"][0]
    assert "transport_socket" not in plain["static_resources"]["clusters"][0]


# --- bad settings ---------------------------------------------------------------------------------------------


def bad_tls_settings(authority: Authority) -> list[tuple[dict[str, str], str]]:
    chain, key, other = str(authority.chain), str(authority.server_key), str(authority.other_key)
    missing = str(authority.ca.with_name("missing.pem"))
    return [
        ({"WORKSPACE_TLS_CERT_FILE": chain}, "WORKSPACE_TLS_KEY_FILE: must be set with WORKSPACE_TLS_CERT_FILE"),
        ({"WORKSPACE_TLS_KEY_FILE": key}, "WORKSPACE_TLS_CERT_FILE: must be set with WORKSPACE_TLS_KEY_FILE"),
        (
            {"WORKSPACE_TLS_CERT_FILE": missing, "WORKSPACE_TLS_KEY_FILE": key},
            f"WORKSPACE_TLS_CERT_FILE: no such file: {missing}",
        ),
        (
            {"WORKSPACE_TLS_CERT_FILE": chain, "WORKSPACE_TLS_KEY_FILE": missing},
            f"WORKSPACE_TLS_KEY_FILE: no such file: {missing}",
        ),
        (
            {"WORKSPACE_TLS_CERT_FILE": chain, "WORKSPACE_TLS_KEY_FILE": other},
            f"WORKSPACE_TLS_KEY_FILE: {other} is not the key of the certificate in WORKSPACE_TLS_CERT_FILE",
        ),
        (
            {"WORKSPACE_TLS_CERT_FILE": key, "WORKSPACE_TLS_KEY_FILE": key},
            f"WORKSPACE_TLS_CERT_FILE: {key} holds no PEM certificate",
        ),
        (
            {"WORKSPACE_TLS_CERT_FILE": chain, "WORKSPACE_TLS_KEY_FILE": chain},
            f"WORKSPACE_TLS_KEY_FILE: {chain} holds no PEM private key",
        ),
        (
            {"WORKSPACE_GATEWAY_TLS_CERT_FILE": chain},
            "WORKSPACE_GATEWAY_TLS_KEY_FILE: must be set with WORKSPACE_GATEWAY_TLS_CERT_FILE",
        ),
        (
            {"WORKSPACE_GATEWAY_TLS_CERT_FILE": chain, "WORKSPACE_GATEWAY_TLS_KEY_FILE": other},
            "WORKSPACE_GATEWAY_TLS_KEY_FILE: ",
        ),
        (
            {"WORKSPACE_GATEWAY_UPSTREAM_CA_FILE": missing},
            f"WORKSPACE_GATEWAY_UPSTREAM_CA_FILE: no such file: {missing}",
        ),
        ({"WORKSPACE_GATEWAY_UPSTREAM_CA_FILE": key}, "WORKSPACE_GATEWAY_UPSTREAM_CA_FILE: "),
    ]


def test_bad_tls_settings_are_refused_naming_the_variable(authority: Authority) -> None:
    for env, message in bad_tls_settings(authority):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env(env)
        assert str(refused.value).startswith(message), (env, str(refused.value))


def test_the_server_and_the_gateway_refuse_to_start_with_bad_tls_settings(authority: Authority) -> None:
    server_env = {"WORKSPACE_TLS_CERT_FILE": str(authority.chain), "WORKSPACE_TLS_KEY_FILE": str(authority.other_key)}
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=without_settings(**server_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "configuration error: WORKSPACE_TLS_KEY_FILE:" in done.stderr, done.stderr

    gateway_env = {"WORKSPACE_GATEWAY_TLS_KEY_FILE": str(authority.server_key)}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "render"],
        cwd=ROOT,
        env=without_settings(**gateway_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "configuration error: WORKSPACE_GATEWAY_TLS_CERT_FILE: must be set" in done.stderr, done.stderr
