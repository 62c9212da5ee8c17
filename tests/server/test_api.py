"""The JSON API under /api/v1 on a real server: who may call it, what each user sees, what bad
input gets, and what its switches do to the calendars in the emulator."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
from httpx_sse import connect_sse

from shared.domain import SyncKind
from shared.schemas import MAX_ID
from tests.server.conftest import ServerWorld
from tests.support.shared_calendar import shared_team
from tests.support.waiting import wait_until
from tests.support.world import Cal, at, timed

# What the API had when these tests were written; the schema may add routes, never lose these.
KNOWN_ROUTES = {
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/accounts"),
    ("GET", "/api/v1/calendars"),
    ("GET", "/api/v1/busy-blocks"),
    ("GET", "/api/v1/sync-logs"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/stream"),
    ("PATCH", "/api/v1/calendars/{calendar_id}"),
    ("DELETE", "/api/v1/accounts/{account_id}"),
    ("POST", "/api/v1/sync"),
}


def error_of(answer: httpx.Response, status: int) -> str:
    """The answer's error message, once it is the expected status with a JSON error body."""
    assert answer.status_code == status, f"{answer.request.method} {answer.request.url}: " + (
        f"{answer.status_code} {answer.text[:500]}"
    )
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert body["error"].strip(), body
    message: str = body["error"]
    return message


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, f"{answer.request.method} {answer.request.url}: " + (
        f"{answer.status_code} {answer.text[:500]}"
    )
    return answer.json()


def api_routes(client: httpx.Client) -> set[tuple[str, str]]:
    document = ok(client.get("/schema/openapi.json"))
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


def cursor(last_id: int) -> str:
    """A cursor as the server writes them (base64 of "id:<n>"), for ids it never gave out."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def calendar(client: httpx.Client, cal: Cal) -> dict[str, Any]:
    (row,) = [c for c in ok(client.get("/api/v1/calendars")) if c["id"] == cal.id]
    return dict(row)


def shown(world: ServerWorld, cal: Cal) -> list[tuple[str, str]]:
    """The blocks in a calendar as its owner sees them in the provider: (title, start)."""
    return sorted((b["summary"], b["start"]["dateTime"]) for b in world.blocks(cal))


def all_blocks(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(
        client.get("/api/v1/busy-blocks", params={"limit": 1000, **params})
    )["items"]
    return items


# -- who may call it ------------------------------------------------------------------------


BAD_AUTHORIZATIONS: list[dict[str, str]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Bearer"},
    {"Authorization": "token-ada"},  # no scheme
    {"Authorization": "Bearertoken-ada"},
    {"Authorization": "Basic dG9rZW4tYWRhOg=="},  # the right token, the wrong scheme
    {"Authorization": "Bearer token-ada token-ada"},
    {"Authorization": "Bearer " + "t" * 5000},
]


def test_every_api_route_answers_401_json_without_a_valid_token(
    server_world: ServerWorld,
) -> None:
    world = server_world
    world.user("ada")
    world.start(push=False)
    with httpx.Client(base_url=world.url, timeout=30) as anonymous, world.api() as ada:
        routes = api_routes(anonymous)
        assert routes >= KNOWN_ROUTES, KNOWN_ROUTES - routes

        for method, path in sorted(routes):
            url = re.sub(r"\{[^}]+\}", "1", path)
            bodies: list[bytes | None] = [None]
            if method in ("POST", "PATCH", "PUT"):
                # Neither a malformed nor an oversized body is looked at before the token.
                bodies = [b"{}", b"{not json", b"[" * (70 * 1024)]
            for headers in BAD_AUTHORIZATIONS:
                for body in bodies:
                    answer = anonymous.request(
                        method,
                        url,
                        headers={**headers, "Content-Type": "application/json"},
                        content=body,
                    )
                    message = error_of(answer, 401)
                    assert "token" in message, (method, url, message)
                    assert answer.headers["www-authenticate"].startswith("Bearer"), answer.headers

            # The same request with the right token gets past the door.
            if path == "/api/v1/stream":
                with ada.stream("GET", url) as streamed:
                    assert streamed.status_code == 200
                    assert streamed.headers["content-type"].startswith("text/event-stream")
            else:
                content = b"{}" if method in ("POST", "PATCH", "PUT") else None
                answer = ada.request(
                    method, url, content=content, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code != 401, (method, url, answer.text)

        health = anonymous.get("/healthz")
        assert ok(health) == {"status": "ok"}
        assert anonymous.get("/schema/openapi.json").json()["openapi"].startswith("3.")


# -- what each user sees --------------------------------------------------------------------


def test_a_user_never_sees_or_changes_another_users_data(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"ada-work-{unique}@example.com", "Team")
    home = world.account(f"ada-home-{unique}@example.com")["primary"]
    side = world.account(f"bob-{unique}@example.com", "Side", user="bob")
    world.insert(work["primary"], **timed("Board meeting", 9, 10))
    world.insert(side["primary"], **timed("Bob's dentist", 14, 15))
    world.start(push=True)
    with world.api("ada") as ada, world.api("bob") as bob:
        world.enable(ada, work["primary"], work["Team"], home)
        world.enable(bob, side["primary"], side["Side"])
        world.wait_for_channels(work["primary"], home, side["primary"])
        wait_until(
            lambda: len(world.blocks(home)) == 1 and len(world.blocks(side["Side"])) == 1,
            what="both users' blocks",
        )
        wait_until(lambda: world.settled(ada), what="the queue to drain")

        ada_calendars = {work["primary"].id, work["Team"].id, home.id}
        bob_calendars = {side["primary"].id, side["Side"].id}
        ada_accounts = {a["id"] for a in ok(ada.get("/api/v1/accounts"))}
        bob_accounts = {a["id"] for a in ok(bob.get("/api/v1/accounts"))}
        assert len(ada_accounts) == 2
        assert len(bob_accounts) == 1
        assert not ada_accounts & bob_accounts
        assert [a["email"] for a in ok(bob.get("/api/v1/accounts"))] == [side["primary"].email]
        assert {c["id"] for c in ok(bob.get("/api/v1/calendars"))} == bob_calendars
        assert {c["id"] for c in ok(ada.get("/api/v1/calendars"))} == ada_calendars
        assert {c["calendar_id"] for c in ok(bob.get("/api/v1/channels"))} == bob_calendars
        assert {c["calendar_id"] for c in ok(ada.get("/api/v1/channels"))} == ada_calendars

        bob_blocks = all_blocks(bob)
        assert bob_blocks
        assert {b["target_calendar_id"] for b in bob_blocks} <= bob_calendars
        assert {b["source_calendar_id"] for b in bob_blocks} <= bob_calendars
        ada_blocks = all_blocks(ada)
        assert len(ada_blocks) == 2
        assert {b["target_calendar_id"] for b in ada_blocks} <= ada_calendars
        bob_logs = ok(bob.get("/api/v1/sync-logs", params={"limit": 1000}))["items"]
        assert bob_logs
        assert {log["calendar_id"] for log in bob_logs} <= bob_calendars

        # Asking for Ada's rows by id shows nothing either.
        for cal_id in ada_calendars:
            for name in ("target_calendar_id", "source_calendar_id"):
                assert all_blocks(bob, **{name: cal_id}) == []
            page = ok(bob.get("/api/v1/sync-logs", params={"calendar_id": cal_id}))
            assert page == {"items": [], "next_cursor": None}

        status = ok(bob.get("/api/v1/status"))
        assert (status["accounts"], status["calendars"], status["calendars_syncing"]) == (1, 2, 2)
        assert status["busy_blocks"] == len(bob_blocks)
        with connect_sse(bob, "GET", "/api/v1/stream") as source:
            hello = next(iter(source.iter_sse()))
        assert hello.event == "hello"
        assert json.loads(hello.data)["data"]["calendars"] == 2

        # Bob cannot touch Ada's calendars, accounts or syncs: 404, as if they did not exist.
        before = calendar(ada, work["primary"])
        before_blocks = {c: shown(world, c) for c in (home, work["Team"])}
        before_logs = ok(ada.get("/api/v1/sync-logs", params={"limit": 1000}))["items"]
        changes: list[dict[str, Any]] = [
            {"sync_enabled": False},
            {"role": "target"},
            {"busy_title": "title"},
            {"include_all_day": True},
        ]
        for change in changes:
            message = error_of(
                bob.patch(f"/api/v1/calendars/{work['primary'].id}", json=change), 404
            )
            assert str(work["primary"].id) in message
        for account_id in ada_accounts:
            error_of(bob.delete(f"/api/v1/accounts/{account_id}"), 404)
        for cal_id in ada_calendars:
            for body in ({"calendar_id": cal_id}, {"calendar_id": cal_id, "full": True}):
                error_of(bob.post("/api/v1/sync", json=body), 404)
        # Bob's "sync everything" queues only his own calendars.
        jobs = ok(bob.post("/api/v1/sync", json={}), 202)["jobs"]
        assert {j["calendar_id"] for j in jobs} == bob_calendars

        assert calendar(ada, work["primary"]) == before
        assert {a["id"] for a in ok(ada.get("/api/v1/accounts"))} == ada_accounts
        assert {c: shown(world, c) for c in (home, work["Team"])} == before_blocks
        after_logs = ok(ada.get("/api/v1/sync-logs", params={"limit": 1000}))["items"]
        # No sync of Ada's was asked for by Bob. (A sync her own blocks' notifications bring,
        # arriving late on a loaded machine, may be logged meanwhile.)
        earlier = {log["id"] for log in before_logs}
        new_logs = [log for log in after_logs if log["id"] not in earlier]
        assert all(log["trigger"] == SyncKind.WEBHOOK for log in new_logs), new_logs

        # Push notifications arrived and were counted.
        metrics = ada.get("/metrics").text
        assert re.search(r'^calsync_notifications_total\{outcome="[a-z_]+"\} [1-9]', metrics, re.M)


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com", "Team", readers=("Holidays",))
    other = world.account(f"bob-{unique}@example.com", user="bob")["primary"]
    world.start(push=False)
    primary, team, holidays = work["primary"], work["Team"], work["Holidays"]
    with world.api() as api:
        world.enable(api, primary)
        wait_until(lambda: world.settled(api), what="the first sync")
        before = ok(api.get("/api/v1/calendars"))
        accounts_before = ok(api.get("/api/v1/accounts"))

        huge = 2**80
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            # ids in paths
            ("PATCH", "/api/v1/calendars/0", {"json": {}}, 400, "path parameter `calendar_id`"),
            ("PATCH", f"/api/v1/calendars/{MAX_ID + 1}", {"json": {}}, 400, "calendar_id"),
            ("PATCH", f"/api/v1/calendars/{MAX_ID}", {"json": {}}, 404, f"no calendar {MAX_ID}"),
            ("PATCH", "/api/v1/calendars/-5", {"json": {}}, 400, "calendar_id"),
            ("PATCH", f"/api/v1/calendars/{huge}", {"json": {}}, 400, "calendar_id"),
            ("PATCH", "/api/v1/calendars/abc", {"json": {}}, 404, "no such resource"),
            ("PATCH", "/api/v1/calendars/1.5", {"json": {}}, 404, "no such resource"),
            ("PATCH", "/api/v1/calendars/999999", {"json": {}}, 404, "no calendar 999999"),
            ("DELETE", "/api/v1/accounts/0", {}, 400, "account_id"),
            ("DELETE", f"/api/v1/accounts/{MAX_ID + 1}", {}, 400, "account_id"),
            ("DELETE", f"/api/v1/accounts/{MAX_ID}", {}, 404, f"no account {MAX_ID}"),
            ("DELETE", f"/api/v1/accounts/{huge}", {}, 400, "account_id"),
            ("DELETE", "/api/v1/accounts/abc", {}, 404, "no such resource"),
            ("DELETE", "/api/v1/accounts/999999", {}, 404, "no account 999999"),
            ("GET", "/api/v1/nothing-here", {}, 404, "no such resource"),
            ("PUT", "/api/v1/calendars/1", {"json": {}}, 405, "method not allowed"),
            # query values
            ("GET", "/api/v1/busy-blocks?limit=0", {}, 400, "`limit`"),
            ("GET", "/api/v1/busy-blocks?limit=-1", {}, 400, "`limit`"),
            ("GET", "/api/v1/busy-blocks?limit=100000", {}, 400, "`limit`"),
            ("GET", "/api/v1/busy-blocks?limit=x", {}, 400, "`limit`"),
            ("GET", "/api/v1/busy-blocks?limit=", {}, 400, "`limit`"),
            ("GET", "/api/v1/sync-logs?limit=1.5", {}, 400, "`limit`"),
            ("GET", "/api/v1/busy-blocks?target_calendar_id=-1", {}, 400, "target_calendar_id"),
            ("GET", f"/api/v1/busy-blocks?target_calendar_id={MAX_ID + 1}", {}, 400, "target"),
            ("GET", f"/api/v1/sync-logs?calendar_id={MAX_ID + 1}", {}, 400, "calendar_id"),
            ("GET", "/api/v1/busy-blocks?source_calendar_id=x", {}, 400, "source_calendar_id"),
            ("GET", f"/api/v1/busy-blocks?target_calendar_id={huge}", {}, 400, "target_cal"),
            ("GET", "/api/v1/sync-logs?calendar_id=0", {}, 400, "calendar_id"),
            ("GET", "/api/v1/sync-logs?status=bogus", {}, 400, "`status`"),
            ("GET", "/api/v1/sync-logs?status=SUCCESS", {}, 400, "`status`"),
            ("GET", "/api/v1/busy-blocks?cursor=zzz", {}, 400, "cursor"),
            ("GET", "/api/v1/busy-blocks?cursor=aWQ6MA", {}, 400, "cursor"),  # "id:0"
            ("GET", "/api/v1/sync-logs?cursor=aWQ6LTE", {}, 400, "cursor"),  # "id:-1"
            ("GET", f"/api/v1/busy-blocks?cursor={cursor(MAX_ID + 1)}", {}, 400, "cursor"),
            ("GET", f"/api/v1/sync-logs?cursor={cursor(MAX_ID + 1)}", {}, 400, "cursor"),
            ("GET", "/api/v1/sync-logs?cursor=bm9wZTo1", {}, 400, "cursor"),  # "nope:5"
            ("GET", "/api/v1/sync-logs?cursor=%00%ff", {}, 400, "cursor"),
            ("GET", "/api/v1/busy-blocks?cursor=" + "A" * 300, {}, 400, "cursor"),
            # bodies of PATCH
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"json": {"color": "red"}}, 400, "color"),
            (
                "PATCH",
                f"/api/v1/calendars/{primary.id}",
                {"json": {"sync_enabled": "yes"}},
                400,
                "sync_enabled",
            ),
            (
                "PATCH",
                f"/api/v1/calendars/{primary.id}",
                {"json": {"sync_enabled": 1}},
                400,
                "sync_enabled",
            ),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"json": {"role": "boss"}}, 400, "role"),
            (
                "PATCH",
                f"/api/v1/calendars/{primary.id}",
                {"json": {"busy_title": 3}},
                400,
                "busy_title",
            ),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"json": [True]}, 400, "body"),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"json": "on"}, 400, "body"),
            (
                "PATCH",
                f"/api/v1/calendars/{primary.id}",
                {"content": b"{sync_enabled: true"},
                400,
                "JSON",
            ),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"content": b""}, 400, "body"),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"content": b"null"}, 400, "body"),
            ("PATCH", f"/api/v1/calendars/{primary.id}", {"content": b"\xff\xfe"}, 400, "JSON"),
            (
                "PATCH",
                f"/api/v1/calendars/{primary.id}",
                {"json": {"role": "both", "padding": "x" * 70_000}},
                413,
                "at most 65536 bytes",
            ),
            # a read-only calendar is never a target
            (
                "PATCH",
                f"/api/v1/calendars/{holidays.id}",
                {"json": {"role": "target"}},
                400,
                "read-only",
            ),
            (
                "PATCH",
                f"/api/v1/calendars/{holidays.id}",
                {"json": {"role": "both", "sync_enabled": True}},
                400,
                "read-only",
            ),
            # POST /sync
            (
                "POST",
                "/api/v1/sync",
                {"json": {"calendar_id": other.id}},
                404,
                f"no calendar {other.id}",
            ),
            ("POST", "/api/v1/sync", {"json": {"calendar_id": team.id}}, 400, "sync turned off"),
            ("POST", "/api/v1/sync", {"json": {"calendar_id": 0}}, 400, "calendar_id"),
            ("POST", "/api/v1/sync", {"json": {"calendar_id": huge}}, 400, "calendar_id"),
            ("POST", "/api/v1/sync", {"json": {"calendar_id": MAX_ID + 1}}, 400, "calendar_id"),
            ("POST", "/api/v1/sync", {"json": {"calendar_id": "1"}}, 400, "calendar_id"),
            ("POST", "/api/v1/sync", {"json": {"full": "yes"}}, 400, "full"),
            ("POST", "/api/v1/sync", {"json": {"everything": True}}, 400, "everything"),
            ("POST", "/api/v1/sync", {"json": [1]}, 400, "body"),
            ("POST", "/api/v1/sync", {"content": b"{"}, 400, "JSON"),
            ("POST", "/api/v1/sync", {"content": b"x" * (64 * 1024 + 1)}, 413, "too large"),
        ]
        problems = []
        for method, url, kwargs, status, fragment in cases:
            if "content" in kwargs:
                kwargs = {**kwargs, "headers": {"Content-Type": "application/json"}}
            answer = api.request(method, url, **kwargs)
            try:
                message = error_of(answer, status)
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            if fragment.lower() not in message.lower():
                problems.append(f"{method} {url}: {message!r} does not mention {fragment!r}")
            if "validation failed" in message.lower():
                problems.append(f"{method} {url}: {message!r} does not say what is wrong")
        assert not problems, "\n".join(problems)

        # Validation problems say where, in a list a program can read.
        detail = api.get("/api/v1/busy-blocks", params={"limit": "x"}).json()["detail"]
        assert [(d["key"], d["source"]) for d in detail] == [("limit", "query")]

        # Nothing that was refused changed anything.
        assert ok(api.get("/api/v1/calendars")) == before
        assert ok(api.get("/api/v1/accounts")) == accounts_before
        assert world.settled(api)
        assert ok(world.api("bob").get("/api/v1/calendars"))[0]["sync_enabled"] is False


# -- what the switches do -------------------------------------------------------------------


def test_the_api_drives_the_blocks_in_every_calendar(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com", "Team", readers=("Holidays",))
    home = world.account(f"home-{unique}@example.com")["primary"]
    primary, team, holidays = work["primary"], work["Team"], work["Holidays"]
    for title, start in (("Board meeting", 9), ("Standup", 11), ("Lunch", 12)):
        world.insert(primary, **timed(title, start, start + 0.5))
    world.insert(home, **timed("Dentist", 14, 15))
    world.start(push=False)
    with world.api() as api:
        # Sync on: every other calendar gets a block of every busy event.
        changed = ok(api.patch(f"/api/v1/calendars/{primary.id}", json={"sync_enabled": True}))
        assert changed["sync_enabled"] is True
        assert changed["id"] == primary.id
        world.enable(api, team, home)
        work_blocks = [("Busy", at(9)), ("Busy", at(11)), ("Busy", at(12))]
        wait_until(
            lambda: (
                shown(world, home) == work_blocks
                and shown(world, team) == sorted([*work_blocks, ("Busy", at(14))])
                and shown(world, primary) == [("Busy", at(14))]
            ),
            what="blocks of both calendars everywhere",
        )
        wait_until(lambda: world.settled(api), what="the first syncs to finish")
        assert shown(world, holidays) == []

        # Pages walk every row exactly once, in order, and the filters narrow them.
        everything = all_blocks(api)
        assert len(everything) == 8
        walked: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = ok(api.get("/api/v1/busy-blocks", params=params))
            assert len(page["items"]) <= 3
            walked.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == everything
        assert len({b["id"] for b in walked}) == 8
        exact = ok(api.get("/api/v1/busy-blocks", params={"limit": 8}))
        assert exact["next_cursor"] is None
        assert len(exact["items"]) == 8
        in_home = all_blocks(api, target_calendar_id=home.id)
        assert len(in_home) == 3
        assert {b["source_calendar_id"] for b in in_home} == {primary.id}
        from_home = all_blocks(api, source_calendar_id=home.id)
        assert sorted(b["target_calendar_id"] for b in from_home) == sorted([primary.id, team.id])
        both = all_blocks(api, target_calendar_id=team.id, source_calendar_id=home.id)
        assert [(b["summary"], b["target_calendar_id"]) for b in both] == [("Busy", team.id)]
        assert all_blocks(api, target_calendar_id=holidays.id) == []

        # Titles: the work calendar's blocks now say what they are, everywhere.
        changed = ok(api.patch(f"/api/v1/calendars/{primary.id}", json={"busy_title": "title"}))
        assert changed["busy_title"] == "title"
        titled = [("Busy - Board meeting", at(9)), ("Busy - Standup", at(11))]
        titled.append(("Busy - Lunch", at(12)))
        wait_until(
            lambda: (
                shown(world, home) == sorted(titled)
                and shown(world, team) == sorted([*titled, ("Busy", at(14))])
            ),
            what="retitled blocks",
        )
        assert shown(world, primary) == [("Busy", at(14))]  # home's title stays private

        # A source-only calendar holds no blocks any more.
        assert ok(api.patch(f"/api/v1/calendars/{team.id}", json={"role": "source"}))["role"] == (
            "source"
        )
        wait_until(lambda: shown(world, team) == [], what="Team's blocks to go")
        wait_until(lambda: world.settled(api), what="the role change to settle")
        assert all_blocks(api, target_calendar_id=team.id) == []
        assert shown(world, home) == sorted(titled)

        # A read-only calendar can only ever be a source.
        for role in ("target", "both"):
            message = error_of(
                api.patch(f"/api/v1/calendars/{holidays.id}", json={"role": role}), 400
            )
            assert "read-only" in message
        assert calendar(api, holidays)["role"] == "both"  # as imported: refused, not changed
        assert (
            ok(api.patch(f"/api/v1/calendars/{holidays.id}", json={"role": "source"}))["role"]
            == "source"
        )

        # Sync now: one job per synced calendar, accepted, and run.
        synced = {primary.id, team.id, home.id}
        before = {
            log["id"] for log in ok(api.get("/api/v1/sync-logs", params={"limit": 1000}))["items"]
        }
        jobs = ok(api.post("/api/v1/sync"), 202)["jobs"]
        assert {j["calendar_id"] for j in jobs} == synced
        assert all(j["state"] in ("queued", "running", "done") for j in jobs), jobs
        wait_until(lambda: world.settled(api), what="the manual syncs")
        full = ok(api.post("/api/v1/sync", json={"full": True}), 202)["jobs"]
        assert {j["calendar_id"] for j in full} == synced
        assert all(j["full"] for j in full)
        one = ok(api.post("/api/v1/sync", json={"calendar_id": home.id}), 202)["jobs"]
        assert [j["calendar_id"] for j in one] == [home.id]
        wait_until(lambda: world.settled(api), what="the full syncs")
        logs = ok(api.get("/api/v1/sync-logs", params={"limit": 1000}))["items"]
        new = [log for log in logs if log["id"] not in before]
        assert {log["calendar_id"] for log in new if log["kind"] == "full"} == synced
        assert {log["calendar_id"] for log in new if log["kind"] == "manual"} == synced
        assert shown(world, home) == sorted(titled)  # nothing to repair: nothing changed

        # Logs: newest first, by cursor too; the status filter keeps only what it names.
        ids = [log["id"] for log in logs]
        assert ids == sorted(ids, reverse=True)
        paged: list[int] = []
        cursor = None
        for _ in range(len(logs) + 1):
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = ok(api.get("/api/v1/sync-logs", params=params))
            paged.extend(log["id"] for log in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == ids
        assert all(log["status"] == "success" for log in logs), logs
        successes = ok(api.get("/api/v1/sync-logs", params={"status": "success", "limit": 1000}))
        assert [log["id"] for log in successes["items"]] == ids
        for status in ("error", "partial"):
            filtered = ok(api.get("/api/v1/sync-logs", params={"status": status}))
            assert filtered == {"items": [], "next_cursor": None}
        home_logs = world.logs(api, home)
        assert home_logs
        assert {log["calendar_id"] for log in home_logs} == {home.id}

        # Sync off: the calendar's blocks leave every other calendar and itself.
        changed = ok(api.patch(f"/api/v1/calendars/{home.id}", json={"sync_enabled": False}))
        assert changed["sync_enabled"] is False
        wait_until(
            lambda: shown(world, primary) == [] and shown(world, home) == [],
            what="home's blocks to go from work and from home",
        )
        wait_until(lambda: world.settled(api), what="sync off to settle")
        assert all_blocks(api) == []
        error_of(api.post("/api/v1/sync", json={"calendar_id": home.id}), 400)

        # The counters of all that.
        metrics = api.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert metrics.headers["content-type"].count("charset") == 1
        text = metrics.text
        assert "# TYPE calsync_notifications_total counter" in text
        assert re.search(r'^calsync_syncs_total\{kind="full",status="success"\} [1-9]', text, re.M)
        assert re.search(
            r'^calsync_syncs_total\{kind="manual",status="success"\} [1-9]', text, re.M
        )
        assert re.search(r'^calsync_jobs_total\{state="done"\} [1-9]', text, re.M)
        assert re.search(r"^calsync_queue_depth 0\.0$", text, re.M)


def test_a_calendar_shared_into_a_second_account_is_turned_on_once(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, team, home, team_again = shared_team(world, unique)
    world.insert(team, **timed("Offsite", 9, 10))
    world.start(push=False)
    with world.api() as api:
        world.enable(api, work, team, home)

        message = error_of(
            api.patch(f"/api/v1/calendars/{team_again.id}", json={"sync_enabled": True}), 409
        )

        assert f"through work-{unique}@example.com" in message
        assert f'"Team" (calendar {team.id})' in message
        assert calendar(api, team_again)["sync_enabled"] is False
        # Its other settings may change all the same: they wait for sync on.
        assert ok(api.patch(f"/api/v1/calendars/{team_again.id}", json={"role": "source"}))
        # Once the first copy is off, the second may take over.
        ok(api.patch(f"/api/v1/calendars/{team.id}", json={"sync_enabled": False}))
        wait_until(lambda: world.settled(api), what="Team off")
        assert ok(api.patch(f"/api/v1/calendars/{team_again.id}", json={"sync_enabled": True}))
        wait_until(
            lambda: shown(world, home) == [("Busy", at(9))] == shown(world, work),
            what="Team's block, now through the second copy, once in each other calendar",
        )


def test_keep_blocks_when_off_is_a_calendar_setting(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.insert(work, **timed("Board", 9, 10))
    world.start(push=False)
    with world.api() as api:
        assert calendar(api, home)["keep_blocks_when_off"] is False  # the default
        world.enable(api, work, home)
        wait_until(lambda: shown(world, home) == [("Busy", at(9))], what="the block in home")

        changed = ok(api.patch(f"/api/v1/calendars/{home.id}", json={"keep_blocks_when_off": True}))
        assert changed["keep_blocks_when_off"] is True
        assert calendar(api, home)["keep_blocks_when_off"] is True
        for wrong in ("yes", 1, [True]):
            error_of(
                api.patch(f"/api/v1/calendars/{home.id}", json={"keep_blocks_when_off": wrong}),
                400,
            )
        ok(api.patch(f"/api/v1/calendars/{home.id}", json={"sync_enabled": False}))
        wait_until(lambda: world.settled(api), what="home turned off")
        assert shown(world, home) == [("Busy", at(9))]  # kept, as chosen

        # No longer kept: the blocks of a calendar that is off go now.
        ok(api.patch(f"/api/v1/calendars/{home.id}", json={"keep_blocks_when_off": False}))
        wait_until(lambda: shown(world, home) == [], what="home's kept blocks to go")

        schema = ok(api.get("/schema/openapi.json"))
        patch = schema["paths"]["/api/v1/calendars/{calendar_id}"]["patch"]
        assert "409" in patch["responses"]
        assert (
            "keep_blocks_when_off" in schema["components"]["schemas"]["CalendarPatch"]["properties"]
        )
