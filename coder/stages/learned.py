"""What coders decided before: coded survey answers as evidence for new ones.

A coder trained on the index plus a survey's own coded answers beats one trained on the
index alone: answers repeat ("Solicitor", "Police officer"), and coders' conventions ("civil
servant" by grade, "accountant" without a stated qualification) are in their decisions, not
in the index. The stage holds decided answers (the shipped labelled learn part, the answers
a build gives it, and decisions added while running) and proposes the codes of the decided
answers nearest to the query. The ranker learns how far to trust them from cross-fitted
builds, where each fold's answers are judged by the other folds' decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .._order import run_starts
from .base import Pairs, Proposals, Queries, dense_product, top_k_dense

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["LearnedStage"]


class LearnedStage:
    """Nearest decided answers by title, and how their codes were shared out.

    Features: ``l_title`` (share of decided answers with the query's exact title that got
    this code), ``l_count`` (log of how many decided answers have that title), ``l_sim``
    (cosine of the query title to the nearest decided answer with this code), ``l_same``
    (a decided answer with the same title, industry and description got this code),
    ``l_context`` (among decided answers with the query's exact title, the cosine of the
    query's industry and description to the most similar one's, per code: for titles such as
    "director", coders' decisions on similar context are the best guide).
    """

    name = "learned"
    FEATURES = ("l_title", "l_count", "l_sim", "l_same", "l_context")

    def __init__(self, *, k: int = 5, min_score: float = 0.5):
        self.k = k
        self.min_score = min_score

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "LearnedStage":
        self.encoder_ = table.encoder_
        self.code_pos_ = {c: i for i, c in enumerate(table.codes_)}
        self.keys_: list[tuple[str, str, str]] = []
        self.codes_: list[int] = []
        self._vectors: sp.csr_matrix | None = None
        for key, code in zip(table.decided_keys, table.decided_codes):
            self.add(key, code)
        return self

    def add(self, key: tuple[str, str, str], code: str) -> bool:
        """Remember that the normalised answer ``key`` (title, industry, description) was
        coded ``code``; False when the code is not one of this scheme's."""
        pos = self.code_pos_.get(code)
        if pos is None or not key[0]:
            return False
        self.keys_.append(tuple(key))
        self.codes_.append(pos)
        self._index = None
        return True

    def remove(self, key: tuple[str, str, str], code: str) -> bool:
        """Forget one decision added for ``key`` with ``code`` (the latest); False when none."""
        pos = self.code_pos_.get(code)
        for i in range(len(self.keys_) - 1, -1, -1):
            if self.codes_[i] == pos and tuple(self.keys_[i]) == tuple(key):
                del self.keys_[i], self.codes_[i]
                self._index = None
                return True
        return False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # The lookup is kept (a process would otherwise rebuild it on its first title: 80 ms
        # of `coder suggest`); what is derived from it is rebuilt on use.
        state["_index"] = self._lookup() if hasattr(self, "encoder_") else None
        state["_vectors"] = None
        state["_groups"] = None
        state["_vectors_t"] = None
        return state

    def _lookup(self):
        """(title -> code counts, full answer -> codes, title vectors, codes array), rebuilt
        after additions."""
        if getattr(self, "_index", None) is None:
            by_title: dict[str, dict[int, int]] = {}
            by_answer: dict[tuple, set[int]] = {}
            contexts: dict[str, list[int]] = {}  # title -> rows of self.keys_
            for row, (key, code) in enumerate(zip(self.keys_, self.codes_)):
                counts = by_title.setdefault(key[0], {})
                counts[code] = counts.get(code, 0) + 1
                by_answer.setdefault(key, set()).add(code)
                contexts.setdefault(key[0], []).append(row)
            titles = sorted(by_title)
            vectors = self.encoder_.transform(titles) if titles else None
            title_codes = [by_title[t] for t in titles]
            context_vectors = (self.encoder_.transform([f"{k[1]} {k[2]}".strip() for k in self.keys_])
                               if self.keys_ else None)
            self._index = (by_title, by_answer, titles, vectors, title_codes, contexts, context_vectors)
        return self._index

    def _transposed(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        """``vectors.T`` as CSR, kept while the lookup holds the same ``vectors``."""
        cached = getattr(self, "_vectors_t", None)
        if cached is None or cached[0] is not vectors:
            self._vectors_t = cached = (vectors, vectors.T.tocsr())
        return cached[1]

    def _code_groups(self, index: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(code of each (decided title, code) pair, its title column, start of each code's
        run), sorted by code, for the lookup ``index`` (the one the similarities came from)."""
        if getattr(self, "_groups", None) is None or self._groups[0] is not index:
            title_codes = index[4]
            owners = np.array([code for counts in title_codes for code in counts], np.int64)
            columns = np.array([j for j, counts in enumerate(title_codes) for _ in counts], np.int64)
            order = np.argsort(owners, kind="stable")
            owners, columns = owners[order], columns[order]
            starts = np.flatnonzero(run_starts(owners))
            self._groups = (index, owners, columns, starts)
        return self._groups[1:]

    def _evidence(self, queries: Queries):
        key = f"{self.name}:evidence"
        if key not in queries.scratch:
            by_title, by_answer, titles, vectors, title_codes, _, _ = self._lookup()
            if vectors is None or queries.n == 0:
                queries.scratch[key] = None
            else:
                sims = dense_product(queries.vectors("title"), self._transposed(vectors))
                queries.scratch[key] = (sims, top_k_dense(sims, self.k, min_score=self.min_score))
        return queries.scratch[key]

    def propose(self, queries: Queries) -> Proposals | None:
        evidence = self._evidence(queries)
        if evidence is None:
            return None
        _, top = evidence
        _, _, titles, _, title_codes, _, _ = self._lookup()
        q, c, s = [], [], []
        for i in range(queries.n):
            for j, score in zip(top.idx[i], top.score[i]):
                if j < 0:
                    break
                counts = title_codes[j]
                total = sum(counts.values())
                for code, n in counts.items():
                    q.append(i)
                    c.append(code)
                    s.append(float(score) * n / total)
        if not q:
            return None
        return Proposals("code", np.array(q, np.int64), np.array(c, np.int64), np.array(s, np.float32))

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        n = len(pairs)
        out = {name: np.zeros(n, np.float32) for name in self.FEATURES}
        evidence = self._evidence(queries)
        if evidence is None or n == 0:
            return out
        index = self._lookup()
        by_title, by_answer, titles, _, title_codes, contexts, context_vectors = index
        sims, _ = evidence
        # Best similarity per (query, code) over decided titles carrying that code: the
        # decided titles' columns grouped by code, one maximum per group (reduceat).
        n_codes = len(self.code_pos_)  # positions 0 .. n - 1 (`fit`)
        owners, columns, starts = self._code_groups(index)
        best = np.zeros((queries.n, n_codes), np.float32)
        best[:, owners[starts]] = np.maximum.reduceat(sims[:, columns], starts, axis=1)
        out["l_sim"] = best[pairs.q, pairs.code]
        rows, cols, share, same_rows, same_cols = [], [], [], [], []
        ctx_rows, ctx_cols, ctx_vals = [], [], []
        count = np.zeros(queries.n, np.float32)
        with_context = [qi for qi in range(queries.n) if queries.titles[qi] in contexts
                        and (queries.industries[qi] or queries.descriptions[qi])]
        if with_context:
            texts = [f"{queries.industries[qi]} {queries.descriptions[qi]}".strip() for qi in with_context]
            query_vectors = self.encoder_.transform(texts)
            for qi, vec in zip(with_context, query_vectors):
                decided_rows = contexts[queries.titles[qi]]
                sim = np.asarray((context_vectors[decided_rows] @ vec.T).todense()).ravel()
                best: dict[int, float] = {}
                for row, value in zip(decided_rows, sim):
                    code = self.codes_[row]
                    best[code] = max(best.get(code, 0.0), float(value))
                for code, value in best.items():
                    ctx_rows.append(qi), ctx_cols.append(code), ctx_vals.append(value)
        for qi, (title, industry, description) in enumerate(zip(queries.titles, queries.industries, queries.descriptions)):
            counts = by_title.get(title)
            if counts:
                total = sum(counts.values())
                count[qi] = np.log1p(total)
                for code, k in counts.items():
                    rows.append(qi), cols.append(code), share.append(k / total)
            for code in by_answer.get((title, industry, description), ()):
                same_rows.append(qi), same_cols.append(code)
        out["l_title"] = _read(rows, cols, share, n_codes, pairs)
        out["l_count"] = count[pairs.q]
        out["l_same"] = _read(same_rows, same_cols, [1.0] * len(same_rows), n_codes, pairs)
        out["l_context"] = _read(ctx_rows, ctx_cols, ctx_vals, n_codes, pairs)
        return out


def _read(rows: list[int], cols: list[int], values: list[float], n_codes: int, pairs: Pairs) -> np.ndarray:
    """The value at each pair's (query, code) among the unique cells (rows, cols), else 0: a
    sparse-matrix lookup without building the matrix (which cost more than the work)."""
    out = np.zeros(len(pairs), np.float32)
    if not rows or not len(pairs):
        return out
    keys = np.asarray(rows, np.int64) * n_codes + np.asarray(cols, np.int64)
    order = np.argsort(keys)
    keys, vals = keys[order], np.asarray(values, np.float32)[order]
    wanted = np.asarray(pairs.q, np.int64) * n_codes + np.asarray(pairs.code, np.int64)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    hit = keys[pos] == wanted
    out[hit] = vals[pos[hit]]
    return out
