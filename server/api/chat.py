"""``workspace.v1.ChatService``."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

import grpc
from workspace.v1 import chat_pb2, chat_pb2_grpc

from ..auth.interceptor import caller
from ..domain.chat import SEARCH_QUERY_MAX, Chat, check_emoji
from ..domain.errors import Validator
from ..domain.model import LiveEvent, StoredEvent
from ..events.streams import EventStreams, Heartbeat
from . import paging
from .convert import check_id, conversation_to_proto, event_to_proto, live_event_to_proto, message_to_proto


def _decode_after_conversation(v: Validator, token: str) -> tuple[datetime, int] | None:
    after = paging.decode_token(v, token, {"list": "conversations"})
    if after is None:
        return None
    at, _, conversation_id = after.rpartition("|")
    try:
        return datetime.fromisoformat(at), int(conversation_id)
    except ValueError:
        v.add("page_token", "is not a token this server issued")
        return None


#: Recent events whose stream response is kept, so fan-out converts each event once.
RESPONSE_CACHE_SIZE = 1024


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, chat: Chat, streams: EventStreams) -> None:
        self._chat = chat
        self._streams = streams
        #: the response for each recent event, built once however many streams send it (never mutated)
        self._responses: OrderedDict[int, chat_pb2.StreamEventsResponse] = OrderedDict()

    def _response(self, event: StoredEvent) -> chat_pb2.StreamEventsResponse:
        response = self._responses.get(event.id)
        if response is None:
            response = self._responses[event.id] = chat_pb2.StreamEventsResponse(event=event_to_proto(event))
            if len(self._responses) > RESPONSE_CACHE_SIZE:
                self._responses.popitem(last=False)
        return response

    async def CreateDirectConversation(
        self, request: chat_pb2.CreateDirectConversationRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.CreateDirectConversationResponse:
        v = Validator()
        check_id(v, "user_id", request.user_id)
        v.raise_if_any()
        actor = caller()
        conversation, created = await self._chat.create_direct(actor, request.user_id)
        view = await self._chat.get(actor, conversation.id)
        return chat_pb2.CreateDirectConversationResponse(
            conversation=conversation_to_proto(view.conversation, view), created=created
        )

    async def CreateGroupConversation(
        self, request: chat_pb2.CreateGroupConversationRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.CreateGroupConversationResponse:
        actor = caller()
        conversation = await self._chat.create_group(actor, request.name, list(request.member_ids))
        view = await self._chat.get(actor, conversation.id)
        return chat_pb2.CreateGroupConversationResponse(conversation=conversation_to_proto(view.conversation, view))

    async def GetConversation(
        self, request: chat_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.GetConversationResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        v.raise_if_any()
        view = await self._chat.get(caller(), request.conversation_id)
        return chat_pb2.GetConversationResponse(conversation=conversation_to_proto(view.conversation, view))

    async def ListConversations(
        self, request: chat_pb2.ListConversationsRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListConversationsResponse:
        v = Validator()
        size = paging.page_size(v, request.page_size)
        after = _decode_after_conversation(v, request.page_token)
        v.raise_if_any()
        page = await self._chat.list(caller(), after=after, limit=size)
        token = ""
        if page.next_after is not None:
            at, conversation_id = page.next_after
            token = paging.encode_token(f"{at.isoformat()}|{conversation_id}", {"list": "conversations"})
        return chat_pb2.ListConversationsResponse(
            conversations=[conversation_to_proto(view.conversation, view) for view in page.views],
            next_page_token=token,
            total_unread_count=page.total_unread,
        )

    async def SendMessage(
        self, request: chat_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.SendMessageResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        v.check(request.reply_to_message_id >= 0, "reply_to_message_id", "must be a message id, or 0 for none")
        self._chat.check_message(v, request.text, request.request_id)  # so every bad field is reported at once
        v.raise_if_any()
        sent = await self._chat.send(
            caller(),
            request.conversation_id,
            text=request.text,
            reply_to_id=request.reply_to_message_id or None,
            request_id=request.request_id,
        )
        return chat_pb2.SendMessageResponse(message=message_to_proto(sent.message), created=sent.created)

    async def ListMessages(
        self, request: chat_pb2.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListMessagesResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        size = paging.page_size(v, request.page_size)
        filters = {"conversation": request.conversation_id}
        before = paging.decode_id(v, request.page_token, filters)
        if request.around_message_id < 0:
            v.add("around_message_id", "must be a message id, or 0 for the newest messages")
        elif request.around_message_id and request.page_token:
            v.add("around_message_id", "cannot be combined with page_token")
        v.raise_if_any()
        if request.around_message_id:
            messages, more = await self._chat.messages_around(
                caller(), request.conversation_id, request.around_message_id, limit=size
            )
        else:
            messages, more = await self._chat.messages(caller(), request.conversation_id, before_id=before, limit=size)
        token = paging.encode_token(str(messages[-1].id), filters) if more else ""
        return chat_pb2.ListMessagesResponse(messages=[message_to_proto(m) for m in messages], next_page_token=token)

    async def MarkRead(
        self, request: chat_pb2.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.MarkReadResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        check_id(v, "message_id", request.message_id)
        v.raise_if_any()
        state = await self._chat.mark_read(caller(), request.conversation_id, request.message_id)
        return chat_pb2.MarkReadResponse(
            last_read_message_id=state.last_read_message_id,
            unread_count=state.unread_count,
            total_unread_count=state.total_unread,
        )

    async def EditMessage(
        self, request: chat_pb2.EditMessageRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.EditMessageResponse:
        v = Validator()
        check_id(v, "message_id", request.message_id)
        self._chat.check_text(v, request.text)
        v.raise_if_any()
        message = await self._chat.edit(caller(), request.message_id, request.text)
        return chat_pb2.EditMessageResponse(message=message_to_proto(message))

    async def DeleteMessage(
        self, request: chat_pb2.DeleteMessageRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.DeleteMessageResponse:
        v = Validator()
        check_id(v, "message_id", request.message_id)
        v.raise_if_any()
        message = await self._chat.delete(caller(), request.message_id)
        return chat_pb2.DeleteMessageResponse(message=message_to_proto(message))

    async def AddReaction(
        self, request: chat_pb2.AddReactionRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.AddReactionResponse:
        v = Validator()
        check_id(v, "message_id", request.message_id)
        check_emoji(v, request.emoji)
        v.raise_if_any()
        message = await self._chat.react(caller(), request.message_id, request.emoji, add=True)
        return chat_pb2.AddReactionResponse(message=message_to_proto(message))

    async def RemoveReaction(
        self, request: chat_pb2.RemoveReactionRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.RemoveReactionResponse:
        v = Validator()
        check_id(v, "message_id", request.message_id)
        check_emoji(v, request.emoji)
        v.raise_if_any()
        message = await self._chat.react(caller(), request.message_id, request.emoji, add=False)
        return chat_pb2.RemoveReactionResponse(message=message_to_proto(message))

    async def SearchMessages(
        self, request: chat_pb2.SearchMessagesRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.SearchMessagesResponse:
        v = Validator()
        query = request.query.strip()
        if not query:
            v.add("query", "is required: the text to find")
        elif len(query) > SEARCH_QUERY_MAX:
            v.add("query", f"must be at most {SEARCH_QUERY_MAX} characters")
        size = paging.page_size(v, request.page_size)
        filters = {"search": query}
        before = paging.decode_id(v, request.page_token, filters)
        v.raise_if_any()
        messages, more = await self._chat.search(caller(), query, before_id=before, limit=size)
        token = paging.encode_token(str(messages[-1].id), filters) if more else ""
        return chat_pb2.SearchMessagesResponse(messages=[message_to_proto(m) for m in messages], next_page_token=token)

    async def AddMembers(
        self, request: chat_pb2.AddMembersRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.AddMembersResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        v.raise_if_any()
        actor = caller()
        await self._chat.add_members(actor, request.conversation_id, list(request.user_ids))
        view = await self._chat.get(actor, request.conversation_id)
        return chat_pb2.AddMembersResponse(conversation=conversation_to_proto(view.conversation, view))

    async def RemoveMember(
        self, request: chat_pb2.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.RemoveMemberResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        check_id(v, "user_id", request.user_id)
        v.raise_if_any()
        await self._chat.remove_member(caller(), request.conversation_id, request.user_id)
        return chat_pb2.RemoveMemberResponse()

    async def LeaveConversation(
        self, request: chat_pb2.LeaveConversationRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.LeaveConversationResponse:
        v = Validator()
        check_id(v, "conversation_id", request.conversation_id)
        v.raise_if_any()
        actor = caller()
        await self._chat.remove_member(actor, request.conversation_id, actor.user_id)
        return chat_pb2.LeaveConversationResponse()

    async def StreamEvents(self, request: chat_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext) -> None:
        v = Validator()
        v.check(request.after_event_id >= 0, "after_event_id", "must be an event id, or 0 to start live")
        v.raise_if_any()
        # Written with context.write, not yielded: a yielded message would pass through every interceptor's
        # generator on its way out, and a stream may carry thousands a second.
        #
        # A reader that stops reading blocks a write here until it reads again or goes away; meanwhile the
        # hub ends its subscription when the queue fills, and the next item after the blocked one raises
        # STREAM_TOO_SLOW with the id of the last event written, which is the last one the client gets.
        async with self._streams.open(caller(), request.after_event_id) as (_, items):
            async for item in items:
                if isinstance(item, Heartbeat):
                    beat = chat_pb2.Heartbeat(last_event_id=item.last_event_id, live=item.live)
                    response = chat_pb2.StreamEventsResponse(event=chat_pb2.Event(heartbeat=beat))
                    response.event.create_time.GetCurrentTime()
                    await context.write(response)
                elif isinstance(item, LiveEvent):
                    await context.write(chat_pb2.StreamEventsResponse(event=live_event_to_proto(item)))
                else:
                    await context.write(self._response(item))
