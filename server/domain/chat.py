"""Conversations and messages: who may see and write what, and the events every change records."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from .activity import record_activity
from .errors import AlreadyExists, FailedPrecondition, InvalidInput, NotFound, PermissionDenied, Validator
from .model import (
    Conversation,
    ConversationKind,
    ConversationView,
    EventKind,
    Member,
    MemberRole,
    Message,
    NewEvent,
    Principal,
)
from .ports import Clock, UnitOfWork, UnitOfWorkFactory

GROUP_NAME_MAX = 100
EMOJI_MAX = 32
#: Different emojis one person may put on one message.
REACTIONS_PER_PERSON_MAX = 20
SEARCH_QUERY_MAX = 200
#: Members of a group, the creator included.
GROUP_MEMBERS_MAX = 500
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")  # used with fullmatch


@dataclass(frozen=True)
class ConversationPage:
    views: list[ConversationView]
    #: (last activity, id) of the last conversation, to continue after; None on the last page.
    next_after: tuple[datetime, int] | None
    total_unread: int


@dataclass(frozen=True)
class SentMessage:
    message: Message
    created: bool


@dataclass(frozen=True)
class ReadState:
    last_read_message_id: int
    unread_count: int
    total_unread: int


def check_emoji(v: Validator, emoji: str) -> None:
    if not emoji:
        v.add("emoji", "is required")
    elif len(emoji) > EMOJI_MAX:
        v.add("emoji", f"must be at most {EMOJI_MAX} characters")
    elif any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in emoji):
        # Only white space and control characters: emoji sequences rely on format characters (ZWJ, tags).
        v.add("emoji", "must not contain white space or control characters")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def message_payload(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "text": message.text,
        "reply_to_id": message.reply_to_id,
        "request_id": message.request_id,
        "created_at": message.created_at.isoformat(),
        "edited_at": _iso(message.edited_at),
        "deleted_at": _iso(message.deleted_at),
        "reactions": [{"emoji": r.emoji, "user_ids": list(r.user_ids)} for r in message.reactions],
    }


def _not_found(conversation_id: int) -> NotFound:
    # The same answer for "does not exist" and "not yours": a conversation's existence must not leak.
    return NotFound(f"conversation {conversation_id} not found")


class Chat:
    """Use cases on conversations and messages. Every method acts for ``actor`` and checks membership."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, *, max_message_chars: int) -> None:
        self._uow = uow
        self._clock = clock
        self.max_message_chars = max_message_chars

    async def create_direct(self, actor: Principal, other_id: int) -> tuple[Conversation, bool]:
        """The direct conversation of ``actor`` and ``other_id``, and whether this call created it."""
        if other_id == actor.user_id:
            raise InvalidInput.one("user_id", "must be another person's id, not your own")
        low, high = sorted((actor.user_id, other_id))
        key = f"{low}:{high}"
        async with self._uow() as uow:
            if not await uow.users.enabled_ids([other_id]):
                raise NotFound(f"user {other_id} not found")
            existing = await uow.conversations.get_direct(key)
            if existing is not None:
                return existing, False
            now = self._clock()
            try:
                conversation = await uow.conversations.add(
                    kind=ConversationKind.DIRECT,
                    name="",
                    creator_id=actor.user_id,
                    direct_key=key,
                    members=[(actor.user_id, MemberRole.MEMBER), (other_id, MemberRole.MEMBER)],
                    now=now,
                )
            except AlreadyExists:  # created concurrently by the other person: theirs is ours
                pass
            else:
                await uow.events.append(_created(conversation), now)
                await record_activity(
                    uow,
                    actor.user,
                    "conversation.create_direct",
                    "conversation",
                    conversation.id,
                    f"with user {other_id}",
                    now,
                )
                await uow.commit()
                return conversation, True
        async with self._uow(read_only=True) as uow:
            raced = await uow.conversations.get_direct(key)
        assert raced is not None
        return raced, False

    async def create_group(self, actor: Principal, name: str, member_ids: list[int]) -> Conversation:
        v = Validator()
        clean = name.strip()
        if not clean:
            v.add("name", "is required")
        elif len(clean) > GROUP_NAME_MAX:
            v.add("name", f"must be at most {GROUP_NAME_MAX} characters")
        elif any(ch in clean for ch in "\x00\r\n\t"):
            v.add("name", "must not contain control characters")
        others: dict[int, int] = {}  # id -> its first index in the request, in request order
        for index, user_id in enumerate(member_ids):
            if user_id <= 0:
                v.add(f"member_ids[{index}]", "must be a positive account id")
            elif user_id != actor.user_id:
                others.setdefault(user_id, index)
        if len(others) > GROUP_MEMBERS_MAX - 1:
            v.add("member_ids", f"a group has at most {GROUP_MEMBERS_MAX} members, you included")
        v.raise_if_any()
        async with self._uow() as uow:
            enabled = await uow.users.enabled_ids(list(others))
            for user_id, index in others.items():
                if user_id not in enabled:
                    v.add(f"member_ids[{index}]", f"no such account: {user_id}")
            v.raise_if_any()
            now = self._clock()
            conversation = await uow.conversations.add(
                kind=ConversationKind.GROUP,
                name=clean,
                creator_id=actor.user_id,
                direct_key=None,
                members=[(actor.user_id, MemberRole.ADMIN), *((u, MemberRole.MEMBER) for u in others)],
                now=now,
            )
            await uow.events.append(_created(conversation), now)
            detail = f"{clean} ({len(conversation.members)} members)"
            await record_activity(
                uow, actor.user, "conversation.create_group", "conversation", conversation.id, detail, now
            )
            await uow.commit()
        return conversation

    async def get(self, actor: Principal, conversation_id: int) -> ConversationView:
        async with self._uow(read_only=True) as uow:
            conversation = await uow.conversations.get(conversation_id)
            if conversation is None or conversation.member(actor.user_id) is None:
                raise _not_found(conversation_id)
            return (await _views(uow, actor.user_id, [conversation]))[0]

    async def list(self, actor: Principal, *, after: tuple[datetime, int] | None, limit: int) -> ConversationPage:
        async with self._uow(read_only=True) as uow:
            conversations = await uow.conversations.page_for_member(actor.user_id, after=after, limit=limit + 1)
            more = len(conversations) > limit
            conversations = conversations[:limit]
            views = await _views(uow, actor.user_id, conversations)
            total = sum((await uow.conversations.unread_counts(actor.user_id, None)).values())
        last = conversations[-1] if more else None
        return ConversationPage(views, (last.last_activity_at, last.id) if last else None, total)

    def check_text(self, v: Validator, text: str) -> str:
        """Report what is wrong with a message's text to ``v``; returns it trimmed."""
        clean = text.strip()
        if not clean:
            v.add("text", "must not be empty")
        elif len(clean) > self.max_message_chars:
            v.add("text", f"must be at most {self.max_message_chars} characters")
        elif "\x00" in clean:
            v.add("text", "must not contain NUL characters")
        return clean

    def check_message(self, v: Validator, text: str, request_id: str) -> str:
        """Report what is wrong with a new message's text and request id to ``v``; returns the trimmed text."""
        clean = self.check_text(v, text)
        if not REQUEST_ID_PATTERN.fullmatch(request_id):
            v.add("request_id", "is required: 1 to 64 letters, digits, '.', '_' or '-'")
        return clean

    async def send(
        self, actor: Principal, conversation_id: int, *, text: str, reply_to_id: int | None, request_id: str
    ) -> SentMessage:
        v = Validator()
        clean = self.check_message(v, text, request_id)
        v.raise_if_any()
        async with self._uow() as uow:
            if not await uow.conversations.is_member(conversation_id, actor.user_id):
                raise _not_found(conversation_id)
            earlier = await uow.messages.by_request_id(actor.user_id, request_id)
            if earlier is not None:
                return SentMessage(earlier, created=False)
            if reply_to_id is not None:
                replied = await uow.messages.get(reply_to_id)
                if replied is None or replied.conversation_id != conversation_id:
                    raise InvalidInput.one("reply_to_message_id", "must be a message of the same conversation")
            now = self._clock()
            try:
                message = await uow.messages.add(
                    conversation_id=conversation_id,
                    sender_id=actor.user_id,
                    text=clean,
                    reply_to_id=reply_to_id,
                    request_id=request_id,
                    now=now,
                )
            except AlreadyExists:
                pass  # a concurrent retry with the same request_id committed first: answer with its message
            else:
                await uow.conversations.touch(conversation_id, last_message_id=message.id, now=now)
                await uow.events.append(_message_event(EventKind.MESSAGE_CREATED, message), now)
                await _record_message(uow, actor, "message.send", message, now)
                await uow.commit()
                return SentMessage(message, created=True)
        async with self._uow(read_only=True) as uow:
            first = await uow.messages.by_request_id(actor.user_id, request_id)
        assert first is not None, "the unique (sender_id, request_id) fired, so the row exists"
        return SentMessage(first, created=False)

    async def messages(
        self, actor: Principal, conversation_id: int, *, before_id: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """One page, newest first, and whether older messages remain."""
        async with self._uow(read_only=True) as uow:
            if not await uow.conversations.is_member(conversation_id, actor.user_id):
                raise _not_found(conversation_id)
            page = await uow.messages.page(conversation_id, before_id=before_id, limit=limit + 1)
        return page[:limit], len(page) > limit

    async def _message_for_member(self, uow: UnitOfWork, actor: Principal, message_id: int) -> Message:
        message = await uow.messages.get(message_id)
        if message is None or not await uow.conversations.is_member(message.conversation_id, actor.user_id):
            raise NotFound(f"message {message_id} not found")
        return message

    async def edit(self, actor: Principal, message_id: int, text: str) -> Message:
        v = Validator()
        clean = self.check_text(v, text)
        v.raise_if_any()
        async with self._uow() as uow:
            message = await self._message_for_member(uow, actor, message_id)
            if message.sender_id != actor.user_id:
                raise PermissionDenied("only its author may edit a message")
            if message.deleted_at is not None:
                raise FailedPrecondition("a deleted message cannot be edited", reason="MESSAGE_DELETED")
            now = self._clock()
            await uow.messages.edit(message_id, clean, now)
            edited = await uow.messages.get(message_id)
            assert edited is not None
            await uow.events.append(_message_event(EventKind.MESSAGE_EDITED, edited), now)
            await _record_message(uow, actor, "message.edit", edited, now)
            await uow.commit()
        return edited

    async def delete(self, actor: Principal, message_id: int) -> Message:
        async with self._uow() as uow:
            message = await self._message_for_member(uow, actor, message_id)
            if message.deleted_at is not None:
                return message
            if message.sender_id != actor.user_id and not actor.is_admin:
                conversation = await uow.conversations.get(message.conversation_id)
                member = conversation.member(actor.user_id) if conversation else None
                if member is None or member.role is not MemberRole.ADMIN:
                    raise PermissionDenied("only its author, the group's admins and administrators may delete it")
            now = self._clock()
            await uow.messages.delete(message_id, now)
            tombstone = await uow.messages.get(message_id)
            assert tombstone is not None
            await uow.events.append(_message_event(EventKind.MESSAGE_DELETED, tombstone), now)
            await _record_message(uow, actor, "message.delete", tombstone, now)
            await uow.commit()
        return tombstone

    async def react(self, actor: Principal, message_id: int, emoji: str, *, add: bool) -> Message:
        """Add (or with ``add`` false, take back) the actor's reaction; a no-op when nothing would change."""
        v = Validator()
        check_emoji(v, emoji)
        v.raise_if_any()
        async with self._uow() as uow:
            message = await self._message_for_member(uow, actor, message_id)
            if message.deleted_at is not None:
                raise FailedPrecondition("a deleted message takes no reactions", reason="MESSAGE_DELETED")
            now = self._clock()
            if add:
                mine = next((r for r in message.reactions if r.emoji == emoji and actor.user_id in r.user_ids), None)
                if mine is not None:
                    return message
                if await uow.messages.reactions_by(message_id, actor.user_id) >= REACTIONS_PER_PERSON_MAX:
                    raise FailedPrecondition(
                        f"at most {REACTIONS_PER_PERSON_MAX} different reactions per person on a message",
                        reason="TOO_MANY_REACTIONS",
                    )
                changed = await uow.messages.add_reaction(message_id, actor.user_id, emoji, now)
            else:
                changed = await uow.messages.remove_reaction(message_id, actor.user_id, emoji)
            if not changed:
                return message
            message = await uow.messages.get(message_id)
            assert message is not None
            await uow.events.append(_message_event(EventKind.REACTIONS_CHANGED, message), now)
            action = "message.react" if add else "message.unreact"
            await record_activity(uow, actor.user, action, "message", message_id, emoji, now)  # the emoji alone
            await uow.commit()
        return message

    async def search(
        self, actor: Principal, query: str, *, before_id: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Matches newest first, and whether older ones remain."""
        async with self._uow(read_only=True) as uow:
            found = await uow.messages.search(actor.user_id, query.casefold(), before_id=before_id, limit=limit + 1)
        return found[:limit], len(found) > limit

    async def messages_around(
        self, actor: Principal, conversation_id: int, message_id: int, *, limit: int
    ) -> tuple[list[Message], bool]:
        """Up to ``limit // 2`` newer messages, then ``message_id`` and older ones to fill ``limit``, newest first;
        and whether older ones remain."""
        async with self._uow(read_only=True) as uow:
            if not await uow.conversations.is_member(conversation_id, actor.user_id):
                raise _not_found(conversation_id)
            anchor = await uow.messages.get(message_id)
            if anchor is None or anchor.conversation_id != conversation_id:
                raise InvalidInput.one("around_message_id", "must be a message of this conversation")
            newer = await uow.messages.newer(conversation_id, after_id=message_id, limit=limit // 2)
            older = await uow.messages.page(conversation_id, before_id=message_id + 1, limit=limit - len(newer) + 1)
        more = len(older) > limit - len(newer)
        return [*reversed(newer), *older[: limit - len(newer)]], more

    async def add_members(self, actor: Principal, conversation_id: int, user_ids: list[int]) -> Conversation:
        v = Validator()
        if not user_ids:
            v.add("user_ids", "is required: the people to add")
        wanted: dict[int, int] = {}
        for index, user_id in enumerate(user_ids):
            if user_id <= 0:
                v.add(f"user_ids[{index}]", "must be a positive account id")
            else:
                wanted.setdefault(user_id, index)
        v.raise_if_any()
        async with self._uow() as uow:
            conversation, me = await _group_of(uow, actor, conversation_id)
            if me.role is not MemberRole.ADMIN:
                raise PermissionDenied("only the group's admins may add people")
            new = {u: i for u, i in wanted.items() if conversation.member(u) is None}
            enabled = await uow.users.enabled_ids(list(new))
            for user_id, index in new.items():
                if user_id not in enabled:
                    v.add(f"user_ids[{index}]", f"no such account: {user_id}")
            if len(conversation.members) + len(new) > GROUP_MEMBERS_MAX:
                v.add("user_ids", f"a group has at most {GROUP_MEMBERS_MAX} members")
            v.raise_if_any()
            if not new:
                return conversation
            now = self._clock()
            await uow.conversations.add_members(conversation_id, list(new), now)
            after = await uow.conversations.get(conversation_id)
            assert after is not None
            await uow.events.append(_members_event(EventKind.MEMBERS_ADDED, after, list(new)), now)
            detail = "added users " + ", ".join(str(u) for u in new)  # shortened to 200 characters if need be
            await record_activity(
                uow, actor.user, "conversation.add_members", "conversation", conversation_id, detail, now
            )
            await uow.commit()
        return after

    async def remove_member(self, actor: Principal, conversation_id: int, user_id: int) -> None:
        async with self._uow() as uow:
            conversation, me = await _group_of(uow, actor, conversation_id)
            target = conversation.member(user_id)
            if target is None:
                raise NotFound(f"user {user_id} is not a member of conversation {conversation_id}")
            if user_id != actor.user_id and me.role is not MemberRole.ADMIN:
                raise PermissionDenied("only the group's admins may remove other people")
            await uow.conversations.remove_member(conversation_id, user_id)
            remaining = [m for m in conversation.members if m.user_id != user_id]
            if remaining and not any(m.role is MemberRole.ADMIN for m in remaining):
                await uow.conversations.set_role(conversation_id, remaining[0].user_id, MemberRole.ADMIN)
            after = await uow.conversations.get(conversation_id)
            assert after is not None
            now = self._clock()
            await uow.events.append(_members_event(EventKind.MEMBERS_REMOVED, after, [user_id]), now)
            if user_id == actor.user_id:
                await record_activity(uow, actor.user, "conversation.leave", "conversation", conversation_id, "", now)
            else:
                await record_activity(
                    uow,
                    actor.user,
                    "conversation.remove_member",
                    "conversation",
                    conversation_id,
                    f"removed user {user_id}",
                    now,
                )
            await uow.commit()

    async def mark_read(self, actor: Principal, conversation_id: int, message_id: int) -> ReadState:
        async with self._uow() as uow:
            if not await uow.conversations.is_member(conversation_id, actor.user_id):
                raise _not_found(conversation_id)
            message = await uow.messages.get(message_id)
            if message is None or message.conversation_id != conversation_id:
                raise InvalidInput.one("message_id", "must be a message of this conversation")
            marker, moved = await uow.conversations.move_read_marker(conversation_id, actor.user_id, message_id)
            counts = await uow.conversations.unread_counts(actor.user_id, None)
            if moved:
                payload = {"conversation_id": conversation_id, "last_read_message_id": marker}
                await uow.events.append(
                    NewEvent(EventKind.READ_MARKER_MOVED, payload, user_id=actor.user_id), self._clock()
                )
            # No activity entry: reading is not a change worth logging (and would flood the log).
            await uow.commit()
        return ReadState(marker, counts.get(conversation_id, 0), sum(counts.values()))


async def _record_message(uow: UnitOfWork, actor: Principal, action: str, message: Message, now: datetime) -> None:
    """An activity entry about a message: where it is, never what it says."""
    detail = f"in conversation {message.conversation_id}"
    await record_activity(uow, actor.user, action, "message", message.id, detail, now)


def conversation_payload(conversation: Conversation) -> dict[str, object]:
    return {
        "id": conversation.id,
        "kind": conversation.kind.value,
        "name": conversation.name,
        "creator_id": conversation.creator_id,
        "created_at": conversation.created_at.isoformat(),
        "members": [
            {"user_id": m.user_id, "role": m.role.value, "joined_at": m.joined_at.isoformat()}
            for m in conversation.members
        ],
    }


def _message_event(kind: EventKind, message: Message) -> NewEvent:
    return NewEvent(kind, {"message": message_payload(message)}, message.conversation_id)


def _members_event(kind: EventKind, conversation: Conversation, user_ids: list[int]) -> NewEvent:
    payload = {"conversation": conversation_payload(conversation), "user_ids": user_ids}
    # A removed person is no longer a member: the event is addressed to them too, so they learn of it.
    addressed = user_ids[0] if kind is EventKind.MEMBERS_REMOVED else None
    return NewEvent(kind, payload, conversation.id, user_id=addressed)


def _created(conversation: Conversation) -> NewEvent:
    return NewEvent(
        EventKind.CONVERSATION_CREATED, {"conversation": conversation_payload(conversation)}, conversation.id
    )


async def _group_of(uow: UnitOfWork, actor: Principal, conversation_id: int) -> tuple[Conversation, Member]:
    """A group conversation the actor is a member of, and the actor's membership in it."""
    conversation = await uow.conversations.get(conversation_id)
    me = conversation.member(actor.user_id) if conversation else None
    if conversation is None or me is None:
        raise _not_found(conversation_id)
    if conversation.kind is not ConversationKind.GROUP:
        raise FailedPrecondition("people cannot join or leave a direct conversation", reason="DIRECT")
    return conversation, me


async def _views(uow: UnitOfWork, user_id: int, conversations: list[Conversation]) -> list[ConversationView]:
    last = await uow.messages.get_many([c.last_message_id for c in conversations if c.last_message_id])
    unread = await uow.conversations.unread_counts(user_id, [c.id for c in conversations])
    views = []
    for c in conversations:
        member = c.member(user_id)
        assert member is not None
        views.append(
            ConversationView(
                c,
                last.get(c.last_message_id) if c.last_message_id else None,
                unread.get(c.id, 0),
                member.last_read_message_id,
            )
        )
    return views
