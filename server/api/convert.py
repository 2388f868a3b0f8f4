"""Domain records to protobuf messages, and the small request helpers every servicer shares."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from workspace.v1 import auth_pb2, users_pb2

from ..domain.model import IssuedTokens, Role, User

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROLE_TO_PROTO = {Role.USER: users_pb2.ROLE_USER, Role.ADMIN: users_pb2.ROLE_ADMIN}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    """An aware datetime as a Timestamp: ``FromDatetime``'s result, in exact integer arithmetic, 2-3x faster."""
    if value is None:
        return None
    since = value - EPOCH  # TypeError for a naive datetime: every time in the domain is aware
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def user_to_proto(user: User) -> users_pb2.User:
    return users_pb2.User(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=ROLE_TO_PROTO[user.role],
        disabled=user.disabled,
        create_time=timestamp(user.created_at),
        update_time=timestamp(user.updated_at),
        last_login_time=timestamp(user.last_login_at),
    )


def tokens_to_proto(tokens: IssuedTokens) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        access_token_expire_time=timestamp(tokens.access_expires_at),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=timestamp(tokens.refresh_expires_at),
    )
