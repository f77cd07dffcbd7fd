"""The one command line: ``recouvrement``."""

from __future__ import annotations

import gc
import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.calendar import PARIS, paris_date
from app.config import get_settings
from app.context import Context, build_context
from app.deadlines import flows as deadlines_flows
from app.deadlines import service as deadlines_service
from app.inbox import service as inbox
from app.inbox.flows import NO_SECRET, authentication_chosen, poll_once, purge_events, token_problems
from app.inbox.models import EventState
from app.legal import flows as legal_flows
from app.prevention import flows as prevention_flows
from app.prevention import service as prevention_service
from app.prevention.ledger import LedgerFileError
from app.text import clean
from app.processing.flows import deadline_rules, work
from app.reconciliation.flows import reconcile as reconcile_tracked
from app.writeoffs import flows as writeoffs_flows
from integrations.redmine.interface import RedmineError
from integrations.redmine.schema import build_spec
from integrations.redmine.script_check import (
    ScriptCheckFailed,
    how_to_run,
    run_script_check,
    run_script_check_through,
)

cli = typer.Typer(help="Recouvrement : procédure de recouvrement des impayés, au côté de Redmine.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
redmine_cli = typer.Typer(help="Le Redmine : schéma attendu et vérification.", no_args_is_help=True)
events_cli = typer.Typer(help="Les événements reçus (liste par défaut).")
legal_cli = typer.Typer(help="Veille juridique (L-0 … L-16) : dates, alertes et blocages d'un dossier.",
                        no_args_is_help=True)
prevention_cli = typer.Typer(help="Prévention des impayés (P-1 … P-13) : grand livre, relances mensuelles.",
                             no_args_is_help=True)
cli.add_typer(redmine_cli, name="redmine")
cli.add_typer(events_cli, name="events")
cli.add_typer(prevention_cli, name="prevention")
cli.add_typer(legal_cli, name="legal")

NowOption = Annotated[
    Optional[str],
    typer.Option("--now", help="Instant à prendre pour « maintenant » (ISO 8601, ex. 2027-01-15T09:00:00+01:00)"),
]


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--now : date ISO 8601 attendue, reçu {value!r}") from None


def _context(now: str | None = None, migrate: bool = True) -> Context:
    ctx = build_context(get_settings(), _parse_now(now))
    if migrate:
        ctx.db.migrate()
    return ctx


def _fail(message: str) -> None:
    typer.echo(f"erreur : {message}", err=True)
    raise typer.Exit(2)


@cli.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@cli.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """API (webhooks, santé) + worker + lecture périodique de Redmine, dans un processus."""
    import uvicorn

    from app import server
    from app.main import create_app

    settings = get_settings()
    if token_problems(settings):
        _fail("\n".join(token_problems(settings)))
    if not authentication_chosen(settings):
        _fail(NO_SECRET)
    ctx = _context()
    app = create_app(ctx, run_jobs=True)
    # The loaded application's objects (~150 000) live as long as the process: frozen out of
    # the garbage collector, so that a full collection does not stall every request ~70 ms.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, **server.uvicorn_options(ctx.settings))


@cli.command()
def migrate() -> None:
    """Appliquer les migrations de la base."""
    _context()
    typer.echo("base à jour")


@cli.command()
def sync(now: NowOption = None,
         no_work: Annotated[bool, typer.Option("--no-work", help="Mettre en file sans traiter")] = False) -> None:
    """Lire une fois les tickets modifiés dans Redmine, puis traiter la file."""
    ctx = _context(now)
    try:
        report = poll_once(ctx)
    except RedmineError as exc:
        _fail(str(exc))
    typer.echo(f"lecture : {report.changed} ticket(s) modifié(s), {report.read} relu(s), {report.queued} en file")
    if not no_work:
        typer.echo(f"traitement : {work(ctx).processed} événement(s)")


@cli.command()
def reconcile(now: NowOption = None) -> None:
    """Rapprocher de Redmine les tickets suivis (supprimés, déplacés, relations…), puis traiter la file."""
    ctx = _context(now)
    try:
        report = reconcile_tracked(ctx)
    except RedmineError as exc:
        _fail(str(exc))
    typer.echo(report.summary())
    typer.echo(f"traitement : {work(ctx).processed} événement(s)")


@cli.command()
def worker(now: NowOption = None,
           once: Annotated[bool, typer.Option("--once", help="Traiter ce qui est dû, puis s'arrêter")] = False) -> None:
    """Traiter les événements en file."""
    ctx = _context(now)
    if once:
        typer.echo(f"traitement : {work(ctx).processed} événement(s)")
        return
    import time

    while True:  # the standalone worker; `serve` runs the same job on its scheduler
        report = work(ctx)
        if report.processed == 0 or report.outage:
            time.sleep(ctx.settings.worker.work_interval_seconds)


@cli.command()
def tick(now: NowOption = None) -> None:
    """Déclencher les échéances dues à cet instant, puis s'arrêter (tests, cron)."""
    ctx = _context(now)
    report = deadlines_flows.tick(ctx, deadline_rules(ctx.settings))
    typer.echo(f"échéances : {report.fired} déclenchée(s), {report.skipped} écartée(s), {report.failed} en échec")


@cli.command("deadlines")
def deadlines_list(now: NowOption = None,
                   overdue: Annotated[bool, typer.Option("--overdue", help="Seulement celles déjà dues")] = False) -> None:
    """Lister les échéances en attente : ticket, règle, date, ce qui se passera."""
    ctx = _context(now)
    rows = deadlines_service.listing(ctx.db, ctx.clock.now() if overdue else None)
    if not rows:
        typer.echo("aucune échéance en attente" + (" dépassée" if overdue else ""))
    for d in rows:
        due = d.due_at.astimezone(PARIS)
        typer.echo(f"ticket #{d.issue_id:<6} {d.rule:<5} {due:%Y-%m-%d %H:%M} {d.state.value:<8} {d.label}")
        if d.last_error:
            typer.echo(f"       erreur : {d.last_error}")


@cli.command()
def writeoffs(now: NowOption = None,
              explain: Annotated[Optional[int], typer.Option("--explain", metavar="TICKET",
                                                             help="Dire pour ce contentieux quelle condition manque")] = None,
              ) -> None:
    """Annulations de dette (C-31, C-32) : ouvrir un ticket par dossier éligible, ou expliquer un dossier."""
    ctx = _context(now)
    try:
        if explain is None:
            report = writeoffs_flows.scan(ctx)
            typer.echo(f"{report.examined} dossier(s) avec locataire étoilé examiné(s), {len(report.eligible)} éligible(s) : "
                       + (", ".join(f"#{i}" for i in report.eligible) or "aucun"))
            typer.echo("ticket(s) d'annulation ouvert(s) : " + (", ".join(f"#{i}" for i in report.opened) or "aucun"))
            return
        assessment, ticket = writeoffs_flows.explain(ctx, explain)
    except (RedmineError, ValueError) as exc:
        _fail(str(exc))
    verdict = "éligible" if assessment.eligible else "non éligible"
    typer.echo(f"contentieux #{explain} : {verdict} à l'annulation de dette (règle C-31)")
    for c in assessment.conditions:
        typer.echo(f"  [{'ok' if c.met else 'NON'}] {c.label} : {c.detail}")
    for warning in assessment.warnings:
        typer.echo(f"  attention : {warning}")
    if ticket is not None:
        typer.echo(f"ticket d'annulation : #{ticket.id} ({ticket.status})")


@prevention_cli.command("import")
def prevention_import(file: Annotated[Path, typer.Argument(help="Grand livre des impayés (CSV)")],
                      now: NowOption = None) -> None:
    """Charger le grand livre des impayés du mois (une ligne par terme impayé)."""
    ctx = _context(now)
    try:
        content = file.read_bytes()
    except OSError as exc:
        _fail(f"{file} : {exc.strerror}")
    lines = max(content.count(b"\n") - 1, 1)

    def track(rows):
        with typer.progressbar(rows, length=lines, label=f"lecture de {file.name}", file=sys.stderr) as bar:
            yield from bar

    try:
        report = prevention_flows.import_ledger(ctx, file.name, content, track)
    except LedgerFileError as exc:
        _fail(f"{file} : {exc} — rien n'a été chargé")
    ledger = report.ledger
    if report.already_loaded:
        typer.echo(f"{file.name} : déjà chargé le {ledger.imported_at.astimezone(PARIS):%d/%m/%Y %H:%M} "
                   f"(import #{ledger.id}), rien de nouveau")
        return
    typer.echo(f"{file.name} : {ledger.rows_loaded} ligne(s) chargée(s), {ledger.rows_rejected} rejetée(s) "
               f"(import #{ledger.id})")
    for reject in report.rejects:
        typer.echo(f"  rejet {reject}")


@prevention_cli.command("run")
def prevention_run(date_: Annotated[Optional[str], typer.Option("--date", help="Jour de la relance (AAAA-MM-JJ ; "
                                                                 "par défaut aujourd'hui)")] = None,
                   now: NowOption = None) -> None:
    """Faire les relances dues à cette date (le 10 : lettres 1 et 2 ; le 17 : lettre 3 et transmission)."""
    ctx = _context(now)
    try:
        on = date.fromisoformat(date_) if date_ else paris_date(ctx.clock.now())
    except ValueError:
        raise typer.BadParameter(f"--date : date AAAA-MM-JJ attendue, reçu {date_!r}") from None
    try:
        reports = prevention_flows.run_due(ctx, on)
    except RedmineError as exc:
        _fail(f"{exc} — la relance reprendra où elle s'est arrêtée")
    for report in reports:
        typer.echo(str(report))
    if not reports:
        typer.echo(f"aucune relance due le {on:%d/%m/%Y}")


@prevention_cli.command("status")
def prevention_status(tenant: Annotated[Optional[str], typer.Argument(help="Réf. locataire")] = None) -> None:
    """Les dossiers de prévention : type de débiteur, lettres envoyées, plan, transmission."""
    ctx = _context()
    rows = prevention_service.cases_of(ctx.db, tenant)
    if not rows:
        typer.echo("aucun dossier de prévention")
    for case, letters in rows:
        state = f"clos le {case.closed_on:%d/%m/%Y}" if case.closed_on else "en cours"
        if case.end:
            state += f" ({case.end.value}{f', ticket #{case.litigation_issue_id}' if case.litigation_issue_id else ''})"
        ref = clean(case.tenant_ref)  # a ledger's value: no terminal escape or bidi control reaches the screen
        typer.echo(f"{ref:<12} {case.kind.value:<15} ouvert le {case.opened_on:%d/%m/%Y}, {state}")
        for letter in letters:
            typer.echo(f"    lettre n° {letter.phase} le {letter.created_at.astimezone(PARIS):%d/%m/%Y} : {letter.path}")
        if case.plan_accepted_on:
            broken = f", rompu le {case.plan_broken_on:%d/%m/%Y}" if case.plan_broken_on else ""
            typer.echo(f"    plan d'apurement du {case.plan_accepted_on:%d/%m/%Y}, {case.plan_months} mensualités{broken}")


@legal_cli.command("explain")
def legal_explain(ticket: Annotated[int, typer.Argument(help="Ticket Contentieux")], now: NowOption = None) -> None:
    """Le contrôle légal d'un dossier, comme sur le ticket."""
    ctx = _context(now)
    try:
        issue = ctx.redmine.get_issue(ticket)
        if issue.tracker != ctx.settings.trackers.litigation:
            _fail(f"ticket #{ticket} : tracker « {issue.tracker} », un ticket « {ctx.settings.trackers.litigation} » est attendu")
        typer.echo(legal_flows.legal_text(ctx, legal_flows.report_of(ctx, issue), plain=True))
    except RedmineError as exc:
        _fail(str(exc))


@legal_cli.command("refresh")
def legal_refresh(now: NowOption = None) -> None:
    """Recalculer le contrôle légal de chaque dossier ouvert (fait chaque jour par `serve`)."""
    ctx = _context(now)
    try:
        changed = legal_flows.refresh_all(ctx)
    except RedmineError as exc:
        _fail(str(exc))
    for line in changed:
        typer.echo(line)
    typer.echo(f"{len(changed)} changement(s)")


@events_cli.callback(invoke_without_command=True)
def events_list(
    typer_ctx: typer.Context,
    state: Annotated[Optional[EventState], typer.Option(help="pending, processing, done, failed ou dismissed")] = None,
    limit: int = 50,
) -> None:
    """Lister les événements reçus, avec leur état et leur erreur."""
    if typer_ctx.invoked_subcommand:
        return
    ctx = _context()
    counts = inbox.count_by_state(ctx.db)
    typer.echo(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "aucun événement")
    for e in inbox.list_events(ctx.db, state, limit):
        line = (f"#{e.id:<5} {e.state.value:<10} ticket #{e.issue_id:<6} {e.event_type:<14} {e.source:<8} "
                f"reçu {e.received_at:%Y-%m-%d %H:%M:%S} essais={e.attempts}")
        typer.echo(line)
        if e.last_error:
            typer.echo(f"       erreur : {e.last_error}")
        if e.result:
            typer.echo(f"       résultat : {e.result}")


@events_cli.command("retry")
def events_retry(ids: Annotated[Optional[list[int]], typer.Argument(help="Événements (tous les échecs si absent)")] = None,
                 now: NowOption = None) -> None:
    """Remettre en file des événements en échec."""
    ctx = _context(now)
    typer.echo(f"{inbox.retry_failed(ctx.db, ctx.clock.now(), ids)} événement(s) remis en file")


@events_cli.command("dismiss")
def events_dismiss(ids: Annotated[list[int], typer.Argument(help="Événements en échec à ne pas retraiter")],
                   now: NowOption = None) -> None:
    """Écarter des événements en échec : ils ne seront pas retraités, et seront supprimés comme les traités."""
    ctx = _context(now)
    dismissed = inbox.dismiss(ctx.db, ids, ctx.clock.now())
    typer.echo(f"{len(dismissed)} événement(s) écarté(s)")
    for event_id in sorted(set(ids) - set(dismissed)):
        typer.echo(f"#{event_id} : introuvable ou pas en échec, laissé tel quel")


@events_cli.command("purge")
def events_purge(now: NowOption = None) -> None:
    """Supprimer les événements traités ou écartés depuis plus de retention.events_days jours (30).

    `serve` le fait chaque jour ; les événements en échec restent jusqu'à `retry` ou `dismiss`."""
    ctx = _context(now)
    days = ctx.settings.retention.events_days
    typer.echo(f"{purge_events(ctx)} événement(s) supprimé(s) (traités ou écartés depuis plus de {days} jours)")


@redmine_cli.command("check")
def redmine_check(
    redmine_dir: Annotated[Optional[str], typer.Option(
        "--redmine-dir", envvar="RECOUVREMENT_REDMINE_DIR",
        help="Racine du Redmine installé sur cette machine (Debian : /usr/share/redmine) : vérifie aussi, par "
             "provision.rb --check, ce que l'API REST ne montre pas")] = None,
    redmine_runner: Annotated[Optional[str], typer.Option(
        "--redmine-runner", envvar="RECOUVREMENT_REDMINE_RUNNER",
        help="Commande qui lance le `rails runner` de Redmine là où il est, au lieu de --redmine-dir (conteneur : "
             "'docker exec -i redmine bundle exec rails runner' ; autre machine : \"ssh redmine 'cd "
             "/usr/share/redmine && RAILS_ENV=production bundle exec rails runner'\") : « - » lui est ajouté, et "
             "provision.rb --check écrit sur son entrée standard")] = None,
) -> None:
    """Vérifier que Redmine a chaque tracker, champ et statut nécessaires, et qu'il est
    configuré pour le service (issue 15) : champs visibles et modifiables par son rôle,
    assignation aux groupes, groupes actifs, compte du service actif, formatage du texte."""
    if redmine_dir and redmine_runner:
        _fail("--redmine-dir et --redmine-runner s'excluent : le premier pour un Redmine installé sur cette machine, "
              "le second pour un Redmine ailleurs (conteneur, autre machine)")
    ctx = _context(migrate=False)
    spec = build_spec(ctx.settings)
    role = spec.service_role["name"]
    try:
        report = ctx.redmine.check_schema()
    except RedmineError as exc:
        _fail(str(exc))
    script = None
    if redmine_dir or redmine_runner:
        try:
            script = (run_script_check(spec, redmine_dir) if redmine_dir
                      else run_script_check_through(spec, redmine_runner))
        except ScriptCheckFailed as exc:
            for line in report.problems(role):
                typer.echo(line)
            _fail(f"vérification par le script de provisionnement impossible : {exc}")
    problems = report.problems(role, script_checked=script is not None) + (script.problems if script else [])
    for line in problems:
        typer.echo(line)
    for note in report.notes + ([] if script else [how_to_run()]):
        typer.echo(f"note : {note}")
    for information in script.information if script else []:
        typer.echo(f"information : {information}")
    if not report.ok:
        _fail("schéma Redmine incomplet (voir integrations/redmine/provision.rb)")
    if report.extra_permissions:
        _fail(f"rôle « {role} » trop large : relancer integrations/redmine/provision.rb, qui retire ces permissions")
    if report.account_problems:
        _fail("compte du service trop puissant : retirer les droits ci-dessus (le service n'en a pas besoin)")
    if problems:
        _fail("configuration de Redmine à corriger : voir les lignes ci-dessus")
    if script:
        typer.echo(f"Redmine conforme : projet {ctx.settings.project}, {len(spec.trackers)} trackers "
                   "(API et script de provisionnement)")
    else:  # not "conforme" outright: visibility, workflow, groups' members unchecked
        typer.echo(f"Redmine conforme pour ce que l'API permet de vérifier : projet {ctx.settings.project}, "
                   f"{len(spec.trackers)} trackers — le reste demande le script de provisionnement (voir la note)")


@redmine_cli.command("spec")
def redmine_spec() -> None:
    """Le schéma attendu, en JSON, pour integrations/redmine/provision.rb."""
    typer.echo(json.dumps(build_spec(get_settings()).as_json_dict(), ensure_ascii=False, indent=2))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
