"""B6 — reconciliation: one `reconcile` (app.reconciliation.flows.reconcile through the REST
RedmineClient) over 10 000 tracked tickets of the local Redmine, of which 5 were deleted,
5 moved to another project, 10 given a relation (5 pairs) and 5 closed since processing
read them: the HTTP requests the service makes to Redmine (RedmineClient.requests_made),
the time, and that exactly those 25 are queued — then processed, and a second run finds
nothing more.

The project (`bench-reconcile`, 10 000 open issues) is made once by rails runner, as B4's,
topped up when runs have deleted, moved or closed some, and reused. Each run: a fresh
service database where the 10 000 tickets are tracked as processing and polling left them
(their fingerprints and ``updated_on``, read from Redmine by rails runner, inserted in
bulk), the 25 changes made by an administrator (over REST; the closings by rails runner),
then the measured runs.

    python -m benchmarks.b6_reconciliation
"""

from __future__ import annotations

import sys
from datetime import datetime
from time import perf_counter

from sqlalchemy import insert

from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from app.inbox import service as inbox
from app.inbox.models import EventState, PolledIssue
from app.processing.flows import work
from app.reconciliation.flows import fingerprint, reconcile
from app.reconciliation.models import TrackedIssue
from benchmarks.common import BULK_USER, bulk_project, print_table, sqlite_database, wait_for_redmine, write_results
from integrations.redmine.client import RedmineClient
from integrations.redmine.interface import PAGE, IssueSummary
from tests.e2e.redmine_admin import RedmineAdmin, rails_runner

NAME = "b6_reconciliation"
PROJECT = "bench-reconcile"
ELSEWHERE = "bench-reconcile-ailleurs"  # where 5 tickets are moved (the service can read it)
ISSUES = 10_000
TRACKER = "Tâche gestionnaire"
EACH = 5  # tickets deleted, moved, closed; pairs given a relation

# The project's open issues as Redmine's issue list shows them: id, updated_on (to the
# second, as the API gives it), ids of the related issues.
OPEN_ISSUES = """
project = Project.find_by!(identifier: ARGV[0])
ids = Issue.open.where(project_id: project.id).pluck(:id)
related = Hash.new { |hash, key| hash[key] = [] }
IssueRelation.where(issue_from_id: ids).or(IssueRelation.where(issue_to_id: ids)).each do |r|
  related[r.issue_from_id] << r.issue_to_id
  related[r.issue_to_id] << r.issue_from_id
end
Issue.where(id: ids).order(:id).pluck(:id, :updated_on).each do |id, at|
  puts "#{id} #{at.utc.iso8601} #{related[id].join(',')}"
end
"""
# Closed as an administrator in the console would: the bulk-made issues' status (Redmine's first
# open one) has no workflow to « Fermé », and Redmine drops a status change the workflow refuses.
CLOSE = """
closed = IssueStatus.find_by!(name: ARGV[1])
Issue.where(id: ARGV[0].split(",").map(&:to_i)).each { |issue| issue.update!(status: closed) }
"""


def open_issues(project_id: int) -> list[IssueSummary]:
    summaries = []
    for line in rails_runner(OPEN_ISSUES, PROJECT).splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        related = [int(i) for i in parts[2].split(",") if i]
        summaries.append(IssueSummary(int(parts[0]), project_id, TRACKER, False,
                                      datetime.fromisoformat(parts[1].replace("Z", "+00:00")), related))
    return summaries


def track(db: Database, summaries: list[IssueSummary], now: datetime) -> None:
    """The tickets as processing (``tracked_issues``) and polling (``polled_issues``) left them."""
    with db.session() as session:
        session.execute(insert(TrackedIssue.__table__), [
            dict(issue_id=s.id, fingerprint=fingerprint(s), open=True, seen_at=now) for s in summaries])
        session.execute(insert(PolledIssue.__table__), [
            dict(issue_id=s.id, updated_on=s.updated_on, settled=True) for s in summaries])


def change(admin: RedmineAdmin, summaries: list[IssueSummary]) -> dict[str, list[int]]:
    """EACH tickets deleted, moved, closed and EACH pairs related, spread over the project."""
    step = len(summaries) // (5 * EACH)
    picked = [summaries[n * step].id for n in range(5 * EACH)]
    deleted, moved, closed, related = (picked[:EACH], picked[EACH:2 * EACH], picked[2 * EACH:3 * EACH],
                                       picked[3 * EACH:])
    for issue_id in deleted:
        admin._call("DELETE", f"/issues/{issue_id}.json")
    for issue_id in moved:
        admin.update_issue(issue_id, project_id=ELSEWHERE)
    rails_runner(CLOSE, ",".join(map(str, closed)), "Fermé")
    for a, b in zip(related[::2], related[1::2]):
        admin._call("POST", f"/issues/{a}/relations.json", json={"relation": {"issue_to_id": b,
                                                                               "relation_type": "relates"}})
    return {"deleted": deleted, "moved": moved, "closed": closed, "related": related}


def measured(ctx: Context, run) -> tuple[dict, object]:
    """``run(ctx)``'s time, requests, and the time spent in ``issues_by_ids`` calls (the
    request and reading its answer)."""
    client = ctx.redmine
    by_ids = type(client).issues_by_ids
    listing = [0.0]

    def timed(ids: list[int]) -> list[IssueSummary]:
        started = perf_counter()
        try:
            return by_ids(client, ids)
        finally:
            listing[0] += perf_counter() - started

    client.issues_by_ids = timed
    before = client.requests_made
    started = perf_counter()
    try:
        result = run(ctx)
    finally:
        del client.issues_by_ids
    return {"seconds": round(perf_counter() - started, 2), "requests": client.requests_made - before,
            "listing_seconds": round(listing[0], 2)}, result


def main() -> int:
    env = wait_for_redmine()
    admin = RedmineAdmin(env["REDMINE_URL"], env["REDMINE_ADMIN_KEY"])
    started = perf_counter()
    bulk_project(admin, PROJECT, ISSUES, TRACKER)
    if admin.http.get(f"/projects/{ELSEWHERE}.json").status_code == 404:
        admin.new_project(ELSEWHERE, "recouvrement", [admin.person(BULK_USER, "Claire", "Contentieux")])
    project_id = admin._call("GET", f"/projects/{PROJECT}.json")["project"]["id"]
    summaries = open_issues(project_id)
    setup = perf_counter() - started
    with sqlite_database() as database_url:
        settings = Settings(redmine_url=env["REDMINE_URL"], redmine_api_key=env["REDMINE_SERVICE_KEY"],
                            database_url=database_url, project=PROJECT)
        db = Database(database_url)
        db.migrate()
        ctx = Context(settings=settings, clock=Clock(), db=db, redmine=RedmineClient(settings))
        track(db, summaries, ctx.clock.now())
        changes = change(admin, summaries)
        first, report = measured(ctx, reconcile)
        processing, worked = measured(ctx, work)
        second, again = measured(ctx, reconcile)
        events = [e for e in inbox.list_events(db, limit=1000) if e.event_type == "issue.reconciled"]
        db.engine.dispose()

    queued_right = (sorted(report.absent) == sorted(changes["deleted"]) and sorted(report.moved) == sorted(changes["moved"])
                    and sorted(report.changed) == sorted(changes["closed"] + changes["related"])
                    and report.queued == 5 * EACH)
    handled = (worked.processed == 5 * EACH and all(e.state is EventState.done for e in events)
               and again.queued == 0 and again.checked == len(summaries) - 3 * EACH)
    # Proportional to the tracked tickets: one list request per 100, plus the project and
    # statuses a new client reads once; ≤ 110 for 10 000.
    target = len(summaries) // PAGE + 10
    met = first["requests"] <= target
    print_table(f"B6 reconciliation: {len(summaries):,} tracked tickets in {PROJECT}, {5 * EACH} changed "
                f"(target ≤ {target} requests)",
                ["run", "requests", "seconds", "of which lists", "checked", "absent", "moved", "changed", "queued"],
                [["first (25 changes)", first["requests"], first["seconds"], first["listing_seconds"], report.checked,
                  len(report.absent), len(report.moved), len(report.changed), report.queued],
                 ["second (none since)", second["requests"], second["seconds"], second["listing_seconds"],
                  again.checked, len(again.absent), len(again.moved), len(again.changed), again.queued]])
    print(f"processing the {worked.processed} queued events: {processing['requests']} requests, "
          f"{processing['seconds']} s")
    print(f"target met: {'yes' if met else 'NO'}; queued exactly the changed: {'yes' if queued_right else 'NO'}; "
          f"handled, nothing more the second time: {'yes' if handled else 'NO'}; project ready in {setup:.1f} s")
    write_results(NAME, {"project": PROJECT, "tracked": len(summaries), "changes": changes,
                         "setup_seconds": round(setup, 1),
                         "first_run": first | {"checked": report.checked, "absent": report.absent,
                                               "moved": report.moved, "changed": report.changed,
                                               "queued": report.queued},
                         "processing": processing | {"events": worked.processed},
                         "second_run": second | {"checked": again.checked, "queued": again.queued},
                         "target": {"max_requests": target}, "target_met": met})
    return 0 if queued_right and handled else 1


if __name__ == "__main__":
    sys.exit(main())
