"""The Redmine capability over REST, with python-redmine as the HTTP engine.

Known Redmine pitfalls handled here (verified in Redmine's source, see issue 2):
- writes silently ignored while answering success (``parent_issue_id`` without
  ``manage_subtasks``, assignee refused by the workflow…): every write is read back;
- a ``cf_N`` filter on a field not "used as a filter" is ignored and returns every issue:
  every search result is checked against the value looked for;
- journals and children come only from ``GET /issues/:id``.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import requests
import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter
from redminelib import Redmine as PythonRedmine
from redminelib import exceptions as rex

from app.config import Settings
from integrations.redmine.interface import (
    PAGE,
    Change,
    Child,
    Expected,
    Issue,
    IssueStamp,
    IssueSummary,
    Journal,
    NewIssue,
    RedmineAccessRefused,
    RedmineForbidden,
    RedmineNotFound,
    RedmineRejected,
    RedmineUnavailable,
    SchemaMissing,
    SchemaReport,
)
from integrations.redmine.schema import RedmineSpec, build_spec


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _changes(details: list[dict], field_names: dict[str, str]) -> list[Change]:
    """A journal's attribute and custom-field changes (custom fields by name)."""
    changes = []
    for d in details:
        if d.get("property") == "attr":
            name = d.get("name", "")
        elif d.get("property") == "cf" and str(d.get("name")) in field_names:
            name = field_names[str(d.get("name"))]
        else:
            continue
        changes.append(Change(name, d.get("old_value"), d.get("new_value")))
    return changes


def _related(raw: dict) -> list[int]:
    """The ids of the issues related to an issue as Redmine answers it (``include=relations``):
    each relation names both ends, this issue being one of them."""
    return [r["issue_to_id"] if r["issue_id"] == raw["id"] else r["issue_id"] for r in raw.get("relations", [])]


def _filter_expression(value: str) -> str:
    """A ``cf_N`` filter finding ``value``: Redmine reads a leading operator (``!``, ``~``,
    ``*``…), splits on "|" and stops at a line break (``Query#add_short_filter``), so the
    operator is always written: "=" and the value; a value with "|" or a line break is
    looked for by its longest part without them ("~", contains), the results being
    checked against the whole value anyway."""
    if not re.search(r"[|\r\n]", value):
        return "=" + value
    return "~" + max(re.split(r"[|\r\n]", value), key=len)


_in_flight = threading.local()  # the connections the calling thread's Redmine call uses


class _Watchdog:
    """Cuts a Redmine call that outlives its deadline: the read timeout bounds each read of
    the answer, not the whole answer, and a Redmine (or proxy) sending a byte now and then
    would hold a worker for ever. At the deadline, the sockets of the call are shut down:
    the blocked read returns at once and the call fails as Redmine unavailable."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.connections: list[urllib3.connection.HTTPConnection] = []
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.fired = True
        for connection in list(self.connections):
            try:
                if connection.sock is not None:
                    connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> _Watchdog:
        _in_flight.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        _in_flight.watchdog = None


def _watched(connection_class: type) -> type:
    """``connection_class`` reporting each request it sends to the calling thread's watchdog."""

    class Watched(connection_class):  # type: ignore[misc, valid-type]
        def request(self, *args, **kwargs):
            watchdog = getattr(_in_flight, "watchdog", None)
            if watchdog is not None:
                watchdog.connections.append(self)
            return super().request(*args, **kwargs)

    return Watched


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _watched(urllib3.connection.HTTPConnection)


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _watched(urllib3.connection.HTTPSConnection)


@contextmanager
def _bounded_call(what: str, deadline_seconds: float, service_wide: bool = False):
    """One Redmine call, cut at ``deadline_seconds`` whatever the server sends; python-redmine
    and requests errors as the interface's, without URL or key (``service_wide``: a 403
    on it refuses the service as a whole, see ``_translated``)."""
    watchdog = _Watchdog(deadline_seconds)
    try:
        with watchdog:
            yield
    except (requests.RequestException, rex.BaseRedmineError) as exc:
        if watchdog.fired:
            raise RedmineUnavailable(f"{what} : Redmine n'a pas répondu dans le délai total de "
                                     f"{deadline_seconds:g} s ({type(exc).__name__})") from None
        raise _translated(what, exc, service_wide) from None


def _translated(what: str, exc: Exception, service_wide: bool = False) -> Exception:
    """The interface's error for a python-redmine or requests error. A 401 refuses the
    service as a whole (Redmine answers it to a revoked or reset key and to a locked
    account: ``User.find_by_api_key`` finds active users only), as does a 403 on the
    service's own project (``service_wide``); a 403 on one ticket is about that ticket."""
    if isinstance(exc, rex.ValidationError):
        return RedmineRejected(f"{what} : Redmine a refusé ({exc})")
    if isinstance(exc, rex.AuthError):
        return RedmineAccessRefused(f"{what} : Redmine refuse la clé API du service (401) — clé révoquée ou "
                                    "régénérée, ou compte du service verrouillé : l'administrateur Redmine le "
                                    "débloque (Administration › Utilisateurs) ou la clé est remplacée dans "
                                    "RECOUVREMENT_REDMINE_API_KEY")
    if isinstance(exc, rex.ForbiddenError) and service_wide:
        return RedmineAccessRefused(f"{what} : Redmine refuse au service l'accès à son projet (403) — le compte du "
                                    "service doit être membre du projet avec son rôle (Projet › Configuration › "
                                    "Membres)")
    if isinstance(exc, rex.ForbiddenError):
        return RedmineForbidden(f"{what} : accès refusé par Redmine (403) — hors des droits du rôle du service")
    if isinstance(exc, rex.ResourceNotFoundError) and service_wide:
        return RedmineAccessRefused(f"{what} : le projet du service est introuvable dans Redmine (404) — vérifier "
                                    "RECOUVREMENT_PROJECT et que le projet existe")
    if isinstance(exc, rex.ResourceNotFoundError):
        return RedmineNotFound(f"{what} : introuvable dans Redmine (404)")
    if isinstance(exc, (rex.ServerError, rex.UnknownError, rex.JSONDecodeError)):
        return RedmineUnavailable(f"{what} : Redmine en erreur ({type(exc).__name__} {exc})")
    if isinstance(exc, requests.Timeout):
        return RedmineUnavailable(f"{what} : Redmine n'a pas répondu dans le délai ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError):
        return RedmineUnavailable(f"{what} : Redmine injoignable ({type(exc).__name__})")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        # An answer cut short (Redmine or a proxy restarting mid-answer): try again later.
        return RedmineUnavailable(f"{what} : réponse de Redmine interrompue ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):  # an invalid URL or header: the settings
        return RedmineRejected(f"{what} : requête impossible ({type(exc).__name__}) — vérifier "
                               "RECOUVREMENT_REDMINE_URL")
    return RedmineRejected(f"{what} : {type(exc).__name__} {exc}")


class _BoundedAdapter(HTTPAdapter):
    """Every request of the session gets (connect, read) timeouts in seconds, and its
    connections are watched by the calling thread's watchdog (``_bounded_call``).

    python-redmine's ``requests={"timeout": …}`` only sets an attribute on the
    ``requests.Session``, which requests never reads (redminelib/engines/sync.py): without
    this adapter a Redmine that accepts a connection and never answers blocks forever."""

    def __init__(self, connect_seconds: float, read_seconds: float):
        self.timeouts = (connect_seconds, read_seconds)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request, stream=False, timeout=None, **kwargs):
        return super().send(request, stream=stream, timeout=timeout or self.timeouts, **kwargs)


class RedmineClient:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.project = settings.project
        self._api = PythonRedmine(settings.redmine_url, key=settings.redmine_api_key.get_secret_value())
        bounded = _BoundedAdapter(settings.redmine_connect_timeout_seconds, settings.redmine_read_timeout_seconds)
        for scheme in ("http://", "https://"):
            self._api.engine.session.mount(scheme, bounded)
        self._url = settings.redmine_url.rstrip("/")
        self._ids: dict[str, dict[str, int]] | None = None
        self._service_user_id: int | None = None
        self.requests_made = 0  # HTTP requests Redmine answered (benchmarks count them)
        self._api.engine.session.hooks["response"].append(self._count_request)

    def _count_request(self, response: requests.Response, *args, **kwargs) -> None:
        self.requests_made += 1

    def on_answer(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the requesting thread) each time Redmine answers a request."""
        self._api.engine.session.hooks["response"].append(lambda response, *args, **kwargs: callback())

    # --- low level -------------------------------------------------------------------
    def _request(self, method: str, path: str, what: str, params: dict | None = None, data: dict | None = None):
        # The project, its issue list and issue creation are the service's whole work: a 403
        # there is an outage of the service; on /issues/N, about that ticket only.
        service_wide = path == "/issues.json" or path.startswith((f"/projects/{self.project}", "/users/current"))
        with _bounded_call(what, self.settings.redmine_request_deadline_seconds, service_wide):
            return self._api.engine.request(method, self._url + path, params=params, data=data)

    def _all(self, path: str, container: str, what: str, params: dict) -> list[dict]:
        results: list[dict] = []
        offset = 0
        while True:
            page = self._request("get", path, what, params={**params, "limit": PAGE, "offset": offset})
            results.extend(page[container])
            offset += PAGE
            if offset >= page.get("total_count", 0):
                return results

    def _schema_ids(self) -> dict[str, dict[str, int]]:
        """Names → ids of the project's trackers and custom fields, and of the statuses."""
        if self._ids is None:
            project = self._request(
                "get", f"/projects/{self.project}.json", "lecture du projet",
                params={"include": "trackers,issue_custom_fields"},
            )["project"]
            statuses = self._request("get", "/issue_statuses.json", "lecture des statuts")["issue_statuses"]
            self._ids = {
                "project": {"id": project["id"]},
                "trackers": {t["name"]: t["id"] for t in project.get("trackers", [])},
                "fields": {f["name"]: f["id"] for f in project.get("issue_custom_fields", [])},
                "statuses": {s["name"]: s["id"] for s in statuses},
            }
        return self._ids

    def _id(self, kind: str, name: str) -> int:
        if name not in self._schema_ids()[kind]:
            self._ids = None  # read again: the administrator may have enabled it since
        try:
            return self._schema_ids()[kind][name]
        except KeyError:
            label = {"trackers": "tracker", "fields": "champ personnalisé", "statuses": "statut"}[kind]
            raise SchemaMissing(
                f"{label} « {name} » absent du projet {self.project} — lancer le provisionnement "
                "(integrations/redmine/provision.rb) ou `recouvrement redmine check`"
            ) from None

    def _issue(self, raw: dict) -> Issue:
        fields = {cf["name"]: cf.get("value") for cf in raw.get("custom_fields", [])}
        field_names = {str(cf["id"]): cf["name"] for cf in raw.get("custom_fields", [])}
        return Issue(
            id=raw["id"],
            project_id=raw["project"]["id"],
            tracker=raw["tracker"]["name"],
            status=raw["status"]["name"],
            closed=bool(raw["status"].get("is_closed")),
            subject=raw.get("subject", ""),
            description=raw.get("description") or "",
            author_id=raw["author"]["id"],
            assigned_to_id=(raw.get("assigned_to") or {}).get("id"),
            parent_id=(raw.get("parent") or {}).get("id"),
            custom_fields=fields,
            created_on=_parse_time(raw["created_on"]),
            updated_on=_parse_time(raw["updated_on"]),
            start_date=_parse_date(raw.get("start_date")),
            due_date=_parse_date(raw.get("due_date")),
            journals=[
                Journal(j["id"], j.get("notes") or "", (j.get("user") or {}).get("id"), _parse_time(j.get("created_on")),
                        _changes(j.get("details", []), field_names))
                for j in raw.get("journals", [])
            ],
            children=[Child(c["id"], c["tracker"]["name"]) for c in raw.get("children", [])],
            attachments=[a["filename"] for a in raw.get("attachments", [])],
            relations=_related(raw),
        )

    # --- the capability --------------------------------------------------------------
    @property
    def project_id(self) -> int:
        return self._id("project", "id")

    @property
    def known_project_id(self) -> int | None:
        return self._ids["project"]["id"] if self._ids else None

    @property
    def service_user_id(self) -> int:
        if self._service_user_id is None:
            self._service_user_id = self._request("get", "/users/current.json", "lecture du compte du service")["user"]["id"]
        return self._service_user_id

    def get_issue(self, issue_id: int) -> Issue:
        raw = self._request(
            "get", f"/issues/{issue_id}.json", f"lecture du ticket #{issue_id}",
            params={"include": "journals,children,attachments,relations"},
        )["issue"]
        return self._issue(raw)

    def already_read(self, issue_id: int) -> Issue | None:
        return None

    def read_again(self, issue_id: int) -> Issue:
        return self.get_issue(issue_id)

    def find_issues(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        params = {
            "project_id": self.project_id,
            "tracker_id": self._id("trackers", tracker),
            "status_id": "*",
            f"cf_{self._id('fields', field_name)}": _filter_expression(value),
            "sort": "id",
        }
        found = self._all("/issues.json", "issues", f"recherche {tracker} {field_name}={value}", params)
        issues = [self._issue(raw) for raw in found]
        # Redmine ignores a cf_N filter on a field not used as a filter: check every result.
        return [i for i in issues if i.tracker == tracker and i.field(field_name) == value]

    def search_again(self, tracker: str, field_name: str, value: str) -> list[Issue]:
        return self.find_issues(tracker, field_name, value)

    def open_issue_ids(self, tracker: str) -> list[int]:
        params = {"project_id": self.project_id, "tracker_id": self._id("trackers", tracker), "status_id": "open",
                  "sort": "id"}
        return [raw["id"] for raw in self._all("/issues.json", "issues", f"lecture des tickets {tracker}", params)]

    def issues_by_ids(self, ids: list[int]) -> list[IssueSummary]:
        if len(ids) > PAGE:
            raise ValueError(f"{len(ids)} tickets demandés en une requête : {PAGE} au plus")
        if not ids:
            return []
        # No project filter: a ticket moved to another project the service sees still answers.
        params = {"issue_id": ",".join(map(str, ids)), "status_id": "*", "include": "relations",
                  "limit": PAGE}
        found = self._request("get", "/issues.json", f"lecture de {len(ids)} ticket(s) suivi(s)", params=params)
        return [IssueSummary(raw["id"], raw["project"]["id"], raw["tracker"]["name"],
                             bool(raw["status"].get("is_closed")), _parse_time(raw["updated_on"]), _related(raw))
                for raw in found["issues"]]

    def create_issue(self, new: NewIssue) -> Issue:
        data: dict[str, Any] = {
            "project_id": self.project_id,
            "tracker_id": self._id("trackers", new.tracker),
            "subject": new.subject,
            "description": new.description,
            "custom_fields": [{"id": self._id("fields", k), "value": v} for k, v in new.custom_fields.items()],
        }
        if new.parent_id is not None:
            data["parent_issue_id"] = new.parent_id
        if new.assigned_to_id is not None:
            data["assigned_to_id"] = new.assigned_to_id
        raw = self._request("post", "/issues.json", f"création d'un ticket {new.tracker}", data={"issue": data})
        created = self._issue(raw["issue"])
        Expected(parent_id=new.parent_id, assigned_to_id=new.assigned_to_id).check(created)  # Redmine's answer
        return created

    def update_issue(self, issue_id, *, notes=None, parent_id=None, assigned_to_id=None, custom_fields=None,
                     start_date=None, due_date=None, status=None, verify=True) -> None:
        data: dict[str, Any] = {}
        if status is not None:
            data["status_id"] = self._id("statuses", status)
        dates = {k: v for k, v in (("start_date", start_date), ("due_date", due_date)) if v is not None}
        data.update({k: v.isoformat() for k, v in dates.items()})
        if notes is not None:
            data["notes"] = notes
        if parent_id is not None:
            data["parent_issue_id"] = parent_id
        if assigned_to_id is not None:
            data["assigned_to_id"] = assigned_to_id
        if custom_fields:
            data["custom_fields"] = [{"id": self._id("fields", k), "value": v} for k, v in custom_fields.items()]
        if not data:
            return
        self._request("put", f"/issues/{issue_id}.json", f"mise à jour du ticket #{issue_id}", data={"issue": data})
        expected = Expected().add(parent_id=parent_id, assigned_to_id=assigned_to_id, custom_fields=custom_fields,
                                  start_date=start_date, due_date=due_date, status=status)
        if verify and expected.checkable:
            expected.check(self.get_issue(issue_id))

    def attach_file(self, issue_id: int, filename: str, content: bytes, content_type: str, notes: str,
                    verify: bool = True) -> None:
        with _bounded_call(f"envoi du fichier {filename}", self.settings.redmine_request_deadline_seconds,
                           service_wide=True):
            token = self._api.engine.request(
                "post", f"{self._url}/uploads.json", headers={"Content-Type": "application/octet-stream"},
                params={"filename": filename}, data=content,
            )["upload"]["token"]
        upload = {"token": token, "filename": filename, "content_type": content_type}
        self._request("put", f"/issues/{issue_id}.json", f"pièce jointe au ticket #{issue_id}",
                      data={"issue": {"notes": notes, "uploads": [upload]}})
        if verify:
            Expected(attachments={filename}).check(self.get_issue(issue_id))

    def relate(self, issue_id: int, other_id: int) -> None:
        self._request("post", f"/issues/{issue_id}/relations.json", f"relation #{issue_id} – #{other_id}",
                      data={"relation": {"issue_to_id": other_id, "relation_type": "relates"}})

    def newest_changed(self, since: datetime | None) -> list[IssueStamp]:
        return self._changed(since, sort="updated_on:desc,id:desc")

    def changed_page(self, since: datetime | None, after_id: int | None = None) -> list[IssueStamp]:
        if after_id is None:
            return self._changed(since, sort="id")
        return self._changed(since, sort="id", issue_id=f">={after_id + 1}")

    def _changed(self, since: datetime | None, **params: str) -> list[IssueStamp]:
        """One page of the project's issues changed since ``since``'s second (``params``: the
        order, an id filter); never an offset (issue 16: a change moves its issue in the list)."""
        query: dict[str, Any] = {"project_id": self.project_id, "status_id": "*", "limit": PAGE, **params}
        if since is not None:
            query["updated_on"] = ">=" + since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found = self._request("get", "/issues.json", "lecture des tickets modifiés", params=query)["issues"]
        return [IssueStamp(raw["id"], _parse_time(raw["updated_on"])) for raw in found]

    def principal_id(self, name: str) -> int | None:
        members = self._all(
            f"/projects/{self.project}/memberships.json", "memberships", "lecture des membres du projet", {}
        )
        for m in members:
            principal = m.get("user") or m.get("group") or {}
            if principal.get("name") == name:
                return principal["id"]
        return None

    def ping(self) -> None:
        self._request("get", "/users/current.json", "connexion à Redmine")
        self._request("get", f"/projects/{self.project}.json", f"lecture du projet {self.project}")

    def check_schema(self) -> SchemaReport:
        spec = build_spec(self.settings)
        me = self._service_account()
        if me is None:  # issue 15: nothing else can be read with this key
            login = spec.service_user["login"]
            refused = ["rien d'autre n'est vérifiable avec une clé refusée"]
            return SchemaReport([], [], [], [], refused, access_problems=[
                "Redmine refuse la clé API du service (401) : son compte est verrouillé, ou la clé a été révoquée, ou "
                f"l'API REST est désactivée — Administration › Utilisateurs › {login} (par défaut) : Déverrouiller ; "
                "ou une nouvelle clé (Mon compte › Clé d'accès API) dans RECOUVREMENT_REDMINE_API_KEY ; ou "
                "Administration › Configuration › API : cocher « Activer l'API REST »"])
        self._ids = None
        ids = self._schema_ids()
        missing_trackers = [t for t in spec.trackers if t not in ids["trackers"]]
        missing_fields = [f.name for f in spec.custom_fields if f.name not in ids["fields"]]
        missing_statuses = [s["name"] for s in spec.statuses if s["name"] not in ids["statuses"]]
        problems: list[str] = []
        notes: list[str] = []
        try:
            defs = {d["name"]: d for d in self._request("get", "/custom_fields.json", "lecture des champs")["custom_fields"]}
        except RedmineRejected:
            notes.append("formats et filtres des champs non vérifiés : /custom_fields.json demande une clé administrateur")
            defs = {}
        for f in spec.custom_fields:
            d = defs.get(f.name)
            if not d:
                continue
            if d.get("field_format") != f.format:
                problems.append(f"champ « {f.name} » : format {d.get('field_format')}, {f.format} attendu")
            if f.searched and not d.get("is_filter"):
                problems.append(f"champ « {f.name} » : doit être « utilisé comme filtre »")
            on = {t["name"] for t in d.get("trackers", [])}
            absent = [t for t in f.trackers if t not in on]
            if absent:
                problems.append(f"champ « {f.name} » : absent des trackers {', '.join(absent)}")
            values = {v["value"] for v in d.get("possible_values", [])}
            lacking = [v for v in f.values if v not in values]
            if lacking:
                problems.append(f"champ « {f.name} » : valeurs manquantes {', '.join(lacking)}")
        missing_permissions, extra_permissions = self._service_role_gaps(spec.service_role)
        hidden, unverified = self._fields_not_shown(spec, ids)
        if unverified:
            notes.append("visibilité des champs non vérifiée par l'API sur les trackers sans ticket dans le projet : "
                         f"{', '.join(unverified)} (le script de provisionnement la vérifie : --redmine-dir)")
        return SchemaReport(missing_trackers, missing_fields, missing_statuses, problems, notes,
                            missing_permissions, extra_permissions, self._account_excess(spec.service_role["name"], me),
                            hidden, self._groups_outside_project(spec))

    def _service_account(self) -> dict | None:
        """The service's own account with its memberships; None when Redmine refuses the key
        (401: the account locked, the key revoked or unknown, the REST API off — issue 15)."""
        with _bounded_call("lecture du compte du service", self.settings.redmine_request_deadline_seconds):
            try:
                return self._api.engine.request("get", self._url + "/users/current.json",
                                                params={"include": "memberships"})["user"]
            except rex.AuthError:
                return None

    def _fields_not_shown(self, spec: RedmineSpec, ids: dict[str, dict[str, int]]) -> tuple[list[str], list[str]]:
        """Fields of the project that one ticket of a tracker carrying them, read with the
        service's key, does not show (issue 15). Redmine lists every project field under
        ``include=issue_custom_fields``, hidden ones too (``ProjectsHelper#render_api_includes``),
        but a ticket shows only ``visible_custom_field_values`` — those of its tracker visible
        to one of the reader's roles (``IssueCustomField#visible_by?``): a hidden field is read
        as absent. Also the trackers without any ticket to look at."""
        shown_on: dict[str, list[str]] = {}
        unverified = []
        for tracker in spec.trackers:
            expected = [f.name for f in spec.custom_fields if tracker in f.trackers and f.name in ids["fields"]]
            if tracker not in ids["trackers"] or not expected:
                continue
            found = self._request("get", "/issues.json", f"lecture d'un ticket {tracker}", params={
                "project_id": ids["project"]["id"], "subproject_id": "!*", "tracker_id": ids["trackers"][tracker],
                "status_id": "*", "sort": "id:desc", "limit": 1})["issues"]
            if not found:
                unverified.append(tracker)
                continue
            shown = {cf["name"] for cf in found[0].get("custom_fields", [])}
            for name in expected:
                if name not in shown:
                    shown_on.setdefault(name, []).append(f"{tracker} #{found[0]['id']}")
        role = spec.service_role["name"]
        hidden = [f"champ « {name} » absent des tickets lus par le service ({', '.join(where)}) : masqué à son rôle "
                  "ou absent du tracker, il serait lu comme vide — Administration › Champs personnalisés › "
                  f"{name} : Visible « par tout le monde » ou cocher le rôle « {role} », et cocher ces trackers"
                  for name, where in shown_on.items()]
        return hidden, unverified

    def _groups_outside_project(self, spec: RedmineSpec) -> list[str]:
        """Routing groups (or people) that are not project members: the service cannot assign
        them a ticket (project memberships are readable with the service's key)."""
        members = self._all(f"/projects/{self.project}/memberships.json", "memberships",
                            "lecture des membres du projet", {})
        names = {(m.get("group") or m.get("user") or {}).get("name") for m in members}
        staff = spec.staff_role["name"]
        return [f"groupe « {name} » absent des membres du projet {self.project} (ou inexistant) : les tickets qui lui "
                f"sont destinés ne peuvent pas lui être assignés — Administration › Groupes (le créer, avec ses "
                f"membres) puis Projet › Configuration › Membres : l'ajouter avec le rôle « {staff} »"
                for name in spec.groups if name not in names]

    def _account_excess(self, service_role: str, me: dict) -> list[str]:
        """What the service's account holds beyond its role (its own /users/current.json tells
        whether it is an administrator, and its roles in each project, groups' included)."""
        problems = []
        if me.get("admin"):
            problems.append("le compte du service est administrateur de Redmine : lui retirer ce statut "
                            "(Administration › Utilisateurs)")
        for membership in me.get("memberships", []):
            if membership.get("project", {}).get("id") != self.project_id:
                continue
            for role in membership.get("roles", []):
                if role["name"] != service_role:
                    how = " (par un groupe)" if role.get("inherited") else ""
                    problems.append(f"le compte du service a aussi le rôle « {role['name']} »{how} dans le projet "
                                    f"{self.project} : le lui retirer (Projet › Configuration › Membres)")
        return problems

    def _service_role_gaps(self, wanted: dict) -> tuple[list[str], list[str]]:
        """The service role's permissions missing and in excess (GET /roles.json and
        /roles/:id.json answer any API key)."""
        roles = self._request("get", "/roles.json", "lecture des rôles")["roles"]
        found = next((r for r in roles if r["name"] == wanted["name"]), None)
        if found is None:  # absent: every permission is missing
            return sorted(wanted["permissions"]), []
        role = self._request("get", f"/roles/{found['id']}.json", f"lecture du rôle {wanted['name']}")["role"]
        has, needs = set(role.get("permissions", [])), set(wanted["permissions"])
        return sorted(needs - has), sorted(has - needs)
