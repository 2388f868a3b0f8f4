"""``workspace.v1.LotsService``."""

from __future__ import annotations

from datetime import date

import grpc
from google.api import httpbody_pb2
from workspace.v1 import lots_pb2, lots_pb2_grpc

from ..auth.interceptor import caller
from ..domain.errors import Validator
from ..domain.lots import (
    ITEM_UPDATABLE_FIELDS,
    LOT_UPDATABLE_FIELDS,
    STATE_NAMES,
    EntryMethod,
    InventoryRecord,
    ItemFilter,
    ItemState,
    ItemType,
    Lot,
    LotFilter,
    LotItem,
    LotKey,
    Lots,
    LotStatus,
    NewItem,
    clean_brand,
    clean_item_changes,
    clean_lot_changes,
    clean_lot_fields,
    clean_operating_system,
    clean_query,
    clean_technician,
    suggestion_limit,
)
from . import paging
from .convert import check_id, date_to_proto, optional_date, timestamp

LOT_STATUS_TO_PROTO = {LotStatus.OPEN: lots_pb2.LOT_STATUS_OPEN, LotStatus.FINISHED: lots_pb2.LOT_STATUS_FINISHED}
LOT_STATUS_FROM_PROTO = {v: k for k, v in LOT_STATUS_TO_PROTO.items()}
ITEM_TYPE_TO_PROTO = {
    ItemType.LAPTOP: lots_pb2.ITEM_TYPE_LAPTOP,
    ItemType.DESKTOP: lots_pb2.ITEM_TYPE_DESKTOP,
    ItemType.MONITOR: lots_pb2.ITEM_TYPE_MONITOR,
    ItemType.OTHER: lots_pb2.ITEM_TYPE_OTHER,
}
ITEM_TYPE_FROM_PROTO = {v: k for k, v in ITEM_TYPE_TO_PROTO.items()}
ENTRY_METHOD_TO_PROTO = {EntryMethod.SCAN: lots_pb2.ENTRY_METHOD_SCAN, EntryMethod.MANUAL: lots_pb2.ENTRY_METHOD_MANUAL}
ENTRY_METHOD_FROM_PROTO = {v: k for k, v in ENTRY_METHOD_TO_PROTO.items()}
ITEM_STATE_TO_PROTO = {
    ItemState.REFURBISHED: lots_pb2.ITEM_STATE_REFURBISHED,
    ItemState.FOR_PARTS: lots_pb2.ITEM_STATE_FOR_PARTS,
    ItemState.SCRAPPED: lots_pb2.ITEM_STATE_SCRAPPED,
}
ITEM_STATE_FROM_PROTO = {v: k for k, v in ITEM_STATE_TO_PROTO.items()}
PDF = "application/pdf"
#: ``Lot``'s ``google.type.Date`` fields.
DATE_FIELDS = frozenset({"received_date", "recovered_date"})


def lot_to_proto(lot: Lot) -> lots_pb2.Lot:
    return lots_pb2.Lot(
        id=lot.id,
        reference=lot.reference,
        supplier=lot.supplier,
        received_date=date_to_proto(lot.received_date),
        recovered_date=date_to_proto(lot.recovered_date),
        note=lot.note,
        creator_id=lot.creator_id or 0,
        creator_username=lot.creator_username,
        create_time=timestamp(lot.created_at),
        update_time=timestamp(lot.updated_at),
        status=LOT_STATUS_TO_PROTO[lot.status],
        finish_time=timestamp(lot.finished_at),
        item_count=lot.item_count,
        processed_count=lot.processed_count,
        refurbished_count=lot.refurbished_count,
        for_parts_count=lot.for_parts_count,
        scrapped_count=lot.scrapped_count,
    )


def item_to_proto(item: LotItem) -> lots_pb2.LotItem:
    return lots_pb2.LotItem(
        id=item.id,
        lot_id=item.lot_id,
        serial_number=item.serial_number,
        type=ITEM_TYPE_TO_PROTO[item.type],
        brand=item.brand,
        model=item.model,
        entry_method=ENTRY_METHOD_TO_PROTO[item.entry_method],
        add_time=timestamp(item.added_at),
        adder_id=item.adder_id or 0,
        adder_username=item.adder_username,
        state=ITEM_STATE_TO_PROTO[item.state] if item.state is not None else lots_pb2.ITEM_STATE_UNSPECIFIED,
        technician=item.technician or "",
        operating_system=item.operating_system or "",
        inventory_time=timestamp(item.inventoried_at),
        recorder_username=item.recorder_username or "",
        inventory_record_count=item.record_count,
    )


def record_to_proto(record: InventoryRecord) -> lots_pb2.InventoryRecord:
    return lots_pb2.InventoryRecord(
        id=record.id,
        item_id=record.item_id,
        state=ITEM_STATE_TO_PROTO[record.state],
        technician=record.technician,
        operating_system=record.operating_system,
        record_time=timestamp(record.recorded_at),
        recorder_id=record.recorder_id or 0,
        recorder_username=record.recorder_username,
    )


def _mask(v: Validator, paths: list[str], allowed: frozenset[str]) -> None:
    """An update mask: required, and only ``allowed`` paths (output-only and unknown ones are refused)."""
    names = ", ".join(sorted(allowed))
    if v.check(bool(paths), "update_mask", f"is required: name the fields to change ({names})"):
        for path in paths:
            v.check(path in allowed, "update_mask", f"cannot update {path!r}; allowed: {names}")


def _required(v: Validator, request: object, name: str) -> None:
    if not request.HasField(name):  # type: ignore[attr-defined]
        v.add(name, "is required")
        v.raise_if_any()


def _lot_value(v: Validator, lot: lots_pb2.Lot, name: str) -> object:
    """One of ``UpdateLot``'s new values: text as given, a date as ``date`` (None: unset, or invalid, reported)."""
    if name in DATE_FIELDS:
        return optional_date(v, f"lot.{name}", lot, name)
    return str(getattr(lot, name))


def _lot_filter(v: Validator, request: lots_pb2.ListLotsRequest) -> LotFilter:
    status = None
    if request.status != lots_pb2.LOT_STATUS_UNSPECIFIED:
        status = LOT_STATUS_FROM_PROTO.get(request.status)
        v.check(status is not None, "status", "must be LOT_STATUS_OPEN, LOT_STATUS_FINISHED or unspecified (any)")
    start = optional_date(v, "received_from", request, "received_from")
    end = optional_date(v, "received_to", request, "received_to")
    if start is not None and end is not None:
        v.check(start <= end, "received_to", "must not be before received_from")
    return LotFilter(status, start, end, clean_query(v, "query", request.query))


def _encode_lot_key(key: LotKey) -> str:
    return f"{key[0].isoformat()}|{key[1]}"


def _decode_lot_key(v: Validator, token: str, filters: dict[str, object]) -> LotKey | None:
    after = paging.decode_token(v, token, filters)
    if after is None:
        return None
    day, _, lot_id = after.partition("|")
    try:
        key = (date.fromisoformat(day), int(lot_id))
    except ValueError:
        v.add("page_token", "is not a token this server issued")
        return None
    return key


class LotsServicer(lots_pb2_grpc.LotsServiceServicer):
    def __init__(self, lots: Lots) -> None:
        self._lots = lots

    # --- lots -----------------------------------------------------------------------------------------------

    async def CreateLot(
        self, request: lots_pb2.CreateLotRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.CreateLotResponse:
        v = Validator()
        _required(v, request, "lot")
        given = request.lot
        fields = {
            "reference": given.reference,
            "supplier": given.supplier,
            "received_date": optional_date(v, "lot.received_date", given, "received_date"),
            "recovered_date": optional_date(v, "lot.recovered_date", given, "recovered_date"),
            "note": given.note,
        }
        clean_lot_fields(v, "lot", **fields)  # type: ignore[arg-type]
        v.raise_if_any()
        lot = await self._lots.create_lot(caller(), **fields)
        return lots_pb2.CreateLotResponse(lot=lot_to_proto(lot))

    async def GetLot(
        self, request: lots_pb2.GetLotRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.GetLotResponse:
        v = Validator()
        check_id(v, "lot_id", request.lot_id)
        v.raise_if_any()
        return lots_pb2.GetLotResponse(lot=lot_to_proto(await self._lots.get_lot(caller(), request.lot_id)))

    async def ListLots(
        self, request: lots_pb2.ListLotsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.ListLotsResponse:
        v = Validator()
        size = paging.page_size(v, request.page_size)
        lot_filter = _lot_filter(v, request)
        filters = {
            "list": "lots",
            "status": request.status,
            "from": lot_filter.received_from.isoformat() if lot_filter.received_from else "",
            "to": lot_filter.received_to.isoformat() if lot_filter.received_to else "",
            "query": lot_filter.query,
        }
        after = _decode_lot_key(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._lots.list_lots(caller(), lot_filter, after=after, limit=size)
        token = paging.encode_token(_encode_lot_key(page.next_after), filters) if page.next_after else ""
        return lots_pb2.ListLotsResponse(lots=[lot_to_proto(lot) for lot in page.lots], next_page_token=token)

    async def UpdateLot(
        self, request: lots_pb2.UpdateLotRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.UpdateLotResponse:
        v = Validator()
        _required(v, request, "lot")
        check_id(v, "lot.id", request.lot.id)
        paths = list(request.update_mask.paths)
        _mask(v, paths, LOT_UPDATABLE_FIELDS)
        changes = {name: _lot_value(v, request.lot, name) for name in sorted(LOT_UPDATABLE_FIELDS) if name in paths}
        clean_lot_changes(v, "lot", changes)
        v.raise_if_any()
        lot = await self._lots.update_lot(caller(), request.lot.id, changes)
        return lots_pb2.UpdateLotResponse(lot=lot_to_proto(lot))

    async def DeleteLot(
        self, request: lots_pb2.DeleteLotRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.DeleteLotResponse:
        v = Validator()
        check_id(v, "lot_id", request.lot_id)
        v.raise_if_any()
        await self._lots.delete_lot(caller(), request.lot_id)
        return lots_pb2.DeleteLotResponse()

    # --- items ----------------------------------------------------------------------------------------------

    async def AddItems(
        self, request: lots_pb2.AddItemsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.AddItemsResponse:
        v = Validator()
        check_id(v, "lot_id", request.lot_id)
        v.raise_if_any()
        # Unknown or unspecified enum values become None: the domain explains them line by line, with the rest.
        lines = [
            NewItem(
                serial_number=line.serial_number,
                type=ITEM_TYPE_FROM_PROTO.get(line.type),
                brand=line.brand,
                model=line.model,
                entry_method=ENTRY_METHOD_FROM_PROTO.get(line.entry_method),
            )
            for line in request.items
        ]
        items, lot = await self._lots.add_items(caller(), request.lot_id, lines)
        return lots_pb2.AddItemsResponse(items=[item_to_proto(item) for item in items], lot=lot_to_proto(lot))

    async def ListItems(
        self, request: lots_pb2.ListItemsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.ListItemsResponse:
        v = Validator()
        check_id(v, "lot_id", request.lot_id)
        size = paging.page_size(v, request.page_size)
        state = None
        if request.state != lots_pb2.ITEM_STATE_UNSPECIFIED:
            state = ITEM_STATE_FROM_PROTO.get(request.state)
            v.check(state is not None, "state", f"must be one of {STATE_NAMES} (as ITEM_STATE_...) or unspecified")
            v.check(not request.unprocessed_only, "unprocessed_only", "cannot be combined with state")
        item_filter = ItemFilter(state, request.unprocessed_only, clean_query(v, "query", request.query))
        filters = {
            "list": "items",
            "lot": request.lot_id,
            "state": request.state,
            "unprocessed": request.unprocessed_only,
            "query": item_filter.query,
        }
        after = paging.decode_id(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._lots.list_items(caller(), request.lot_id, item_filter, after=after, limit=size)
        token = paging.encode_token(str(page.next_after), filters) if page.next_after else ""
        return lots_pb2.ListItemsResponse(items=[item_to_proto(item) for item in page.items], next_page_token=token)

    async def GetItem(
        self, request: lots_pb2.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.GetItemResponse:
        v = Validator()
        check_id(v, "item_id", request.item_id)
        v.raise_if_any()
        return lots_pb2.GetItemResponse(item=item_to_proto(await self._lots.get_item(caller(), request.item_id)))

    async def UpdateItem(
        self, request: lots_pb2.UpdateItemRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.UpdateItemResponse:
        v = Validator()
        _required(v, request, "item")
        given = request.item
        check_id(v, "item.id", given.id)
        paths = list(request.update_mask.paths)
        _mask(v, paths, ITEM_UPDATABLE_FIELDS)
        changes: dict[str, object] = {
            name: getattr(given, name) for name in ("serial_number", "brand", "model") if name in paths
        }
        if "type" in paths:
            changes["type"] = ITEM_TYPE_FROM_PROTO.get(given.type)
        clean_item_changes(v, "item", changes)
        v.raise_if_any()
        item = await self._lots.update_item(caller(), given.id, changes)
        return lots_pb2.UpdateItemResponse(item=item_to_proto(item))

    async def DeleteItem(
        self, request: lots_pb2.DeleteItemRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.DeleteItemResponse:
        v = Validator()
        check_id(v, "item_id", request.item_id)
        v.raise_if_any()
        lot = await self._lots.delete_item(caller(), request.item_id)
        return lots_pb2.DeleteItemResponse(lot=lot_to_proto(lot))

    async def InventoryItem(
        self, request: lots_pb2.InventoryItemRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.InventoryItemResponse:
        v = Validator()
        check_id(v, "item_id", request.item_id)
        state = ITEM_STATE_FROM_PROTO.get(request.state)
        v.check(state is not None, "state", f"is required: one of {STATE_NAMES} (as ITEM_STATE_...)")
        clean_technician(v, "technician", request.technician)
        clean_operating_system(v, "operating_system", request.operating_system)
        v.raise_if_any()
        item, record, lot = await self._lots.inventory_item(
            caller(),
            request.item_id,
            state=state,
            technician=request.technician,
            operating_system=request.operating_system,
        )
        return lots_pb2.InventoryItemResponse(
            item=item_to_proto(item), record=record_to_proto(record), lot=lot_to_proto(lot)
        )

    async def ListInventoryRecords(
        self, request: lots_pb2.ListInventoryRecordsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.ListInventoryRecordsResponse:
        v = Validator()
        check_id(v, "item_id", request.item_id)
        size = paging.page_size(v, request.page_size)
        filters = {"list": "inventory_records", "item": request.item_id}
        after = paging.decode_id(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._lots.list_inventory_records(caller(), request.item_id, after=after, limit=size)
        token = paging.encode_token(str(page.next_after), filters) if page.next_after else ""
        return lots_pb2.ListInventoryRecordsResponse(
            records=[record_to_proto(record) for record in page.records], next_page_token=token
        )

    # --- report and suggestions ---------------------------------------------------------------------------

    async def GetLotReport(
        self, request: lots_pb2.GetLotReportRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        v = Validator()
        check_id(v, "lot_id", request.lot_id)
        v.raise_if_any()
        lot, pdf = await self._lots.lot_report(caller(), request.lot_id)
        # Through the gateway this is the whole HTTP response: the body is the PDF, served as application/pdf.
        # Browsers offer to save it under the lot's reference (ASCII-safe, as a header allows).
        filename = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in lot.reference)
        await context.send_initial_metadata((("content-disposition", f'attachment; filename="lot-{filename}.pdf"'),))
        return httpbody_pb2.HttpBody(content_type=PDF, data=pdf)

    async def ListBrands(
        self, request: lots_pb2.ListBrandsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.ListBrandsResponse:
        v = Validator()
        clean_brand(v, "prefix", request.prefix)
        limit = suggestion_limit(v, request.limit)
        v.raise_if_any()
        found = await self._lots.suggest_brands(caller(), request.prefix, limit)
        return lots_pb2.ListBrandsResponse(
            brands=[lots_pb2.Suggestion(value=s.value, item_count=s.item_count) for s in found]
        )

    async def ListModels(
        self, request: lots_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> lots_pb2.ListModelsResponse:
        v = Validator()
        clean_brand(v, "brand", request.brand)
        clean_brand(v, "prefix", request.prefix)
        limit = suggestion_limit(v, request.limit)
        v.raise_if_any()
        found = await self._lots.suggest_models(caller(), request.brand, request.prefix, limit)
        return lots_pb2.ListModelsResponse(
            models=[lots_pb2.Suggestion(value=s.value, item_count=s.item_count) for s in found]
        )
