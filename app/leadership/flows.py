"""Which replica runs the singleton jobs.

Every replica takes webhooks and works the inbox; one at a time fires deadlines, polls
Redmine and runs the daily scans, under the ``scheduler`` lease. The leader renews it every
``leader_renew_seconds``; when it dies, another replica takes it once it expires, so the
takeover is bounded by ``leader_lease_seconds + leader_renew_seconds``. Two leaders for a
moment (a stalled process whose lease ran out) do no harm: deadlines and events are still
claimed row by row, and polling is deduplicated by the inbox. A leader whose scheduler job
is stuck (``stalled``, from ``app/health/heartbeats.py``) stops renewing, so that another
replica takes over; it renews again once the job ends.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime

from app.context import Context
from app.leadership import service

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership:
    def __init__(self, ctx: Context, name: str = SCHEDULER, holder: str | None = None,
                 stalled: Callable[[], list[str]] = list):
        self.ctx = ctx
        self.name = name
        self.holder = holder or replica_name()
        self.stalled = stalled  # why this replica cannot make progress (French), if it cannot
        self._until: datetime | None = None

    def holds(self) -> bool:
        return self._until is not None and self.ctx.clock.now() < self._until

    def renew(self) -> bool:
        """Take or keep the lease; True when this replica has just become the leader. Neither
        while ``stalled`` says why not (the lease then runs out and another replica takes it)."""
        was_leader = self.holds()
        reasons = self.stalled()
        if reasons:
            log.warning("bail « %s » non renouvelé, une autre instance pourra le prendre : %s", self.name,
                        "; ".join(reasons))
            return False
        try:
            self._until = service.acquire(self.ctx.db, self.name, self.holder, self.ctx.clock.now(),
                                          self.ctx.settings.worker.leader_lease_seconds)
        except Exception as exc:  # database unreachable: keep what we had until it expires
            log.warning("bail « %s » non renouvelé : %s", self.name, exc)
            return False
        if self._until and not was_leader:
            log.info("cette instance (%s) exécute désormais les tâches planifiées", self.holder)
        elif was_leader and not self._until:
            log.warning("bail « %s » perdu : une autre instance exécute les tâches planifiées", self.name)
        return bool(self._until) and not was_leader

    def release(self) -> None:
        if self._until is not None:
            service.release(self.ctx.db, self.name, self.holder, self.ctx.clock.now())
            self._until = None

    def only_when_leading(self, job: Callable[[Context], None]) -> Callable[[Context], None]:
        def guarded(ctx: Context) -> None:
            if self.holds():
                job(ctx)

        guarded.__name__ = job.__name__
        return guarded
