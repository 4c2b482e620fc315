"""`Coder`: load a model once, code one title or many. The only place the stages are wired
to the ranker."""

from __future__ import annotations

import math
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .candidates import FEATURES, METHODS, CandidateGenerator
from .model import Model, load_model
from .normalise import normalise, split_context
from .results import Candidate, Result
from .schemes import Scheme, load_scheme

__all__ = ["Coder", "screen", "MAX_TITLE_CHARS"]

MAX_TITLE_CHARS = 1000
# Vague titles are referred whatever their confidence (evaluation reads this reason).
VAGUE_REASON = "title too vague to code without more detail (index: see notes)"
# Answers that say nothing about a job (compared after normalisation).
_NON_ANSWERS = frozenset({
    "na", "n a", "none", "nil", "nothing", "unknown", "not known", "dont know", "do not know",
    "dk", "refused", "not applicable", "no answer", "unemployed", "not working", "no job",
    "various", "n k", "nk", "not stated", "missing", "null", "test",
})


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value.__class__.__name__ in {"NAType", "NaTType"}


def screen(text: object) -> str | None:
    """Why ``text`` cannot be coded at all, or None when it is worth trying."""
    if _is_missing(text):
        return "missing value"
    if not isinstance(text, str):
        text = str(text)
    stripped = text.strip()
    if not stripped:
        return "empty title"
    if len(stripped) > MAX_TITLE_CHARS:
        return f"title longer than {MAX_TITLE_CHARS:,} characters"
    odd = sum(unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cn", "Cs"} and ch not in "\t\n\r"
              for ch in stripped)
    if "\x00" in stripped or odd > 0.1 * len(stripped):
        return "not text (control or binary characters)"
    if not any(ch.isalpha() for ch in stripped):
        return "no letters in the title"
    return None


def _as_list(values: Iterable | None, n: int | None = None) -> list:
    if values is None:
        return [None] * (n or 0)
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return list(values)


class Coder:
    """Codes job titles to one classification scheme.

    Examples
    --------
    >>> coder = Coder.load("soc2000")            # doctest: +SKIP
    >>> coder.code("snr software dev").code       # doctest: +SKIP
    '2132'
    """

    def __init__(self, model: Model, *, threshold: float | None = None, cache_size: int = 50_000):
        self.model = model
        self.scheme_name = model.scheme
        self.scheme: Scheme = load_scheme(model.scheme)
        self.threshold = float(model.threshold if threshold is None else threshold)
        self._cache: OrderedDict[tuple[str, str, int], Result] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def load(cls, scheme: str = "soc2000", *, model_dir: str | Path | None = None,
             threshold: float | None = None, build: bool = True, cache_size: int = 50_000,
             progress: Callable[[str], None] | None = None) -> "Coder":
        """Load (building first if missing or stale) the model for ``scheme``.

        ``threshold`` overrides the model's calibrated auto-coding threshold; ``cache_size``
        bounds the memo of coded (title, industry) pairs. A `Coder` is not thread-safe: use one
        per thread, or serialise calls (as the HTTP service does).
        """
        return cls(load_model(scheme, model_dir, build=build, progress=progress),
                   threshold=threshold, cache_size=cache_size)

    @property
    def generator(self) -> CandidateGenerator:
        return self.model.generator

    # ------------------------------------------------------------------ API
    def code(self, title: object, industry: object = None, *, k: int = 5) -> Result:
        """Code one title; ``industry`` is optional free text about the employer or industry."""
        return self.code_many([title], [industry], k=k)[0]

    def code_many(self, titles: Iterable, industries: Iterable | None = None, *, k: int = 5) -> list[Result]:
        """Code many titles (a list, array or pandas Series), one `Result` per input, in order.

        Each distinct (normalised title, normalised context) is coded once.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        titles = _as_list(titles)
        industries = _as_list(industries, len(titles))
        if len(industries) != len(titles):
            raise ValueError(f"{len(titles)} titles but {len(industries)} industries")
        results: list[Result | None] = [None] * len(titles)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (title, industry) in enumerate(zip(titles, industries)):
            text = "" if _is_missing(title) else str(title)
            ind = None if _is_missing(industry) or not str(industry).strip() else str(industry)
            reason = screen(title)
            if reason is None and ind is not None and screen(ind) not in (None, "no letters in the title"):
                ind = None  # unusable industry text is ignored, not fatal
            if reason is not None:
                results[i] = Result(text, ind, self.scheme_name, "uncodable", reason=reason)
                continue
            raw_title, bracketed = split_context(text)
            norm = normalise(raw_title)
            context = normalise(" ".join(x for x in (bracketed, ind or "") if x))
            if not norm:
                reason = "no occupation words" if raw_title.strip() else "only bracketed text"
                results[i] = Result(text, ind, self.scheme_name, "uncodable", reason=reason)
                continue
            if norm in _NON_ANSWERS:
                results[i] = Result(text, ind, self.scheme_name, "uncodable", reason="not a job title",
                                    normalised=norm)
                continue
            todo.setdefault((norm, context), []).append(i)
        keys = [key for key in todo if (key[0], key[1], k) not in self._cache]
        if keys:
            for key, result in zip(keys, self._code_distinct(keys, k)):
                self._remember((key[0], key[1], k), result)
        for (norm, context), rows in todo.items():
            cached = self._cache[(norm, context, k)]
            self._cache.move_to_end((norm, context, k))
            for i in rows:
                results[i] = Result(
                    "" if _is_missing(titles[i]) else str(titles[i]),
                    None if _is_missing(industries[i]) else str(industries[i]),
                    self.scheme_name, cached.status, cached.candidates, cached.reason,
                    norm, context,
                )
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------ internals
    def _remember(self, key: tuple[str, str, int], result: Result) -> None:
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _code_distinct(self, keys: Sequence[tuple[str, str]], k: int) -> list[Result]:
        gen = self.generator
        titles = [t for t, _ in keys]
        contexts = [c for _, c in keys]
        cands = gen.generate(titles, contexts)
        raw, conf = self.model.ranker.score(cands.X, cands.q)
        order = np.lexsort((-raw, cands.q))
        q = cands.q[order]
        codes = gen.codes_[cands.code[order]]
        entries = cands.entry[order]
        methods = np.asarray(METHODS)[cands.method[order]]
        inds = cands.X[order, FEATURES.index("ind")]
        conf = conf[order]
        starts = np.searchsorted(q, np.arange(len(keys) + 1))
        out = []
        for i, (title, context) in enumerate(keys):
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
            if not candidates:
                out.append(Result(title, None, self.scheme_name, "uncodable",
                                  reason="no similar title in the coding index", normalised=title,
                                  context=context))
                continue
            vague = bool(cands.vague[i]) and (not context or inds[lo] < 0.3)
            if vague:
                status, reason = "refer", VAGUE_REASON
            elif conf[lo] >= self.threshold:
                status, reason = "auto", ""
            else:
                status, reason = "refer", f"confidence below {self.threshold:.2f}"
            out.append(Result(title, None, self.scheme_name, status, candidates, reason, title, context))
        return out
