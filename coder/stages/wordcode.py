"""Word-to-code association tables: how strongly each word points at each code.

Job titles are head-final ("bookshop *manager*"): the head names the occupation family, the
modifiers and the industry pick the unit group. Separate smoothed tables P(code | word) for
head words, modifier words and qualifier (industry) words let the ranker weigh them
differently, which one linear model over all words cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["WordCodeStage"]


def _split(title: str) -> tuple[str, list[str]]:
    words = title.split()
    return (words[-1], words[:-1]) if words else ("", [])


class WordCodeStage:
    """Dense per-code association scores for a batch of queries.

    Parameters
    ----------
    alpha
        Additive smoothing towards the code prior; rare words get flatter rows.
    """

    def __init__(self, *, alpha: float = 2.0):
        self.alpha = alpha

    def _table(self, docs: Sequence[list[str]], codes: np.ndarray) -> tuple[dict, np.ndarray]:
        """(vocabulary, dense P(code | word) table: words x codes)."""
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for words, code in zip(docs, codes):
            for w in set(words):
                rows.append(vocab.setdefault(w, len(vocab)))
                cols.append(code)
        counts = np.zeros((len(vocab), self.n_codes_), np.float32)
        np.add.at(counts, (rows, cols), 1.0)
        totals = counts.sum(axis=1, keepdims=True)
        # Dense, because a type-ahead user sends one title at a time: a row gather beats any
        # sparse product there. ~20k words x 353 codes is tens of MB at most.
        table = (counts + self.alpha * self.prior_) / (totals + self.alpha)
        return vocab, table.astype(np.float32)

    def fit(self, titles: Sequence[str], quals: Sequence[str], codes: Sequence[int], n_codes: int) -> "WordCodeStage":
        """``titles``/``quals`` normalised; ``codes`` integer code indices (0..n_codes-1)."""
        codes = np.asarray(codes)
        self.n_codes_ = n_codes
        prior = np.bincount(codes, minlength=n_codes).astype(np.float64) + 1.0
        self.prior_ = (prior / prior.sum()).astype(np.float32)
        heads, mods = zip(*(_split(t) for t in titles)) if len(titles) else ((), ())
        self.head_vocab_, self.head_ = self._table([[h] for h in heads], codes)
        self.mod_vocab_, self.mod_ = self._table(list(mods), codes)
        self.ctx_vocab_, self.ctx_ = self._table([q.split() for q in quals], codes)
        return self

    def _lookup(self, docs: Sequence[list[str]], vocab: dict, table: np.ndarray) -> np.ndarray:
        """Mean P(code | word) over each doc's known words (0 where none is known)."""
        out = np.zeros((len(docs), self.n_codes_), np.float32)
        for i, words in enumerate(docs):
            ids = [j for j in {vocab.get(w) for w in words} if j is not None]
            if ids:
                out[i] = table[ids].mean(axis=0)
        return out

    def scores(self, titles: Sequence[str], contexts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(head, modifier, context) association matrices, each queries x codes."""
        heads, mods = zip(*(_split(t) for t in titles)) if len(titles) else ((), ())
        return (
            self._lookup([[h] for h in heads], self.head_vocab_, self.head_),
            self._lookup(list(mods), self.mod_vocab_, self.mod_),
            self._lookup([c.split() for c in contexts], self.ctx_vocab_, self.ctx_),
        )
