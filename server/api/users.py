"""``workspace.v1.UsersService``."""

from __future__ import annotations

import grpc
from workspace.v1 import users_pb2, users_pb2_grpc

from ..auth.interceptor import caller
from ..domain import rules
from ..domain.errors import Validator
from ..domain.users import UPDATABLE_FIELDS, Directory
from . import paging
from .convert import ROLE_FROM_PROTO, check_id, user_to_proto


def _role(v: Validator, field: str, value: int, *, required: bool) -> object:
    if value == users_pb2.ROLE_UNSPECIFIED:
        v.check(not required, field, "is required")
        return None
    if value not in ROLE_FROM_PROTO:
        v.add(field, f"unknown role {value}")
        return None
    return ROLE_FROM_PROTO[value]


class UsersServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.CreateUserResponse:
        v = Validator()
        v.check(request.HasField("user"), "user", "is required")
        role = _role(v, "user.role", request.user.role, required=False)
        v.raise_if_any()
        user = await self._directory.create_user(
            caller(),
            username=request.user.username,
            display_name=request.user.display_name,
            role=role,
            password=request.password,  # type: ignore[arg-type]
        )
        return users_pb2.CreateUserResponse(user=user_to_proto(user))

    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.GetUserResponse:
        v = Validator()
        check_id(v, "user_id", request.user_id)
        v.raise_if_any()
        return users_pb2.GetUserResponse(user=user_to_proto(await self._directory.get_user(caller(), request.user_id)))

    async def ListUsers(
        self, request: users_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ListUsersResponse:
        v = Validator()
        size = paging.page_size(v, request.page_size)
        v.check(
            len(request.name_prefix) <= rules.NAME_PREFIX_MAX,
            "name_prefix",
            f"must be at most {rules.NAME_PREFIX_MAX} characters",
        )
        filters = {"prefix": request.name_prefix, "disabled": request.show_disabled}
        after = paging.decode_token(v, request.page_token, filters)
        v.raise_if_any()
        page = await self._directory.list_users(
            caller(), after_key=after, prefix=request.name_prefix, show_disabled=request.show_disabled, limit=size
        )
        token = paging.encode_token(page.next_after_key, filters) if page.next_after_key else ""
        return users_pb2.ListUsersResponse(users=[user_to_proto(u) for u in page.users], next_page_token=token)

    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.UpdateUserResponse:
        v = Validator()
        v.check(request.HasField("user"), "user", "is required")
        check_id(v, "user.id", request.user.id)
        paths = list(request.update_mask.paths)
        if v.check(
            bool(paths),
            "update_mask",
            f"is required: name the fields to change ({', '.join(sorted(UPDATABLE_FIELDS))})",
        ):
            for path in paths:
                v.check(
                    path in UPDATABLE_FIELDS,
                    "update_mask",
                    f"cannot update {path!r}; allowed: {', '.join(sorted(UPDATABLE_FIELDS))}",
                )
        changes: dict[str, object] = {}
        if "display_name" in paths:
            changes["display_name"] = request.user.display_name
        if "role" in paths:
            changes["role"] = _role(v, "user.role", request.user.role, required=True)
        if "disabled" in paths:
            changes["disabled"] = request.user.disabled
        v.raise_if_any()
        user = await self._directory.update_user(caller(), request.user.id, changes)
        return users_pb2.UpdateUserResponse(user=user_to_proto(user))

    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.DeleteUserResponse:
        v = Validator()
        check_id(v, "user_id", request.user_id)
        v.raise_if_any()
        await self._directory.delete_user(caller(), request.user_id)
        return users_pb2.DeleteUserResponse()

    async def ResetPassword(
        self, request: users_pb2.ResetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ResetPasswordResponse:
        v = Validator()
        check_id(v, "user_id", request.user_id)
        v.raise_if_any()
        ended = await self._directory.reset_password(caller(), request.user_id, request.new_password)
        return users_pb2.ResetPasswordResponse(sessions_ended=ended)
