"""Repositories: SQL in, domain records out. Each works inside the unit of work's session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.errors import AlreadyExists
from ..domain.model import LoginThrottle, RefreshToken, Role, Session, User
from .models import LoginThrottleRow, RefreshTokenRow, SessionRow, UserRow


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


def _refresh(row: RefreshTokenRow) -> RefreshToken:
    return RefreshToken(row.id, row.session_id, row.created_at, row.expires_at, row.used_at, row.replaced_by_id)


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int) -> User | None:
        row = await self._s.get(UserRow, user_id)
        return _user(row) if row else None

    async def enabled_ids(self, user_ids: list[int]) -> set[int]:
        if not user_ids:
            return set()
        found = await self._s.scalars(select(UserRow.id).where(UserRow.id.in_(user_ids), ~UserRow.disabled))
        return set(found)

    async def get_with_password(self, username_key: str) -> tuple[User, str] | None:
        row = (await self._s.execute(select(UserRow).where(UserRow.username_key == username_key))).scalar_one_or_none()
        return (_user(row), row.password_hash) if row else None

    async def password_hash(self, user_id: int) -> str | None:
        return await self._s.scalar(select(UserRow.password_hash).where(UserRow.id == user_id))

    async def exists(self, username_key: str) -> bool:
        return await self._s.scalar(select(UserRow.id).where(UserRow.username_key == username_key)) is not None

    async def count(self) -> int:
        return await self._s.scalar(select(func.count()).select_from(UserRow)) or 0

    async def count_enabled_admins(self) -> int:
        stmt = select(func.count()).select_from(UserRow).where(UserRow.role == Role.ADMIN.value, ~UserRow.disabled)
        return await self._s.scalar(stmt) or 0

    async def add(self, *, username: str, display_name: str, role: Role, password_hash: str, now: datetime) -> User:
        row = UserRow(
            username=username,
            username_key=username.casefold(),
            display_name=display_name,
            display_name_key=display_name.casefold(),
            role=role.value,
            disabled=False,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )
        self._s.add(row)
        try:
            async with self._s.begin_nested():
                await self._s.flush()
        except IntegrityError:
            raise AlreadyExists(f"username {username!r} is taken", reason="USERNAME_TAKEN") from None
        return _user(row)

    async def update(self, user_id: int, *, now: datetime, **changes: object) -> User:
        row = await self._s.get(UserRow, user_id)
        assert row is not None
        if "display_name" in changes:
            row.display_name = str(changes["display_name"])
            row.display_name_key = row.display_name.casefold()
        if "role" in changes:
            row.role = Role(changes["role"]).value
        if "disabled" in changes:
            row.disabled = bool(changes["disabled"])
        row.updated_at = now
        await self._s.flush()
        return _user(row)

    async def set_password(self, user_id: int, password_hash: str, now: datetime) -> None:
        await self._s.execute(
            update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash, updated_at=now)
        )

    async def record_login(self, user_id: int, now: datetime) -> None:
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(last_login_at=now))

    async def delete(self, user_id: int) -> None:
        await self._s.execute(delete(UserRow).where(UserRow.id == user_id))

    async def list(self, *, after_key: str | None, prefix: str, include_disabled: bool, limit: int) -> list[User]:
        stmt = select(UserRow).order_by(UserRow.username_key).limit(limit)
        if after_key is not None:
            stmt = stmt.where(UserRow.username_key > after_key)
        if prefix:
            stmt = stmt.where(
                or_(
                    UserRow.username_key.startswith(prefix, autoescape=True),
                    UserRow.display_name_key.startswith(prefix, autoescape=True),
                )
            )
        if not include_disabled:
            stmt = stmt.where(~UserRow.disabled)
        return [_user(row) for row in (await self._s.scalars(stmt))]


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(self, *, session_id: str, user_id: int, now: datetime) -> None:
        self._s.add(SessionRow(id=session_id, user_id=user_id, created_at=now))
        await self._s.flush()

    async def get(self, session_id: str) -> Session | None:
        row = await self._s.get(SessionRow, session_id)
        return Session(row.id, row.user_id, row.created_at, row.revoked_at) if row else None

    async def revoke(self, session_id: str, *, now: datetime, reason: str) -> None:
        await self._s.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        )

    async def revoke_all_for_user(
        self, user_id: int, *, now: datetime, reason: str, keep: str | None = None
    ) -> list[str]:
        where = [SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None)]
        if keep is not None:
            where.append(SessionRow.id != keep)
        ids = list(await self._s.scalars(select(SessionRow.id).where(*where)))
        if ids:
            await self._s.execute(
                update(SessionRow).where(SessionRow.id.in_(ids)).values(revoked_at=now, revoke_reason=reason)
            )
        return ids

    async def add_refresh_token(self, *, session_id: str, token_hash: str, now: datetime, expires_at: datetime) -> int:
        row = RefreshTokenRow(session_id=session_id, token_hash=token_hash, created_at=now, expires_at=expires_at)
        self._s.add(row)
        await self._s.flush()
        return row.id

    async def find_refresh_token(self, token_hash: str) -> RefreshToken | None:
        stmt = select(RefreshTokenRow).where(RefreshTokenRow.token_hash == token_hash)
        row = (await self._s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
        return _refresh(row) if row else None

    async def get_refresh_token(self, token_id: int) -> RefreshToken | None:
        row = await self._s.get(RefreshTokenRow, token_id, populate_existing=True)
        return _refresh(row) if row else None

    async def claim_refresh_token(self, token_id: int, *, now: datetime) -> bool:
        result = await self._s.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.id == token_id, RefreshTokenRow.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def replace_refresh_token(self, token_id: int, *, replaced_by_id: int, now: datetime) -> None:
        previous = await self._s.scalar(select(RefreshTokenRow.replaced_by_id).where(RefreshTokenRow.id == token_id))
        if previous is not None:
            await self._s.execute(update(RefreshTokenRow).where(RefreshTokenRow.id == previous).values(expires_at=now))
        await self._s.execute(
            update(RefreshTokenRow).where(RefreshTokenRow.id == token_id).values(replaced_by_id=replaced_by_id)
        )


class SqlLoginThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, username_key: str) -> LoginThrottle | None:
        row = await self._s.get(LoginThrottleRow, username_key, populate_existing=True)
        return LoginThrottle(row.username_key, row.failures, row.window_started_at, row.locked_until) if row else None

    async def save(self, state: LoginThrottle) -> None:
        await self._s.merge(
            LoginThrottleRow(
                username_key=state.username_key,
                failures=state.failures,
                window_started_at=state.window_started_at,
                locked_until=state.locked_until,
            )
        )
        await self._s.flush()

    async def clear(self, username_key: str) -> None:
        await self._s.execute(delete(LoginThrottleRow).where(LoginThrottleRow.username_key == username_key))
