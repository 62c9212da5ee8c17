"""Schemathesis against the running server, on each database: whatever the OpenAPI schema allows
(and what it does not), the API never answers 5xx, and every answer is one the schema documents:
its status, its content type, its body's schema (errors included: `ApiError`, so every error is
JSON with an "error"). Valid input is accepted, invalid input refused, and a route behind the
bearer token refuses a request without it.

Every check schemathesis has runs on every request, but for the exclusions commented below.
Some only act in phases this test does not run (coverage: `unsupported_method`,
`missing_required_header`; stateful: `use_after_free`, `ensure_resource_availability`), on
requests it does not send (OPTIONS: `allow_header_conformance`), or with several identities
(`object_level_authorization`); tests/server/test_api.py covers 405, 401 and users' isolation."""

from __future__ import annotations

import re
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)
from schemathesis.config import SchemathesisConfig

from shared.schemas import MAX_ID
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until

# Per operation and generation mode: enough to reach the odd corners, small enough to stay fast.
EXAMPLES = 25

# Refusals of schema-valid input that no schema can express, as the error says them.
PROVIDER_WEBHOOK = "/webhooks/{provider}/{key}"
REFUSALS_THE_SCHEMA_CANNOT_SAY = re.compile(
    "|".join(
        (
            # Data, not shape: a cursor is opaque, and a calendar's state decides what it takes.
            "cursor is not one this server gave out",
            "has sync turned off: turn it on first",
            "this calendar is read-only",
            # JSON Schema counts 7.0 as an integer; the API reads a number as it is spelled.
            r"Expected `int( \| null)?`, got `float`",
            # A CalDAV login is checked against its server: one the tests cannot reach, an
            # address that is not one, or plain http to another machine is refused.
            "cannot reach the CalDAV server",
            "the server URL",
            "no CalDAV calendars found at",
            "the user name is empty",
            "refused calsync access",
            # The timeline's range: its two ends relate (end after start, at most 35 days),
            # and an instant needs its offset, which the date-time format cannot say.
            "end must come after start",
            "the range may span at most",
            "needs an offset or Z",
            # A calendar's rules: a regex must compile, hours must be times of day in order
            # on named weekdays, a pattern must say something (sync/rules.py's sentences).
            "is not a valid regular expression",
            "a title pattern",
            "title patterns per calendar",
            "working hours",
            "is not a weekday",
            # Explain: which event is asked about takes one of three sets of parameters, and
            # only a held calendar's deletes can be confirmed (issue 19).
            "give event_id, calendar_id and provider_event_id, or title",
            "provider_event_id needs calendar_id",
            "holds no deletes",
        )
    )
)


def accepts_valid_data(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' `positive_data_acceptance`, but for REFUSALS_THE_SCHEMA_CANNOT_SAY."""
    if response.status_code == 400 and (
        # What a notification must carry depends on the provider in the path (Google: headers;
        # Graph: a JSON body or a validationToken), which one schema cannot say.
        case.operation.path == PROVIDER_WEBHOOK
        or REFUSALS_THE_SCHEMA_CANNOT_SAY.search(response.json().get("error", ""))
    ):
        return None
    return positive_data_acceptance(ctx, response, case)


def test_the_api_answers_only_what_its_schema_documents_whatever_the_input(
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

    # The token through the schema's own security scheme: a case generated without it (the
    # negative mode drops required headers) goes without it, and is expected to be refused.
    config = SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"BearerToken": {"bearer": "token-ada"}}}}
    )
    # The stream never ends: tests/server/test_stream.py covers it.
    schema = schemathesis.openapi.from_dict(document, config=config).exclude(path="/api/v1/stream")
    base_url = world.url.rstrip("/")
    # Path ids: this user's real rows (so the handlers run to the end), and any integer at all
    # (so ids the database cannot hold, 2**31 and up on PostgreSQL, are refused before it).
    edges = st.sampled_from(
        [0, -1, 2**31, MAX_ID, MAX_ID + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
    )
    any_int = edges | st.integers(min_value=-(2**80), max_value=2**80)
    real_ids = {
        "calendar_id": [c.id for c in (*work.values(), *home.values())],
        "account_id": account_ids,
        # Webhooks: every provider's route, and a key no subscription has (acknowledged).
        "provider": ["google", "microsoft", "caldav"],
        "key": ["no-such-key"],
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

    def exercise(case: Any, *, ids_replaced: bool) -> None:
        """One request and every check schemathesis has for it; a failure raises, and
        Hypothesis shrinks it to the smallest case."""
        response = case.call(base_url=base_url, session=session, timeout=30)
        seen.append((case.operation.label, response.status_code))
        # Always replaced by `accepts_valid_data`, where it applies.
        excluded = [positive_data_acceptance]
        checks = [accepts_valid_data]
        if ids_replaced:
            # The generation mode says what the generated parts are; an id put in the place of
            # one may be valid in a negative case, or invalid in a positive one. Its answer is
            # still checked: a documented status, content type and body.
            excluded.append(negative_data_rejection)
            checks = []
        case.validate_response(response, excluded_checks=excluded, additional_checks=checks)

    for operation in operations:
        strategies = [
            (operation.as_strategy(generation_mode=GenerationMode.POSITIVE), False),
            (operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), False),
        ]
        if operation.path_parameters:
            ids = {p.name: st.sampled_from(real_ids[p.name]) for p in operation.path_parameters}
            strategies.append(
                (
                    st.fixed_dictionaries(ids).flatmap(
                        lambda ids, op=operation: op.as_strategy(
                            generation_mode=GenerationMode.POSITIVE, path_parameters=ids
                        )
                    ),
                    False,
                )
            )
            anything = {p.name: any_int for p in operation.path_parameters}
            strategies.append(
                (
                    st.fixed_dictionaries(anything).flatmap(
                        lambda ids, op=operation: op.as_strategy(path_parameters=ids)
                    ),
                    True,
                )
            )
        for strategy, ids_replaced in strategies:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                exercise(case, ids_replaced=ids_replaced)  # noqa: B023 (run at once, below)

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
    # The documented headers took the webhook past its checks, and broken ones were refused.
    assert {200, 400} <= answered["POST /webhooks/google"], answered["POST /webhooks/google"]
    with httpx.Client(
        base_url=world.url, headers={"Authorization": "Bearer token-ada"}, timeout=30
    ) as api:
        assert api.get("/api/v1/status").status_code == 200
