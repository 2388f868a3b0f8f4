"""Field rules for accounts, shared by every use case that accepts them."""

from __future__ import annotations

import re

from .errors import Validator

USERNAME_MIN, USERNAME_MAX = 3, 32
USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{3,32}")  # used with fullmatch: "$" would let a final "\n" in
DISPLAY_NAME_MAX = 100
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 1024
NAME_PREFIX_MAX = 100


def username_key(username: str) -> str:
    """Usernames are unique without regard to case: this is the form that is compared."""
    return username.casefold()


def check_username(v: Validator, field: str, username: str) -> bool:
    """Rules for a username. Upper case is accepted on input and folded (``Alice`` is ``alice``)."""
    if not v.check(username != "", field, "is required"):
        return False
    if not v.check(len(username) <= USERNAME_MAX, field, f"must be at most {USERNAME_MAX} characters"):
        return False
    if not v.check(len(username) >= USERNAME_MIN, field, f"must be at least {USERNAME_MIN} characters"):
        return False
    return v.check(
        USERNAME_PATTERN.fullmatch(username_key(username)) is not None,
        field,
        "may contain only lower-case letters, digits, '.', '_' and '-'",
    )


def check_new_password(v: Validator, field: str, password: str) -> bool:
    if not v.check(password != "", field, "is required"):
        return False
    if not v.check(len(password.encode()) <= PASSWORD_MAX_BYTES, field, f"must be at most {PASSWORD_MAX_BYTES} bytes"):
        return False
    return v.check(len(password) >= PASSWORD_MIN_CHARS, field, f"must be at least {PASSWORD_MIN_CHARS} characters")


def check_given_password(v: Validator, field: str, password: str) -> bool:
    """A password offered for checking: required and bounded, but old ones may predate today's rules."""
    if not v.check(password != "", field, "is required"):
        return False
    return v.check(len(password.encode()) <= PASSWORD_MAX_BYTES, field, f"must be at most {PASSWORD_MAX_BYTES} bytes")


def clean_display_name(v: Validator, field: str, display_name: str, *, required: bool) -> str:
    """Trimmed display name; empty is allowed only where ``required`` is false."""
    name = display_name.strip()
    if not name:
        v.check(not required, field, "must not be empty")
    elif len(name) > DISPLAY_NAME_MAX:
        v.add(field, f"must be at most {DISPLAY_NAME_MAX} characters")
    elif any(ch in name for ch in "\x00\r\n\t"):
        v.add(field, "must not contain control characters")
    return name
