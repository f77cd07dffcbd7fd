"""Ticket texts from ``ticket_templates/`` (Jinja2, French) and people's values made safe.

Redmine turns a note into HTML in two layers: its text format (Textile, the default;
Markdown or CommonMark where the Redmine is set so), then its own passes over the HTML
(``ApplicationHelper#textilizable``): macros ``{{…}}``, wiki links ``[[…]]``, links
``#123``, ``r123``, ``user:…``, ``project:…``, ``@login`` mentions (Redmine 5 notifies the
mentioned user), auto-links of ``www.``, ``http(s)://``, ``ftp://`` and e-mail addresses.
Every value inserted with ``{{ }}`` goes through :func:`escape`, so what people typed
shows as typed and triggers none of these, while the templates' own markup (bold labels,
lists, ``#{{ id }}`` and ``user#N`` links) still renders.
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
    if text_format not in _LINE_ESCAPERS:
        raise ValueError(f"format de texte inconnu : {text_format!r} (attendu : {', '.join(TEXT_FORMATS)})")
    lines = (line.strip() for line in clean("" if value is None else str(value)).split("\n"))
    return "\n".join(_LINE_ESCAPERS[text_format](line) for line in lines if line)


def format_eur(amount: Decimal | int | float) -> str:
    """French notation: 1 500,00 €."""
    whole, _, cents = f"{Decimal(amount):,.2f}".partition(".")
    return whole.replace(",", NARROW_NBSP) + "," + cents + NBSP + "€"


NBSP, NARROW_NBSP = "\u00a0", "\u202f"


class _Safe(str):
    """Output of a filter that is already safe (built from numbers only)."""


@lru_cache
def _environment(text_format: str) -> Environment:
    def finalize(value: object) -> str:
        if isinstance(value, _Safe) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)  # the service's own: ids after "#", counts, days
        return escape(value, text_format)

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
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
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"format de texte inconnu : {text_format!r} (attendu : {', '.join(TEXT_FORMATS)})")
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
