"""ShortcutsService: each person's saved links, in categories they arrange; positions stay 0..n-1 without gaps
whatever is created, moved, recategorised or deleted; nobody sees anyone else's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from workspace.v1 import shortcuts_pb2, shortcuts_pb2_grpc

from .api import Client, Person, create_person, expect_error, violations
from .gateway import GatewayProcess, fetch
from .servers import ServerProcess

NOWHERE = 2**62


def stub(client: Client) -> shortcuts_pb2_grpc.ShortcutsServiceStub:
    return shortcuts_pb2_grpc.ShortcutsServiceStub(client.channel)


def category(client: Client, name: str) -> shortcuts_pb2.ShortcutCategory:
    request = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name=name))
    return stub(client).CreateCategory(request, metadata=client.md, timeout=10).category


def shortcut(
    client: Client, title: str, url: str = "https://example.com/", category_id: int = 0, description: str = ""
) -> shortcuts_pb2.Shortcut:
    made = shortcuts_pb2.Shortcut(title=title, url=url, category_id=category_id, description=description)
    request = shortcuts_pb2.CreateShortcutRequest(shortcut=made)
    return stub(client).CreateShortcut(request, metadata=client.md, timeout=10).shortcut


def categories(client: Client) -> list[shortcuts_pb2.ShortcutCategory]:
    reply = stub(client).ListCategories(shortcuts_pb2.ListCategoriesRequest(), metadata=client.md, timeout=10)
    return list(reply.categories)


def listed(client: Client, **fields) -> list[shortcuts_pb2.Shortcut]:
    """Every page of ListShortcuts with these filters."""
    found, token = [], ""
    while True:
        request = shortcuts_pb2.ListShortcutsRequest(page_token=token, **fields)
        reply = stub(client).ListShortcuts(request, metadata=client.md, timeout=10)
        found += reply.shortcuts
        token = reply.next_page_token
        if not token:
            return found


def in_category(client: Client, category_id: int) -> list[str]:
    """Titles of one category (0: uncategorised) in order, checking their positions are 0..n-1."""
    items = listed(client, category_id=category_id, only_category=True)
    assert [s.position for s in items] == list(range(len(items))), [(s.title, s.position) for s in items]
    assert all(s.category_id == category_id for s in items)
    return [s.title for s in items]


def move(client: Client, shortcut_id: int, category_id: int, position: int) -> shortcuts_pb2.Shortcut:
    request = shortcuts_pb2.MoveShortcutRequest(shortcut_id=shortcut_id, category_id=category_id, position=position)
    return stub(client).MoveShortcut(request, metadata=client.md, timeout=10).shortcut


def invalid(call, request, client: Client) -> set[str]:
    return set(violations(expect_error(grpc.StatusCode.INVALID_ARGUMENT, call, request, metadata=client.md)))


# --- categories -----------------------------------------------------------------------------------------


def test_categories_are_appended_renamed_and_unique_without_regard_to_case(
    server: ServerProcess, person: Person
) -> None:
    client = person.client
    work, home = category(client, "  Work "), category(client, "Home")
    assert (work.name, work.position, work.shortcut_count) == ("Work", 0, 0)
    assert home.position == 1 and work.HasField("create_time")
    assert [c.name for c in categories(client)] == ["Work", "Home"]

    request = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name="WORK"))
    expect_error(grpc.StatusCode.ALREADY_EXISTS, stub(client).CreateCategory, request, metadata=client.md)

    renamed = (
        stub(client)
        .UpdateCategory(
            shortcuts_pb2.UpdateCategoryRequest(
                category=shortcuts_pb2.ShortcutCategory(id=home.id, name="House"), update_mask=FieldMask(paths=["name"])
            ),
            metadata=client.md,
        )
        .category
    )
    assert (renamed.name, renamed.position) == ("House", 1)
    taken = shortcuts_pb2.UpdateCategoryRequest(
        category=shortcuts_pb2.ShortcutCategory(id=home.id, name="work"), update_mask=FieldMask(paths=["name"])
    )
    expect_error(grpc.StatusCode.ALREADY_EXISTS, stub(client).UpdateCategory, taken, metadata=client.md)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_category_name_has_1_to_100_characters(person: Person, name: str) -> None:
    request = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name=name))
    assert invalid(stub(person.client).CreateCategory, request, person.client) == {"category.name"}


def test_a_category_update_needs_a_mask_of_known_fields(person: Person) -> None:
    client = person.client
    made = category(client, "Masks")
    for paths in ([], ["position"], ["name", "nonsense"]):
        request = shortcuts_pb2.UpdateCategoryRequest(
            category=shortcuts_pb2.ShortcutCategory(id=made.id, name="x"), update_mask=FieldMask(paths=paths)
        )
        assert "update_mask" in invalid(stub(client).UpdateCategory, request, client), paths


def test_moving_a_category_renumbers_the_others(person: Person) -> None:
    client = person.client
    made = [category(client, name) for name in "ABCD"]
    reply = stub(client).MoveCategory(
        shortcuts_pb2.MoveCategoryRequest(category_id=made[3].id, position=0), metadata=client.md
    )
    assert [(c.name, c.position) for c in reply.categories] == [("D", 0), ("A", 1), ("B", 2), ("C", 3)]
    stub(client).MoveCategory(
        shortcuts_pb2.MoveCategoryRequest(category_id=made[0].id, position=99), metadata=client.md
    )
    assert [(c.name, c.position) for c in categories(client)] == [("D", 0), ("B", 1), ("C", 2), ("A", 3)]
    negative = shortcuts_pb2.MoveCategoryRequest(category_id=made[0].id, position=-1)
    assert invalid(stub(client).MoveCategory, negative, client) == {"position"}


def test_deleting_a_category_moves_its_shortcuts_to_the_uncategorised_ones_in_order(person: Person) -> None:
    client = person.client
    keep, gone = category(client, "Keep"), category(client, "Gone")
    shortcut(client, "loose")
    for title in ("one", "two", "three"):
        shortcut(client, title, category_id=gone.id)
    shortcut(client, "kept", category_id=keep.id)

    reply = stub(client).DeleteCategory(shortcuts_pb2.DeleteCategoryRequest(category_id=gone.id), metadata=client.md)
    assert reply.moved_shortcuts == 3
    assert in_category(client, 0) == ["loose", "one", "two", "three"]
    assert in_category(client, keep.id) == ["kept"]
    assert [(c.name, c.position) for c in categories(client)] == [("Keep", 0)]
    again = shortcuts_pb2.DeleteCategoryRequest(category_id=gone.id)
    expect_error(grpc.StatusCode.NOT_FOUND, stub(client).DeleteCategory, again, metadata=client.md)


def test_a_person_has_at_most_100_categories(server: ServerProcess, admin: Client) -> None:
    client = create_person(admin, server.address).client
    try:
        for i in range(100):
            category(client, f"c{i}")
        request = shortcuts_pb2.CreateCategoryRequest(category=shortcuts_pb2.ShortcutCategory(name="one too many"))
        expect_error(grpc.StatusCode.FAILED_PRECONDITION, stub(client).CreateCategory, request, metadata=client.md)
        assert len(categories(client)) == 100
    finally:
        client.close()


# --- shortcuts ------------------------------------------------------------------------------------------


def test_a_shortcut_is_stored_trimmed_and_appended_to_its_category(person: Person) -> None:
    client = person.client
    work = category(client, "Work")
    first = shortcut(client, "  Wiki  ", "https://wiki.example.com/start?x=1#top", work.id, "the team wiki")
    second = shortcut(client, "Mail", "http://mail.example.com", work.id)
    loose = shortcut(client, "Loose", "https://example.org")
    assert (first.title, first.url, first.description) == (
        "Wiki",
        "https://wiki.example.com/start?x=1#top",
        "the team wiki",
    )
    assert (first.category_id, first.position, second.position, loose.position) == (work.id, 0, 1, 0)
    got = stub(client).GetShortcut(shortcuts_pb2.GetShortcutRequest(shortcut_id=first.id), metadata=client.md).shortcut
    assert got == first
    assert [c.shortcut_count for c in categories(client)] == [2]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com",
        "www.example.com/path",
        "ftp://example.com/file",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "http://",
        "https:///only/a/path",
        "http://exa mple.com/",
        "https://example.com/\nnext",
        "https://example.com/" + "a" * 2030,
    ],
)
def test_only_http_and_https_urls_of_at_most_2048_characters(person: Person, url: str) -> None:
    request = shortcuts_pb2.CreateShortcutRequest(shortcut=shortcuts_pb2.Shortcut(title="t", url=url))
    assert invalid(stub(person.client).CreateShortcut, request, person.client) == {"shortcut.url"}


def test_a_url_of_exactly_2048_characters_is_fine(person: Person) -> None:
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert shortcut(person.client, "long", url).url == url


def test_every_bad_field_of_a_shortcut_is_named_at_once(person: Person) -> None:
    bad = shortcuts_pb2.Shortcut(title=" ", url="ftp://x", description="d" * 1001)
    request = shortcuts_pb2.CreateShortcutRequest(shortcut=bad)
    assert invalid(stub(person.client).CreateShortcut, request, person.client) == {
        "shortcut.title",
        "shortcut.url",
        "shortcut.description",
    }
    too_long = shortcuts_pb2.CreateShortcutRequest(shortcut=shortcuts_pb2.Shortcut(title="t" * 201, url="https://a.b"))
    assert invalid(stub(person.client).CreateShortcut, too_long, person.client) == {"shortcut.title"}
    assert invalid(stub(person.client).CreateShortcut, shortcuts_pb2.CreateShortcutRequest(), person.client) == {
        "shortcut"
    }


def test_moving_a_shortcut_renumbers_within_and_across_categories(person: Person) -> None:
    client = person.client
    work, home = category(client, "Work"), category(client, "Home")
    made = {title: shortcut(client, title, category_id=work.id) for title in ("a", "b", "c", "d")}
    shortcut(client, "x", category_id=home.id)
    shortcut(client, "y", category_id=home.id)

    assert move(client, made["d"].id, work.id, 0).position == 0
    assert in_category(client, work.id) == ["d", "a", "b", "c"]
    assert move(client, made["a"].id, work.id, 99).position == 3  # past the end: last
    assert in_category(client, work.id) == ["d", "b", "c", "a"]

    moved = move(client, made["b"].id, home.id, 1)
    assert (moved.category_id, moved.position) == (home.id, 1)
    assert in_category(client, work.id) == ["d", "c", "a"]
    assert in_category(client, home.id) == ["x", "b", "y"]
    assert move(client, made["c"].id, 0, 0).category_id == 0
    assert in_category(client, 0) == ["c"]

    negative = shortcuts_pb2.MoveShortcutRequest(shortcut_id=made["a"].id, category_id=work.id, position=-2)
    assert invalid(stub(client).MoveShortcut, negative, client) == {"position"}


def test_updating_a_shortcut_changes_only_the_masked_fields_and_appends_it_to_a_new_category(
    person: Person,
) -> None:
    client = person.client
    work, home = category(client, "Work"), category(client, "Home")
    a = shortcut(client, "a", category_id=work.id)
    shortcut(client, "b", category_id=work.id)
    shortcut(client, "h", category_id=home.id)

    def update(paths: Sequence[str], **values) -> shortcuts_pb2.Shortcut:
        request = shortcuts_pb2.UpdateShortcutRequest(
            shortcut=shortcuts_pb2.Shortcut(id=a.id, **values), update_mask=FieldMask(paths=list(paths))
        )
        return stub(client).UpdateShortcut(request, metadata=client.md).shortcut

    changed = update(["title"], title="A!", url="https://ignored.example.com")
    assert (changed.title, changed.url) == ("A!", a.url)
    changed = update(["url", "description"], url="https://new.example.com/", description="new")
    assert (changed.url, changed.description, changed.title) == ("https://new.example.com/", "new", "A!")

    recategorised = update(["category_id"], category_id=home.id)
    assert (recategorised.category_id, recategorised.position) == (home.id, 1)
    assert in_category(client, work.id) == ["b"]
    assert in_category(client, home.id) == ["h", "A!"]

    for paths in ([], ["position"], ["title", "id"]):
        request = shortcuts_pb2.UpdateShortcutRequest(
            shortcut=shortcuts_pb2.Shortcut(id=a.id, title="t"), update_mask=FieldMask(paths=paths)
        )
        assert "update_mask" in invalid(stub(client).UpdateShortcut, request, client), paths
    bad_url = shortcuts_pb2.UpdateShortcutRequest(
        shortcut=shortcuts_pb2.Shortcut(id=a.id, url="ftp://x"), update_mask=FieldMask(paths=["url"])
    )
    assert invalid(stub(client).UpdateShortcut, bad_url, client) == {"shortcut.url"}


def test_deleting_a_shortcut_closes_the_gap(person: Person) -> None:
    client = person.client
    made = [shortcut(client, title) for title in ("a", "b", "c")]
    stub(client).DeleteShortcut(shortcuts_pb2.DeleteShortcutRequest(shortcut_id=made[1].id), metadata=client.md)
    assert in_category(client, 0) == ["a", "c"]
    again = shortcuts_pb2.DeleteShortcutRequest(shortcut_id=made[1].id)
    expect_error(grpc.StatusCode.NOT_FOUND, stub(client).DeleteShortcut, again, metadata=client.md)


def test_concurrent_moves_keep_positions_without_gaps_or_doubles(person: Person) -> None:
    client = person.client
    group = category(client, "Busy")
    made = [shortcut(client, f"s{i}", category_id=group.id) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: move(client, made[i].id, group.id, (i * 3) % 8), range(8)))
    titles = in_category(client, group.id)  # checks positions are 0..7
    assert sorted(titles) == sorted(s.title for s in made)


# --- listing and searching ------------------------------------------------------------------------------


def test_all_shortcuts_are_listed_uncategorised_first_then_by_category_page_by_page(person: Person) -> None:
    client = person.client
    first, second = category(client, "First"), category(client, "Second")
    shortcut(client, "s1", category_id=second.id)
    shortcut(client, "f1", category_id=first.id)
    shortcut(client, "u1")
    shortcut(client, "f2", category_id=first.id)
    shortcut(client, "s2", category_id=second.id)
    shortcut(client, "u2")
    shortcut(client, "f3", category_id=first.id)
    expected = ["u1", "u2", "f1", "f2", "f3", "s1", "s2"]
    assert [s.title for s in listed(client, page_size=3)] == expected
    assert [s.title for s in listed(client, page_size=1)] == expected
    assert [s.title for s in listed(client)] == expected

    page = stub(client).ListShortcuts(shortcuts_pb2.ListShortcutsRequest(page_size=3), metadata=client.md)
    other_filter = shortcuts_pb2.ListShortcutsRequest(page_size=3, page_token=page.next_page_token, query="f")
    assert invalid(stub(client).ListShortcuts, other_filter, client) == {"page_token"}
    for bad in (shortcuts_pb2.ListShortcutsRequest(page_size=-1), shortcuts_pb2.ListShortcutsRequest(page_token="x")):
        assert invalid(stub(client).ListShortcuts, bad, client) <= {"page_size", "page_token"}


def test_search_finds_title_or_url_without_regard_to_case_and_takes_wildcards_literally(person: Person) -> None:
    client = person.client
    shortcut(client, "Quarterly Report", "https://intranet.example.com/q")
    shortcut(client, "Sales", "https://REPORTS.example.com/sales")
    shortcut(client, "Discount 50%", "https://shop.example.com/sale")
    shortcut(client, "Discount 50 percent", "https://shop.example.com/x")
    shortcut(client, "snake_case", "https://code.example.com/")
    shortcut(client, "snakeXcase", "https://code.example.com/other")

    assert [s.title for s in listed(client, query="report")] == ["Quarterly Report", "Sales"]
    assert [s.title for s in listed(client, query="50%")] == ["Discount 50%"]
    assert [s.title for s in listed(client, query="snake_")] == ["snake_case"]
    assert listed(client, query="nothing like it") == []
    shortcut(client, "ÉTÉ 2027", "https://holidays.example.com/")
    assert [s.title for s in listed(client, query="été")] == ["ÉTÉ 2027"]  # beyond ASCII, on both databases
    too_long = shortcuts_pb2.ListShortcutsRequest(query="q" * 201)
    assert invalid(stub(client).ListShortcuts, too_long, client) == {"query"}


# --- whose ----------------------------------------------------------------------------------------------


def test_nobody_sees_or_touches_another_persons_shortcuts(server: ServerProcess, admin: Client) -> None:
    owner = create_person(admin, server.address).client
    other = create_person(admin, server.address).client
    try:
        mine = category(owner, "Mine")
        link = shortcut(owner, "secret", "https://secret.example.com", mine.id)
        calls = [
            (stub(other).GetShortcut, shortcuts_pb2.GetShortcutRequest(shortcut_id=link.id)),
            (stub(other).DeleteShortcut, shortcuts_pb2.DeleteShortcutRequest(shortcut_id=link.id)),
            (stub(other).MoveShortcut, shortcuts_pb2.MoveShortcutRequest(shortcut_id=link.id, position=0)),
            (
                stub(other).UpdateShortcut,
                shortcuts_pb2.UpdateShortcutRequest(
                    shortcut=shortcuts_pb2.Shortcut(id=link.id, title="mine now"),
                    update_mask=FieldMask(paths=["title"]),
                ),
            ),
            (stub(other).DeleteCategory, shortcuts_pb2.DeleteCategoryRequest(category_id=mine.id)),
            (stub(other).MoveCategory, shortcuts_pb2.MoveCategoryRequest(category_id=mine.id, position=0)),
            (
                stub(other).UpdateCategory,
                shortcuts_pb2.UpdateCategoryRequest(
                    category=shortcuts_pb2.ShortcutCategory(id=mine.id, name="x"), update_mask=FieldMask(paths=["name"])
                ),
            ),
            (
                stub(other).CreateShortcut,
                shortcuts_pb2.CreateShortcutRequest(
                    shortcut=shortcuts_pb2.Shortcut(title="in yours", url="https://a.b", category_id=mine.id)
                ),
            ),
        ]
        for call, request in calls:
            expect_error(grpc.StatusCode.NOT_FOUND, call, request, metadata=other.md)
        assert listed(other) == [] and categories(other) == []
        assert listed(owner) == [link]  # untouched
        assert [(c.name, c.shortcut_count) for c in categories(owner)] == [("Mine", 1)]
    finally:
        owner.close()
        other.close()


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer not-a-token"),)])
def test_shortcuts_need_a_valid_token(person: Person, metadata) -> None:
    for call, request in (
        (stub(person.client).ListCategories, shortcuts_pb2.ListCategoriesRequest()),
        (stub(person.client).ListShortcuts, shortcuts_pb2.ListShortcutsRequest()),
        (
            stub(person.client).CreateShortcut,
            shortcuts_pb2.CreateShortcutRequest(shortcut=shortcuts_pb2.Shortcut(title="t", url="https://a.b")),
        ),
    ):
        expect_error(grpc.StatusCode.UNAUTHENTICATED, call, request, metadata=metadata)


@pytest.mark.parametrize("shortcut_id", [0, -1, NOWHERE])
def test_unknown_or_bad_ids(person: Person, shortcut_id: int) -> None:
    request = shortcuts_pb2.GetShortcutRequest(shortcut_id=shortcut_id)
    code = grpc.StatusCode.NOT_FOUND if shortcut_id > 0 else grpc.StatusCode.INVALID_ARGUMENT
    expect_error(code, stub(person.client).GetShortcut, request, metadata=person.client.md)


# --- over REST ------------------------------------------------------------------------------------------


def test_shortcuts_over_rest(gateway: GatewayProcess, person: Person) -> None:
    bearer = {"authorization": f"Bearer {person.client.access_token}"}
    status, text, _ = fetch(f"{gateway.url}/v1/shortcutCategories", "POST", {"name": "Over REST"}, bearer)
    assert status == 200, text
    made = json.loads(text)["category"]
    body = {"title": "Envoy", "url": "https://www.envoyproxy.io/", "category_id": made["id"]}
    status, text, _ = fetch(f"{gateway.url}/v1/shortcuts", "POST", body, bearer)
    assert status == 200, text
    created = json.loads(text)["shortcut"]
    status, text, _ = fetch(f"{gateway.url}/v1/shortcuts?query=envoy", headers=bearer)
    assert status == 200 and [s["id"] for s in json.loads(text)["shortcuts"]] == [created["id"]], text
    status, text, _ = fetch(f"{gateway.url}/v1/shortcuts", "POST", {"title": "bad", "url": "ftp://x"}, bearer)
    assert status == 400 and "shortcut.url" in text, text
