"""CalDAV accounts over HTTP: a URL, a user name and a password, checked against the server
before anything is stored. The password is never answered back nor logged."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import JSONBody

from calsync_server.accounts.caldav_signin import connect_caldav
from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_BODY, errors
from calsync_server.api.routes import _strict
from calsync_server.providers.signin import SignInRefused
from calsync_server.runtime import Runtime
from shared.schemas import CalDAVConnected, CalDAVLogin

UserId = NamedDependency[int]


class CalDAVSignIn(Controller):
    path = "/api/v1/accounts/caldav"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @post(
        "/",
        status_code=201,
        sync_to_thread=True,
        responses=errors(*WITH_BODY),
        dependencies={"strict": Provide(_strict(CalDAVLogin))},
    )
    def connect(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        data: JSONBody[CalDAVLogin],
        strict: NamedDependency[CalDAVLogin | None],
    ) -> CalDAVConnected:
        """Connect a CalDAV account (iCloud: https://caldav.icloud.com/, the Apple ID and an
        app-specific password, which opens the whole iCloud account). The server lists the
        calendars first: a wrong password answers 401, an unreachable server or an address
        that is not CalDAV 400, and nothing is stored. Its calendars arrive with sync off;
        the same login again brings the account back with its calendars and settings."""
        data = strict or data  # `data` documents the body; `strict` is what it really says
        runtime: Runtime = request.app.state.runtime
        try:
            signed_in = connect_caldav(runtime, user_id, data.url, data.username, data.password)
        except SignInRefused as exc:
            raise HTTPException(str(exc), status_code=exc.status) from None
        return CalDAVConnected(
            account_id=signed_in.account_id,
            email=signed_in.email,
            reauthorised=signed_in.reauthorised,
            calendars=signed_in.calendars,
        )
