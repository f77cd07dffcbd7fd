"""Texts on the real Redmine, in each text format it offers (issue 17): a note the service
renders shows every value as typed in the issue's HTML page — no link, image, heading,
quote, mention or macro — while its own bold labels, lists and steps render."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings, strategies as st

from app.litigation.case import Party, PartyRole
from app.templates import TEMPLATES_DIR, TEXT_FORMATS, WORD_JOINER, escape, markup_for, render
from tests.e2e.redmine_admin import rails_runner, text_formats_offered, text_formatting
from tests.unit.test_texts import HOSTILE, typed

VALUE = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=5)), max_size=6).map("".join)
VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "col", "source"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs, self.children = tag, attrs, []

    def elements(self, tag: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if tag is None or child.tag == tag:
                    found.append(child)
                found += child.elements(tag)
        return found

    def text(self) -> str:
        return "".join("\n" if isinstance(c, Node) and c.tag == "br" else c.text() if isinstance(c, Node) else c
                       for c in self.children)


class Page(HTMLParser):
    """The page as a tree (entities decoded in the text)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("page", {})
        self._open = [self.root]
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self._open[-1].children.append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_endtag(self, tag):
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data):
        self._open[-1].children.append(data)

    def last_note(self) -> Node:
        notes = [n for n in self.root.elements("div") if re.fullmatch(r"journal-\d+-notes", n.attrs.get("id") or "")]
        return max(notes, key=lambda n: int(n.attrs["id"].split("-")[1]))


def offered(text_format: str) -> None:
    if text_format not in text_formats_offered():
        pytest.skip(f"ce Redmine n'offre pas le format {text_format} ({', '.join(text_formats_offered())})")


def tags(node: Node) -> set[str]:
    """The elements under ``node``, but for the ``<span>`` that commonmarker 2 (Redmine 6.1)
    wraps each backslash-escaped character in: text, not markup."""
    return {e.tag for e in node.elements()
            if not (e.tag == "span" and not e.attrs and len(e.text()) == 1 and not e.text().isalnum())}


def folded(text: str) -> str:
    return " ".join(text.replace(WORD_JOINER, "").split())


@pytest.mark.parametrize("text_format", TEXT_FORMATS)
def test_a_real_note_renders_as_intended_in_each_format(admin, service, text_format):
    """Issue 17: notes rendered for the Redmine's text format, shown on the ticket's page with
    Redmine set to it: labels in bold (``<strong>``), the parties a list nested in the
    service's list, the steps an ordered list, and every value shown as typed — no link,
    image, heading, quote, mention or macro."""
    offered(text_format)
    web = admin.browser("lecteur.pages")
    issue = admin.create_issue(service.project, "Annulation frais", "Textes saisis par des personnes", {})
    redmine = service.context().redmine

    # Bounded: 15 notes and pages per format; a failure is reported as found (no shrinking).
    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])
    @given(VALUE, VALUE, VALUE, VALUE)
    @example("user:admin", "h1. Titre\nbq. citation\n\n* puce\n> quote\n|a|b|\nwww.example.invalid !http://x.invalid/a.png!",
             "project:gestion r1 #1 [[Page]] {{toc}} \"lien\":http://x.invalid", "@admin jean@example.invalid \u202eabc\u2066")
    @example("Jean *Dupont*", "fn1. note\np. para\n-- tiret\n# un\n1. deux", "==<b>brut</b>==", "`y` \\x commit:abc ftp://x")
    def check(decider, reason, first, second):
        note = "\n\n".join([
            render("cancellation_refused", text_format, decider=decider, reason=reason, round="dg",
                   escalation_field="Escalade DG", justification_field="Justification", days=8),
            render("litigation_opening_analysis", text_format, act="commandement de payer", in_premises=True,
                   parties=[Party(first, PartyRole.co_tenant), Party(second, PartyRole.guarantor)],
                   cost_per_act=Decimal(300), estimated_cost=Decimal(600), debt=None, funds_needed=False,
                   funds_request_id=None, owner_task_id=4, register_id=1, unassigned_register_group=None),
            render("eviction_ticket", text_format, assignation_id=1, order_cost=Decimal(250), force_cost=Decimal(1000))])
        redmine.update_issue(issue["id"], notes=note)
        journal = Page(web.get(f"/issues/{issue['id']}").text).last_note()

        refusal = journal.elements("p")[0]  # "*Annulation refusée* par {{ decider }} : {{ reason }}"
        assert [s.text() for s in refusal.elements("strong")] == ["Annulation refusée"]
        assert tags(refusal) <= {"strong", "br"}
        assert folded(refusal.text()) == folded(f"Annulation refusée par {typed(decider)} : {typed(reason)}")

        [items, parties] = journal.elements("ul")  # the service's list, the parties nested in it
        assert parties in items.elements("ul")
        assert len([li for li in items.children if isinstance(li, Node) and li.tag == "li"]) == 6
        assert [folded(li.text()) for li in parties.elements("li")] == [
            folded(f"{typed(first)} (colocataire)"), folded(f"{typed(second)} (caution)")]
        for li in parties.elements("li"):
            assert tags(li) <= {"br", "p"}
        assert [s.text() for s in items.elements("strong")] == ["commandement de payer", "600,00\u00a0€"]

        [steps] = journal.elements("ol")  # the eviction's three steps
        assert [folded(li.text())[:20] for li in steps.elements("li")] == [
            "Commandement de quit", "Si le locataire ne p", "Au départ : renseign"]

        assert {a.text() for a in journal.elements("a")} <= {"#1", "#4"}  # the service's own issue links
        assert not tags(journal) & {"img", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
                                                        "table", "pre", "code", "div", "span", "del", "ins", "u"}

    with text_formatting(text_format):
        check()


FORMATTER_CHECK = """
require 'json'
# A match of Redmine's link pattern links something only with an identifier after its
# separator: "@" alone (commonmarker 2 puts an escaped "@" in its own <span>) links nothing.
def links?(html)
  html.to_enum(:scan, ApplicationHelper::LINKS_RE).any? do
    m = Regexp.last_match
    m[:esc].nil? && %i[identifier1 identifier2 identifier3].any? { |name| m[name].to_s != '' }
  end
end
items = JSON.parse(File.read(ARGV[0]))
print JSON.generate(items.map { |item|
  html = Redmine::WikiFormatting.to_html(item["format"], item["text"])
  {"html" => html, "link" => links?(html), "macro" => !!(item["text"] =~ ApplicationHelper::MACROS_RE),
   "wiki" => !!(html =~ /\\[\\[[^\\n|]+?\\]\\]/)}
})
"""


@pytest.mark.parametrize("text_format", TEXT_FORMATS)
def test_values_escaped_for_each_format_pass_its_real_formatter_as_typed(tmp_path, text_format):
    """Markdown and CommonMark as the real Redmine formats them (its Redcarpet and
    commonmarker, without changing the shared Redmine's setting), and Redmine's link and
    macro patterns run over the result: each value alone in a note, the worst place."""
    offered(text_format)
    values = [*HOSTILE, *(a + b for a in HOSTILE[:20] for b in HOSTILE[20:40:3]),
              "h1. Titre\nbq. citation\n\n* puce\n> quote\n|a|b|\nwww.example.invalid !http://x.invalid/a.png!",
              "1. un\n2) deux\n    code\n===\n---\n+ plus\n```\nfence\n```", "<script>alert(1)</script> &lt; &#64;"]
    source = tmp_path / "items.json"
    source.write_text(json.dumps([{"format": text_format, "text": escape(v, text_format)} for v in values]))
    script = tmp_path / "check.rb"
    script.write_text(FORMATTER_CHECK)
    results = json.loads(rails_runner(str(script), str(source)))
    for value, result in zip(values, results, strict=True):
        tree = Page(result["html"]).root
        assert folded(tree.text().replace(WORD_JOINER, "")) == folded(typed(value)), value
        assert tags(tree) <= {"p", "br"}, (value, result["html"])
        assert not (result["link"] or result["macro"] or result["wiki"]), (value, result)


MARKUP_ELEMENTS = {"strong", "em", "ul", "ol", "li"}


def skeleton(source: str) -> str:
    """A template's every line, whatever its conditions: tags dropped, values as « Valeur »."""
    text = re.sub(r"\{#.*?#\}", "", source, flags=re.DOTALL)
    lines = [line for line in text.split("\n") if not re.fullmatch(r"\s*(\{%.*?%\}\s*)+", line)]
    return re.sub(r"\{%.*?%\}", "", re.sub(r"\{\{.*?\}\}", "Valeur", "\n".join(lines)))


def structure(node: Node, inside: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """The page's runs of words, each with the markup elements it is in (paragraphs and
    breaks aside: a run ends where an element starts or ends)."""
    found: list[tuple[tuple[str, ...], str]] = []
    run: list[str] = []
    for child in [*node.children, None]:
        if isinstance(child, str):
            run += child.split()
        elif child is None or child.tag != "br":
            if run:
                found.append((inside, " ".join(run)))
                run = []
            if child is not None:
                found += structure(child, inside + ((child.tag,) if child.tag in MARKUP_ELEMENTS else ()))
    return found


def test_every_template_shows_the_same_in_each_format(tmp_path):
    """Issue 17: every line of every template, turned into each format by the one rendering
    layer and through the real Redmine's formatters, gives the same bold, italic, lists and
    steps with the same words — and no markup left as text (``*``, ``_``, ``#``, ``1.``)."""
    templates = sorted(TEMPLATES_DIR.glob("*.j2"))
    formats = [f for f in TEXT_FORMATS if f in text_formats_offered()]
    assert "textile" in formats
    items = [{"format": f, "text": skeleton(markup_for(t.read_text(), f, t.name))} for t in templates for f in formats]
    source = tmp_path / "items.json"
    source.write_text(json.dumps(items))
    script = tmp_path / "check.rb"
    script.write_text(FORMATTER_CHECK)
    results = iter(json.loads(rails_runner(str(script), str(source))))
    for template in templates:
        shown = {f: structure(Page(next(results)["html"]).root) for f in formats}
        for text_format in formats:
            assert shown[text_format] == shown["textile"], (template.name, text_format)
        words = " ".join(text for _, text in shown["textile"])
        assert not re.search(r"[*_]|(^|\s)(#|1\.)\s", words), (template.name, words)
        marked = [inside for inside, _ in shown["textile"] if inside]
        assert bool(marked) == bool(re.search(r"^(\*|#) |\*\S|_\S", skeleton(template.read_text()), re.M)), template.name


def test_values_with_filter_syntax_are_found_in_redmine(admin, service):
    """A search by a typed value (a mandate number, a reference in an operation key) finds
    exactly its ticket, even when Redmine's filter syntax would read it as an operator
    (``!``, ``~``, ``*``), a list ("|") or stop at a line break."""
    values = ["!M-1", "~M-1", "*", "M-1|M-2", "M-1", "M 1\nM-2", "^M", "$M", "!*"]
    made = {v: admin.create_issue(service.project, "Registre des mandats", f"Mandat {v!r}", {"N° mandat": v})["id"]
            for v in values}
    redmine = service.context().redmine
    for value in values:
        assert [i.id for i in redmine.find_issues("Registre des mandats", "N° mandat", value)] == [made[value]], value
