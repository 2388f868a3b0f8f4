"""Tables. Changed only together with a migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


#: SQLite reuses the largest rowid after a delete unless a table says AUTOINCREMENT; ids that clients keep
#: (accounts, conversations, messages, token chains) must never come back meaning something else.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32))
    #: casefolded username; unique, so usernames are unique without regard to case
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    #: casefolded display name, for prefix search that works beyond ASCII on SQLite too
    display_name_key: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the token, hex; the token itself is never stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class LoginThrottleRow(Base):
    __tablename__ = "login_throttle"

    username_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: the group's name; empty for direct conversations
    name: Mapped[str] = mapped_column(String(100))
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    #: "<smaller user id>:<larger user id>" for direct conversations: at most one per pair
    direct_key: Mapped[str | None] = mapped_column(String(41), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the newest message (no foreign key: messages point at conversations, not back)
    last_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MemberRow(Base):
    __tablename__ = "conversation_members"

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(8))
    #: join order within the conversation (the creator is 0)
    position: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the newest message this member has read; 0 for none
    last_read_message_id: Mapped[int] = mapped_column(BigInteger, default=0)


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        UniqueConstraint("sender_id", "request_id", name="uq_messages_sender_id_request_id"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    #: NULL once the sender's account is deleted: the message stays in the history
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    reply_to_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: the sender's idempotency key; unique per sender
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: set for a tombstone: its text and reactions are gone
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: ``str.casefold()`` of the text, what SearchMessages matches (SQLite's lower() only folds ASCII)
    search_text: Mapped[str] = mapped_column(Text, server_default="")


class ReactionRow(Base):
    __tablename__ = "message_reactions"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", "emoji", name="uq_message_reactions_message_id_user_id_emoji"),
        NEVER_REUSE_IDS,
    )

    #: also the order reactions were made in
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    emoji: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(Base):
    """The event log that streams replay: ids come from ``EventCounterRow``, so they commit in order."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    #: the conversation whose members may see it; NULL for events addressed to ``user_id`` only
    conversation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: set for events only this person may see (a read marker), or that they must see although they
    #: are no longer a member (their own removal)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    #: what happened, as JSON
    payload: Mapped[str] = mapped_column(Text)
    #: indexed for pruning what is older than the retention window
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EventCounterRow(Base):
    """One row holding the last event id handed out.

    Taking the next id is an UPDATE of this row, which holds the row's lock
    until the transaction ends, so event-writing transactions commit one at a
    time in id order: a reader that has seen event N never later finds an
    event with a smaller id appear (no gaps at the hand-over from replay to live).
    """

    __tablename__ = "event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)


class PresenceRow(Base):
    """A person's presence as last published, and what they said about themselves."""

    __tablename__ = "presence"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    #: online, away or offline: the state last announced in an event
    state: Mapped[str] = mapped_column(String(8))
    #: the client said the person is idle (counts only while connected)
    away: Mapped[bool] = mapped_column(Boolean)
    status_text: Mapped[str] = mapped_column(String(100))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PresenceConnectionRow(Base):
    """Open streams per person on one running server process; rows not refreshed for a while are a dead one's."""

    __tablename__ = "presence_connections"

    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    streams: Mapped[int] = mapped_column(Integer)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReplicaFiguresRow(Base):
    """What one running server process measured at its last tick (MonitoringService), as JSON."""

    __tablename__ = "replica_figures"

    instance_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(100))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    figures: Mapped[str] = mapped_column(Text)


class ClientIssueRow(Base):
    """An error or feedback a client app reported."""

    __tablename__ = "client_issues"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    client_version: Mapped[str] = mapped_column(String(100))
    platform: Mapped[str] = mapped_column(String(100))
    context: Mapped[str] = mapped_column(Text)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    resolver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class ShortcutCategoryRow(Base):
    """One of a person's shortcut categories. Positions are 0..n-1 per person, kept so by the domain."""

    __tablename__ = "shortcut_categories"
    __table_args__ = (
        UniqueConstraint("user_id", "name_key", name="uq_shortcut_categories_user_id_name_key"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: casefolded name; unique per person, so names are unique without regard to case
    name_key: Mapped[str] = mapped_column(String(100))
    #: no unique constraint: renumbering shifts a range by one, which would collide midway through an UPDATE
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShortcutRow(Base):
    """A saved link. Positions are 0..n-1 per (person, category), the uncategorised ones (NULL) a group too."""

    __tablename__ = "shortcuts"
    __table_args__ = (
        Index("ix_shortcuts_user_id_category_id_position", "user_id", "category_id", "position"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: no ON DELETE action: deleting a category first moves its shortcuts, in order, to the end of the
    #: uncategorised ones (SET NULL would leave them with clashing positions); one left behind is an error
    category_id: Mapped[int | None] = mapped_column(ForeignKey("shortcut_categories.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(Text)
    #: title and URL case-folded in Python, for searching: SQLite's lower() folds ASCII letters only
    search_text: Mapped[str] = mapped_column(Text)
    #: no unique constraint, as for categories
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ActivityRow(Base):
    """The activity log (``ActivityService``): one row per entry, with the id of the event written with it.

    Kept when the event log's retention prunes the events: ``StreamActivity`` replays from here.
    """

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_resource_type_resource_id", "resource_type", "resource_id"),)

    #: the id of the ``ACTIVITY`` event appended in the same transaction (not generated here)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: NULL for a failed log-in (nobody signed in), or once the account is deleted
    actor_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: the actor's username at the time (for a failed log-in: the name tried); kept after a deletion
    actor_username: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(40), index=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(200))


class AgendaEventRow(Base):
    """An agenda event: timed (``start_at``/``end_at``) or all-day (``start_date``/``end_date``, end exclusive).

    ``span_start``/``span_end`` bound every occurrence in UTC (``span_end`` NULL: it repeats forever; all-day
    spans widened by a day each side for the viewers' zones): a range query filters on them in SQL, then the
    domain expands what is left exactly.
    """

    __tablename__ = "agenda_events"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(String(200))
    #: #RRGGBB or empty
    color: Mapped[str] = mapped_column(String(7))
    all_day: Mapped[bool] = mapped_column(Boolean)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: IANA name; may be empty for an all-day event
    time_zone: Mapped[str] = mapped_column(String(64))
    #: the recurrence as JSON (``Recurrence.to_json``); NULL: it does not repeat
    recurrence: Mapped[str | None] = mapped_column(Text, nullable=True)
    shared_with_everyone: Mapped[bool] = mapped_column(Boolean, index=True)
    span_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    span_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    #: 1 when created, one more with every update; the etag is built from it
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgendaShareRow(Base):
    """One person an agenda event is shared with."""

    __tablename__ = "agenda_event_shares"

    event_id: Mapped[int] = mapped_column(ForeignKey("agenda_events.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class LotRow(Base):
    """A goods-receiving lot. ``status``, ``finished_at`` and the counts are derived from its items and kept
    up to date in the same transaction as every change to them (``SqlLotRepository.recount``), so that lists
    filter and page on them in SQL."""

    __tablename__ = "lots"
    __table_args__ = (Index("ix_lots_received_date_id", "received_date", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(64))
    #: casefolded reference: unique, so references are unique without regard to case
    reference_key: Mapped[str] = mapped_column(String(64), unique=True)
    supplier: Mapped[str] = mapped_column(String(200))
    received_date: Mapped[date] = mapped_column(Date)
    recovered_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(Text)
    #: reference, supplier and note case-folded in Python, for searching (SQLite's lower() is ASCII only)
    search_text: Mapped[str] = mapped_column(Text)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    #: the creator's username at the time; kept after the account is deleted
    creator_username: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: OPEN or FINISHED
    status: Mapped[str] = mapped_column(String(8), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    item_count: Mapped[int] = mapped_column(Integer)
    processed_count: Mapped[int] = mapped_column(Integer)
    refurbished_count: Mapped[int] = mapped_column(Integer)
    for_parts_count: Mapped[int] = mapped_column(Integer)
    scrapped_count: Mapped[int] = mapped_column(Integer)


class LotItemRow(Base):
    """One piece of equipment of a lot, with its current inventory (the latest of its records)."""

    __tablename__ = "lot_items"
    __table_args__ = (
        Index("ix_lot_items_lot_id_id", "lot_id", "id"),
        Index("ix_lot_items_brand_key_model_key", "brand_key", "model_key"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: no ON DELETE action: only an empty lot may be deleted
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    #: as typed, trimmed
    serial_number: Mapped[str] = mapped_column(String(100))
    #: casefolded serial number; its unique index is what keeps serials unique across lots, races included
    serial_key: Mapped[str] = mapped_column(String(100), unique=True)
    #: LAPTOP, DESKTOP, MONITOR or OTHER
    type: Mapped[str] = mapped_column(String(8))
    brand: Mapped[str] = mapped_column(String(100))
    brand_key: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    model_key: Mapped[str] = mapped_column(String(100))
    #: SCAN or MANUAL
    entry_method: Mapped[str] = mapped_column(String(8))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    adder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    adder_username: Mapped[str] = mapped_column(String(32))
    #: the latest inventory record's values; all NULL while the item is not processed
    state: Mapped[str | None] = mapped_column(String(12), nullable=True)
    technician: Mapped[str | None] = mapped_column(String(100), nullable=True)
    operating_system: Mapped[str | None] = mapped_column(String(100), nullable=True)
    inventoried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recorder_username: Mapped[str | None] = mapped_column(String(32), nullable=True)
    record_count: Mapped[int] = mapped_column(Integer)


class LotInventoryRecordRow(Base):
    """Every inventory of an item, first ones and corrections alike; the item shows the latest."""

    __tablename__ = "lot_inventory_records"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("lot_items.id", ondelete="CASCADE"), index=True)
    #: REFURBISHED, FOR_PARTS or SCRAPPED
    state: Mapped[str] = mapped_column(String(12))
    technician: Mapped[str] = mapped_column(String(100))
    operating_system: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    recorder_username: Mapped[str] = mapped_column(String(32))
