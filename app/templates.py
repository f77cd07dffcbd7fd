"""Ticket texts from ``ticket_templates/`` (Jinja2, French) and people's values made safe.

Redmine turns a note into HTML in two layers: its text format (``text_formatting``:
Textile, Redmine 5's default; CommonMark, a new Redmine 6's; or the older Markdown), then
its own passes over the HTML (``ApplicationHelper#textilizable``): macros ``{{…}}``, wiki
links ``[[…]]``, links ``#123``, ``r123``, ``user:…``, ``project:…``, ``@login`` mentions
(Redmine 5 notifies the mentioned user), auto-links of ``www.``, ``http(s)://``, ``ftp://``
and e-mail addresses.

One rendering layer serves the three formats (issue 17): the templates are written once in
the *templates' markup* (below), turned into the Redmine's format when a template is loaded
(:func:`markup_for`); every value inserted with ``{{ }}`` goes through :func:`escape` for that
format, so what people typed shows as typed and triggers none of Redmine's passes, while the
templates' own markup (bold labels, lists, ``#{{ id }}`` and ``user#N`` links) renders.

The templates' markup, the part of Textile the three formats share in meaning; anything else
that is markup in one of them is refused when the template loads (:class:`TemplateMarkupError`):

=====================  ==================  ==========================
templates (Textile)    Markdown            CommonMark
=====================  ==================  ==========================
``*gras*``             ``**gras**``        ``**gras**``
``_italique_``         ``*italique*``      ``*italique*``
``* puce``             ``* puce``          ``* puce``
``** sous-puce``       ``    * sous-puce`` ``    * sous-puce``
``# étape``            ``1. étape``        ``1. étape``
=====================  ==================  ==========================

A line break inside a paragraph is a line break in the three (Redmine sets Redcarpet's
``hard_wrap``, and CommonMark's ``hardbreaks`` unless ``common_mark_enable_hardbreaks`` is
false in its configuration.yml, which ``provision.rb --check`` reports); ``#{{ id }}`` and
``user#N`` are Redmine's own links, the same in every format.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.text import clean

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "ticket_templates"
TEXT_FORMATS = ("textile", "markdown", "common_mark")  # Redmine's ``text_formatting`` setting values

# Redmine's link passes run on the HTML: they must not see "user:", "@x", "#1", "r1", "www.".
_REDMINE_LINK_STARTS = re.compile(r"r(?=\d)|w(?=ww\.)", re.IGNORECASE)

# Textile (RedCloth3 as Redmine 5 runs it, glyphs off): characters that start markup
# anywhere, and those that format only at a word's edge (kept inside "Jean-Pierre", "M-1").
_TEXTILE_ALWAYS = set('*@%[]{}!"|#<>&:(')  # "(": ABC(title) is an abbreviation
_TEXTILE_AT_EDGE = set("-_+~^=?")
_TEXTILE_BLOCK = re.compile(r"[A-Za-z]+\d*\S*?\.")  # h1. bq. p. fn1. bc. pre. table. p(class).

# Markdown (Redcarpet): emphasis, code, links, autolinks, strikethrough, superscript, tables.
_MARKDOWN_ALWAYS = set('\\`*_{}[]()<>&|~^:@#!"=+')
_MARKDOWN_ORDERED = re.compile(r"\d+[.)]")  # "1. " or "1) " starts a list at a line start

_ASCII_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
WORD_JOINER = "\u2060"


def _known(text_format: str) -> None:
    """Raises ValueError for a format outside ``TEXT_FORMATS``."""
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"format de texte inconnu : {text_format!r} (attendu : {', '.join(TEXT_FORMATS)})")


def _entity(c: str) -> str:
    return f"&#{ord(c)};"


def _textile_line(line: str) -> str:
    out = []
    for i, c in enumerate(line):
        inside_word = 0 < i < len(line) - 1 and line[i - 1].isalnum() and line[i + 1].isalnum()
        line_start = i == 0 and (not c.isalnum() or _TEXTILE_BLOCK.match(line))
        if (line_start or c in _TEXTILE_ALWAYS or (c in _TEXTILE_AT_EDGE and not inside_word)
                or _REDMINE_LINK_STARTS.match(line, i)):
            out.append(_entity(c))
        else:
            out.append(c)
    return "".join(out)


def _markdown_line(line: str) -> str:
    out = []
    for i, c in enumerate(line):
        line_start = i == 0 and (not c.isalnum() or _MARKDOWN_ORDERED.match(line))
        if line_start or c in _MARKDOWN_ALWAYS or _REDMINE_LINK_STARTS.match(line, i):
            out.append(_entity(c))
        else:
            out.append(c)
    return "".join(out)


def _common_mark_line(line: str) -> str:
    """CommonMark decodes entities and backslash escapes into plain text before Redmine's
    link passes see the HTML: ASCII punctuation is backslash-escaped for the parser, and a
    word joiner (U+2060, invisible) breaks what Redmine would link or mention."""
    out = []
    for i, c in enumerate(line):
        if c in ":@#":  # user:x, @login, #12
            out.append(WORD_JOINER)
        out.append("\\" + c if c in _ASCII_PUNCTUATION else c)
        if c in "[{" or _REDMINE_LINK_STARTS.match(line, i):  # [[page]], {{macro}}, r12, www.
            out.append(WORD_JOINER)
    return "".join(out)


_LINE_ESCAPERS = {"textile": _textile_line, "markdown": _markdown_line, "common_mark": _common_mark_line}


def escape(value: object, text_format: str = "textile") -> str:
    """A person's value for a Redmine text in ``text_format`` (one of ``TEXT_FORMATS``),
    shown as typed: no formatting, link, image, macro, wiki link, mention or auto-link.
    Bidirectional and control characters are removed (:func:`app.text.clean`). Line breaks
    are kept: blank lines fold into one break and each line loses its leading spaces, and
    a character that could start a block at a line's start (``h1.``, ``bq.``, ``*``, ``#``,
    ``>``, ``|``, ``-``, ``1.``…) is escaped on every line. Textile and Markdown use numeric
    entities (``&#58;``), which both parsers keep and the browser shows as the character.
    Raises ValueError for another format."""
    _known(text_format)
    lines = (line.strip() for line in clean("" if value is None else str(value)).split("\n"))
    return "\n".join(_LINE_ESCAPERS[text_format](line) for line in lines if line)


def format_eur(amount: Decimal | int | float) -> str:
    """French notation: 1 500,00 €."""
    whole, _, cents = f"{Decimal(amount):,.2f}".partition(".")
    return whole.replace(",", NARROW_NBSP) + "," + cents + NBSP + "€"


NBSP, NARROW_NBSP = "\u00a0", "\u202f"


class _Safe(str):
    """Output of a filter that is already safe (built from numbers only)."""


class TemplateMarkupError(ValueError):
    """A template uses markup outside the templates' markup (module docstring): it would
    show differently, or as written, in one of Redmine's formats."""


# Jinja's own tags, set aside while the markup around them is turned into the format.
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TAG_MARK = re.compile("\ue000(\\d+)\ue001")
_LIST_ITEM = re.compile(r"(\*\*|\*|#) (?=\S)")
# Bold *…* and italic _…_: opened after a space, a "(" or at the line's start and closed
# before a non-word character, where Textile reads them so (l'*acte* is no bold in Textile).
_INLINE = re.compile(r"(?<![^\s(])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?!\w)")
_MARKDOWN_LIST = {"*": "* ", "**": "    * ", "#": "1. "}
_MARKDOWN_INLINE = {"*": "**", "_": "*"}
# What is markup in one of the formats and not in the templates' markup.
# Textile's -del- +ins+ ??cite?? and ABC(abbreviation) included: text elsewhere.
_OTHER_MARKUP = re.compile(r"[*_`<>\[\]\\|~^@{}\"%]|==|!\S|\?\?|[A-Z]{2,}\(|(?<!\w)[-+]|[-+](?!\w)")
# Line starts: Textile's blocks (h2. p(classe). bq=.), headings (## x, "# " alone), quotes,
# tables, Markdown's lists and numbered items, and indented lines (code in CommonMark).
_OTHER_BLOCK = re.compile(r"[A-Za-z]+\d*(\([^)]*\)|[<>=])*\.(\s|$)|[>|+=-]|\d+[.)](\s|$)|#|\s+\S")


def markup_for(source: str, text_format: str, name: str = "<texte>") -> str:
    """The template source ``source``, written in the templates' markup, in Redmine's
    ``text_format`` (one of ``TEXT_FORMATS``); Jinja's tags are left as they are.
    Raises :class:`TemplateMarkupError` (naming ``name`` and the line) for other markup,
    ValueError for an unknown format."""
    _known(text_format)
    if re.search(r"\{%-?\s*raw\b", source):  # Redmine's macros {{…}} would run in it, in every format
        raise TemplateMarkupError(f"{name} : {{% raw %}} hors du balisage des modèles (app/templates.py)")
    tags: list[str] = []

    def set_aside(match: re.Match) -> str:
        tags.append(match.group(0))
        return f"\ue000{len(tags) - 1}\ue001"

    lines = []
    for number, line in enumerate(_JINJA_TAG.sub(set_aside, source).split("\n"), start=1):
        item = _LIST_ITEM.match(line)
        marker, body = (item.group(1), line[item.end():]) if item else (None, line)
        plain = _INLINE.sub(r"\2", _TAG_MARK.sub("x", body))
        if _OTHER_MARKUP.search(plain) or (marker is None and _OTHER_BLOCK.match(plain)):
            raise TemplateMarkupError(f"{name}, ligne {number} : balisage hors du balisage des modèles "
                                      f"(app/templates.py) : {_TAG_MARK.sub('…', line).strip()!r}")
        if text_format != "textile":
            body = _INLINE.sub(lambda m: f"{_MARKDOWN_INLINE[m.group(1)]}{m.group(2)}{_MARKDOWN_INLINE[m.group(1)]}",
                               body)
            line = (_MARKDOWN_LIST[marker] if marker else "") + body
        lines.append(line)
    return _TAG_MARK.sub(lambda m: tags[int(m.group(1))], "\n".join(lines))


class _MarkupLoader(FileSystemLoader):
    """The templates of ``ticket_templates/``, in one text format (:func:`markup_for`)."""

    def __init__(self, text_format: str):
        super().__init__(TEMPLATES_DIR)
        self.text_format = text_format

    def get_source(self, environment: Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        return markup_for(source, self.text_format, template), filename, uptodate


@lru_cache
def _environment(text_format: str) -> Environment:
    def finalize(value: object) -> str:
        if isinstance(value, _Safe) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)  # the service's own: ids after "#", counts, days
        return escape(value, text_format)

    env = Environment(
        loader=_MarkupLoader(text_format),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=finalize,
        autoescape=False,
    )
    env.filters["eur"] = lambda amount: _Safe(format_eur(amount))
    env.filters["fr_date"] = lambda day: _Safe(day.strftime("%d/%m/%Y"))
    env.filters["user"] = lambda user_id: _Safe(f"user#{int(user_id)}")  # Redmine links it to the person
    return env


def render(name: str, text_format: str = "textile", **context: object) -> str:
    """A Redmine text (note, description) in ``text_format``: values escaped by :func:`escape`.
    Raises ValueError for an unknown format."""
    _known(text_format)
    return _environment(text_format).get_template(f"{name}.j2").render(**context).strip()


@lru_cache
def _plain_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, autoescape=False,
                      finalize=lambda value: clean(str(value)))
    env.filters["eur"] = format_eur
    env.filters["fr_date"] = lambda day: day.strftime("%d/%m/%Y")
    return env


def render_plain(name: str, **context: object) -> str:
    """A text outside Redmine (a letter): values as typed, bidirectional and control
    characters removed."""
    return _plain_environment().get_template(f"{name}.j2").render(**context).strip()
