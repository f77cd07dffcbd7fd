"""End-to-end fixtures: the real local Redmine (scripts/redmine-local.sh), a fresh project
per test, the service wired to it with its own SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from integrations.redmine.client import RedmineClient
from tests.e2e.redmine_admin import ROOT, Person, RedmineAdmin, local_redmine_env, redmine_local

WEBHOOK_SECRET = "e2e-webhook-secret"
SERVICE_LOGIN = "recouvrement"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def redmine_env() -> dict[str, str]:
    return local_redmine_env()  # fails, never skips, when the local Redmine is absent


@pytest.fixture(scope="session")
def admin(redmine_env) -> RedmineAdmin:
    return RedmineAdmin(redmine_env["REDMINE_URL"], redmine_env["REDMINE_ADMIN_KEY"],
                        redmine_env.get("REDMINE_TEXT_FORMAT", "textile"))


@pytest.fixture(scope="session")
def clerk(admin) -> Person:
    """A litigation clerk: creates the litigation tickets."""
    return admin.person("claire.contentieux", "Claire", "Contentieux")


@pytest.fixture(scope="session")
def gestionnaire(admin) -> Person:
    """The gestionnaire of the sample mandates: assignee of their register tickets."""
    return admin.person("gaston.gestion", "Gaston", "Gestionnaire")


@dataclass
class Service:
    """The service under test: its settings, an in-process context, and its CLI."""

    settings: Settings
    env: dict[str, str]
    project: str

    def context(self, now=None) -> Context:
        db = Database(self.settings.database_url)
        db.migrate()
        return Context(settings=self.settings, clock=Clock(now), db=db, redmine=RedmineClient(self.settings))

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=self.env | (env or {}),
                                capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"recouvrement {' '.join(args)} → {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture
def service(admin, clerk, gestionnaire, redmine_env, tmp_path: Path) -> Service:
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    admin.new_project(project, SERVICE_LOGIN, [clerk, gestionnaire])
    values = {
        "RECOUVREMENT_REDMINE_URL": redmine_env["REDMINE_URL"],
        "RECOUVREMENT_REDMINE_API_KEY": redmine_env["REDMINE_SERVICE_KEY"],
        "RECOUVREMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RECOUVREMENT_DATABASE_URL": f"sqlite:///{tmp_path}/recouvrement.db",
        "RECOUVREMENT_PROJECT": project,
        # Written by scripts/redmine-local.sh from the Redmine's own setting (issue 17).
        "RECOUVREMENT_REDMINE_TEXT_FORMAT": redmine_env.get("REDMINE_TEXT_FORMAT", "textile"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOUVREMENT_")} | values
    settings = Settings(
        redmine_url=values["RECOUVREMENT_REDMINE_URL"],
        redmine_api_key=values["RECOUVREMENT_REDMINE_API_KEY"],
        webhook_secret=WEBHOOK_SECRET,
        database_url=values["RECOUVREMENT_DATABASE_URL"],
        project=project,
        redmine_text_format=values["RECOUVREMENT_REDMINE_TEXT_FORMAT"],
    )
    return Service(settings=settings, env=env, project=project)


def local_redmine(command: str) -> None:
    """scripts/redmine-local.sh start|stop, for the Redmine of REDMINE_VERSION."""
    run = redmine_local(command, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
