"""`Coder`: load a model once, code one answer or many. The only place the candidate
generator is wired to the ranker."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import sys
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from .answer import read_answer
from ._memory import release_free_memory
from .model import Model
from .candidates import CandidateGenerator
from .errors import InputError, Reason
from .normalise import normalise
from .results import Candidate, Decided, Result
from .schemes import Scheme, load_scheme
from .store import load_model

__all__ = ["Coder", "Decisions", "screen", "context_text", "MAX_TITLE_CHARS", "MISSING_MARKERS"]

Key = tuple[str, str, str]  # an answer as read: (title, industry, description), normalised

MAX_TITLE_CHARS = 1000
# After coding at least this many new answers in one call, freed memory is handed back to the
# system (`coder._memory`: a survey file's resident memory otherwise grows chunk after chunk).
# Not after each type-ahead title: its few temporaries would only be faulted back in.
_TRIM_AFTER = 64
# Distinct answers coded together (`Coder._code_distinct`): bounds a batch's working memory
# (peak RSS of the 1M-row survey benchmark 368 -> 338 MB going from 1,024 to 512, the same
# speed).
_DISTINCT_SLICE = 512
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


def context_text(value: object, markers: frozenset[str] = MISSING_MARKERS) -> str | None:
    """Industry or description text as given, or None when it says nothing ("n/a", "same")."""
    text = _text(value)
    if text is None or screen(text, markers) not in (None, Reason.NO_LETTERS):
        return None
    return None if normalise(text) in _EMPTY_CONTEXT else text


def _as_list(values: Iterable | None, n: int) -> list:
    if values is None:
        return [None] * n
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return list(values)


def _raw_key(title: object, industry: object, description: object) -> tuple | None:
    """A dictionary key telling raw answers apart exactly (1 and 1.0 differ as text), or None
    when a value cannot be hashed. Missing values (None, NaN, NA) are all None: they read
    the same, and NaN equals nothing, not even another NaN."""
    # A str equals only a str: plain strings (and None) are their own key. Spelt out, not
    # `all(...)`: this runs once per input row.
    if (title.__class__ is str and (industry is None or industry.__class__ is str)
            and (description is None or description.__class__ is str)):
        return (title, industry, description)
    key = tuple(None if _is_missing(v) else (v.__class__, v) for v in (title, industry, description))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _text(value: object) -> str | None:
    return None if _is_missing(value) else str(value)


@runtime_checkable
class Decisions(Protocol):
    """What `Coder` needs from a store of coders' decisions (`coder.decisions.DecisionStore`)."""

    def lookup(self, scheme: str, keys: Sequence[Key]) -> Mapping[Key, Decided]:
        """The decision for each of ``keys`` that has one."""

    def decided(self, scheme: str) -> Iterable[tuple[Key, str]]:
        """Every decided answer of ``scheme`` with its (majority) code."""

    def record(self, scheme: str, answer: tuple[str, str | None, str | None], key: Key, code: str, *,
               who: str = "", source: str = "clerical") -> Decided:
        """Store one decision on the raw ``answer`` (read as ``key``); the answer's decision now."""


def _own_learned_stage(model: Model) -> Model:
    """``model`` with a learned stage of its own (the rest shared, not copied): what one coder
    learns from its decisions must not change other coders built on the same model."""
    stages = model.generator.stages_
    pos = next((i for i, s in enumerate(stages) if getattr(s, "name", "") == "learned"), None)
    if pos is None:
        return model
    learned = copy.copy(stages[pos])
    # The lookup built from the shared decisions is shared too (never changed in place: an
    # addition makes a new one).
    learned.keys_, learned.codes_ = list(learned.keys_), list(learned.codes_)
    generator = copy.copy(model.generator)
    generator.stages_ = [*stages[:pos], learned, *stages[pos + 1:]]
    return dataclasses.replace(model, generator=generator)


class _ReadAnswer(NamedTuple):
    """A codable answer as given (the Result shows it) and as read (the key it is coded by)."""

    text: str
    industry: str | None
    description: str | None
    key: Key


@dataclass(frozen=True)
class _Coded:
    """What the cache keeps for one distinct answer: everything but the status, which
    depends on the threshold at the time of asking."""

    candidates: tuple[Candidate, ...]
    vague: bool
    resolved: bool  # the context chose the top candidate's entry
    group: int  # calibration group of the top candidate (which threshold applies)
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
                 missing_markers: Iterable[str] = MISSING_MARKERS, decisions: Decisions | None = None):
        self.model = model
        self.scheme_name = model.scheme
        self.scheme: Scheme = load_scheme(model.scheme)
        self._threshold = None if threshold is None else float(threshold)
        self._cache: OrderedDict[tuple[str, str, str, int], _Coded] = OrderedDict()
        self._cache_size = cache_size
        # Raw answers already read (`_read`), oldest first, at most ``cache_size`` kept.
        self._reads: OrderedDict[tuple, Result | _ReadAnswer] = OrderedDict()
        self.missing_markers = missing_markers
        self.decisions = decisions
        self._owns_learned = False
        self._texts: tuple[object, list[str]] | None = None
        if decisions is not None:
            learned = self._own_learned()
            for key, code in decisions.decided(self.scheme_name):
                if learned is not None:
                    learned.add(key, code)

    @classmethod
    def load(cls, scheme: str = "soc2000", *, model_dir: str | Path | None = None,
             threshold: float | None = None, build: bool = True, cache_size: int = 50_000,
             decisions: Decisions | None = None, progress: Callable[[str], None] | None = None) -> "Coder":
        """Load (building first if missing or stale) the model for ``scheme``.

        ``threshold`` replaces the model's calibrated auto-coding thresholds (one per kind of
        answer: index hit or not, with a description or not) by one number; ``cache_size``
        bounds the memo of coded answers, and that of raw answers read; ``decisions`` is a
        store of coders' decisions (an answer decided before gets its decided code, method
        ``learned``; similar answers get it as evidence). A `Coder` is not thread-safe: use
        one per thread, or serialise calls (as the HTTP service does).
        """
        return cls(load_model(scheme, model_dir, build=build, progress=progress),
                   threshold=threshold, cache_size=cache_size, decisions=decisions)

    def learn(self, title: object, industry: object = None, description: object = None, *, code: str,
              who: str = "", source: str = "clerical") -> Decided:
        """Record that this answer is ``code`` (in the decision store, if any) and use it at
        once: the same answer comes back with that code, similar answers weigh it."""
        code = str(code).strip()
        if code not in self.scheme:
            raise InputError(f"{code!r} is not a {self.scheme_name} unit group")
        text = _text(title)
        if text is None or screen(text, self.missing_markers) is not None:
            raise InputError("a decision needs a job title")
        ind, desc = self._context(industry), self._context(description)
        read = read_answer(text, ind, desc)
        key = (read.title, read.industry, read.description)
        if self.decisions is not None:
            decided = self.decisions.record(self.scheme_name, (text, ind, desc), key, code, who=who, source=source)
        else:
            decided = Decided(code, 1, 1, who, "", source)
        learned = self._own_learned()
        if learned is not None:
            learned.add(key, code)
        self._cache.clear()  # similar answers may change too
        return decided

    def forget(self, title: object, industry: object = None, description: object = None, *,
               code: str) -> bool:
        """Undo what `learn` taught this coder about the answer (one decision for ``code``);
        the decision store is the caller's to change (`DecisionStore.forget`). False when
        there was nothing to forget."""
        text = _text(title)
        if text is None or screen(text, self.missing_markers) is not None:
            return False
        read = read_answer(text, self._context(industry), self._context(description))
        learned = self._own_learned()
        removed = learned is not None and learned.remove((read.title, read.industry, read.description), str(code))
        self._cache.clear()
        return bool(removed)

    @property
    def missing_markers(self) -> frozenset[str]:
        """Cell values read as missing (compared after folding case and surrounding space)."""
        return self._markers

    @missing_markers.setter
    def missing_markers(self, markers: Iterable[str]) -> None:
        self._markers = frozenset(m.strip().casefold() for m in markers)
        self._reads.clear()  # what was read with the old markers

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
        # Identical raw answers (a survey file repeats its common ones) are handled once: rows
        # are numbered by their distinct raw answer, and each distinct one is read and given a
        # Result; an unhashable one is its own.
        raws = [_raw_key(t, c, d) for t, c, d in zip(titles, industries, descriptions)]
        slots: dict[object, int] = {}
        inverse = [slots.setdefault(object() if raw is None else raw, len(slots)) for raw in raws]
        firsts = np.unique(np.asarray(inverse, np.int64), return_index=True)[1].tolist() if inverse else []
        distinct: list[Result | None] = [None] * len(firsts)
        # -> the distinct raw answers read as that key: (slot, what `_read` made of it)
        todo: dict[Key, list[tuple[int, _ReadAnswer]]] = {}
        # Raw answers read in earlier calls are not read again.
        reads = self._reads
        for j, i in enumerate(firsts):
            raw = raws[i]
            outcome = reads.get(raw) if raw is not None else None
            if outcome is None:
                outcome = self._read(titles[i], industries[i], descriptions[i])
                if raw is not None:
                    reads[raw] = outcome
            if isinstance(outcome, Result):
                distinct[j] = outcome
            else:
                todo.setdefault(outcome.key, []).append((j, outcome))
        while len(reads) > self._cache_size:
            reads.popitem(last=False)
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
        if len(missing) >= _TRIM_AFTER:
            release_free_memory()  # the batch's temporaries are gone: keep resident memory flat
        if self.decisions is not None and todo:
            for key, decided in self.decisions.lookup(self.scheme_name, list(todo)).items():
                coded[key] = self._with_decision(coded[key], decided, k)
        for key, slots_read in todo.items():
            value = coded[key]
            status, reason = self._status(value)
            for j, read in slots_read:
                distinct[j] = Result(read.text, read.industry, self.scheme_name, status, value.candidates, reason,
                                     value.title, value.industry, description=read.description)
        # Results are immutable: the rows of one raw answer share one.
        return [distinct[j] for j in inverse]  # type: ignore[misc]

    def _read(self, title: object, industry: object, description: object) -> Result | _ReadAnswer:
        """An uncodable answer's Result, or the answer as given and as read."""
        text, ind, desc = _text(title), self._context(industry), self._context(description)
        reason = screen(title, self.missing_markers)
        if reason is not None:
            return Result(text or "", ind, self.scheme_name, "uncodable", reason=reason, description=desc)
        read = read_answer(text, ind, desc)
        if read.not_occupation:
            reason = Reason.NOT_OCCUPATION
        elif not read.title:
            outside = _BRACKETED.sub(" ", text).strip(" ,.;:-")
            reason = Reason.NO_OCCUPATION_WORDS if outside else Reason.ONLY_BRACKETS
        elif read.title in _NON_ANSWERS:
            reason = Reason.NOT_A_JOB
        if reason is not None:
            return Result(text, ind, self.scheme_name, "uncodable", reason=reason, normalised=read.title,
                          description=desc)
        return _ReadAnswer(text, ind, desc, (read.title, read.industry, read.description))

    # ------------------------------------------------------------ internals
    def _entry_texts(self) -> list[str]:
        """The index entries' texts as Python strings, made once per table (not per candidate)."""
        table = self.generator.table_
        if self._texts is None or self._texts[0] is not table:
            self._texts = (table, [str(t) for t in table.entry_text_.tolist()])
        return self._texts[1]

    def _learned_stage(self):
        return next((s for s in self.generator.stages_ if getattr(s, "name", "") == "learned"), None)

    def _own_learned(self):
        """This coder's learned stage, made its own before it is first changed: coders built
        on one model share it until then, and one's decisions must not reach another."""
        if not self._owns_learned:
            self.model = _own_learned_stage(self.model)
            self._owns_learned = True
        return self._learned_stage()

    def _with_decision(self, coded: _Coded, decided: Decided, k: int) -> _Coded:
        """The coding of an answer coders decided before: their code first (method
        ``learned``, confidence the share of decisions that gave it), then the model's others."""
        first = Candidate(code=decided.code, title=self.scheme.title(decided.code) or "",
                          confidence=round(decided.share, 4), method="learned", matched_entry=decided.describe())
        rest = tuple(c for c in coded.candidates if c.code != decided.code)[: k - 1]
        others = max(0.0, 1.0 - decided.share)
        total = sum(c.confidence for c in rest)
        if total > others:  # keep the candidates' probabilities summing to at most 1
            rest = tuple(Candidate(c.code, c.title, round(c.confidence * others / total, 4), c.method, c.matched_entry)
                         for c in rest)
        return _Coded((first, *rest), vague=False, resolved=True, group=-1, title=coded.title,
                      industry=coded.industry, description=coded.description)

    def _context(self, value: object) -> str | None:
        """Industry or description text as given, or None when it says nothing."""
        return context_text(value, self.missing_markers)

    def _status(self, coded: _Coded) -> tuple[str, Reason]:
        """Status from the current threshold, so changing it applies to cached answers too."""
        if not coded.candidates:
            return "uncodable", Reason.NO_MATCH
        if coded.vague and not coded.resolved:
            return "refer", Reason.VAGUE
        if coded.group == -1:  # coders decided this answer: their majority code stands
            return ("auto", Reason.NONE) if coded.candidates[0].confidence > 0.5 else ("refer", Reason.CONFLICTING_DECISIONS)
        if coded.candidates[0].confidence >= self.threshold_for(coded.group):
            return "auto", Reason.NONE
        return "refer", Reason.LOW_CONFIDENCE

    @property
    def threshold(self) -> float:
        """The auto-coding threshold: the one set on this coder, else the model's (chosen on
        survey answers; the model also keeps one per kind of answer, see `threshold_for`)."""
        return self.model.threshold if self._threshold is None else self._threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        """Set one threshold for every answer (None: back to the model's own)."""
        self._threshold = None if value is None else float(value)

    def threshold_for(self, group: int) -> float:
        """The auto-coding threshold for a best candidate in calibration ``group``: the one set
        on this coder, else the model's for that kind of answer."""
        if self._threshold is not None:
            return self._threshold
        return float(self.model.thresholds.get(group, self.model.threshold))

    def _remember(self, key: tuple[str, str, str, int], value: _Coded) -> None:
        self._cache[key] = value
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _code_distinct(self, keys: Sequence[tuple[str, str, str]], k: int) -> list[_Coded]:
        # A slice at a time: a query's candidates and scores depend on it alone, and a big
        # batch's candidate rows (every entry of every proposed title, ~60 MB a 1,024 queries)
        # are then never all held at once.
        return [coded for start in range(0, len(keys), _DISTINCT_SLICE)
                for coded in self._code_slice(keys[start : start + _DISTINCT_SLICE], k)]

    def _code_slice(self, keys: Sequence[tuple[str, str, str]], k: int) -> list[_Coded]:
        if not keys:
            return []
        gen = self.generator
        cands = gen.generate([t for t, _, _ in keys], [c for _, c, _ in keys], [d for _, _, d in keys])
        groups = cands.groups()
        raw, conf = self.model.ranker.score(cands.X, cands.q, groups)
        order = np.lexsort((-raw, cands.q))
        q = cands.q[order]
        codes = gen.codes_[cands.code[order]]
        entries = cands.entry[order]
        methods = np.asarray(cands.methods)[cands.method[order]]
        matched = cands.context_match[order]
        groups = groups[order]
        conf = conf[order]
        starts = np.searchsorted(q, np.arange(len(keys) + 1))
        # Only each query's first k rows become Candidates: plain Python values, taken once.
        shown = np.flatnonzero(np.arange(len(q)) - starts[q] < k)
        # Shared strings: the result cache holds tens of thousands of candidates.
        code_list = [sys.intern(str(c)) for c in codes[shown].tolist()]
        conf_list = conf[shown].astype(np.float64).tolist()
        method_list = [sys.intern(str(m)) for m in methods[shown].tolist()]
        entry_list = entries[shown].tolist()
        texts = self._entry_texts()
        first = np.searchsorted(shown, starts)
        names = {code: self.scheme.title(code) or "" for code in set(code_list)}
        out = []
        for i, (title, industry, description) in enumerate(keys):
            lo, hi = int(first[i]), int(first[i + 1])
            candidates = tuple(
                Candidate(
                    code=code_list[j],
                    title=names[code_list[j]],
                    confidence=round(conf_list[j], 4),
                    method=method_list[j],
                    matched_entry=texts[entry_list[j]],
                )
                for j in range(lo, hi)
            )
            row = starts[i]
            out.append(_Coded(candidates, bool(cands.vague[i]), hi > lo and bool(matched[row]),
                              int(groups[row]) if hi > lo else 0, title, industry, description))
        return out
