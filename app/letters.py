"""Letters as office documents (.docx) the gestionnaire can open, edit and print.

Text from ``ticket_templates/letters/`` (Jinja2): the first line is the title, blank lines
separate paragraphs.
"""

from __future__ import annotations

import io
import re
import zipfile
from functools import lru_cache
from xml.sax.saxutils import escape

from app.templates import render_plain

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def letter_docx(template: str, **context: object) -> bytes:
    return letters_docx([(template, context)])


BODY_PART = "word/document.xml"
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@lru_cache(maxsize=1)
def _blank() -> tuple[bytes, str, str]:
    """python-docx's blank document in Arial 11 on A4, made once per process and lightened
    (no table styles, none is used; no ``stylesWithEffects`` copy of the styles, optional):
    the package without its body (its parts compressed once), and the body's XML before and
    after where the letters go."""
    from docx import Document  # here: every CLI command would pay for its import
    from docx.oxml.ns import qn
    from docx.shared import Mm, Pt

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
    saved, package = io.BytesIO(), io.BytesIO()
    document.save(saved)
    with zipfile.ZipFile(saved) as blank, zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as parts:
        for name in blank.namelist():
            if name != BODY_PART:
                parts.writestr(name, blank.read(name))
        body = blank.read(BODY_PART).decode()
    cut = body.index("<w:sectPr")
    return package.getvalue(), body[:cut], body[cut:]


def _run(text: str) -> str:
    """A run of text: line breaks and tabs as Word's, as python-docx writes them."""
    pieces = []
    for n, line in enumerate(NOT_XML.sub("", text).split("\n")):
        if n:
            pieces.append("<w:br/>")
        pieces.append("<w:tab/>".join(f'<w:t xml:space="preserve">{escape(chunk)}</w:t>'
                                      for chunk in line.split("\t")))
    return f"<w:r>{''.join(pieces)}</w:r>"


def letters_docx(letters: list[tuple[str, dict]]) -> bytes:
    """Letters in one document, each on its own pages (a merged print file). The body is
    written directly (python-docx would parse and save the whole package for each)."""
    parts, head, tail = _blank()
    body = []
    for number, (template, context) in enumerate(letters):
        if number:
            body.append('<w:p><w:r><w:br w:type="page"/></w:r></w:p>')
        title, _, text = render_plain(f"letters/{template}", **context).partition("\n")
        body.append(f'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr>{_run(title.strip())}</w:p>')
        body += [f"<w:p>{_run(paragraph.strip())}</w:p>" for paragraph in text.strip().split("\n\n")]
    out = io.BytesIO(parts)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as package:  # the parts' bytes copied as they are
        package.writestr(BODY_PART, head + "".join(body) + tail)
    return out.getvalue()


def letter_text(content: bytes) -> str:
    """The text of a generated letter (for checks and tests)."""
    from docx import Document

    return "\n".join(p.text for p in Document(io.BytesIO(content)).paragraphs)
