# The Workspace gRPC server.
#
#   docker build -f docker/server.Dockerfile -t workspace-server .      # from the repository root
#   docker run --rm workspace-server migrate                             # apply migrations, exit
#   docker run --rm -p 50051:50051 workspace-server                      # serve (the default command)
#
# Two stages: `build` turns the project into a wheel and installs it, with the exact
# pins from pyproject.toml, into a virtual environment at /opt/venv; `runtime` copies
# only that environment onto a clean base and runs it as an unprivileged user.
# Configuration is WORKSPACE_* environment variables (docs/DEPLOYMENT.md lists them).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# Same path as in the runtime stage: a venv's scripts name their interpreter by absolute path.
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so this layer is rebuilt only when the pins change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --requirement /tmp/requirements.txt

# Then the project itself (.dockerignore keeps .venv, node_modules, data, .git and caches out):
# one wheel (generated/ stubs as `workspace`, `server` with its Alembic migrations,
# `workspace_client`), installed without touching the pinned dependencies above.
COPY . .
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/workspace-*.whl \
 && /opt/venv/bin/pip check

# Fail the build, not the deployment, if the wheel lost its stubs or its Alembic migrations.
# (-I: import the installed packages, not the sources in /src.)
RUN /opt/venv/bin/python -I -c "import workspace.v1.auth_pb2, server.storage.migrate as m; \
assert (m.MIGRATIONS / 'env.py').is_file(), 'migrations/env.py is not in the wheel'; \
assert list((m.MIGRATIONS / 'versions').glob('*.py')), 'no Alembic revisions in the wheel'; \
print('wheel ok:', m.MIGRATIONS)"

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="workspace-server" \
      org.opencontainers.image.description="Workspace gRPC server (grpc.aio); health and reflection on"

# A fixed numeric uid/gid, so volume ownership and `runAsNonRoot` checks are predictable.
RUN groupadd --system --gid 10001 workspace \
 && useradd --system --uid 10001 --gid workspace --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin workspace \
 && mkdir -p /app/data \
 && chown -R workspace:workspace /app

COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WORKSPACE_HOST=0.0.0.0 \
    WORKSPACE_GRPC_PORT=50051

# With no WORKSPACE_DATABASE_URL the server uses SQLite in ./data, i.e. /app/data (mount a volume there).
WORKDIR /app
USER 10001:10001

# gRPC, and Prometheus metrics (WORKSPACE_METRICS_PORT)
EXPOSE 50051 9464

# grpc.health.v1 Check of the whole server ("") on WORKSPACE_HOST:WORKSPACE_GRPC_PORT
# (0.0.0.0 is asked as 127.0.0.1): exit 0 only for SERVING, anything else is unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "server", "healthcheck"]

# On SIGTERM health turns NOT_SERVING, new calls are refused, in-flight calls get
# WORKSPACE_SHUTDOWN_GRACE seconds, and the process exits 0. Exec form keeps Python as
# PID 1 so it receives the signal itself. Give `docker stop -t` / compose's
# stop_grace_period more than WORKSPACE_SHUTDOWN_GRACE.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "server"]
CMD ["serve"]
