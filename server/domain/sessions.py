"""Logging in, token rotation, logging out, changing passwords.

A *session* is what one successful login creates. Each refresh rotates its
refresh token; every token rotated from one login belongs to the same session
(the token "family"). Presenting a token that was already used means it was
copied: the whole session ends, unless the token was rotated less than
``reuse_grace`` seconds ago (a response lost on a flaky network), in which
case the caller gets a fresh successor and the earlier successor becomes void.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import rules
from .activity import record_activity
from .errors import AlreadyExists, InvalidInput, PermissionDenied, Throttled, Unauthenticated, Validator
from .model import IssuedTokens, LoginThrottle, Principal, Role, User
from .ports import AccessRevocations, Clock, PasswordHasher, TokenIssuer, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: Failed logins older than this are forgotten.
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
#: The longest a username is locked after repeated failures.
MAX_LOCKOUT = timedelta(minutes=15)
#: The one message for a wrong password and an unknown username, so neither can be told apart.
BAD_CREDENTIALS = "wrong username or password"
INVALID_REFRESH = "refresh token is not valid; log in again"
BOOTSTRAP_ADMIN = "admin"
#: Longest refresh token accepted: ours are 43 characters.
REFRESH_TOKEN_MAX = 256


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    lockout: timedelta
    access_ttl: timedelta
    refresh_ttl: timedelta
    reuse_grace: timedelta


@dataclass(frozen=True)
class LoginResult:
    tokens: IssuedTokens
    user: User


@dataclass(frozen=True)
class BootstrapResult:
    """What ``ensure_admin`` did on first start: the password is set only when it was generated."""

    created: bool
    generated_password: str | None = None


class Sessions:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        revocations: AccessRevocations,
        policy: LoginPolicy,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._revocations = revocations
        self._policy = policy
        self._clock = clock
        self._dummy_hash: str | None = None

    async def prepare(self) -> None:
        """Compute the hash that unknown usernames are checked against, so they take as long as known ones."""
        self._dummy_hash = await self._hasher.hash(secrets.token_urlsafe(16))

    async def ensure_admin(self, password: str | None) -> BootstrapResult:
        """On first start (no accounts at all) create ``admin``, with ``password`` or a generated one."""
        async with self._uow(read_only=True) as uow:
            if await uow.users.count() > 0:
                return BootstrapResult(created=False)
        generated = None if password else secrets.token_urlsafe(12)
        password_hash = await self._hasher.hash(password or generated or "")
        try:
            async with self._uow() as uow:
                await uow.users.add(
                    username=BOOTSTRAP_ADMIN,
                    display_name="Administrator",
                    role=Role.ADMIN,
                    password_hash=password_hash,
                    now=self._clock(),
                )
                await uow.commit()
        except AlreadyExists:  # another replica won the race on a shared database
            return BootstrapResult(created=False)
        return BootstrapResult(created=True, generated_password=generated)

    async def login(self, username: str, password: str) -> LoginResult:
        v = Validator()
        rules.check_username(v, "username", username)
        rules.check_given_password(v, "password", password)
        v.raise_if_any()
        key = rules.username_key(username)
        now = self._clock()
        async with self._uow(read_only=True) as uow:
            throttle = await uow.login_throttle.get(key)
            found = await uow.users.get_with_password(key)
        _refuse_if_locked(throttle, now)
        assert self._dummy_hash is not None, "Sessions.prepare() was not awaited"
        ok = await self._hasher.verify(found[1] if found else self._dummy_hash, password)
        if not ok or found is None:
            await self._record_failure(key, login_failed=True)
            raise Unauthenticated(BAD_CREDENTIALS, reason="WRONG_CREDENTIALS")
        user, password_hash = found
        if user.disabled:
            raise PermissionDenied("this account is disabled; ask an administrator", reason="ACCOUNT_DISABLED")
        new_hash = await self._hasher.hash(password) if self._hasher.needs_rehash(password_hash) else None
        async with self._uow() as uow:
            now = self._clock()
            if throttle is not None:
                await uow.login_throttle.clear(key)
            await uow.users.record_login(user.id, now)
            if new_hash:
                await uow.users.set_password(user.id, new_hash, now)
            session_id = uuid.uuid4().hex
            await uow.sessions.create(session_id=session_id, user_id=user.id, now=now)
            refresh, refresh_expires = await self._add_refresh_token(uow, session_id, now)
            await record_activity(uow, user, "auth.login", "session", session_id, "", now)
            await uow.commit()
        log.info("login", extra={"user": user.username, "session": session_id})
        return LoginResult(self._issue(user, session_id, now, refresh, refresh_expires), user)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        v = Validator()
        if v.check(refresh_token != "", "refresh_token", "is required"):
            v.check(
                len(refresh_token) <= REFRESH_TOKEN_MAX,
                "refresh_token",
                f"must be at most {REFRESH_TOKEN_MAX} characters",
            )
        v.raise_if_any()
        token_hash = self._tokens.hash_refresh_token(refresh_token)
        async with self._uow() as uow:
            now = self._clock()
            token = await uow.sessions.find_refresh_token(token_hash)
            session = await uow.sessions.get(token.session_id) if token else None
            user = await uow.users.get(session.user_id) if session else None
            if token is None or session is None or user is None or not session.active or token.expires_at <= now:
                raise Unauthenticated(INVALID_REFRESH, reason="REFRESH_TOKEN_INVALID")
            if user.disabled:
                raise Unauthenticated("this account is disabled", reason="ACCOUNT_DISABLED")
            fresh = token.used_at is None and await uow.sessions.claim_refresh_token(token.id, now=now)
            if not fresh:
                token = await uow.sessions.find_refresh_token(token_hash)
                assert token is not None and token.used_at is not None
                successor = await uow.sessions.get_refresh_token(token.replaced_by_id) if token.replaced_by_id else None
                within_grace = now - token.used_at <= self._policy.reuse_grace
                if not within_grace or successor is None or successor.used_at is not None:
                    await uow.sessions.revoke(session.id, now=now, reason="refresh token reused")
                    await uow.commit()
                    self._revocations.session_ended(session.id)
                    log.warning(
                        "refresh token reuse: session ended", extra={"user": user.username, "session": session.id}
                    )
                    raise Unauthenticated(
                        "refresh token was already used; the session has ended, log in again",
                        reason="REFRESH_TOKEN_REUSED",
                    )
            refresh, refresh_expires = await self._add_refresh_token(uow, session.id, now, replaces=token.id)
            await uow.commit()
        return self._issue(user, session.id, now, refresh, refresh_expires)

    async def logout(self, principal: Principal) -> None:
        async with self._uow() as uow:
            now = self._clock()
            await uow.sessions.revoke(principal.session_id, now=now, reason="logout")
            await record_activity(uow, principal.user, "auth.logout", "session", principal.session_id, "", now)
            await uow.commit()
        self._revocations.session_ended(principal.session_id)

    async def change_password(self, principal: Principal, old_password: str, new_password: str) -> None:
        v = Validator()
        rules.check_given_password(v, "old_password", old_password)
        rules.check_new_password(v, "new_password", new_password)
        if old_password and old_password == new_password:
            v.add("new_password", "must differ from the current password")
        v.raise_if_any()
        key = rules.username_key(principal.user.username)
        async with self._uow(read_only=True) as uow:
            throttle = await uow.login_throttle.get(key)
            current = await uow.users.password_hash(principal.user_id)
        _refuse_if_locked(throttle, self._clock())
        if current is None or not await self._hasher.verify(current, old_password):
            await self._record_failure(key)  # a stolen access token must not become a password oracle
            raise InvalidInput.one("old_password", "does not match the current password")
        new_hash = await self._hasher.hash(new_password)
        async with self._uow() as uow:
            now = self._clock()
            await uow.users.set_password(principal.user_id, new_hash, now)
            ended = await uow.sessions.revoke_all_for_user(
                principal.user_id, now=now, reason="password changed", keep=principal.session_id
            )
            detail = f"other sessions ended: {len(ended)}"  # never anything about the password itself
            await record_activity(uow, principal.user, "auth.change_password", "user", principal.user_id, detail, now)
            await uow.commit()
        for session_id in ended:
            self._revocations.session_ended(session_id)

    async def principal(self, user_id: int, session_id: str) -> Principal | None:
        """The caller behind a valid access token, or None if its session ended or the account is disabled."""
        async with self._uow(read_only=True) as uow:
            session = await uow.sessions.get(session_id)
            if session is None or not session.active or session.user_id != user_id:
                return None
            user = await uow.users.get(user_id)
        if user is None or user.disabled:
            return None
        return Principal(user, session_id)

    async def _record_failure(self, key: str, *, login_failed: bool = False) -> None:
        """Count a failed password check against ``key``; a failed log-in is also an activity entry (by
        nobody, naming the username tried), written in the same transaction."""
        async with self._uow() as uow:
            now = self._clock()
            state = await uow.login_throttle.get(key)
            if state is None or now - state.window_started_at > LOGIN_FAILURE_WINDOW:
                state = LoginThrottle(key, 0, now, None)
            failures = state.failures + 1
            locked_until = state.locked_until
            excess = failures - self._policy.max_failures
            if excess >= 0:
                locked_until = now + min(self._policy.lockout * (2 ** min(excess, 16)), MAX_LOCKOUT)
            await uow.login_throttle.save(LoginThrottle(key, failures, state.window_started_at, locked_until))
            if login_failed:
                detail = "now locked" if excess >= 0 else f"failures in a row: {failures}"
                await record_activity(uow, None, "auth.login_failed", "session", "", detail, now, username=key)
            await uow.commit()
        if excess >= 0:
            log.warning("login throttled", extra={"user": key, "failures": failures})

    async def _add_refresh_token(
        self, uow: UnitOfWork, session_id: str, now: datetime, replaces: int | None = None
    ) -> tuple[str, datetime]:
        token = self._tokens.new_refresh_token()
        expires = now + self._policy.refresh_ttl
        token_id = await uow.sessions.add_refresh_token(
            session_id=session_id, token_hash=self._tokens.hash_refresh_token(token), now=now, expires_at=expires
        )
        if replaces is not None:
            await uow.sessions.replace_refresh_token(replaces, replaced_by_id=token_id, now=now)
        return token, expires

    def _issue(
        self, user: User, session_id: str, now: datetime, refresh: str, refresh_expires: datetime
    ) -> IssuedTokens:
        access, access_expires = self._tokens.access_token(user, session_id, now)
        return IssuedTokens(access, access_expires, refresh, refresh_expires)


def _refuse_if_locked(throttle: LoginThrottle | None, now: datetime) -> None:
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        wait = (throttle.locked_until - now).total_seconds()
        raise Throttled(
            f"too many failed logins; try again in {int(wait) + 1} s", retry_after=wait, reason="LOGIN_THROTTLED"
        )
