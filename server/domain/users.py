"""The people directory and account administration."""

from __future__ import annotations

from dataclasses import dataclass

from . import rules
from .activity import record_activity
from .errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Validator
from .model import Principal, Role, User
from .ports import AccessRevocations, Clock, PasswordHasher, UnitOfWorkFactory

#: Fields a person may change on their own account; admins may change all of UPDATABLE_FIELDS.
SELF_UPDATABLE_FIELDS = frozenset({"display_name"})
UPDATABLE_FIELDS = frozenset({"display_name", "role", "disabled"})


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    #: Key of the last user, to continue after; None on the last page.
    next_after_key: str | None


class Directory:
    """Use cases on accounts: read the directory, administer accounts."""

    def __init__(
        self, uow: UnitOfWorkFactory, hasher: PasswordHasher, revocations: AccessRevocations, clock: Clock
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._revocations = revocations
        self._clock = clock

    async def create_user(
        self, actor: Principal, *, username: str, display_name: str, role: Role | None, password: str
    ) -> User:
        _require_admin(actor, "create accounts")
        v = Validator()
        rules.check_username(v, "user.username", username)
        name = rules.clean_display_name(v, "user.display_name", display_name, required=False)
        rules.check_new_password(v, "password", password)
        v.raise_if_any()
        key = rules.username_key(username)
        async with self._uow(read_only=True) as uow:
            if await uow.users.exists(key):
                raise AlreadyExists(f"username {key!r} is taken", reason="USERNAME_TAKEN")
        password_hash = await self._hasher.hash(password)
        async with self._uow() as uow:
            now = self._clock()
            user = await uow.users.add(
                username=key,
                display_name=name or key,
                role=role or Role.USER,
                password_hash=password_hash,
                now=now,
            )
            detail = f"{user.username} ({user.role.value})"
            await record_activity(uow, actor.user, "user.create", "user", user.id, detail, now)
            await uow.commit()
        return user

    async def get_user(self, actor: Principal, user_id: int) -> User:
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
        if user is None or (user.disabled and not actor.is_admin and user.id != actor.user_id):
            raise NotFound(f"user {user_id} not found")
        return user

    async def list_users(
        self, actor: Principal, *, after_key: str | None, prefix: str, show_disabled: bool, limit: int
    ) -> UserPage:
        async with self._uow(read_only=True) as uow:
            users = await uow.users.list(
                after_key=after_key,
                prefix=prefix.strip().casefold(),
                include_disabled=show_disabled and actor.is_admin,
                limit=limit + 1,
            )
        more = len(users) > limit
        users = users[:limit]
        return UserPage(users, rules.username_key(users[-1].username) if more else None)

    async def update_user(self, actor: Principal, user_id: int, changes: dict[str, object]) -> User:
        """Apply ``changes`` (a subset of UPDATABLE_FIELDS, already typed) to one account."""
        if user_id != actor.user_id or not SELF_UPDATABLE_FIELDS.issuperset(changes):
            _require_admin(actor, "change this account" if user_id != actor.user_id else "change your role or status")
        v = Validator()
        if "display_name" in changes:
            changes["display_name"] = rules.clean_display_name(
                v, "user.display_name", str(changes["display_name"]), required=True
            )
        v.raise_if_any()
        async with self._uow() as uow:
            current = await uow.users.get(user_id)
            if current is None:
                raise NotFound(f"user {user_id} not found")
            demoting = (
                current.is_admin
                and not current.disabled
                and (changes.get("role", current.role) is not Role.ADMIN or changes.get("disabled") is True)
            )
            if demoting and await uow.users.count_enabled_admins() <= 1:
                raise FailedPrecondition(
                    "the last administrator can be neither demoted nor disabled", reason="LAST_ADMIN"
                )
            now = self._clock()
            user = await uow.users.update(user_id, now=now, **changes)
            ended: list[str] = []
            if user.disabled and not current.disabled:
                ended = await uow.sessions.revoke_all_for_user(user_id, now=now, reason="disabled")
            changed = [name for name in sorted(changes) if getattr(user, name) != getattr(current, name)]
            if changed:  # the field names only: an update that changes nothing is no activity
                await record_activity(uow, actor.user, "user.update", "user", user_id, ", ".join(changed), now)
            await uow.commit()
        self._revocations.user_changed(user_id)
        for session_id in ended:
            self._revocations.session_ended(session_id)
        return user

    async def delete_user(self, actor: Principal, user_id: int) -> None:
        _require_admin(actor, "delete accounts")
        if user_id == actor.user_id:
            raise FailedPrecondition("you cannot delete your own account")
        async with self._uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            if user.is_admin and not user.disabled and await uow.users.count_enabled_admins() <= 1:
                raise FailedPrecondition("the last administrator cannot be deleted", reason="LAST_ADMIN")
            # Recorded first: taking the event id before the row lock keeps the order every change uses
            # (event id, then the actor's row for the activity row's foreign key), so a change by the person
            # being deleted, at that very moment, waits instead of deadlocking on PostgreSQL.
            await record_activity(uow, actor.user, "user.delete", "user", user_id, user.username, self._clock())
            await uow.users.delete(user_id)
            await uow.commit()
        self._revocations.user_changed(user_id)

    async def reset_password(self, actor: Principal, user_id: int, new_password: str) -> int:
        """Give another account ``new_password``, end all of its sessions and lift its log-in throttle; returns
        how many sessions ended."""
        _require_admin(actor, "reset passwords")
        if user_id == actor.user_id:
            raise FailedPrecondition("to change your own password, use AuthService.ChangePassword")
        v = Validator()
        rules.check_new_password(v, "new_password", new_password)
        v.raise_if_any()
        async with self._uow(read_only=True) as uow:
            if await uow.users.get(user_id) is None:
                raise NotFound(f"user {user_id} not found")
        new_hash = await self._hasher.hash(new_password)  # off the transaction: hashing takes a while
        async with self._uow() as uow:
            now = self._clock()
            user = await uow.users.get(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            await uow.users.set_password(user_id, new_hash, now)
            ended = await uow.sessions.revoke_all_for_user(user_id, now=now, reason="password reset")
            await uow.login_throttle.clear(rules.username_key(user.username))
            detail = f"{user.username}, sessions ended: {len(ended)}"  # never anything about the password
            await record_activity(uow, actor.user, "user.reset_password", "user", user_id, detail, now)
            await uow.commit()
        for session_id in ended:
            self._revocations.session_ended(session_id)
        return len(ended)


def _require_admin(actor: Principal, what: str) -> None:
    if not actor.is_admin:
        raise PermissionDenied(f"only administrators may {what}")
