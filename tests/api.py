"""A small test client over the generated stubs, and assertions on rich gRPC errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from workspace.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    presence_pb2,
    presence_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)


class Client:
    """One person's connection: stubs plus the tokens of their session."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.users = users_pb2_grpc.UsersServiceStub(self.channel)
        self.chat = chat_pb2_grpc.ChatServiceStub(self.channel)
        self.presence = presence_pb2_grpc.PresenceServiceStub(self.channel)
        self.access_token = ""
        self.refresh_token = ""
        self.user: users_pb2.User | None = None

    def login(self, username: str, password: str, timeout: float = 10) -> auth_pb2.LoginResponse:
        reply = self.auth.Login(auth_pb2.LoginRequest(username=username, password=password), timeout=timeout)
        self.access_token, self.refresh_token = reply.tokens.access_token, reply.tokens.refresh_token
        self.user = reply.user
        return reply

    def refresh(self, timeout: float = 10) -> auth_pb2.RefreshResponse:
        reply = self.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=self.refresh_token), timeout=timeout)
        self.access_token, self.refresh_token = reply.tokens.access_token, reply.tokens.refresh_token
        return reply

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.access_token}"),)

    def whoami(self, timeout: float = 10) -> users_pb2.User:
        return self.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=self.md, timeout=timeout).user

    def close(self) -> None:
        self.channel.close()


@dataclass
class Person:
    user: users_pb2.User
    password: str
    client: Client


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_person(admin: Client, address: str, *, role: int = users_pb2.ROLE_USER, display_name: str = "") -> Person:
    password = f"pw-{uuid.uuid4().hex}"
    user = admin.users.CreateUser(
        users_pb2.CreateUserRequest(
            user=users_pb2.User(username=unique_name(), display_name=display_name, role=role), password=password
        ),
        metadata=admin.md,
        timeout=10,
    ).user
    client = Client(address)
    client.login(user.username, password)
    return Person(user, password, client)


def expect_error(code: grpc.StatusCode, call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """Call and return the error, failing if it succeeds or fails with another code."""
    if isinstance(call, grpc.UnaryUnaryMultiCallable):
        kwargs.setdefault("timeout", 10)  # a hung server fails the test instead of hanging the suite
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    error = info.value
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    return error


def rich_details(error: grpc.RpcError) -> list[Any]:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailing metadata"
    unpacked = []
    for detail in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def violations(error: grpc.RpcError) -> dict[str, str]:
    """field -> reason from the google.rpc.BadRequest detail of an INVALID_ARGUMENT error."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    bad = [d for d in rich_details(error) if isinstance(d, error_details_pb2.BadRequest)]
    assert bad, "INVALID_ARGUMENT without a google.rpc.BadRequest detail"
    return {v.field: v.description for v in bad[0].field_violations}


def reason(error: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason of a Workspace error."""
    info = [d for d in rich_details(error) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info, "no google.rpc.ErrorInfo detail"
    assert info[0].domain == "workspace.v1"
    return info[0].reason


# --- chat ---------------------------------------------------------------------------------------------


def disable(admin: Client, user_id: int) -> None:
    request = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=user_id, disabled=True), update_mask={"paths": ["disabled"]}
    )
    admin.users.UpdateUser(request, metadata=admin.md, timeout=10)


def direct(client: Client, user_id: int) -> chat_pb2.CreateDirectConversationResponse:
    """The direct conversation between the client's person and ``user_id``."""
    request = chat_pb2.CreateDirectConversationRequest(user_id=user_id)
    return client.chat.CreateDirectConversation(request, metadata=client.md, timeout=10)


def group(client: Client, name: str, member_ids: Sequence[int] = ()) -> chat_pb2.Conversation:
    """A new group conversation created by the client's person."""
    request = chat_pb2.CreateGroupConversationRequest(name=name, member_ids=list(member_ids))
    return client.chat.CreateGroupConversation(request, metadata=client.md, timeout=10).conversation


def send(
    client: Client, conversation_id: int, text: str, request_id: str | None = None, reply_to_message_id: int = 0
) -> chat_pb2.SendMessageResponse:
    """Post a message; a fresh request id unless one is given (to retry)."""
    request = chat_pb2.SendMessageRequest(
        conversation_id=conversation_id,
        text=text,
        reply_to_message_id=reply_to_message_id,
        request_id=uuid.uuid4().hex if request_id is None else request_id,
    )
    return client.chat.SendMessage(request, metadata=client.md, timeout=10)


def conversation(client: Client, conversation_id: int) -> chat_pb2.Conversation:
    request = chat_pb2.GetConversationRequest(conversation_id=conversation_id)
    return client.chat.GetConversation(request, metadata=client.md, timeout=10).conversation


def list_conversations(client: Client, page_size: int = 0, page_token: str = "") -> chat_pb2.ListConversationsResponse:
    request = chat_pb2.ListConversationsRequest(page_size=page_size, page_token=page_token)
    return client.chat.ListConversations(request, metadata=client.md, timeout=10)


def list_messages(
    client: Client, conversation_id: int, page_size: int = 0, page_token: str = "", around_message_id: int = 0
) -> chat_pb2.ListMessagesResponse:
    request = chat_pb2.ListMessagesRequest(
        conversation_id=conversation_id,
        page_size=page_size,
        page_token=page_token,
        around_message_id=around_message_id,
    )
    return client.chat.ListMessages(request, metadata=client.md, timeout=10)


def all_messages(client: Client, conversation_id: int, page_size: int = 0) -> list[chat_pb2.Message]:
    """Every message of a conversation, newest first, page after page."""
    seen, token = [], ""
    while True:
        page = list_messages(client, conversation_id, page_size=page_size, page_token=token)
        seen += page.messages
        token = page.next_page_token
        if not token:
            return seen


def mark_read(client: Client, conversation_id: int, message_id: int) -> chat_pb2.MarkReadResponse:
    request = chat_pb2.MarkReadRequest(conversation_id=conversation_id, message_id=message_id)
    return client.chat.MarkRead(request, metadata=client.md, timeout=10)


def edit(client: Client, message_id: int, text: str) -> chat_pb2.Message:
    request = chat_pb2.EditMessageRequest(message_id=message_id, text=text)
    return client.chat.EditMessage(request, metadata=client.md, timeout=10).message


def delete_message(client: Client, message_id: int) -> chat_pb2.Message:
    """Delete a message; returns its tombstone."""
    request = chat_pb2.DeleteMessageRequest(message_id=message_id)
    return client.chat.DeleteMessage(request, metadata=client.md, timeout=10).message


def add_reaction(client: Client, message_id: int, emoji: str) -> chat_pb2.Message:
    request = chat_pb2.AddReactionRequest(message_id=message_id, emoji=emoji)
    return client.chat.AddReaction(request, metadata=client.md, timeout=10).message


def remove_reaction(client: Client, message_id: int, emoji: str) -> chat_pb2.Message:
    request = chat_pb2.RemoveReactionRequest(message_id=message_id, emoji=emoji)
    return client.chat.RemoveReaction(request, metadata=client.md, timeout=10).message


def search(client: Client, query: str, page_size: int = 0, page_token: str = "") -> chat_pb2.SearchMessagesResponse:
    request = chat_pb2.SearchMessagesRequest(query=query, page_size=page_size, page_token=page_token)
    return client.chat.SearchMessages(request, metadata=client.md, timeout=10)


def add_members(client: Client, conversation_id: int, user_ids: Sequence[int]) -> chat_pb2.Conversation:
    request = chat_pb2.AddMembersRequest(conversation_id=conversation_id, user_ids=list(user_ids))
    return client.chat.AddMembers(request, metadata=client.md, timeout=30).conversation


def remove_member(client: Client, conversation_id: int, user_id: int) -> None:
    request = chat_pb2.RemoveMemberRequest(conversation_id=conversation_id, user_id=user_id)
    client.chat.RemoveMember(request, metadata=client.md, timeout=10)


def leave(client: Client, conversation_id: int) -> None:
    request = chat_pb2.LeaveConversationRequest(conversation_id=conversation_id)
    client.chat.LeaveConversation(request, metadata=client.md, timeout=10)


# --- presence -----------------------------------------------------------------------------------------


def get_presence(client: Client, user_ids: Sequence[int]) -> list[presence_pb2.Presence]:
    request = presence_pb2.GetPresenceRequest(user_ids=list(user_ids))
    return list(client.presence.GetPresence(request, metadata=client.md, timeout=10).presences)


def presence_of(client: Client, user_id: int) -> presence_pb2.Presence:
    """One person's presence, as the client's person sees it."""
    (found,) = get_presence(client, [user_id])
    assert found.user_id == user_id, found
    return found


def update_presence(
    client: Client, paths: Sequence[str], state: int = 0, status_text: str = ""
) -> presence_pb2.Presence:
    """Change the fields named in ``paths`` of the caller's presence; returns the presence afterwards."""
    request = presence_pb2.UpdatePresenceRequest(
        presence=presence_pb2.Presence(state=state, status_text=status_text), update_mask={"paths": list(paths)}
    )
    return client.presence.UpdatePresence(request, metadata=client.md, timeout=10).presence


def send_typing(client: Client, conversation_id: int) -> None:
    request = presence_pb2.SendTypingRequest(conversation_id=conversation_id)
    client.presence.SendTyping(request, metadata=client.md, timeout=10)


# --- people and devices -----------------------------------------------------------------------------


class HasAddress(Protocol):
    address: str


def people(admin: Client, server: HasAddress, count: int) -> list[Person]:
    """``count`` new people, each logged in on a client of their own."""
    return [create_person(admin, server.address) for _ in range(count)]


def log_in(address: str, username: str, password: str) -> Client:
    client = Client(address)
    client.login(username, password)
    return client


def another_device(server: HasAddress, person: Person) -> Client:
    """The same person, logged in a second time: another session, another device."""
    return log_in(server.address, person.user.username, person.password)


def every_rpc() -> list[tuple[str, Any]]:
    """(``/package.Service/Method``, method descriptor) of every RPC of every workspace.v1 service, from the
    descriptors: a test parametrised by it covers an RPC the day it is added."""
    from google.protobuf import descriptor_pool

    from server.app import SERVICE_NAMES

    pool = descriptor_pool.Default()
    return [(f"/{s}/{m.name}", m) for s in SERVICE_NAMES for m in pool.FindServiceByName(s).methods]


def call_raw(
    channel: grpc.Channel, path: str, method: Any, payload: bytes, metadata: Sequence[tuple[str, str]], timeout: float
) -> grpc.RpcError | None:
    """Send ``payload`` (bytes) as the request of ``path``; for a stream, read its first message. None: it answered."""
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    rpc = kind(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        reply = rpc(payload, metadata=metadata, timeout=timeout)
        if method.server_streaming:
            next(iter(reply))
            reply.cancel()
    except grpc.RpcError as error:
        return error
    return None
