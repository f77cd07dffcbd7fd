"""What the benchmarks share: databases to measure on, `recouvrement serve` as a process,
percentiles, the printed table and the JSON results (``benchmarks/results/<name>.json``)."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

from tests.e2e.processes import Replica
from tests.e2e.redmine_admin import RedmineAdmin, local_redmine_env, rails_runner
from tests.postgres import drop_database, new_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# The PostgreSQL server of the tests (scripts/postgres-local.sh): a fresh database per run.
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- databases ------------------------------------------------------------------------
@contextmanager
def sqlite_database() -> Iterator[str]:
    """A SQLite file in a temporary directory (the service's engine: WAL, synchronous=FULL)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        yield f"sqlite:///{directory}/recouvrement.db"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new database on the local PostgreSQL server, dropped afterwards."""
    name, url = new_database(POSTGRES_ADMIN_URL)
    try:
        yield url
    finally:
        drop_database(name, POSTGRES_ADMIN_URL)


DATABASES = {"sqlite": sqlite_database, "postgresql": postgres_database}


# --- the service as a process ---------------------------------------------------------
def service_env(**values: str) -> dict[str, str]:
    """This process's environment without its RECOUVREMENT_* settings, plus ``values``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RECOUVREMENT_")} | {
        f"RECOUVREMENT_{k.upper()}": v for k, v in values.items()}


@contextmanager
def serve(env: dict[str, str], stop_seconds: float = 30) -> Iterator[tuple[str, subprocess.Popen]]:
    """`recouvrement serve` as the tests run it (``tests/e2e/processes.Replica``): its URL
    and process; stopped with SIGTERM, killed if still there ``stop_seconds`` later."""
    replica = Replica(env).wait_up()
    try:
        yield replica.url, replica.process
    finally:
        replica.stop(stop_seconds)


# --- the local Redmine's volume projects (B4, B6) ---------------------------------------
BULK_USER = "claire.contentieux"  # the litigation clerk of the end-to-end tests

# Issues inserted in bulk (no callbacks) until the project has the number wanted open: roots of
# their own tree, as Issue#create makes them, made one a minute until now (a project with
# history: each issue its own updated_on).
BULK_ISSUES = """
project = Project.find_by!(identifier: ARGV[0])
wanted, tracker, author = ARGV[1].to_i, Tracker.find_by!(name: ARGV[2]), User.find_by!(login: ARGV[3])
count = Issue.open.where(project_id: project.id).count
if count < wanted
  status, priority = IssueStatus.where(is_closed: false).order(:position).first, IssuePriority.default
  now = Time.now.utc
  rows = (count + 1..wanted).map do |n|
    at = now - (wanted - n) * 60
    {project_id: project.id, tracker_id: tracker.id, status_id: status.id, priority_id: priority.id,
     author_id: author.id, subject: "Volume #{n}", lock_version: 0, done_ratio: 0, is_private: false,
     lft: 1, rgt: 2, start_date: at.to_date, created_on: at, updated_on: at}
  end
  rows.each_slice(1000) { |slice| Issue.insert_all(slice) }
  Issue.where(project_id: project.id, root_id: nil).update_all("root_id = id")
end
puts Issue.open.where(project_id: project.id).count
"""


def wait_for_redmine(seconds: float = 180) -> dict[str, str]:
    """The local Redmine's env once it answers (another developer's tests may restart it)."""
    deadline = time.monotonic() + seconds
    while True:
        env = local_redmine_env()
        try:
            httpx.get(f"{env['REDMINE_URL']}/login", timeout=5).raise_for_status()
            return env
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def bulk_project(admin: RedmineAdmin, project: str, issues: int, tracker: str) -> int:
    """The project (the service account and BULK_USER members) with ``issues`` open issues of
    ``tracker``: made once by ``rails runner``, topped up when later runs closed, deleted or moved
    some, reused otherwise. Its open issue count."""
    if admin.http.get(f"/projects/{project}.json").status_code == 404:
        admin.new_project(project, "recouvrement", [admin.person(BULK_USER, "Claire", "Contentieux")])
    return int(rails_runner(BULK_ISSUES, project, str(issues), tracker, BULK_USER).split()[-1])


# --- figures --------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100), nearest rank."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def max_rss_mb() -> float:
    """The process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if n and right else c.ljust(w) for c, w, right in zip(row, widths, numeric)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def write_results(name: str, results: dict) -> Path:
    """``benchmarks/results/<name>.json``, with when and where it was measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
                **results}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults: {path.relative_to(ROOT)}")
    return path
