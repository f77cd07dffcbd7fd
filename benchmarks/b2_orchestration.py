"""B2 — orchestration overhead: K litigation files opened and fully processed by the
service against the local Redmine, versus a plain python-redmine script that makes the
same Redmine writes directly, in the same run.

Both sides start from identical files made as litigation staff make them (a register
ticket, then the litigation ticket). The service gets one `issue.created` event per file
and works its inbox until empty. The script is what a developer would write without the
service: read the file, find its register by mandate number, then replay, file for file,
exactly the writes the service made (same methods, paths and bodies, ids mapped), with
nothing verified. Measured: wall time, and Redmine HTTP requests per file for each side.

    python -m benchmarks.b2_orchestration            # K = 20
    B2_FILES=30 python -m benchmarks.b2_orchestration
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from redminelib import Redmine

from app.clock import Clock
from app.config import Settings
from app.context import Context
from app.database import Database
from app.inbox import service as inbox
from app.inbox.flows import parse_delivery
from app.processing.flows import work
from benchmarks.common import print_table, write_results
from integrations.redmine.client import RedmineClient
from tests.e2e.redmine_admin import RedmineAdmin, local_redmine_env, signed_delivery

FILES = int(os.environ.get("B2_FILES", "20"))
SECRET = "b2"
TARGET_RATIO = 1.15
TARGET_EXTRA_REQUESTS = 1.0
DEBTORS = "Jean Dupont ; locataire\nMarie Durand ; colocataire\nPaul Martin ; caution"


@dataclass
class Call:
    method: str
    path: str
    body: bytes | None
    status: int
    response: bytes


@dataclass
class Recorder:
    """Every HTTP request made through `requests` (python-redmine's transport) while active."""

    calls: list[Call] = field(default_factory=list)

    @contextmanager
    def active(self) -> Iterator[Recorder]:
        original = requests.Session.send

        def send(session, prepared, **kwargs):
            response = original(session, prepared, **kwargs)
            body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
            url = requests.utils.urlparse(prepared.url)
            path = url.path + (f"?{url.query}" if url.query else "")
            self.calls.append(Call(prepared.method, path, body, response.status_code, response.content))
            return response

        requests.Session.send = send
        try:
            yield self
        finally:
            requests.Session.send = original


def make_files(admin: RedmineAdmin, project: str, clerk: str, gestionnaire_id: int) -> list[tuple[dict, dict]]:
    files = []
    for _ in range(FILES):
        mandate = f"M-{uuid.uuid4().hex[:6]}"
        reg = admin.create_issue(project, "Registre des mandats", f"Mandat {mandate}", {"N° mandat": mandate},
                                 assigned_to_id=gestionnaire_id)
        lit = admin.create_issue(project, "Contentieux", "Impayés Dupont", {
            "N° mandat": mandate, "Réf. locataire": "LOC-42", "Réf. propriétaire": "PROP-7", "Débiteurs": DEBTORS,
            "Locataire dans les lieux": "1", "Montant de la dette": "2450.50", "Compte propriétaire": "Débiteur",
        }, as_user=clerk)
        files.append((reg, lit))
    return files


class Service:
    """The service in this process, on its own SQLite file, as `serve` runs it."""

    def __init__(self, settings: Settings, directory: str):
        db = Database(f"sqlite:///{directory}/recouvrement.db")
        db.migrate()
        self.ctx = Context(settings=settings, clock=Clock(), db=db, redmine=RedmineClient(settings))
        self.ctx.redmine.project_id, self.ctx.redmine.service_user_id  # read once per process, not per file

    def open(self, admin: RedmineAdmin, lit: dict) -> tuple[float, list[Call]]:
        """Its `issue.created` event stored, then the inbox worked until empty."""
        body, _ = signed_delivery(admin.issue(lit["id"]), "issue.created", SECRET)
        inbox.store_event(self.ctx.db, parse_delivery(body), self.ctx.clock.now())
        with Recorder().active() as recorder:
            start = time.perf_counter()
            work(self.ctx)
            elapsed = time.perf_counter() - start
        assert inbox.count_by_state(self.ctx.db).keys() == {"done"}, inbox.list_events(self.ctx.db)[0].last_error
        return elapsed, recorder.calls


def remap(data: bytes, ids: dict[int, int], tokens: dict[str, str]) -> bytes:
    text = data.decode()
    for old, new in tokens.items():
        text = text.replace(old, new)
    return re.sub(r"(?<![\w.-])(\d{1,9})(?![\w.-])", lambda m: str(ids.get(int(m.group(1)), m.group(1))),
                  text).encode()


def script_open(redmine: Redmine, settings: Settings, lit: dict, model_reg: dict, model_lit: dict,
                writes: list[Call]) -> tuple[float, list[Call]]:
    """The same file opened by a plain script: read it, find its register, then the
    service's writes for the model file, ids mapped to this file's."""
    with Recorder().active() as recorder:
        start = time.perf_counter()
        issue = redmine.issue.get(lit["id"])
        mandate = next(f for f in issue.custom_fields if f.name == "N° mandat")
        [register] = redmine.issue.filter(project_id=settings.project, tracker_id=model_reg["tracker"]["id"],
                                          **{f"cf_{mandate.id}": mandate.value})
        ids = {model_lit["id"]: lit["id"], model_reg["id"]: register.id}
        tokens: dict[str, str] = {}
        for call in writes:
            url = settings.redmine_url + remap(call.path.encode(), ids, tokens).decode()
            if call.path.startswith("/uploads.json"):
                answer = redmine.engine.request("post", url, headers={"Content-Type": "application/octet-stream"},
                                                data=call.body)
            else:
                answer = redmine.engine.request(call.method.lower(), url,
                                                data=json.loads(remap(call.body or b"{}", ids, tokens)))
            if call.method == "POST" and call.response:
                old = json.loads(call.response)
                if "issue" in old:
                    ids[old["issue"]["id"]] = answer["issue"]["id"]
                if "upload" in old:
                    tokens[old["upload"]["token"]] = answer["upload"]["token"]
        elapsed = time.perf_counter() - start
    return elapsed, recorder.calls


def writes(calls: list[Call]) -> int:
    return sum(c.method != "GET" for c in calls)


def shape(calls: list[Call]) -> Counter:
    """Requests by method and path, ids and query values left out."""
    return Counter(c.method + " " + re.sub(r"=[^&]*", "", re.sub(r"/\d+", "/N", c.path)) for c in calls)


def main() -> None:
    env = local_redmine_env()
    admin = RedmineAdmin(env["REDMINE_URL"], env["REDMINE_ADMIN_KEY"])
    clerk = admin.person("claire.contentieux", "Claire", "Contentieux")
    gestionnaire = admin.person("gaston.gestion", "Gaston", "Gestionnaire")
    project = f"bench-b2-{uuid.uuid4().hex[:6]}"
    admin.new_project(project, "recouvrement", [clerk, gestionnaire])
    settings = Settings(redmine_url=env["REDMINE_URL"], redmine_api_key=env["REDMINE_SERVICE_KEY"],
                        webhook_secret=SECRET, project=project,
                        redmine_text_format=env.get("REDMINE_TEXT_FORMAT", "textile"))

    by_service = make_files(admin, project, clerk.login, gestionnaire.id)
    by_script = make_files(admin, project, clerk.login, gestionnaire.id)
    redmine = Redmine(settings.redmine_url, key=settings.redmine_api_key.get_secret_value())
    service_seconds = script_seconds = 0.0
    service_calls: list[Call] = []
    script_calls: list[Call] = []
    with tempfile.TemporaryDirectory(prefix="bench-b2-") as directory:
        service = Service(settings, directory)
        # File after file, the service then the script, so both see the same Redmine.
        for (reg, lit), (_, other) in zip(by_service, by_script):
            seconds, calls = service.open(admin, lit)
            service_seconds += seconds
            service_calls += calls
            seconds, calls = script_open(redmine, settings, other, reg, lit, [c for c in calls if c.method != "GET"])
            script_seconds += seconds
            script_calls += calls

    n = len(by_service)
    service_requests = len(service_calls) / n
    script_requests = len(script_calls) / n
    ratio = service_seconds / script_seconds
    extra = service_requests - script_requests
    print_table(f"B2 — {n} litigation files opened against the local Redmine", [
        "", "seconds", "s / file", "requests / file", "writes / file"], [
        ["service", service_seconds, service_seconds / n, service_requests, writes(service_calls) / n],
        ["python-redmine script", script_seconds, script_seconds / n, script_requests, writes(script_calls) / n],
    ])
    print_table("Requests by kind (service)", ["request", "count"], shape(service_calls).most_common())
    print_table("Targets", ["", "measured", "target", "met"], [
        ["time ratio service / script", ratio, f"≤ {TARGET_RATIO}", ratio <= TARGET_RATIO],
        ["extra requests per file", extra, f"≤ {TARGET_EXTRA_REQUESTS}", extra <= TARGET_EXTRA_REQUESTS],
    ])
    write_results("b2_orchestration", {
        "files": n,
        "service": {"seconds": service_seconds, "requests_per_file": service_requests,
                    "requests_by_kind": dict(shape(service_calls))},
        "script": {"seconds": script_seconds, "requests_per_file": script_requests},
        "ratio": ratio, "extra_requests_per_file": extra,
        "targets": {"ratio": TARGET_RATIO, "extra_requests_per_file": TARGET_EXTRA_REQUESTS},
    })


if __name__ == "__main__":
    main()
