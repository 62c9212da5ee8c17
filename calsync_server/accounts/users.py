"""The people of one server: add, list, remove and re-key users, straight on the database.

There is no admin API: managing users is the operator's job, done where the database and
CALSYNC_HOME are (as `calsync db upgrade`), and an API route for it would need a second kind
of token that can act for everyone. A running server sees the changes within
`TOKEN_CACHE_SECONDS` (calsync_server/api/auth.py)."""

from __future__ import annotations

import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from calsync_server.accounts.disconnect import disconnect_account
from calsync_server.accounts.service import DEFAULT_USER, TOKEN_FILE, token_hash
from calsync_server.db.models import Account, User
from shared.schemas import DisconnectReport

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

MAX_NAME_LENGTH = 100


class UserError(Exception):
    """A request about users that cannot be done; the message is for the operator."""


@dataclass(frozen=True)
class UserSummary:
    id: int
    name: str
    accounts: int
    created_at: datetime


def new_api_token() -> str:
    return secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """The name as stored, or UserError saying what is wrong with it."""
    cleaned = name.strip()
    if not cleaned:
        raise UserError("a user needs a name (it cannot be empty)")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise UserError(f"a user's name is at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise UserError("a user's name cannot hold control characters")
    if cleaned.isdigit():
        # Commands take NAME or ID: a name made of digits would read as an id.
        raise UserError("a user's name cannot be only digits (it would read as an id)")
    return cleaned


def add_user(session: Session, name: str, now: datetime) -> tuple[User, str]:
    """A new user and its API token (only its hash is stored: show the token once)."""
    cleaned = check_name(name)
    if session.exec(select(User).where(User.name == cleaned)).first() is not None:
        raise UserError(f"a user named {cleaned!r} already exists (see `calsync users list`)")
    token = new_api_token()
    user = User(name=cleaned, api_token_hash=token_hash(token), created_at=now)
    session.add(user)
    try:
        session.flush()
    except sa.exc.IntegrityError:  # another process added the same name in between
        session.rollback()
        raise UserError(f"a user named {cleaned!r} already exists") from None
    return user, token


def list_users(session: Session) -> list[UserSummary]:
    counts = dict(
        session.exec(
            select(Account.user_id, func.count(col(Account.id))).group_by(col(Account.user_id))
        ).all()
    )
    return [
        UserSummary(user.id, user.name, counts.get(user.id, 0), user.created_at)
        for user in session.exec(select(User).order_by(col(User.id)))
        if user.id is not None
    ]


def find_user(session: Session, name_or_id: str) -> User:
    """The user of that exact name, or of that id; UserError naming what was looked for."""
    wanted = name_or_id.strip()
    if not wanted:
        raise UserError("name a user (NAME or ID; see `calsync users list`)")
    user = session.exec(select(User).where(User.name == wanted)).first()
    if user is None and wanted.isdigit():
        user = session.get(User, int(wanted))
    if user is None:
        raise UserError(f"no user {wanted!r} (see `calsync users list`)")
    return user


def rotate_token(
    session: Session, user: User, home: Path, configured_default_token: str | None
) -> str:
    """A new API token for `user`; the old one stops working. The default user's token lives
    in CALSYNC_HOME (the server re-keys that user to it at start), so it is rewritten there;
    one set by CALSYNC_API_TOKEN cannot be changed from here."""
    is_default = user.name == DEFAULT_USER
    if is_default and configured_default_token:
        raise UserError(
            "the default user's token is CALSYNC_API_TOKEN: change that setting and restart "
            "the server instead"
        )
    token = new_api_token()
    user.api_token_hash = token_hash(token)
    session.add(user)
    session.flush()
    if is_default:
        # Before the caller commits: should the commit fail, the server's next start re-keys
        # the default user to the file's token, so the two can never stay apart.
        _write_token_file(home, token)
    return token


def _write_token_file(home: Path, token: str) -> None:
    """Replace CALSYNC_HOME/api-token whole (0600), never leaving it half-written."""
    home.mkdir(parents=True, exist_ok=True)
    draft = home / f".{TOKEN_FILE}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    draft.replace(home / TOKEN_FILE)


def remove_user(runtime: Runtime, user_id: int) -> list[DisconnectReport]:
    """Blocking. Disconnect every account of the user (domain.md's disconnect: channels,
    blocks, token, local data), then delete the user, only once every account has gone."""
    with Session(runtime.db) as session:
        user = session.get(User, user_id)
        if user is None:
            raise UserError(f"no user {user_id}")
        if user.name == DEFAULT_USER:
            raise UserError(
                "the default user holds the server's own token (CALSYNC_HOME/api-token) and "
                "comes back at the next start: remove its accounts with "
                "`calsync accounts remove` instead"
            )
        account_ids = [
            a.id for a in session.exec(select(Account).where(Account.user_id == user_id)) if a.id
        ]
    reports = []
    for account_id in account_ids:
        report = disconnect_account(runtime, user_id, account_id)
        if report is not None:
            reports.append(report)
    with Session(runtime.db) as session:
        left = session.exec(select(Account.id).where(Account.user_id == user_id)).first()
        if left is not None:
            raise UserError(
                "an account was connected while the user was being removed: run the command again"
            )
        user = session.get(User, user_id)
        if user is not None:
            session.delete(user)  # its pending sign-ins go with it (cascade)
            session.commit()
    return reports
