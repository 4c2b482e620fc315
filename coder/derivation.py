"""Codes in every scheme from one coding of an answer.

Each entry of the ONS coding index is coded in all five schemes at once, so a coding in one
scheme already says what the others are: a candidate's matched index entry carries its code in
every scheme. `Derivation` turns a `Result` in the source scheme into one in a target scheme
without a second model or a second pass:

* a candidate whose matched entry is known passes its confidence to that entry's target code
  (several entries quoted the same way share it equally);
* a candidate with no entry to go by (a learned decision, or an entry the index quotes
  differently) shares its confidence out by the crosswalk weights of its code (`coder.crosswalk`);
* the target code's confidence is the sum of what it received: the probability that the answer
  is that target code, given the source candidates' calibrated probabilities.

A derived result is auto-coded only when the source result was and the derived code keeps all
of the best source candidate's confidence (the index fixes the target code for that entry);
otherwise it is referred, with a reason saying the target code was split.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from .crosswalk import _cached as _crosswalk
from .crosswalk import _index_entries
from .errors import Reason
from .index import IndexEntry
from .results import Candidate, Result
from .schemes import SCHEMES, load_scheme

__all__ = ["Derivation", "derive", "parse_schemes"]


def parse_schemes(value: str | Sequence[str]) -> list[str]:
    """Scheme names from ``"soc2000,soc2020"``, ``"all"`` or a list; canonical, no repeats,
    in the order given (``all``: every scheme). Raises ``ValueError`` for an unknown name."""
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value) for p in str(p).split(",")]
    names: list[str] = []
    for part in (p for p in parts if p):
        for name in (SCHEMES if part.lower() == "all" else (load_scheme(part).name,)):
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("no scheme named")
    return names


class Derivation:
    """Derive results in ``target`` from results in ``source`` (see the module docstring)."""

    def __init__(self, source: str, target: str, entries: Iterable[IndexEntry] | None = None):
        self.source, self.target = load_scheme(source).name, load_scheme(target).name
        self.scheme = load_scheme(self.target)
        self.crosswalk = _crosswalk(self.source, self.target)
        by_entry: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for entry in entries if entries is not None else _index_entries():
            code, other = entry.code(self.source), entry.code(self.target)
            if code and other:
                by_entry[(code, entry.describe())][other] += 1
        self._by_entry = {key: [(c, n / sum(counts.values())) for c, n in sorted(counts.items())]
                          for key, counts in by_entry.items()}

    def shares(self, candidate: Candidate) -> tuple[list[tuple[str, float]], bool]:
        """(target codes with the share of this candidate's confidence each gets, whether the
        matched entry fixed them rather than the crosswalk)."""
        fixed = self._by_entry.get((candidate.code, candidate.matched_entry))
        if fixed:
            return fixed, True
        return [(link.code, link.weight) for link in self.crosswalk.weights(candidate.code)], False

    def spread(self, candidates: Sequence[tuple[str, float, str]]) -> tuple[list[tuple[str, float, int]], bool]:
        """Target codes for source ``(code, confidence, matched entry)`` candidates, best first:
        ``(code, confidence, index of its largest contributor)``, and whether the best source
        candidate's entry fixed its target code alone."""
        mass: dict[str, float] = defaultdict(float)
        source: dict[str, tuple[float, int]] = {}
        first_fixed = False
        for i, (code, confidence, entry) in enumerate(candidates):
            fixed = self._by_entry.get((code, entry))
            shares = fixed or [(link.code, link.weight) for link in self.crosswalk.weights(code)]
            if i == 0:
                first_fixed = bool(fixed) and len(shares) == 1
            for target, share in shares:
                part = confidence * share
                mass[target] += part
                if target not in source or part > source[target][0]:
                    source[target] = (part, i)
        ranked = sorted(mass.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(code, min(1.0, round(conf, 6)), source[code][1]) for code, conf in ranked], first_fixed

    def status(self, status: str, reason: str, ranked: list[tuple[str, float, int]], first_fixed: bool,
               best_confidence: float) -> tuple[str, str]:
        """The derived result's (status, reason): auto only where the source was auto and the
        index fixes the target code with all of the best candidate's confidence."""
        if status == "uncodable":
            return status, reason
        if not ranked or (status == "auto" and not (first_fixed and ranked[0][1] >= best_confidence)):
            return "refer", Reason.DERIVED_SPLIT
        return status, reason

    def derive(self, result: Result) -> Result:
        """``result`` (in the source scheme) as a result in the target scheme."""
        if result.scheme != self.source:
            raise ValueError(f"a {result.scheme} result cannot be derived from {self.source}")
        if self.target == self.source:
            return result
        cands = result.candidates if result.status != "uncodable" else ()
        ranked, first_fixed = self.spread([(c.code, c.confidence, c.matched_entry) for c in cands])
        status, reason = self.status(result.status, result.reason, ranked, first_fixed,
                                     cands[0].confidence if cands else 0.0)
        candidates = tuple(
            Candidate(code=code, title=self.scheme.title(code) or "", confidence=conf,
                      method=cands[i].method, matched_entry=cands[i].matched_entry)
            for code, conf, i in ranked[: max(len(cands), 1)])
        return Result(text=result.text, industry=result.industry, scheme=self.target, status=status,
                      candidates=candidates, reason=reason, normalised=result.normalised,
                      context=result.context, description=result.description)


@lru_cache(maxsize=None)
def _derivation(source: str, target: str) -> Derivation:
    return Derivation(source, target)


def derive(result: Result, target: str) -> Result:
    """``result`` in another scheme, from the same coding (a cached `Derivation`)."""
    return _derivation(result.scheme, load_scheme(target).name).derive(result)
