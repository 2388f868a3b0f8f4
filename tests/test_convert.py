"""Conversions the servicers use on every call: exact, not just fast."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from server.api.convert import timestamp

EDGES = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 11, 25, 19, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
]


def from_datetime(value: datetime) -> Timestamp:
    expected = Timestamp()
    expected.FromDatetime(value)
    return expected


@pytest.mark.parametrize("value", EDGES, ids=str)
def test_timestamp_equals_protobufs_own_conversion_at_the_edges(value: datetime) -> None:
    assert timestamp(value) == from_datetime(value)


def test_timestamp_equals_protobufs_own_conversion_anywhere() -> None:
    rng = random.Random(20261125)
    for _ in range(5_000):
        value = datetime.fromtimestamp(rng.uniform(-5e9, 5e9), UTC).replace(microsecond=rng.randrange(1_000_000))
        assert timestamp(value) == from_datetime(value), value


def test_timestamp_refuses_naive_datetimes_and_passes_none() -> None:
    assert timestamp(None) is None
    with pytest.raises(TypeError):
        timestamp(datetime(2026, 1, 1))
