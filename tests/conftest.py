"""Fixtures: a real server process per database, clients logged in through the real RPCs.

Every test that takes ``server`` (directly or through ``admin``/``person``) runs
twice: once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .api import Client, Person, create_person
from .databases import fresh_database
from .gateway import GatewayProcess
from .servers import ADMIN_PASSWORD, ServerProcess
from .streams import Stream

DATABASES = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(database_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server for this database: reuse grace off, so reuse is always theft."""
    with fresh_database(database_kind, tmp_path_factory.mktemp(database_kind)) as url:
        process = ServerProcess(url).start()
        yield process
        assert process.terminate() == 0, process.log_text()


#: The browser origin the shared gateway allows (CORS); any other origin is refused.
ALLOWED_ORIGIN = "http://app.example.test"


@pytest.fixture(scope="session")
def gateway(server: ServerProcess) -> Iterator[GatewayProcess]:
    """A real Envoy in front of the shared server: REST, gRPC-Web and gRPC on one port."""
    process = GatewayProcess([server.address], WORKSPACE_CORS_ORIGINS=ALLOWED_ORIGIN).start()
    yield process
    process.terminate()


@pytest.fixture
def start_server(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with other settings on a fresh database (or a given one); stopped after the test."""
    started: list[ServerProcess] = []
    contexts = []

    def start(database_url: str | None = None, **env: str) -> ServerProcess:
        if database_url is None:
            context = fresh_database(database_kind, tmp_path_factory.mktemp("extra"))
            database_url = context.__enter__()
            contexts.append(context)
        process = ServerProcess(database_url, **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
    for context in contexts:
        context.__exit__(None, None, None)


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Client]:
    client = Client(server.address)
    client.login("admin", ADMIN_PASSWORD)
    yield client
    client.close()


@pytest.fixture
def person(server: ServerProcess, admin: Client) -> Iterator[Person]:
    """A fresh ordinary account, logged in."""
    p = create_person(admin, server.address)
    yield p
    p.client.close()


@pytest.fixture
def open_stream() -> Iterator[Callable[..., Stream]]:
    """Open streams; every one is cancelled after the test."""
    opened: list[Stream] = []

    def open_(client: Client, after_event_id: int = 0, **options: Any) -> Stream:
        stream = Stream(client, after_event_id, **options)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()
