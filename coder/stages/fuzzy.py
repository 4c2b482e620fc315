"""Edit-distance match with rapidfuzz, vectorised over all index titles with `cdist`.

`token_sort_ratio` forgives word order ("clerk accounts") and typos, and keeps rapidfuzz's
SIMD fast path; `token_set_ratio`/`WRatio` are 30-70x slower over 22k titles. It is computed
as `fuzz.ratio` over titles whose words were sorted once at fit time (the same scores):
`token_sort_ratio` re-sorts all 22k index titles on every call.

A query coded alone (or with a few others) gains little from rapidfuzz's SIMD, which scores
many queries at once: it is scored only against the titles that share enough characters to
reach the cutoff (`_CharBound`), about one in seven, with the same scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

from .base import Pairs, Proposals, Queries, TopK, block_rows, nonzero_bytes, top_k_at

__all__ = ["FuzzyStage"]


def _sort_words(title: str) -> str:
    return " ".join(sorted(title.split()))


# Blocks of at most this many queries are scored query by query against `_CharBound`'s
# titles; larger ones in one cdist, whose SIMD scores many queries at once. Per query, on
# the speed benchmark's titles: 0.26 ms bounded; 0.85, 0.51, 0.38, 0.31 and 0.27 ms by one
# cdist over blocks of 1, 2, 3, 4 and 6.
_BOUNDED_UP_TO = 4
# Titles with the highest bounds that a query alone is scored against first (`_query_bounded`).
_FIRST_LOOK = 48

# Threads rapidfuzz may use in this process; None: the stage's own ``workers``. Processes that
# code side by side (`coder.batch`) set 1: a thread per CPU in each oversubscribes the machine.
THREADS: int | None = None


class _CharBound:
    """Which titles may reach a ``fuzz.ratio`` cutoff against a query, from characters alone.

    ``fuzz.ratio`` is 200 * LCS / (len(a) + len(b)), and the longest common subsequence
    never exceeds the characters the two strings share, counted with multiplicity. A title
    whose shared characters cannot reach the cutoff scores 0 in cdist anyway, so skipping it
    changes no score.
    """

    def __init__(self, titles: Sequence[str]):
        n = len(titles)
        self.titles = np.array(titles, dtype=object)  # a subset is then one gather
        self.lens = np.fromiter(map(len, titles), np.int64, n)
        # Each title's length as a number into the distinct lengths: what a query needs to share
        # with a title is then worked out once per length, not once per title.
        self.lengths, self.length_of = np.unique(self.lens, return_inverse=True)
        self._needs: dict[tuple[float, int], np.ndarray] = {}  # `_need`: 20 kB a query length, 5 MB at most
        # Every process that codes a title alone builds this: one character at a time, so the
        # temporaries stay small (a per-process peak is what the memory target counts).
        points = np.frombuffer("".join(titles).encode("utf-32-le"), np.uint32)
        owner = np.repeat(np.arange(n, dtype=np.int32), self.lens)
        counts = {chr(code): np.bincount(owner[points == code], minlength=n).astype(np.int32)
                  for code in np.unique(points).tolist()}
        # One row per (character, m): whether a title holds the character at least m times.
        # A query holding it k times then shares sum over m <= k of those rows.
        self.rows: dict[str, list[int]] = {}
        for ch, c in counts.items():
            start = sum(map(len, self.rows.values()))
            self.rows[ch] = list(range(start, start + int(c.max(initial=0))))
        self.at_least = np.empty((sum(map(len, self.rows.values())), n), np.uint8)
        for ch, c in counts.items():
            for m, row in enumerate(self.rows[ch], start=1):
                np.greater_equal(c, m, out=self.at_least[row], casting="unsafe")

    def candidates(self, query: str, cutoff: float) -> np.ndarray:
        """Title numbers (ascending) whose ratio against ``query`` may reach ``cutoff``."""
        return self.reach(query, cutoff)[0]

    def reach(self, query: str, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`candidates`, and for each the most it may score as a fraction: ``top / bottom``
        points (integers, so that comparing ``top >= c * bottom`` is exact)."""
        rows = [r for ch, k in Counter(query).items() for r in self.rows.get(ch, ())[:k]]
        # Summed in uint8 when it cannot overflow: 20x faster than in int64.
        small = len(rows) < 256
        shared = self.at_least[rows].sum(axis=0, dtype=np.uint8 if small else np.int64)
        need = self._need(cutoff, len(query)) if small else self._need_per_length(cutoff, len(query))[self.length_of]
        keep = np.flatnonzero(shared >= need)
        return keep, 200 * shared[keep].astype(np.int64), self.lens[keep] + len(query)

    def _need_per_length(self, cutoff: float, n: int) -> np.ndarray:
        """Characters a title of each distinct length must share with a query of ``n`` to reach
        the cutoff, less one point (a score is rounded before the cutoff may be applied):
        200 * shared >= c * (length + n), so shared reaches the ceiling of c * (length + n) / 200."""
        return np.ceil(max(cutoff - 1, 0) * (self.lengths + n) / 200).astype(np.int64)

    def _need(self, cutoff: float, n: int) -> np.ndarray:
        """`_need_per_length` for every title, as uint8 (at most 255, which a uint8 sum of
        shared characters never passes anyway), kept per (cutoff, n) for titles of up to 255
        characters: query lengths recur."""
        need = self._needs.get((cutoff, n))
        if need is None:
            need = np.minimum(self._need_per_length(cutoff, n), 255).astype(np.uint8)[self.length_of]
            if n < 256:
                self._needs[cutoff, n] = need
        return need


class FuzzyStage:
    """Best k index titles by `fuzz.token_sort_ratio` (0-100, scaled to 0-1), the typo fallback.

    It proposes only for queries no earlier stage matched well (``gate``): edit distance over
    every index title is the costliest search, and adds nothing where the title was found.
    Feature ``fuzzy``: the ratio for every candidate title, whoever proposed it.
    """

    name = "fuzzy"
    FEATURES = ("fuzzy",)

    # ``chunk``: at most this many queries per block of scores (`block_rows` may take fewer).
    def __init__(self, *, k: int = 5, score_cutoff: int = 60, gate: float = 0.9, chunk: int = 2048,
                 workers: int = -1):
        self.k = k
        self.score_cutoff = score_cutoff
        self.gate = gate
        self.chunk = chunk
        self.workers = workers

    def fit(self, table: IndexTable, *, seed: int = 0) -> "FuzzyStage":
        self.titles_ = list(table.titles_)
        self.sorted_titles_ = [_sort_words(t) for t in self.titles_]
        return self

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_bound", None)  # derived from the titles on first use
        return state

    @property
    def bound_(self) -> _CharBound:
        if getattr(self, "_bound", None) is None:
            self._bound = _CharBound(self.sorted_titles_)
        return self._bound

    def _scores(self, title: str, titles: np.ndarray, cutoff: float) -> np.ndarray:
        return process.cdist([title], self.bound_.titles[titles], scorer=fuzz.ratio, dtype=np.uint8,
                             score_cutoff=cutoff, workers=1)[0]

    def _query_bounded(self, title: str) -> TopK:
        """One query, scored only against the titles that may reach the cutoff: the same
        scores as over every title (the rest are 0), ranked the same way.

        Long titles leave thousands that may reach it, but few that may reach their k-th best
        score: the `_FIRST_LOOK` titles with the highest bounds are scored first, and the rest
        only where their bound reaches the k-th best of those (a tenth as many pairs).
        """
        keep, top, bottom = self.bound_.reach(title, self.score_cutoff)
        if len(keep) > 2 * _FIRST_LOOK:
            first = np.argpartition(-top / np.maximum(bottom, 1), _FIRST_LOOK)[:_FIRST_LOOK]
        else:
            first = np.arange(len(keep))
        scored, scores = keep[first], self._scores(title, keep[first], self.score_cutoff)
        if len(first) < len(keep):
            hits = np.sort(scores[scores > 0])
            # Every other title that may still reach the k-th best so far (a tie counts: ties
            # rank by title number), or the cutoff while there are fewer than k; one point
            # below it, as scores are rounded. Scored with that cutoff (never below the
            # stage's), each gets the score a full search gives it from there up.
            need = int(hits[-self.k]) if len(hits) >= self.k else self.score_cutoff
            rest = top >= (need - 1) * bottom
            rest[first] = False
            scored = np.concatenate([scored, keep[rest]])
            scores = np.concatenate([scores, self._scores(title, keep[rest], max(need - 1, self.score_cutoff))])
        # Best first, ties by title number, as `top_k_at` ranks a block.
        hit = np.flatnonzero(scores)
        best = hit[np.lexsort((scored[hit], -scores[hit].astype(np.int16)))[: self.k]]
        out = TopK.empty(1, self.k)
        out.idx[0, : len(best)], out.score[0, : len(best)] = scored[best], scores[best]
        return out

    def query(self, titles: Sequence[str]) -> TopK:
        out = TopK.empty(len(titles), self.k)
        if 0 < len(titles) <= _BOUNDED_UP_TO:
            for i, t in enumerate(titles):
                top = self._query_bounded(_sort_words(t))
                out.idx[i], out.score[i] = top.idx[0], top.score[0] / 100.0
            return out
        step = block_rows(len(self.sorted_titles_), 1, self.chunk)
        for start in range(0, len(titles), step):
            block = [_sort_words(t) for t in titles[start : start + step]]
            # uint8 scores in blocks (`block_rows`): never the whole queries x index matrix.
            scores = process.cdist(
                block, self.sorted_titles_, scorer=fuzz.ratio, dtype=np.uint8,
                score_cutoff=self.score_cutoff,
                # Starting threads costs more than scoring a handful of queries.
                workers=(self.workers if THREADS is None else THREADS) if len(block) > 16 else 1,
            )
            # Scores under the cutoff are 0, so the matrix is mostly empty: rank the rest.
            top = top_k_at(scores, nonzero_bytes(scores), self.k)
            out.idx[start : start + len(block)] = top.idx
            out.score[start : start + len(block)] = top.score / 100.0
        return out

    def propose(self, queries: Queries) -> Proposals:
        rows = np.flatnonzero(queries.best_title < self.gate)
        return Proposals.from_topk(self.query([queries.titles[i] for i in rows]), "title", rows)

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        n = len(pairs.tq)
        if n == 0:
            return {"fuzzy": pairs.from_titles(np.zeros(0, np.float32))}
        ratio = process.cpdist(
            [queries.titles[i] for i in pairs.tq], [self.titles_[j] for j in pairs.tt],
            scorer=fuzz.token_sort_ratio, workers=(-1 if THREADS is None else THREADS) if n > 20_000 else 1,
        ).astype(np.float32) / 100.0
        return {"fuzzy": pairs.from_titles(ratio)}
