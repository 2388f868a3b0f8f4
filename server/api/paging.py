"""AIP-158 paging: ``page_size`` checks and opaque page tokens bound to the request's filters."""

from __future__ import annotations

import base64
import hashlib
import json

from ..domain.errors import Validator

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE_TOKEN = 512


def page_size(v: Validator, requested: int) -> int:
    if requested < 0:
        v.add("page_size", "must not be negative")
        return DEFAULT_PAGE_SIZE
    if requested > MAX_PAGE_SIZE:
        v.add("page_size", f"must be at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def _fingerprint(filters: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:12]


def encode_token(after: str, filters: dict[str, object]) -> str:
    raw = json.dumps({"a": after, "f": _fingerprint(filters)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(v: Validator, token: str, filters: dict[str, object]) -> str | None:
    """The position a page token continues after; None for the first page (or a bad token, reported to ``v``)."""
    if not token:
        return None
    if len(token) > MAX_PAGE_TOKEN:
        v.add("page_token", "is not a token this server issued")
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, fingerprint = data["a"], data["f"]
    except (ValueError, KeyError, TypeError):
        v.add("page_token", "is not a token this server issued")
        return None
    if not isinstance(after, str) or fingerprint != _fingerprint(filters):
        v.add("page_token", "belongs to a request with other filters")
        return None
    return after


def decode_id(v: Validator, token: str, filters: dict[str, object]) -> int | None:
    """The id a page token continues below (or after); None for the first page (or a bad token)."""
    position = decode_token(v, token, filters)
    if position is None:
        return None
    if not position.isdigit():
        v.add("page_token", "is not a token this server issued")
        return None
    return int(position)
