"""What the domain needs from the outside world, as protocols.

``server.storage`` implements the unit of work and repositories, ``server.auth``
the hasher and token issuer; the composition root plugs them in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from .model import (
    Conversation,
    ConversationKind,
    LoginThrottle,
    MemberRole,
    Message,
    NewEvent,
    PresenceRecord,
    RefreshToken,
    Role,
    Session,
    StoredEvent,
    User,
)

if TYPE_CHECKING:  # activity, monitoring and shortcuts import this module for its factory
    from .activity import ActivityEntry, ActivityFilter
    from .agenda import AgendaEvent, EventFields, Span
    from .lots import (
        CleanItem,
        InventoryRecord,
        ItemFilter,
        ItemState,
        Lot,
        LotFields,
        LotFilter,
        LotItem,
        LotKey,
        SerialHolder,
    )
    from .monitoring import ClientIssue, ReplicaFigures
    from .shortcuts import Category, ListKey, Shortcut


class UserRepository(Protocol):
    async def get(self, user_id: int) -> User | None: ...
    async def enabled_ids(self, user_ids: list[int]) -> set[int]:
        """Those of ``user_ids`` that are existing, enabled accounts."""

    async def get_with_password(self, username_key: str) -> tuple[User, str] | None: ...
    async def password_hash(self, user_id: int) -> str | None: ...
    async def exists(self, username_key: str) -> bool: ...
    async def count(self) -> int: ...
    async def count_enabled_admins(self) -> int: ...
    async def add(self, *, username: str, display_name: str, role: Role, password_hash: str, now: datetime) -> User:
        """Insert; raises ``AlreadyExists`` if the username is taken."""

    async def update(self, user_id: int, *, now: datetime, **changes: object) -> User: ...
    async def set_password(self, user_id: int, password_hash: str, now: datetime) -> None: ...
    async def record_login(self, user_id: int, now: datetime) -> None: ...
    async def delete(self, user_id: int) -> None: ...
    async def list(self, *, after_key: str | None, prefix: str, include_disabled: bool, limit: int) -> list[User]: ...


class SessionRepository(Protocol):
    async def create(self, *, session_id: str, user_id: int, now: datetime) -> None: ...
    async def get(self, session_id: str) -> Session | None: ...
    async def revoke(self, session_id: str, *, now: datetime, reason: str) -> None: ...
    async def revoke_all_for_user(
        self, user_id: int, *, now: datetime, reason: str, keep: str | None = None
    ) -> list[str]: ...
    async def add_refresh_token(
        self, *, session_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> int: ...
    async def find_refresh_token(self, token_hash: str) -> RefreshToken | None: ...
    async def get_refresh_token(self, token_id: int) -> RefreshToken | None: ...
    async def claim_refresh_token(self, token_id: int, *, now: datetime) -> bool:
        """Mark an unused token used; False if it was already used (a concurrent refresh won)."""

    async def replace_refresh_token(self, token_id: int, *, replaced_by_id: int, now: datetime) -> None:
        """Record the token's successor; a previous successor expires at once (it was never delivered)."""


class LoginThrottleRepository(Protocol):
    async def get(self, username_key: str) -> LoginThrottle | None: ...
    async def save(self, state: LoginThrottle) -> None: ...
    async def clear(self, username_key: str) -> None: ...


class ConversationRepository(Protocol):
    async def get(self, conversation_id: int) -> Conversation | None: ...
    async def get_direct(self, direct_key: str) -> Conversation | None: ...
    async def add(
        self,
        *,
        kind: ConversationKind,
        name: str,
        creator_id: int,
        direct_key: str | None,
        members: list[tuple[int, MemberRole]],
        now: datetime,
    ) -> Conversation:
        """Insert with its members (in the given order); raises ``AlreadyExists`` if ``direct_key`` is taken."""

    async def add_members(self, conversation_id: int, user_ids: list[int], now: datetime) -> None:
        """Append members (role member) after the existing ones, in the given order."""

    async def remove_member(self, conversation_id: int, user_id: int) -> None: ...
    async def set_role(self, conversation_id: int, user_id: int, role: MemberRole) -> None: ...
    async def is_member(self, conversation_id: int, user_id: int) -> bool: ...
    async def ids_for_member(self, user_id: int) -> set[int]: ...
    async def page_for_member(
        self, user_id: int, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Conversation]:
        """The member's conversations by (last activity, id) descending, strictly after ``after``."""

    async def unread_counts(self, user_id: int, conversation_ids: list[int] | None) -> dict[int, int]:
        """Unread messages per conversation for this member (all of theirs when ``conversation_ids`` is None)."""

    async def touch(self, conversation_id: int, *, last_message_id: int, now: datetime) -> None: ...
    async def move_read_marker(self, conversation_id: int, user_id: int, message_id: int) -> tuple[int, bool]:
        """Advance the member's marker to ``message_id`` unless it is there or past it: (marker, moved)."""


class MessageRepository(Protocol):
    async def get(self, message_id: int) -> Message | None: ...
    async def get_many(self, message_ids: list[int]) -> dict[int, Message]: ...
    async def by_request_id(self, sender_id: int, request_id: str) -> Message | None: ...
    async def add(
        self,
        *,
        conversation_id: int,
        sender_id: int,
        text: str,
        reply_to_id: int | None,
        request_id: str,
        now: datetime,
    ) -> Message:
        """Insert; raises ``AlreadyExists`` if this sender already used ``request_id``."""

    async def edit(self, message_id: int, text: str, now: datetime) -> None: ...
    async def delete(self, message_id: int, now: datetime) -> None:
        """Make it a tombstone: no text, no reactions, a deletion time."""

    async def add_reaction(self, message_id: int, user_id: int, emoji: str, now: datetime) -> bool:
        """False if that person already reacted with that emoji."""

    async def remove_reaction(self, message_id: int, user_id: int, emoji: str) -> bool:
        """False if there was no such reaction."""

    async def reactions_by(self, message_id: int, user_id: int) -> int: ...
    async def page(self, conversation_id: int, *, before_id: int | None, limit: int) -> list[Message]:
        """Newest first, ids strictly below ``before_id``."""

    async def newer(self, conversation_id: int, *, after_id: int, limit: int) -> list[Message]:
        """The ``limit`` messages just after ``after_id``, oldest first."""

    async def search(self, user_id: int, folded_query: str, *, before_id: int | None, limit: int) -> list[Message]:
        """Undeleted messages of the member's conversations whose folded text contains the query, newest first."""


class PresenceRepository(Protocol):
    async def get_many(self, user_ids: list[int]) -> dict[int, PresenceRecord]: ...
    async def save(self, record: PresenceRecord) -> None: ...
    async def set_streams(self, instance: str, user_id: int, streams: int, now: datetime) -> None:
        """This process's open streams for the person (0 removes the row)."""

    async def refresh(self, instance: str, now: datetime) -> None:
        """Mark this process's rows alive."""

    async def forget_instance(self, instance: str) -> None: ...
    async def live_streams(self, user_id: int, *, alive_since: datetime) -> int:
        """Open streams for the person over every process seen alive since ``alive_since``."""

    async def not_offline(self) -> list[int]:
        """People whose last announced state is online or away."""

    async def connected_people(self, *, alive_since: datetime) -> int:
        """Distinct people with an open stream on any process seen alive since ``alive_since``."""


class ReplicaFiguresRepository(Protocol):
    async def save(self, figures: ReplicaFigures) -> None:
        """Replace what this replica (its ``instance_id``) published last."""

    async def reported_since(self, since: datetime) -> list[ReplicaFigures]: ...
    async def delete(self, instance_id: str) -> None: ...
    async def delete_older_than(self, before: datetime) -> None: ...


class ClientIssueRepository(Protocol):
    async def add(self, issue: ClientIssue) -> ClientIssue:
        """Store a new issue; returns it with its id."""

    async def get(self, issue_id: int) -> ClientIssue | None: ...
    async def page(self, *, before_id: int | None, show_resolved: bool, limit: int) -> list[ClientIssue]:
        """Newest first, ids below ``before_id`` when given."""

    async def resolve(self, issue: ClientIssue) -> bool:
        """Store ``issue``'s resolve time and resolver if it is still open; False if it was not."""


class ShortcutCategoryRepository(Protocol):
    """One person's shortcut categories. Every method that takes ``user_id`` sees only that person's rows."""

    async def get(self, user_id: int, category_id: int) -> Category | None:
        """The person's category; None if there is none of that id, or it is someone else's."""

    async def list(self, user_id: int) -> list[Category]:
        """Every category of the person, by position."""

    async def count(self, user_id: int) -> int: ...
    async def name_taken(self, user_id: int, name_key: str, *, other_than: int | None) -> bool:
        """Whether another of the person's categories (not ``other_than``) has this folded name."""

    async def add(self, *, user_id: int, name: str, name_key: str, position: int, now: datetime) -> Category:
        """Insert; raises ``AlreadyExists`` if the person has a category of that folded name."""

    async def rename(self, category_id: int, *, name: str, name_key: str, now: datetime) -> None:
        """Raises ``AlreadyExists`` if the person has another category of that folded name."""

    async def shift(self, user_id: int, *, start: int, end: int | None, by: int) -> None:
        """Add ``by`` to the positions in [``start``, ``end``) of the person's categories (no ``end``: all
        from ``start`` on). Leaves ``updated_at`` alone: renumbered is not moved."""

    async def place(self, category_id: int, *, position: int, now: datetime) -> None: ...
    async def delete(self, category_id: int) -> None:
        """Delete an empty category (one with shortcuts still in it is an integrity error)."""


class ShortcutRepository(Protocol):
    """One person's shortcuts. A ``category_id`` of None means the uncategorised ones, a group of their own."""

    async def lock_person(self, user_id: int) -> None:
        """Hold the person's lock until the transaction ends: their writing units of work run one at a time."""

    async def get(self, user_id: int, shortcut_id: int) -> Shortcut | None:
        """The person's shortcut; None if there is none of that id, or it is someone else's."""

    async def count(self, user_id: int) -> int: ...
    async def count_in(self, user_id: int, category_id: int | None) -> int:
        """How many of the person's shortcuts are in the category (None: uncategorised)."""

    async def add(
        self,
        *,
        user_id: int,
        category_id: int | None,
        title: str,
        url: str,
        description: str,
        position: int,
        now: datetime,
    ) -> Shortcut: ...
    async def update(self, shortcut_id: int, *, now: datetime, **changes: object) -> None:
        """Change ``title``, ``url`` or ``description``."""

    async def shift(self, user_id: int, category_id: int | None, *, start: int, end: int | None, by: int) -> None:
        """Add ``by`` to the positions in [``start``, ``end``) of one group (no ``end``: all from ``start`` on).
        Leaves ``updated_at`` alone: renumbered is not moved."""

    async def place(self, shortcut_id: int, *, category_id: int | None, position: int, now: datetime) -> None: ...
    async def uncategorise(self, user_id: int, category_id: int, *, offset: int, now: datetime) -> int:
        """Make every shortcut of the category uncategorised, in their order, at ``offset`` + their position;
        returns how many."""

    async def delete(self, shortcut_id: int) -> None: ...
    async def page(
        self,
        user_id: int,
        *,
        category_id: int | None,
        only_category: bool,
        query: str,
        after: ListKey | None,
        limit: int,
    ) -> list[tuple[Shortcut, ListKey]]:
        """The person's shortcuts with each one's key, in key order, strictly after ``after``: only those of
        ``category_id`` with ``only_category``; only those whose title or URL contains ``query`` (ignoring
        case; ``%``, ``_`` and ``\\`` are plain characters) unless it is empty."""


class LotRepository(Protocol):
    """Goods-receiving lots, with their derived status and counts."""

    async def get(self, lot_id: int) -> Lot | None: ...
    async def lock(self, lot_id: int) -> Lot | None:
        """The lot, locked until the transaction ends (its items' changes run one at a time); None if none."""

    async def reference_taken(self, reference_key: str, *, other_than: int | None) -> bool: ...
    async def add(self, fields: LotFields, *, reference_key: str, creator: User, now: datetime) -> Lot:
        """Insert an empty, open lot; raises ``AlreadyExists`` if the folded reference is taken."""

    async def update(self, lot_id: int, changes: dict[str, object], *, now: datetime) -> Lot:
        """Change the lot's details (LOT_UPDATABLE_FIELDS); raises ``AlreadyExists`` on a taken reference."""

    async def touch(self, lot_id: int, *, now: datetime) -> None:
        """Set ``updated_at``: one of its items changed."""

    async def recount(self, lot_id: int, *, now: datetime) -> Lot:
        """Count the lot's items by state and store the counts, the status and the finish time."""

    async def delete(self, lot_id: int) -> None: ...
    async def page(self, lot_filter: LotFilter, *, after: LotKey | None, limit: int) -> list[Lot]:
        """Lots matching the filter by received date descending, then id descending, strictly after ``after``."""


class LotItemRepository(Protocol):
    """The items of lots and their inventory records."""

    async def get(self, item_id: int) -> LotItem | None: ...
    async def holders(self, serial_keys: list[str]) -> dict[str, SerialHolder]:
        """Which of these folded serial numbers an item already has, and in which lot."""

    async def lock_serials(self, serial_keys: list[str]) -> None:
        """Hold a lock per folded serial until the transaction ends, taken in one order: two batches sharing
        serials then run one after the other instead of deadlocking on the unique index."""

    async def add_many(self, lot_id: int, items: list[CleanItem], *, adder: User, now: datetime) -> list[LotItem]:
        """Insert, in order; raises ``SerialTaken`` if the unique index refuses one (nothing is inserted)."""

    async def update(self, item_id: int, changes: dict[str, object], *, now: datetime) -> LotItem:
        """Change ``serial_number``, ``type``, ``brand``, ``model``; raises ``SerialTaken`` as ``add_many``."""

    async def delete(self, item_id: int) -> None:
        """Delete the item and its inventory records."""

    async def record_inventory(
        self, item_id: int, state: ItemState, technician: str, operating_system: str, *, recorder: User, now: datetime
    ) -> InventoryRecord:
        """Append a record and make it the item's current inventory."""

    async def records(self, item_id: int, *, after: int | None, limit: int) -> list[InventoryRecord]:
        """The item's records, oldest first, ids above ``after``."""

    async def page(self, lot_id: int, item_filter: ItemFilter, *, after: int | None, limit: int) -> list[LotItem]:
        """The lot's items matching the filter, in the order they were added, ids above ``after``."""

    async def all_of(self, lot_id: int) -> list[LotItem]:
        """Every item of the lot, in the order they were added."""

    async def brand_counts(self, prefix_key: str) -> list[tuple[str, str, int]]:
        """(folded brand, brand as typed, items) for every non-empty brand whose folded form starts with
        ``prefix_key``."""

    async def model_counts(self, brand_key: str, prefix_key: str) -> list[tuple[str, str, int]]:
        """The same for models, of the brand ``brand_key`` only unless it is empty."""


class ActivityRepository(Protocol):
    """The activity log's rows (each with the id of the event appended with it). Never pruned."""

    async def add(self, entry: ActivityEntry) -> None:
        """Insert, with the id of the event just appended in the same transaction."""

    async def page(self, activity_filter: ActivityFilter, *, before_id: int | None, limit: int) -> list[ActivityEntry]:
        """Entries matching the filter, newest first, ids below ``before_id`` when given."""

    async def between(self, after_id: int, up_to_id: int, *, limit: int) -> list[ActivityEntry]:
        """Entries with ids in (``after_id``, ``up_to_id``], oldest first."""


class AgendaRepository(Protocol):
    """Agenda events and whom each is shared with. Visibility is the domain's rule; these filter by it."""

    async def get(self, event_id: int) -> AgendaEvent | None:
        """The event, whoever owns it; None if there is none of that id."""

    async def add(self, *, owner_id: int, fields: EventFields, span: Span, now: datetime) -> AgendaEvent:
        """Insert at revision 1, with its shares."""

    async def update(
        self, event_id: int, *, revision: int, fields: EventFields, span: Span, now: datetime
    ) -> AgendaEvent | None:
        """Replace the fields and shares if the event is still at ``revision`` (then one more); None if not."""

    async def delete(self, event_id: int, *, revision: int) -> bool:
        """Delete the event if it is still at ``revision``; False if not."""

    async def visible_between(self, user_id: int, start: datetime, end: datetime, *, limit: int) -> list[AgendaEvent]:
        """Events ``user_id`` sees whose span (``Span``) meets [``start``, ``end``), by id."""

    async def visible(self, user_id: int, *, limit: int) -> list[AgendaEvent]:
        """Every event ``user_id`` sees, by id."""


class EventLog(Protocol):
    async def append(self, event: NewEvent, now: datetime) -> int:
        """Store the event in the current transaction and return its id (ids commit in order)."""

    async def prune(self, older_than: datetime) -> int:
        """Delete the events written before ``older_than``; returns how many."""

    async def last_id(self) -> int:
        """The id of the newest committed event (0 if none was ever written)."""

    async def first_id(self) -> int | None:
        """The oldest event still kept, or None if none is."""

    async def after(self, after_id: int, *, limit: int) -> list[StoredEvent]:
        """Events with ids above ``after_id``, oldest first."""

    async def visible_after(self, after_id: int, up_to_id: int, user_id: int, *, limit: int) -> list[StoredEvent]:
        """Events in (``after_id``, ``up_to_id``] that ``user_id`` may see now, oldest first, and every presence
        change among them (whether the caller shares a conversation with that person is for ``admit`` to say)."""


class UnitOfWork(Protocol):
    """One transaction: rolled back on exit unless ``commit()`` was called."""

    users: UserRepository
    sessions: SessionRepository
    login_throttle: LoginThrottleRepository
    conversations: ConversationRepository
    messages: MessageRepository
    presence: PresenceRepository
    events: EventLog
    replica_figures: ReplicaFiguresRepository
    client_issues: ClientIssueRepository
    shortcut_categories: ShortcutCategoryRepository
    shortcuts: ShortcutRepository
    activity: ActivityRepository
    lots: LotRepository
    lot_items: LotItemRepository
    agenda: AgendaRepository

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


class TokenIssuer(Protocol):
    def access_token(self, user: User, session_id: str, now: datetime) -> tuple[str, datetime]: ...
    def new_refresh_token(self) -> str: ...
    def hash_refresh_token(self, token: str) -> str: ...


class AccessRevocations(Protocol):
    """Told when a session ends or an account changes, so cached views of them are dropped at once."""

    def session_ended(self, session_id: str) -> None: ...
    def user_changed(self, user_id: int) -> None: ...


Clock = Callable[[], datetime]
