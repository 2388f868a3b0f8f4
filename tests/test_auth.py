"""Logging in, tokens, sessions: what a person and an attacker see."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from workspace.v1 import auth_pb2, chat_pb2, presence_pb2, users_pb2

from .api import Client, Person, create_person, expect_error, reason, rich_details, unique_name, violations
from .servers import JWT_SECRET, ServerProcess, wait_until

OK_PASSWORD = "correct horse battery"


def test_login_returns_a_token_pair_that_opens_the_other_services(server: ServerProcess, admin: Client) -> None:
    person = create_person(admin, server.address, display_name="Ada Lovelace")
    reply = person.client.login(person.user.username, person.password)

    assert reply.tokens.access_token and reply.tokens.refresh_token
    now = time.time()
    assert 14 * 60 < reply.tokens.access_token_expire_time.seconds - now <= 15 * 60 + 5
    assert 6.9 * 86400 < reply.tokens.refresh_token_expire_time.seconds - now <= 7 * 86400 + 5
    assert reply.user.username == person.user.username and reply.user.display_name == "Ada Lovelace"
    me = person.client.whoami()
    assert me.id == person.user.id and me.role == users_pb2.ROLE_USER
    assert me.HasField("last_login_time")


def test_username_is_matched_without_regard_to_case(server: ServerProcess, admin: Client) -> None:
    person = create_person(admin, server.address)
    reply = Client(server.address).login(person.user.username.upper(), person.password)
    assert reply.user.id == person.user.id


def test_wrong_password_and_unknown_user_get_the_same_answer(server: ServerProcess, person: Person) -> None:
    client = Client(server.address)
    wrong = expect_error(grpc.StatusCode.UNAUTHENTICATED, client.login, person.user.username, "not-the-password")
    unknown = expect_error(grpc.StatusCode.UNAUTHENTICATED, client.login, unique_name("ghost"), "not-the-password")
    assert wrong.details() == unknown.details() == "wrong username or password"
    assert reason(wrong) == reason(unknown) == "WRONG_CREDENTIALS"


def test_repeated_failures_throttle_the_username_with_a_retry_delay(server: ServerProcess, person: Person) -> None:
    client = Client(server.address)
    for _ in range(5):  # WORKSPACE_LOGIN_MAX_FAILURES defaults to 5
        expect_error(grpc.StatusCode.UNAUTHENTICATED, client.login, person.user.username, "guess")
    # Now even the right password is refused, with a delay to wait.
    error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, client.login, person.user.username, person.password)
    retry = [d for d in rich_details(error) if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry and 0 < retry[0].retry_delay.ToTimedelta().total_seconds() <= 60
    assert "try again" in error.details() and reason(error) == "LOGIN_THROTTLED"
    # Another account is not affected.
    expect_error(grpc.StatusCode.UNAUTHENTICATED, client.login, unique_name("other"), "guess")


def test_unknown_usernames_are_throttled_too(server: ServerProcess) -> None:
    client, ghost = Client(server.address), unique_name("ghost")
    for _ in range(5):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, client.login, ghost, "guess")
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, client.login, ghost, "guess")


def test_refresh_rotates_and_the_new_tokens_work(server: ServerProcess, person: Person) -> None:
    client = person.client
    first_refresh = client.refresh_token
    reply = client.refresh()
    assert reply.tokens.refresh_token != first_refresh
    assert client.whoami().id == person.user.id
    client.refresh()  # the successor works once, too
    assert client.whoami().id == person.user.id


def test_reusing_a_refresh_token_ends_the_whole_session(server: ServerProcess, person: Person) -> None:
    client = person.client
    stolen = client.refresh_token
    client.refresh()  # the owner rotates; `stolen` is now spent
    thief = Client(server.address)
    thief.refresh_token = stolen
    error = expect_error(grpc.StatusCode.UNAUTHENTICATED, thief.refresh)
    assert "already used" in error.details() and reason(error) == "REFRESH_TOKEN_REUSED"
    # The owner's current tokens died with the family: both the refresh and the access token.
    expect_error(grpc.StatusCode.UNAUTHENTICATED, client.refresh)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, client.whoami)
    # Other sessions of the same person are untouched.
    other = Client(server.address)
    other.login(person.user.username, person.password)
    assert other.whoami().id == person.user.id


def test_a_just_rotated_token_is_honoured_briefly_when_grace_is_on(start_server) -> None:
    server = start_server(WORKSPACE_REFRESH_REUSE_GRACE="60")
    admin = Client(server.address)
    admin.login("admin", "admin-password-for-tests")
    person = create_person(admin, server.address)
    client = person.client
    lost_response_token = client.refresh_token
    first = client.refresh()  # pretend this response never arrived
    client.refresh_token = lost_response_token
    second = client.refresh()  # the retry gets a fresh successor in the same session
    assert second.tokens.refresh_token != first.tokens.refresh_token
    assert client.whoami().id == person.user.id
    # The successor that was never delivered is void ...
    ghost = Client(server.address)
    ghost.refresh_token = first.tokens.refresh_token
    expect_error(grpc.StatusCode.UNAUTHENTICATED, ghost.refresh)
    # ... and once the chain moved on, presenting the old token again is theft.
    client.refresh()
    replay = Client(server.address)
    replay.refresh_token = lost_response_token
    expect_error(grpc.StatusCode.UNAUTHENTICATED, replay.refresh)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, client.whoami)


def test_a_token_that_worked_still_expires_on_time(start_server) -> None:
    """The server remembers tokens whose signature it checked, but never past their expiry (+5 s leeway)."""
    server = start_server(WORKSPACE_ACCESS_TOKEN_TTL="1")
    admin = Client(server.address)
    admin.login("admin", "admin-password-for-tests")
    assert admin.whoami().username == "admin"  # verified once, remembered

    def refused() -> bool:
        try:
            admin.whoami()
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            return reason(error) == "TOKEN_EXPIRED"
        return False

    wait_until(refused, timeout=20)
    admin.refresh()  # the refresh token outlives it, and the new access token works
    assert admin.whoami().username == "admin"


def test_logout_ends_access_and_refresh_tokens(server: ServerProcess, person: Person) -> None:
    client = person.client
    client.auth.Logout(auth_pb2.LogoutRequest(), metadata=client.md, timeout=10)
    error = expect_error(grpc.StatusCode.UNAUTHENTICATED, client.whoami)
    assert "log in again" in error.details()
    expect_error(grpc.StatusCode.UNAUTHENTICATED, client.refresh)


def test_change_password_keeps_this_session_and_ends_the_others(server: ServerProcess, person: Person) -> None:
    laptop, phone = person.client, Client(server.address)
    phone.login(person.user.username, person.password)
    laptop.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(old_password=person.password, new_password=OK_PASSWORD),
        metadata=laptop.md,
        timeout=10,
    )
    assert laptop.whoami().id == person.user.id
    expect_error(grpc.StatusCode.UNAUTHENTICATED, phone.whoami)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, phone.refresh)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, Client(server.address).login, person.user.username, person.password)
    assert Client(server.address).login(person.user.username, OK_PASSWORD).user.id == person.user.id


def test_change_password_rejects_a_wrong_old_password_and_weak_new_ones(person: Person) -> None:
    client = person.client

    def change(old: str, new: str) -> None:
        client.auth.ChangePassword(
            auth_pb2.ChangePasswordRequest(old_password=old, new_password=new), metadata=client.md, timeout=10
        )

    assert "old_password" in violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, change, "wrong", OK_PASSWORD))
    assert (
        violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, change, person.password, "short"))["new_password"]
        == "must be at least 8 characters"
    )
    assert (
        "at most 1024 bytes"
        in violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, change, person.password, "x" * 1025))[
            "new_password"
        ]
    )
    assert set(violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, change, "", ""))) == {
        "old_password",
        "new_password",
    }
    assert (
        "differ"
        in violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, change, person.password, person.password))[
            "new_password"
        ]
    )
    assert client.whoami().id == person.user.id  # nothing was lost


def test_a_disabled_account_can_neither_log_in_nor_refresh(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    admin.users.UpdateUser(
        users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=person.user.id, disabled=True), update_mask={"paths": ["disabled"]}
        ),
        metadata=admin.md,
        timeout=10,
    )
    expect_error(grpc.StatusCode.UNAUTHENTICATED, person.client.whoami)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, person.client.refresh)
    error = expect_error(
        grpc.StatusCode.PERMISSION_DENIED, Client(server.address).login, person.user.username, person.password
    )
    assert "disabled" in error.details() and reason(error) == "ACCOUNT_DISABLED"


@pytest.mark.parametrize(
    ("username", "password", "field", "reason"),
    [
        ("", "whatever-password", "username", "is required"),
        ("x" * 33, "whatever-password", "username", "must be at most 32 characters"),
        ("ab", "whatever-password", "username", "must be at least 3 characters"),
        ("bad name!", "whatever-password", "username", "may contain only lower-case letters, digits, '.', '_' and '-'"),
        ("someone", "", "password", "is required"),
        ("someone", "p" * 1025, "password", "must be at most 1024 bytes"),
        ("someone", "é" * 513, "password", "must be at most 1024 bytes"),
    ],
)
def test_login_rejects_malformed_input(
    server: ServerProcess, username: str, password: str, field: str, reason: str
) -> None:
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, Client(server.address).login, username, password)
    assert violations(error) == {field: reason}


@pytest.mark.parametrize(
    ("token", "code", "field"),
    [
        ("", grpc.StatusCode.INVALID_ARGUMENT, "refresh_token"),
        ("t" * 257, grpc.StatusCode.INVALID_ARGUMENT, "refresh_token"),
        ("not-a-token-we-issued", grpc.StatusCode.UNAUTHENTICATED, None),
    ],
)
def test_refresh_rejects_missing_oversized_and_unknown_tokens(server: ServerProcess, token: str, code, field) -> None:
    client = Client(server.address)
    client.refresh_token = token
    error = expect_error(code, client.refresh)
    if field:
        assert field in violations(error)


# --- the token on every authenticated RPC ---------------------------------------------------------

AUTHENTICATED_RPCS = [
    ("auth", "WhoAmI", auth_pb2.WhoAmIRequest()),
    ("auth", "Logout", auth_pb2.LogoutRequest()),
    ("auth", "ChangePassword", auth_pb2.ChangePasswordRequest(old_password="a-password", new_password="b-password")),
    ("users", "CreateUser", users_pb2.CreateUserRequest(user=users_pb2.User(username="nobody"), password="p" * 10)),
    ("users", "GetUser", users_pb2.GetUserRequest(user_id=1)),
    ("users", "ListUsers", users_pb2.ListUsersRequest()),
    (
        "users",
        "UpdateUser",
        users_pb2.UpdateUserRequest(user=users_pb2.User(id=1), update_mask={"paths": ["display_name"]}),
    ),
    ("users", "DeleteUser", users_pb2.DeleteUserRequest(user_id=1)),
    ("chat", "CreateDirectConversation", chat_pb2.CreateDirectConversationRequest(user_id=1)),
    ("chat", "CreateGroupConversation", chat_pb2.CreateGroupConversationRequest(name="team", member_ids=[1])),
    ("chat", "GetConversation", chat_pb2.GetConversationRequest(conversation_id=1)),
    ("chat", "ListConversations", chat_pb2.ListConversationsRequest()),
    (
        "chat",
        "SendMessage",
        chat_pb2.SendMessageRequest(conversation_id=1, text="hello", request_id="0123456789abcdef"),
    ),
    ("chat", "ListMessages", chat_pb2.ListMessagesRequest(conversation_id=1)),
    ("chat", "MarkRead", chat_pb2.MarkReadRequest(conversation_id=1, message_id=1)),
    ("chat", "EditMessage", chat_pb2.EditMessageRequest(message_id=1, text="hello")),
    ("chat", "DeleteMessage", chat_pb2.DeleteMessageRequest(message_id=1)),
    ("chat", "AddReaction", chat_pb2.AddReactionRequest(message_id=1, emoji="👍")),
    ("chat", "RemoveReaction", chat_pb2.RemoveReactionRequest(message_id=1, emoji="👍")),
    ("chat", "SearchMessages", chat_pb2.SearchMessagesRequest(query="hello")),
    ("chat", "AddMembers", chat_pb2.AddMembersRequest(conversation_id=1, user_ids=[1])),
    ("chat", "RemoveMember", chat_pb2.RemoveMemberRequest(conversation_id=1, user_id=1)),
    ("chat", "LeaveConversation", chat_pb2.LeaveConversationRequest(conversation_id=1)),
    ("presence", "GetPresence", presence_pb2.GetPresenceRequest(user_ids=[1])),
    (
        "presence",
        "UpdatePresence",
        presence_pb2.UpdatePresenceRequest(
            presence=presence_pb2.Presence(state=presence_pb2.PRESENCE_STATE_AWAY), update_mask={"paths": ["state"]}
        ),
    ),
    ("presence", "SendTyping", presence_pb2.SendTypingRequest(conversation_id=1)),
]


def _forged(secret: str, **claims: object) -> str:
    now = int(time.time())
    base = {"iss": "workspace", "sub": "1", "sid": "0" * 32, "role": "admin", "iat": now, "exp": now + 600}
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


BAD_TOKENS = {
    "missing": None,
    "empty bearer": "Bearer ",
    "not a jwt": "Bearer not.a.jwt",
    "other scheme": "Basic YWRtaW46YWRtaW4=",
    "signed with another key": "Bearer " + _forged("another-secret-0123456789-0123456789"),
    "expired": "Bearer " + _forged(JWT_SECRET, iat=int(time.time()) - 3600, exp=int(time.time()) - 1800),
    "unknown session": "Bearer " + _forged(JWT_SECRET),
    "alg none": "Bearer "
    + jwt.encode({"iss": "workspace", "sub": "1", "sid": "x", "exp": 2**33, "iat": 0}, None, algorithm="none"),
}


@pytest.mark.parametrize(
    "service,method,request_message", AUTHENTICATED_RPCS, ids=[m for _, m, _ in AUTHENTICATED_RPCS]
)
@pytest.mark.parametrize("case", BAD_TOKENS)
def test_every_authenticated_rpc_refuses_a_bad_token(
    server: ServerProcess, service, method, request_message, case
) -> None:
    client = Client(server.address)
    header = BAD_TOKENS[case]
    metadata = () if header is None else (("authorization", header),)
    error = expect_error(
        grpc.StatusCode.UNAUTHENTICATED, getattr(getattr(client, service), method), request_message, metadata=metadata
    )
    expected_reason = {
        "missing": "TOKEN_MISSING",
        "empty bearer": "TOKEN_MISSING",
        "other scheme": "TOKEN_MISSING",
        "expired": "TOKEN_EXPIRED",
        "unknown session": "SESSION_ENDED",
    }.get(case, "TOKEN_INVALID")
    assert reason(error) == expected_reason  # a client refreshes on TOKEN_EXPIRED, logs in again otherwise
    if case == "expired":
        assert "expired" in error.details()


def test_a_forged_admin_claim_does_not_make_an_admin(server: ServerProcess, person: Person) -> None:
    """Roles come from the account, not from what the token claims."""
    claims = jwt.decode(person.client.access_token, JWT_SECRET, algorithms=["HS256"], issuer="workspace")
    assert claims["role"] == "user"
    forged = _forged(JWT_SECRET, sub=claims["sub"], sid=claims["sid"], role="admin")
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        person.client.users.CreateUser,
        users_pb2.CreateUserRequest(user=users_pb2.User(username=unique_name()), password="p" * 10),
        metadata=(("authorization", f"Bearer {forged}"),),
    )


def test_a_session_ended_on_one_replica_is_refused_by_another(
    server: ServerProcess, start_server, person: Person
) -> None:
    """Two replicas on one database: the other replica re-checks sessions (cache off here, 5 s by default)."""
    replica = start_server(server.database_url, WORKSPACE_AUTH_CACHE_SECONDS="0")
    elsewhere = Client(replica.address)
    elsewhere.access_token = person.client.access_token
    assert elsewhere.whoami().id == person.user.id
    person.client.auth.Logout(auth_pb2.LogoutRequest(), metadata=person.client.md, timeout=10)
    wait_until(lambda: _refused(elsewhere), 5, "the other replica to refuse the ended session")


def _refused(client: Client) -> bool:
    try:
        client.whoami()
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAUTHENTICATED
    return False
