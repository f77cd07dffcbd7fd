"""The opening flow on the in-memory Redmine: C-1 … C-6, C-9, and its idempotence."""

from dataclasses import replace

from app.litigation.flows import reconcile_litigation, reconcile_register
from integrations.redmine.interface import RedmineRejected
from tests.unit.helpers import CLERK, GESTIONNAIRE, LITIGATION_GROUP, add_litigation, add_register


def analyses(redmine, issue_id):
    return [n for n in redmine.notes(issue_id) if "Ouverture du contentieux" in n]


def test_opening_attaches_analyses_funds_and_tasks(ctx):
    redmine = ctx.redmine
    register = add_register(redmine)
    lit = add_litigation(redmine)

    reconcile_litigation(ctx, redmine.get_issue(lit.id))

    assert redmine.get_issue(lit.id).parent_id == register.id  # C-2, C-9
    [note] = analyses(redmine, lit.id)
    assert "commandement de payer" in note  # C-4
    assert all(name in note for name in ("Jean Dupont", "Marie Durand", "Paul Martin"))
    assert "900,00" in note  # C-5: 3 × 300 €
    [funds] = redmine.children(lit.id, "Demande de fonds")  # C-6
    assert funds.assigned_to_id == GESTIONNAIRE
    assert funds.field("Montant demandé") == "900"
    assert funds.field("Clé d'opération") == f"C-6/demande-fonds/{lit.id}"
    [task] = redmine.children(lit.id, "Tâche gestionnaire")  # C-1, C-3
    assert task.assigned_to_id == GESTIONNAIRE
    assert task.field("Clé d'opération") == f"C-1/information-ouverture/{lit.id}"


def test_a_second_run_writes_nothing(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine)
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    writes = redmine.writes

    assert reconcile_litigation(ctx, redmine.get_issue(lit.id)) == "rien à faire"
    assert redmine.writes == writes


def test_owner_in_credit_gets_no_funds_request(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine, **{"Compte propriétaire": "Créditeur"})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    assert redmine.children(lit.id, "Demande de fonds") == []
    assert "Compte propriétaire créditeur" in analyses(redmine, lit.id)[0]


def test_missing_register_note_to_author_once_and_nothing_else(ctx):
    redmine = ctx.redmine
    lit = add_litigation(redmine, mandate="M-404")
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    writes = redmine.writes
    reconcile_litigation(ctx, redmine.get_issue(lit.id))

    issue = redmine.get_issue(lit.id)
    [note] = redmine.notes(lit.id)
    assert "M-404" in note and "Registre des mandats" in note
    assert issue.assigned_to_id == CLERK and issue.parent_id is None and issue.children == []
    assert redmine.writes == writes == 1
    assert [i.tracker for i in redmine.issues.values()] == ["Contentieux"]  # nothing else created


def test_register_created_later_attaches_the_waiting_file(ctx):
    redmine = ctx.redmine
    lit = add_litigation(redmine, mandate="M-9")
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    register = add_register(redmine, "M-9")

    reconcile_register(ctx, redmine.get_issue(register.id))

    assert redmine.get_issue(lit.id).parent_id == register.id
    assert len(analyses(redmine, lit.id)) == 1


def test_two_registers_for_one_mandate_attach_nothing(ctx):
    redmine = ctx.redmine
    first, second = add_register(redmine), add_register(redmine)
    lit = add_litigation(redmine)
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    [note] = redmine.notes(lit.id)
    assert f"#{first.id}" in note and f"#{second.id}" in note and "M-1" in note
    issue = redmine.get_issue(lit.id)
    assert issue.parent_id is None and issue.assigned_to_id == CLERK and issue.children == []


def test_incomplete_file_is_attached_then_sent_back_to_its_author(ctx):
    redmine = ctx.redmine
    register = add_register(redmine)
    lit = add_litigation(redmine, **{"Débiteurs": "Paul Martin ; caution"})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    issue = redmine.get_issue(lit.id)
    assert issue.parent_id == register.id and issue.assigned_to_id == CLERK
    [note] = redmine.notes(lit.id)
    assert "Dossier contentieux incomplet" in note and "aucun locataire" in note
    assert issue.children == []


def test_register_without_gestionnaire_routes_to_litigation_and_says_so(ctx):
    redmine = ctx.redmine
    register = add_register(redmine, assignee=None)
    lit = add_litigation(redmine)
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    assert {c.assigned_to_id for c in redmine.children(lit.id)} == {LITIGATION_GROUP}
    assert f"registre #{register.id} n'a pas de gestionnaire" in analyses(redmine, lit.id)[0]


def test_changed_debtors_give_a_new_analysis(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine)
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    issue = redmine.get_issue(lit.id)
    redmine.issues[lit.id] = replace(issue, custom_fields={**issue.custom_fields, "Débiteurs": "Jean Dupont ; locataire"})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    assert len(analyses(redmine, lit.id)) == 2 and "300,00" in analyses(redmine, lit.id)[1]
    assert len(redmine.children(lit.id)) == 2


def test_author_who_cannot_be_assigned_falls_back_to_litigation(ctx, monkeypatch):
    redmine = ctx.redmine
    lit = add_litigation(redmine, mandate="M-404")
    update = redmine.update_issue

    def refuse_author(issue_id, **changes):
        if changes.get("assigned_to_id") == CLERK:
            raise RedmineRejected("Assignee is invalid")
        update(issue_id, **changes)

    monkeypatch.setattr(redmine, "update_issue", refuse_author)
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    assert redmine.get_issue(lit.id).assigned_to_id == LITIGATION_GROUP
    assert "assigné au groupe Contentieux" in redmine.notes(lit.id)[0]


def test_c4_c5_tenant_gone_one_party_sommation_at_300_euros(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine, **{"Locataire dans les lieux": "0", "Débiteurs": "Jean Dupont ; locataire"})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    [note] = analyses(redmine, lit.id)
    assert "sommation de payer" in note and "commandement" not in note and "a quitté les lieux" in note
    assert "1 acte(s) × 300,00\u00a0€ = *300,00\u00a0€*" in note
    [funds] = redmine.children(lit.id, "Demande de fonds")
    assert funds.field("Montant demandé") == "300"


def test_names_typed_in_redmine_show_as_typed_in_the_note(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine, **{"Débiteurs": '*Dupont* ; locataire\n"x":http://a ; caution'})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    [note] = analyses(redmine, lit.id)
    assert "** &#42;Dupont&#42; (locataire)" in note and "** &#34;x&#34;&#58;http&#58;//a (caution)" in note


def test_register_created_later_also_gets_the_funds_request_and_task(ctx):
    redmine = ctx.redmine
    lit = add_litigation(redmine, mandate="M-9")
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    register = add_register(redmine, "M-9")
    reconcile_register(ctx, redmine.get_issue(register.id))
    assert {c.tracker for c in redmine.children(lit.id)} == {"Demande de fonds", "Tâche gestionnaire"}
    assert {c.assigned_to_id for c in redmine.children(lit.id)} == {GESTIONNAIRE}
    writes = redmine.writes
    assert reconcile_register(ctx, redmine.get_issue(register.id)) == "aucun contentieux en attente"
    assert redmine.writes == writes


def test_an_incomplete_file_lists_every_problem_and_is_opened_once_completed(ctx):
    redmine = ctx.redmine
    add_register(redmine)
    lit = add_litigation(redmine, **{"Débiteurs": "Jean Dupont", "Compte propriétaire": ""})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    [note] = redmine.notes(lit.id)
    assert "ligne 1 « Jean Dupont »" in note and "« Compte propriétaire » non renseigné" in note
    assert "aucun locataire" in note

    issue = redmine.get_issue(lit.id)
    redmine.issues[lit.id] = replace(issue, custom_fields={
        **issue.custom_fields, "Débiteurs": "Jean Dupont ; locataire", "Compte propriétaire": "Créditeur"})
    reconcile_litigation(ctx, redmine.get_issue(lit.id))
    assert len(analyses(redmine, lit.id)) == 1
    assert [c.tracker for c in redmine.children(lit.id)] == ["Tâche gestionnaire"]


def test_an_incomplete_ticket_the_service_opened_stays_with_its_assignee(ctx):
    from app.litigation.flows import reconcile_litigation
    from tests.unit.helpers import add_register, litigation_fields

    add_register(ctx.redmine)
    fields = litigation_fields()
    del fields["Compte propriétaire"]
    handed_over = ctx.redmine.add("Contentieux", "Impayés", author_id=ctx.redmine.service_user_id,
                                  assigned_to_id=620, **fields)  # opened by the prevention hand-over
    reconcile_litigation(ctx, handed_over)
    issue = ctx.redmine.get_issue(handed_over.id)
    assert issue.assigned_to_id == 620 and "Dossier contentieux incomplet" in ctx.redmine.notes(issue.id)[-1]
