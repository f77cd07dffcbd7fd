"""Exactly-once effects under any concurrency (issue 14).

Every effect with an operation key — a ticket, a note, an attachment, a relation — is made
under a claim on its key in the service's database, so only one worker of any process or
replica makes it at a time. The worker first looks in its view of Redmine (as before); when
the effect is missing it takes the claim, and if the key was ever claimed before it reads
Redmine again (another worker may have made the effect after this one read), then makes
it. A worker that dies holding a claim leaves a lease that expires; the next one reads
Redmine again before making the effect. Redmine stays the truth: a claim says "read again",
never "done".

A deadline's firing takes no claim per effect: its row is claimed by one scheduler
(``app/deadlines/service.py``) and every effect of a firing is keyed by that deadline or
made by its rule only (the C-14 letter, Perte de mandat and relation; the reminders' notes),
so the row's claim is theirs — and a tick of a thousand deadlines costs no more statements.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from app.claims import service
from app.context import Context
from app.leadership.flows import replica_name
from integrations.redmine.interface import RedmineUnavailable

WAIT_STEP_SECONDS = 0.2
# A freed claim is kept longer than any unit of work that may have read Redmine before it
# (events and deadlines stop writing at their lease's end, minutes; daily scans, minutes).
KEPT = timedelta(days=1)


class ClaimBusy(RedmineUnavailable):
    """Another worker has been making this effect for longer than ``worker.claim_wait_seconds``:
    retried later like Redmine unavailable (the event or deadline waits, nothing fails)."""


@contextmanager
def claimed(ctx: Context, key: str) -> Iterator[bool]:
    """Hold ``key``'s claim while making its effect; yields True when the key was claimed
    before (read Redmine again before making the effect). Waits for another holder up to
    ``worker.claim_wait_seconds`` (real seconds), then raises ClaimBusy. A unit of work whose
    own claim covers its effects (``ctx.effects_covered``) takes none."""
    if ctx.effects_covered:
        yield False
        return
    w = ctx.settings.worker
    holder = replica_name()
    give_up = time.monotonic() + w.claim_wait_seconds
    while (claim := service.take(ctx.db, key, holder, ctx.clock.now(), w.claim_lease_seconds)) is None:
        if time.monotonic() >= give_up:
            raise ClaimBusy(f"opération « {key} » en cours dans un autre processus : nouvel essai plus tard")
        time.sleep(WAIT_STEP_SECONDS)
    try:
        yield claim.contended
    finally:
        service.release(ctx.db, claim)


def purge_claims(ctx: Context) -> int:
    """Forget the claims freed more than a day ago (daily, with the inbox purge)."""
    return service.purge(ctx.db, ctx.clock.now() - KEPT)
