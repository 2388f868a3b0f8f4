"""``workspace.v1.AuthService``."""

from __future__ import annotations

import grpc
from workspace.v1 import auth_pb2, auth_pb2_grpc

from ..auth.interceptor import caller
from ..domain.sessions import Sessions
from .convert import tokens_to_proto, user_to_proto


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def Login(self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext) -> auth_pb2.LoginResponse:
        result = await self._sessions.login(request.username, request.password)
        return auth_pb2.LoginResponse(tokens=tokens_to_proto(result.tokens), user=user_to_proto(result.user))

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RefreshResponse:
        return auth_pb2.RefreshResponse(tokens=tokens_to_proto(await self._sessions.refresh(request.refresh_token)))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        await self._sessions.logout(caller())
        return auth_pb2.LogoutResponse()

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.WhoAmIResponse:
        return auth_pb2.WhoAmIResponse(user=user_to_proto(caller().user))

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ChangePasswordResponse:
        await self._sessions.change_password(caller(), request.old_password, request.new_password)
        return auth_pb2.ChangePasswordResponse()
