"""What a Redmine admin and the litigation staff do by hand, over the real REST API.

Used by the end-to-end tests and by `make demo`; never by the service itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx

from tests.texts import as_shown

ROOT = Path(__file__).resolve().parents[2]


REDMINE_LOCAL = ROOT / "scripts" / "redmine-local.sh"


def redmine_version() -> str:
    """The local Redmine the tests run against: REDMINE_VERSION (5.0, 6.0 or 6.1), as for
    `make e2e` and scripts/redmine-local.sh, which read it from the environment too."""
    return os.environ.get("REDMINE_VERSION") or "5.0"


def redmine_local(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """scripts/redmine-local.sh ARGS for the chosen version."""
    env = os.environ | {"REDMINE_VERSION": redmine_version()}
    return subprocess.run([str(REDMINE_LOCAL), *args], env=env, capture_output=True, text=True, **kwargs)


def local_redmine_env() -> dict[str, str]:
    """REDMINE_URL, REDMINE_ADMIN_KEY, REDMINE_SERVICE_KEY, REDMINE_VERSION (Redmine's own,
    e.g. 6.1.5.stable) and REDMINE_TEXT_FORMAT of scripts/redmine-local.sh."""
    out = redmine_local("env")
    if out.returncode != 0:
        raise RuntimeError(f"Redmine local {redmine_version()} absent : lancer `make redmine REDMINE_VERSION="
                           f"{redmine_version()}` (scripts/redmine-local.sh up)")
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


@dataclass
class Person:
    id: int
    login: str
    name: str


class RedmineAdmin:
    def __init__(self, url: str, admin_key: str, text_format: str = "textile"):
        self.url = url.rstrip("/")
        self.text_format = text_format  # the Redmine's: notes and descriptions are read as shown
        self.http = httpx.Client(base_url=self.url, headers={"X-Redmine-API-Key": admin_key}, timeout=30)

    def _call(self, method: str, path: str, as_user: str | None = None, **kwargs) -> dict:
        headers = {"X-Redmine-Switch-User": as_user} if as_user else {}
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → {response.status_code} {response.text[:500]}")
        return response.json() if response.content.strip() else {}

    def ids(self, path: str, container: str, key: str = "name") -> dict[str, int]:
        return {x[key]: x["id"] for x in self._call("GET", path, params={"limit": 100})[container]}

    # --- set-up ----------------------------------------------------------------------
    def person(self, login: str, firstname: str, lastname: str) -> Person:
        found = [u for u in self._call("GET", "/users.json", params={"name": login})["users"] if u["login"] == login]
        if found:
            u = found[0]
        else:
            u = self._call("POST", "/users.json", json={"user": {
                "login": login, "firstname": firstname, "lastname": lastname,
                "mail": f"{login}@example.invalid", "password": uuid.uuid4().hex}})["user"]
        return Person(u["id"], login, f"{u['firstname']} {u['lastname']}")

    def browser(self, login: str) -> httpx.Client:
        """A web session (cookies) of the administrator ``login`` (created, or given a new
        password), for the HTML pages, which the API key does not open."""
        person = self.person(login, "Lecteur", "Pages")
        password = uuid.uuid4().hex
        self._call("PUT", f"/users/{person.id}.json", json={"user": {
            "password": password, "admin": True, "must_change_passwd": False}})
        web = httpx.Client(base_url=self.url, timeout=30)
        token = re.search(r'name="authenticity_token" value="([^"]+)"', web.get("/login").text).group(1)
        answer = web.post("/login", data={"username": login, "password": password, "authenticity_token": token})
        if answer.status_code != 302 or "/login" in answer.headers.get("location", ""):
            raise RuntimeError(f"connexion de {login} refusée : {answer.status_code}")
        return web

    def new_project(self, identifier: str, service_login: str, people: list[Person]) -> int:
        """A project with every tracker and field of the service, its groups and people as
        members, as provision.rb makes for the configured project."""
        trackers = list(self.ids("/trackers.json", "trackers").values())
        fields = list(self.ids("/custom_fields.json", "custom_fields").values())
        project = self._call("POST", "/projects.json", json={"project": {
            "name": identifier, "identifier": identifier, "is_public": False,
            "tracker_ids": trackers, "issue_custom_field_ids": fields,
            "enabled_module_names": ["issue_tracking"]}})["project"]
        roles = self.ids("/roles.json", "roles")
        groups = self.ids("/groups.json", "groups")
        service = self.person(service_login, "Automate", "Recouvrement")
        members = [(service.id, roles["Automate recouvrement"])]
        members += [(gid, roles["Équipe recouvrement"]) for gid in groups.values()]
        members += [(p.id, roles["Équipe recouvrement"]) for p in people]
        for user_id, role_id in members:
            self._call("POST", f"/projects/{identifier}/memberships.json",
                       json={"membership": {"user_id": user_id, "role_ids": [role_id]}})
        return project["id"]

    def api_key(self, person: Person) -> str:
        """The person's API key (an administrator reads it: Redmine makes one if none)."""
        return self._call("GET", f"/users/{person.id}.json")["user"]["api_key"]

    def set_status(self, person: Person, locked: bool) -> None:
        """Lock (status 3) or unlock (status 1) an account, as Administration › Utilisateurs."""
        self._call("PUT", f"/users/{person.id}.json", json={"user": {"status": 3 if locked else 1}})

    # --- what users do ---------------------------------------------------------------
    def create_issue(self, project: str, tracker: str, subject: str, fields: dict[str, str],
                     as_user: str | None = None, **attributes) -> dict:
        tracker_id = self.ids("/trackers.json", "trackers")[tracker]
        field_ids = self.ids("/custom_fields.json", "custom_fields")
        body = {"project_id": project, "tracker_id": tracker_id, "subject": subject,
                "custom_fields": [{"id": field_ids[k], "value": v} for k, v in fields.items()], **attributes}
        return self._call("POST", "/issues.json", as_user=as_user, json={"issue": body})["issue"]

    def update_issue(self, issue_id: int, as_user: str | None = None, **attributes) -> None:
        self._call("PUT", f"/issues/{issue_id}.json", as_user=as_user, json={"issue": attributes})

    def attach(self, issue_id: int, filename: str, content: bytes) -> None:
        response = self.http.post("/uploads.json", params={"filename": filename}, content=content,
                                  headers={"Content-Type": "application/octet-stream"})
        response.raise_for_status()
        token = response.json()["upload"]["token"]
        self.update_issue(issue_id, uploads=[{"token": token, "filename": filename}])

    def issue(self, issue_id: int) -> dict:
        """The issue, its description and notes as people read them (:func:`as_shown`)."""
        issue = self._call("GET", f"/issues/{issue_id}.json", params={"include": "journals,children"})["issue"]
        issue["description"] = as_shown(issue.get("description") or "", self.text_format)
        for journal in issue.get("journals", []):
            journal["notes"] = as_shown(journal.get("notes") or "", self.text_format)
        return issue

    def children(self, issue_id: int) -> list[dict]:
        return [self.issue(c["id"]) for c in self.issue(issue_id).get("children", [])]

    def notes(self, issue_id: int) -> list[str]:
        return [j["notes"] for j in self.issue(issue_id)["journals"] if j.get("notes")]


def rails_runner(script: str, *args: str) -> str:
    """Ruby inside the local Redmine (what only an admin with a console can do): code, or a
    file's path, through `scripts/redmine-local.sh runner` (the host's Redmine 5.0, or the
    Debian root of 6.x). It waits up to 30 s for the SQLite database that Redmine's requests
    lock ("database is locked" at once otherwise)."""
    run = redmine_local("runner", script, *args, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def field_visible_only_to(field_name: str, role: str | None) -> None:
    """An administrator's "Visible : pour ces rôles uniquement" on a custom field (the REST
    API cannot change a field): only ``role`` sees it; None: visible to all again."""
    name = json.dumps(field_name)
    if role is None:
        rails_runner(f"IssueCustomField.find_by!(name: {name}).update!(visible: true, role_ids: [])")
    else:
        rails_runner(f"IssueCustomField.find_by!(name: {name}).update!(visible: false, "
                     f"role_ids: [Role.find_by!(name: {json.dumps(role)}).id])")


def set_group_assignment(allowed: bool) -> None:
    """Administration › Paramètres › Tickets › « Permettre l'assignation aux groupes »."""
    rails_runner(f"Setting.issue_group_assignment = '{1 if allowed else 0}'")


@cache
def text_formats_offered() -> tuple[str, ...]:
    """The text formats this Redmine renders (Debian's 6.x packages have no Markdown: they
    ship no Redcarpet, and Redmine falls back to plain text)."""
    return tuple(rails_runner("puts Redmine::WikiFormatting.format_names.to_a.join(' ')").strip().splitlines()[-1].split())


@contextmanager
def text_formatting(text_format: str) -> Iterator[None]:
    """Administration › Paramètres › Général › « Formatage du texte » set to ``text_format``
    for the block (pages are rendered in it when shown), then back to what it was."""
    before = rails_runner(f"puts Setting.text_formatting; Setting.text_formatting = {json.dumps(text_format)}")
    try:
        yield
    finally:
        rails_runner(f"Setting.text_formatting = {json.dumps(before.strip().splitlines()[-1])}")


def backdate(issue_id: int, days: int) -> None:
    """Move the issue's creation and journals ``days`` back, as if it had been made then."""
    rails_runner(f"i = Issue.find({issue_id}); i.update_columns(created_on: i.created_on - {days}.days); "
                 f"Journal.where(journalized_type: 'Issue', journalized_id: {issue_id}).each "
                 f"{{ |j| j.update_columns(created_on: j.created_on - {days}.days) }}")


def field(issue: dict, name: str) -> str | None:
    return next((cf.get("value") for cf in issue.get("custom_fields", []) if cf["name"] == name), None)


def signed_delivery(issue: dict, event_type: str, secret: str, journal: dict | None = None) -> tuple[bytes, dict]:
    """The body and headers Redmine's native webhook (≥ 7.0) sends for this issue."""
    data = {"issue": issue}
    if journal is not None:
        data["journal"] = journal
    body = json.dumps({"type": event_type, "timestamp": issue["updated_on"], "data": data}).encode()
    return body, sign(body, secret)


def sign(body: bytes, secret: str) -> dict:
    """Headers of a delivery signed as Redmine signs it."""
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Redmine-Signature-256": signature, "Content-Type": "application/json"}
