"""The desktop app's agenda, in-process under Xvfb against a real server: sharing an event with chosen people,
the end of a repeating event, deleting (and restoring) one occurrence, a stale etag, the iCalendar export.

Each story checks what the app shows and, through the client library, what the server now holds and what other
people see.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import icalendar
import pytest
import ttkbootstrap as ttk
from desktop.agenda import AFTER, CHOSEN, ON_DATE, AgendaView
from desktop.app import DesktopApp
from google.type import date_pb2
from workspace.v1 import agenda_pb2, agenda_pb2_grpc, users_pb2
from workspace_client import FileTokenStore, Session

from .desktop import VirtualDisplay, pump, settle
from .desktop_app import (  # noqa: F401 (fixtures are used by name)
    QUICK,
    Other,
    admin_session,
    log_in,
    main_of,
    new_account,
    screen,
    sqlite_server,
    window,
)
from .servers import ServerProcess

pytestmark = pytest.mark.timeout(300)

#: The week shown: Monday 1 March 2027 (Wednesday the 3rd is the third column).
MONDAY = date(2027, 3, 1)
MARCH = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC))


def signed_in(address: str, admin: Session, folder: Path, name: str) -> tuple[users_pb2.User, Session]:
    """Another person, on the client library."""
    user, password = new_account(admin, name)
    session = Session(address, token_store=FileTokenStore(folder / user.username))
    session.login(user.username, password)
    return user, session


def titles(session: Session, start: datetime = MARCH[0], end: datetime = MARCH[1]) -> list[str]:
    """What ``ListEvents`` gives this person in the range (holidays left out)."""
    request = agenda_pb2.ListEventsRequest(page_size=1000)
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    reply = session.call(agenda_pb2_grpc.AgendaServiceStub(session.channel).ListEvents, request)
    return [o.title for o in reply.occurrences if o.kind == agenda_pb2.OCCURRENCE_KIND_EVENT]


def stored(session: Session, event_id: int) -> agenda_pb2.AgendaEvent:
    stub = agenda_pb2_grpc.AgendaServiceStub(session.channel)
    return session.call(stub.GetEvent, agenda_pb2.GetEventRequest(event_id=event_id)).event


def open_week(window: ttk.Window, app: DesktopApp) -> AgendaView:
    """The app's agenda on the week of 1 March 2027, with the directory loaded."""
    main = main_of(window, app)
    view = main.agenda
    main.notebook.select(view)
    pump(window, lambda: view.loads >= 1 and view.picker.people, 15, "the agenda and the directory")
    view.day = MONDAY
    loads = view.loads
    view.load()
    pump(window, lambda: view.loads > loads, 15, "the week of 1 March 2027")
    return view


def fill(view: AgendaView, title: str, day: str, start: str, end: str) -> None:
    view.new_button.invoke()
    view.fields["title"].insert(0, title)
    view._set("date", day)
    view._set("start", start)
    view._set("end", end)


def choose(view: AgendaView, box: ttk.Combobox, value: str) -> None:
    box.set(value)
    box.event_generate("<<ComboboxSelected>>")


def occurrence_tag(view: AgendaView, title: str) -> str:
    number = next(i for i, o in enumerate(view.occurrences) if o.title == title)
    return f"o{number}"


def test_sharing_an_event_with_chosen_people(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin, "Dana Desk")
    ann, ann_session = signed_in(address, admin, tmp_path, "Ann Chosen")
    bob, bob_session = signed_in(address, admin, tmp_path, "Bob Elsewhere")
    # Ann shares an event of hers with Dana: Dana sees it, read-only.
    theirs = agenda_pb2.AgendaEvent(title="Ann's review", time_zone="UTC", shared_with=[me.id])
    theirs.start_time.FromDatetime(datetime(2027, 3, 2, 9, tzinfo=UTC))
    theirs.end_time.FromDatetime(datetime(2027, 3, 2, 10, tzinfo=UTC))
    stub = agenda_pb2_grpc.AgendaServiceStub(ann_session.channel)
    ann_session.call(stub.CreateEvent, agenda_pb2.CreateEventRequest(event=theirs))

    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    view = open_week(window, app)
    assert "Ann's review" in view.texts()[1]

    # Dana's event, shared with Ann only: chosen in the filtered list.
    fill(view, "Budget review", "2027-03-03", "14:00", "15:00")
    view.tabs.select(view.sharing_tab)
    choose(view, view.share_choice, CHOSEN)
    assert view.picker.winfo_ismapped() or pump(window, view.picker.winfo_ismapped, 5, "the people picker")
    listed = {int(row) for row in view.picker.list.get_children()}
    assert {ann.id, bob.id} <= listed and me.id not in listed
    view.picker.filter.insert(0, "chos")
    assert view.picker.list.get_children() == (str(ann.id),)
    pump(window, lambda: view.picker.list.bbox(str(ann.id)), 5, "Ann's row on screen")
    x, y, _width, height = view.picker.list.bbox(str(ann.id))  # type: ignore[misc]
    view.picker.list.event_generate("<Button-1>", x=x + 20, y=y + height // 2)
    assert view.picker.chosen == {ann.id}
    assert "1 chosen: Ann Chosen" in view.picker.summary.cget("text")
    assert view.tabs.tab(view.sharing_tab, "text") == "Shared (1)"
    settle(window, 0.4)
    screen.screenshot("desktop-agenda-share", window)
    window.geometry("800x560")  # the smallest size the app is made for: the form still ends with its buttons
    settle(window, 0.8)
    screen.screenshot("desktop-agenda-share-small", window)
    bottom = view.save_button.winfo_rooty() + view.save_button.winfo_height()
    assert view.save_button.winfo_ismapped() and bottom <= window.winfo_rooty() + window.winfo_height()
    window.geometry("1280x800")
    view.save_button.invoke()
    pump(window, lambda: "Budget review" in view.texts()[2], 15, "the shared event in the week")
    assert view.event is not None
    event_id = view.event.id

    # The server holds the share; Ann sees the event, Bob does not.
    me_session = Session(address, token_store=FileTokenStore(tmp_path / "dana"))
    me_session.login(me.username, password)
    saved = stored(me_session, event_id)
    assert list(saved.shared_with) == [ann.id] and not saved.shared_with_everyone
    assert "Budget review" in titles(ann_session)
    assert "Budget review" not in titles(bob_session)

    # Opened again, the event says whom it is shared with.
    view.new_button.invoke()
    assert view.share_choice.get() != CHOSEN
    view.select(next(o for o in view.occurrences if o.title == "Budget review"))
    pump(window, lambda: view.event is not None and view.event.id == event_id, 15, "the event in the form")
    assert view.share_choice.get() == CHOSEN and view.picker.chosen == {ann.id}
    assert str(view.save_button.cget("state")) == "normal" and not view.owner_line.winfo_ismapped()

    # Ann's event opens read-only, saying whose it is.
    view.select(next(o for o in view.occurrences if o.title == "Ann's review"))
    pump(window, lambda: view.event is not None and view.event.title == "Ann's review", 15, "Ann's event")
    pump(window, view.owner_line.winfo_ismapped, 5, "the owner's line")
    assert view.owner_line.cget("text").startswith("Ann Chosen's event")
    assert str(view.save_button.cget("state")) == "disabled" and str(view.delete_button.cget("state")) == "disabled"
    assert str(view.fields["title"].cget("state")) == "disabled" and str(view.repeat.cget("state")) == "disabled"
    view.fill_menu(next(o for o in view.occurrences if o.title == "Ann's review"))
    assert view.menu.index("end") == 0  # "Open" only: nothing to delete
    settle(window, 0.3)
    screen.screenshot("desktop-agenda-shared-with-me", window)
    app.close()
    for session in (me_session, ann_session, bob_session, admin):
        session.close()


def test_repeating_event_ends_skips_one_occurrence_restores_it_and_exports(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin, "Dana Desk")
    device = Session(address, token_store=FileTokenStore(tmp_path / "device"))  # Dana's other device
    device.login(me.username, password)
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    view = open_week(window, app)

    # The end is checked before anything is sent, and the server's own refusals are shown as it says them.
    fill(view, "Weekly sync", "2027-03-03", "10:00", "10:30")
    choose(view, view.repeat, "Every week")
    choose(view, view.ends, ON_DATE)
    view._set("until", "2027-02-28")
    view.save_button.invoke()
    assert "cannot be before the first occurrence (2027-03-03)" in view.result.cget("text")
    choose(view, view.ends, AFTER)
    view._set("count", "0")
    view.save_button.invoke()
    assert "A whole number from 1 to 1000" in view.result.cget("text")
    view._set("title", "x" * 201)
    view._set("count", "3")
    view.save_button.invoke()
    pump(window, lambda: "INVALID_ARGUMENT" in view.result.cget("text"), 15, "the server's refusal")
    assert "title" in view.result.cget("text") and "200" in view.result.cget("text")

    # Every week, three times.
    view._set("title", "Weekly sync")
    view.save_button.invoke()
    pump(window, lambda: "Weekly sync ↻" in view.texts()[2], 15, "the weekly event")
    assert view.event is not None
    event_id = view.event.id
    assert stored(device, event_id).recurrence.count == 3
    assert titles(device).count("Weekly sync") == 3

    # A right click on Wednesday's occurrence: delete this one only.
    cell = view.columns[2]
    first, _last = cell.tag_ranges(occurrence_tag(view, "Weekly sync"))
    x, y, _width, height = cell.bbox(first)  # type: ignore[misc]
    rootx, rooty = cell.winfo_rootx() + x + 5, cell.winfo_rooty() + y + height // 2
    cell.event_generate("<Button-3>", x=x + 5, y=y + height // 2, rootx=rootx, rooty=rooty)
    settle(window, 0.3)
    screen.screenshot("desktop-agenda-occurrence-menu", window)
    labels = [view.menu.entrycget(i, "label") for i in range(view.menu.index("end") + 1) if i != 1]
    assert labels == ["Open", "Delete this occurrence only (Wed 03 Mar)", "Delete the whole series…"]
    view.menu.invoke(2)
    view.menu.unpost()
    pump(window, lambda: "Weekly sync" not in view.texts()[2], 15, "the occurrence gone")
    assert [date(d.year, d.month, d.day) for d in stored(device, event_id).recurrence.exception_dates] == [
        date(2027, 3, 3)
    ]
    assert titles(device).count("Weekly sync") == 2
    assert view.skipped.get_children() == ("2027-03-03",)
    view.tabs.select(view.repeats_tab)
    settle(window, 0.3)
    screen.screenshot("desktop-agenda-repeats", window)

    # The export: the event with its rule and its exception.
    target = tmp_path / "workspace.ics"
    view.ask_export_path = lambda: str(target)  # type: ignore[method-assign]
    view.export_button.invoke()
    pump(window, lambda: "Saved 1 event to" in view.result.cget("text"), 30, "the export")
    calendar = icalendar.Calendar.from_ical(target.read_bytes())
    events = [c for c in calendar.walk("VEVENT")]
    assert [str(e["SUMMARY"]) for e in events] == ["Weekly sync"]
    assert events[0]["RRULE"]["FREQ"] == ["WEEKLY"] and events[0]["RRULE"]["COUNT"] == [3]
    assert "20270303" in events[0]["EXDATE"].to_ical().decode()

    # Meanwhile the other device renames it: restoring with the old etag is refused, and the event reloaded.
    change = agenda_pb2.AgendaEvent(id=event_id, etag=stored(device, event_id).etag, title="Weekly sync (renamed)")
    stub = agenda_pb2_grpc.AgendaServiceStub(device.channel)
    device.call(stub.UpdateEvent, agenda_pb2.UpdateEventRequest(event=change, update_mask={"paths": ["title"]}))
    view.tabs.select(view.repeats_tab)
    view.skipped.selection_set("2027-03-03")
    pump(window, lambda: str(view.restore_button.cget("state")) == "normal", 5, "Restore enabled")
    view.restore_button.invoke()
    pump(window, lambda: view.fields["title"].get() == "Weekly sync (renamed)", 15, "the event reloaded")
    assert "Someone else changed this event meanwhile" in view.result.cget("text")
    assert len(stored(device, event_id).recurrence.exception_dates) == 1

    # Restored from the form: three occurrences again.
    view.skipped.selection_set("2027-03-03")
    pump(window, lambda: str(view.restore_button.cget("state")) == "normal", 5, "Restore enabled")
    view.restore_button.invoke()
    pump(window, lambda: "Weekly sync (renamed)" in view.texts()[2], 15, "the occurrence back")
    assert "occurrence is back" in view.result.cget("text") and not view.skipped.get_children()
    assert not stored(device, event_id).recurrence.exception_dates
    assert titles(device).count("Weekly sync (renamed)") == 3

    # The whole series, from the menu: the form opens with Delete armed, and Confirm deletes it.
    view.new_button.invoke()
    view.fill_menu(next(o for o in view.occurrences if o.title == "Weekly sync (renamed)"))
    view.menu.invoke(3)
    pump(window, lambda: view.delete_button.cget("text") == "Confirm", 15, "Delete armed")
    assert view.event is not None and view.event.id == event_id
    view.delete_button.invoke()
    pump(window, lambda: "Weekly sync" not in view.texts()[2] and view.event is None, 15, "the series deleted")
    assert "Weekly sync" not in " ".join(titles(device))
    app.close()
    device.close()
    admin.close()


def test_exception_dates_round_trip_through_save(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    """Saving an event from the form keeps its skipped dates (they are not in any field but the list)."""
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin, "Dana Desk")
    device = Session(address, token_store=FileTokenStore(tmp_path / "device"))
    device.login(me.username, password)
    event = agenda_pb2.AgendaEvent(title="Stand-up", time_zone="UTC")
    event.start_time.FromDatetime(datetime(2027, 3, 1, 9, tzinfo=UTC))
    event.end_time.FromDatetime(datetime(2027, 3, 1, 9, 15, tzinfo=UTC))
    event.recurrence.frequency = agenda_pb2.RECURRENCE_FREQUENCY_DAILY
    event.recurrence.until_date.CopyFrom(date_pb2.Date(year=2027, month=3, day=5))
    event.recurrence.exception_dates.append(date_pb2.Date(year=2027, month=3, day=3))
    stub = agenda_pb2_grpc.AgendaServiceStub(device.channel)
    event = device.call(stub.CreateEvent, agenda_pb2.CreateEventRequest(event=event)).event
    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    view = open_week(window, app)
    assert ["Stand-up" in text for text in view.texts()] == [True, True, False, True, True, False, False]

    view.select(next(o for o in view.occurrences if o.title == "Stand-up"))
    pump(window, lambda: view.event is not None and view.event.id == event.id, 15, "the event in the form")
    assert view.ends.get() == ON_DATE and view.fields["until"].get() == "2027-03-05"
    assert view.skipped.get_children() == ("2027-03-03",)
    view._set("location", "Kitchen")
    view.save_button.invoke()
    pump(window, lambda: "Kitchen" in view.texts()[0], 15, "the saved event")
    again = stored(device, event.id)
    assert again.location == "Kitchen" and len(again.recurrence.exception_dates) == 1
    assert again.recurrence.until_date == date_pb2.Date(year=2027, month=3, day=5)
    app.close()
    device.close()
    admin.close()


def test_the_year_marks_busy_days_and_holidays_and_shows_what_others_add_on_refresh(
    window: ttk.Window, sqlite_server: ServerProcess, screen: VirtualDisplay, tmp_path: Path
) -> None:
    address = sqlite_server.address
    admin = admin_session(address, tmp_path)
    me, password = new_account(admin, "Dana Year")
    _, ann_session = signed_in(address, admin, tmp_path, "Ann Plans")
    stub = agenda_pb2_grpc.AgendaServiceStub(ann_session.channel)
    # Three days over the end of March: the year asks month by month, and must count it once a day.
    away = agenda_pb2.AgendaEvent(title="Supplier visit", all_day=True, time_zone="UTC", shared_with=[me.id])
    away.start_date.CopyFrom(date_pb2.Date(year=2027, month=3, day=30))
    away.end_date.CopyFrom(date_pb2.Date(year=2027, month=4, day=2))
    ann_session.call(stub.CreateEvent, agenda_pb2.CreateEventRequest(event=away))

    app = DesktopApp(window, address, resume=False)
    log_in(app, address, me.username, password)
    main = main_of(window, app)
    view = main.agenda
    main.notebook.select(view)
    pump(window, lambda: view.loads >= 1, 15, "the agenda")
    view.day = date(2027, 6, 15)
    loads = view.loads
    view.mode_buttons["year"].invoke()
    pump(window, lambda: view.loads > loads and view.year_grid.year == 2027, 20, "the year 2027")
    grid = view.year_grid
    assert view.range_label.cget("text") == "2027"
    assert [text.splitlines()[0] for text in view.texts()][:3] == ["January", "February", "March"]
    assert {day: grid.busy.get(day) for day in (date(2027, 3, 30), date(2027, 3, 31), date(2027, 4, 1))} == {
        date(2027, 3, 30): 1,
        date(2027, 3, 31): 1,
        date(2027, 4, 1): 1,
    }
    assert "busy" in grid.day_tags(date(2027, 4, 1)) and "busy" not in grid.day_tags(date(2027, 4, 2))
    # France's holidays (the server's default country), marked apart from events.
    assert grid.day_tags(date(2027, 7, 14)) == {"holiday"}
    assert "holiday" in grid.day_tags(date(2027, 5, 1))

    # Ann adds something in September; Refresh shows it.
    later = agenda_pb2.AgendaEvent(title="Audit", time_zone="UTC", shared_with=[me.id])
    later.start_time.FromDatetime(datetime(2027, 9, 9, 10, tzinfo=UTC))
    later.end_time.FromDatetime(datetime(2027, 9, 9, 11, tzinfo=UTC))
    ann_session.call(stub.CreateEvent, agenda_pb2.CreateEventRequest(event=later))
    view.refresh_button.invoke()
    pump(window, lambda: grid.busy.get(date(2027, 9, 9)) == 1, 20, "Ann's audit after Refresh")
    settle(window, 0.3)
    screen.screenshot("desktop-agenda-year", window)

    # A click on a day opens that day.
    september = grid.months[8]
    first = september.tag_ranges(f"d{date(2027, 9, 9).toordinal()}")[0]
    x, y, _w, _h = september.bbox(first)
    september.event_generate("<Button-1>", x=x + 2, y=y + 2)
    pump(window, lambda: view.mode == "day" and "Audit" in "".join(view.texts()), 15, "9 September, with the audit")
    assert view.day == date(2027, 9, 9) and view.mode_choice.get() == "day"
    app.close()
    ann_session.close()
    admin.close()
