"""Random requests for every RPC, built from the descriptors (Hypothesis): whatever arrives, the server answers
with a deliberate status, never INTERNAL or UNKNOWN, never a stack trace, and goes on serving others meanwhile.

Requests are made by an administrator on a server of their own (the fuzzing changes accounts and data at
random), field by field from each request's descriptor: extreme and unknown numbers, empty, huge and odd
strings, random bytes, nested messages, repeated fields; and, separately, bytes that are not a valid message
of the type at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .api import Client, Person, call_raw, create_person, every_rpc
from .databases import fresh_database
from .servers import ADMIN_PASSWORD, ServerProcess, wait_until

#: RPCs left out: Logout would end the fuzzing session itself (tests/test_auth.py covers it).
LEFT_OUT = {"/workspace.v1.AuthService/Logout"}
#: Statuses that mean the server did not decide what to answer.
UNDECIDED = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
#: Examples per RPC and database; raise it for a longer hunt: WORKSPACE_FUZZ_EXAMPLES=500 make test PYTEST_ARGS=...
EXAMPLES = int(os.environ.get("WORKSPACE_FUZZ_EXAMPLES", "25"))
MAX_DEPTH = 3

T = FieldDescriptor
INTEGERS = {
    T.TYPE_INT32: (-(2**31), 2**31 - 1),
    T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    T.TYPE_INT64: (-(2**63), 2**63 - 1),
    T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    T.TYPE_UINT32: (0, 2**32 - 1),
    T.TYPE_FIXED32: (0, 2**32 - 1),
    T.TYPE_UINT64: (0, 2**64 - 1),
    T.TYPE_FIXED64: (0, 2**64 - 1),
}
ODD_STRINGS = ["", " ", "\x00", "\u202e", "é" * 3, "💥" * 300, "%", "_", "'; DROP TABLE users; --", "a/b:c", "1-1"]


def integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low, high, 0, 1, -1, 2**62] if low < 0 else [low, high, 0, 1, 2**62 if high > 2**62 else high]
    return st.one_of(st.sampled_from([e for e in edges if low <= e <= high]), st.integers(low, high))


def strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(ODD_STRINGS),
        st.text(min_size=3000, max_size=3000).map(lambda s: s * 10),  # ~30,000+ characters
    )


def scalar(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type in INTEGERS:
        return integers(*INTEGERS[field.type])
    if field.type == T.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-3, 1000))
    if field.type == T.TYPE_BOOL:
        return st.booleans()
    if field.type in (T.TYPE_FLOAT, T.TYPE_DOUBLE):
        return st.floats(width=32 if field.type == T.TYPE_FLOAT else 64)
    if field.type == T.TYPE_STRING:
        return strings()
    if field.type == T.TYPE_BYTES:
        return st.binary(max_size=200)
    raise AssertionError(f"no strategy for {field.full_name}")


def fill(message, field: FieldDescriptor, value) -> None:  # type: ignore[no-untyped-def]
    repeated = field.is_repeated
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        val = field.message_type.fields_by_name["value"]
        target = getattr(message, field.name)
        for k, v in value:
            if val.message_type is not None:
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif field.message_type is not None:
        if repeated:
            getattr(message, field.name).extend(value)
        else:
            getattr(message, field.name).CopyFrom(value)
    elif repeated:
        getattr(message, field.name).extend(value)
    else:
        setattr(message, field.name, value)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(descriptor)
    optional = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type
            value = entry.fields_by_name["value"]
            values = messages(value.message_type, depth + 1) if value.message_type else scalar(value)
            one = st.lists(st.tuples(scalar(entry.fields_by_name["key"]), values), max_size=3)
        elif field.message_type is not None:
            if depth >= MAX_DEPTH:
                continue
            one = messages(field.message_type, depth + 1)
        else:
            one = scalar(field)
        if field.is_repeated and not (field.message_type and field.message_type.GetOptions().map_entry):
            one = st.one_of(st.lists(one, max_size=4), st.lists(one, min_size=600, max_size=600, unique_by=id))
        optional[field] = one

    def build(values: dict) -> object:
        message = cls()
        for field, value in values.items():
            try:
                fill(message, field, value)
            except ValueError:  # a oneof member set twice, a float into an int: leave the field as it was
                pass
        return message

    return st.fixed_dictionaries({}, optional=optional).map(build)  # type: ignore[arg-type]


def deeply_nested(levels: int) -> bytes:
    """Field 1 holding field 1 holding field 1 ... ``levels`` deep: a parser that recurses must stop somewhere."""
    payload = b""
    for _ in range(levels):
        size, length = len(payload), b""
        while True:
            byte, size = size & 0x7F, size >> 7
            length += bytes([byte | (0x80 if size else 0)])
            if not size:
                break
        payload = b"\x0a" + length + payload
    return payload


RPCS = [(path, method) for path, method in every_rpc() if path not in LEFT_OUT]


class Bystander:
    """Someone else using the server all along: WhoAmI every 0.1 s from a thread, every failure kept."""

    def __init__(self, person: Person) -> None:
        self.person, self.calls, self.errors = person, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.person.client.whoami()
                self.calls += 1
            except grpc.RpcError as error:
                self.errors.append(f"{error.code()}: {error.details()}")

    def served_meanwhile(self, since: int) -> None:
        """No call of theirs failed, and they are still answered (the next call after ``since`` arrives)."""
        assert not self.errors, f"someone else was refused meanwhile: {self.errors[:3]}"
        wait_until(lambda: self.calls > since, 10, "the bystander's next answer")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def fuzzed(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Client, Bystander]]:
    """A server of its own (fuzzing changes data at random), its administrator, and a bystander."""
    with fresh_database(database_kind, tmp_path_factory.mktemp("fuzz")) as url:
        # Rate limits off: the fuzzing calls as fast as it can, and the limiter is tested in test_rate_limits.py.
        server = ServerProcess(url, WORKSPACE_LOGIN_MAX_FAILURES="1000000", WORKSPACE_RATE_LIMITS="off").start()
        admin = Client(server.address)
        admin.login("admin", ADMIN_PASSWORD)
        bystander = Bystander(create_person(admin, server.address))
        yield server, admin, bystander
        bystander.stop()
        bystander.person.client.close()
        admin.close()
        assert server.terminate() == 0, server.log_text()


def call(server: ServerProcess, admin: Client, path: str, method, payload: bytes) -> grpc.RpcError | None:  # type: ignore[no-untyped-def]
    with server.channel() as channel:
        return call_raw(channel, path, method, payload, admin.md, timeout=15)


def check(server: ServerProcess, admin: Client, path: str, error: grpc.RpcError | None) -> None:
    if error is not None:
        assert error.code() not in UNDECIDED, f"{path}: {error.code()} {error.details()}"
        assert "Traceback" not in (error.details() or ""), f"{path} leaked a stack trace: {error.details()}"
    if error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED:
        admin.login("admin", ADMIN_PASSWORD)  # a request that ended this session (e.g. a password change)
    assert admin.whoami().username == "admin"  # and the server goes on serving others


@pytest.mark.parametrize(("path", "method"), RPCS, ids=[path.rsplit(".", 1)[-1] for path, _ in RPCS])
def test_random_requests_get_a_deliberate_answer(fuzzed, path: str, method) -> None:  # type: ignore[no-untyped-def]
    server, admin, bystander = fuzzed
    before = bystander.calls

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(messages(method.input_type))
    def one(request) -> None:  # type: ignore[no-untyped-def]
        check(server, admin, path, call(server, admin, path, method, request.SerializeToString()))

    one()
    bystander.served_meanwhile(before)


@pytest.mark.parametrize(("path", "method"), RPCS, ids=[path.rsplit(".", 1)[-1] for path, _ in RPCS])
def test_bytes_that_are_no_message_are_invalid_argument(fuzzed, path: str, method) -> None:  # type: ignore[no-untyped-def]
    server, admin, _ = fuzzed

    @settings(max_examples=10, deadline=None, database=None)
    @given(st.binary(min_size=1, max_size=300))
    def one(payload: bytes) -> None:
        error = call(server, admin, path, method, payload)
        check(server, admin, path, error)

    one()
    check(server, admin, path, call(server, admin, path, method, deeply_nested(5000)))
    for corrupt in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11):
        error = call(server, admin, path, method, corrupt)
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        assert f"is not a valid {method.input_type.full_name} message" in error.details()


def test_a_nul_character_in_any_string_is_invalid_argument_naming_the_field(fuzzed) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL text cannot hold U+0000: refused before any use case runs, the same way on both databases."""
    from workspace.v1 import lots_pb2, monitoring_pb2, users_pb2

    server, admin, _ = fuzzed
    cases = [
        ("/workspace.v1.UsersService/ListUsers", users_pb2.ListUsersRequest(name_prefix="a\x00"), "name_prefix"),
        (
            "/workspace.v1.MonitoringService/ReportClientIssue",
            monitoring_pb2.ReportClientIssueRequest(issue=monitoring_pb2.ClientIssue(message="it broke\x00")),
            "issue.message",
        ),
        (
            "/workspace.v1.LotsService/AddItems",
            lots_pb2.AddItemsRequest(
                lot_id=1, items=[lots_pb2.NewLotItem(serial_number="S1"), lots_pb2.NewLotItem(brand="\x00")]
            ),
            "items[1].brand",
        ),
    ]
    methods = dict(RPCS)
    for path, request, field in cases:
        error = call(server, admin, path, methods[path], request.SerializeToString())
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        assert error.details() == f"{field}: must not contain the NUL character (U+0000)", error.details()
