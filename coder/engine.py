"""`Coder`: load a model once, code one answer or many. The only place the candidate
generator is wired to the ranker."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .answer import read_answer
from .build import Model
from .candidates import CandidateGenerator
from .errors import Reason
from .normalise import normalise
from .results import Candidate, Result
from .schemes import Scheme, load_scheme
from .store import load_model

__all__ = ["Coder", "screen", "MAX_TITLE_CHARS", "MISSING_MARKERS"]

MAX_TITLE_CHARS = 1000
# Literal missing-value markers that survey exports write into text cells (compared after
# folding case and surrounding space): coded as missing, never as titles ("NaN" is not Nanny).
MISSING_MARKERS = frozenset({
    "nan", "null", "none", "#n/a", "n/a", "na", "-9", "-8", "-1", ".", "-", "?", "refused",
    "don't know", "dont know", "don't know.", "dk", "not stated", "missing", "no answer",
})
_BRACKETED = re.compile(r"[\(\[\{][^\)\]\}]*[\)\]\}]?")
# Answers that say nothing about a job (compared after normalisation).
_NON_ANSWERS = frozenset({
    "n a", "nothing", "unknown", "not known", "do not know", "not applicable", "various",
    "n k", "nk", "test",
})
# Descriptions and industries that say nothing (compared after normalisation).
_EMPTY_CONTEXT = frozenset({"", "n a", "na", "none", "same", "as above", "see above", "dont know", "not known",
                            "nothing", "unknown", "various", "nan", "null", "same as above"})


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value.__class__.__name__ in {"NAType", "NaTType"}


def screen(text: object, markers: frozenset[str] = MISSING_MARKERS) -> Reason | None:
    """Why ``text`` cannot be coded at all, or None when it is worth trying."""
    if _is_missing(text):
        return Reason.MISSING
    if not isinstance(text, str):
        text = str(text)
    stripped = text.strip()
    if not stripped:
        return Reason.EMPTY
    if stripped.casefold() in markers:
        return Reason.MISSING
    if len(stripped) > MAX_TITLE_CHARS:
        return Reason.TOO_LONG
    odd = sum(unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cn", "Cs"} and ch not in "\t\n\r"
              for ch in stripped)
    if "\x00" in stripped or odd > 0.1 * len(stripped):
        return Reason.NOT_TEXT
    if not any(ch.isalpha() for ch in stripped):
        return Reason.NO_LETTERS
    return None


def _as_list(values: Iterable | None, n: int) -> list:
    if values is None:
        return [None] * n
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return list(values)


def _text(value: object) -> str | None:
    return None if _is_missing(value) else str(value)


@dataclass(frozen=True)
class _Coded:
    """What the cache keeps for one distinct answer: everything but the status, which
    depends on the threshold at the time of asking."""

    candidates: tuple[Candidate, ...]
    vague: bool
    resolved: bool  # the context chose the top candidate's entry
    title: str
    industry: str
    description: str


class Coder:
    """Codes survey answers (job title, optional industry and description) to one scheme.

    Examples
    --------
    >>> coder = Coder.load("soc2000")            # doctest: +SKIP
    >>> coder.code("snr software dev").code       # doctest: +SKIP
    '2132'
    >>> coder.code("Manager", industry="pub", description="runs the pub").code   # doctest: +SKIP
    '1224'
    """

    def __init__(self, model: Model, *, threshold: float | None = None, cache_size: int = 50_000,
                 missing_markers: Iterable[str] = MISSING_MARKERS):
        self.model = model
        self.scheme_name = model.scheme
        self.scheme: Scheme = load_scheme(model.scheme)
        self.threshold = float(model.threshold if threshold is None else threshold)
        self.missing_markers = frozenset(m.strip().casefold() for m in missing_markers)
        self._cache: OrderedDict[tuple[str, str, str, int], _Coded] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def load(cls, scheme: str = "soc2000", *, model_dir: str | Path | None = None,
             threshold: float | None = None, build: bool = True, cache_size: int = 50_000,
             progress: Callable[[str], None] | None = None) -> "Coder":
        """Load (building first if missing or stale) the model for ``scheme``.

        ``threshold`` overrides the model's calibrated auto-coding threshold; ``cache_size``
        bounds the memo of coded answers. A `Coder` is not thread-safe: use one per thread,
        or serialise calls (as the HTTP service does).
        """
        return cls(load_model(scheme, model_dir, build=build, progress=progress),
                   threshold=threshold, cache_size=cache_size)

    @property
    def generator(self) -> CandidateGenerator:
        return self.model.generator

    # ------------------------------------------------------------------ API
    def code(self, title: object, industry: object = None, description: object = None, *, k: int = 5) -> Result:
        """Code one answer: the job title, and optionally free text about the employer's
        industry and about what the person mainly does."""
        return self.code_many([title], [industry], [description], k=k)[0]

    def code_many(self, titles: Iterable, industries: Iterable | None = None,
                  descriptions: Iterable | None = None, *, k: int = 5) -> list[Result]:
        """Code many answers (lists, arrays or pandas Series), one `Result` per input, in order.

        Each distinct (title, industry, description) as read is coded once.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        titles = _as_list(titles, 0)
        industries = _as_list(industries, len(titles))
        descriptions = _as_list(descriptions, len(titles))
        if not len(industries) == len(descriptions) == len(titles):
            raise ValueError(f"{len(titles)} titles, {len(industries)} industries, {len(descriptions)} descriptions")
        results: list[Result | None] = [None] * len(titles)
        todo: dict[tuple[str, str, str], list[int]] = {}
        for i, (title, industry, description) in enumerate(zip(titles, industries, descriptions)):
            text, ind, desc = _text(title), self._context(industry), self._context(description)
            reason = screen(title, self.missing_markers)
            if reason is not None:
                results[i] = Result(text or "", ind, self.scheme_name, "uncodable", reason=reason, description=desc)
                continue
            read = read_answer(text, ind, desc)
            if read.not_occupation:
                reason = Reason.NOT_OCCUPATION
            elif not read.title:
                outside = _BRACKETED.sub(" ", text).strip(" ,.;:-")
                reason = Reason.NO_OCCUPATION_WORDS if outside else Reason.ONLY_BRACKETS
            elif read.title in _NON_ANSWERS:
                reason = Reason.NOT_A_JOB
            if reason is not None:
                results[i] = Result(text, ind, self.scheme_name, "uncodable", reason=reason,
                                    normalised=read.title, description=desc)
                continue
            todo.setdefault((read.title, read.industry, read.description), []).append(i)
        # Coded answers are taken from the cache first and held here, so evicting them while
        # coding the rest of the batch cannot lose them.
        coded: dict[tuple[str, str, str], _Coded] = {}
        missing = []
        for key in todo:
            hit = self._cache.get((*key, k))
            if hit is None:
                missing.append(key)
            else:
                self._cache.move_to_end((*key, k))
                coded[key] = hit
        for key, value in zip(missing, self._code_distinct(missing, k)):
            coded[key] = value
            self._remember((*key, k), value)
        for key, rows in todo.items():
            value = coded[key]
            status, reason = self._status(value)
            for i in rows:
                results[i] = Result(
                    str(titles[i]), self._context(industries[i]), self.scheme_name, status, value.candidates,
                    reason, value.title, value.industry, description=self._context(descriptions[i]),
                )
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------ internals
    def _context(self, value: object) -> str | None:
        """Industry or description text as given, or None when it says nothing."""
        text = _text(value)
        if text is None or screen(text, self.missing_markers) not in (None, Reason.NO_LETTERS):
            return None
        return None if normalise(text) in _EMPTY_CONTEXT else text

    def _status(self, coded: _Coded) -> tuple[str, Reason]:
        """Status from the current threshold, so changing it applies to cached answers too."""
        if not coded.candidates:
            return "uncodable", Reason.NO_MATCH
        if coded.vague and not coded.resolved:
            return "refer", Reason.VAGUE
        if coded.candidates[0].confidence >= self.threshold:
            return "auto", Reason.NONE
        return "refer", Reason.LOW_CONFIDENCE

    def _remember(self, key: tuple[str, str, str, int], value: _Coded) -> None:
        self._cache[key] = value
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _code_distinct(self, keys: Sequence[tuple[str, str, str]], k: int) -> list[_Coded]:
        if not keys:
            return []
        gen = self.generator
        cands = gen.generate([t for t, _, _ in keys], [c for _, c, _ in keys], [d for _, _, d in keys])
        raw, conf = self.model.ranker.score(cands.X, cands.q, cands.groups())
        order = np.lexsort((-raw, cands.q))
        q = cands.q[order]
        codes = gen.codes_[cands.code[order]]
        entries = cands.entry[order]
        methods = np.asarray(cands.methods)[cands.method[order]]
        matched = cands.context_match[order]
        conf = conf[order]
        starts = np.searchsorted(q, np.arange(len(keys) + 1))
        out = []
        for i, (title, industry, description) in enumerate(keys):
            lo, hi = starts[i], min(starts[i + 1], starts[i] + k)
            candidates = tuple(
                Candidate(
                    code=str(codes[j]),
                    title=self.scheme.title(str(codes[j])) or "",
                    confidence=round(float(conf[j]), 4),
                    method=str(methods[j]),
                    matched_entry=str(gen.entry_text_[entries[j]]),
                )
                for j in range(lo, hi)
            )
            out.append(_Coded(candidates, bool(cands.vague[i]), hi > lo and bool(matched[lo]),
                              title, industry, description))
        return out
