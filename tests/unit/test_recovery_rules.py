"""Issue 4's pure rules at their exact numbers: C-22 (injonction), C-7 (pieces), C-27/L-15
(truce), C-16/C-29/C-30 (invoices)."""

from datetime import date
from decimal import Decimal

import pytest

from app.bailiff.flows import GUARANTEE, LEASE, MANDATE, has_word, missing_pieces, required_pieces
from app.config import Procedure, Settings
from app.legal.rules import in_winter_truce, truce_end
from app.invoices.flows import route_invoice
from app.litigation.case import read_litigation_file
from app.titles.flows import choose_route
from integrations.redmine.fake import FakeRedmine
from tests.unit.helpers import litigation_fields


def file(in_premises="0", debt="4000.00", **more):
    fields = litigation_fields(**{"Locataire dans les lieux": in_premises, "Montant de la dette": debt, **more})
    return read_litigation_file(FakeRedmine().add("Contentieux", **fields), Settings())


@pytest.mark.parametrize("in_premises, debt, rent_only, injunction", [
    ("0", "4000.00", True, True),  # at the ceiling: included
    ("0", "4000.01", True, False),
    ("0", "0.01", True, True),
    ("0", "1200", False, False),  # charges included
    ("1", "1200", True, False),  # tenant still there
    ("0", "", True, False),  # amount unknown
])
def test_c22_injonction_only_for_a_tenant_who_left_rent_only_at_most_4000(in_premises, debt, rent_only, injunction):
    route = choose_route(file(in_premises, debt), rent_only, Procedure())
    assert route.injunction is injunction
    assert route.cost == (Decimal("400") if injunction else Decimal("1500"))  # C-24 / C-13
    assert (route.reasons == []) is injunction


def test_c12_clause_resolutoire_only_for_a_tenant_in_place():
    assert choose_route(file("1", "900"), True, Procedure()).clause_resolutoire
    assert not choose_route(file("0", "900"), False, Procedure()).clause_resolutoire


def test_c22_ceiling_is_configuration():
    assert choose_route(file("0", "4500"), True, Procedure(injunction_ceiling_eur=Decimal("5000"))).injunction


@pytest.mark.parametrize("name, word, found", [
    ("Bail signé.pdf", "bail", True), ("BAIL_2019.PDF", "bail", True), ("bailleur.pdf", "bail", False),
    ("Acte de caution.pdf", "caution", True), ("État civil propriétaire.pdf", "etat-civil", True),
    ("mandat-gestion.pdf", "mandat", True), ("mandataire.pdf", "mandat", False),
])
def test_c7_a_piece_is_recognised_by_a_word_of_the_file_name(name, word, found):
    assert has_word(name, word) is found


def test_c7_pieces_guarantee_deed_only_with_a_guarantor_and_mandate_or_civil_status():
    assert required_pieces(False) == [LEASE, MANDATE]
    assert required_pieces(True) == [LEASE, GUARANTEE, MANDATE]
    assert missing_pieces(required_pieces(True), ["bail.pdf", "etat civil.pdf"]) == [GUARANTEE]
    assert missing_pieces(required_pieces(True), ["cautionnement.pdf", "mandat.pdf"]) == [LEASE]


@pytest.mark.parametrize("day, truce", [
    (date(2027, 10, 31), False), (date(2027, 11, 1), True), (date(2028, 3, 31), True), (date(2028, 4, 1), False),
])
def test_l15_winter_truce_from_1_november_to_31_march(day, truce):
    assert in_winter_truce(day) is truce


def test_l15_truce_ends_on_1_april():
    assert truce_end(date(2027, 11, 15)) == date(2028, 4, 1)
    assert truce_end(date(2028, 2, 29)) == date(2028, 4, 1)


@pytest.mark.parametrize("gli, indemnified, debit, fees, rule, group", [
    (False, False, True, False, "C-16", "accounting"),
    (True, True, True, False, "C-30", "accounting"),  # indemnified: from the GLI account
    (True, False, False, False, "C-29", "accounting"),  # owner in credit
    (True, False, True, True, "C-29", "accounting"),  # fee debit goes ahead
    (True, False, True, False, "C-29", "management"),  # any other debit: DG approval
])
def test_invoices_routed_per_the_gli_annex(gli, indemnified, debit, fees, rule, group):
    routing = route_invoice(gli=gli, indemnified=indemnified, owner_in_debit=debit, fees=fees)
    assert (routing.rule, routing.group) == (rule, group)
