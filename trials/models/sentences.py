"""A sentence splitter that needs no downloads: news datelines, abbreviations, initials, quotes."""
from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft capt gen col lt sgt cpl maj adm cmdr gov sen rep rev "
    "hon pres supt insp det inc co corp ltd llc bros dept univ assn est approx vol vs "
    "etc al fig jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun "
    "a.m p.m e.g i.e u.s u.k u.n u.s.a d.c b.c a.d ph.d m.d".split()
)
# "(CNN)", "Washington (CNN) --", "LONDON (Wire) --" at the start of an article.
DATELINE = re.compile(r"^\s*[^().!?\n]{0,60}?\((?:[A-Z][A-Za-z.&' ]{0,25})\)\s*(?:--|—|-)?\s*")
BOUNDARY = re.compile(r"([.!?]+)([\"'”’)\]]*)(\s+)")
STARTS_SENTENCE = re.compile(r"[\"'“‘(\[]*[A-Z0-9]")


def strip_dateline(text: str) -> str:
    match = DATELINE.match(text)
    return text[match.end():] if match and match.end() < 90 else text


def _ends_with_abbreviation(chunk: str) -> bool:
    word = chunk.rsplit(None, 1)[-1] if chunk.strip() else ""
    word = word.lstrip("\"'“‘([").rstrip(".").lower()
    if not word:
        return False
    if word in ABBREVIATIONS:
        return True
    # initials: "A." or "A.J." or "J.R.R."
    return bool(re.fullmatch(r"(?:[a-z]\.)*[a-z]", word))


def split_sentences(text: str) -> list[str]:
    """Split a document into sentences, dropping a leading dateline."""
    sentences: list[str] = []
    for paragraph in strip_dateline(text).split("\n"):
        sentences.extend(_split_paragraph(paragraph))
    return [s for s in sentences if s]


def _split_paragraph(text: str) -> list[str]:
    out, start = [], 0
    for match in BOUNDARY.finditer(text):
        end = match.end(2)
        rest = text[match.end():]
        if not STARTS_SENTENCE.match(rest):
            continue
        if match.group(1) == "." and not match.group(2) and _ends_with_abbreviation(text[start:match.start() + 1]):
            continue
        out.append(text[start:end].strip())
        start = match.end()
    out.append(text[start:].strip())
    return out
