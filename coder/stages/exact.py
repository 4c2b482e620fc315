"""Exact match of a normalised title against the index's normalised titles."""

from __future__ import annotations

from collections.abc import Sequence

from . import TopK

__all__ = ["ExactStage"]


class ExactStage:
    """Dictionary lookup; each title maps to one row (titles are unique when fitted)."""

    def fit(self, titles: Sequence[str]) -> "ExactStage":
        self.lookup_ = {t: i for i, t in enumerate(titles)}
        return self

    def query(self, titles: Sequence[str]) -> TopK:
        out = TopK.empty(len(titles), 1)
        for i, t in enumerate(titles):
            j = self.lookup_.get(t)
            if j is not None:
                out.idx[i, 0] = j
                out.score[i, 0] = 1.0
        return out

    def __contains__(self, title: str) -> bool:
        return title in self.lookup_

    def get(self, title: str) -> int | None:
        return self.lookup_.get(title)

