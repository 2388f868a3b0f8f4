"""Access tokens (HS256 JWTs) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ISSUER = "workspace"
ALGORITHM = "HS256"
#: Clock difference between replicas tolerated when checking expiry, seconds.
LEEWAY_SECONDS = 5
#: Access tokens whose signature a codec remembers having checked (a client sends the same one ~15 min).
VERIFIED_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """The access token is malformed, forged or expired; the message says which, for the caller."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str


class TokenCodec:
    def __init__(self, secret: str, access_ttl: timedelta) -> None:
        self._secret = secret
        self._ttl = access_ttl
        #: token -> (its claims, its expiry as a Unix time): a token's signature is checked once, its
        #: expiry on every use. Only tokens that verified are kept; insertion order evicts the oldest.
        self._verified: dict[str, tuple[AccessClaims, float]] = {}

    def access_token(self, user, session_id: str, now: datetime) -> tuple[str, datetime]:  # type: ignore[no-untyped-def]
        expires = now + self._ttl
        claims = {
            "iss": ISSUER,
            "sub": str(user.id),
            "sid": session_id,
            "role": user.role.value,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires.replace(microsecond=0)

    def verify_access_token(self, token: str) -> AccessClaims:
        known = self._verified.get(token)
        if known is not None:
            if time.time() >= known[1] + LEEWAY_SECONDS:  # as PyJWT decides: exp + leeway <= now
                raise InvalidToken("access token has expired; refresh it", "TOKEN_EXPIRED")
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            )
            verified = AccessClaims(int(claims["sub"]), str(claims["sid"]))
        except jwt.ExpiredSignatureError:
            raise InvalidToken("access token has expired; refresh it", "TOKEN_EXPIRED") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidToken("access token is not valid", "TOKEN_INVALID") from None
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (verified, float(claims["exp"]))
        return verified

    @staticmethod
    def new_refresh_token() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def hash_refresh_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
