"""Redmine texts as people read them, for the tests' assertions."""

from __future__ import annotations

import html
import re

from app.templates import WORD_JOINER


def as_shown(text: str, text_format: str) -> str:
    """A Redmine text with people's values as the page shows them: Textile's and Markdown's
    entities decoded, CommonMark's backslash escapes and word joiners removed
    (app/templates.py ``escape``); the service's own markup (``*…*``, lists) is left."""
    if text_format == "common_mark":
        return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text).replace(WORD_JOINER, "")
    return html.unescape(text)
