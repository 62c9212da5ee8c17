"""A feed's URL: a public key that finds the user's row and a secret whose hash is stored,
compared in constant time; rotating makes a new pair, so the old URL answers 404."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from calsync_server.db.models import BusyFeed

# What a URL's parts may be: a guess at either is refused before the database is asked.
KEY_CHARS = frozenset("0123456789abcdef")
KEY_LENGTH = 24
MAX_SECRET_LENGTH = 64
# Compared against when the key is unknown, so that a wrong key and a wrong secret take alike.
_NOBODY = hashlib.sha256(b"calsync: no such feed").hexdigest()


@dataclass(frozen=True, slots=True)
class FeedAddress:
    """The parts of a feed's URL, known only the moment it is made."""

    key: str
    secret: str

    @property
    def path(self) -> str:
        return f"/feeds/{self.key}/{self.secret}.ics"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def feed_of(session: Session, user_id: int) -> BusyFeed | None:
    return session.exec(select(BusyFeed).where(BusyFeed.user_id == user_id)).first()


def rotate_feed(session: Session, user_id: int, now: datetime) -> FeedAddress:
    """A new URL for the user's feed (made if there was none); the old one stops working."""
    address = FeedAddress(secrets.token_hex(KEY_LENGTH // 2), secrets.token_urlsafe(32))
    feed = feed_of(session, user_id)
    if feed is None:
        feed = BusyFeed(user_id=user_id, key=address.key, secret_hash="", created_at=now)
    feed.key = address.key
    feed.secret_hash = _hash(address.secret)
    feed.created_at = now
    session.add(feed)
    session.flush()
    return address


def remove_feed(session: Session, user_id: int) -> bool:
    """Turn the user's feed off; whether there was one."""
    feed = feed_of(session, user_id)
    if feed is None:
        return False
    session.delete(feed)
    session.flush()
    return True


def user_of_feed(session: Session, key: str, secret: str) -> int | None:
    """The user whose feed this URL is, or None (unknown key, wrong or old secret)."""
    plausible = (
        len(key) == KEY_LENGTH and set(key) <= KEY_CHARS and 0 < len(secret) <= MAX_SECRET_LENGTH
    )
    feed = session.exec(select(BusyFeed).where(BusyFeed.key == key)).first() if plausible else None
    stored = feed.secret_hash if feed is not None else _NOBODY
    matches = hmac.compare_digest(_hash(secret), stored)
    return feed.user_id if feed is not None and matches else None
