"""The reconciliation of the tickets the service tracks (issue 16): what polling cannot see.

Polling lists the project's issues updated since its cursor, so it never sees a ticket
deleted or moved to another project, nor a relation added or removed (Redmine does not
change ``updated_on`` for it). Processing records what it read of each ticket
(``remember``: a fingerprint of its project, tracker, closedness and related tickets);
daily, and at start, every tracked ticket — open when last read, or with pending deadlines
— is read again from Redmine's issue list, 100 a request, and each one found deleted,
elsewhere or different gets an event, as if Redmine had sent one: processing re-reads it
and does what its state calls for (a deleted or moved ticket's deadlines cancelled…).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.calendar import paris_date
from app.context import Context
from app.deadlines import service as deadlines
from app.inbox import service as inbox
from app.inbox.models import ParsedEvent
from app.reconciliation import service
from integrations.redmine.interface import PAGE, Issue, IssueSummary


NAMED = 20  # tickets named per kind in a report's summary


@dataclass(frozen=True)
class ReconcileReport:
    checked: int  # tracked tickets looked up in Redmine
    absent: list[int]  # deleted, or out of the service's sight
    moved: list[int]  # in another project
    changed: list[int]  # tracker, closed, relations, or a change polling has not read
    queued: int  # events newly queued (those of an earlier run of the day are not queued again)

    def summary(self) -> str:
        """One French line (the CLI and the log); the tickets of each kind named, the first
        ``NAMED`` of them."""
        def ids(found: list[int]) -> str:
            if not found:
                return "0"
            more = f" et {len(found) - NAMED} autre(s)" if len(found) > NAMED else ""
            return f"{len(found)} ({', '.join(f'#{i}' for i in found[:NAMED])}{more})"

        return (f"rapprochement : {self.checked} ticket(s) suivi(s) vérifié(s), absent(s) de Redmine : "
                f"{ids(self.absent)}, dans un autre projet : {ids(self.moved)}, modifié(s) : {ids(self.changed)}, "
                f"{self.queued} événement(s) en file")


def fingerprint(issue: Issue | IssueSummary) -> str:
    """sha256 (hex, 64 characters) of what the reconciliation compares: the ticket's project
    id, tracker, closedness and the ids of its related tickets (in any order, each once) —
    the same for a ticket read whole (``get_issue``) and as the issue list shows it."""
    related = ",".join(str(i) for i in sorted(set(issue.relations)))
    return hashlib.sha256(f"{issue.project_id}|{issue.tracker}|{int(issue.closed)}|{related}".encode()).hexdigest()


def remember(ctx: Context, issue: Issue) -> None:
    """Processing read this ticket: its fingerprint, and whether it is open (in the project
    and not closed), recorded for the next reconciliation."""
    open_ = issue.project_id == ctx.redmine.project_id and not issue.closed
    service.remember(ctx.db, issue.id, fingerprint(issue), open_, ctx.clock.now())


def forget(ctx: Context, issue_id: int) -> None:
    """Processing found the ticket gone, out of sight or in another project: no longer tracked."""
    service.forget(ctx.db, issue_id)


def tracked(ctx: Context) -> list[int]:
    """The tickets the service tracks, ascending: open when last read, or with a pending deadline."""
    return sorted(service.open_issue_ids(ctx.db) | deadlines.active_issue_ids(ctx.db))


def is_tracked(ctx: Context, issue_id: int) -> bool:
    """Whether the service tracks this ticket (open when last read, or with a pending deadline)."""
    return service.is_open(ctx.db, issue_id) or issue_id in deadlines.active_issue_ids(ctx.db, [issue_id])


def reconcile(ctx: Context) -> ReconcileReport:
    """Look every tracked ticket up in Redmine (``issues_by_ids``: ``PAGE`` a
    request, in any project) and queue an ``issue.reconciled`` event for each one absent,
    in another project, whose fingerprint differs from the one recorded (or none was), or
    listed with an ``updated_on`` newer than the version polling read. Its key names the
    ticket, what was found and the day (Paris): a second run the same day queues nothing
    new. Raises RedmineError when Redmine fails (the batches before are queued)."""
    ids = tracked(ctx)
    now = ctx.clock.now()
    day = paris_date(now).isoformat()
    absent: list[int] = []
    moved: list[int] = []
    changed: list[int] = []
    queued = 0
    for start in range(0, len(ids), PAGE):
        batch = ids[start:start + PAGE]
        found = {summary.id: summary for summary in ctx.redmine.issues_by_ids(batch)}
        known = service.fingerprints(ctx.db, batch)
        polled = {i: version.updated_on for i, version in inbox.polled_versions(ctx.db, list(found)).items()}
        events = []
        for issue_id in batch:
            summary = found.get(issue_id)
            if summary is None:
                absent.append(issue_id)
                what = "absent"
            else:
                what = fingerprint(summary)
                if summary.project_id != ctx.redmine.project_id:
                    moved.append(issue_id)
                elif what != known.get(issue_id) or summary.updated_on > polled.get(issue_id, summary.updated_on):
                    changed.append(issue_id)
                else:
                    continue
            events.append((ParsedEvent(f"reconciliation/{issue_id}/{what}/{day}", "internal", "issue.reconciled",
                                       issue_id, None), now))
        if events:
            queued += sum(stored.created for stored in inbox.store_events(ctx.db, events))
    return ReconcileReport(len(ids), absent, moved, changed, queued)
