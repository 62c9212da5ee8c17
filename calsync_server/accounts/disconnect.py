"""Disconnecting an account, in domain.md's order: channels, blocks, token, local data."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import httpx
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, Calendar, SyncJob
from calsync_server.providers.credentials import revocable_token
from calsync_server.providers.registry import ProviderConfig, revoke_address
from shared.domain import AccountState, JobState
from shared.schemas import DisconnectReport

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

log = logging.getLogger(__name__)

# How long a disconnect waits for a sync of the account's calendars that is already running.
WAIT_FOR_RUNNING_SECONDS = 60.0


def disconnect_account(runtime: Runtime, user_id: int, account_id: int) -> DisconnectReport | None:
    """Blocking. None when the user has no such account."""
    with Session(runtime.db) as session:
        account = session.exec(
            select(Account).where(Account.id == account_id, Account.user_id == user_id)
        ).first()
        if account is None:
            return None
        email = account.email
        reachable = account.state == AccountState.ACTIVE
        calendars = list(session.exec(select(Calendar).where(Calendar.account_id == account_id)))
        calendar_ids = [c.id for c in calendars if c.id is not None]
        # Off first: no new sync starts writing blocks for a calendar that is leaving.
        for calendar in calendars:
            calendar.sync_enabled = False
            session.add(calendar)
        session.commit()
    notes: list[str] = []
    channels_stopped = runtime.channels.stop_calendar_channels(calendar_ids)
    if not _wait_for_running(runtime, calendar_ids):
        notes.append("a sync was still running: its leftovers go at the next full reconcile")
    report = runtime.engine.release_account(account_id)
    if report.error:
        notes.append(f"some blocks could not be removed: {report.error}")
    if not reachable:
        notes.append("the account's login had expired: blocks inside its own calendars stay")
    revoked = _revoke(runtime, account_id) if reachable else False
    with Session(runtime.db) as session:
        account = session.get(Account, account_id)
        if account is not None:
            # Cascades to calendars, events, blocks, channels, jobs and logs; the sealed
            # credentials go with the row.
            session.delete(account)
            session.commit()
    # Its kept providers hold a login that is gone now.
    runtime.engine.providers.forget(account_id)
    runtime.wake()
    return DisconnectReport(
        account_id=account_id,
        email=email,
        blocks_deleted=report.blocks_deleted,
        channels_stopped=channels_stopped,
        token_revoked=revoked,
        notes=notes,
    )


def _wait_for_running(runtime: Runtime, calendar_ids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT_FOR_RUNNING_SECONDS
    pause = threading.Event()
    while time.monotonic() < deadline:
        with Session(runtime.db) as session:
            running = session.exec(
                select(SyncJob.id).where(
                    col(SyncJob.calendar_id).in_(calendar_ids), SyncJob.state == JobState.RUNNING
                )
            ).first()
        if running is None:
            return True
        pause.wait(0.1)
    return False


def _revoke(runtime: Runtime, account_id: int) -> bool:
    """Revoke the grant at the provider (the refresh token, so every access token dies too)."""
    with Session(runtime.db) as session:
        account = session.get(Account, account_id)
        if account is None or account.credentials_encrypted is None:
            return False
        stored = runtime.vault.open(account.credentials_encrypted)
        address = revoke_address(
            str(account.provider), ProviderConfig(runtime.settings.google_api_url)
        )
    token = revocable_token(stored)
    if not token or address is None:
        return False
    try:
        answer = httpx.post(address, data={"token": token}, timeout=10)
    except httpx.HTTPError as exc:
        log.warning("revoking the token of account %s failed: %s", account_id, type(exc).__name__)
        return False
    return answer.status_code == 200
