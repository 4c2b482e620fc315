"""Edit-distance match with rapidfuzz, vectorised over all index titles with `cdist`.

`token_sort_ratio` forgives word order ("clerk accounts") and typos, and keeps rapidfuzz's
SIMD fast path; `token_set_ratio`/`WRatio` are 30-70x slower over 22k titles. It is computed
as `fuzz.ratio` over titles whose words were sorted once at fit time (the same scores):
`token_sort_ratio` re-sorts all 22k index titles on every call.
"""

from __future__ import annotations

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


# Threads rapidfuzz may use in this process; None: the stage's own ``workers``. Processes that
# code side by side (`coder.batch`) set 1: a thread per CPU in each oversubscribes the machine.
THREADS: int | None = None


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

    def query(self, titles: Sequence[str]) -> TopK:
        out = TopK.empty(len(titles), self.k)
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
