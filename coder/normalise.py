"""Pure text normalisation shared by the index and the queries.

The same function is applied to both sides, so any canonical choice (plural or singular,
abbreviated or expanded) only has to be consistent, not linguistically perfect.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import lru_cache

from ._paths import data_path

__all__ = ["fold", "head_word", "normalise", "split_context", "tokens", "NOISE_PHRASES"]

# Words respondents add that do not change the occupation (SOC codes the job, not the contract).
NOISE_PHRASES: tuple[tuple[str, ...], ...] = tuple(
    tuple(p.split())
    for p in (
        "part time", "full time", "self employed", "selfemployed", "temporary", "temp",
        "freelance", "retired", "casual", "seasonal", "permanent", "currently", "job title",
        "my job is", "i am a", "i am an", "im a", "im an", "working as a", "working as an",
        "working as", "employed as a", "employed as an", "employed as", "work as a", "work as an",
    )
)

# Hyphenated prefixes that are written solid as often as not ("co-ordinator", "coordinator").
_JOIN_PREFIXES = frozenset("co re pre non sub multi anti inter post semi micro mini e".split())

# ONS abbreviations that are ordinary English words, grades, or that mean two things.
_ONS_SKIP = frozenset("am so met as us no do be he we me on in at an or of to".split())
# Typos in the ONS list that would otherwise be copied into every title.
_ONS_FIXES = {
    "hr": "human resources",
    "ceo": "chief executive officer",
    "cto": "chief technology officer",
    "mir": "magnetic resonance imaging",
    "hlta": "higher level teaching assistant",
}
# Plural-looking words that are not plurals (or whose stem would collide with another word).
_NOT_PLURAL = frozenset(
    "gas bus news lens series species chassis means customs overseas wales james always "
    "canvas atlas alias bias sales goods arts works physics electronics mathematics "
    "statistics economics premises clothes aids forces parts ops".split()
)
_MEN_EXCEPTIONS = frozenset({"specimen", "abdomen", "regimen"})

_BRACKETS = re.compile(r"[\(\[\{]([^\)\]\}]*)[\)\]\}]?")
_AT = re.compile(r"\s(?:at|@)\s+(.+)$")
_APOSTROPHE = re.compile(r"['’`‘]")
_HYPHEN = re.compile(r"(?<=\w)[-‐‑‒–—](?=\w)")
_NON_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Unicode-fold and lower-case: NFKC, strip accents, casefold."""
    if text.isascii():  # nothing to decompose or strip; casefold of ASCII is lower()
        return text.lower()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", text).casefold()


def split_context(text: str) -> tuple[str, str]:
    """Split a raw answer into (title, context).

    Bracketed qualifiers ("NURSE (NHS)") and a trailing employer ("cleaner at tesco") describe
    where someone works, not what they do: they are kept as industry context.
    """
    if not isinstance(text, str):
        return "", ""
    context = [m.group(1) for m in _BRACKETS.finditer(text)]
    title = _BRACKETS.sub(" ", text)
    m = _AT.search(title)
    if m and title[: m.start()].strip():
        context.append(m.group(1))
        title = title[: m.start()]
    return title.strip(), " ".join(c.strip() for c in context if c.strip())


def _singular(word: str) -> str:
    if len(word) <= 3 or word in _NOT_PLURAL or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    if word.endswith("men") and len(word) >= 5 and word not in _MEN_EXCEPTIONS:
        return word[:-3] + "man"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _abbrev_key(text: str) -> tuple[str, ...]:
    return tuple(_raw_tokens(text))


def _raw_tokens(text: str) -> list[str]:
    text = fold(text).replace("&", " and ").replace("+", " and ")
    text = _APOSTROPHE.sub("", text)
    text = _HYPHEN.sub(lambda m: "-", text)
    words = []
    for part in text.split():
        # Join "co-ordinator" but split "engineer-designer".
        pieces = part.split("-")
        merged = pieces[0]
        for piece in pieces[1:]:
            merged = merged + piece if merged in _JOIN_PREFIXES else merged + " " + piece
        words.extend(merged.split())
    return [t for t in _NON_WORD.sub(" ", " ".join(words)).split() if t]


@lru_cache(maxsize=1)
def _abbreviations() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Abbreviation -> expansion as token tuples: survey list first, then the ONS list."""
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    with open(data_path("survey_abbreviations.csv"), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            table[_abbrev_key(row["abbreviation"])] = tuple(_raw_tokens(row["meaning"]))
    ons: dict[str, list[str]] = {}
    with open(data_path("soc2020_index_abbreviations.csv"), encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    start = next(i for i, r in enumerate(rows) if r and r[0].strip() == "Abbreviation") + 1
    for row in rows[start:]:
        if len(row) < 2 or not row[0].strip():
            continue
        abbr = row[0].replace("*", "").strip()
        ons.setdefault(abbr.lower(), []).append(row[1].strip())
    for abbr, meanings in ons.items():
        key = _abbrev_key(abbr)
        meaning = _ONS_FIXES.get(abbr, meanings[0])
        if (
            len(meanings) > 1 and abbr not in _ONS_FIXES  # ambiguous: PC, MP, SEN, QC ...
            or len(key) != 1 or len(key[0]) < 2 or key[0] in _ONS_SKIP
            or any(ch.isdigit() for ch in abbr) or meaning.lower().startswith(("grade", "(in"))
            or key in table
            or key == tuple(_raw_tokens(meaning))  # "&" -> "and" is already done by _raw_tokens
        ):
            continue
        table[key] = tuple(_raw_tokens(meaning))
    # Expansions must not themselves be expandable, or normalise() would not be idempotent.
    keys = {k[0] for k in table if len(k) == 1}
    for key, value in list(table.items()):
        if any(v in keys or _singular(v) in keys for v in value):
            del table[key]
    return table


def _expand(words: list[str]) -> list[str]:
    table = _abbreviations()
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in (3, 2, 1):
            key = tuple(words[i : i + n])
            if len(key) == n and key in table:
                out.extend(table[key])
                i += n
                break
        else:
            word = words[i]
            singular = _singular(word)
            out.extend(table.get((singular,), (singular,)))
            i += 1
    return [_singular(w) for w in out]


def _drop_noise(words: list[str]) -> list[str]:
    # Words are only ever removed, so a phrase whose first word is absent can never match.
    present = set(words)
    phrases = [p for p in NOISE_PHRASES if p[0] in present]
    changed = bool(phrases)
    while changed:
        changed = False
        for phrase in phrases:
            n = len(phrase)
            for i in range(len(words) - n + 1):
                if tuple(words[i : i + n]) == phrase:
                    words = words[:i] + words[i + n :]
                    changed = True
                    break
    return words


@lru_cache(maxsize=200_000)
def tokens(text: str) -> tuple[str, ...]:
    """Canonical tokens of a title: folded, abbreviations expanded, singular, noise removed."""
    if not isinstance(text, str):
        return ()
    return tuple(_drop_noise(_expand(_raw_tokens(text))))


def normalise(text: str) -> str:
    """Canonical form of a job title; idempotent, never raises, '' when nothing is left.

    Examples
    --------
    >>> normalise("Snr. Software Dev (p/t)")
    'senior software developer'
    >>> normalise("Builders' merchant's clerk")
    'builder merchant clerk'
    """
    return " ".join(tokens(text))


def head_word(title: str) -> str:
    """Last word of a normalised title: English job titles put the occupation last
    ("bookshop *manager*", "fish cake *maker*")."""
    return title.rsplit(" ", 1)[-1] if title else ""
