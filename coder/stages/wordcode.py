"""Word-to-code association tables: how strongly each word points at each code.

Job titles are head-final ("bookshop *manager*"): the head names the occupation family, the
modifiers and the industry pick the unit group. Separate smoothed tables P(code | word) for
head words, modifier words, qualifier (industry) words and all title words let the ranker
weigh them differently, which one linear model over all words cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .base import Pairs, Queries, segments

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["WordCodeStage"]


def _split(title: str) -> tuple[str, list[str]]:
    words = title.split()
    return (words[-1], words[:-1]) if words else ("", [])


class WordCodeStage:
    """Per-code association scores of the query's words (describes, never proposes).

    Features: ``w_head`` (the title's last word), ``w_mod`` (its other words), ``w_ctx`` (the
    industry's words against index qualifiers), ``w_desc`` (the description's words against
    index title words).

    Parameters
    ----------
    alpha
        Additive smoothing towards the code prior; rare words get flatter rows.
    """

    name = "wordcode"
    FEATURES = ("w_head", "w_mod", "w_ctx", "w_desc")

    def __init__(self, *, alpha: float = 2.0):
        self.alpha = alpha

    def _table(self, docs: Sequence[list[str]], codes: np.ndarray) -> tuple[dict, np.ndarray]:
        """(vocabulary, dense P(code | word) table: words x codes); words numbered in sorted
        order so the same data always gives the same table."""
        vocab = {w: i for i, w in enumerate(sorted({w for words in docs for w in words}))}
        rows, cols = [], []
        for words, code in zip(docs, codes):
            for w in set(words):
                rows.append(vocab[w])
                cols.append(code)
        counts = np.zeros((len(vocab), self.n_codes_), np.float32)
        np.add.at(counts, (rows, cols), 1.0)
        totals = counts.sum(axis=1, keepdims=True)
        # Dense, because a type-ahead user sends one title at a time: a row gather beats any
        # sparse product there. ~20k words x 353 codes is tens of MB at most.
        table = (counts + self.alpha * self.prior_) / (totals + self.alpha)
        return vocab, table.astype(np.float32)

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "WordCodeStage":
        codable = np.flatnonzero(table.codable_)
        titles = [table.entry_title_norm_[i] for i in codable]
        quals = [table.entry_qual_norm_[i] for i in codable]
        codes = table.entry_code_[codable]
        self.n_codes_ = table.n_codes
        prior = np.bincount(codes, minlength=self.n_codes_).astype(np.float64) + 1.0
        self.prior_ = (prior / prior.sum()).astype(np.float32)
        heads, mods = zip(*(_split(t) for t in titles)) if len(titles) else ((), ())
        self.head_vocab_, self.head_ = self._table([[h] for h in heads], codes)
        self.mod_vocab_, self.mod_ = self._table(list(mods), codes)
        self.ctx_vocab_, self.ctx_ = self._table([q.split() for q in quals], codes)
        self.word_vocab_, self.word_ = self._table([t.split() for t in titles], codes)
        return self

    def _at(self, docs: Sequence[list[str]], vocab: dict, table: np.ndarray, q: np.ndarray,
            c: np.ndarray) -> np.ndarray:
        """Mean P(code ``c`` | word) over the known words of doc ``q``, for every pair (0 where
        none is known): computed at the pairs only, never a (docs x codes) array."""
        ids = [sorted({j for j in (vocab.get(w) for w in words) if j is not None}) for words in docs]
        lengths = np.fromiter((len(x) for x in ids), np.int64, len(ids))
        if not lengths.any():  # no known word (no industry, no description): all 0, as below
            return np.zeros(len(q), np.float32)
        flat = np.fromiter((j for x in ids for j in x), np.int64, int(lengths.sum()))
        per_pair = lengths[q]
        pos = segments((np.cumsum(lengths) - lengths)[q], per_pair)
        pair = np.repeat(np.arange(len(q), dtype=np.int64), per_pair)
        sums = np.bincount(pair, weights=table[flat[pos], np.repeat(c, per_pair)], minlength=len(q))
        return (sums / np.maximum(per_pair, 1)).astype(np.float32)

    def propose(self, queries: Queries) -> None:
        return None

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        heads, mods = zip(*(_split(t) for t in queries.titles)) if queries.n else ((), ())
        q, c = np.asarray(pairs.q, np.int64), np.asarray(pairs.code, np.int64)
        return {
            "w_head": self._at([[h] for h in heads], self.head_vocab_, self.head_, q, c),
            "w_mod": self._at(list(mods), self.mod_vocab_, self.mod_, q, c),
            "w_ctx": self._at([x.split() for x in queries.industries], self.ctx_vocab_, self.ctx_, q, c),
            "w_desc": self._at([x.split() for x in queries.descriptions], self.word_vocab_, self.word_, q, c),
        }
