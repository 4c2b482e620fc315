"""Exact match of a normalised title against the index's normalised titles."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..normalise import head_word
if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

from .base import Pairs, Proposals, Queries

__all__ = ["ExactStage"]


def _joined(title: str) -> str:
    return title.replace(" ", "")


class ExactStage:
    """Dictionary lookup of the query's title; it claims the title as the query's own.

    A title not found as written is looked up again with its spaces removed, because
    respondents split and join compound words freely ("hair dresser", "fire fighter",
    "postman"/"post man") and the index spells each one way only. Joined spellings shared by
    two index titles are left out rather than guessed.

    A title the index does not hold may end in one it does ("hospital *pharmacist*", "senior
    *project manager*"): English job titles put the occupation last, so the longest such
    ending is proposed too (not claimed as the query's own title), scored by the share of the
    query's words it covers.

    Features: ``head`` (the candidate's index title ends in the query's last word) and
    ``suffix`` (share of the query's words covered by the longest index title it ends in,
    where that title is the candidate's).
    """

    name = "exact"
    FEATURES = ("head", "suffix")

    def fit(self, table: IndexTable, *, seed: int = 0) -> "ExactStage":
        titles = table.titles_
        self.lookup_ = {t: i for i, t in enumerate(titles)}
        shared = Counter(_joined(t) for t in titles)
        self.joined_ = {_joined(t): i for i, t in enumerate(titles) if shared[_joined(t)] == 1}
        heads = {h: i for i, h in enumerate(sorted({head_word(t) for t in titles}))}
        self.head_ids_ = heads
        self.title_head_ = np.array([heads[head_word(t)] for t in titles], np.int32)
        return self

    def find(self, titles: Sequence[str]) -> np.ndarray:
        """Index title number of each title, -1 where the index does not hold it."""
        out = np.full(len(titles), -1, np.int64)
        for i, t in enumerate(titles):
            j = self.lookup_.get(t)
            if j is None:
                j = self.joined_.get(_joined(t))
            if j is not None:
                out[i] = j
        return out

    def suffixes(self, titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(index title, share of words covered) of the longest proper ending of each title that
        the index holds; (-1, 0) where none."""
        found = np.full(len(titles), -1, np.int64)
        share = np.zeros(len(titles), np.float32)
        for i, t in enumerate(titles):
            words = t.split()
            for start in range(1, len(words)):
                j = self.lookup_.get(" ".join(words[start:]))
                if j is not None:
                    found[i], share[i] = j, (len(words) - start) / len(words)
                    break
        return found, share

    def _suffixes(self, queries: Queries) -> tuple[np.ndarray, np.ndarray]:
        key = f"{self.name}:suffixes"
        if key not in queries.scratch:
            queries.scratch[key] = self.suffixes(queries.titles)
        return queries.scratch[key]  # type: ignore[return-value]

    def propose(self, queries: Queries) -> list[Proposals]:
        found = self.find(queries.titles)
        rows = np.flatnonzero(found >= 0)
        suffix, share = self._suffixes(queries)
        other = np.flatnonzero((found < 0) & (suffix >= 0))
        return [Proposals("title", rows, found[rows], np.ones(len(rows), np.float32), exact=True),
                Proposals("title", other, suffix[other], share[other])]

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        q_head = np.array([self.head_ids_.get(head_word(t), -1) for t in queries.titles], np.int32)
        same = (q_head[pairs.tq] == self.title_head_[pairs.tt]) & (q_head[pairs.tq] >= 0)
        suffix, share = self._suffixes(queries)
        is_suffix = (suffix[pairs.tq] == pairs.tt) & (suffix[pairs.tq] >= 0)
        return {"head": pairs.from_titles(same.astype(np.float32)),
                "suffix": pairs.from_titles(np.where(is_suffix, share[pairs.tq], 0.0))}
