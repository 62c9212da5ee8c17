"""Schemathesis against the running server: whatever the OpenAPI schema allows (and what it does
not), the API never answers 5xx, and every error it gives is JSON with an "error"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until

# Per operation and generation mode: enough to reach the odd corners, small enough to stay fast.
EXAMPLES = 25


def _error_is_json(response: requests.Response) -> str | None:
    """Why this 4xx answer breaks the API's error contract, or None when it keeps it (the
    sign-in callback answers a browser, in HTML: only /api/v1 is held to it)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} with a non-JSON body: {response.text[:200]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
        return f"{response.status_code} without an error message: {body!r}"
    return None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_input_the_schema_describes_or_breaks_gets_a_server_error(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com", "Team", readers=("Holidays",))
    home = world.account(f"home-{unique}@example.com")
    world.start(push=False)
    with world.api() as api:
        world.enable(api, work["primary"], home["primary"])
        wait_until(lambda: world.settled(api), what="the initial syncs")
        document = api.get("/schema/openapi.json").json()
        account_ids = [a["id"] for a in api.get("/api/v1/accounts").json()]

    schema = schemathesis.openapi.from_dict(document).exclude(path="/api/v1/stream")
    base_url = world.url.rstrip("/")
    auth = {"Authorization": "Bearer token-ada"}
    # Path ids: this user's real rows (so the handlers run to the end), and any integer at all
    # (so ids the database cannot hold are refused before they reach it).
    edges = st.sampled_from([0, -1, 2**31, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64, 10**30])
    any_int = edges | st.integers(min_value=-(2**80), max_value=2**80)
    real_ids = {
        "calendar_id": st.sampled_from([c.id for c in (*work.values(), *home.values())]) | any_int,
        "account_id": st.sampled_from(account_ids) | any_int,
    }
    seen: list[tuple[str, int]] = []
    # Disconnecting accounts goes last: the other operations get the user's data to work on.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.method.upper() == "DELETE", op.label),
    )
    assert {op.label for op in operations} >= {
        "GET /api/v1/status",
        "PATCH /api/v1/calendars/{calendar_id}",
        "DELETE /api/v1/accounts/{account_id}",
        "POST /api/v1/sync",
    }
    session = requests.Session()

    def exercise(case: Any) -> None:
        """One request; a failure raises, and Hypothesis shrinks it to the smallest case."""
        response = case.call(base_url=base_url, session=session, headers=auth, timeout=30)
        seen.append((case.operation.label, response.status_code))
        case.validate_response(response, checks=[not_a_server_error])
        problem = _error_is_json(response) if case.path.startswith("/api/v1/") else None
        assert problem is None, f"{case.operation.label} {case.path_parameters}: {problem}"

    for operation in operations:
        strategies = [
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        if operation.path_parameters:
            strategies.append(
                st.fixed_dictionaries(
                    {p.name: real_ids[p.name] for p in operation.path_parameters}
                ).flatmap(lambda ids, op=operation: op.as_strategy(path_parameters=ids))
            )
        for strategy in strategies:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                exercise(case)

            try:
                run()
            except Unsatisfiable:
                # Nothing to break in an operation without parameters or body.
                assert not operation.query, operation.label
                assert not operation.body, operation.label

    # The token was used and real work was done: every API operation answered something but
    # 401, and each list answered 2xx at least once.
    answered: dict[str, set[int]] = {}
    for label, status in seen:
        answered.setdefault(label, set()).add(status)
    for operation in operations:
        if operation.path.startswith("/api/v1/"):
            assert answered[operation.label] - {401}, (operation.label, answered)
    for path in ("status", "accounts", "calendars", "busy-blocks", "sync-logs", "channels"):
        statuses = answered[f"GET /api/v1/{path}"]
        assert any(200 <= s < 300 for s in statuses), (path, statuses)
    with httpx.Client(base_url=world.url, headers=auth, timeout=30) as api:
        assert api.get("/api/v1/status").status_code == 200
