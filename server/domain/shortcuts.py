"""Each person's shortcuts (saved links), in categories they arrange, kept in order without gaps.

Everything here belongs to one person: every use case acts for ``actor`` and only ever sees their rows,
so another person's ids answer exactly as unknown ones do (``NotFound``).

Order: a person's categories have positions 0..n-1, and so do the shortcuts of each category and the
uncategorised ones (a group of their own, ``category_id`` None). Every change that affects an order
(create, move, recategorise, delete) renumbers in the same transaction, which first takes the person's lock
(``lock_person``): two changes by one person at once then run one after the other, each seeing the
other's result, so no position is ever missing or doubled.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from .activity import record_activity
from .errors import AlreadyExists, FailedPrecondition, NotFound, Validator
from .model import Principal
from .ports import Clock, UnitOfWork, UnitOfWorkFactory

CATEGORY_NAME_MAX = 100
TITLE_MAX = 200
URL_MAX = 2048
DESCRIPTION_MAX = 1000
SEARCH_QUERY_MAX = 200
#: Per person. Beyond these, creating more is ``FailedPrecondition``.
CATEGORIES_MAX = 100
SHORTCUTS_MAX = 2000
URL_SCHEMES = frozenset({"http", "https"})

#: What ``UpdateCategory`` and ``UpdateShortcut`` may change (their ``update_mask`` paths).
CATEGORY_UPDATABLE_FIELDS = frozenset({"name"})
SHORTCUT_UPDATABLE_FIELDS = frozenset({"title", "url", "description", "category_id"})

#: Where a shortcut stands in the list of all of a person's shortcuts: (its category's position, or
#: ``UNCATEGORISED`` for the uncategorised ones, which come first; its position; its id). Page tokens
#: continue after one of these.
ListKey = tuple[int, int, int]
UNCATEGORISED = -1


@dataclass(frozen=True)
class Category:
    id: int
    user_id: int
    name: str
    position: int
    #: how many shortcuts it holds
    shortcut_count: int
    created_at: datetime
    #: last renamed or moved
    updated_at: datetime


@dataclass(frozen=True)
class Shortcut:
    id: int
    user_id: int
    #: None: uncategorised
    category_id: int | None
    title: str
    url: str
    description: str
    #: within its category (or among the uncategorised ones)
    position: int
    created_at: datetime
    #: last changed or moved by its owner (not when a neighbour's move renumbered it)
    updated_at: datetime


@dataclass(frozen=True)
class ShortcutPage:
    shortcuts: list[Shortcut]
    #: Key of the last shortcut, to continue after; None on the last page.
    next_after: ListKey | None


# --- field rules (the servicer reports them with its own checks; the use cases check again) ----------------


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def category_name_key(name: str) -> str:
    """Category names are unique per person without regard to case: this is the form that is compared."""
    return name.casefold()


def clean_category_name(v: Validator, field: str, name: str) -> str:
    """The name as stored: trimmed, 1 to 100 characters, no control characters."""
    clean = name.strip()
    if not clean:
        v.add(field, "is required")
    elif len(clean) > CATEGORY_NAME_MAX:
        v.add(field, f"must be at most {CATEGORY_NAME_MAX} characters")
    elif _has_control(clean):
        v.add(field, "must not contain control characters")
    elif len(category_name_key(clean)) > CATEGORY_NAME_MAX:
        # A few letters fold to two ("ß" to "ss"): the folded form must still fit its column.
        v.add(field, f"must be at most {CATEGORY_NAME_MAX} characters once case is folded")
    return clean


def clean_title(v: Validator, field: str, title: str) -> str:
    clean = title.strip()
    if not clean:
        v.add(field, "is required")
    elif len(clean) > TITLE_MAX:
        v.add(field, f"must be at most {TITLE_MAX} characters")
    elif _has_control(clean):
        v.add(field, "must not contain control characters")
    return clean


def clean_url(v: Validator, field: str, url: str) -> str:
    """An absolute ``http`` or ``https`` URL with a host, trimmed; anything a browser would run or hand to
    another program (``javascript:``, ``file:``, ``mailto:``...) is refused."""
    clean = url.strip()
    if not clean:
        v.add(field, "is required: an absolute http or https URL")
        return clean
    if len(clean) > URL_MAX:
        v.add(field, f"must be at most {URL_MAX} characters")
        return clean
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in clean):
        # urlsplit would silently drop tabs and newlines, and a space is never part of a valid URL.
        v.add(field, "must not contain white space or control characters (encode them, e.g. %20)")
        return clean
    try:
        parts = urlsplit(clean)
        host = parts.hostname
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        v.add(field, "is not a valid URL")
        return clean
    if parts.scheme not in URL_SCHEMES:  # urlsplit lower-cases the scheme
        v.add(field, "must be an absolute http or https URL (https://host/...)")
    elif not host:
        v.add(field, "must name a host (https://host/...)")
    return clean


def clean_description(v: Validator, field: str, description: str) -> str:
    clean = description.strip()
    if len(clean) > DESCRIPTION_MAX:
        v.add(field, f"must be at most {DESCRIPTION_MAX} characters")
    elif "\x00" in clean:
        v.add(field, "must not contain NUL characters")
    return clean


def clean_shortcut(v: Validator, *, title: str, url: str, description: str) -> tuple[str, str, str]:
    """A new shortcut's text fields, as stored; every violation goes to ``v``."""
    return (
        clean_title(v, "shortcut.title", title),
        clean_url(v, "shortcut.url", url),
        clean_description(v, "shortcut.description", description),
    )


def clean_shortcut_changes(v: Validator, changes: dict[str, object]) -> dict[str, object]:
    """``UpdateShortcut``'s changes (a subset of SHORTCUT_UPDATABLE_FIELDS), as stored."""
    cleaners = {"title": clean_title, "url": clean_url, "description": clean_description}
    clean: dict[str, object] = {}
    for name, value in changes.items():
        if name in cleaners:
            clean[name] = cleaners[name](v, f"shortcut.{name}", str(value))
        elif name == "category_id":
            check_category_ref(v, "shortcut.category_id", value)
            clean[name] = value or None
    return clean


def check_category_ref(v: Validator, field: str, category_id: object) -> None:
    """A category a shortcut goes to: a category's id, or None/0 for the uncategorised ones."""
    ok = category_id is None or (isinstance(category_id, int) and category_id >= 0)
    v.check(ok, field, "must be one of your categories' ids, or 0 for none")


def check_position(v: Validator, position: int) -> None:
    v.check(position >= 0, "position", "must not be negative (0 is first; past the end means last)")


def check_query(v: Validator, query: str) -> str:
    """A search query, trimmed; empty means no search."""
    clean = query.strip()
    v.check(len(clean) <= SEARCH_QUERY_MAX, "query", f"must be at most {SEARCH_QUERY_MAX} characters")
    return clean


def _shortcut_not_found(shortcut_id: int) -> NotFound:
    # The same answer for "does not exist" and "someone else's": nobody learns what others keep.
    return NotFound(f"shortcut {shortcut_id} not found")


def _category_not_found(category_id: int) -> NotFound:
    return NotFound(f"category {category_id} not found")


class Shortcuts:
    """Use cases on one person's categories and shortcuts. Every method acts for ``actor``, on their own."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    # --- categories -----------------------------------------------------------------------------------

    async def list_categories(self, actor: Principal) -> list[Category]:
        async with self._uow(read_only=True) as uow:
            return await uow.shortcut_categories.list(actor.user_id)

    async def create_category(self, actor: Principal, name: str) -> Category:
        v = Validator()
        name = clean_category_name(v, "category.name", name)
        v.raise_if_any()
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            count = await uow.shortcut_categories.count(actor.user_id)
            if count >= CATEGORIES_MAX:
                raise FailedPrecondition(
                    f"you have {CATEGORIES_MAX} categories, the most a person may have; delete one first",
                    reason="TOO_MANY_CATEGORIES",
                )
            await _check_name_free(uow, actor.user_id, name, other_than=None)
            now = self._clock()
            category = await uow.shortcut_categories.add(
                user_id=actor.user_id, name=name, name_key=category_name_key(name), position=count, now=now
            )
            await record_activity(
                uow, actor.user, "shortcut_category.create", "shortcut_category", category.id, name, now
            )
            await uow.commit()
        return category

    async def update_category(self, actor: Principal, category_id: int, changes: dict[str, object]) -> Category:
        """Apply ``changes`` (a subset of CATEGORY_UPDATABLE_FIELDS) to one of the actor's categories."""
        v = Validator()
        if "name" in changes:
            changes = {**changes, "name": clean_category_name(v, "category.name", str(changes["name"]))}
        v.raise_if_any()
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            category = await uow.shortcut_categories.get(actor.user_id, category_id)
            if category is None:
                raise _category_not_found(category_id)
            if "name" in changes and changes["name"] != category.name:
                name = str(changes["name"])
                await _check_name_free(uow, actor.user_id, name, other_than=category_id)
                now = self._clock()
                await uow.shortcut_categories.rename(category_id, name=name, name_key=category_name_key(name), now=now)
                category = replace(category, name=name, updated_at=now)
                await record_activity(
                    uow, actor.user, "shortcut_category.update", "shortcut_category", category_id, "name", now
                )
            await uow.commit()
        return category

    async def move_category(self, actor: Principal, category_id: int, position: int) -> list[Category]:
        """Put the category at ``position`` (clamped to the last place), renumber the others; returns them all."""
        v = Validator()
        check_position(v, position)
        v.raise_if_any()
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            category = await uow.shortcut_categories.get(actor.user_id, category_id)
            if category is None:
                raise _category_not_found(category_id)
            last = await uow.shortcut_categories.count(actor.user_id) - 1
            target = min(position, last)
            if target != category.position:
                # Shift the ones between the old and the new place by one towards the gap, then place it.
                if target < category.position:
                    await uow.shortcut_categories.shift(actor.user_id, start=target, end=category.position, by=1)
                else:
                    await uow.shortcut_categories.shift(
                        actor.user_id, start=category.position + 1, end=target + 1, by=-1
                    )
                now = self._clock()
                await uow.shortcut_categories.place(category_id, position=target, now=now)
                detail = f"to position {target}"
                await record_activity(
                    uow, actor.user, "shortcut_category.move", "shortcut_category", category_id, detail, now
                )
            categories = await uow.shortcut_categories.list(actor.user_id)
            await uow.commit()
        return categories

    async def delete_category(self, actor: Principal, category_id: int) -> int:
        """Delete the category; its shortcuts go, in their order, to the end of the uncategorised ones.
        Returns how many moved."""
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            category = await uow.shortcut_categories.get(actor.user_id, category_id)
            if category is None:
                raise _category_not_found(category_id)
            # Moved explicitly before the row goes: the foreign key has no ON DELETE action, so a category
            # deleted with shortcuts still in it fails loudly instead of leaving them with clashing positions.
            end = await uow.shortcuts.count_in(actor.user_id, None)
            now = self._clock()
            moved = await uow.shortcuts.uncategorise(actor.user_id, category_id, offset=end, now=now)
            await uow.shortcut_categories.delete(category_id)
            await uow.shortcut_categories.shift(actor.user_id, start=category.position + 1, end=None, by=-1)
            detail = f"{category.name} (shortcuts uncategorised: {moved})"
            await record_activity(
                uow, actor.user, "shortcut_category.delete", "shortcut_category", category_id, detail, now
            )
            await uow.commit()
        return moved

    # --- shortcuts ------------------------------------------------------------------------------------

    async def list_shortcuts(
        self,
        actor: Principal,
        *,
        category_id: int | None,
        only_category: bool,
        query: str,
        after: ListKey | None,
        limit: int,
    ) -> ShortcutPage:
        """One page: with ``only_category``, the shortcuts of ``category_id`` (None: the uncategorised ones)
        by position; without, all of them, uncategorised first, then by category position and position.
        With ``query``, only those whose title or URL contains it, without regard to case."""
        v = Validator()
        query = check_query(v, query)
        v.raise_if_any()
        async with self._uow(read_only=True) as uow:
            if only_category and category_id is not None:
                if await uow.shortcut_categories.get(actor.user_id, category_id) is None:
                    raise _category_not_found(category_id)
            found = await uow.shortcuts.page(
                actor.user_id,
                category_id=category_id,
                only_category=only_category,
                query=query,
                after=after,
                limit=limit + 1,
            )
        more = len(found) > limit
        found = found[:limit]
        return ShortcutPage([shortcut for shortcut, _ in found], found[-1][1] if more else None)

    async def get_shortcut(self, actor: Principal, shortcut_id: int) -> Shortcut:
        async with self._uow(read_only=True) as uow:
            shortcut = await uow.shortcuts.get(actor.user_id, shortcut_id)
        if shortcut is None:
            raise _shortcut_not_found(shortcut_id)
        return shortcut

    async def create_shortcut(
        self, actor: Principal, *, title: str, url: str, description: str, category_id: int | None
    ) -> Shortcut:
        """A new shortcut at the end of its category (None: of the uncategorised ones)."""
        v = Validator()
        title, url, description = clean_shortcut(v, title=title, url=url, description=description)
        check_category_ref(v, "shortcut.category_id", category_id)
        v.raise_if_any()
        category_id = category_id or None
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            if await uow.shortcuts.count(actor.user_id) >= SHORTCUTS_MAX:
                raise FailedPrecondition(
                    f"you have {SHORTCUTS_MAX} shortcuts, the most a person may have; delete some first",
                    reason="TOO_MANY_SHORTCUTS",
                )
            await _require_category(uow, actor.user_id, category_id)
            now = self._clock()
            shortcut = await uow.shortcuts.add(
                user_id=actor.user_id,
                category_id=category_id,
                title=title,
                url=url,
                description=description,
                position=await uow.shortcuts.count_in(actor.user_id, category_id),
                now=now,
            )
            # The title, never the URL (a link may carry a secret in its query).
            await record_activity(uow, actor.user, "shortcut.create", "shortcut", shortcut.id, title, now)
            await uow.commit()
        return shortcut

    async def update_shortcut(self, actor: Principal, shortcut_id: int, changes: dict[str, object]) -> Shortcut:
        """Apply ``changes`` (a subset of SHORTCUT_UPDATABLE_FIELDS; ``category_id`` None or 0: uncategorised).
        A shortcut given another category goes to its end."""
        v = Validator()
        changes = clean_shortcut_changes(v, changes)
        v.raise_if_any()
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            shortcut = await uow.shortcuts.get(actor.user_id, shortcut_id)
            if shortcut is None:
                raise _shortcut_not_found(shortcut_id)
            now = self._clock()
            changed: list[str] = []
            if "category_id" in changes:
                target = changes.pop("category_id")
                assert target is None or isinstance(target, int)
                if target != shortcut.category_id:
                    await _require_category(uow, actor.user_id, target)
                    shortcut = await self._move(uow, shortcut, target, None, now)
                    changed.append("category_id")
            text = {name: value for name, value in changes.items() if getattr(shortcut, name) != value}
            if text:
                await uow.shortcuts.update(shortcut.id, now=now, **text)
                shortcut = replace(shortcut, **text, updated_at=now)  # type: ignore[arg-type]
            changed = sorted([*changed, *text])
            if changed:  # the field names only
                await record_activity(
                    uow, actor.user, "shortcut.update", "shortcut", shortcut_id, ", ".join(changed), now
                )
            await uow.commit()
        return shortcut

    async def move_shortcut(
        self, actor: Principal, shortcut_id: int, *, category_id: int | None, position: int
    ) -> Shortcut:
        """Put the shortcut at ``position`` (clamped to the end) in ``category_id`` (None: uncategorised)."""
        v = Validator()
        check_category_ref(v, "category_id", category_id)
        check_position(v, position)
        v.raise_if_any()
        category_id = category_id or None
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            shortcut = await uow.shortcuts.get(actor.user_id, shortcut_id)
            if shortcut is None:
                raise _shortcut_not_found(shortcut_id)
            await _require_category(uow, actor.user_id, category_id)
            now = self._clock()
            before = (shortcut.category_id, shortcut.position)
            shortcut = await self._move(uow, shortcut, category_id, position, now)
            if (shortcut.category_id, shortcut.position) != before:
                where = f"category {shortcut.category_id}" if shortcut.category_id else "uncategorised"
                detail = f"to position {shortcut.position} ({where})"
                await record_activity(uow, actor.user, "shortcut.move", "shortcut", shortcut_id, detail, now)
            await uow.commit()
        return shortcut

    async def delete_shortcut(self, actor: Principal, shortcut_id: int) -> None:
        async with self._uow() as uow:
            await uow.shortcuts.lock_person(actor.user_id)
            shortcut = await uow.shortcuts.get(actor.user_id, shortcut_id)
            if shortcut is None:
                raise _shortcut_not_found(shortcut_id)
            await uow.shortcuts.delete(shortcut_id)
            await uow.shortcuts.shift(actor.user_id, shortcut.category_id, start=shortcut.position + 1, end=None, by=-1)
            await record_activity(
                uow, actor.user, "shortcut.delete", "shortcut", shortcut_id, shortcut.title, self._clock()
            )
            await uow.commit()

    async def _move(
        self, uow: UnitOfWork, shortcut: Shortcut, category_id: int | None, position: int | None, now: datetime
    ) -> Shortcut:
        """Put ``shortcut`` at ``position`` of ``category_id`` (None: at the end) and renumber both groups,
        inside the caller's locked unit of work. Positions of the others move by one each, by range."""
        user_id = shortcut.user_id
        old = shortcut.position
        if category_id == shortcut.category_id:
            last = await uow.shortcuts.count_in(user_id, category_id) - 1
            target = last if position is None else min(position, last)
            if target == old:
                return shortcut
            if target < old:
                await uow.shortcuts.shift(user_id, category_id, start=target, end=old, by=1)
            else:
                await uow.shortcuts.shift(user_id, category_id, start=old + 1, end=target + 1, by=-1)
        else:
            end = await uow.shortcuts.count_in(user_id, category_id)
            target = end if position is None else min(position, end)
            await uow.shortcuts.shift(user_id, shortcut.category_id, start=old + 1, end=None, by=-1)
            await uow.shortcuts.shift(user_id, category_id, start=target, end=None, by=1)
        await uow.shortcuts.place(shortcut.id, category_id=category_id, position=target, now=now)
        return replace(shortcut, category_id=category_id, position=target, updated_at=now)


async def _require_category(uow: UnitOfWork, user_id: int, category_id: int | None) -> None:
    """``category_id`` (unless None: uncategorised) must be one of the person's categories."""
    if category_id is not None and await uow.shortcut_categories.get(user_id, category_id) is None:
        raise _category_not_found(category_id)


async def _check_name_free(uow: UnitOfWork, user_id: int, name: str, *, other_than: int | None) -> None:
    if await uow.shortcut_categories.name_taken(user_id, category_name_key(name), other_than=other_than):
        raise name_taken(name)


def name_taken(name: str) -> AlreadyExists:
    """The answer when the person already has a category of that name (storage raises it too, on a race)."""
    return AlreadyExists(
        f"you already have a category named {name!r} (names are compared without regard to case)",
        reason="CATEGORY_NAME_TAKEN",
    )
