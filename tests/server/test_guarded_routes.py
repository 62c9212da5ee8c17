"""Which routes the user guard covers: every route that acts as a user, and not the webhooks."""

from __future__ import annotations

from pathlib import Path

from litestar.handlers import HTTPRouteHandler

from calsync_server.api.auth import require_user
from calsync_server.app import create_app
from shared.settings import Settings


def test_every_route_acting_as_a_user_is_guarded_and_the_webhooks_are_not(tmp_path: Path) -> None:
    app = create_app(
        Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'calsync.db'}"),
        background=False,
    )
    guarded: dict[str, bool] = {}
    for route in app.routes:
        for handler in route.route_handlers:
            if not isinstance(handler, HTTPRouteHandler):
                continue
            is_guarded = require_user in handler.resolve_guards()
            # A user's route authenticates before its parameters and body are read (401 first).
            if "user_id" in handler.resolve_dependencies():
                assert is_guarded, route.path
            guarded[route.path] = is_guarded
    assert guarded["/api/v1/calendars"]
    # The webhooks act as no user: no guard runs (nor costs) on a provider's notification.
    assert not guarded["/webhooks/google"]
    assert not guarded["/webhooks/{provider:str}/{key:str}"]
    assert not guarded["/healthz"]
