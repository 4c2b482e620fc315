"""Word-to-code association tables: how strongly each word points at each code.

Job titles are head-final ("bookshop *manager*"): the head names the occupation family, the
modifiers and the industry pick the unit group. Separate smoothed tables P(code | word) for
head words, modifier words and qualifier (industry) words let the ranker weigh them
differently, which one linear model over all words cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

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

    def _table(self, docs: Sequence[list[str]], codes: np.ndarray) -> tuple[dict, sp.csr_matrix, np.ndarray]:
        """(vocabulary, sparse part of P(code | word), weight of the prior per word)."""
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for words, code in zip(docs, codes):
            for w in set(words):
                rows.append(vocab.setdefault(w, len(vocab)))
                cols.append(code)
        counts = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                               shape=(len(vocab), self.n_codes_))
        totals = np.asarray(counts.sum(axis=1)).ravel()
        # P(code | word) = (n(w, c) + alpha * P(c)) / (n(w) + alpha), kept as a sparse part and a
        # per-word prior weight so the table stays sparse; `_lookup` adds the prior back.
        table = sp.csr_matrix(sp.diags(1.0 / (totals + self.alpha)) @ counts, dtype=np.float32)
        return vocab, table, (self.alpha / (totals + self.alpha)).astype(np.float32)

    def fit(self, titles: Sequence[str], quals: Sequence[str], codes: Sequence[int], n_codes: int) -> "WordCodeStage":
        """``titles``/``quals`` normalised; ``codes`` integer code indices (0..n_codes-1)."""
        codes = np.asarray(codes)
        self.n_codes_ = n_codes
        prior = np.bincount(codes, minlength=n_codes).astype(np.float64) + 1.0
        self.prior_ = (prior / prior.sum()).astype(np.float32)
        heads, mods = zip(*(_split(t) for t in titles)) if len(titles) else ((), ())
        self.head_vocab_, self.head_, self.head_rest_ = self._table([[h] for h in heads], codes)
        self.mod_vocab_, self.mod_, self.mod_rest_ = self._table(list(mods), codes)
        self.ctx_vocab_, self.ctx_, self.ctx_rest_ = self._table([q.split() for q in quals], codes)
        return self

    def _lookup(self, docs: Sequence[list[str]], vocab: dict, table: sp.csr_matrix,
                rest: np.ndarray) -> np.ndarray:
        """Mean P(code | word) over each doc's known words (0 where none is known)."""
        rows, cols = [], []
        for i, words in enumerate(docs):
            for w in set(words):
                j = vocab.get(w)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        n = len(docs)
        incidence = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(vocab)))
        known = np.asarray(incidence.sum(axis=1)).ravel()
        out = (incidence @ table).toarray() + np.outer(incidence @ rest, self.prior_)
        out /= np.maximum(known, 1.0)[:, None]
        return out.astype(np.float32)

    def scores(self, titles: Sequence[str], contexts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(head, modifier, context) association matrices, each queries x codes."""
        heads, mods = zip(*(_split(t) for t in titles)) if len(titles) else ((), ())
        return (
            self._lookup([[h] for h in heads], self.head_vocab_, self.head_, self.head_rest_),
            self._lookup(list(mods), self.mod_vocab_, self.mod_, self.mod_rest_),
            self._lookup([c.split() for c in contexts], self.ctx_vocab_, self.ctx_, self.ctx_rest_),
        )
