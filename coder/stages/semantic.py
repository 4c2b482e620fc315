"""Meaning, not letters: static sentence-model embeddings of titles, descriptions and context.

"Till worker" and "check-out operator" share no letters; "looks after the grounds" is a
groundsman. The vectors (`coder.embed`, distilled from all-MiniLM-L6-v2) put such texts near
each other. The stage proposes the index titles nearest in meaning to the query's title
(for titles no earlier stage matched well) and to its description, and describes every
candidate by cosine similarities: title to the candidate's title and to the code's titles
on average, description to the code's titles and to its unit-group description, and the
industry to the explaining entry's qualifier.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..embed import StaticEmbedder
from .base import Pairs, Proposals, Queries, TopK, block_rows, top_k_above, top_k_rescored
from .description import code_summaries

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["SemanticStage"]


# More than the factorised search's cosines ever differ from the stored vectors' (`_dots`):
# float16 storage moves a unit vector's cosine by at most 2**-11 (4.9e-4), float32 sums by
# far less; the largest difference over the dev index's titles searched for one another is
# 1.4e-4 (a test checks a bound of a quarter of this).
_SLACK = 2e-3
# Vectors up to which a search goes one at a time through the tokens (`SemanticStage._search`).
_FEW = 6


@lru_cache(maxsize=1)
def _embedder() -> StaticEmbedder:
    """The shipped vectors, read once per process for fitting; a fitted stage keeps them, so
    coding never reads (and decompresses) the shipped file."""
    return StaticEmbedder.load()


def _normalised(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-9)).astype(np.float32)


def _dots(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray, *, chunk: int = 8192) -> np.ndarray:
    """``a[ia[i]] . b[ib[i]]`` for every i.

    One dot product per pair, in pieces (a gathered vector per pair is hundreds of floats, and
    a batch has hundreds of thousands of pairs): never a matrix product, whose rounding
    depends on how many queries share the batch, so a title gets the same number alone and
    in a batch of thousands.
    """
    out = np.zeros(len(ia), np.float32)
    for lo in range(0, len(ia), chunk):
        # Float16-stored rows are read as float32 (exactly) before the products.
        out[lo:lo + chunk] = np.einsum("ij,ij->i", a[ia[lo:lo + chunk]],
                                       b[ib[lo:lo + chunk]].astype(np.float32, copy=False))
    return out


def _at(queries: np.ndarray, codes: np.ndarray, pairs: Pairs) -> np.ndarray:
    """Cosine of query ``pairs.q``'s vector with code ``pairs.code``'s, for every pair."""
    return _dots(queries, pairs.q, codes, pairs.code)


class SemanticStage:
    """Nearest index titles by embedding cosine, and semantic similarity features.

    Features: ``sem_title`` (query title vs the candidate's index title), ``sem_code``
    (query title vs the mean of the code's title vectors), ``sem_desc`` (description vs the
    code's titles), ``sem_desc_group`` (description vs the code's unit-group text),
    ``sem_ind`` (industry vs the explaining entry's qualifier). 0 where a text is absent.
    """

    name = "semantic"
    FEATURES = ("sem_title", "sem_code", "sem_desc", "sem_desc_group", "sem_ind")

    def __init__(self, *, k: int = 10, desc_k: int = 5, gate: float = 0.9, min_score: float = 0.5,
                 chunk: int = 512):
        self.k = k
        self.desc_k = desc_k
        self.gate = gate
        self.min_score = min_score
        self.chunk = chunk

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "SemanticStage":
        emb = self.embedder_ = _embedder()
        titles = emb.embed(table.titles_)
        # Float16 in the model file (half the size); each use converts the rows it reads.
        self.titles16_ = titles.astype(np.float16)
        # The search's factors (`_by_tokens`): each title's token counts over the tokens
        # the index uses, and one over its vector's length before normalising.
        bag = emb.bag(table.titles_)
        self.tokens_, used = np.unique(bag.indices, return_inverse=True)
        self.title_bag_ = sp.csr_matrix((bag.data, used.astype(np.int32), bag.indptr.astype(np.int32)),
                                        shape=(bag.shape[0], len(self.tokens_)))
        lengths = np.linalg.norm(self.title_bag_ @ self.token_vecs_, axis=1)
        self.title_scale_ = np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0).astype(np.float32)
        codable = np.flatnonzero(table.codable_)
        sums = np.zeros((table.n_codes, titles.shape[1]), np.float64)
        np.add.at(sums, table.entry_code_[codable], titles[table.entry_title_[codable]])
        self.codes_ = _normalised(sums)
        self.groups_ = emb.embed(code_summaries(table))
        quals, self.entry_qual_ = np.unique(np.array(table.entry_qual_norm_, dtype=object), return_inverse=True)
        self.quals_ = emb.embed([str(q) for q in quals])
        # A title's code and explaining entry, for description proposals.
        self.title_code_, self.title_entry_ = table.title_defaults()
        return self

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for derived in ("_token_vecs", "_titles32", "_qual_known"):
            state.pop(derived, None)
        return state

    @property
    def qual_known_(self) -> np.ndarray:
        """Whether each qualifier has a vector (any known word): derived once, not per batch."""
        if getattr(self, "_qual_known", None) is None:
            self._qual_known = np.abs(self.quals_).sum(axis=1) > 0
        return self._qual_known

    @property
    def token_vecs_(self) -> np.ndarray:
        """The weighted vectors of `tokens_` (float32), from the embedder on first use."""
        if getattr(self, "_token_vecs", None) is None:
            self._token_vecs = self.embedder_.weighted(self.tokens_)
        return self._token_vecs

    @property
    def titles32_(self) -> np.ndarray:
        """The title vectors as float32, made on first use by a search for many queries."""
        if getattr(self, "_titles32", None) is None:
            self._titles32 = self.titles16_.astype(np.float32)
        return self._titles32

    def _search(self, vectors: np.ndarray, k: int, *, few: bool) -> TopK:
        """Each vector's k nearest index titles with a cosine above ``min_score`` (capped at 1:
        float16-stored vectors may round past it), ties by title number.

        Many vectors: one product with the title vectors, whose cosines, to the last bit, are
        what the builds learned from. A few (``few``: the whole call has only a few, as when a
        title is typed alone; BLAS takes 0.4 ms for one and 1.4-1.6 ms for 2-16): each through
        the tokens (`_by_tokens`, 0.2 ms), then the titles that may rank re-scored one dot
        product each (`_dots`, `top_k_rescored`): the product's titles, with cosines that may
        differ from its in the last bit.
        """
        if not few:
            return top_k_above(vectors @ self.titles32_.T, k, self.min_score, cap=1.0)
        approx = np.stack([self._by_tokens(vector) for vector in vectors])
        return top_k_rescored(approx, lambda r, c: _dots(vectors, r, self.titles16_, c), k, self.min_score,
                              slack=_SLACK, cap=1.0)

    def _by_tokens(self, vector: np.ndarray) -> np.ndarray:
        """Cosines of ``vector`` with every index title, within `_SLACK` of `_dots`'s.

        A title's vector is its weighted token vectors summed, then scaled to length one, so
        its cosine with q is the sum over its tokens of (token . q), scaled: a product with
        the 6,400 token vectors the index uses, then with the sparse title-token counts. That
        reads a third of the bytes of a product with the 20,000 title vectors, and needs no
        float32 copy of them.
        """
        return self.title_bag_ @ (self.token_vecs_ @ vector) * self.title_scale_

    def _vectors(self, queries: Queries, name: str) -> np.ndarray:
        key = f"{self.name}:{name}"
        if key not in queries.scratch:
            queries.scratch[key] = self.embedder_.embed(queries.texts(name))
        return queries.scratch[key]  # type: ignore[return-value]

    def _nearest(self, vectors: np.ndarray, rows: np.ndarray, k: int) -> Proposals:
        qs, ts, ss = [], [], []
        step = block_rows(len(self.titles16_), 4, self.chunk)
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            p = Proposals.from_topk(self._search(vectors[block], k, few=len(rows) <= _FEW), "title", block)
            qs.append(p.q), ts.append(p.target), ss.append(p.score)
        if not qs:
            z = np.zeros(0, np.int64)
            return Proposals("title", z, z, np.zeros(0, np.float32))
        return Proposals("title", np.concatenate(qs), np.concatenate(ts), np.concatenate(ss))

    def propose(self, queries: Queries) -> list[Proposals]:
        # Titles already matched well by letters gain nothing from a search by meaning.
        rows = np.flatnonzero((queries.best_title < self.gate) & np.array([bool(t) for t in queries.titles], bool))
        by_title = self._nearest(self._vectors(queries, "title"), rows, self.k)
        by_desc = self._nearest(self._vectors(queries, "description"), np.flatnonzero(queries.has_description),
                                self.desc_k)
        # What they mainly do is evidence for a code, not a spelling of the title.
        ok = self.title_code_[by_desc.target] >= 0
        return [by_title, Proposals("code", by_desc.q[ok], self.title_code_[by_desc.target[ok]], by_desc.score[ok],
                                    entry=self.title_entry_[by_desc.target[ok]])]

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        n = len(pairs)
        title = self._vectors(queries, "title")
        out = {name: np.zeros(n, np.float32) for name in self.FEATURES}
        if n == 0:
            return out
        # The float32 copy where a search for many titles made one (a batch: one gather, no
        # conversion), else the float16 rows: the same numbers either way.
        stored = getattr(self, "_titles32", None)
        t_sim = _dots(title, pairs.tq, self.titles16_ if stored is None else stored, pairs.tt)
        out["sem_title"] = pairs.from_titles(np.maximum(t_sim, 0.0))
        out["sem_code"] = _at(title, self.codes_, pairs)
        if queries.has_description.any():
            desc = self._vectors(queries, "description")
            has = queries.has_description[pairs.q]
            out["sem_desc"] = np.where(has, _at(desc, self.codes_, pairs), 0.0)
            out["sem_desc_group"] = np.where(has, _at(desc, self.groups_, pairs), 0.0)
        if queries.has_industry.any() and len(pairs.e_pair):
            ind = self._vectors(queries, "industry")
            e_q = pairs.tq[pairs.e_tp]
            qual = self.entry_qual_[pairs.e_entry]
            has = queries.has_industry[e_q] & self.qual_known_[qual]
            out["sem_ind"] = pairs.from_entries(np.where(has, _dots(ind, e_q, self.quals_, qual), 0.0))
        return {k: np.asarray(v, np.float32) for k, v in out.items()}
