"""Hostile request bodies: JSON nested a thousand levels deep is a 400 like any malformed body,
on every route of the running server that takes a body, never a 500 from the decoder."""

from __future__ import annotations

import re

import httpx
import msgspec
import pytest
from litestar.routes import HTTPRoute

from calsync_server.api.bodies import MAX_JSON_DEPTH, json_depth
from calsync_server.app import create_app
from tests.server.conftest import ServerWorld

DEEP_BODIES = {
    "arrays": b"[" * 1000,
    "objects": b'{"a":' * 1000,
    "closed arrays": b"[" * 1000 + b"]" * 1000,
    "closed objects": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "deep inside a field": b'{"sync_enabled": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_PARAM = re.compile(r"\{(\w+):(\w+)\}")


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    server_world.start(push=False)
    return server_world


def body_routes(world: ServerWorld) -> list[tuple[str, str, bool]]:
    """(method, path template, reads a JSON body) for every route of the app that accepts a
    request body: the list grows by itself when a route is added."""
    app = create_app(world.server_settings, background=False)  # never started: only read
    found: list[tuple[str, str, bool]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods & WRITES):
                reads_json = "data" in handler.parsed_fn_signature.parameters
                found.append((method, route.path, reads_json))
    return found


def test_every_route_that_reads_a_body_answers_400_to_a_body_nested_too_deeply(
    world: ServerWorld, unique: str
) -> None:
    cals = world.account(f"deep-{unique}@example.com", "Team")
    routes = body_routes(world)
    json_routes = {(m, p) for m, p, reads in routes if reads}
    assert {
        ("PATCH", "/api/v1/calendars/{calendar_id:int}"),
        ("POST", "/api/v1/sync"),
        ("POST", "/api/v1/accounts/google/authorize"),
    } <= json_routes
    with world.api("ada") as ada:
        for method, template, reads_json in routes:
            # A real calendar (a 404 must not come before the body is read); any other id is
            # one nobody has, so a route that ignores bodies (a disconnect) changes nothing.
            path = _PARAM.sub(
                lambda m: str(cals["Team"].id) if m[1] == "calendar_id" else "999999", template
            )
            for name, body in DEEP_BODIES.items():
                answer = ada.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                what = f"{method} {template} with {name}"
                assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text}"
                if reads_json:
                    assert answer.status_code == 400, f"{what}: {answer.text}"
                    assert answer.json()["error"] == (
                        f"the body is nested more than {MAX_JSON_DEPTH} levels deep"
                    ), what
        # Still the same server, answering and unchanged.
        listed = {c["id"]: c for c in ada.get("/api/v1/calendars").json()}
        assert listed[cals["Team"].id]["sync_enabled"] is False


def test_brackets_inside_strings_and_ordinary_nesting_are_not_depth(
    world: ServerWorld, unique: str
) -> None:
    world.account(f"shallow-{unique}@example.com")
    with world.api("ada") as ada:
        # A login hint full of brackets is a string, not nesting.
        hint = "[{" * 40 + "@example.com"
        answer = ada.post("/api/v1/accounts/google/authorize", json={"login_hint": hint})
        assert answer.status_code == 200, answer.text
        # Nesting the decoder handles but the schema does not want: the usual 400.
        wrong = ada.post("/api/v1/sync", content=b"[" * 20 + b"]" * 20)
        assert wrong.status_code == 400
        assert "nested" not in wrong.json()["error"]
        # Malformed JSON is still reported as such.
        broken = ada.post("/api/v1/sync", content=b'{"full": tru')
        assert broken.status_code == 400
        assert broken.json()["error"].startswith("the body is not valid JSON")
        assert ada.post("/api/v1/sync", json={"full": False}).status_code == 202


def test_json_depth_counts_nesting_not_brackets() -> None:
    # Few brackets: an upper bound without a scan is enough.
    assert json_depth(msgspec.json.encode({"a": [[1], {"b": [2]}]})) <= MAX_JSON_DEPTH
    # Many: counted exactly.
    assert json_depth(msgspec.json.encode({"a": [[1], {"b": [2]}] * 20})) == 4
    assert json_depth(b'["' + b"[" * 100 + b'"]') <= MAX_JSON_DEPTH
    assert json_depth(b'["\\"' + b"[" * 100 + b'"]') <= MAX_JSON_DEPTH
    assert json_depth(b"[" * 1000) == 1000
    assert json_depth(b'{"a":' * 40 + b"1" + b"}" * 40) == 40
    assert json_depth(b"[]" * 1000) == 1


def test_deep_body_without_a_token_is_still_401(world: ServerWorld) -> None:
    answer = httpx.post(world.url + "api/v1/sync", content=b"[" * 1000)
    assert answer.status_code == 401
