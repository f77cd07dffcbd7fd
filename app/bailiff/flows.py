"""The file sent to the bailiff (procedure 20 05 08 02 § 1), rules C-7 … C-10.

Once funds are available (owner's account in credit, or the Demande de fonds ticket
closed), the litigation ticket gets the checklist of pieces: lease, guarantee deed when a
guarantor is summoned, management mandate or owner's civil status (C-7). A piece counts as
there when a file attached to the litigation ticket or to its register ticket carries its
word in its name (``bail``, ``caution``, ``mandat``, ``etat-civil``; accents and case
ignored). Each missing piece is a task for the gestionnaire. When the file is complete and
``Dossier transmis le`` is recorded, the funds-request ticket (or the litigation ticket)
gets "dossier complet transmis au commissaire de justice" (C-8). A served act attached (``commandement``
or ``sommation`` in its name) gives the gestionnaire a task: send it to the owner, file it
in the GED (C-10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.context import Context
from app.effects import digest, ensure_ticket, find_operation, note_once
from app.litigation.case import PartyRole, read_litigation_file
from app.litigation.flows import gestionnaire_of, open_register
from app.text import slug
from integrations.redmine.interface import Issue, NewIssue


@dataclass(frozen=True)
class Piece:
    key: str
    label: str
    words: tuple[str, ...]  # any of them in a file name ticks the piece


LEASE = Piece("bail", "bail", ("bail",))
GUARANTEE = Piece("caution", "acte de caution", ("caution", "cautionnement"))
MANDATE = Piece("mandat", "mandat de gestion ou état civil du propriétaire", ("mandat", "etat-civil"))
SERVED_ACT_WORDS = ("commandement", "sommation")


def has_word(filename: str, word: str) -> bool:
    """``word`` as a whole part of the file name: "Bail signé.pdf" yes, "bailleur.pdf" no."""
    return re.search(rf"(^|-){re.escape(word)}(-|$)", slug(filename)) is not None


def required_pieces(with_guarantor: bool) -> list[Piece]:
    """C-7: lease, guarantee deed if any, management mandate or owner's civil status."""
    return [LEASE, *([GUARANTEE] if with_guarantor else []), MANDATE]


def missing_pieces(pieces: list[Piece], filenames: list[str]) -> list[Piece]:
    return [p for p in pieces if not any(has_word(name, word) for name in filenames for word in p.words)]


def _funds_request(ctx: Context, litigation: Issue) -> Issue | None:
    found = find_operation(ctx, ctx.settings.trackers.funds_request, f"C-6/demande-fonds/{litigation.id}",
                           litigation.id)
    return found[0] if found else None


def reconcile_bailiff_file(ctx: Context, litigation: Issue) -> list[str]:
    s = ctx.settings
    f = s.fields
    file = read_litigation_file(litigation, s)
    if not file.complete:
        return []
    done: list[str] = []
    register = open_register(ctx, file.mandate_number)
    if register is None:
        return done  # missing or closed register: said by the opening, nothing created (C-9)
    gestionnaire = gestionnaire_of(ctx, register)

    for name in litigation.attachments:  # C-10: the served act, to the owner and the GED
        if any(has_word(name, word) for word in SERVED_ACT_WORDS):
            task, created = ensure_ticket(ctx, f"C-10/acte/{litigation.id}/{digest(name)}", NewIssue(
                tracker=s.trackers.task, subject=f"Envoyer l'acte signifié au propriétaire — contentieux #{litigation.id}",
                description=ctx.render("served_act_task", filename=name, litigation_id=litigation.id),
                parent_id=litigation.id, assigned_to_id=gestionnaire,
                custom_fields={f.mandate_number: file.mandate_number}))
            if created:
                done.append(f"acte signifié : tâche #{task.id}")

    funds = _funds_request(ctx, litigation) if file.owner_account_in_debit else None
    if file.owner_account_in_debit and not (funds and funds.closed):
        return done  # C-6/C-7: the file is prepared once funds are there
    filenames = litigation.attachments + ctx.redmine.get_issue(register.id).attachments
    pieces = required_pieces(any(p.role is PartyRole.guarantor for p in file.parties))
    missing = missing_pieces(pieces, filenames)
    for piece in missing:
        task, created = ensure_ticket(ctx, f"C-7/piece/{litigation.id}/{piece.key}", NewIssue(
            tracker=s.trackers.task, subject=f"Pièce manquante pour le commissaire de justice : {piece.label}",
            description=ctx.render("missing_piece_task", piece=piece, litigation_id=litigation.id,
                                   register_id=register.id),
            parent_id=litigation.id, assigned_to_id=gestionnaire,
            custom_fields={f.mandate_number: file.mandate_number}))
        if created:
            done.append(f"pièce manquante « {piece.label} » : tâche #{task.id}")
    text = ctx.render("bailiff_checklist", pieces=pieces, missing=missing)
    if note_once(ctx, litigation, f"C-7/pieces/{digest([p.key for p in missing])}", text):
        done.append("liste des pièces" + (" complète" if not missing else ""))

    sent_on = litigation.date_field(f.file_sent_date)
    if sent_on and not missing:  # C-8, on the ticket used for the funds request
        target = ctx.redmine.get_issue(funds.id) if funds else litigation  # with its journals
        if note_once(ctx, target, f"C-8/transmis/{litigation.id}",
                     ctx.render("file_sent", sent_on=sent_on, litigation_id=litigation.id)):
            done.append(f"dossier complet transmis au commissaire de justice (#{target.id})")
    return done
