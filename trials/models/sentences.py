"""A sentence splitter that needs no downloads: news datelines, abbreviations, initials, quotes,
dialogue turns."""
from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft capt gen col lt sgt cpl maj adm cmdr gov sen rep rev "
    "hon pres supt insp det inc co corp ltd llc bros dept univ assn est approx vol vs "
    "etc al fig jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun "
    "a.m p.m e.g i.e u.s u.k u.n u.s.a d.c b.c a.d ph.d m.d".split()
)
BOUNDARY = re.compile(r"([.!?]+)([\"'”’)\]]*)(\s+)")
STARTS_SENTENCE = re.compile(r"[\"'“‘(\[]*[A-Z0-9]")

# News datelines, and only those: "(CNN)Text", "Washington (CNN)Text", "LONDON, England (CNN) -- Text",
# "WASHINGTON (Reuters) - Text", "(NEWS) Text" (a known agency), "By . Name . PUBLISHED: . ... . ".
# A parenthesised name inside an opening sentence ("The Welsh Rugby Union (WRU) said ...") is not one.
_WORD = r"[A-Z][\w.'’-]*"
_PLACE = rf"(?!(?:The|A|An)\b){_WORD}(?:[ ]{_WORD}){{0,3}}(?:,[ ]{_WORD}(?:[ ]{_WORD}){{0,3}}){{0,2}}"
_AGENCY = r"\((?P<agency>[A-Z][\w.&'’]*(?:[ ][A-Z][\w.&'’]*){0,3})\)"
_STORY = r"(?=[\"'“‘\[]?[A-Z0-9])"  # the story itself starts like a sentence
#: agencies whose dateline may be followed by a plain space: "(CNN) The ...", "(NEWS) Rain ..."
KNOWN_AGENCIES = frozenset("CNN AP AFP UPI PA DPA EFE ANSA BBC NEWS Reuters Wire Bloomberg Xinhua".split())
DATELINE = re.compile(
    rf"^\s*(?:{_PLACE}[ \t]*)?{_AGENCY}(?:[ \t]*(?:--|—|–|-)[ \t]*{_STORY}|{_STORY}|(?P<space>[ \t]+){_STORY})")
# Daily Mail bylines: "By . Jane Doe . [and John Roe . ]PUBLISHED: . 12:45 EST, 3 March 2013 . | . UPDATED: . ... . "
BYLINE = re.compile(
    r"^\s*By \. [^.\n]{1,60}? \. (?:and [^.\n]{1,60}? \. )*"
    r"(?:PUBLISHED: \. [^.\n|]*?\d{4} \. (?:\| \. )?)?(?:UPDATED: \. [^.\n|]*?\d{4} \. )?"
    r"(?:Last updated at [^.\n]*?\d{4} \. )?")
# Dialogue turns, one per line: "Amanda: I baked cookies.", "#Person1#: Hi."
TURN = re.compile(r"^[#\w][\w.'’#&-]*(?:[ ][\w.'’#&-]+){0,2}:\s+\S")
DIALOGUE_SHARE = 0.6  # of non-empty lines that are turns, at least


def strip_dateline(text: str) -> str:
    """Drop a leading news dateline or Daily Mail byline; any other text is returned unchanged."""
    match = BYLINE.match(text)
    if match:
        return text[match.end():]
    match = DATELINE.match(text)
    if not match or match.end() > 90:
        return text
    if match["space"] is not None and match["agency"] not in KNOWN_AGENCIES:
        return text  # "(Optional) Install ...": a space alone does not make a dateline
    return text[match.end():]


def dialogue_turns(text: str) -> list[str] | None:
    """The turns of a dialogue ("Name: text" lines), each whole with its speaker; None for prose.

    A line without a speaker continues the turn before it.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    is_turn = [bool(TURN.match(line)) for line in lines]
    if sum(is_turn) < 2 or sum(is_turn) < DIALOGUE_SHARE * len(lines):
        return None
    turns: list[str] = []
    for line, starts in zip(lines, is_turn):
        if starts or not turns:
            turns.append(line)
        else:
            turns[-1] = f"{turns[-1]} {line}"
    return turns


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
    """Split a document into sentences, dropping a leading dateline; a dialogue into its turns."""
    turns = dialogue_turns(text)
    if turns is not None:
        return turns
    return sentence_lines(strip_dateline(text))


def sentence_lines(text: str) -> list[str]:
    """Each line of `text` split into sentences, nothing dropped: how ROUGE-Lsum sees a text."""
    sentences: list[str] = []
    for paragraph in text.splitlines():
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
