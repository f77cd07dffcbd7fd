"""Ticket texts from ``ticket_templates/`` (Jinja2, French, Redmine's Textile formatting).

Every value inserted with ``{{ }}`` is escaped for Textile, so a tenant named
``*Dupont*`` or ``"x":http://…`` shows as typed and never as formatting or a link.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "ticket_templates"

# Characters that start Textile or Redmine markup (links #12, @code@, {{macro}}, "x":url…),
# written as numeric entities, which Redmine renders as the character itself.
_TEXTILE_ALWAYS = set('*@%[]{}!"|#<>&')
# These only format at a word's edge: kept inside "M-1", "Jean-Pierre", "2026-01-01".
_TEXTILE_AT_EDGE = set("-_+~^")


def escape_textile(value: object) -> str:
    text = "" if value is None else str(value)
    out = []
    for i, c in enumerate(text):
        inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        if c in _TEXTILE_ALWAYS or (c in _TEXTILE_AT_EDGE and not inside_word):
            out.append(f"&#{ord(c)};")
        else:
            out.append(c)
    return "".join(out)


def format_eur(amount: Decimal | int | float) -> str:
    """French notation: 1 500,00 €."""
    whole, _, cents = f"{Decimal(amount):,.2f}".partition(".")
    return whole.replace(",", NARROW_NBSP) + "," + cents + NBSP + "€"


NBSP, NARROW_NBSP = "\u00a0", "\u202f"


class _Safe(str):
    """Output of a filter that is already safe (built from numbers only)."""


def _finalize(value: object) -> str:
    return value if isinstance(value, _Safe) else escape_textile(value)


@lru_cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
        autoescape=False,
    )
    env.filters["eur"] = lambda amount: _Safe(format_eur(amount))
    env.filters["fr_date"] = lambda day: _Safe(day.strftime("%d/%m/%Y"))
    env.filters["user"] = lambda user_id: _Safe(f"user#{int(user_id)}")  # Redmine links it to the person
    return env


def render(name: str, **context: object) -> str:
    """A Redmine text (note, description): values escaped for Textile."""
    return _environment().get_template(f"{name}.j2").render(**context).strip()


@lru_cache
def _plain_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["eur"] = format_eur
    env.filters["fr_date"] = lambda day: day.strftime("%d/%m/%Y")
    return env


def render_plain(name: str, **context: object) -> str:
    """A text outside Redmine (a letter): values as they are."""
    return _plain_environment().get_template(f"{name}.j2").render(**context).strip()
