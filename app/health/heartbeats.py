"""In-process heartbeats of the periodic jobs (worker, polling, deadlines, daily scans).

A job is *stuck* when it has been running without progress for longer than
``worker.stuck_after_seconds``: progress is its start, and every answer Redmine gives it (a
job working through a long queue keeps beating; one waiting on a hung connection, a lock or
a Redmine that times out on every request does not). Elapsed time is monotonic; "since
when" is read from the service's clock, for people. ``/health`` and ``/ready`` report stuck
jobs, and the scheduler lease is not renewed while one of its jobs is stuck (``app/main.py``).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from app.calendar import PARIS
from app.clock import Clock


@dataclass(frozen=True)
class Stuck:
    job: str
    since: datetime  # its last progress (UTC, from the clock)
    seconds: float  # without progress

    def reason(self) -> str:
        """French, for staff and load balancers: which job, since when."""
        return (f"tâche « {self.job} » bloquée depuis le {self.since.astimezone(PARIS):%d/%m/%Y %H:%M:%S} "
                f"(heure de Paris), sans progrès depuis {self.seconds:.0f} s")


@dataclass
class _Run:
    thread: int
    progress_at: float  # monotonic seconds
    progress_on: datetime  # the clock's instant


class Heartbeats:
    def __init__(self, clock: Clock, stuck_after_seconds: float):
        self.clock = clock
        self.stuck_after_seconds = stuck_after_seconds
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def watch(self, name: str, job: Callable[..., None]) -> Callable[..., None]:
        """``job``, recording when each run starts and ends under ``name``."""

        @functools.wraps(job)
        def watched(*args, **kwargs) -> None:
            with self._lock:
                self._runs[name] = _Run(threading.get_ident(), time.monotonic(), self.clock.now())
            try:
                job(*args, **kwargs)
            finally:
                with self._lock:
                    self._runs.pop(name, None)

        return watched

    def beat(self) -> None:
        """The job running in the calling thread made progress (no-op outside a job)."""
        me = threading.get_ident()
        with self._lock:
            for run in self._runs.values():
                if run.thread == me:
                    run.progress_at, run.progress_on = time.monotonic(), self.clock.now()

    def stuck(self, jobs: Iterable[str] | None = None) -> list[Stuck]:
        """The running jobs (among ``jobs``, all when None) without progress for longer than
        the threshold."""
        now = time.monotonic()
        with self._lock:
            runs = dict(self._runs)
        wanted = set(jobs) if jobs is not None else set(runs)
        return [Stuck(name, run.progress_on, now - run.progress_at) for name, run in sorted(runs.items())
                if name in wanted and now - run.progress_at > self.stuck_after_seconds]
