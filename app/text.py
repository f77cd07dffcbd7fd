"""Plain-text helpers shared by the flows: people's values cleaned, names and references
turned into keys and file names."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Bidirectional controls (U+061C, U+200E/F, U+202A–E, U+2066–9), the deprecated format
# characters U+206A–F, the byte-order mark, and C0/C1 controls but tab and line breaks:
# invisible, they reorder or hide what a note, a subject, a letter or a spreadsheet shows.
_INVISIBLE = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u206f\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what Excel or LibreOffice would evaluate


def slug(text: str) -> str:
    """Lower-case ASCII words joined by "-": "État civil.PDF" → "etat-civil-pdf" (for
    matching words of file names, never as an identity: most scripts slug to "")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def clean(text: str) -> str:
    """A person's value without bidirectional or control characters; line breaks as "\\n"."""
    return _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


SUBJECT_LENGTH = 255  # Redmine refuses a longer subject (Issue: validates_length_of :subject)


def subject_line(text: str) -> str:
    """A ticket subject, which Redmine shows as plain text on one line: :func:`clean`, every
    run of whitespace (line breaks included) as one space, cut to Redmine's 255 characters
    with "…" (a 300-character name must not stop a ticket from being made)."""
    line = " ".join(clean(text).split())
    return line if len(line) <= SUBJECT_LENGTH else line[:SUBJECT_LENGTH - 1].rstrip() + "…"


def field_value(text: str, one_line: bool = False) -> str:
    """A custom field's value as the service writes it: :func:`clean`; the value of a
    one-line (string) field cut to 255 characters with "…" like a subject (an office may
    give such a field that maximum length, and nothing the service copies needs more).
    A text field's value is never cut (``Débiteurs`` is read back line by line)."""
    value = clean(text)
    return value if not one_line or len(value) <= SUBJECT_LENGTH else value[:SUBJECT_LENGTH - 1].rstrip() + "…"


def spreadsheet_cell(text: str) -> str:
    """:func:`clean`, and a value that a spreadsheet would read as a formula (starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) prefixed with "'" (OWASP's CSV
    injection advice): shown as text, never evaluated."""
    value = clean(text)
    return "'" + value if text.startswith(_SPREADSHEET_FORMULA) or value.startswith(_SPREADSHEET_FORMULA) else value


def _short_hash(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def identity(name: str, max_length: int = 60) -> str:
    """A person's name as part of a key: NFKC, case-folded, controls removed, any run of
    characters other than letters, marks and digits (of any script) as one "-". Never
    empty: a name without letters or digits is its hash ("#" + 10 hex digits); a name
    longer than ``max_length`` characters is cut and ends with its hash."""
    folded = unicodedata.normalize("NFKC", clean(name)).casefold()
    words = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in folded).split()
    key = "-".join(words)
    if not key:
        return "#" + _short_hash(" ".join(folded.split()))
    if len(key) > max_length:
        return key[:max_length - 11] + "-" + _short_hash(key)
    return key


STEM_LENGTH = 80  # file systems allow 255 bytes a name: room for a prefix and the extension


def file_stem(ref: str) -> str:
    """A reference as part of a file name, safe and collision-free on every file system:
    ASCII letters, digits, "-" and "_" kept, anything else as "_"; unless the reference
    is made only of upper-case letters, digits, "-" and "_" (then it is the stem as is),
    a "." and a hash of the reference follow, so "LOC/1", "LOC.1", "LOC_1" and "loc_1"
    never share a file, even where case is ignored. At most 80 characters: a longer
    reference is cut and keeps its hash."""
    if re.fullmatch(r"[A-Z0-9_-]+", ref) and len(ref) <= STEM_LENGTH:
        return ref
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", ref)[:STEM_LENGTH - 11] or "_"
    return f"{safe}.{_short_hash(ref)}"
