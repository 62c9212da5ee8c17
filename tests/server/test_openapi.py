"""The OpenAPI document says what the API does: the bearer token, bodies that refuse unknown
fields, the optional body of POST /sync, and errors that are `{"error", "detail"?}`. Each claim
is read from the served document and then held against the running server."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from shared.schemas import MAX_ID, ApiError, Readiness
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until

ERROR_REF = {"$ref": "#/components/schemas/ApiError"}
READINESS_REF = {"$ref": "#/components/schemas/Readiness"}
BODIES = {
    ("patch", "/api/v1/calendars/{calendar_id}"): "CalendarPatch",
    ("post", "/api/v1/sync"): "SyncRequest",
    ("post", "/api/v1/purge"): "PurgeRequest",
    ("post", "/api/v1/accounts/google/authorize"): "OAuthAuthorize",
    ("post", "/api/v1/accounts/microsoft/authorize"): "OAuthAuthorize",
}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    }


def body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """The body's object schema, resolved (a body that may also be `null` is a oneOf)."""
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    (ref,) = [s["$ref"] for s in schema.get("oneOf", [schema]) if "$ref" in s]
    resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def an_api_error(answer: httpx.Response, status: int) -> ApiError:
    """The answer, once it is `status` with a body that is exactly an ApiError."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    return msgspec.json.decode(answer.content, type=ApiError)


# The document and the answers do not depend on the database.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_document_says_what_the_api_does(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")
    world.start(push=False)
    with world.api() as api, httpx.Client(base_url=world.url, timeout=30) as anonymous:
        document = anonymous.get("/schema/openapi.json").json()
        ops = operations(document)
        api_ops = {key: op for key, op in ops.items() if key[1].startswith("/api/v1/")}
        assert len(api_ops) >= 11, sorted(api_ops)
        schemas = document["components"]["schemas"]

        # The bearer token is a declared scheme, every API operation requires it and documents
        # its 401; and the API does answer 401 without it, with a body that is an ApiError.
        assert document["components"]["securitySchemes"] == {
            "BearerToken": {"type": "http", "scheme": "bearer"}
        }
        for (method, path), operation in api_ops.items():
            assert operation["security"] == [{"BearerToken": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        refused = an_api_error(anonymous.get("/api/v1/status"), 401)
        assert "bearer token" in refused.error

        # Every error is documented as an ApiError, none in Litestar's own shape.
        assert schemas["ApiError"]["required"] == ["error"]
        assert schemas["ApiError"]["additionalProperties"] is False
        assert set(schemas["ApiError"]["properties"]) == {"error", "detail"}
        assert schemas["Problem"]["required"] == ["message"]
        for (method, path), operation in ops.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response["content"]["application/json"]
                    # Readiness answers "not ready" with its checks, not an error sentence.
                    expected = READINESS_REF if (method, path) == ("get", "/readyz") else ERROR_REF
                    assert content["schema"] == expected, (method, path, status)
        readiness = ops["get", "/readyz"]["responses"]
        assert set(readiness) == {"200", "503"}
        assert readiness["200"]["content"]["application/json"]["schema"] == READINESS_REF
        assert "security" not in ops["get", "/readyz"]  # no token: a load balancer asks it
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert msgspec.json.decode(ready.content, type=Readiness).ready is True
        assert "status_code" not in str(document), "Litestar's default error shape is documented"

        # The statuses the API answers are the ones documented.
        assert set(ops["post", "/api/v1/sync"]["responses"]) == {"202", "400", "401", "404", "413"}
        # 409: sync on for a calendar already synced through another of the user's accounts.
        assert set(ops["patch", "/api/v1/calendars/{calendar_id}"]["responses"]) == {
            "200",
            "400",
            "401",
            "404",
            "409",
            "413",
        }
        assert set(ops["delete", "/api/v1/accounts/{account_id}"]["responses"]) == {
            "200",
            "400",
            "401",
            "404",
        }
        assert set(ops["get", "/api/v1/status"]["responses"]) == {"200", "401"}
        stream = ops["get", "/api/v1/stream"]["responses"]["200"]["content"]
        assert list(stream) == ["text/event-stream"]

        # Bodies refuse unknown fields, and say so; so do the answers' schemas (the dashboard
        # decodes them with the same Structs, which refuse unknown fields too).
        for key, name in BODIES.items():
            assert body_schema(document, ops[key])["title"] == name
            assert body_schema(document, ops[key])["additionalProperties"] is False, name
        open_schemas = [
            name
            for name, schema in schemas.items()
            if schema.get("type") == "object" and schema.get("additionalProperties") is not False
        ]
        assert not open_schemas, open_schemas
        unknown = api.patch(f"/api/v1/calendars/{work['primary'].id}", json={"colour": "red"})
        problem = an_api_error(unknown, 400)
        assert problem.detail, problem
        assert "unknown field `colour`" in problem.detail[0].message, problem
        assert problem.detail[0].source == "body", problem

        # POST /sync's body may be left out, and then every synced calendar is synced.
        assert ops["post", "/api/v1/sync"]["requestBody"]["required"] is False
        assert ops["post", "/api/v1/accounts/google/authorize"]["requestBody"]["required"] is False
        assert ops["patch", "/api/v1/calendars/{calendar_id}"]["requestBody"]["required"] is True
        world.enable(api, work["primary"])
        wait_until(lambda: world.settled(api), what="the first sync")
        accepted = api.post("/api/v1/sync")
        assert accepted.status_code == 202, accepted.text
        assert [job["calendar_id"] for job in accepted.json()["jobs"]] == [work["primary"].id]
        missing = an_api_error(api.patch(f"/api/v1/calendars/{work['primary'].id}"), 400)
        assert "body" in missing.error

        # Ids are bounded exactly as the server checks them: MAX_ID is found or not, one more
        # is refused as invalid.
        calendar_id = ops["patch", "/api/v1/calendars/{calendar_id}"]["parameters"][0]
        assert calendar_id["schema"]["minimum"] == 1
        assert calendar_id["schema"]["maximum"] == MAX_ID
        an_api_error(api.patch(f"/api/v1/calendars/{MAX_ID}", json={}), 404)
        too_big = an_api_error(api.patch(f"/api/v1/calendars/{MAX_ID + 1}", json={}), 400)
        assert "path parameter `calendar_id`" in too_big.error, too_big
        sync_id = schemas["SyncRequest"]["properties"]["calendar_id"]
        assert (sync_id["minimum"], sync_id["maximum"]) == (1, MAX_ID)
        an_api_error(api.post("/api/v1/sync", json={"calendar_id": MAX_ID + 1}), 400)
