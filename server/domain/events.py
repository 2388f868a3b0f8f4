"""Who sees which event, and how an event changes what a subscriber sees next.

A stored event belongs to a conversation (its members see it), to one person
(``user_id``: only they see it, e.g. their read marker), or to both (the person
sees it even when not a member: their own removal, later). Membership events
describe their members, so a subscriber learns about a conversation it was
just added to from the event itself, with no extra query.
"""

from __future__ import annotations

from .errors import DomainError
from .model import EventKind, StoredEvent


class ResyncRequired(DomainError):
    """The resume point is unknown to this server: the client must reload its state and stream from now."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="RESYNC_REQUIRED")


class StreamEnded(DomainError):
    """The server ended a stream; the client resumes from ``last_event_id`` (sent in the error's details)."""

    REASON = "STREAM_ENDED"

    def __init__(self, message: str, *, last_event_id: int) -> None:
        super().__init__(f"{message}; resume with after_event_id={last_event_id}", reason=self.REASON)
        self.last_event_id = last_event_id


class StreamTooSlow(StreamEnded):
    """The reader fell further behind than its queue holds."""

    REASON = "STREAM_TOO_SLOW"


class ServerShuttingDown(StreamEnded):
    """This replica is stopping; another one (or this one, restarted) takes the stream."""

    REASON = "SERVER_SHUTTING_DOWN"


#: The reasons a hub gives when it ends a subscription, and the error each becomes.
STREAM_ENDINGS: dict[str, type[StreamEnded]] = {cls.REASON: cls for cls in (StreamTooSlow, ServerShuttingDown)}


#: Events that carry the conversation's members as they are after the event.
MEMBERSHIP_EVENTS = frozenset({EventKind.CONVERSATION_CREATED, EventKind.MEMBERS_ADDED, EventKind.MEMBERS_REMOVED})


def member_ids(event: StoredEvent) -> set[int]:
    """The members of the event's conversation after a membership event (none for other events)."""
    if event.kind not in MEMBERSHIP_EVENTS:
        return set()
    conversation = event.payload["conversation"]
    assert isinstance(conversation, dict)
    return {int(m["user_id"]) for m in conversation["members"]}


def admit(event: StoredEvent, user_id: int, conversations: set[int]) -> bool:
    """Whether ``user_id``, a member of ``conversations``, sees ``event``; updates ``conversations`` for it.

    A person removed from a conversation gets the removal (it is addressed to them) and nothing of the
    conversation after it.
    """
    conversation_id = event.conversation_id
    if conversation_id is not None and event.kind in MEMBERSHIP_EVENTS:
        if user_id in member_ids(event):
            conversations.add(conversation_id)
        else:
            conversations.discard(conversation_id)
    if event.user_id == user_id:
        return True
    if event.kind is EventKind.PRESENCE_CHANGED:  # for the people who share a conversation with that person
        shared = event.payload["conversation_ids"]
        assert isinstance(shared, list)
        return any(c in conversations for c in shared)
    return conversation_id is not None and conversation_id in conversations
