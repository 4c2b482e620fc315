"""Exact match of a normalised title against the index's normalised titles."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from . import TopK

__all__ = ["ExactStage"]


def _joined(title: str) -> str:
    return title.replace(" ", "")


class ExactStage:
    """Dictionary lookup; each title maps to one row (titles are unique when fitted).

    A title not found as written is looked up again with its spaces removed, because
    respondents split and join compound words freely ("hair dresser", "fire fighter",
    "postman"/"post man") and the index spells each one way only. Joined spellings shared by
    two index titles are left out rather than guessed.
    """

    def fit(self, titles: Sequence[str]) -> "ExactStage":
        self.lookup_ = {t: i for i, t in enumerate(titles)}
        shared = Counter(_joined(t) for t in titles)
        self.joined_ = {_joined(t): i for i, t in enumerate(titles) if shared[_joined(t)] == 1}
        return self

    def query(self, titles: Sequence[str]) -> TopK:
        out = TopK.empty(len(titles), 1)
        for i, t in enumerate(titles):
            j = self.lookup_.get(t)
            if j is None:
                j = self.joined_.get(_joined(t))
            if j is not None:
                out.idx[i, 0] = j
                out.score[i, 0] = 1.0
        return out

    def __contains__(self, title: str) -> bool:
        return title in self.lookup_

    def get(self, title: str) -> int | None:
        return self.lookup_.get(title)
