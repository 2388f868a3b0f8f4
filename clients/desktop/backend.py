"""The desktop app's calls, blocking, each a plain function of the session: the views run them through
``Controller.run`` (a worker thread), never on Tk's thread."""

from __future__ import annotations

import contextlib
import os
import platform
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.type import date_pb2
from workspace.v1 import (
    agenda_pb2,
    agenda_pb2_grpc,
    auth_pb2,
    chat_pb2,
    lots_pb2,
    lots_pb2_grpc,
    monitoring_pb2,
    presence_pb2,
    shortcuts_pb2,
    shortcuts_pb2_grpc,
    users_pb2,
)
from workspace_client import Session, TokenStore, default_token_store

from . import __version__

#: Messages asked for per page when the history is scrolled up.
PAGE_SIZE = 50
#: Search results asked for per page ("More" asks for the next).
SEARCH_PAGE_SIZE = 50
#: Presence is asked for this many people per call (the server's limit is 500).
PRESENCE_BATCH = 500
APP = "desktop"


class MemoryTokenStore:
    """Keeps the refresh token for this run only: "stay signed in" unticked."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def load(self, key: str) -> str | None:
        return self.tokens.get(key)

    def save(self, key: str, token: str) -> None:
        self.tokens[key] = token

    def delete(self, key: str) -> None:
        self.tokens.pop(key, None)


def sign_in(address: str, username: str, password: str, stay: bool, **options) -> Session:  # type: ignore[no-untyped-def]
    """A session; with ``stay`` its refresh token goes to the token store (keyring or private file), otherwise
    it lives in memory and any session remembered earlier for this server is forgotten."""
    store: TokenStore = options.pop("token_store", None) or default_token_store()
    if not stay:
        store.delete(f"{APP}@{address}")
    session = Session(address, app=APP, token_store=store if stay else MemoryTokenStore(), **options)
    try:
        session.login(username, password)
    except Exception:
        session.close()
        raise
    return session


def resume(address: str, **options) -> Session | None:  # type: ignore[no-untyped-def]
    """The remembered session for ``address``, if there is one and it still works."""
    session = Session(address, app=APP, **options)
    try:
        user = session.resume()
    except Exception:
        session.close()
        raise
    if user is None:
        session.close()
        return None
    return session


def directory(session: Session) -> list[users_pb2.User]:
    """Every enabled account, by name."""
    users: list[users_pb2.User] = []
    token = ""
    while True:
        reply = session.call(session.users.ListUsers, users_pb2.ListUsersRequest(page_size=200, page_token=token))
        users.extend(reply.users)
        token = reply.next_page_token
        if not token:
            return sorted(users, key=lambda u: (u.display_name or u.username).lower())


def presences(session: Session, user_ids: list[int]) -> list[presence_pb2.Presence]:
    found: list[presence_pb2.Presence] = []
    for start in range(0, len(user_ids), PRESENCE_BATCH):
        request = presence_pb2.GetPresenceRequest(user_ids=user_ids[start : start + PRESENCE_BATCH])
        found.extend(session.call(session.presence.GetPresence, request).presences)
    return found


def conversations(session: Session) -> list[chat_pb2.Conversation]:
    """All the person's conversations, most recent activity first."""
    found: list[chat_pb2.Conversation] = []
    token = ""
    while True:
        request = chat_pb2.ListConversationsRequest(page_size=200, page_token=token)
        reply = session.call(session.chat.ListConversations, request)
        found.extend(reply.conversations)
        token = reply.next_page_token
        if not token:
            return found


def conversation(session: Session, conversation_id: int) -> chat_pb2.Conversation:
    request = chat_pb2.GetConversationRequest(conversation_id=conversation_id)
    return session.call(session.chat.GetConversation, request).conversation


def messages(session: Session, conversation_id: int, page_token: str = "") -> tuple[list[chat_pb2.Message], str]:
    """One page, oldest first, and the token of the next (older) page ("" at the beginning)."""
    request = chat_pb2.ListMessagesRequest(conversation_id=conversation_id, page_size=PAGE_SIZE, page_token=page_token)
    reply = session.call(session.chat.ListMessages, request)
    return list(reversed(reply.messages)), reply.next_page_token


def send(session: Session, conversation_id: int, text: str, request_id: str, reply_to: int = 0) -> chat_pb2.Message:
    """Safe to retry with the same ``request_id``: the server returns the first message instead of a second."""
    request = chat_pb2.SendMessageRequest(
        conversation_id=conversation_id, text=text, request_id=request_id, reply_to_message_id=reply_to
    )
    return session.call(session.chat.SendMessage, request).message


def edit(session: Session, message_id: int, text: str) -> chat_pb2.Message:
    request = chat_pb2.EditMessageRequest(message_id=message_id, text=text)
    return session.call(session.chat.EditMessage, request).message


def delete(session: Session, message_id: int) -> chat_pb2.Message:
    return session.call(session.chat.DeleteMessage, chat_pb2.DeleteMessageRequest(message_id=message_id)).message


def react(session: Session, message_id: int, emoji: str, add: bool) -> chat_pb2.Message:
    if add:
        request = chat_pb2.AddReactionRequest(message_id=message_id, emoji=emoji)
        return session.call(session.chat.AddReaction, request).message
    removal = chat_pb2.RemoveReactionRequest(message_id=message_id, emoji=emoji)
    return session.call(session.chat.RemoveReaction, removal).message


def mark_read(session: Session, conversation_id: int, message_id: int) -> chat_pb2.MarkReadResponse:
    request = chat_pb2.MarkReadRequest(conversation_id=conversation_id, message_id=message_id)
    return session.call(session.chat.MarkRead, request)


def typing(session: Session, conversation_id: int) -> None:
    session.call(session.presence.SendTyping, presence_pb2.SendTypingRequest(conversation_id=conversation_id))


def direct(session: Session, user_id: int) -> chat_pb2.Conversation:
    request = chat_pb2.CreateDirectConversationRequest(user_id=user_id)
    return session.call(session.chat.CreateDirectConversation, request).conversation


def group(session: Session, name: str, member_ids: list[int]) -> chat_pb2.Conversation:
    request = chat_pb2.CreateGroupConversationRequest(name=name, member_ids=member_ids)
    return session.call(session.chat.CreateGroupConversation, request).conversation


def add_members(session: Session, conversation_id: int, user_ids: list[int]) -> chat_pb2.Conversation:
    """The group afterwards; only its admins may add people (others get ``PERMISSION_DENIED``)."""
    request = chat_pb2.AddMembersRequest(conversation_id=conversation_id, user_ids=user_ids)
    return session.call(session.chat.AddMembers, request).conversation


def remove_member(session: Session, conversation_id: int, user_id: int) -> chat_pb2.Conversation:
    """Takes someone out of a group (admins only) and returns the group as it is now."""
    request = chat_pb2.RemoveMemberRequest(conversation_id=conversation_id, user_id=user_id)
    session.call(session.chat.RemoveMember, request)
    return conversation(session, conversation_id)


def leave(session: Session, conversation_id: int) -> None:
    session.call(session.chat.LeaveConversation, chat_pb2.LeaveConversationRequest(conversation_id=conversation_id))


def search_messages(session: Session, query: str, page_token: str = "") -> tuple[list[chat_pb2.Message], str]:
    """One page of the messages containing ``query`` in any of the person's conversations, newest first, and
    the token of the next page ("" on the last)."""
    request = chat_pb2.SearchMessagesRequest(query=query, page_size=SEARCH_PAGE_SIZE, page_token=page_token)
    reply = session.call(session.chat.SearchMessages, request)
    return list(reply.messages), reply.next_page_token


def change_password(session: Session, old: str, new: str) -> None:
    request = auth_pb2.ChangePasswordRequest(old_password=old, new_password=new)
    session.call(session.auth.ChangePassword, request)


def rename(session: Session, display_name: str) -> users_pb2.User:
    """Changes the person's own display name (allowed for anyone signed in, docs/API.md)."""
    assert session.user is not None
    request = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=session.user.id, display_name=display_name), update_mask={"paths": ["display_name"]}
    )
    user = session.call(session.users.UpdateUser, request).user
    session.user = user
    return user


def report_problem(session: Session, message: str, context: str) -> monitoring_pb2.ClientIssue:
    issue = monitoring_pb2.ClientIssue(
        kind=monitoring_pb2.CLIENT_ISSUE_KIND_ERROR,
        message=message.strip()[:2000] or "A problem in the desktop app",
        client_version=f"workspace-desktop {__version__}",
        platform=f"{platform.system()} {platform.release()} / Python {platform.python_version()}"[:100],
        context=context[-10_000:],
    )
    request = monitoring_pb2.ReportClientIssueRequest(issue=issue)
    return session.call(session.monitoring.ReportClientIssue, request).issue


def new_request_id() -> str:
    return uuid.uuid4().hex


# --- shortcuts ----------------------------------------------------------------------------------------------


def _shortcuts(session: Session) -> shortcuts_pb2_grpc.ShortcutsServiceStub:
    """The ShortcutsService stub on the session's channel (the library's ``Session`` has the chat stubs only)."""
    stub = getattr(session, "_desktop_shortcuts", None)
    if stub is None:
        stub = shortcuts_pb2_grpc.ShortcutsServiceStub(session.channel)
        session._desktop_shortcuts = stub  # type: ignore[attr-defined]
    return stub


def categories(session: Session) -> list[shortcuts_pb2.ShortcutCategory]:
    return list(session.call(_shortcuts(session).ListCategories, shortcuts_pb2.ListCategoriesRequest()).categories)


def shortcuts(session: Session, category_id: int | None, query: str) -> list[shortcuts_pb2.Shortcut]:
    """``category_id`` None: all of them; 0: the uncategorised ones."""
    found: list[shortcuts_pb2.Shortcut] = []
    token = ""
    while True:
        request = shortcuts_pb2.ListShortcutsRequest(query=query, page_size=200, page_token=token)
        if category_id is not None:
            request.category_id, request.only_category = category_id, True
        reply = session.call(_shortcuts(session).ListShortcuts, request)
        found.extend(reply.shortcuts)
        token = reply.next_page_token
        if not token:
            return found


def save_category(session: Session, category_id: int, name: str) -> shortcuts_pb2.ShortcutCategory:
    stub = _shortcuts(session)
    if category_id:
        request = shortcuts_pb2.UpdateCategoryRequest(
            category=shortcuts_pb2.ShortcutCategory(id=category_id, name=name), update_mask={"paths": ["name"]}
        )
        return session.call(stub.UpdateCategory, request).category
    creation = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name=name))
    return session.call(stub.CreateCategory, creation).category


def move_category(session: Session, category_id: int, position: int) -> None:
    request = shortcuts_pb2.MoveCategoryRequest(category_id=category_id, position=max(0, position))
    session.call(_shortcuts(session).MoveCategory, request)


def delete_category(session: Session, category_id: int) -> None:
    request = shortcuts_pb2.DeleteCategoryRequest(category_id=category_id)
    session.call(_shortcuts(session).DeleteCategory, request)


def save_shortcut(session: Session, shortcut: shortcuts_pb2.Shortcut) -> shortcuts_pb2.Shortcut:
    stub = _shortcuts(session)
    if shortcut.id:
        paths = ["title", "url", "description", "category_id"]
        request = shortcuts_pb2.UpdateShortcutRequest(shortcut=shortcut, update_mask={"paths": paths})
        return session.call(stub.UpdateShortcut, request).shortcut
    return session.call(stub.CreateShortcut, shortcuts_pb2.CreateShortcutRequest(shortcut=shortcut)).shortcut


def move_shortcut(session: Session, shortcut: shortcuts_pb2.Shortcut, position: int) -> None:
    request = shortcuts_pb2.MoveShortcutRequest(
        shortcut_id=shortcut.id, category_id=shortcut.category_id, position=max(0, position)
    )
    session.call(_shortcuts(session).MoveShortcut, request)


def delete_shortcut(session: Session, shortcut_id: int) -> None:
    request = shortcuts_pb2.DeleteShortcutRequest(shortcut_id=shortcut_id)
    session.call(_shortcuts(session).DeleteShortcut, request)


# --- lots ---------------------------------------------------------------------------------------------------


def _lots(session: Session) -> lots_pb2_grpc.LotsServiceStub:
    stub = getattr(session, "_desktop_lots", None)
    if stub is None:
        stub = lots_pb2_grpc.LotsServiceStub(session.channel)
        session._desktop_lots = stub  # type: ignore[attr-defined]
    return stub


def lots(session: Session, query: str, status: int) -> list[lots_pb2.Lot]:
    """The 200 most recently received lots that match."""
    request = lots_pb2.ListLotsRequest(query=query, status=status, page_size=200)  # type: ignore[arg-type]
    return list(session.call(_lots(session).ListLots, request).lots)


def create_lot(session: Session, reference: str, supplier: str, received: date, note: str) -> lots_pb2.Lot:
    lot = lots_pb2.Lot(
        reference=reference,
        supplier=supplier,
        received_date=date_pb2.Date(year=received.year, month=received.month, day=received.day),
        note=note,
    )
    return session.call(_lots(session).CreateLot, lots_pb2.CreateLotRequest(lot=lot)).lot


def lot(session: Session, lot_id: int) -> lots_pb2.Lot:
    return session.call(_lots(session).GetLot, lots_pb2.GetLotRequest(lot_id=lot_id)).lot


def items(session: Session, lot_id: int) -> list[lots_pb2.LotItem]:
    found: list[lots_pb2.LotItem] = []
    token = ""
    while True:
        request = lots_pb2.ListItemsRequest(lot_id=lot_id, page_size=200, page_token=token)
        reply = session.call(_lots(session).ListItems, request)
        found.extend(reply.items)
        token = reply.next_page_token
        if not token:
            return found


def add_item(
    session: Session, lot_id: int, serial: str, item_type: int, brand: str, model: str, scanned: bool
) -> lots_pb2.AddItemsResponse:
    item = lots_pb2.NewLotItem(
        serial_number=serial,
        type=item_type,  # type: ignore[arg-type]
        brand=brand,
        model=model,
        entry_method=lots_pb2.ENTRY_METHOD_SCAN if scanned else lots_pb2.ENTRY_METHOD_MANUAL,
    )
    return session.call(_lots(session).AddItems, lots_pb2.AddItemsRequest(lot_id=lot_id, items=[item]))


def item_by_serial(session: Session, lot_id: int, serial: str) -> lots_pb2.LotItem | None:
    """The lot's item with this serial number (compared as the server does: case folded), if it has one."""
    wanted = serial.strip().casefold()
    request = lots_pb2.ListItemsRequest(lot_id=lot_id, query=serial.strip()[:100], page_size=200)
    found = session.call(_lots(session).ListItems, request).items
    return next((item for item in found if item.serial_number.casefold() == wanted), None)


def inventory(
    session: Session, item_id: int, state: int, technician: str, operating_system: str
) -> lots_pb2.InventoryItemResponse:
    request = lots_pb2.InventoryItemRequest(
        item_id=item_id,
        state=state,  # type: ignore[arg-type]
        technician=technician,
        operating_system=operating_system,
    )
    return session.call(_lots(session).InventoryItem, request)


def brands(session: Session, prefix: str) -> list[str]:
    request = lots_pb2.ListBrandsRequest(prefix=prefix, limit=10)
    return [s.value for s in session.call(_lots(session).ListBrands, request).brands]


def models(session: Session, brand: str, prefix: str) -> list[str]:
    request = lots_pb2.ListModelsRequest(brand=brand, prefix=prefix, limit=10)
    return [s.value for s in session.call(_lots(session).ListModels, request).models]


def save_report(session: Session, lot_id: int, path: str) -> int:
    """Writes the lot's PDF report to ``path``; returns its size in bytes."""
    body = session.call(_lots(session).GetLotReport, lots_pb2.GetLotReportRequest(lot_id=lot_id), timeout=60)
    target = Path(path)
    temporary = target.with_name(target.name + ".part")
    temporary.write_bytes(body.data)
    temporary.replace(target)
    return len(body.data)


# --- agenda -------------------------------------------------------------------------------------------------


def _agenda(session: Session) -> agenda_pb2_grpc.AgendaServiceStub:
    stub = getattr(session, "_desktop_agenda", None)
    if stub is None:
        stub = agenda_pb2_grpc.AgendaServiceStub(session.channel)
        session._desktop_agenda = stub  # type: ignore[attr-defined]
    return stub


def local_zone() -> str:
    """The computer's IANA time zone (``$TZ``, ``/etc/timezone``, the ``/etc/localtime`` link), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
            except (ValueError, ZoneInfoNotFoundError):
                continue
            return name
    return "UTC"


def occurrences(session: Session, start: datetime, end: datetime, zone: str) -> list[agenda_pb2.Occurrence]:
    found: list[agenda_pb2.Occurrence] = []
    token = ""
    while True:
        request = agenda_pb2.ListEventsRequest(time_zone=zone, page_size=1000, page_token=token)
        request.start_time.FromDatetime(start.astimezone(UTC))
        request.end_time.FromDatetime(end.astimezone(UTC))
        reply = session.call(_agenda(session).ListEvents, request)
        found.extend(reply.occurrences)
        token = reply.next_page_token
        if not token:
            return found


def agenda_event(session: Session, event_id: int) -> agenda_pb2.AgendaEvent:
    return session.call(_agenda(session).GetEvent, agenda_pb2.GetEventRequest(event_id=event_id)).event


#: What ``save_event`` changes on an existing event: everything the form shows.
EVENT_FIELDS = [
    "title",
    "location",
    "color",
    "start_time",
    "end_time",
    "start_date",
    "end_date",
    "time_zone",
    "recurrence",
    "shared_with",
    "shared_with_everyone",
]


def save_event(session: Session, event: agenda_pb2.AgendaEvent) -> agenda_pb2.AgendaEvent:
    """Creates the event, or (with an id and its etag) replaces what the form shows of it."""
    stub = _agenda(session)
    if event.id:
        request = agenda_pb2.UpdateEventRequest(event=event, update_mask={"paths": EVENT_FIELDS})
        return session.call(stub.UpdateEvent, request).event
    return session.call(stub.CreateEvent, agenda_pb2.CreateEventRequest(event=event)).event


def delete_event(session: Session, event_id: int, etag: str) -> None:
    session.call(_agenda(session).DeleteEvent, agenda_pb2.DeleteEventRequest(event_id=event_id, etag=etag))


def skip_occurrence(session: Session, event_id: int, etag: str, day: date, skipped: bool) -> agenda_pb2.AgendaEvent:
    """Adds ``day`` to a repeating event's exception dates (``skipped``) or takes it out (the occurrence comes back).

    ``etag`` is the version the person saw: if the event changed since, the server answers ``ABORTED``."""
    event = agenda_event(session, event_id)
    recurrence = agenda_pb2.Recurrence()
    recurrence.CopyFrom(event.recurrence)
    days = {(d.year, d.month, d.day) for d in recurrence.exception_dates}
    if skipped:
        days.add((day.year, day.month, day.day))
    else:
        days.discard((day.year, day.month, day.day))
    del recurrence.exception_dates[:]
    recurrence.exception_dates.extend(date_pb2.Date(year=y, month=m, day=d) for y, m, d in sorted(days))
    change = agenda_pb2.AgendaEvent(id=event_id, etag=etag, recurrence=recurrence)
    request = agenda_pb2.UpdateEventRequest(event=change, update_mask={"paths": ["recurrence"]})
    return session.call(_agenda(session).UpdateEvent, request).event


def export_calendar(session: Session, path: str) -> int:
    """Writes the person's agenda as an iCalendar file to ``path``; returns how many events it holds."""
    body = session.call(_agenda(session).ExportCalendar, agenda_pb2.ExportCalendarRequest(), timeout=60)
    target = Path(path)
    temporary = target.with_name(target.name + ".part")
    temporary.write_bytes(body.data)
    temporary.replace(target)
    return body.data.count(b"BEGIN:VEVENT")
