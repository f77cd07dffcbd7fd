"""B4 — polling: one `sync` (app.inbox.flows.poll_once through the REST RedmineClient) on a
Redmine project of 5 000 issues of which 20 changed since the last poll: the HTTP requests
the service makes to Redmine (RedmineClient.requests_made) and the time.

The project (`bench-polling` in the local Redmine, scripts/redmine-local.sh) and its 5 000
issues are made once, by rails runner, and reused by later runs. Each run: a fresh service
database, a first sync from the newest issue (RECOUVREMENT_SYNC_SINCE, as at go-live) that
sets the cursor, 20 issues changed over REST by a user, then the measured second sync; and
a third one at once, nothing changed (what is left to read again: versions of the newest
second, not yet settled, issue 16).

    python -m benchmarks.b4_polling
"""

from __future__ import annotations

import sys
from datetime import datetime
from time import perf_counter

from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from app.inbox.flows import poll_once
from benchmarks.common import BULK_USER, bulk_project, print_table, sqlite_database, wait_for_redmine, write_results
from integrations.redmine.client import RedmineClient
from tests.e2e.redmine_admin import RedmineAdmin

NAME = "b4_polling"
PROJECT = "bench-polling"
ISSUES = 5_000
CHANGED = 20
TRACKER = "Tâche gestionnaire"
USER = BULK_USER


def ensure_project(admin: RedmineAdmin) -> int:
    """The project with ISSUES issues, made if absent; its issue count."""
    return bulk_project(admin, PROJECT, ISSUES, TRACKER)


def newest_change(admin: RedmineAdmin) -> datetime:
    found = admin.http.get("/issues.json", params={"project_id": PROJECT, "status_id": "*", "sort": "updated_on:desc",
                                                  "limit": 1}).json()["issues"][0]
    return datetime.fromisoformat(found["updated_on"].replace("Z", "+00:00"))


def change_issues(admin: RedmineAdmin, issues: int) -> list[int]:
    """CHANGED issues spread over the project, each given a note by the user."""
    changed = []
    for n in range(CHANGED):
        found = admin.http.get("/issues.json", params={"project_id": PROJECT, "status_id": "*", "sort": "id",
                                                      "limit": 1, "offset": n * (issues // CHANGED)}).json()
        changed.append(found["issues"][0]["id"])
        admin.update_issue(changed[-1], as_user=USER, notes="Relance téléphonique faite (benchmark B4).")
    return changed


def sync(ctx: Context) -> dict:
    before = ctx.redmine.requests_made
    started = perf_counter()
    report = poll_once(ctx)
    return {"seconds": round(perf_counter() - started, 3), "requests": ctx.redmine.requests_made - before,
            "changed": report.changed, "read": report.read, "queued": report.queued}


def main() -> int:
    env = wait_for_redmine()
    admin = RedmineAdmin(env["REDMINE_URL"], env["REDMINE_ADMIN_KEY"])
    started = perf_counter()
    issues = ensure_project(admin)
    setup = perf_counter() - started
    with sqlite_database() as database_url:
        settings = Settings(redmine_url=env["REDMINE_URL"], redmine_api_key=env["REDMINE_SERVICE_KEY"],
                            database_url=database_url, project=PROJECT, sync_since=newest_change(admin))
        db = Database(database_url)
        db.migrate()
        ctx = Context(settings=settings, clock=Clock(), db=db, redmine=RedmineClient(settings))
        first = sync(ctx)
        changed = change_issues(admin, issues)
        second = sync(ctx)
        third = sync(ctx)
        db.engine.dispose()
    # Proportional to the changes: one request of the list (under 100 changed issues), one read each.
    target = CHANGED + 1
    met = second["requests"] <= target and second["queued"] == CHANGED
    print_table(f"B4 one sync: {issues:,} issues in {PROJECT}, {CHANGED} changed since the last poll "
                f"(target ≤ {target} requests: the changed ones, not the {issues:,})",
                ["sync", "requests", "seconds", "listed", "read", "queued"],
                [["first (cursor set)", first["requests"], first["seconds"], first["changed"], first["read"],
                  first["queued"]],
                 [f"second ({CHANGED} changed)", second["requests"], second["seconds"], second["changed"],
                  second["read"], second["queued"]],
                 ["third (nothing changed)", third["requests"], third["seconds"], third["changed"], third["read"],
                  third["queued"]]])
    print(f"target met: {'yes' if met else 'NO'}; project ready in {setup:.1f} s")
    write_results(NAME, {"project": PROJECT, "issues": issues, "changed_issue_ids": changed,
                         "setup_seconds": round(setup, 1), "first_sync": first, "second_sync": second, "third_sync": third,
                         "target": {"max_requests": target}, "target_met": met})
    return 0 if second["queued"] == CHANGED else 1


if __name__ == "__main__":
    sys.exit(main())
