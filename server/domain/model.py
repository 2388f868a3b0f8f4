"""The account records the domain works with. Repositories return these, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one RPC: the account and the session its token belongs to."""

    user: User
    session_id: str

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


@dataclass(frozen=True)
class Session:
    """One login: every refresh token rotated from it shares this id (the token "family")."""

    id: str
    user_id: int
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class RefreshToken:
    id: int
    session_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    replaced_by_id: int | None


@dataclass(frozen=True)
class LoginThrottle:
    """Recent failed logins for one username (known or not)."""

    username_key: str
    failures: int
    window_started_at: datetime
    locked_until: datetime | None


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
