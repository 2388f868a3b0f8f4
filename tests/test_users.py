"""The directory and account administration, as an admin and as an ordinary person see them."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from workspace.v1 import activity_pb2, activity_pb2_grpc, users_pb2

from .api import Client, Person, expect_error, reason, unique_name, violations
from .servers import ADMIN_PASSWORD, ServerProcess


def create(client: Client, username: str, password: str = "a-good-password", **fields) -> users_pb2.User:
    request = users_pb2.CreateUserRequest(user=users_pb2.User(username=username, **fields), password=password)
    return client.users.CreateUser(request, metadata=client.md, timeout=10).user


def update(client: Client, user: users_pb2.User, *paths: str) -> users_pb2.User:
    request = users_pb2.UpdateUserRequest(user=user, update_mask=FieldMask(paths=list(paths)))
    return client.users.UpdateUser(request, metadata=client.md, timeout=10).user


def list_users(client: Client, **fields) -> users_pb2.ListUsersResponse:
    return client.users.ListUsers(users_pb2.ListUsersRequest(**fields), metadata=client.md, timeout=10)


def test_an_admin_creates_an_account_that_can_log_in(server: ServerProcess, admin: Client) -> None:
    name = unique_name()
    user = create(admin, name.upper(), display_name="  Grace Hopper  ", role=users_pb2.ROLE_ADMIN)
    assert user.id > 0 and user.username == name  # stored folded
    assert user.display_name == "Grace Hopper" and user.role == users_pb2.ROLE_ADMIN and not user.disabled
    assert user.create_time.seconds > 0 and not user.HasField("last_login_time")
    assert Client(server.address).login(name, "a-good-password").user.id == user.id


def test_display_name_defaults_to_the_username(admin: Client) -> None:
    name = unique_name()
    assert create(admin, name).display_name == name


def test_usernames_are_unique_without_regard_to_case(admin: Client) -> None:
    name = unique_name()
    create(admin, name)
    error = expect_error(grpc.StatusCode.ALREADY_EXISTS, create, admin, name.upper())
    assert "taken" in error.details() and reason(error) == "USERNAME_TAKEN"


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        ({}, "a-good-password", {"user.username": "is required"}),
        ({"username": "ab"}, "a-good-password", {"user.username": "must be at least 3 characters"}),
        ({"username": "u" * 33}, "a-good-password", {"user.username": "must be at most 32 characters"}),
        (
            {"username": "has space"},
            "a-good-password",
            {"user.username": "may contain only lower-case letters, digits, '.', '_' and '-'"},
        ),
        (
            {"username": "newline\n"},
            "a-good-password",
            {"user.username": "may contain only lower-case letters, digits, '.', '_' and '-'"},
        ),
        (
            {"username": "fine-name", "display_name": "d" * 101},
            "a-good-password",
            {"user.display_name": "must be at most 100 characters"},
        ),
        (
            {"username": "fine-name", "display_name": "two\nlines"},
            "a-good-password",
            {"user.display_name": "must not contain control characters"},
        ),
        ({"username": "fine-name"}, "", {"password": "is required"}),
        ({"username": "fine-name"}, "short", {"password": "must be at least 8 characters"}),
        ({"username": "fine-name"}, "p" * 1025, {"password": "must be at most 1024 bytes"}),
        ({"username": "fine-name", "role": 7}, "a-good-password", {"user.role": "unknown role 7"}),
        ({"username": ""}, "", {"user.username": "is required", "password": "is required"}),
    ],
)
def test_create_user_reports_every_bad_field(admin: Client, user: dict, password: str, expected: dict) -> None:
    request = users_pb2.CreateUserRequest(user=users_pb2.User(**user), password=password)
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, admin.users.CreateUser, request, metadata=admin.md)
    assert violations(error) == expected


def test_create_user_without_a_user_is_invalid(admin: Client) -> None:
    request = users_pb2.CreateUserRequest(password="a-good-password")
    assert violations(
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, admin.users.CreateUser, request, metadata=admin.md)
    ) == {"user": "is required"}


def test_ordinary_people_cannot_administer_accounts(person: Person, admin: Client) -> None:
    other = create(admin, unique_name())
    client = person.client
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, create, client, unique_name())
    assert "administrators" in error.details() and reason(error) == "PERMISSION_DENIED"
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED, update, client, users_pb2.User(id=other.id, display_name="x"), "display_name"
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        update,
        client,
        users_pb2.User(id=person.user.id, role=users_pb2.ROLE_ADMIN),
        "role",
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED, update, client, users_pb2.User(id=person.user.id, disabled=True), "disabled"
    )
    expect_error(
        grpc.StatusCode.PERMISSION_DENIED,
        client.users.DeleteUser,
        users_pb2.DeleteUserRequest(user_id=other.id),
        metadata=client.md,
    )
    assert client.users.GetUser(users_pb2.GetUserRequest(user_id=other.id), metadata=client.md).user.id == other.id


def test_anyone_may_rename_themselves(person: Person) -> None:
    renamed = update(person.client, users_pb2.User(id=person.user.id, display_name=" Ada L. "), "display_name")
    assert renamed.display_name == "Ada L."
    assert person.client.whoami().display_name == "Ada L."
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        update,
        person.client,
        users_pb2.User(id=person.user.id, display_name="  "),
        "display_name",
    )
    assert violations(error) == {"user.display_name": "must not be empty"}


@pytest.mark.parametrize(
    ("paths", "user", "expected"),
    [
        ([], {"id": 1}, "update_mask"),
        (["username"], {"id": 1}, "update_mask"),
        (["password_hash"], {"id": 1}, "update_mask"),
        (["display_name"], {}, "user.id"),
        (["role"], {"id": 1, "role": 0}, "user.role"),
        (["role"], {"id": 1, "role": 9}, "user.role"),
    ],
)
def test_update_user_rejects_bad_masks_and_values(admin: Client, paths: list[str], user: dict, expected: str) -> None:
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, update, admin, users_pb2.User(**user), *paths)
    assert expected in violations(error)


def test_an_admin_promotes_disables_and_re_enables_an_account(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    target = users_pb2.User(id=person.user.id, role=users_pb2.ROLE_ADMIN)
    assert update(admin, target, "role").role == users_pb2.ROLE_ADMIN
    assert person.client.whoami().role == users_pb2.ROLE_ADMIN  # takes effect at once
    assert update(admin, users_pb2.User(id=person.user.id, disabled=True), "disabled").disabled
    assert not update(admin, users_pb2.User(id=person.user.id, disabled=False), "disabled").disabled
    assert Client(server.address).login(person.user.username, person.password).user.id == person.user.id


def test_the_last_admin_can_be_neither_demoted_disabled_nor_deleted(start_server) -> None:
    server = start_server()  # a database of its own, where `admin` is the only administrator
    admin = Client(server.address)
    admin.login("admin", ADMIN_PASSWORD)
    me = admin.user
    assert me is not None
    for user, path in [
        (users_pb2.User(id=me.id, role=users_pb2.ROLE_USER), "role"),
        (users_pb2.User(id=me.id, disabled=True), "disabled"),
    ]:
        error = expect_error(grpc.StatusCode.FAILED_PRECONDITION, update, admin, user, path)
        assert "last administrator" in error.details() and reason(error) == "LAST_ADMIN"
    deputy = create(admin, unique_name(), role=users_pb2.ROLE_ADMIN)
    deputy_client = Client(server.address)
    deputy_client.login(deputy.username, "a-good-password")
    error = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        deputy_client.users.DeleteUser,
        users_pb2.DeleteUserRequest(user_id=deputy.id),
        metadata=deputy_client.md,
    )
    assert "own account" in error.details()
    # With a second admin, the first may step down; then the deputy is the last one.
    assert update(admin, users_pb2.User(id=me.id, role=users_pb2.ROLE_USER), "role").role == users_pb2.ROLE_USER
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        update,
        deputy_client,
        users_pb2.User(id=deputy.id, disabled=True),
        "disabled",
    )
    deputy_client.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=me.id), metadata=deputy_client.md)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, admin.whoami)


def test_deleting_an_account_ends_its_sessions(server: ServerProcess, admin: Client, person: Person) -> None:
    admin.users.DeleteUser(users_pb2.DeleteUserRequest(user_id=person.user.id), metadata=admin.md, timeout=10)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, person.client.whoami)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, person.client.refresh)
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        admin.users.GetUser,
        users_pb2.GetUserRequest(user_id=person.user.id),
        metadata=admin.md,
    )
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        admin.users.DeleteUser,
        users_pb2.DeleteUserRequest(user_id=person.user.id),
        metadata=admin.md,
    )


@pytest.mark.parametrize("user_id", [0, -5])
def test_ids_must_be_positive(admin: Client, user_id: int) -> None:
    for call, request in [
        (admin.users.GetUser, users_pb2.GetUserRequest(user_id=user_id)),
        (admin.users.DeleteUser, users_pb2.DeleteUserRequest(user_id=user_id)),
    ]:
        assert violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, request, metadata=admin.md)) == {
            "user_id": "is required (a positive id)"
        }


def test_unknown_ids_are_not_found(admin: Client) -> None:
    expect_error(
        grpc.StatusCode.NOT_FOUND, admin.users.GetUser, users_pb2.GetUserRequest(user_id=2**62), metadata=admin.md
    )
    expect_error(grpc.StatusCode.NOT_FOUND, update, admin, users_pb2.User(id=2**62, display_name="x"), "display_name")


def test_disabled_accounts_are_hidden_from_ordinary_people(admin: Client, person: Person) -> None:
    hidden = create(admin, unique_name("hidden"))
    update(admin, users_pb2.User(id=hidden.id, disabled=True), "disabled")
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        person.client.users.GetUser,
        users_pb2.GetUserRequest(user_id=hidden.id),
        metadata=person.client.md,
    )
    assert admin.users.GetUser(users_pb2.GetUserRequest(user_id=hidden.id), metadata=admin.md).user.disabled
    assert not list_users(person.client, name_prefix=hidden.username, show_disabled=True).users
    assert [u.id for u in list_users(admin, name_prefix=hidden.username, show_disabled=True).users] == [hidden.id]
    assert not list_users(admin, name_prefix=hidden.username).users


def test_the_directory_pages_in_username_order(admin: Client, person: Person) -> None:
    stem = unique_name("page")
    names = sorted(create(admin, f"{stem}-{i:02d}").username for i in range(7))
    seen, token = [], ""
    while True:
        page = list_users(person.client, name_prefix=stem, page_size=3, page_token=token)
        assert len(page.users) <= 3
        seen += [u.username for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == names


def test_name_prefix_matches_display_names_case_insensitively_and_literally(admin: Client, person: Person) -> None:
    tag = unique_name("Zoë")[4:]
    one = create(admin, unique_name(), display_name=f"Élodie {tag}")
    create(admin, unique_name(), display_name=f"Emile {tag}")
    found = list_users(person.client, name_prefix="élodie " + tag.upper()).users
    assert [u.id for u in found] == [one.id]
    assert list_users(person.client, name_prefix="%").users == []  # wildcards are literal
    assert list_users(person.client, name_prefix="_").users == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_size": 201}, "page_size"),
        ({"page_token": "garbage!"}, "page_token"),
        ({"page_token": "x" * 600}, "page_token"),
        ({"name_prefix": "n" * 101}, "name_prefix"),
    ],
)
def test_list_users_rejects_bad_paging(person: Person, fields: dict, field: str) -> None:
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, list_users, person.client, **fields)
    assert field in violations(error)


def test_a_page_token_only_continues_the_same_query(admin: Client) -> None:
    stem = unique_name("tok")
    for i in range(3):
        create(admin, f"{stem}-{i}")
    token = list_users(admin, name_prefix=stem, page_size=1).next_page_token
    assert token
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, list_users, admin, name_prefix="other", page_token=token)
    assert violations(error) == {"page_token": "belongs to a request with other filters"}


# --- password reset by an administrator --------------------------------------------------------------


def reset(client: Client, user_id: int, new_password: str) -> users_pb2.ResetPasswordResponse:
    request = users_pb2.ResetPasswordRequest(user_id=user_id, new_password=new_password)
    return client.users.ResetPassword(request, metadata=client.md, timeout=10)


def test_an_admin_resets_a_password_ending_every_session_and_lifting_a_throttle(
    server: ServerProcess, admin: Client, person: Person
) -> None:
    second_device = Client(server.address)
    second_device.login(person.user.username, person.password)
    stranger = Client(server.address)
    for _ in range(5):  # WORKSPACE_LOGIN_MAX_FAILURES: the account is now throttled
        expect_error(grpc.StatusCode.UNAUTHENTICATED, stranger.login, person.user.username, "guess")
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, stranger.login, person.user.username, person.password)

    assert reset(admin, person.user.id, "a-brand-new-password").sessions_ended == 2
    for device in (person.client, second_device):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, device.whoami)
        expect_error(grpc.StatusCode.UNAUTHENTICATED, device.refresh)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, stranger.login, person.user.username, person.password)
    assert stranger.login(person.user.username, "a-brand-new-password").user.id == person.user.id
    admin.whoami()  # the administrator's own session goes on
    stranger.close()
    second_device.close()


def test_a_reset_is_in_the_activity_log_without_the_password(admin: Client, person: Person) -> None:
    reset(admin, person.user.id, "another-new-password")
    stub = activity_pb2_grpc.ActivityServiceStub(admin.channel)
    request = activity_pb2.ListActivityRequest(
        action="user.reset_password", resource_type="user", resource_id=str(person.user.id)
    )
    (entry,) = stub.ListActivity(request, metadata=admin.md, timeout=10).entries
    assert entry.actor_username == "admin" and entry.resource_type == "user"
    assert entry.detail == f"{person.user.username}, sessions ended: 1"
    assert "another-new-password" not in str(entry)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("", "is required"),
        ("short", "must be at least"),
        ("x" * 2000, "must be at most"),
    ],
    ids=["missing", "too-short", "too-long"],
)
def test_a_reset_password_follows_the_password_rules(admin: Client, person: Person, password: str, expected: str):
    error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, reset, admin, person.user.id, password)
    assert expected in violations(error)["new_password"]
    person.client.whoami()  # nothing changed


def test_only_administrators_reset_passwords_and_not_their_own(server: ServerProcess, admin: Client, person: Person):
    other = Client(server.address)
    other.login("admin", ADMIN_PASSWORD)
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, reset, person.client, admin.user.id, "a-good-password")
    assert "only administrators" in error.details()
    own = expect_error(grpc.StatusCode.FAILED_PRECONDITION, reset, admin, admin.user.id, "a-good-password")
    assert "ChangePassword" in own.details()
    expect_error(grpc.StatusCode.NOT_FOUND, reset, admin, 2**62, "a-good-password")
    assert violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, reset, admin, 0, "a-good-password")) == {
        "user_id": "is required (a positive id)"
    }
    anonymous = users_pb2.ResetPasswordRequest(user_id=person.user.id, new_password="a-good-password")
    expect_error(grpc.StatusCode.UNAUTHENTICATED, admin.users.ResetPassword, anonymous)
    other.whoami()  # nobody's session ended on the way
    person.client.whoami()
    other.close()
