"""Letters as office documents (.docx) the gestionnaire can open, edit and print.

Text from ``ticket_templates/letters/`` (Jinja2): the first line is the title, blank lines
separate paragraphs.
"""

from __future__ import annotations

import io
from functools import lru_cache

from docx import Document
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

from app.templates import render_plain

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def letter_docx(template: str, **context: object) -> bytes:
    return letters_docx([(template, context)])


@lru_cache(maxsize=1)
def _blank() -> bytes:
    """python-docx's blank document in Arial 11 on A4, lightened once: without its table styles
    (none is used) and its ``stylesWithEffects`` copy of the styles (optional), 0.8 MB of
    XML that every letter would parse and compress again (5 ms a letter instead of 24)."""
    document = Document()
    styles = document.styles.element
    for style in styles.findall(qn("w:style")):
        if style.get(qn("w:type")) == "table" and style.get(qn("w:default")) != "1":
            styles.remove(style)
    for r_id, rel in list(document.part.rels.items()):
        if rel.reltype.endswith("/stylesWithEffects"):
            document.part.drop_rel(r_id)
    document.styles["Normal"].font.name = "Arial"
    document.styles["Normal"].font.size = Pt(11)
    section = document.sections[0]  # A4, as French mail (python-docx's default is US Letter)
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin = section.right_margin = Mm(25)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def letters_docx(letters: list[tuple[str, dict]]) -> bytes:
    """Letters in one document, each on its own pages (a merged print file)."""
    document = Document(io.BytesIO(_blank()))
    for number, (template, context) in enumerate(letters):
        if number:
            document.add_page_break()
        title, _, body = render_plain(f"letters/{template}", **context).partition("\n")
        document.add_heading(title.strip(), level=1)
        for paragraph in body.strip().split("\n\n"):
            document.add_paragraph(paragraph.strip())
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def letter_text(content: bytes) -> str:
    """The text of a generated letter (for checks and tests)."""
    return "\n".join(p.text for p in Document(io.BytesIO(content)).paragraphs)
