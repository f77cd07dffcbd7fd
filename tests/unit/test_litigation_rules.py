"""The pure rules of the opening: C-4 (act, parties), C-5 (cost per act), C-6 (funds)."""

from decimal import Decimal

import pytest

from app.config import Procedure, Settings
from app.litigation.case import Act, PartyRole, act_to_order, analyse_opening, parse_debtors, read_litigation_file
from integrations.redmine.fake import FakeRedmine
from integrations.redmine.interface import FieldUnknown
from tests.unit.helpers import litigation_fields


def read(**overrides):
    issue = FakeRedmine().add("Contentieux", **litigation_fields(**overrides))
    return read_litigation_file(issue, Settings())


def test_debtors_one_party_a_line_roles_case_insensitive_blank_lines_ignored():
    parties, problems = parse_debtors("Jean Dupont ; locataire\n\n  Marie Durand;COLOCATAIRE \nPaul Martin ; Caution")
    assert problems == []
    assert [(p.name, p.role) for p in parties] == [
        ("Jean Dupont", PartyRole.tenant), ("Marie Durand", PartyRole.co_tenant), ("Paul Martin", PartyRole.guarantor)]


@pytest.mark.parametrize("line", ["Jean Dupont", "Jean Dupont ; bailleur", " ; locataire"])
def test_a_malformed_debtor_line_is_reported_with_its_number(line):
    parties, problems = parse_debtors(f"Marie Durand ; locataire\n{line}")
    assert len(parties) == 1
    assert len(problems) == 1 and "ligne 2" in problems[0] and line.strip() in problems[0]


@pytest.mark.parametrize("in_premises, act", [(True, Act.commandement), (False, Act.sommation)])
def test_c4_commandement_if_tenant_in_premises_sommation_if_left(in_premises, act):
    assert act_to_order(in_premises) is act
    assert analyse_opening(read(**{"Locataire dans les lieux": "1" if in_premises else "0"}), Procedure()).act is act


@pytest.mark.parametrize("debtors, cost", [
    ("Jean Dupont ; locataire", Decimal("300")),
    ("Jean Dupont ; locataire\nMarie Durand ; colocataire", Decimal("600")),
    ("Jean Dupont ; locataire\nMarie Durand ; colocataire\nPaul Martin ; caution", Decimal("900")),
])
def test_c5_one_act_per_party_at_300_euros(debtors, cost):
    analysis = analyse_opening(read(**{"Débiteurs": debtors}), Procedure())
    assert analysis.cost_per_act == Decimal("300")
    assert analysis.estimated_cost == cost


def test_c5_cost_per_act_is_configuration():
    analysis = analyse_opening(read(), Procedure(act_cost_per_party_eur=Decimal("312.50")))
    assert analysis.estimated_cost == Decimal("937.50")


@pytest.mark.parametrize("account, needed", [("Débiteur", True), ("Créditeur", False)])
def test_c6_funds_requested_only_when_owner_account_in_debit(account, needed):
    assert analyse_opening(read(**{"Compte propriétaire": account}), Procedure()).funds_request_needed is needed


@pytest.mark.parametrize("overrides, problem", [
    ({"N° mandat": ""}, "« N° mandat » non renseigné"),
    ({"Débiteurs": ""}, "« Débiteurs » non renseigné"),
    ({"Débiteurs": "Paul Martin ; caution"}, "aucun locataire"),
    ({"Locataire dans les lieux": ""}, "« Locataire dans les lieux » non renseigné"),
    ({"Compte propriétaire": ""}, "« Compte propriétaire » non renseigné"),
    ({"Compte propriétaire": "Inconnu"}, "valeur « Inconnu » inconnue"),
    ({"Montant de la dette": "beaucoup"}, "montant illisible"),
])
def test_an_incomplete_file_says_what_is_missing(overrides, problem):
    file = read(**overrides)
    assert not file.complete
    assert any(problem in p for p in file.problems), file.problems
    with pytest.raises(ValueError):
        analyse_opening(file, Procedure())


def test_a_field_the_service_cannot_see_is_unknown_not_missing():
    """Issue 15: a field left out of the ticket as read (hidden from the service's role, not
    on the tracker) is not "non renseigné": reading the file raises FieldUnknown."""
    fields = litigation_fields()
    del fields["Compte propriétaire"]
    redmine = FakeRedmine()
    redmine.tracker_fields["Contentieux"].remove("Compte propriétaire")  # the admin forgot it
    with pytest.raises(FieldUnknown) as raised:
        read_litigation_file(redmine.add("Contentieux", **fields), Settings())
    assert raised.value.name == "Compte propriétaire"


def test_a_complete_file_reads_every_value():
    file = read()
    assert file.complete
    assert (file.mandate_number, file.tenant_ref, file.owner_ref) == ("M-1", "LOC-1", "PROP-1")
    assert file.debt == Decimal("2450.50") and file.tenant_in_premises is True and file.owner_account_in_debit is True


def test_debtor_line_numbers_count_blank_lines():
    _, problems = parse_debtors("Jean Dupont ; locataire\n\nPaul Martin ; garant")
    assert len(problems) == 1 and "ligne 3" in problems[0] and "Paul Martin ; garant" in problems[0]


def test_a_blank_only_field_is_not_filled_and_every_problem_is_listed():
    file = read(**{"N° mandat": "  ", "Locataire dans les lieux": "", "Compte propriétaire": "Débiteur ?"})
    assert len(file.problems) == 3, file.problems
    assert any("« N° mandat » non renseigné" in p for p in file.problems)
    assert any("« Locataire dans les lieux » non renseigné" in p for p in file.problems)
    assert any("valeur « Débiteur ? » inconnue" in p for p in file.problems)


def test_a_missing_debt_amount_is_not_a_problem():
    file = read(**{"Montant de la dette": ""})
    assert file.complete and file.debt is None
