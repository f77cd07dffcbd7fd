"""People's values: names as identities (C-20 Exécution keys), references as file names,
and texts safe in every Redmine text format, in subjects, letters and spreadsheets."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from hypothesis import given, settings, strategies as st
from openpyxl import load_workbook

from app.enforcement.flows import execution_keys, reconcile_judgment
from app.letters import letter_docx, letter_text
from app.litigation.case import Party, PartyRole
from app.prevention import service as prevention
from app.config import Settings
from app.templates import (TEMPLATES_DIR, TEXT_FORMATS, WORD_JOINER, TemplateMarkupError, escape, markup_for,
                           render)
from app.text import clean, field_value, file_stem, identity, spreadsheet_cell, subject_line
from tests.texts import as_shown
from tests.unit.helpers import add_litigation, add_register, make_context
from tests.unit.test_prevention import ctx as prevention_ctx  # noqa: F401 (fixture)
from tests.unit.test_prevention import line, load, run, tickets

TWENTY_DEBTORS = [
    ("Jean Martin", "locataire"), ("Jean Martin", "colocataire"), ("Jean Martin", "caution"),
    ("Иван Петров", "colocataire"), ("Мария Иванова", "caution"), ("Γιώργος Παπαδόπουλος", "colocataire"),
    ("Ελένη Νικολάου", "caution"), ("محمد علي", "colocataire"), ("فاطمة الزهراء", "caution"),
    ("王伟", "colocataire"), ("李娜", "caution"), ("佐藤 花子", "colocataire"), ("김민준", "caution"),
    ("JEAN MARTIN", "caution"), ("Jéan Martin", "colocataire"), ("???", "caution"), ("!!!", "caution"),
    ("user:admin", "colocataire"), ("Ｊｅａｎ Ｍａｒｔｉｎ", "caution"), ("Zoë D'Arc", "caution"),
]
BIDI = "\u202e\u2066\u200f\u061c"


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


def judgment(ctx, debtors: list[tuple[str, str]]):
    add_register(ctx.redmine)
    lit = add_litigation(ctx.redmine, **{"Débiteurs": "\n".join(f"{n} ; {r}" for n, r in debtors)})
    return ctx.redmine.add("Assignation", parent_id=lit.id, **{"Issue du jugement": "Favorable", "N° mandat": "M-1"})


def executions(ctx, title_id):
    return [i for i in ctx.redmine.issues.values() if i.tracker == "Exécution" and i.parent_id == title_id]


# --- C-20: one Exécution per debtor line ---------------------------------------------------
def test_twenty_distinct_debtors_get_twenty_executions_whatever_their_names(ctx):
    title = judgment(ctx, TWENTY_DEBTORS)
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))  # again: nothing more
    made = executions(ctx, title.id)
    assert len(made) == 20
    assert len({e.field("Clé d'opération") for e in made}) == 20
    assert {e.subject.split(" — ")[1] for e in made} == {f"{n} ({r})" for n, r in TWENTY_DEBTORS}


def test_a_ticket_of_the_former_key_is_adopted_by_the_first_line_it_matches(ctx):
    """Deployments before the fix hold one ticket per ASCII slug (role ignored): a file
    processed again adopts it for the first matching line and opens the others'."""
    debtors = [("Jean Martin", "colocataire"), ("Иван Петров", "caution"), ("Jean Martin", "caution"),
               ("王伟", "caution")]
    title = judgment(ctx, debtors)
    old_martin = ctx.redmine.add("Exécution", "Exécution — Jean Martin", parent_id=title.id,
                                 **{"Clé d'opération": f"C-20/execution/{title.id}/jean-martin"})
    old_empty = ctx.redmine.add("Exécution", "Exécution — Иван Петров", parent_id=title.id,
                                **{"Clé d'opération": f"C-20/execution/{title.id}/"})
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    made = executions(ctx, title.id)
    assert len(made) == 4
    keys = execution_keys(title.id, [Party(n, PartyRole(r)) for n, r in debtors])
    assert ctx.redmine.issues[old_martin.id].field("Clé d'opération") == keys[0]
    assert ctx.redmine.issues[old_empty.id].field("Clé d'opération") == keys[1]
    assert {e.field("Clé d'opération") for e in made} == set(keys)


def test_editing_the_debtor_lines_after_the_judgment_opens_only_the_new_debtors_execution(ctx):
    """Found by the red team: keys by line position gave a second ticket to every debtor
    whose line moved. A line added first, one removed, homonyms kept apart by their rank."""
    debtors = [("Jean Dupont", "locataire"), ("Jean Dupont", "locataire"), ("Иван Петров", "caution"), ("王伟", "caution")]
    title = judgment(ctx, debtors)
    lit_id = ctx.redmine.get_issue(title.id).parent_id
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    before = {e.id for e in executions(ctx, title.id)}
    assert len(before) == 4
    edited = [("Marie Durand", "colocataire"), *debtors[:2], debtors[3]]  # added first, the Cyrillic one removed
    ctx.redmine.edit(lit_id, **{"Débiteurs": "\n".join(f"{n} ; {r}" for n, r in edited)})
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    after = executions(ctx, title.id)
    assert len(after) == 5 and before < {e.id for e in after}  # only Marie Durand's is new


@pytest.mark.parametrize("one, other", [
    ("Jean Martin", "  JEAN   martin "), ("Ｊｅａｎ", "jean"), ("STRASSE", "straße"), ("Jean\u202eMartin", "JeanMartin"),
    ("ﬁlou", "filou"),
])
def test_identity_folds_case_width_and_invisible_characters(one, other):
    assert identity(one) == identity(other)


@pytest.mark.parametrize("one, other", [
    ("Иван Петров", "Мария Иванова"), ("王伟", "李娜"), ("محمد علي", "فاطمة الزهراء"), ("???", "!!!"),
    ("Jéan", "Jean"), ("a" * 80 + "x", "a" * 80 + "y"),
])
def test_identity_keeps_names_of_every_script_apart_and_never_empty(one, other):
    assert identity(one) != identity(other)
    assert identity(one) and identity(other) and len(identity(one)) <= 60


# --- letter file names -----------------------------------------------------------------------
def test_references_that_normalise_alike_get_their_own_file_names():
    refs = ["LOC/1", "LOC.1", "LOC_1", "loc_1", "LOC 1", "LOC:1", "ЛОК1", "ЛОК2", "LOC-1", "LOC..1"]
    stems = [file_stem(r) for r in refs]
    assert len({s.casefold() for s in stems}) == len(refs)  # distinct even where case is ignored
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", s) for s in stems)
    assert file_stem("LOC-1") == "LOC-1"  # a plain reference stays readable


def test_each_tenant_gets_his_own_letter_file_and_status(prevention_ctx):  # noqa: F811
    ctx = prevention_ctx
    refs = ["LOC/1", "LOC.1", "LOC_1"]
    load(ctx, date(2027, 1, 8), *(line(r, "05/01/2027", name=f"Locataire {n}") for n, r in enumerate(refs)))
    run(ctx, date(2027, 1, 11))
    paths = {}
    for case, letters in prevention.cases_of(ctx.db):
        [letter] = letters
        paths[case.tenant_ref] = letter.path
    assert len(set(paths.values())) == 3
    for n, ref in enumerate(refs):
        with open(paths[ref], "rb") as letter:
            assert f"Locataire {n}" in letter_text(letter.read())


# --- values in spreadsheets, subjects and letters ------------------------------------------
@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+33 6 00", "'+33 6 00"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\n=1"), (f"{BIDI}=1+1", "'=1+1"),
    ("Dupont", "Dupont"), (f"Du{BIDI}pont", "Dupont"),
])
def test_spreadsheet_cells_never_formulas_nor_bidi(value, cell):
    assert spreadsheet_cell(value) == cell


def test_phase_files_show_hostile_names_as_text(prevention_ctx):  # noqa: F811
    ctx = prevention_ctx
    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", name="=1+2"), line("A", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    [file] = tickets(ctx, "Fichier de relance")
    content = ctx.redmine.files[(file.id, "relance-phase-2-2027-01.csv")].decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(content), delimiter=";"))[1][1] == "'=1+2"
    sheet = load_workbook(io.BytesIO(ctx.redmine.files[(file.id, "relance-phase-2-2027-01.xlsx")])).active
    assert sheet.cell(2, 2).data_type == "s" and sheet.cell(2, 2).value == "'=1+2"


def test_subjects_and_fields_written_without_bidi_controls(prevention_ctx):  # noqa: F811
    ctx = prevention_ctx
    load(ctx, date(2027, 1, 8), line("A", "05/12/2026", name=f"Jean{BIDI} Dupont"), line("A", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    [call] = tickets(ctx, "Relance impayés")
    assert "Jean Dupont" in call.subject and not re.search(f"[{BIDI}]", call.subject + call.description)


def test_letters_without_bidi_controls(tmp_path):
    content = letter_docx("relance_1", tenant=_tenant(f"Jean{BIDI} Dupont"), today=date(2027, 1, 11), plan=False,
                          plan_months=6, social_group="x", adviser=None)
    text = letter_text(content)
    assert "Jean Dupont" in text and not re.search(f"[{BIDI}]", text)


def _tenant(name):
    from decimal import Decimal

    from app.prevention.phases import Arrears, Term
    return Arrears(tenant_ref="A", name=name, lot="L", agency="Agence Nord", sector="Nord", lease_start=None,
                   phone="", mandate_number="M-1", owner_ref="P", terms=(Term(date(2027, 1, 5), Decimal("650.00")),))


def test_subjects_on_one_line_within_redmines_255_characters():
    assert subject_line(f" Jean\n\r\tMartin {BIDI} ") == "Jean Martin"
    long = subject_line("Exécution — " + "Dupont " * 60)
    assert len(long) == 255 and long.endswith("…")


def test_one_line_field_values_cut_at_255_characters_multi_line_ones_kept():
    """Issue 15: a value copied into a string field an office limited to 255 characters
    must not make Redmine refuse the ticket."""
    assert field_value(f"Dupont{BIDI}", one_line=True) == "Dupont"
    long = field_value("D" * 300, one_line=True)
    assert len(long) == 255 and long.endswith("…")
    assert field_value("D" * 300) == "D" * 300  # a text field: never cut


def test_a_ticket_is_made_with_its_long_values_cut(ctx):
    from app.effects import ensure_ticket
    from integrations.redmine.interface import NewIssue

    ticket, _ = ensure_ticket(ctx, "k/1", NewIssue("Contentieux", "T" * 300, "", custom_fields={
        "N° mandat": "M" * 300, "Débiteurs": "D" * 300 + " ; locataire"}))
    assert len(ticket.subject) == 255 and ticket.field("N° mandat") == "M" * 254 + "…"
    assert ticket.field("Débiteurs") == "D" * 300 + " ; locataire"


def test_a_very_long_name_or_reference_stops_no_run(prevention_ctx, tmp_path):  # noqa: F811
    """Found by the red team (and issue 15): a 300-character reference made a file name
    longer than the file system takes (and, on PostgreSQL, refused the whole import), a long
    name a subject longer than Redmine takes: the whole monthly run stopped, for every
    tenant. Now the reference's row is rejected by line; the longest name the store keeps
    gets its call ticket."""
    ctx = prevention_ctx
    report = load(ctx, date(2027, 1, 8), line("R" * 300, "05/01/2027"),
                  line("L/" * 29, "05/01/2027", name="N" * 255), line("B", "05/01/2027"))
    assert report.rejects == ["ligne 2 : colonne « ref_locataire » trop longue : 60 caractères au plus"]
    run(ctx, date(2027, 1, 11))
    calls = tickets(ctx, "Relance impayés")
    assert len(calls) == 2 and all(len(c.subject) <= 255 for c in calls)
    assert len([case for case, letters in prevention.cases_of(ctx.db) if letters]) == 2


def test_a_debtor_with_a_very_long_name_gets_his_execution(ctx):
    title = judgment(ctx, [("D" * 280, "locataire"), ("Paul Martin", "caution")])
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    assert len(executions(ctx, title.id)) == 2


# --- Redmine text formats ---------------------------------------------------------------------
def test_textile_abbreviations_are_not_made_of_peoples_values():
    """Found by the red team: capitals followed by "(" were an abbreviation, the text in
    brackets hidden in a tooltip (``<abbr title="ne pas poursuivre">DUPONT</abbr>``)."""
    assert "(" not in escape("DUPONT(ne pas poursuivre) Jean", "textile")


HOSTILE = ["www.example.invalid", "http://evil.invalid/x", "!http://evil.invalid/a.png!", "user:admin",
           "project:gestion", "#123", "r123", "[[Page]]", "{{toc}}", "@admin", "jean@example.invalid",
           "h1. Titre", "bq. citation", "p. para", "fn1. note", "* puce", "# numéro", "> citation", "| a | b |",
           "- tiret", "1. un", "**gras**", "_em_", "-del-", "+ins+", "^sup^", "~sub~", "%span%", "==brut==",
           "??cite??", "`code`", "\"lien\":http://x", "<b>gras</b>", "&amp;", "commit:abc", "source:x",
           "attachment:a.png", "version:\"1.0\"", "sftp://x", "ftp://x", BIDI, "\n", "\n\n", "  ", "Jean-Pierre",
           "Иван", "王伟", "محمد", "Zoë", "M-1", "DUPONT(ne pas poursuivre) Jean", "RIB(FR76 1234)"]
hostile = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=6)), max_size=8).map("".join)

# What Redmine's passes look for in the HTML (ApplicationHelper, WikiFormatting::LinksHelper).
REDMINE_TRIGGERS = re.compile(
    r"(?:https?|s?ftps?)://|www\.|[a-z]+:\S|(?:^|[\s(,\-\[>])(?:@|##?\d|r\d)|\[\[|\{\{"
    r"|[\w.!#$%+\-/]@[A-Za-z0-9-]", re.MULTILINE)
MARKDOWN_LINE_START = re.compile(r"^(?:[*#>|=\-+_~`]|\d+[.)]|\s)", re.MULTILINE)
TEXTILE_LINE_START = re.compile(r"^(?:[*#>|=\-+_%^~!\"({\[<]|[A-Za-z]+\d*\S*?\.)", re.MULTILINE)


def typed(value: str) -> str:
    return "\n".join(line.strip() for line in clean(value).split("\n") if line.strip())


@settings(max_examples=300, deadline=None)
@given(hostile, st.sampled_from(TEXT_FORMATS))
def test_escaped_values_show_as_typed_and_trigger_nothing(value, text_format):
    escaped = escape(value, text_format)
    expected = typed(value).replace(WORD_JOINER, "") if text_format == "common_mark" else typed(value)
    assert as_shown(escaped, text_format) == expected
    assert not re.search(f"[{BIDI}]", escaped)
    if text_format == "common_mark":  # the parser decodes escapes: Redmine sees the text, word joiners in it
        assert not REDMINE_TRIGGERS.search(re.sub(r"\\(.)", r"\1", escaped))
        assert not MARKDOWN_LINE_START.search(escaped)
    else:
        assert not REDMINE_TRIGGERS.search(escaped)
        assert not (TEXTILE_LINE_START if text_format == "textile" else MARKDOWN_LINE_START).search(escaped)
        assert not re.search(r"[*\[\]{}<>|@!:\"&]", re.sub(r"&#\d+;", "", escaped))


@pytest.mark.parametrize("text_format", TEXT_FORMATS)
def test_the_services_own_formatting_still_renders(text_format):
    text = render("execution_ticket", text_format, party=Party("user:admin", PartyRole.guarantor), title_id=12,
                  cost=400)
    assert "sous le ticket #12 " in text and "\n* Coût estimé" in text
    assert "user:admin" not in text


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format de texte inconnu"):
        escape("x", "rst")


def test_prevention_status_prints_no_terminal_escape_from_the_ledger(prevention_ctx, monkeypatch):  # noqa: F811
    """A ledger's reference carrying a terminal escape sequence or a bidi control reaches the
    operator's screen cleaned."""
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    ctx = prevention_ctx
    load(ctx, date(2027, 1, 8), line(f"LOC\x1b[2J{BIDI}9", "05/01/2027"))
    run(ctx, date(2027, 1, 11))
    monkeypatch.setenv("RECOUVREMENT_DATABASE_URL", ctx.db.url)
    get_settings.cache_clear()
    try:
        output = CliRunner().invoke(cli, ["prevention", "status"]).output
    finally:
        get_settings.cache_clear()
    assert "LOC[2J9" in output and "\x1b" not in output and not re.search(f"[{BIDI}]", output)


@pytest.mark.parametrize(("textile", "markdown"), [
    ("*Gras* : x", "**Gras** : x"),
    ("_Italique_ puis *gras*", "*Italique* puis **gras**"),
    ("* puce", "* puce"),
    ("** sous-puce", "    * sous-puce"),
    ("# étape", "1. étape"),
    ("* Acte : *{{ act }}* ({{ n }})", "* Acte : **{{ act }}** ({{ n }})"),
    ("Échéance *J+{{ days }} : le {{ on|fr_date }}*.", "Échéance **J+{{ days }} : le {{ on|fr_date }}**."),
    ("{% if x %}\n*Titre*\n{% endif %}", "{% if x %}\n**Titre**\n{% endif %}"),
    ("{#- un commentaire \"libre\" : * _ [x] -#}\nTexte #{{ id }} de {{ who|user }}",
     "{#- un commentaire \"libre\" : * _ [x] -#}\nTexte #{{ id }} de {{ who|user }}"),
])
def test_the_templates_markup_in_each_format(textile, markdown):
    """Issue 17: one source, Redmine's three formats (Markdown and CommonMark read alike here)."""
    assert markup_for(textile, "textile") == textile
    assert markup_for(textile, "markdown") == markdown
    assert markup_for(textile, "common_mark") == markdown


@pytest.mark.parametrize("line", [
    "h1. Titre", "bq. citation", "p. paragraphe", "> citation", "| a | b |", "- tiret", "+ plus", "1. un",
    "\"lien\":http://x.invalid", "[[Page]]", "`code`", "2 * 3", "mot_à_mot", "<b>gras</b>", "@code@", "x ==brut==",
    "!image.png!", "%{color:red}rouge%", "a ~ b", "^exposant^", "\\échappé", "{accolade}",
    # Textile's nested steps and headings, spans and signatures, shown otherwise elsewhere (issue 17 red team)
    "## sous-étape", "#  deux espaces", "# ", "  # indenté", "    code", "-barré-", "+inséré+", "??cité??",
    "CAF(Caisse d'allocations)", "p(note). x", "p=. centré", "h3=. titre", "l'*acte*", "«*gras*»",
])
def test_other_markup_in_a_template_is_refused_naming_it(line):
    with pytest.raises(TemplateMarkupError, match=r"modele\.j2, ligne 2 : balisage hors du balisage des modèles"):
        markup_for("*Titre*\n" + line, "textile", "modele.j2")


def test_raw_blocks_are_refused_redmines_macros_would_run_in_them():
    with pytest.raises(TemplateMarkupError, match="raw"):
        markup_for("Texte {% raw %}{{toc}}{% endraw %}", "common_mark", "modele.j2")


@pytest.mark.parametrize("line", ["J+{{ days }}, ex-huissier, règle C-14, process 20 05 08", "(*gras*) et _ital_.",
                                  "* #{{ id }} {{ subject }}", "Étapes :", "** {{ a }} : {{ b|eur }}"])
def test_the_templates_own_text_is_accepted(line):
    assert markup_for(line, "textile") == line


@pytest.mark.parametrize("text_format", TEXT_FORMATS)
def test_every_template_is_in_the_templates_markup(text_format):
    for template in sorted(TEMPLATES_DIR.glob("*.j2")):
        markup_for(template.read_text(), text_format, template.name)


def test_values_never_make_markup_whatever_the_format():
    """A value looking like the templates' markup stays text in the format it is written for."""
    party = Party("*Jean* _Dupont_\n# un\n** deux", PartyRole.guarantor)
    for text_format in TEXT_FORMATS:
        text = render("execution_ticket", text_format, party=party, title_id=12, cost=400)
        assert "*Jean*" not in text and "_Dupont_" not in text and "\n# " not in text and "\n** " not in text
        assert "\n* Coût estimé" in text


@pytest.mark.parametrize(("text_format", "bold", "name"), [("textile", "*Jugement favorable* :", "&#42;Jean&#42;"),
                                                           ("common_mark", "**Jugement favorable** :", "\\*Jean\\*")])
def test_the_service_writes_in_the_redmines_format(tmp_path, text_format, bold, name):
    """``redmine_text_format``: every note and description the flows write is in it (C-20)."""
    ctx = make_context(tmp_path, Settings(redmine_text_format=text_format))
    title = judgment(ctx, [("*Jean* Dupont", "locataire")])
    reconcile_judgment(ctx, ctx.redmine.get_issue(title.id))
    [execution] = executions(ctx, title.id)
    assert "\n* Coût estimé" in execution.description and f"contre {name} Dupont" in execution.description
    note = ctx.redmine.get_issue(title.id).journals[-1].notes
    assert note.startswith(bold), note
