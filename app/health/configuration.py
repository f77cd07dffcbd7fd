"""The Redmine configuration as `serve` and `/ready` see it (issue 15): the REST part of
`recouvrement redmine check`, run at start and then at most every ``RECHECK_SECONDS``.

Each problem found is logged once as a WARNING (at start, then when it appears); `/ready`
shows the last lines under ``configuration`` without running the check itself. The check
runs one at a time: a caller finding it running gets the last report, except the very
first, which waits for it. A report whose schema is incomplete (`/ready` is 503 for it)
is checked again at the next call, so that provisioning shows at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.config import Settings
from integrations.redmine.interface import Redmine, RedmineError, SchemaReport
from integrations.redmine.schema import build_spec

log = logging.getLogger(__name__)

RECHECK_SECONDS = 600.0


class ConfigurationCheck:
    def __init__(self, redmine: Redmine, settings: Settings, every_seconds: float = RECHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.redmine, self.every_seconds, self.clock = redmine, every_seconds, clock
        self.service_role = build_spec(settings).service_role["name"]
        self._running = threading.Lock()
        self._report: SchemaReport | None = None
        self._checked_at = 0.0
        self._logged: set[str] = set()

    def _fresh(self) -> bool:
        report = self._report
        return (report is not None and report.ok and not report.access_problems
                and self.clock() - self._checked_at < self.every_seconds)

    def report(self) -> SchemaReport | None:
        """The last report, checked again first when stale; None while another caller runs
        the first check. Raises RedmineError when this caller's check could not run."""
        if self._fresh():
            return self._report
        if not self._running.acquire(blocking=self._report is None):
            return self._report  # being checked: the last one meanwhile
        try:
            if not self._fresh():
                report = self.redmine.check_schema()
                self._warn(report)
                self._report, self._checked_at = report, self.clock()
            return self._report
        finally:
            self._running.release()

    def problems(self) -> list[str]:
        """The last report's problems, without any request."""
        report = self._report
        return report.problems(self.service_role) if report is not None else []

    def at_start(self) -> None:
        """`serve`: the first check, its problems as warnings; never stops the service."""
        try:
            self.report()
        except RedmineError as exc:
            log.warning("configuration de Redmine non vérifiée au démarrage : %s", exc)

    def _warn(self, report: SchemaReport) -> None:
        lines = report.problems(self.service_role)
        for line in lines:
            if line not in self._logged:
                log.warning("configuration de Redmine à corriger (recouvrement redmine check) : %s", line)
        self._logged = set(lines)
