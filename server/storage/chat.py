"""Repositories for conversations, messages and the event log."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import AlreadyExists
from ..domain.model import (
    Conversation,
    ConversationKind,
    EventKind,
    Member,
    MemberRole,
    Message,
    NewEvent,
    Reaction,
    StoredEvent,
)
from .models import ConversationRow, EventCounterRow, EventRow, MemberRow, MessageRow, ReactionRow


def _message(row: MessageRow, reactions: tuple[Reaction, ...] = ()) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        sender_id=row.sender_id,
        text=row.text,
        reply_to_id=row.reply_to_id,
        request_id=row.request_id,
        created_at=row.created_at,
        edited_at=row.edited_at,
        deleted_at=row.deleted_at,
        reactions=reactions,
    )


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (with ``escape="\\"``): ``%``, ``_`` and ``\\``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _event(row: EventRow) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        kind=EventKind(row.kind),
        payload=json.loads(row.payload),
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        created_at=row.created_at,
    )


def _conversation(row: ConversationRow, members: list[MemberRow]) -> Conversation:
    return Conversation(
        id=row.id,
        kind=ConversationKind(row.kind),
        name=row.name,
        creator_id=row.creator_id,
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        last_message_id=row.last_message_id,
        members=tuple(
            Member(m.user_id, MemberRole(m.role), m.joined_at, m.last_read_message_id)
            for m in sorted(members, key=lambda m: m.position)
        ),
    )


class SqlConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _with_members(self, rows: list[ConversationRow]) -> list[Conversation]:
        if not rows:
            return []
        members: dict[int, list[MemberRow]] = {row.id: [] for row in rows}
        for m in await self._s.scalars(select(MemberRow).where(MemberRow.conversation_id.in_(members))):
            members[m.conversation_id].append(m)
        return [_conversation(row, members[row.id]) for row in rows]

    async def get(self, conversation_id: int) -> Conversation | None:
        row = await self._s.get(ConversationRow, conversation_id, populate_existing=True)
        return (await self._with_members([row]))[0] if row else None

    async def get_direct(self, direct_key: str) -> Conversation | None:
        row = await self._s.scalar(select(ConversationRow).where(ConversationRow.direct_key == direct_key))
        return (await self._with_members([row]))[0] if row else None

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
        row = ConversationRow(
            kind=kind.value,
            name=name,
            creator_id=creator_id,
            direct_key=direct_key,
            created_at=now,
            last_activity_at=now,
        )
        self._s.add(row)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise AlreadyExists("that direct conversation exists already", reason="CONVERSATION_EXISTS") from None
        member_rows = [
            MemberRow(
                conversation_id=row.id,
                user_id=user_id,
                role=role.value,
                position=position,
                joined_at=now,
                last_read_message_id=0,
            )
            for position, (user_id, role) in enumerate(members)
        ]
        self._s.add_all(member_rows)
        await self._s.flush()
        return _conversation(row, member_rows)

    async def add_members(self, conversation_id: int, user_ids: list[int], now: datetime) -> None:
        position = await self._s.scalar(
            select(func.max(MemberRow.position)).where(MemberRow.conversation_id == conversation_id)
        )
        start = (position if position is not None else -1) + 1
        self._s.add_all(
            MemberRow(
                conversation_id=conversation_id,
                user_id=user_id,
                role=MemberRole.MEMBER.value,
                position=start + i,
                joined_at=now,
                last_read_message_id=0,
            )
            for i, user_id in enumerate(user_ids)
        )
        await self._s.flush()

    async def remove_member(self, conversation_id: int, user_id: int) -> None:
        await self._s.execute(
            delete(MemberRow).where(MemberRow.conversation_id == conversation_id, MemberRow.user_id == user_id)
        )

    async def set_role(self, conversation_id: int, user_id: int, role: MemberRole) -> None:
        await self._s.execute(
            update(MemberRow)
            .where(MemberRow.conversation_id == conversation_id, MemberRow.user_id == user_id)
            .values(role=role.value)
        )

    async def is_member(self, conversation_id: int, user_id: int) -> bool:
        found = await self._s.scalar(
            select(MemberRow.user_id).where(MemberRow.conversation_id == conversation_id, MemberRow.user_id == user_id)
        )
        return found is not None

    async def ids_for_member(self, user_id: int) -> set[int]:
        return set(await self._s.scalars(select(MemberRow.conversation_id).where(MemberRow.user_id == user_id)))

    async def page_for_member(
        self, user_id: int, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Conversation]:
        c = ConversationRow
        stmt = (
            select(c)
            .join(MemberRow, and_(MemberRow.conversation_id == c.id, MemberRow.user_id == user_id))
            .order_by(c.last_activity_at.desc(), c.id.desc())
            .limit(limit)
        )
        if after is not None:
            at, conversation_id = after
            stmt = stmt.where(or_(c.last_activity_at < at, and_(c.last_activity_at == at, c.id < conversation_id)))
        return await self._with_members(list(await self._s.scalars(stmt)))

    async def unread_counts(self, user_id: int, conversation_ids: list[int] | None) -> dict[int, int]:
        m, me = MessageRow, MemberRow
        stmt = (
            select(m.conversation_id, func.count())
            .join(me, and_(me.conversation_id == m.conversation_id, me.user_id == user_id))
            .where(m.id > me.last_read_message_id, or_(m.sender_id.is_(None), m.sender_id != user_id))
            .group_by(m.conversation_id)
        )
        if conversation_ids is not None:
            stmt = stmt.where(m.conversation_id.in_(conversation_ids))
        return {conversation_id: count for conversation_id, count in await self._s.execute(stmt)}

    async def touch(self, conversation_id: int, *, last_message_id: int, now: datetime) -> None:
        await self._s.execute(
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(last_activity_at=now, last_message_id=last_message_id)
        )

    async def move_read_marker(self, conversation_id: int, user_id: int, message_id: int) -> tuple[int, bool]:
        where = (MemberRow.conversation_id == conversation_id, MemberRow.user_id == user_id)
        result = await self._s.execute(
            update(MemberRow)
            .where(*where, MemberRow.last_read_message_id < message_id)
            .values(last_read_message_id=message_id)
        )
        marker = await self._s.scalar(select(MemberRow.last_read_message_id).where(*where))
        return int(marker or 0), result.rowcount > 0  # type: ignore[attr-defined]


class SqlMessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _with_reactions(self, rows: list[MessageRow]) -> list[Message]:
        if not rows:
            return []
        by_message: dict[int, dict[str, list[int]]] = {row.id: {} for row in rows}
        reactions = await self._s.execute(
            select(ReactionRow.message_id, ReactionRow.emoji, ReactionRow.user_id)
            .where(ReactionRow.message_id.in_(by_message))
            .order_by(ReactionRow.id)
        )
        for message_id, emoji, user_id in reactions:
            by_message[message_id].setdefault(emoji, []).append(user_id)
        return [
            _message(row, tuple(Reaction(e, tuple(users)) for e, users in by_message[row.id].items())) for row in rows
        ]

    async def get(self, message_id: int) -> Message | None:
        row = await self._s.get(MessageRow, message_id, populate_existing=True)
        return (await self._with_reactions([row]))[0] if row else None

    async def get_many(self, message_ids: list[int]) -> dict[int, Message]:
        if not message_ids:
            return {}
        rows = list(await self._s.scalars(select(MessageRow).where(MessageRow.id.in_(message_ids))))
        return {m.id: m for m in await self._with_reactions(rows)}

    async def by_request_id(self, sender_id: int, request_id: str) -> Message | None:
        row = await self._s.scalar(
            select(MessageRow).where(MessageRow.sender_id == sender_id, MessageRow.request_id == request_id)
        )
        return (await self._with_reactions([row]))[0] if row else None

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
        row = MessageRow(
            conversation_id=conversation_id,
            sender_id=sender_id,
            text=text,
            search_text=text.casefold(),
            reply_to_id=reply_to_id,
            request_id=request_id,
            created_at=now,
        )
        self._s.add(row)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise AlreadyExists("request_id already used", reason="DUPLICATE_REQUEST") from None
        return _message(row)

    async def edit(self, message_id: int, text: str, now: datetime) -> None:
        await self._s.execute(
            update(MessageRow)
            .where(MessageRow.id == message_id)
            .values(text=text, search_text=text.casefold(), edited_at=now)
        )

    async def delete(self, message_id: int, now: datetime) -> None:
        await self._s.execute(delete(ReactionRow).where(ReactionRow.message_id == message_id))
        await self._s.execute(
            update(MessageRow).where(MessageRow.id == message_id).values(text="", search_text="", deleted_at=now)
        )

    async def add_reaction(self, message_id: int, user_id: int, emoji: str, now: datetime) -> bool:
        exists = await self._s.scalar(
            select(ReactionRow.id).where(
                ReactionRow.message_id == message_id, ReactionRow.user_id == user_id, ReactionRow.emoji == emoji
            )
        )
        if exists is not None:
            return False
        self._s.add(ReactionRow(message_id=message_id, user_id=user_id, emoji=emoji, created_at=now))
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:  # the same reaction, added at the same moment from another device
            return False
        return True

    async def remove_reaction(self, message_id: int, user_id: int, emoji: str) -> bool:
        result = await self._s.execute(
            delete(ReactionRow).where(
                ReactionRow.message_id == message_id, ReactionRow.user_id == user_id, ReactionRow.emoji == emoji
            )
        )
        return result.rowcount > 0  # type: ignore[attr-defined]

    async def reactions_by(self, message_id: int, user_id: int) -> int:
        return int(
            await self._s.scalar(
                select(func.count()).where(ReactionRow.message_id == message_id, ReactionRow.user_id == user_id)
            )
            or 0
        )

    async def page(self, conversation_id: int, *, before_id: int | None, limit: int) -> list[Message]:
        stmt = (
            select(MessageRow)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(MessageRow.id < before_id)
        return await self._with_reactions(list(await self._s.scalars(stmt)))

    async def newer(self, conversation_id: int, *, after_id: int, limit: int) -> list[Message]:
        stmt = (
            select(MessageRow)
            .where(MessageRow.conversation_id == conversation_id, MessageRow.id > after_id)
            .order_by(MessageRow.id)
            .limit(limit)
        )
        return await self._with_reactions(list(await self._s.scalars(stmt)))

    async def search(self, user_id: int, folded_query: str, *, before_id: int | None, limit: int) -> list[Message]:
        mine = select(MemberRow.conversation_id).where(MemberRow.user_id == user_id)
        stmt = (
            select(MessageRow)
            .where(
                MessageRow.conversation_id.in_(mine),
                MessageRow.deleted_at.is_(None),
                MessageRow.search_text.like(f"%{escape_like(folded_query)}%", escape="\\"),
            )
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            stmt = stmt.where(MessageRow.id < before_id)
        return await self._with_reactions(list(await self._s.scalars(stmt)))


class SqlEventLog:
    """Appends to ``events``. Append last in a unit of work: the counter's lock is then always taken
    after the rows the change touches, in every transaction, so event writers never deadlock."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        #: whether this unit of work appended an event (the unit of work then wakes the streams on commit)
        self.appended = False

    async def append(self, event: NewEvent, now: datetime) -> int:
        event_id = await self._s.scalar(
            update(EventCounterRow)
            .where(EventCounterRow.id == 1)
            .values(last_id=EventCounterRow.last_id + 1)
            .returning(EventCounterRow.last_id)
        )
        assert event_id is not None, "event_counter has no row: is the database migrated?"
        self._s.add(
            EventRow(
                id=event_id,
                kind=event.kind.value,
                conversation_id=event.conversation_id,
                user_id=event.user_id,
                payload=json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False),
                created_at=now,
            )
        )
        await self._s.flush()
        self.appended = True
        return int(event_id)

    async def prune(self, older_than: datetime) -> int:
        result = await self._s.execute(delete(EventRow).where(EventRow.created_at < older_than))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def last_id(self) -> int:
        return int(await self._s.scalar(select(EventCounterRow.last_id).where(EventCounterRow.id == 1)) or 0)

    async def first_id(self) -> int | None:
        return await self._s.scalar(select(func.min(EventRow.id)))

    async def after(self, after_id: int, *, limit: int) -> list[StoredEvent]:
        stmt = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id).limit(limit)
        return [_event(row) for row in await self._s.scalars(stmt)]

    async def visible_after(self, after_id: int, up_to_id: int, user_id: int, *, limit: int) -> list[StoredEvent]:
        mine = select(MemberRow.conversation_id).where(MemberRow.user_id == user_id)
        stmt = (
            select(EventRow)
            .where(
                EventRow.id > after_id,
                EventRow.id <= up_to_id,
                or_(
                    EventRow.user_id == user_id,
                    EventRow.conversation_id.in_(mine),
                    # whose people the caller shares a conversation with: decided by the caller of this method
                    EventRow.kind == EventKind.PRESENCE_CHANGED.value,
                ),
            )
            .order_by(EventRow.id)
            .limit(limit)
        )
        return [_event(row) for row in await self._s.scalars(stmt)]
