"""B3 — deadlines: one `tick` (app.deadlines.flows.tick) over 100 000 pending deadlines of
which 1 000 are due, on SQLite and on PostgreSQL: its time, its SQL statements, the
process's peak memory.

The due deadlines belong to real tickets (C-14 forfeitures, C-12 reminders, C-18/C-19
judgment chases, C-26 reviews) held by the in-memory FakeRedmine, so the figures are the
service's own cost (store, rules, letters), not Redmine's. The other 99 000 are future
deadlines of other tickets, bulk-inserted. Each database is measured in a fresh process,
so its peak memory (ru_maxrss) is its own.

    python -m benchmarks.b3_deadlines
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, time, timedelta
from itertools import cycle
from time import perf_counter

from sqlalchemy import event, func, insert, select

from app.calendar import PARIS, add_months, at_office_hour
from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from app.deadlines import flows
from app.deadlines.models import Deadline, DeadlineState
from app.processing.flows import deadline_rules
from benchmarks.common import DATABASES, ROOT, max_rss_mb, print_table, write_results
from integrations.redmine.fake import FakeRedmine

NAME = "b3_deadlines"
PENDING = 100_000
TICKETS_PER_RULE = 250  # 250 C-14 + 250 C-12 + 125 × (C-18 + C-19) + 250 C-26 = 1 000 due
NOW = datetime(2027, 3, 15, 9, 0, tzinfo=PARIS)
TODAY = NOW.date()
OFFICE_HOUR = time(8, 0)
GESTIONNAIRE = 7
TARGET_SECONDS = 2.0
TARGET_MB = 300.0


def litigation_fields(n: int, **dates: str) -> dict[str, str]:
    return {"N° mandat": f"M-{n % 50}", "Réf. locataire": f"LOC-{n}", "Réf. propriétaire": f"PROP-{n % 50}",
            "Débiteurs": f"Locataire {n} ; locataire\nCaution {n} ; caution", "Locataire dans les lieux": "1",
            "Montant de la dette": "2450.50", "Compte propriétaire": "Débiteur", **dates}


def add_tickets(redmine: FakeRedmine) -> list[int]:
    """The tickets whose deadlines are due at NOW, as users filled them in; their ids."""
    created = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
    for m in range(50):
        redmine.add("Registre des mandats", f"Mandat M-{m}", assigned_to_id=GESTIONNAIRE, created_on=created,
                    **{"N° mandat": f"M-{m}"})
    month_ago = datetime.combine(add_months(TODAY, -1), time(10, 0), PARIS)
    served_on = add_months(TODAY + timedelta(days=7), -2)  # C-12: last day in 7 days, reminder today
    ids = []
    for n in range(TICKETS_PER_RULE):
        ids.append(redmine.add("Contentieux", f"Impayés {n}", created_on=created, **litigation_fields(
            n, **{"Date de demande de provision": (TODAY - timedelta(days=45)).isoformat()})).id)  # C-14 today
        ids.append(redmine.add("Contentieux", f"Signifié {n}", created_on=created, **litigation_fields(
            n, **{"Date de signification": served_on.isoformat()})).id)
        if n % 2:
            ids.append(redmine.add("Assignation", f"Assignation {n}", created_on=created, **{
                "N° mandat": f"M-{n % 50}", "Date du jugement": (TODAY - timedelta(days=15)).isoformat()}).id)
        ids.append(redmine.add("Exécution", f"Exécution {n}", created_on=month_ago).id)  # C-26 today
    return ids


def future_rows(count: int) -> list[dict]:
    """Pending deadlines of other tickets, due over the next two years."""
    kinds = cycle(["C-14/provision", "C-12/rappel-avocat", "C-18/relance-commissaire", "C-26/revue-mensuelle"])
    return [dict(issue_id=100_000 + n, kind=next(kinds), due_at=at_office_hour(TODAY + timedelta(days=1 + n % 700),
                                                                                OFFICE_HOUR),
                 label="échéance future", state=DeadlineState.pending, created_at=NOW, attempts=0)
            for n in range(count)]


def prepare(url: str) -> tuple[Context, flows.DeadlineRules]:
    """The store with PENDING pending deadlines: those of the tickets, stored and shown on
    them as the worker leaves them, and future ones of other tickets, bulk-inserted."""
    settings = Settings(database_url=url)
    db = Database(url)
    db.migrate()
    ctx = Context(settings=settings, clock=Clock(NOW), db=db,
                  redmine=FakeRedmine(principals={"Contentieux": 500}, settings=settings))
    rules = deadline_rules(settings)
    for issue_id in add_tickets(ctx.redmine):
        flows.sync(ctx, rules, ctx.redmine.get_issue(issue_id))
    rows = future_rows(PENDING - counts(db)["pending"])
    with db.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(Deadline), rows[start:start + 10_000])
    return ctx, rules


def counts(db: Database) -> dict[str, int]:
    """Deadlines by state, and those pending and due at NOW."""
    with db.session() as session:
        found = {state.value: n for state, n in session.execute(select(Deadline.state, func.count())
                                                                .group_by(Deadline.state))}
        found["due"] = session.scalar(select(func.count()).where(Deadline.state == DeadlineState.pending,
                                                                 Deadline.due_at <= NOW))
        return found


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def measure(database: str) -> dict:
    """One tick on a prepared store of this database (run in its own process)."""
    with DATABASES[database]() as url:
        started = perf_counter()
        ctx, rules = prepare(url)
        setup = perf_counter() - started
        before = counts(ctx.db)
        statements = 0

        def count(*_):
            nonlocal statements
            statements += 1

        event.listen(ctx.db.engine, "before_cursor_execute", count)
        rss_before = rss_mb()
        started = perf_counter()
        report = flows.tick(ctx, rules)
        seconds = perf_counter() - started
        after = counts(ctx.db)
        ctx.db.engine.dispose()
    return {"database": database, "setup_seconds": round(setup, 2), "seconds": round(seconds, 3),
            "fired": report.fired, "skipped": report.skipped, "failed": report.failed,
            "due_before": before["due"], "due_after": after["due"], "pending_before": before.get("pending", 0), "pending_after": after.get("pending", 0),
            "fired_rows": after.get("fired", 0), "sql_statements": statements,
            "rss_before_tick_mb": round(rss_before, 1), "peak_rss_mb": round(max_rss_mb(), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=DATABASES, help="measure one database in this process (JSON on stdout)")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only)))
        return 0
    runs = []
    for database in DATABASES:
        child = subprocess.run([sys.executable, "-m", "benchmarks.b3_deadlines", "--only", database], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        runs.append(json.loads(child.stdout.splitlines()[-1]))
    for run in runs:
        run["target_met"] = (run["seconds"] <= TARGET_SECONDS and run["peak_rss_mb"] <= TARGET_MB
                             and run["fired"] == run["fired_rows"] == PENDING // 100 and run["failed"] == 0)
    print_table(f"B3 one tick: {PENDING:,} pending deadlines, {PENDING // 100:,} due (target ≤ {TARGET_SECONDS} s, "
                f"≤ {TARGET_MB:.0f} MB)",
                ["database", "tick s", "fired", "skipped", "failed", "SQL stmts", "stmts/fired", "RSS before MB",
                 "peak RSS MB", "target"],
                [[r["database"], r["seconds"], r["fired"], r["skipped"], r["failed"], r["sql_statements"],
                  r["sql_statements"] / max(r["fired"], 1), r["rss_before_tick_mb"], r["peak_rss_mb"],
                  r["target_met"]] for r in runs])
    write_results(NAME, {"pending": PENDING, "due": PENDING // 100, "target": {"seconds": TARGET_SECONDS,
                                                                              "peak_rss_mb": TARGET_MB},
                         "runs": runs})
    return 0 if all(r["target_met"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
