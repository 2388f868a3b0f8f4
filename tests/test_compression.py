"""Compression: gzip'd gRPC requests are accepted; the gateway gzips large JSON and calendars, never PDFs or streams.

What compression saves is measured by bench/compression.py (docs/PERFORMANCE.md); here only that it happens
where it should, not where it should not, and that what arrives decodes to the same thing.
"""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.request
import uuid
from pathlib import Path

import grpc
from google.type import date_pb2
from workspace.v1 import chat_pb2, chat_pb2_grpc, lots_pb2, lots_pb2_grpc
from workspace_client import FileTokenStore, Session

from .api import Client, Person, create_person
from .gateway import GatewayProcess
from .servers import ServerProcess


def get(gateway: GatewayProcess, path: str, token: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A GET through the gateway: (status, headers with lower-case names, the body exactly as it came)."""
    request = urllib.request.Request(
        gateway.url + path, headers={"authorization": f"Bearer {token}", **headers}, method="GET"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:  # urllib never decodes content-encoding
        return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()


def conversation_with_history(person: Person, messages: int) -> int:
    chat = chat_pb2_grpc.ChatServiceStub(person.client.channel)
    made = chat.CreateGroupConversation(
        chat_pb2.CreateGroupConversationRequest(name=f"history-{uuid.uuid4().hex[:8]}"), metadata=person.client.md
    )
    conversation_id = made.conversation.id
    for i in range(messages):
        text = f"Message {i}: the pallet from Lyon has {i % 17} laptops left to test before Friday."
        request = chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text, request_id=uuid.uuid4().hex)
        chat.SendMessage(request, metadata=person.client.md, timeout=10)
    return conversation_id


def test_a_large_json_list_is_gzipped_and_decodes_to_the_same_json(gateway: GatewayProcess, person: Person) -> None:
    conversation_id = conversation_with_history(person, 60)
    path = f"/v1/conversations/{conversation_id}/messages?page_size=200"
    token = person.client.access_token

    status, plain_headers, plain = get(gateway, path, token)
    assert status == 200 and "content-encoding" not in plain_headers, plain_headers
    status, headers, packed = get(gateway, path, token, **{"accept-encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip", headers
    assert headers["content-type"].startswith("application/json") and "accept-encoding" in headers["vary"].lower()
    assert json.loads(gzip.decompress(packed)) == json.loads(plain)
    assert len(json.loads(plain)["messages"]) == 60
    assert len(packed) < len(plain) / 3  # the same JSON, a fraction of the bytes

    # A small answer is sent as it is, whatever the client accepts.
    status, headers, small = get(gateway, path.replace("200", "1"), token, **{"accept-encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers and len(json.loads(small)["messages"]) == 1


def test_a_pdf_is_not_compressed_again(gateway: GatewayProcess, person: Person) -> None:
    lots = lots_pb2_grpc.LotsServiceStub(person.client.channel)
    lot = lots_pb2.Lot(
        reference=f"GZ-{uuid.uuid4().hex[:8]}",
        supplier="Mairie de Lyon",
        received_date=date_pb2.Date(year=2026, month=11, day=20),
    )
    lot_id = lots.CreateLot(lots_pb2.CreateLotRequest(lot=lot), metadata=person.client.md, timeout=10).lot.id
    items = [
        lots_pb2.NewLotItem(
            serial_number=f"GZ{uuid.uuid4().hex[:10]}",
            type=lots_pb2.ITEM_TYPE_LAPTOP,
            brand="Dell",
            model="Latitude 7490",
            entry_method=lots_pb2.ENTRY_METHOD_SCAN,
        )
        for _ in range(40)
    ]
    lots.AddItems(lots_pb2.AddItemsRequest(lot_id=lot_id, items=items), metadata=person.client.md, timeout=30)

    status, headers, pdf = get(
        gateway, f"/v1/lots/{lot_id}/report", person.client.access_token, **{"accept-encoding": "gzip"}
    )
    assert status == 200 and headers["content-type"] == "application/pdf", headers
    assert "content-encoding" not in headers and pdf.startswith(b"%PDF") and len(pdf) > 1024, headers

    # The lot's items, as JSON, are compressed.
    status, headers, packed = get(
        gateway, f"/v1/lots/{lot_id}/items?page_size=100", person.client.access_token, **{"accept-encoding": "gzip"}
    )
    assert status == 200 and headers.get("content-encoding") == "gzip", headers
    assert len(json.loads(gzip.decompress(packed))["items"]) == 40


def test_an_event_stream_is_never_compressed(gateway: GatewayProcess, person: Person) -> None:
    """NDJSON events must reach the client as they are sent, not when a compressor's block fills."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        headers = {"authorization": f"Bearer {person.client.access_token}", "accept-encoding": "gzip"}
        connection.request("GET", "/v1/events:stream", headers=headers)
        reply = connection.getresponse()
        assert reply.status == 200
        assert reply.getheader("content-encoding") is None, reply.getheaders()
        first = reply.readline()  # the first event (a heartbeat or a resync marker), as plain JSON
        assert json.loads(first), first
    finally:
        connection.close()


def test_gzip_compressed_grpc_requests_are_accepted_direct_and_through_the_gateway(
    server: ServerProcess, gateway: GatewayProcess, admin: Client
) -> None:
    for address in (server.address, gateway.address):
        person = create_person(admin, address)
        with grpc.insecure_channel(address, compression=grpc.Compression.Gzip) as channel:
            chat = chat_pb2_grpc.ChatServiceStub(channel)
            made = chat.CreateGroupConversation(
                chat_pb2.CreateGroupConversationRequest(name="gzip"), metadata=person.client.md, timeout=10
            )
            text = ("A long report of the morning's tests, repeated. " * 40)[:2000]  # the longest message allowed
            request = chat_pb2.SendMessageRequest(conversation_id=made.conversation.id, text=text, request_id="gz-1")
            sent = chat.SendMessage(request, metadata=person.client.md, timeout=10)
            assert sent.message.text == text.strip()
            # A large batch, compressed on this call only, on a channel that compresses nothing by default.
            lots = lots_pb2_grpc.LotsServiceStub(person.client.channel)
            lot = lots_pb2.Lot(
                reference=f"GZ-{uuid.uuid4().hex[:8]}",
                supplier="Ville",
                received_date=date_pb2.Date(year=2026, month=11, day=20),
            )
            lot_id = lots.CreateLot(lots_pb2.CreateLotRequest(lot=lot), metadata=person.client.md, timeout=10).lot.id
            items = [
                lots_pb2.NewLotItem(
                    serial_number=f"GZ{uuid.uuid4().hex[:12]}",
                    type=lots_pb2.ITEM_TYPE_DESKTOP,
                    brand="Hewlett-Packard",
                    model="EliteDesk 800 G4",
                    entry_method=lots_pb2.ENTRY_METHOD_MANUAL,
                )
                for _ in range(500)
            ]
            added = lots.AddItems(
                lots_pb2.AddItemsRequest(lot_id=lot_id, items=items),
                metadata=person.client.md,
                timeout=60,
                compression=grpc.Compression.Gzip,
            )
            assert len(added.items) == 500
            # The large reply (compressed by the server for a client that accepts gzip) arrives whole.
            page = chat.ListMessages(
                chat_pb2.ListMessagesRequest(conversation_id=made.conversation.id), metadata=person.client.md
            )
            assert [m.text for m in page.messages] == [text.strip()]
        person.client.close()


def test_a_client_that_accepts_no_compression_gets_large_replies_as_they_are(
    server: ServerProcess, person: Person
) -> None:
    """The server compresses for clients that accept gzip only (a compression level, negotiated per call)."""
    conversation_id = conversation_with_history(person, 30)
    identity_only = [("grpc.compression_enabled_algorithms_bitset", 1)]  # grpc-accept-encoding: identity
    for options in (identity_only, []):
        with grpc.insecure_channel(server.address, options=options) as channel:
            page = chat_pb2_grpc.ChatServiceStub(channel).ListMessages(
                chat_pb2.ListMessagesRequest(conversation_id=conversation_id, page_size=200),
                metadata=person.client.md,
                timeout=10,
            )
        assert page.ByteSize() > 1024 and len(page.messages) == 30


def test_the_client_library_reads_large_pages_with_and_without_gzip(
    server: ServerProcess, person: Person, tmp_path: Path
) -> None:
    conversation_id = conversation_with_history(person, 30)
    for sent, accept_gzip in enumerate((True, False)):
        session = Session(server.address, accept_gzip=accept_gzip, token_store=FileTokenStore(tmp_path))
        try:
            session.login(person.user.username, person.password)
            request = chat_pb2.ListMessagesRequest(conversation_id=conversation_id, page_size=200)
            assert len(session.call(session.chat.ListMessages, request).messages) == 30 + sent
            # A large request, compressed on this call only.
            text = "x" * 1500
            send = chat_pb2.SendMessageRequest(conversation_id=conversation_id, text=text, request_id=uuid.uuid4().hex)
            reply = session.call(session.chat.SendMessage, send, compression=grpc.Compression.Gzip)
            assert reply.message.text == text
        finally:
            session.close()


def test_grpc_web_replies_are_never_compressed(gateway: GatewayProcess, person: Person) -> None:
    """Browsers' gRPC-Web libraries cannot read compressed frames: Envoy does not offer gzip on their behalf."""
    conversation_id = conversation_with_history(person, 40)
    frame = chat_pb2.ListMessagesRequest(conversation_id=conversation_id, page_size=200).SerializeToString()
    request = urllib.request.Request(
        gateway.url + "/workspace.v1.ChatService/ListMessages",
        data=b"\x00" + len(frame).to_bytes(4, "big") + frame,
        headers={
            "authorization": f"Bearer {person.client.access_token}",
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "grpc-accept-encoding": "identity,deflate,gzip",  # as a browser library might send it: ignored
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = reply.read()
    size = int.from_bytes(body[1:5], "big")
    assert body[0] == 0 and size > 1024  # a data frame, not compressed, larger than the server's threshold
    assert len(chat_pb2.ListMessagesResponse.FromString(body[5 : 5 + size]).messages) == 40


def test_a_rest_client_asking_for_compressed_grpc_still_gets_json(gateway: GatewayProcess, person: Person) -> None:
    """``grpc-accept-encoding`` from a REST or gRPC-Web client is dropped: Envoy could not read such replies."""
    conversation_id = conversation_with_history(person, 40)
    path = f"/v1/conversations/{conversation_id}/messages?page_size=200"
    status, _, body = get(gateway, path, person.client.access_token, **{"grpc-accept-encoding": "gzip"})
    assert status == 200 and len(json.loads(body)["messages"]) == 40
