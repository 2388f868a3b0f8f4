"""``workspace.v1.ShortcutsService``."""

from __future__ import annotations

import grpc
from workspace.v1 import shortcuts_pb2, shortcuts_pb2_grpc

from ..auth.interceptor import caller
from ..domain.errors import Validator
from ..domain.shortcuts import (
    CATEGORY_UPDATABLE_FIELDS,
    SHORTCUT_UPDATABLE_FIELDS,
    UNCATEGORISED,
    Category,
    ListKey,
    Shortcut,
    Shortcuts,
    check_category_ref,
    check_position,
    check_query,
    clean_category_name,
    clean_shortcut,
    clean_shortcut_changes,
)
from . import paging
from .convert import check_id, timestamp


def category_to_proto(category: Category) -> shortcuts_pb2.ShortcutCategory:
    return shortcuts_pb2.ShortcutCategory(
        id=category.id,
        name=category.name,
        position=category.position,
        shortcut_count=category.shortcut_count,
        create_time=timestamp(category.created_at),
        update_time=timestamp(category.updated_at),
    )


def shortcut_to_proto(shortcut: Shortcut) -> shortcuts_pb2.Shortcut:
    return shortcuts_pb2.Shortcut(
        id=shortcut.id,
        title=shortcut.title,
        url=shortcut.url,
        description=shortcut.description,
        category_id=shortcut.category_id or 0,
        position=shortcut.position,
        create_time=timestamp(shortcut.created_at),
        update_time=timestamp(shortcut.updated_at),
    )


def _mask(v: Validator, paths: list[str], allowed: frozenset[str]) -> None:
    """An update mask: required, and only ``allowed`` paths (output-only and unknown ones are refused)."""
    names = ", ".join(sorted(allowed))
    if v.check(bool(paths), "update_mask", f"is required: name the fields to change ({names})"):
        for path in paths:
            v.check(path in allowed, "update_mask", f"cannot update {path!r}; allowed: {names}")


def _encode_key(key: ListKey) -> str:
    return "|".join(str(part) for part in key)


def _decode_key(v: Validator, token: str, filters: dict[str, object]) -> ListKey | None:
    """The (category position, position, id) a ListShortcuts token continues after."""
    after = paging.decode_token(v, token, filters)
    if after is None:
        return None
    try:
        category_position, position, shortcut_id = (int(part) for part in after.split("|"))
    except ValueError:  # not three integers
        category_position = position = shortcut_id = -2
    if category_position < UNCATEGORISED or position < 0 or shortcut_id < 0:
        v.add("page_token", "is not a token this server issued")
        return None
    return category_position, position, shortcut_id


class ShortcutsServicer(shortcuts_pb2_grpc.ShortcutsServiceServicer):
    def __init__(self, shortcuts: Shortcuts) -> None:
        self._shortcuts = shortcuts

    # --- categories -----------------------------------------------------------------------------------

    async def ListCategories(
        self, request: shortcuts_pb2.ListCategoriesRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.ListCategoriesResponse:
        categories = await self._shortcuts.list_categories(caller())
        return shortcuts_pb2.ListCategoriesResponse(categories=[category_to_proto(c) for c in categories])

    async def CreateCategory(
        self, request: shortcuts_pb2.CreateCategoryRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.CreateCategoryResponse:
        v = Validator()
        if not request.HasField("category"):
            v.add("category", "is required")
            v.raise_if_any()
        clean_category_name(v, "category.name", request.category.name)
        v.raise_if_any()
        category = await self._shortcuts.create_category(caller(), request.category.name)
        return shortcuts_pb2.CreateCategoryResponse(category=category_to_proto(category))

    async def UpdateCategory(
        self, request: shortcuts_pb2.UpdateCategoryRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.UpdateCategoryResponse:
        v = Validator()
        if not request.HasField("category"):
            v.add("category", "is required")
            v.raise_if_any()
        check_id(v, "category.id", request.category.id)
        paths = list(request.update_mask.paths)
        _mask(v, paths, CATEGORY_UPDATABLE_FIELDS)
        changes: dict[str, object] = {}
        if "name" in paths:
            changes["name"] = request.category.name
            clean_category_name(v, "category.name", request.category.name)
        v.raise_if_any()
        category = await self._shortcuts.update_category(caller(), request.category.id, changes)
        return shortcuts_pb2.UpdateCategoryResponse(category=category_to_proto(category))

    async def MoveCategory(
        self, request: shortcuts_pb2.MoveCategoryRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.MoveCategoryResponse:
        v = Validator()
        check_id(v, "category_id", request.category_id)
        check_position(v, request.position)
        v.raise_if_any()
        categories = await self._shortcuts.move_category(caller(), request.category_id, request.position)
        return shortcuts_pb2.MoveCategoryResponse(categories=[category_to_proto(c) for c in categories])

    async def DeleteCategory(
        self, request: shortcuts_pb2.DeleteCategoryRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.DeleteCategoryResponse:
        v = Validator()
        check_id(v, "category_id", request.category_id)
        v.raise_if_any()
        moved = await self._shortcuts.delete_category(caller(), request.category_id)
        return shortcuts_pb2.DeleteCategoryResponse(moved_shortcuts=moved)

    # --- shortcuts ------------------------------------------------------------------------------------

    async def ListShortcuts(
        self, request: shortcuts_pb2.ListShortcutsRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.ListShortcutsResponse:
        v = Validator()
        size = paging.page_size(v, request.page_size)
        if request.only_category:
            check_category_ref(v, "category_id", request.category_id)
        else:  # without only_category it would silently list everything: say so instead
            v.check(request.category_id == 0, "category_id", "is read only with only_category set")
        query = check_query(v, request.query)
        filters = {
            "list": "shortcuts",
            "category": request.category_id if request.only_category else None,
            "query": query,
        }
        after = _decode_key(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._shortcuts.list_shortcuts(
            caller(),
            category_id=request.category_id or None,
            only_category=request.only_category,
            query=query,
            after=after,
            limit=size,
        )
        token = paging.encode_token(_encode_key(page.next_after), filters) if page.next_after else ""
        return shortcuts_pb2.ListShortcutsResponse(
            shortcuts=[shortcut_to_proto(s) for s in page.shortcuts], next_page_token=token
        )

    async def GetShortcut(
        self, request: shortcuts_pb2.GetShortcutRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.GetShortcutResponse:
        v = Validator()
        check_id(v, "shortcut_id", request.shortcut_id)
        v.raise_if_any()
        shortcut = await self._shortcuts.get_shortcut(caller(), request.shortcut_id)
        return shortcuts_pb2.GetShortcutResponse(shortcut=shortcut_to_proto(shortcut))

    async def CreateShortcut(
        self, request: shortcuts_pb2.CreateShortcutRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.CreateShortcutResponse:
        v = Validator()
        if not request.HasField("shortcut"):
            v.add("shortcut", "is required")
            v.raise_if_any()
        given = request.shortcut
        clean_shortcut(v, title=given.title, url=given.url, description=given.description)
        check_category_ref(v, "shortcut.category_id", given.category_id)
        v.raise_if_any()
        shortcut = await self._shortcuts.create_shortcut(
            caller(),
            title=given.title,
            url=given.url,
            description=given.description,
            category_id=given.category_id or None,
        )
        return shortcuts_pb2.CreateShortcutResponse(shortcut=shortcut_to_proto(shortcut))

    async def UpdateShortcut(
        self, request: shortcuts_pb2.UpdateShortcutRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.UpdateShortcutResponse:
        v = Validator()
        if not request.HasField("shortcut"):
            v.add("shortcut", "is required")
            v.raise_if_any()
        given = request.shortcut
        check_id(v, "shortcut.id", given.id)
        paths = list(request.update_mask.paths)
        _mask(v, paths, SHORTCUT_UPDATABLE_FIELDS)
        changes: dict[str, object] = {
            name: getattr(given, name) for name in sorted(SHORTCUT_UPDATABLE_FIELDS) if name in paths
        }
        clean_shortcut_changes(v, changes)
        v.raise_if_any()
        shortcut = await self._shortcuts.update_shortcut(caller(), given.id, changes)
        return shortcuts_pb2.UpdateShortcutResponse(shortcut=shortcut_to_proto(shortcut))

    async def MoveShortcut(
        self, request: shortcuts_pb2.MoveShortcutRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.MoveShortcutResponse:
        v = Validator()
        check_id(v, "shortcut_id", request.shortcut_id)
        check_category_ref(v, "category_id", request.category_id)
        check_position(v, request.position)
        v.raise_if_any()
        shortcut = await self._shortcuts.move_shortcut(
            caller(), request.shortcut_id, category_id=request.category_id or None, position=request.position
        )
        return shortcuts_pb2.MoveShortcutResponse(shortcut=shortcut_to_proto(shortcut))

    async def DeleteShortcut(
        self, request: shortcuts_pb2.DeleteShortcutRequest, context: grpc.aio.ServicerContext
    ) -> shortcuts_pb2.DeleteShortcutResponse:
        v = Validator()
        check_id(v, "shortcut_id", request.shortcut_id)
        v.raise_if_any()
        await self._shortcuts.delete_shortcut(caller(), request.shortcut_id)
        return shortcuts_pb2.DeleteShortcutResponse()
