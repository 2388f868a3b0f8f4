"""The records the domain works with (accounts, conversations, events). Repositories return these, never ORM rows."""

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


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class MemberRole(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True)
class Member:
    user_id: int
    role: MemberRole
    joined_at: datetime
    last_read_message_id: int


@dataclass(frozen=True)
class Reaction:
    emoji: str
    user_ids: tuple[int, ...]  # in the order they reacted


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    sender_id: int | None  # None once the sender's account is deleted
    text: str  # empty for a tombstone
    reply_to_id: int | None
    request_id: str
    created_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    reactions: tuple[Reaction, ...] = ()  # in the order each emoji was first used


@dataclass(frozen=True)
class Conversation:
    id: int
    kind: ConversationKind
    name: str
    creator_id: int | None
    created_at: datetime
    last_activity_at: datetime
    last_message_id: int | None
    members: tuple[Member, ...]  # in join order

    def member(self, user_id: int) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)


@dataclass(frozen=True)
class ConversationView:
    """A conversation as one member sees it: with its last message and that member's unread count."""

    conversation: Conversation
    last_message: Message | None
    unread_count: int
    last_read_message_id: int


class EventKind(StrEnum):
    """What a stored event says happened. Stored as text: never rename a value."""

    CONVERSATION_CREATED = "conversation.created"
    MESSAGE_CREATED = "message.created"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_DELETED = "message.deleted"
    REACTIONS_CHANGED = "message.reactions_changed"
    MEMBERS_ADDED = "members.added"
    MEMBERS_REMOVED = "members.removed"
    READ_MARKER_MOVED = "read_marker.moved"
    PRESENCE_CHANGED = "presence.changed"
    #: an activity-log entry (no conversation, no person: chat streams never carry it; see ``activity.py``)
    ACTIVITY = "activity.recorded"
    TYPING = "typing"  # never stored: see LiveEvent


@dataclass(frozen=True)
class NewEvent:
    """An event to append to the log, in the same transaction as the change it describes.

    Members of ``conversation_id`` see it; with ``user_id`` set, that person sees it too (or only
    they do, when ``conversation_id`` is None).
    """

    kind: EventKind
    payload: dict[str, object]
    conversation_id: int | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as the log holds it: ``payload`` is what ``NewEvent`` carried."""

    id: int
    kind: EventKind
    payload: dict[str, object]
    conversation_id: int | None
    user_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class LiveEvent:
    """An event that is delivered live and never stored (typing): no id, no replay.

    Members of ``conversation_id`` see it, except ``from_user_id`` (on any of their devices).
    """

    kind: EventKind
    payload: dict[str, object]
    conversation_id: int
    from_user_id: int
    created_at: datetime


class PresenceState(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass(frozen=True)
class PresenceRecord:
    user_id: int
    state: PresenceState  # as last announced
    away: bool  # the client said the person is idle
    status_text: str
    last_seen_at: datetime | None
    changed_at: datetime | None
