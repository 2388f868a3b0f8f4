"""LotsService: goods-receiving lots, their items (serial numbers unique across lots, whatever the case and
the spaces around them), each item's inventory with its corrections kept, the lot's derived status, the PDF
traceability report, and completion of brands and models."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
import uuid
from collections.abc import Sequence

import grpc
import pypdf
import pypdfium2
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.type import date_pb2
from workspace.v1 import activity_pb2, activity_pb2_grpc, lots_pb2, lots_pb2_grpc

from .api import Client, Person, create_person, expect_error, reason, rich_details, violations
from .gateway import GatewayProcess, fetch
from .servers import ROOT, ServerProcess

NOWHERE = 2**62
ARTIFACTS = ROOT / "tests" / "artifacts"
LAPTOP, DESKTOP, MONITOR, OTHER = (
    lots_pb2.ITEM_TYPE_LAPTOP,
    lots_pb2.ITEM_TYPE_DESKTOP,
    lots_pb2.ITEM_TYPE_MONITOR,
    lots_pb2.ITEM_TYPE_OTHER,
)
SCAN, MANUAL = lots_pb2.ENTRY_METHOD_SCAN, lots_pb2.ENTRY_METHOD_MANUAL
REFURBISHED, FOR_PARTS, SCRAPPED = (
    lots_pb2.ITEM_STATE_REFURBISHED,
    lots_pb2.ITEM_STATE_FOR_PARTS,
    lots_pb2.ITEM_STATE_SCRAPPED,
)
OPEN, FINISHED = lots_pb2.LOT_STATUS_OPEN, lots_pb2.LOT_STATUS_FINISHED


def stub(client: Client) -> lots_pb2_grpc.LotsServiceStub:
    return lots_pb2_grpc.LotsServiceStub(client.channel)


def unique(prefix: str = "LOT") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def day(text: str) -> date_pb2.Date:
    """``YYYY-MM-DD`` as a ``google.type.Date`` (a real day: the tests' shorthand, not the server's)."""
    year, month, day_ = (int(part) for part in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=day_)


def make_lot(client: Client, reference: str | None = None, **fields) -> lots_pb2.Lot:
    fields.setdefault("supplier", "Mairie de Lyon")
    fields.setdefault("received_date", day("2026-11-20"))
    lot = lots_pb2.Lot(reference=reference or unique(), **fields)
    return stub(client).CreateLot(lots_pb2.CreateLotRequest(lot=lot), metadata=client.md, timeout=10).lot


def line(serial: str, type_: int = LAPTOP, brand: str = "Dell", model: str = "Latitude 7490", entry: int = SCAN):
    return lots_pb2.NewLotItem(serial_number=serial, type=type_, brand=brand, model=model, entry_method=entry)


def add(client: Client, lot_id: int, *lines: lots_pb2.NewLotItem | str) -> lots_pb2.AddItemsResponse:
    items = [line(x) if isinstance(x, str) else x for x in lines]
    request = lots_pb2.AddItemsRequest(lot_id=lot_id, items=items)
    return stub(client).AddItems(request, metadata=client.md, timeout=30)


def inventory(
    client: Client, item_id: int, state: int = REFURBISHED, technician: str = "Élodie", operating_system: str = ""
) -> lots_pb2.InventoryItemResponse:
    request = lots_pb2.InventoryItemRequest(
        item_id=item_id, state=state, technician=technician, operating_system=operating_system
    )
    return stub(client).InventoryItem(request, metadata=client.md, timeout=10)


def get_lot(client: Client, lot_id: int) -> lots_pb2.Lot:
    return stub(client).GetLot(lots_pb2.GetLotRequest(lot_id=lot_id), metadata=client.md, timeout=10).lot


def all_lots(client: Client, **fields) -> list[lots_pb2.Lot]:
    found, token = [], ""
    while True:
        request = lots_pb2.ListLotsRequest(page_token=token, **fields)
        reply = stub(client).ListLots(request, metadata=client.md, timeout=10)
        found += reply.lots
        token = reply.next_page_token
        if not token:
            return found


def all_items(client: Client, lot_id: int, **fields) -> list[lots_pb2.LotItem]:
    found, token = [], ""
    while True:
        request = lots_pb2.ListItemsRequest(lot_id=lot_id, page_token=token, **fields)
        reply = stub(client).ListItems(request, metadata=client.md, timeout=10)
        found += reply.items
        token = reply.next_page_token
        if not token:
            return found


def invalid(call, request, client: Client) -> dict[str, str]:
    return violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, request, metadata=client.md))


def clashes(error: grpc.RpcError) -> dict[str, str]:
    """field -> description of the BadRequest detail of an ALREADY_EXISTS error."""
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error.details()
    bad = [d for d in rich_details(error) if d.DESCRIPTOR.name == "BadRequest"]
    assert bad, "ALREADY_EXISTS without a google.rpc.BadRequest detail"
    return {v.field: v.description for v in bad[0].field_violations}


# --- lots -----------------------------------------------------------------------------------------------------


def test_a_lot_is_created_trimmed_open_and_empty(person: Person) -> None:
    client = person.client
    reference = unique()
    made = make_lot(
        client,
        f"  {reference} ",
        supplier="  Mairie de Lyon ",
        received_date=day("2026-11-20"),
        recovered_date=day("2026-11-18"),
        note="  two pallets\nscreens to test ",
    )
    assert (made.reference, made.supplier, made.received_date, made.recovered_date, made.note) == (
        reference,
        "Mairie de Lyon",
        date_pb2.Date(year=2026, month=11, day=20),
        date_pb2.Date(year=2026, month=11, day=18),
        "two pallets\nscreens to test",
    )
    assert (made.status, made.item_count, made.processed_count) == (OPEN, 0, 0)
    assert not made.HasField("finish_time") and made.HasField("create_time")
    assert (made.creator_id, made.creator_username) == (person.user.id, person.user.username)
    assert get_lot(client, made.id) == made

    again = lots_pb2.CreateLotRequest(
        lot=lots_pb2.Lot(reference=reference.lower(), supplier="x", received_date=day("2026-01-01"))
    )
    error = expect_error(grpc.StatusCode.ALREADY_EXISTS, stub(client).CreateLot, again, metadata=client.md)
    assert reason(error) == "LOT_REFERENCE_TAKEN"


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"reference": ""}, {"lot.reference"}),
        ({"reference": "   "}, {"lot.reference"}),
        ({"reference": "R" * 65}, {"lot.reference"}),
        ({"supplier": ""}, {"lot.supplier"}),
        ({"supplier": "s" * 201}, {"lot.supplier"}),
        ({"received_date": None}, {"lot.received_date"}),  # unset
        ({"received_date": date_pb2.Date()}, {"lot.received_date"}),  # set, but no day at all
        ({"received_date": date_pb2.Date(year=2026, month=13, day=1)}, {"lot.received_date"}),
        ({"received_date": date_pb2.Date(year=2026, month=2, day=30)}, {"lot.received_date"}),
        ({"received_date": date_pb2.Date(year=0, month=11, day=20)}, {"lot.received_date"}),  # no year
        ({"received_date": date_pb2.Date(year=2026, month=11)}, {"lot.received_date"}),  # a month, not a day
        ({"received_date": date_pb2.Date(year=10_000, month=1, day=1)}, {"lot.received_date"}),
        ({"recovered_date": day("2026-11-21")}, {"lot.recovered_date"}),  # after received: collected, then received
        ({"recovered_date": date_pb2.Date(year=2026, month=2, day=29)}, {"lot.recovered_date"}),  # not a leap year
        ({"recovered_date": date_pb2.Date(year=-1, month=1, day=1)}, {"lot.recovered_date"}),
        ({"note": "n" * 2001}, {"lot.note"}),
        (
            {"reference": "", "supplier": "", "received_date": date_pb2.Date(year=2026, month=4, day=31)},
            {"lot.reference", "lot.supplier", "lot.received_date"},
        ),
    ],
)
def test_bad_lot_fields_are_all_named(person: Person, fields: dict, bad: set[str]) -> None:
    values = {"reference": unique(), "supplier": "Origin", "received_date": day("2026-11-20"), **fields}
    request = lots_pb2.CreateLotRequest(lot=lots_pb2.Lot(**{k: v for k, v in values.items() if v is not None}))
    assert set(invalid(stub(person.client).CreateLot, request, person.client)) == bad


def test_a_missing_date_is_required_and_a_wrong_one_is_not_a_date(person: Person) -> None:
    client = person.client
    missing = lots_pb2.CreateLotRequest(lot=lots_pb2.Lot(reference=unique(), supplier="s"))
    assert invalid(stub(client).CreateLot, missing, client)["lot.received_date"].startswith("is required")
    wrong = lots_pb2.CreateLotRequest(
        lot=lots_pb2.Lot(reference=unique(), supplier="s", received_date=date_pb2.Date(year=2026, month=2, day=30))
    )
    assert invalid(stub(client).CreateLot, wrong, client)["lot.received_date"].startswith("is not a valid date")
    # Both in the bounds: 0001-01-01 and 9999-12-31 are days, and an unset recovered date stays unset.
    oldest = make_lot(client, received_date=day("0001-01-01"))
    assert oldest.received_date == day("0001-01-01") and not oldest.HasField("recovered_date")
    assert make_lot(client, received_date=day("9999-12-31")).received_date == day("9999-12-31")


def test_a_lot_needs_a_body_and_the_longest_fields_are_fine(person: Person) -> None:
    assert set(invalid(stub(person.client).CreateLot, lots_pb2.CreateLotRequest(), person.client)) == {"lot"}
    longest = make_lot(person.client, "R" * 60 + uuid.uuid4().hex[:4], supplier="s" * 200, note="n" * 2000)
    assert len(longest.reference) == 64 and len(longest.note) == 2000


def test_updating_a_lot_changes_only_the_masked_fields(person: Person, admin: Client) -> None:
    client = person.client
    made = make_lot(client, recovered_date=day("2026-11-19"))
    taken = make_lot(admin)

    def update(paths: Sequence[str], **values) -> lots_pb2.UpdateLotRequest:
        return lots_pb2.UpdateLotRequest(
            lot=lots_pb2.Lot(id=made.id, **values), update_mask=FieldMask(paths=list(paths))
        )

    changed = (
        stub(client)
        .UpdateLot(update(["supplier", "note"], supplier=" Other ", note="n", reference="ignored"), metadata=client.md)
        .lot
    )
    assert (changed.supplier, changed.note, changed.reference) == ("Other", "n", made.reference)
    # Anyone signed in works on lots: the admin here, another person than the creator.
    # Named in the mask and left unset: the recovered date is cleared (unknown).
    cleared = stub(admin).UpdateLot(update(["recovered_date"]), metadata=admin.md).lot
    assert not cleared.HasField("recovered_date") and not get_lot(client, made.id).HasField("recovered_date")
    moved = update(
        ["received_date", "recovered_date"], received_date=day("2026-12-24"), recovered_date=day("2026-12-01")
    )
    moved_lot = stub(client).UpdateLot(moved, metadata=client.md).lot
    assert (moved_lot.received_date, moved_lot.recovered_date) == (day("2026-12-24"), day("2026-12-01"))
    assert get_lot(client, made.id) == moved_lot

    for paths in ([], ["status"], ["note", "item_count"], ["nonsense"]):
        assert "update_mask" in invalid(stub(client).UpdateLot, update(paths, note="x"), client), paths
    assert set(invalid(stub(client).UpdateLot, update(["received_date"]), client)) == {"lot.received_date"}
    for bad in (date_pb2.Date(year=2026, month=2, day=30), date_pb2.Date(month=1, day=1), date_pb2.Date()):
        for name in ("received_date", "recovered_date"):
            assert set(invalid(stub(client).UpdateLot, update([name], **{name: bad}), client)) == {f"lot.{name}"}
    late = update(["recovered_date"], recovered_date=day("2026-12-25"))  # after the stored received date
    assert set(invalid(stub(client).UpdateLot, late, client)) == {"lot.recovered_date"}
    clash = update(["reference"], reference=f" {taken.reference.lower()} ")
    expect_error(grpc.StatusCode.ALREADY_EXISTS, stub(client).UpdateLot, clash, metadata=client.md)
    gone = lots_pb2.UpdateLotRequest(lot=lots_pb2.Lot(id=NOWHERE, note="x"), update_mask=FieldMask(paths=["note"]))
    expect_error(grpc.StatusCode.NOT_FOUND, stub(client).UpdateLot, gone, metadata=client.md)


def test_only_the_creator_or_an_admin_deletes_a_lot_and_only_an_empty_one(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    client = person.client
    other = create_person(admin, server.address).client
    try:
        mine, full, admins_own = make_lot(client), make_lot(client), make_lot(other)
        add(client, full.id, unique("SN"))
        for lot in (mine, full):
            request = lots_pb2.DeleteLotRequest(lot_id=lot.id)
            expect_error(grpc.StatusCode.PERMISSION_DENIED, stub(other).DeleteLot, request, metadata=other.md)
        error = expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            stub(client).DeleteLot,
            lots_pb2.DeleteLotRequest(lot_id=full.id),
            metadata=client.md,
        )
        assert reason(error) == "LOT_NOT_EMPTY"
        stub(client).DeleteLot(lots_pb2.DeleteLotRequest(lot_id=mine.id), metadata=client.md)
        stub(admin).DeleteLot(lots_pb2.DeleteLotRequest(lot_id=admins_own.id), metadata=admin.md)
        for lot in (mine, admins_own):
            expect_error(
                grpc.StatusCode.NOT_FOUND,
                stub(client).GetLot,
                lots_pb2.GetLotRequest(lot_id=lot.id),
                metadata=client.md,
            )
    finally:
        other.close()


# --- items and status -------------------------------------------------------------------------------------------


def test_a_lot_goes_open_finished_reopened_and_finished_again(person: Person) -> None:
    client = person.client
    lot = make_lot(client)
    first, second = unique("SN"), unique("SN")
    added = add(client, lot.id, line(f"  {first} ", DESKTOP, " HP ", " EliteDesk 800 ", MANUAL), second)
    a, b = added.items
    assert (a.serial_number, a.type, a.brand, a.model, a.entry_method) == (
        first,
        DESKTOP,
        "HP",
        "EliteDesk 800",
        MANUAL,
    )
    assert (a.lot_id, a.adder_id, a.state, a.inventory_record_count) == (lot.id, person.user.id, 0, 0)
    assert not a.HasField("inventory_time") and a.HasField("add_time")
    assert (added.lot.status, added.lot.item_count, added.lot.processed_count) == (OPEN, 2, 0)

    assert inventory(client, a.id).lot.status == OPEN
    done = inventory(client, b.id, SCRAPPED).lot
    assert (done.status, done.processed_count, done.refurbished_count, done.scrapped_count) == (FINISHED, 2, 1, 1)
    assert done.HasField("finish_time")
    assert done.finish_time == inventory(client, b.id, FOR_PARTS).lot.finish_time  # a correction keeps it

    reopened = add(client, lot.id, unique("SN")).lot
    assert (reopened.status, reopened.item_count) == (OPEN, 3) and not reopened.HasField("finish_time")
    assert [lot.id for lot in all_lots(client, status=OPEN, query=lot.reference)] == [lot.id]

    third = all_items(client, lot.id, unprocessed_only=True)
    assert len(third) == 1
    again = inventory(client, third[0].id, REFURBISHED).lot
    assert again.status == FINISHED and again.HasField("finish_time")
    assert (again.refurbished_count, again.for_parts_count, again.scrapped_count) == (2, 1, 0)
    assert get_lot(client, lot.id) == again
    assert [lot.id for lot in all_lots(client, status=FINISHED, query=lot.reference)] == [lot.id]


def test_a_batch_with_bad_lines_changes_nothing_and_explains_every_line(person: Person, admin: Client) -> None:
    client = person.client
    elsewhere = make_lot(admin)
    held = unique("SN")
    add(admin, elsewhere.id, held)
    lot = make_lot(client)
    ok = unique("SN")
    lines = [
        line(ok),
        line("   "),
        line(unique("SN"), type_=99),
        line(unique("SN"), entry=lots_pb2.ENTRY_METHOD_UNSPECIFIED),
        line("S" * 101),
        line(f"  {ok.lower()}  "),  # the same as line 0, once trimmed and case-folded
        line(unique("SN"), brand="b" * 101, model="m" * 101),
        line(held.upper()),
        line(unique("SN"), type_=lots_pb2.ITEM_TYPE_UNSPECIFIED),
    ]
    found = invalid(stub(client).AddItems, lots_pb2.AddItemsRequest(lot_id=lot.id, items=lines), client)
    assert set(found) == {
        "items[1].serial_number",
        "items[2].type",
        "items[3].entry_method",
        "items[4].serial_number",
        "items[5].serial_number",
        "items[6].brand",
        "items[6].model",
        "items[7].serial_number",
        "items[8].type",
    }
    assert "items[0]" in found["items[5].serial_number"]
    assert elsewhere.reference in found["items[7].serial_number"]
    assert all_items(client, lot.id) == [] and get_lot(client, lot.id).item_count == 0


def test_serials_in_other_lots_answer_already_exists_naming_the_lot(person: Person, admin: Client) -> None:
    client = person.client
    first, second = make_lot(admin), make_lot(client)
    taken_a, taken_b, free = unique("SN"), unique("SN"), unique("SN")
    add(admin, first.id, taken_a, taken_b)
    error = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        stub(client).AddItems,
        lots_pb2.AddItemsRequest(
            lot_id=second.id, items=[line(free), line(f" {taken_a.upper()} "), line(taken_b.lower())]
        ),
        metadata=client.md,
    )
    found = clashes(error)
    assert set(found) == {"items[1].serial_number", "items[2].serial_number"}
    assert all(first.reference in reason_ for reason_ in found.values())
    assert reason(error) == "SERIAL_NUMBER_TAKEN" and first.reference in error.details()
    assert all_items(client, second.id) == []  # all or nothing: the free one was not added either
    # The same lot holds it too: a serial is unique across all lots, the lot's own included.
    error = expect_error(grpc.StatusCode.ALREADY_EXISTS, add, admin, first.id, taken_a.lower())
    assert first.reference in clashes(error)["items[0].serial_number"]


def test_a_batch_holds_1_to_1000_items(person: Person) -> None:
    client = person.client
    lot = make_lot(client)
    assert set(invalid(stub(client).AddItems, lots_pb2.AddItemsRequest(lot_id=lot.id), client)) == {"items"}
    prefix = unique("BULK")
    too_many = [line(f"{prefix}-{i}") for i in range(1001)]
    assert set(invalid(stub(client).AddItems, lots_pb2.AddItemsRequest(lot_id=lot.id, items=too_many), client)) == {
        "items"
    }
    assert len(add(client, lot.id, *too_many[:1000]).items) == 1000
    assert get_lot(client, lot.id).item_count == 1000
    expect_error(grpc.StatusCode.NOT_FOUND, add, client, NOWHERE, unique("SN"))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, add, client, 0, unique("SN"))


def test_two_lots_adding_the_same_serials_at_once_exactly_one_wins(server: ServerProcess, admin: Client) -> None:
    """Two scanner sessions race with the same serials, in opposite orders (a deadlock if the server let them
    meet in the unique index): one batch goes in whole, the other gets ALREADY_EXISTS naming the winner's lot."""
    people = [create_person(admin, server.address).client for _ in range(2)]
    try:
        for _ in range(4):
            lots = [make_lot(c) for c in people]
            first, second = unique("RACE"), unique("RACE")
            batches = [[first, second], [f" {second.lower()} ", first.upper()]]
            barrier = threading.Barrier(2)
            results: list[object] = [None, None]

            def run(i: int, lots=lots, batches=batches, barrier=barrier, results=results) -> None:
                barrier.wait()
                try:
                    results[i] = add(people[i], lots[i].id, *batches[i])
                except grpc.RpcError as e:
                    results[i] = e

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            winners = [i for i, r in enumerate(results) if isinstance(r, lots_pb2.AddItemsResponse)]
            assert len(winners) == 1, results
            loser = results[1 - winners[0]]
            assert isinstance(loser, grpc.RpcError) and loser.code() == grpc.StatusCode.ALREADY_EXISTS, loser
            found = clashes(loser)
            assert set(found) == {"items[0].serial_number", "items[1].serial_number"}
            assert all(lots[winners[0]].reference in text for text in found.values())
            assert get_lot(admin, lots[1 - winners[0]].id).item_count == 0
            assert get_lot(admin, lots[winners[0]].id).item_count == 2
    finally:
        for c in people:
            c.close()


def test_an_item_is_fixed_through_its_mask_and_keeps_serials_unique(person: Person, admin: Client) -> None:
    client = person.client
    other_lot = make_lot(admin)
    held = unique("SN")
    add(admin, other_lot.id, held)
    lot = make_lot(client)
    item = add(client, lot.id, unique("SN")).items[0]

    def update(paths: Sequence[str], **values) -> lots_pb2.UpdateItemRequest:
        return lots_pb2.UpdateItemRequest(
            item=lots_pb2.LotItem(id=item.id, **values), update_mask=FieldMask(paths=list(paths))
        )

    renamed = unique("SN")
    fixed = (
        stub(client)
        .UpdateItem(
            update(
                ["serial_number", "type", "brand"],
                serial_number=f" {renamed} ",
                type=MONITOR,
                brand="Eizo",
                model="kept",
            ),
            metadata=client.md,
        )
        .item
    )
    assert (fixed.serial_number, fixed.type, fixed.brand, fixed.model) == (renamed, MONITOR, "Eizo", item.model)
    error = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        stub(client).UpdateItem,
        update(["serial_number"], serial_number=held.lower()),
        metadata=client.md,
    )
    assert other_lot.reference in clashes(error)["item.serial_number"]
    # Its own serial in another case is no clash.
    assert (
        stub(client)
        .UpdateItem(update(["serial_number"], serial_number=renamed.lower()), metadata=client.md)
        .item.serial_number
        == renamed.lower()
    )
    assert set(invalid(stub(client).UpdateItem, update(["type"], type=42), client)) == {"item.type"}
    assert set(invalid(stub(client).UpdateItem, update(["serial_number"], serial_number=""), client)) == {
        "item.serial_number"
    }
    for paths in ([], ["state"], ["entry_method"], ["lot_id"]):
        assert "update_mask" in invalid(stub(client).UpdateItem, update(paths), client), paths
    gone = lots_pb2.UpdateItemRequest(
        item=lots_pb2.LotItem(id=NOWHERE, brand="x"), update_mask=FieldMask(paths=["brand"])
    )
    expect_error(grpc.StatusCode.NOT_FOUND, stub(client).UpdateItem, gone, metadata=client.md)


def test_an_item_is_deleted_by_the_lots_creator_its_adder_or_an_admin(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    creator = person.client
    adder = create_person(admin, server.address).client
    stranger = create_person(admin, server.address).client
    try:
        lot = make_lot(creator)
        items = add(adder, lot.id, unique("SN"), unique("SN"), unique("SN"), unique("SN")).items
        inventory(adder, items[3].id)
        request = lots_pb2.DeleteItemRequest(item_id=items[0].id)
        expect_error(grpc.StatusCode.PERMISSION_DENIED, stub(stranger).DeleteItem, request, metadata=stranger.md)
        stub(adder).DeleteItem(request, metadata=adder.md)
        stub(creator).DeleteItem(lots_pb2.DeleteItemRequest(item_id=items[1].id), metadata=creator.md)
        # The admin deletes the last unprocessed item: every one left is processed, so the lot is finished.
        after = stub(admin).DeleteItem(lots_pb2.DeleteItemRequest(item_id=items[2].id), metadata=admin.md).lot
        assert (after.status, after.item_count, after.processed_count) == (FINISHED, 1, 1)
        expect_error(grpc.StatusCode.NOT_FOUND, stub(admin).DeleteItem, request, metadata=admin.md)
        # Its serial is free again.
        assert add(creator, lot.id, items[0].serial_number).items[0].serial_number == items[0].serial_number
    finally:
        adder.close()
        stranger.close()


# --- inventory ----------------------------------------------------------------------------------------------


def test_a_correction_is_recorded_and_the_item_shows_the_latest(person: Person, admin: Client) -> None:
    client = person.client
    lot = make_lot(client)
    item = add(client, lot.id, unique("SN")).items[0]
    first = inventory(client, item.id, REFURBISHED, " Élodie ", " Windows 11 Pro ")
    assert (first.item.state, first.item.technician, first.item.operating_system) == (
        REFURBISHED,
        "Élodie",
        "Windows 11 Pro",
    )
    assert (first.record.state, first.record.recorder_id, first.item.inventory_record_count) == (
        REFURBISHED,
        person.user.id,
        1,
    )
    corrected = inventory(admin, item.id, FOR_PARTS, "Zoë").item
    assert (corrected.state, corrected.technician, corrected.operating_system) == (FOR_PARTS, "Zoë", "")
    assert (corrected.recorder_username, corrected.inventory_record_count) == (admin.user.username, 2)
    got = stub(client).GetItem(lots_pb2.GetItemRequest(item_id=item.id), metadata=client.md).item
    assert got == corrected

    history = stub(client).ListInventoryRecords(
        lots_pb2.ListInventoryRecordsRequest(item_id=item.id), metadata=client.md
    )
    assert [(r.state, r.technician, r.recorder_username) for r in history.records] == [
        (REFURBISHED, "Élodie", person.user.username),
        (FOR_PARTS, "Zoë", admin.user.username),
    ]
    page = stub(client).ListInventoryRecords(
        lots_pb2.ListInventoryRecordsRequest(item_id=item.id, page_size=1), metadata=client.md
    )
    rest = stub(client).ListInventoryRecords(
        lots_pb2.ListInventoryRecordsRequest(item_id=item.id, page_size=1, page_token=page.next_page_token),
        metadata=client.md,
    )
    assert [r.id for r in (*page.records, *rest.records)] == [
        r.id for r in history.records
    ] and not rest.next_page_token
    counts = get_lot(client, lot.id)
    assert (counts.refurbished_count, counts.for_parts_count, counts.processed_count) == (0, 1, 1)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"state": lots_pb2.ITEM_STATE_UNSPECIFIED}, {"state"}),
        ({"state": 77}, {"state"}),
        ({"technician": ""}, {"technician"}),
        ({"technician": "   "}, {"technician"}),
        ({"technician": "t" * 101}, {"technician"}),
        ({"operating_system": "o" * 101}, {"operating_system"}),
        ({"state": 0, "technician": ""}, {"state", "technician"}),
    ],
)
def test_an_inventory_needs_a_state_and_a_technician(person: Person, fields: dict, bad: set[str]) -> None:
    client = person.client
    item = add(client, make_lot(client).id, unique("SN")).items[0]
    values = {"item_id": item.id, "state": REFURBISHED, "technician": "Tech", **fields}
    assert set(invalid(stub(client).InventoryItem, lots_pb2.InventoryItemRequest(**values), client)) == bad
    assert stub(client).GetItem(lots_pb2.GetItemRequest(item_id=item.id), metadata=client.md).item.state == 0


# --- lists ----------------------------------------------------------------------------------------------------


def test_lots_are_listed_by_received_date_filtered_and_paged(person: Person) -> None:
    client = person.client
    marker = uuid.uuid4().hex[:8]
    days = ["2026-03-01", "2026-03-05", "2026-03-05", "2026-04-10", "2026-02-01"]
    made = [make_lot(client, f"{marker}-{i}", received_date=day(d), supplier="Depot") for i, d in enumerate(days)]
    expected = [made[3].id, made[2].id, made[1].id, made[0].id, made[4].id]  # newest received first, then id
    assert [lot.id for lot in all_lots(client, query=marker)] == expected
    assert [lot.id for lot in all_lots(client, query=marker, page_size=2)] == expected
    march = {"received_from": day("2026-03-01"), "received_to": day("2026-03-05")}
    assert [lot.id for lot in all_lots(client, query=marker.upper(), **march)] == expected[1:4]
    assert [lot.id for lot in all_lots(client, query=marker, page_size=1, **march)] == expected[1:4]
    assert [lot.id for lot in all_lots(client, query=marker, received_from=day("2026-03-06"))] == expected[:1]
    assert [lot.id for lot in all_lots(client, query=marker, received_to=day("2026-03-01"))] == expected[3:]
    serial = unique("FINDME")
    add(client, made[4].id, serial)
    inventory(client, all_items(client, made[4].id)[0].id)
    assert [lot.id for lot in all_lots(client, query=serial[3:].lower())] == [made[4].id]  # by an item's serial
    assert [lot.id for lot in all_lots(client, query=marker, status=FINISHED)] == [made[4].id]
    assert [lot.id for lot in all_lots(client, query=marker, status=OPEN)] == expected[:4]
    note = make_lot(client, note=f"pallets from the {marker}-note depot")
    assert [lot.id for lot in all_lots(client, query=f"{marker}-NOTE")] == [note.id]

    first = stub(client).ListLots(lots_pb2.ListLotsRequest(query=marker, page_size=2), metadata=client.md)
    changed = lots_pb2.ListLotsRequest(query=marker, status=OPEN, page_size=2, page_token=first.next_page_token)
    assert set(invalid(stub(client).ListLots, changed, client)) == {"page_token"}
    for fields, bad in (
        ({"page_size": -1}, {"page_size"}),
        ({"page_size": 201}, {"page_size"}),
        ({"page_token": "garbage"}, {"page_token"}),
        ({"status": 9}, {"status"}),
        ({"received_from": date_pb2.Date(year=2026, month=2, day=30)}, {"received_from"}),
        ({"received_to": date_pb2.Date(year=2026, month=13, day=1)}, {"received_to"}),
        ({"received_to": date_pb2.Date()}, {"received_to"}),  # set but empty: not "no bound"
        ({"received_from": day("2026-03-02"), "received_to": day("2026-03-01")}, {"received_to"}),
        ({"query": "q" * 101}, {"query"}),
    ):
        assert set(invalid(stub(client).ListLots, lots_pb2.ListLotsRequest(**fields), client)) == bad, fields


def test_items_are_listed_in_order_filtered_and_paged(person: Person) -> None:
    client = person.client
    lot = make_lot(client)
    prefix = unique("IT")
    items = add(
        client,
        lot.id,
        line(f"{prefix}-a", brand="Lenovo", model="ThinkPad T480"),
        line(f"{prefix}-b", brand="Dell", model="OptiPlex 7050"),
        line(f"{prefix}-c", brand="Dell", model="P2419H"),
        line(f"{prefix}-d", brand="Apple", model="MacBook Air"),
    ).items
    inventory(client, items[0].id, REFURBISHED)
    inventory(client, items[2].id, SCRAPPED)
    ids = [item.id for item in items]
    assert [i.id for i in all_items(client, lot.id)] == ids
    assert [i.id for i in all_items(client, lot.id, page_size=3)] == ids
    assert [i.id for i in all_items(client, lot.id, unprocessed_only=True)] == [ids[1], ids[3]]
    assert [i.id for i in all_items(client, lot.id, state=SCRAPPED)] == [ids[2]]
    assert [i.id for i in all_items(client, lot.id, query="dell")] == [ids[1], ids[2]]
    assert [i.id for i in all_items(client, lot.id, query="THINKPAD")] == [ids[0]]
    assert [i.id for i in all_items(client, lot.id, query=f"{prefix}-D".lower())] == [ids[3]]
    both = lots_pb2.ListItemsRequest(lot_id=lot.id, state=SCRAPPED, unprocessed_only=True)
    assert set(invalid(stub(client).ListItems, both, client)) == {"unprocessed_only"}
    assert set(invalid(stub(client).ListItems, lots_pb2.ListItemsRequest(lot_id=lot.id, state=8), client)) == {"state"}
    expect_error(
        grpc.StatusCode.NOT_FOUND, stub(client).ListItems, lots_pb2.ListItemsRequest(lot_id=NOWHERE), metadata=client.md
    )


def test_brands_and_models_are_suggested_most_used_first(person: Person) -> None:
    client = person.client
    lot = make_lot(client)
    tag = f"Q{uuid.uuid4().hex[:6]}"
    add(
        client,
        lot.id,
        *[line(unique("SN"), brand=f"{tag}Dell", model="Latitude 7490") for _ in range(3)],
        line(unique("SN"), brand=f"{tag.lower()}dell", model="latitude 5580"),
        line(unique("SN"), brand=f"{tag}Dexter", model="Zed"),
        line(unique("SN"), brand=f"{tag}Acer", model="Aspire"),
        line(unique("SN"), brand=f"{tag}Acer", model="Aspire"),
    )

    def brands(prefix: str, limit: int = 0) -> list[tuple[str, int]]:
        reply = stub(client).ListBrands(lots_pb2.ListBrandsRequest(prefix=prefix, limit=limit), metadata=client.md)
        return [(s.value, s.item_count) for s in reply.brands]

    def models(brand: str, prefix: str = "") -> list[tuple[str, int]]:
        reply = stub(client).ListModels(lots_pb2.ListModelsRequest(brand=brand, prefix=prefix), metadata=client.md)
        return [(s.value, s.item_count) for s in reply.models]

    assert brands(tag.lower()) == [(f"{tag}Dell", 4), (f"{tag}Acer", 2), (f"{tag}Dexter", 1)]
    assert brands(f"{tag}DE") == [(f"{tag}Dell", 4), (f"{tag}Dexter", 1)]
    assert brands(tag, limit=1) == [(f"{tag}Dell", 4)]
    assert models(f"{tag}DELL") == [("Latitude 7490", 3), ("latitude 5580", 1)]
    assert models(f"{tag}dell", "LATITUDE 5") == [("latitude 5580", 1)]
    assert models(f"{tag}Acer") == [("Aspire", 2)]
    assert ("Zed", 1) in models("", "ze")  # any brand
    for call, request, bad in (
        (stub(client).ListBrands, lots_pb2.ListBrandsRequest(limit=51), {"limit"}),
        (stub(client).ListBrands, lots_pb2.ListBrandsRequest(limit=-1), {"limit"}),
        (stub(client).ListBrands, lots_pb2.ListBrandsRequest(prefix="p" * 101), {"prefix"}),
        (stub(client).ListModels, lots_pb2.ListModelsRequest(brand="b" * 101, prefix="p" * 101), {"brand", "prefix"}),
    ):
        assert set(invalid(call, request, client)) == bad


# --- who and what ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer not-a-token"),)])
def test_lots_need_a_valid_token(person: Person, metadata) -> None:
    s = stub(person.client)
    for call, request in (
        (s.ListLots, lots_pb2.ListLotsRequest()),
        (
            s.CreateLot,
            lots_pb2.CreateLotRequest(
                lot=lots_pb2.Lot(reference=unique(), supplier="s", received_date=day("2026-01-01"))
            ),
        ),
        (s.AddItems, lots_pb2.AddItemsRequest(lot_id=1, items=[line("x")])),
        (s.InventoryItem, lots_pb2.InventoryItemRequest(item_id=1, state=REFURBISHED, technician="t")),
        (s.GetLotReport, lots_pb2.GetLotReportRequest(lot_id=1)),
        (s.ListBrands, lots_pb2.ListBrandsRequest()),
    ):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, call, request, metadata=metadata)


@pytest.mark.parametrize("target", [0, -1, NOWHERE])
def test_unknown_or_bad_ids(person: Person, target: int) -> None:
    s = stub(person.client)
    code = grpc.StatusCode.NOT_FOUND if target > 0 else grpc.StatusCode.INVALID_ARGUMENT
    for call, request in (
        (s.GetLot, lots_pb2.GetLotRequest(lot_id=target)),
        (s.DeleteLot, lots_pb2.DeleteLotRequest(lot_id=target)),
        (s.GetLotReport, lots_pb2.GetLotReportRequest(lot_id=target)),
        (s.GetItem, lots_pb2.GetItemRequest(item_id=target)),
        (s.DeleteItem, lots_pb2.DeleteItemRequest(item_id=target)),
        (s.InventoryItem, lots_pb2.InventoryItemRequest(item_id=target, state=REFURBISHED, technician="t")),
        (s.ListInventoryRecords, lots_pb2.ListInventoryRecordsRequest(item_id=target)),
    ):
        expect_error(code, call, request, metadata=person.client.md)


def test_lot_changes_are_recorded_in_the_activity_log(person: Person, admin: Client) -> None:
    activity = activity_pb2_grpc.ActivityServiceStub(admin.channel)

    def entries() -> list[activity_pb2.ActivityEntry]:
        request = activity_pb2.ListActivityRequest(actor_id=person.user.id, page_size=200)
        return list(reversed(activity.ListActivity(request, metadata=admin.md).entries))

    client = person.client
    lot = make_lot(client)
    stub(client).UpdateLot(
        lots_pb2.UpdateLotRequest(lot=lots_pb2.Lot(id=lot.id, note="n"), update_mask=FieldMask(paths=["note"])),
        metadata=client.md,
    )
    a, b = add(client, lot.id, unique("SN"), unique("SN")).items
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, add, client, lot.id, "")  # a failed call records nothing
    stub(client).UpdateItem(
        lots_pb2.UpdateItemRequest(item=lots_pb2.LotItem(id=a.id, brand="HP"), update_mask=FieldMask(paths=["brand"])),
        metadata=client.md,
    )
    inventory(client, a.id, REFURBISHED, "Élodie")
    inventory(client, a.id, SCRAPPED, "Élodie")
    stub(client).DeleteItem(lots_pb2.DeleteItemRequest(item_id=b.id), metadata=client.md)
    stub(client).DeleteItem(lots_pb2.DeleteItemRequest(item_id=a.id), metadata=client.md)
    stub(client).DeleteLot(lots_pb2.DeleteLotRequest(lot_id=lot.id), metadata=client.md)
    found = [
        e for e in entries() if e.resource_id in {str(lot.id), str(a.id), str(b.id)} and e.action.startswith("lot")
    ]
    assert [e.action for e in found] == [
        "lot.create",
        "lot.update",
        "lot_item.add",
        "lot_item.update",
        "lot_item.inventory",
        "lot_item.inventory",
        "lot_item.delete",
        "lot_item.delete",
        "lot.delete",
    ], found
    assert found[0].detail == lot.reference and found[1].detail == "note"
    assert found[2].detail.startswith("2 items: ") and a.serial_number in found[2].detail
    assert "REFURBISHED by Élodie" in found[4].detail and found[5].detail.endswith("(correction)")


# --- the report -----------------------------------------------------------------------------------------------


def test_the_report_is_a_pdf_with_every_item_and_page_numbers(
    server: ServerProcess, person: Person, admin: Client, database_kind: str
) -> None:
    client = person.client
    lot = make_lot(
        client,
        supplier="Mairie de Lyon — service informatique",
        recovered_date=day("2026-11-18"),
        note="Deux palettes; écrans à tester.",
    )
    prefix = unique("RPT")
    kinds = [LAPTOP, DESKTOP, MONITOR, OTHER]
    items = add(
        client,
        lot.id,
        *[
            line(f"{prefix}-{i:03d}", kinds[i % 4], "Dell" if i % 2 else "Hewlett-Packard", f"Model {i % 7}")
            for i in range(70)
        ],
    ).items
    technicians = ["Élodie", "Zoë", "Łukasz"]
    for i, item in enumerate(items[:50]):
        inventory(
            client,
            item.id,
            [REFURBISHED, FOR_PARTS, SCRAPPED][i % 3],
            technicians[i % 3],
            "Windows 11 Pro" if i % 2 else "",
        )

    report = stub(client).GetLotReport(lots_pb2.GetLotReportRequest(lot_id=lot.id), metadata=client.md, timeout=30)
    assert report.content_type == "application/pdf" and report.data.startswith(b"%PDF")
    pdf = pypdf.PdfReader(io.BytesIO(report.data))
    pages = len(pdf.pages)
    assert pages >= 2
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert all(f"{prefix}-{i:03d}" in text for i in range(70))
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in pdf.pages[n - 1].extract_text()
    for expected in (
        f"Lot {lot.reference}",
        "Élodie",
        "Zoë",
        "Łukasz",
        "Mairie de Lyon — service informatique",
        "2026-11-18",
        "Not processed",
        "Generated",
    ):
        assert expected in text, expected
    # The header row is on every page that carries the table.
    assert all("Serial number" in page.extract_text() for page in pdf.pages)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    document = pypdfium2.PdfDocument(report.data)
    try:
        document[0].render(scale=1.6).to_pil().save(ARTIFACTS / f"lot-report-{database_kind}.png")
    finally:
        document.close()
    assert (ARTIFACTS / f"lot-report-{database_kind}.png").stat().st_size > 10_000


def test_an_empty_lots_report_says_so(person: Person) -> None:
    lot = make_lot(person.client)
    report = stub(person.client).GetLotReport(lots_pb2.GetLotReportRequest(lot_id=lot.id), metadata=person.client.md)
    text = pypdf.PdfReader(io.BytesIO(report.data)).pages[0].extract_text()
    assert "holds no item" in text and "Page 1 of 1" in text


def test_without_its_bundled_font_the_report_falls_back_to_helvetica(tmp_path, monkeypatch) -> None:
    """A broken install (the font files gone) still gives a report; Latin-1 names survive, others print "?"."""
    from datetime import UTC, date, datetime

    from server.domain import lot_report
    from server.domain.lots import EntryMethod, ItemState, ItemType, Lot, LotItem, LotStatus

    monkeypatch.setattr(lot_report, "FONT_DIR", tmp_path)
    now = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    lot = Lot(
        1,
        "LOT-1",
        "Zoë's depot",
        date(2026, 11, 20),
        None,
        "",
        1,
        "élodie",
        now,
        now,
        LotStatus.FINISHED,
        now,
        1,
        1,
        1,
        0,
        0,
    )
    item = LotItem(
        1, 1, "SN-1", ItemType.LAPTOP, "Dell", "E7470", EntryMethod.SCAN, now, 1, "élodie",
        ItemState.REFURBISHED, "Łukasz", "", now, "élodie", 1,
    )  # fmt: skip
    text = pypdf.PdfReader(io.BytesIO(lot_report.render_lot_report(lot, [item], now))).pages[0].extract_text()
    assert "Zoë's depot" in text and "?ukasz" in text and "SN-1" in text and "Page 1 of 1" in text


# --- over REST ------------------------------------------------------------------------------------------------


def _download(url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.status, reply.read(), {k.lower(): v for k, v in reply.headers.items()}


def test_the_report_downloads_as_a_pdf_through_the_gateway(gateway: GatewayProcess, person: Person) -> None:
    bearer = {"authorization": f"Bearer {person.client.access_token}"}
    lot = make_lot(person.client, reference=unique("GW/é"))
    add(person.client, lot.id, unique("SN"))
    status, body, headers = _download(f"{gateway.url}/v1/lots/{lot.id}/report", bearer)
    assert status == 200 and body.startswith(b"%PDF")
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"].startswith('attachment; filename="lot-GW__')
    assert len(pypdf.PdfReader(io.BytesIO(body)).pages) == 1
    status, text, _ = fetch(f"{gateway.url}/v1/lots/{NOWHERE}/report", headers=bearer)
    assert status == 404, text


def bound(name: str, text: str) -> str:
    """A ``google.type.Date`` query parameter of ``ListLots`` over REST: ``name.year=...&name.month=...&...``."""
    year, month, day_ = (int(part) for part in text.split("-"))
    return f"{name}.year={year}&{name}.month={month}&{name}.day={day_}"


def test_lots_over_rest(gateway: GatewayProcess, person: Person) -> None:
    bearer = {"authorization": f"Bearer {person.client.access_token}"}
    reference = unique("REST")
    body = {"reference": reference, "supplier": "Over REST", "received_date": {"year": 2026, "month": 11, "day": 25}}
    status, text, _ = fetch(f"{gateway.url}/v1/lots", "POST", body, bearer)
    assert status == 200, text
    made = json.loads(text)["lot"]
    assert made["status"] == "LOT_STATUS_OPEN" and made["item_count"] == 0
    assert made["received_date"] == {"year": 2026, "month": 11, "day": 25} and "recovered_date" not in made
    lines = {
        "items": [{"serial_number": unique("SN"), "type": "ITEM_TYPE_LAPTOP", "entry_method": "ENTRY_METHOD_SCAN"}]
    }
    status, text, _ = fetch(f"{gateway.url}/v1/lots/{made['id']}/items:add", "POST", lines, bearer)
    assert status == 200 and json.loads(text)["lot"]["item_count"] == 1, text
    status, text, _ = fetch(
        f"{gateway.url}/v1/lots?query={reference}&status=LOT_STATUS_OPEN&page_size=5", headers=bearer
    )
    assert status == 200, text
    listed = json.loads(text)
    assert [lot["id"] for lot in listed["lots"]] == [made["id"]] and listed["next_page_token"] == ""
    # Date filters travel as one query parameter per part of the google.type.Date.
    for bounds, found in (
        (bound("received_from", "2026-11-01"), [made["id"]]),
        (f"{bound('received_from', '2026-11-25')}&{bound('received_to', '2026-11-25')}", [made["id"]]),
        (bound("received_from", "2026-11-26"), []),
        (bound("received_to", "2026-11-24"), []),
    ):
        status, text, _ = fetch(f"{gateway.url}/v1/lots?query={reference}&{bounds}", headers=bearer)
        assert status == 200, text
        assert [lot["id"] for lot in json.loads(text).get("lots", [])] == found, bounds
    status, text, _ = fetch(f"{gateway.url}/v1/lots?{bound('received_from', '2026-02-30')}", headers=bearer)
    assert status == 400 and "received_from" in text, text
    bad = {"reference": "", "received_date": {"year": 2026, "month": 2, "day": 30}}
    status, text, _ = fetch(f"{gateway.url}/v1/lots", "POST", bad, bearer)
    assert status == 400 and "lot.reference" in text and "lot.received_date" in text, text
    status, text, _ = fetch(f"{gateway.url}/v1/lots/{made['id']}/items:add", "POST", lines, bearer)
    assert status == 409 and reference in text, text
