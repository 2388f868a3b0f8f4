"""The activity log: who did what, on what, and when, for administrators.

Every use case that changes something calls ``record_activity`` inside its unit of work, last, so the entry
commits with the change or not at all. An entry is a stored event (kind ``ACTIVITY``, addressed to no
conversation and no person, so no chat stream ever carries it: see ``events.admit``) and a row of the
``activity`` table with the event's id: ``StreamActivity`` follows the events live and replays from the rows,
which are kept when the event log's retention prunes the events.

An entry never holds a password, a token, a refresh token or a message's text: ``detail`` is at most
``DETAIL_MAX`` characters of field names, names or ids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .errors import PermissionDenied, Validator
from .model import EventKind, NewEvent, Principal, StoredEvent, User
from .ports import UnitOfWork, UnitOfWorkFactory

ACTION_MAX = 40
RESOURCE_TYPE_MAX = 40
RESOURCE_ID_MAX = 64
DETAIL_MAX = 200
ACTOR_USERNAME_MAX = 32


@dataclass(frozen=True)
class ActivityEntry:
    """One thing someone did. ``id`` is the id of the stored event that carries it."""

    id: int
    created_at: datetime
    #: 0 when nobody signed in did it (a failed log-in), or the account was deleted since
    actor_id: int
    #: their username at the time (for a failed log-in: the name tried)
    actor_username: str
    #: ``<resource type>.<verb>``: docs/API.md lists them all
    action: str
    resource_type: str
    #: as text; empty when there is none
    resource_id: str
    detail: str


@dataclass(frozen=True)
class ActivityFilter:
    """What ``ListActivity`` keeps: every field left at its zero value keeps everything."""

    actor_id: int = 0
    action: str = ""
    resource_type: str = ""
    #: only with ``resource_type``
    resource_id: str = ""
    #: at or after
    start: datetime | None = None
    #: before
    end: datetime | None = None


@dataclass(frozen=True)
class ActivityPage:
    entries: list[ActivityEntry]
    #: the id to continue below; None on the last page
    next_before: int | None


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters (an ellipsis marks a cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def activity_payload(entry: ActivityEntry) -> dict[str, object]:
    """The stored event's payload: the entry but its id and time, which are the event's own."""
    return {
        "actor_id": entry.actor_id,
        "actor_username": entry.actor_username,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "detail": entry.detail,
    }


def entry_from_event(event: StoredEvent) -> ActivityEntry:
    """The entry an ``ACTIVITY`` event carries: the same as its row (same id, same time, same fields)."""
    p = event.payload
    return ActivityEntry(
        id=event.id,
        created_at=event.created_at,
        actor_id=int(p["actor_id"] or 0),  # type: ignore[call-overload]
        actor_username=str(p["actor_username"]),
        action=str(p["action"]),
        resource_type=str(p["resource_type"]),
        resource_id=str(p["resource_id"]),
        detail=str(p["detail"]),
    )


def is_activity(event: StoredEvent) -> bool:
    """The hub's filter for ``StreamActivity`` subscriptions."""
    return event.kind is EventKind.ACTIVITY


async def record_activity(
    uow: UnitOfWork,
    actor: User | None,
    action: str,
    resource_type: str,
    resource_id: object,
    detail: str,
    now: datetime,
    *,
    username: str = "",
) -> ActivityEntry:
    """Write an entry in ``uow``'s transaction: the event first (its id is the entry's), then the row.

    Call it last in the unit of work, after the change (the event log's lock order; see ``SqlEventLog``).
    ``actor`` None: nobody signed in; ``username`` then says who was tried. ``detail`` is shortened to
    ``DETAIL_MAX``: never pass it a password, a token or a message's text.
    """
    entry = ActivityEntry(
        id=0,
        created_at=now,
        actor_id=actor.id if actor is not None else 0,
        actor_username=shorten(actor.username if actor is not None else username, ACTOR_USERNAME_MAX),
        action=action,
        resource_type=resource_type,
        resource_id=shorten("" if resource_id is None else str(resource_id), RESOURCE_ID_MAX),
        detail=shorten(detail, DETAIL_MAX),
    )
    assert len(action) <= ACTION_MAX and len(resource_type) <= RESOURCE_TYPE_MAX, (action, resource_type)
    event_id = await uow.events.append(NewEvent(EventKind.ACTIVITY, activity_payload(entry)), now)
    entry = replace(entry, id=event_id)
    await uow.activity.add(entry)
    return entry


def check_filter(v: Validator, f: ActivityFilter) -> None:
    """The filters of a ``ListActivity`` request; every violation goes to ``v``."""
    v.check(f.actor_id >= 0, "actor_id", "must be an account id, or 0 for everyone")
    v.check(len(f.action) <= ACTION_MAX, "action", f"must be at most {ACTION_MAX} characters")
    v.check(
        len(f.resource_type) <= RESOURCE_TYPE_MAX, "resource_type", f"must be at most {RESOURCE_TYPE_MAX} characters"
    )
    if v.check(len(f.resource_id) <= RESOURCE_ID_MAX, "resource_id", f"must be at most {RESOURCE_ID_MAX} characters"):
        v.check(not f.resource_id or bool(f.resource_type), "resource_id", "needs resource_type")
    if f.start is not None and f.end is not None:
        v.check(f.end > f.start, "end_time", "must be after start_time")


def require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise PermissionDenied("only administrators may read the activity log")


class Activity:
    """Reading the activity log (administrators only). Writing it is ``record_activity``'s, in each use case."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def list(
        self, actor: Principal, activity_filter: ActivityFilter, *, before_id: int | None, limit: int
    ) -> ActivityPage:
        """One page, newest first, ids below ``before_id`` when given."""
        require_admin(actor)
        v = Validator()
        check_filter(v, activity_filter)
        v.raise_if_any()
        async with self._uow(read_only=True) as uow:
            entries = await uow.activity.page(activity_filter, before_id=before_id, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return ActivityPage(entries, entries[-1].id if more else None)
