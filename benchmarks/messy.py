"""Seeded generator of realistic messy job-title answers.

Survey respondents do not write job titles the way a coding index does. This module turns
clean titles (e.g. index titles in natural word order) into the kind of text people actually
type on a Labour Force Survey form, so a coder can be evaluated on noisy input with the true
code still known.

Usage::

    from benchmarks.messy import make_messy, make_messy_frame
    make_messy(["Software developer", "Care assistant"], seed=1)
    make_messy_frame(df, "title", seed=1)   # adds a ``corruptions`` column

How a title is corrupted
------------------------
Everything is driven by one ``random.Random(seed)`` (never the global random state), consumed
title by title, so the output is a pure function of ``(titles, seed, rate)``.

1. With probability ``rate`` (default 1.0) a title is corrupted at all; otherwise it is
   returned unchanged.
2. The number of corruption kinds is drawn: 1 (p=0.60), 2 (p=0.30), 3 (p=0.10).
3. That many distinct kinds are drawn without replacement, proportionally to the weights
   below. A kind that cannot apply to the title (e.g. no abbreviable word, no word of 4+
   letters for a typo) is dropped and another kind is drawn in its place, so every corrupted
   title really changes in at least one recorded way.
4. The kinds are applied in a fixed order (abbrev, typo, noise, employer, case, punct), so
   abbreviations and typos only touch the original words, and the case change also covers
   added noise words. The recorded list uses the same order.

=========  ======  ===========  ================================================================
kind       weight  titles hit   what it does
=========  ======  ===========  ================================================================
abbrev     0.34    14% (49% of  Survey abbreviations of one or more words/phrases (table
                   titles that  ``ABBREVIATIONS``): manager->mgr/manger/mngr, assistant->
                   have an      asst/assist, senior->snr/sr, junior->jnr/jr, engineer->eng/engr,
                   abbreviable  administrator/administration/administrative->admin, technician->
                   word)        tech, supervisor->supvr/supv, department->dept, development/
                                developer->dev, representative->rep, operative/operator->op,
                                director->dir, executive->exec, coordinator->co-ordinator/
                                co-ord, and->&, maintenance->maint, services->svcs, service->
                                serv, general->gen, information technology->IT, customer->cust,
                                accountant->accts/acct, accounts->accts/a/cs, officer->offr,
                                secretary->sec, deputy->dep, assistant manager->asst mgr,
                                managing director->MD, chief executive (officer)->CEO, personal
                                assistant->PA, teaching assistant->TA, human resources->HR,
                                health and safety->H&S, heavy/large goods vehicle->HGV/LGV,
                                fork lift truck->FLT/forklift, registered general nurse->RGN,
                                warehouse->w/house, machine->m/c, electrical->elec, mechanical->
                                mech, production->prod, telephone->tel, international->intl.
                                Each matched phrase is abbreviated with p=0.6 (at least one).
typo       0.24    46%          Keyboard typos inside words of >= 4 letters, at most one per
                                word, in at most max(1, words // 3) words (two words only with
                                p=0.25 and only when that cap allows): adjacent-key
                                substitution from a QWERTY neighbour map (p=0.35), deletion
                                (0.25), duplication (0.20), transposition of two adjacent
                                letters (0.20). The first letter of a word is never touched,
                                and words produced by ``abbrev`` are left alone.
case       0.18    38%          Whole answer to ALL CAPS (0.45), all lower (0.35) or Title Case
                                (0.20, acronyms such as IT/HGV kept); a style that would not
                                change the text is not drawn.
noise      0.10    23%          A status word that does not change the occupation, before (0.6)
                                or after (0.4) the title: "part time", "p/t", "pt", "full
                                time", "f/t", "ft", "self employed", "self-employed", "temp",
                                "temporary", "freelance", "retired", "(retired)", "(contract)",
                                "contract", "relief", "casual"; after the title it is joined by
                                " ", " - ", ", " or put in brackets.
punct      0.10    23%          Punctuation/whitespace noise, one (p=0.75) or two edits: double
                                space between words, trailing full stop or comma (not after
                                existing trailing punctuation), stray hyphen ("word-word", "word - word"), stray slash ("word/word",
                                trailing " /"), leading/trailing spaces.
employer   0.025   6%           Employer context appended from a fixed small list: "at tesco",
                                "for the council", "(NHS)", "- local authority", "at asda",
                                "for an agency", "(private sector)". Kept rare on purpose: in
                                SOC coding the employer can legitimately change the code (e.g.
                                clerical officer in local government is 4113), so evaluations
                                can exclude rows whose ``corruptions`` contains ``employer``.
=========  ======  ===========  ================================================================

"weight" is the relative chance of a kind being drawn in step 3. "titles hit" is the share of
titles that received the kind, measured on the 30,589 natural-order titles of the ONS coding
index (seed 0, rate 1.0). It is not proportional to the weights because a title gets about
1.5 kinds on average and ``abbrev`` often cannot apply (only ~28% of index titles contain an
abbreviable word), in which case another kind is drawn instead. Treat it as a guide, not a
contract.

Guarantees: same length and order as the input; non-string items (e.g. NaN) and
empty/whitespace-only strings are returned unchanged; a non-empty input never yields an empty
string.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ABBREVIATIONS",
    "EMPLOYER_CONTEXT",
    "KIND_WEIGHTS",
    "KINDS",
    "NOISE_WORDS",
    "make_messy",
    "make_messy_frame",
    "messy_one",
]

# Application order of the corruption kinds (also the order they are recorded in).
KINDS: tuple[str, ...] = ("abbrev", "typo", "noise", "employer", "case", "punct")

KIND_WEIGHTS: dict[str, float] = {
    "abbrev": 0.34,
    "typo": 0.24,
    "case": 0.18,
    "noise": 0.10,
    "punct": 0.10,
    "employer": 0.025,
}

# Number of kinds per corrupted title.
_N_KINDS: tuple[tuple[int, float], ...] = ((1, 0.60), (2, 0.30), (3, 0.10))

# Phrase (lower case, single spaces) -> abbreviations people write. Upper-case abbreviations
# are acronyms: kept upper case, or written in lower case half of the time when the original
# phrase was lower case.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    # multi-word phrases (matched before their parts)
    "information technology": ("IT",),
    "health and safety": ("H&S", "health & safety"),
    "assistant manager": ("asst mgr", "asst manager", "assist mgr"),
    "managing director": ("MD",),
    "chief executive officer": ("CEO",),
    "chief executive": ("CEO", "chief exec"),
    "personal assistant": ("PA",),
    "teaching assistant": ("TA",),
    "human resources": ("HR",),
    "heavy goods vehicle": ("HGV",),
    "large goods vehicle": ("LGV",),
    "fork lift truck": ("FLT", "forklift"),
    "forklift truck": ("FLT", "forklift"),
    "registered general nurse": ("RGN",),
    # single words
    "manager": ("mgr", "manger", "mngr"),
    "managers": ("mgrs",),
    "assistant": ("asst", "assist", "asst."),
    "assistants": ("assts",),
    "senior": ("snr", "sr"),
    "junior": ("jnr", "jr"),
    "engineer": ("eng", "engr"),
    "engineering": ("eng", "engin"),
    "administrator": ("admin",),
    "administration": ("admin",),
    "administrative": ("admin",),
    "technician": ("tech",),
    "supervisor": ("supvr", "supv"),
    "department": ("dept",),
    "development": ("dev",),
    "developer": ("dev",),
    "representative": ("rep",),
    "operative": ("op",),
    "operator": ("op",),
    "director": ("dir",),
    "executive": ("exec",),
    "coordinator": ("co-ordinator", "co-ord"),
    "co-ordinator": ("coordinator", "co-ord"),
    "and": ("&",),
    "maintenance": ("maint",),
    "services": ("svcs",),
    "service": ("serv",),
    "general": ("gen",),
    "customer": ("cust",),
    "accountant": ("accts", "acct"),
    "accounts": ("accts", "a/cs"),
    "officer": ("offr",),
    "secretary": ("sec",),
    "deputy": ("dep",),
    "warehouse": ("w/house",),
    "machine": ("m/c",),
    "electrical": ("elec",),
    "mechanical": ("mech",),
    "production": ("prod",),
    "telephone": ("tel",),
    "international": ("intl",),
}

# (text, may go before, may go after)
NOISE_WORDS: tuple[tuple[str, bool, bool], ...] = (
    ("part time", True, True),
    ("p/t", True, True),
    ("pt", False, True),
    ("full time", True, True),
    ("f/t", True, True),
    ("ft", False, True),
    ("self employed", True, True),
    ("self-employed", True, True),
    ("temp", True, True),
    ("temporary", True, False),
    ("freelance", True, True),
    ("retired", True, True),
    ("(retired)", False, True),
    ("(contract)", False, True),
    ("contract", True, False),
    ("relief", True, False),
    ("casual", True, False),
)

EMPLOYER_CONTEXT: tuple[str, ...] = (
    "at tesco",
    "for the council",
    "(NHS)",
    "- local authority",
    "at asda",
    "for an agency",
    "(private sector)",
)

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _qwerty_neighbours() -> dict[str, str]:
    """Keys physically adjacent on a QWERTY keyboard (same row and the rows above/below)."""
    pos: dict[str, tuple[int, float]] = {}
    for r, row in enumerate(_QWERTY_ROWS):
        for c, ch in enumerate(row):
            pos[ch] = (r, c + 0.5 * r)  # rows are staggered by about half a key
    out: dict[str, str] = {}
    for ch, (r, x) in pos.items():
        near = [
            o
            for o, (r2, x2) in pos.items()
            if o != ch and abs(r2 - r) <= 1 and abs(x2 - x) <= (1.0 if r2 == r else 0.5)
        ]
        out[ch] = "".join(sorted(near))
    return out


QWERTY_NEIGHBOURS: dict[str, str] = _qwerty_neighbours()

_WORD_RE = re.compile(r"[A-Za-z]+")


def _phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p) for p in phrase.split(" ")]
    return r"\s+".join(parts)


_ABBREV_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    + "|".join(_phrase_pattern(p) for p in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r")(?![A-Za-z0-9-])",
    re.IGNORECASE,
)


def _weighted_choice(rng: random.Random, items: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in items)
    x = rng.random() * total
    for item, w in items:
        x -= w
        if x < 0:
            return item
    return items[-1][0]


# --------------------------------------------------------------------------- corruptions
# Each returns the new text, or None when the corruption cannot apply.


def _abbrev(text: str, rng: random.Random) -> tuple[str, list[tuple[int, int]]] | None:
    """Abbreviate matched phrases; also returns the spans of the replacements in the new text."""
    matches = list(_ABBREV_RE.finditer(text))
    if not matches:
        return None
    chosen = [m for m in matches if rng.random() < 0.6]
    if not chosen:
        chosen = [rng.choice(matches)]
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    last = 0
    out_len = 0
    for m in chosen:
        pieces.append(text[last : m.start()])
        out_len += m.start() - last
        original = m.group(0)
        key = " ".join(original.lower().split())
        rep = rng.choice(ABBREVIATIONS[key])
        if rep.isupper():  # acronym
            if original.islower() and rng.random() < 0.5:
                rep = rep.lower()
        elif original.isupper() and len(original) > 1:
            rep = rep.upper()
        elif original[:1].isupper():
            rep = rep[:1].upper() + rep[1:]
        pieces.append(rep)
        spans.append((out_len, out_len + len(rep)))
        out_len += len(rep)
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces), spans


def _typo_word(word: str, rng: random.Random) -> str:
    """One keyboard typo in ``word`` (len >= 4); the first letter is kept."""
    op = _weighted_choice(rng, (("sub", 0.35), ("del", 0.25), ("dup", 0.20), ("swap", 0.20)))
    if op == "swap":
        cands = [i for i in range(1, len(word) - 1) if word[i].lower() != word[i + 1].lower()]
        if not cands:
            op = "del"
        else:
            i = rng.choice(cands)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    i = rng.randrange(1, len(word))
    if op == "sub":
        ch = word[i]
        near = QWERTY_NEIGHBOURS.get(ch.lower(), "")
        if near:
            new = rng.choice(near)
            return word[:i] + (new.upper() if ch.isupper() else new) + word[i + 1 :]
        op = "del"
    if op == "del":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # dup


def _typo(text: str, rng: random.Random, protected: list[tuple[int, int]]) -> str | None:
    words = list(_WORD_RE.finditer(text))
    eligible = [
        m
        for m in words
        if len(m.group(0)) >= 4 and not any(s < m.end() and m.start() < e for s, e in protected)
    ]
    if not eligible:
        return None
    cap = max(1, len(words) // 3)
    n = 2 if cap >= 2 and len(eligible) >= 2 and rng.random() < 0.25 else 1
    targets = sorted(rng.sample(eligible, n), key=lambda m: m.start())
    pieces: list[str] = []
    last = 0
    for m in targets:
        pieces.append(text[last : m.start()])
        pieces.append(_typo_word(m.group(0), rng))
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces)


def _noise(text: str, rng: random.Random) -> str:
    word, before_ok, after_ok = rng.choice(NOISE_WORDS)
    if before_ok and (not after_ok or rng.random() < 0.6):
        return f"{word} {text}"
    if word.startswith("("):
        return f"{text} {word}"
    sep = _weighted_choice(rng, ((" ", 0.45), (" - ", 0.25), (", ", 0.2), ("(", 0.1)))
    if sep == "(":
        return f"{text} ({word})"
    return f"{text}{sep}{word}"


def _employer(text: str, rng: random.Random) -> str:
    ctx = rng.choice(EMPLOYER_CONTEXT)
    return f"{text} {ctx}"


def _title_case(text: str) -> str:
    """Title Case the way people type it: acronyms already in capitals (IT, HGV) stay."""

    def word(m: re.Match[str]) -> str:
        w = m.group(0)
        if len(w) >= 2 and w.isupper():
            return w
        return w[:1].upper() + w[1:].lower()

    return _WORD_RE.sub(word, text)


_CASE_STYLES = {"upper": str.upper, "lower": str.lower, "title": _title_case}


def _case(text: str, rng: random.Random) -> str | None:
    styles = [
        (s, w)
        for s, w in (("upper", 0.45), ("lower", 0.35), ("title", 0.20))
        if _CASE_STYLES[s](text) != text
    ]
    if not styles:
        return None
    return _CASE_STYLES[_weighted_choice(rng, styles)](text)


def _punct_once(text: str, rng: random.Random) -> str | None:
    gaps = list(re.finditer(r"(?<=[^\W_]) (?=[^\W_])", text))
    ops = [("stop", 0.25), ("comma", 0.08), ("pad", 0.10), ("slash_end", 0.07)]
    if gaps:
        ops += [("double", 0.25), ("hyphen", 0.15), ("slash", 0.10)]
    op = _weighted_choice(rng, ops)
    if op in ("stop", "comma"):
        if text.rstrip()[-1:] in (".", ",", "/", "-"):
            return None
        return text + ("." if op == "stop" else ",")
    if op == "pad":
        return rng.choice((" " + text, text + " ", " " + text + " "))
    if op == "slash_end":
        return text + rng.choice((" /", "/"))
    g = rng.choice(gaps)
    rep = {"double": "  ", "hyphen": rng.choice(("-", " - ")), "slash": rng.choice(("/", " / "))}[op]
    return text[: g.start()] + rep + text[g.end() :]


def _punct(text: str, rng: random.Random) -> str | None:
    n = 1 if rng.random() < 0.75 else 2
    out = text
    for _ in range(n):
        new = _punct_once(out, rng)
        if new is not None:
            out = new
    return None if out == text else out


# --------------------------------------------------------------------------- public API


def messy_one(title: Any, rng: random.Random, *, rate: float = 1.0) -> tuple[Any, list[str]]:
    """Corrupt one title with ``rng``; returns ``(new_title, kinds_applied)``.

    Non-strings and blank strings come back unchanged with no kinds.
    """
    if not isinstance(title, str) or not title.strip():
        return title, []
    if rng.random() >= rate:
        return title, []
    n = _weighted_choice(rng, _N_KINDS)
    pool = dict(KIND_WEIGHTS)
    wanted: set[str] = set()
    # Draw kinds; check applicability for the "static" ones up front so a dropped kind is
    # replaced by another. typo/case/punct applicability is checked on the evolving text below.
    while len(wanted) < n and pool:
        kind = _weighted_choice(rng, list(pool.items()))
        del pool[kind]
        if kind == "abbrev" and not _ABBREV_RE.search(title):
            continue
        if kind == "typo" and not any(len(w) >= 4 for w in _WORD_RE.findall(title)):
            continue
        wanted.add(kind)

    text = title
    applied: list[str] = []
    protected: list[tuple[int, int]] = []
    for kind in KINDS:
        if kind not in wanted:
            continue
        new: str | None
        if kind == "abbrev":
            res = _abbrev(text, rng)
            new, protected = (res if res is not None else (None, []))
        elif kind == "typo":
            new = _typo(text, rng, protected)
        elif kind == "noise":
            new = _noise(text, rng)
        elif kind == "employer":
            new = _employer(text, rng)
        elif kind == "case":
            new = _case(text, rng)
        else:
            new = _punct(text, rng)
        if new is not None and new != text and new.strip():
            text = new
            applied.append(kind)
    if not applied:
        # e.g. only "case" was drawn for a text that is already in every style (digits only):
        # fall back to a punctuation edit, which always applies.
        new = _punct(text, rng) or text + "."
        text = new
        applied.append("punct")
    return text, applied


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, got {rate!r}")


def make_messy(titles: Sequence[str], *, seed: int = 0, rate: float = 1.0) -> list[str]:
    """Return one messy variant per title (same length and order, deterministic for ``seed``).

    ``rate`` is the probability that a title is corrupted at all (0 returns the titles
    unchanged). See the module docstring for the corruption kinds and their probabilities.
    """
    _check_rate(rate)
    rng = random.Random(seed)
    return [messy_one(t, rng, rate=rate)[0] for t in titles]


def make_messy_frame(df: Any, title_col: str, *, seed: int = 0, rate: float = 1.0) -> Any:
    """Copy of ``df`` with ``title_col`` replaced by messy variants and a ``corruptions`` column.

    ``corruptions`` lists the kinds applied, ``;``-separated in application order (e.g.
    ``"abbrev;typo;case"``), empty when the title was left alone. The titles are the same as
    ``make_messy(list(df[title_col]), seed=seed, rate=rate)``. The input frame is not mutated.
    """
    _check_rate(rate)
    if title_col not in df.columns:
        raise KeyError(f"column {title_col!r} not in frame")
    if title_col == "corruptions":
        raise ValueError("title column cannot be called 'corruptions'")
    rng = random.Random(seed)
    results = [messy_one(t, rng, rate=rate) for t in df[title_col].tolist()]
    out = df.copy()
    out[title_col] = [r[0] for r in results]
    out["corruptions"] = [";".join(r[1]) for r in results]
    return out
