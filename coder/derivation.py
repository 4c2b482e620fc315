"""Codes in every scheme from one coding of an answer.

Each entry of the ONS coding index is coded in all five schemes at once, so a coding in one
scheme already says what the others are: a candidate's matched index entry carries its code in
every scheme. `Derivation` turns a `Result` in the source scheme into one in a target scheme
without a second model or a second pass:

* a candidate that *is* its matched entry (an exact or learned match) passes its confidence to
  that entry's target code (several entries quoted the same way share it equally); one matched
  less directly gives half to the entry's code and half by the crosswalk weights;
* a candidate with no entry to go by (a learned decision, or an entry the index quotes
  differently) shares its confidence out by the crosswalk weights of its code (`coder.crosswalk`);
* the target code's confidence is the sum of what it received: the probability that the answer
  is that target code, given the source candidates' calibrated probabilities.

A derived result is auto-coded only when the source result was, the best candidate's target
code is certain (`Derivation.certain`) and it keeps all of that candidate's confidence;
otherwise it is referred, with a reason saying the target code was split.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from .crosswalk import Crosswalk
from .crosswalk import _cached as _crosswalk
from .crosswalk import _index_entries
from .errors import Reason
from .index import IndexEntry
from .results import Candidate, Result
from .schemes import SCHEMES, load_scheme

__all__ = ["Derivation", "derive", "parse_schemes", "candidate_codes"]

DERIVE_FROM = 5  # candidates a derivation reads (the same in files and the API)
_AS_MATCHED = frozenset({"exact", "learned"})  # methods whose answer is its matched entry
_ENTRY_SHARE = 0.5  # the matched entry's weight for other methods (see Derivation.shares)


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
        entries = list(entries) if entries is not None else None
        self.scheme = load_scheme(self.target)
        self.crosswalk = (_crosswalk(self.source, self.target) if entries is None
                          else Crosswalk._build(self.source, self.target, list(entries)))
        by_entry: dict[tuple[str, str], Counter] = defaultdict(Counter)
        by_title: dict[tuple[str, str], set] = defaultdict(set)
        self._title_of: dict[str, str] = {}
        for entry in entries if entries is not None else _index_entries():
            code, other = entry.code(self.source), entry.code(self.target)
            if code and other:
                by_entry[(code, entry.describe())][other] += 1
                by_title[(code, entry.natural)].add(other)
                self._title_of[entry.describe()] = entry.natural
        # Source code and title -> how many target codes the index's entries of that title give.
        self._title_targets = {key: len(codes) for key, codes in by_title.items()}
        self._memo: dict[tuple[str, str, str], tuple[list[tuple[str, float]], bool]] = {}
        self._links = {c: [(link.code, link.weight) for link in self.crosswalk.weights(c)]
                       for c in self.crosswalk.source_codes}
        self._by_entry = {key: [(c, n / sum(counts.values())) for c, n in
                                sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
                          for key, counts in by_entry.items()}

    def spread(self, candidates: Sequence[tuple[str, float, str, str]], k: int = 10
               ) -> tuple[list[tuple[str, float, int]], str | None]:
        """Target codes for source ``(code, confidence, matched entry, method)`` candidates,
        the best ``k`` first: ``(code, confidence, index of its largest contributor)``, and whether the
        best candidate's target code when it is certain (`certain`), else None."""
        mass: dict[str, float] = defaultdict(float)
        source: dict[str, tuple[float, int]] = {}
        first_fixed: str | None = None
        memo = self._memo
        for i, (code, confidence, entry, method) in enumerate(candidates):
            key = (code, entry, method)
            got = memo.get(key)
            if got is None:
                if len(memo) > 200_000:
                    memo.clear()
                # The 10 largest shares carry nearly all the mass; the rest would only lengthen
                # the tail (what is dropped stays unassigned, so no confidence is overstated).
                got = memo[key] = (self.shares(code, entry, method)[:10], self.certain(code, entry, method))
            shares = got[0]
            if i == 0 and got[1]:
                first_fixed = shares[0][0]  # certain: one target code
            for target, share in shares:
                part = confidence * share
                mass[target] += part
                if target not in source or part > source[target][0]:
                    source[target] = (part, i)
        ranked = sorted(mass.items(), key=lambda kv: (-kv[1], kv[0]))[: max(k, 1)]
        return [(code, min(1.0, round(conf, 6)), source[code][1]) for code, conf in ranked], first_fixed

    def certain(self, code: str, entry: str, method: str) -> bool:
        """Whether the target code follows from the source code and the match for sure: the
        source code has one target code in the whole index, or the answer is its matched
        title and every index entry of that title with this source code has one target code
        (qualifiers the answer may not have said cannot change it)."""
        if len(self._links.get(code, ())) == 1:
            return True
        title = self._title_of.get(entry)
        return method in _AS_MATCHED and title is not None and self._title_targets.get((code, title)) == 1

    def shares(self, code: str, entry: str, method: str) -> list[tuple[str, float]]:
        """How one source candidate's confidence is shared among target codes.

        An answer that *is* its matched entry (an exact or learned match) takes the entry's
        target code. Otherwise the entry is only the nearest index title, and other titles
        with the same source code can carry other target codes: half goes to the entry's
        code, half by the crosswalk weights (on held-out index entries this kept top-1 and
        made the derived confidences honest)."""
        fixed = self._by_entry.get((code, entry))
        links = self._links.get(code, [])
        if not fixed:
            return links
        if method in _AS_MATCHED or len(links) <= 1:
            return fixed
        mixed: dict[str, float] = defaultdict(float)
        for target, share in fixed:
            mixed[target] += _ENTRY_SHARE * share
        for target, share in links:
            mixed[target] += (1 - _ENTRY_SHARE) * share
        return sorted(mixed.items(), key=lambda kv: (-kv[1], kv[0]))

    def status(self, status: str, reason: str, ranked: list[tuple[str, float, int]], first_fixed: str | None,
               best_confidence: float) -> tuple[str, str]:
        """The derived result's (status, reason): auto only where the source was auto and the
        index fixes the target code with all of the best candidate's confidence."""
        if status == "uncodable":
            return status, reason
        if not ranked or (status == "auto" and not (first_fixed == ranked[0][0] and ranked[0][1] >= best_confidence)):
            return "refer", Reason.DERIVED_SPLIT
        return status, reason

    def derive(self, result: Result) -> Result:
        """``result`` (in the source scheme) as a result in the target scheme."""
        if result.scheme != self.source:
            raise ValueError(f"a {result.scheme} result cannot be derived from {self.source}")
        if self.target == self.source:
            return result
        cands = result.candidates[:DERIVE_FROM] if result.status != "uncodable" else ()
        ranked, first_fixed = self.spread([(c.code, c.confidence, c.matched_entry, c.method) for c in cands],
                                          k=len(cands))
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


def candidate_codes(source: str, candidate: Candidate, targets: Sequence[str]) -> dict[str, str]:
    """One candidate's likeliest code in each target scheme (for a person choosing it): its
    matched entry's code, or the crosswalk's likeliest target; schemes with none are left out."""
    out: dict[str, str] = {}
    for target in targets:
        shares = _derivation(source, load_scheme(target).name).shares(
            candidate.code, candidate.matched_entry, candidate.method)
        if shares:
            out[target] = shares[0][0]
    return out
