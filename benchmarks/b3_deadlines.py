"""B3 — deadlines: one `tick` (app.deadlines.flows.tick) over 100 000 pending deadlines of
which 1 000 are due, on SQLite and on PostgreSQL: its time, its SQL statements and the
process's peak memory.

The due deadlines belong to real tickets, held by the in-memory FakeRedmine so that the
figures are the service's own cost (store, rules, notes, letters), not Redmine's: 250 C-14
forfeitures (each with its .docx letter and a Perte de mandat ticket), 250 C-12 reminders,
125 × C-18 + C-19 judgment chases, 250 C-26 reviews. The other 99 000 are future deadlines
of other tickets, bulk-inserted. Each database is measured in a fresh process, so that its
peak memory (ru_maxrss) is its own.

    python -m benchmarks.b3_deadlines
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, time, timedelta
from itertools import count, cycle
from time import perf_counter

from sqlalchemy import event, func, insert, select

import app.litigation.deadlines as litigation_deadlines
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
TICKETS_PER_RULE = 250
NOW = datetime(2027, 3, 15, 9, 0, tzinfo=PARIS)
TODAY = NOW.date()
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
    month_ago = datetime.combine(add_months(TODAY, -1), time(10, 0), PARIS)
    provision_asked = (TODAY - timedelta(days=45)).isoformat()  # C-14: D+45 today
    served = add_months(TODAY + timedelta(days=7), -2).isoformat()  # C-12: last day in 7 days, reminder today
    judged = (TODAY - timedelta(days=15)).isoformat()  # C-18, C-19: J+15 today
    for m in range(50):
        redmine.add("Registre des mandats", f"Mandat M-{m}", assigned_to_id=GESTIONNAIRE, created_on=created,
                    **{"N° mandat": f"M-{m}"})
    ids = []
    for n in range(TICKETS_PER_RULE):
        ids.append(redmine.add("Contentieux", f"Impayés {n}", created_on=created, **litigation_fields(
            n, **{"Date de demande de provision": provision_asked})).id)
        ids.append(redmine.add("Contentieux", f"Signifié {n}", created_on=created, **litigation_fields(
            n, **{"Date de signification": served})).id)
        if n % 2:
            ids.append(redmine.add("Assignation", f"Assignation {n}", created_on=created,
                                   **{"N° mandat": f"M-{n % 50}", "Date du jugement": judged}).id)
        ids.append(redmine.add("Exécution", f"Exécution {n}", created_on=month_ago).id)  # C-26: a month today
    return ids


def future_rows(count: int) -> list[dict]:
    """Pending deadlines of other tickets, due over the next two years."""
    kinds = cycle(["C-14/provision", "C-12/rappel-avocat", "C-18/relance-commissaire", "C-26/revue-mensuelle"])
    return [dict(issue_id=100_000 + n, kind=next(kinds), label="échéance future", state=DeadlineState.pending,
                 due_at=at_office_hour(TODAY + timedelta(days=1 + n % 700), time(8, 0)), created_at=NOW, attempts=0)
            for n in range(count)]


def prepare(url: str) -> tuple[Context, flows.DeadlineRules]:
    """The store with PENDING pending deadlines: those of the tickets, stored and shown on
    them as the worker leaves them, and future ones of other tickets, bulk-inserted."""
    import docx  # noqa: F401 — app.letters imports it at its first letter: once a process, not a tick's cost

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
    """Deadlines by state, and ``due``: those pending and due at NOW."""
    with db.session() as session:
        found = dict(session.execute(select(Deadline.state, func.count()).group_by(Deadline.state)).all())
        due = session.scalar(select(func.count()).where(Deadline.state == DeadlineState.pending,
                                                        Deadline.due_at <= NOW))
    return {state.value: n for state, n in found.items()} | {"due": due}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


class Timed:
    """Calls to a function, and the time spent in them."""

    def __init__(self, function):
        self.function, self.calls, self.seconds = function, 0, 0.0

    def __call__(self, *args, **kwargs):
        started = perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.calls += 1
            self.seconds += perf_counter() - started


def measure(database: str) -> dict:
    """One tick on a prepared store of this database (run in its own process)."""
    with DATABASES[database]() as url:
        ctx, rules = prepare(url)
        before = counts(ctx.db)
        statements = count()
        event.listen(ctx.db.engine, "before_cursor_execute", lambda *_: next(statements))
        letters = litigation_deadlines.letter_docx = Timed(litigation_deadlines.letter_docx)
        rss_before = rss_mb()
        started = perf_counter()
        report = flows.tick(ctx, rules)
        seconds = perf_counter() - started
        after = counts(ctx.db)
        ctx.db.engine.dispose()
    return {"database": database, "seconds": round(seconds, 3), "fired": report.fired, "skipped": report.skipped,
            "failed": report.failed, "due_before": before["due"], "due_after": after["due"],
            "pending_before": before["pending"], "pending_after": after["pending"], "fired_rows": after["fired"],
            "sql_statements": next(statements), "letters": letters.calls, "letters_seconds": round(letters.seconds, 3),
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
        run = json.loads(child.stdout.splitlines()[-1])
        run["target_met"] = run["seconds"] <= TARGET_SECONDS and run["peak_rss_mb"] <= TARGET_MB
        runs.append(run)
    print_table(f"B3 one tick: {PENDING:,} pending deadlines, {PENDING // 100:,} due (target ≤ {TARGET_SECONDS:.0f} s, "
                f"≤ {TARGET_MB:.0f} MB)",
                ["database", "tick s", "fired", "skipped", "failed", "SQL statements", "per fired", "letters s",
                 "RSS before MB", "peak RSS MB", "target"],
                [[r["database"], r["seconds"], r["fired"], r["skipped"], r["failed"], r["sql_statements"],
                  r["sql_statements"] / max(r["fired"], 1), r["letters_seconds"], r["rss_before_tick_mb"],
                  r["peak_rss_mb"], r["target_met"]] for r in runs])
    write_results(NAME, {"pending": PENDING, "target": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_MB},
                         "runs": runs})
    fired_once = all(r["fired"] == r["fired_rows"] == r["due_before"] and r["due_after"] == 0 for r in runs)
    return 0 if fired_once else 1


if __name__ == "__main__":
    sys.exit(main())
