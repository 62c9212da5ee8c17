"""One writer of a user's blocks at a time, within a process and across processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.db.engine import lock_beside
from calsync_server.db.models import User


class UserLocks:
    """Block rows of one user are read, planned and written by one sync at a time: two full
    passes side by side would insert the same rows (unique violations, deadlocks), and an echo
    compared with a row another sync is rewriting looks like a hand edit."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    @contextmanager
    def held(self, session: Session, user_id: int) -> Iterator[None]:
        """Hold the user's block-writing lock: a lock per process, and so that several
        processes agree too, the user's row on PostgreSQL (until the transaction ends) or a
        lock file beside a SQLite file (`calsync sync` beside a server)."""
        with self._guard:
            lock = self._locks.setdefault(user_id, threading.Lock())
        with lock, lock_beside(self.db, f"user-{user_id}"):
            if self.db.dialect.name == "postgresql":
                session.exec(select(User.id).where(User.id == user_id).with_for_update()).all()
            yield

    def free_the_file(self, session: Session) -> None:
        """On SQLite, commit what is settled before the provider calls: one writer holds the
        whole file, and a transaction left open while the provider answers would stall every
        webhook and scheduler tick for as long. What is committed (adopted blocks, hand edits
        noticed) is what the provider already holds, so a crash after it loses nothing. The
        user's lock outlives the commit there: it is a lock file. On PostgreSQL it is a row
        lock of this transaction, and row locks stall no one else: keep it."""
        if self.db.dialect.name == "sqlite":
            session.commit()
