"""Leases: a job that one server process does on behalf of all of them, taken in the database."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from calsync_server.db.models import Lease
from shared.clock import Clock


def holder_name() -> str:
    """Unique per holder: two keepers in one process are two holders."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class Leases:
    def __init__(self, db: sa.Engine, clock: Clock, holder: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder or holder_name()

    def take(self, name: str, ttl: timedelta) -> bool:
        """Take (or extend) the lease unless another holder has it unexpired."""
        now = self.clock.now()
        with self.db.begin() as connection:
            # Atomic: of two processes racing for an expired lease, one UPDATE matches.
            taken = connection.execute(
                sa.update(Lease)
                .where(
                    col(Lease.name) == name,
                    sa.or_(col(Lease.holder) == self.holder, col(Lease.expires_at) <= now),
                )
                .values(holder=self.holder, expires_at=now + ttl)
            )
            if taken.rowcount == 1:
                return True
        try:
            with self.db.begin() as connection:
                connection.execute(
                    sa.insert(Lease).values(name=name, holder=self.holder, expires_at=now + ttl)
                )
        except sa.exc.IntegrityError:
            return False  # held by another
        return True

    def release(self, name: str) -> None:
        with self.db.begin() as connection:
            connection.execute(
                sa.update(Lease)
                .where(col(Lease.name) == name, col(Lease.holder) == self.holder)
                .values(expires_at=self.clock.now())
            )

    @contextmanager
    def held(self, name: str, ttl: timedelta) -> Iterator[bool]:
        """Yields whether the lease is held; released on the way out if it was."""
        taken = self.take(name, ttl)
        try:
            yield taken
        finally:
            if taken:
                self.release(name)
