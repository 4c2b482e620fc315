"""Candidate stages. Each one answers a batch of normalised queries with a `TopK`:
for every query, up to k row numbers into the thing it was fitted on, best first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TopK", "top_k_dense", "top_k_sparse"]


@dataclass(frozen=True)
class TopK:
    """``idx[i, j]`` is the j-th best row for query i (-1 = none); ``score`` in [0, 1]."""

    idx: np.ndarray  # (n_queries, k) int32
    score: np.ndarray  # (n_queries, k) float32

    @classmethod
    def empty(cls, n: int, k: int) -> "TopK":
        return cls(np.full((n, k), -1, np.int32), np.zeros((n, k), np.float32))


def top_k_dense(scores: np.ndarray, k: int, min_score: float = 0.0) -> TopK:
    """Best k columns per row of a dense (chunk of a) score matrix."""
    n, m = scores.shape
    k_eff = min(k, m)
    out = TopK.empty(n, k)
    if n == 0 or m == 0:
        return out
    scores = np.asarray(scores, dtype=np.float32)  # negating unsigned ints would wrap around
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    sc = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    keep = sc > min_score
    out.idx[:, :k_eff] = np.where(keep, idx, -1)
    out.score[:, :k_eff] = np.where(keep, sc, 0.0)
    return out


def top_k_sparse(matrix, k: int) -> TopK:
    """Best k stored entries per row of a CSR matrix, without densifying it."""
    matrix = matrix.tocsr()
    n = matrix.shape[0]
    out = TopK.empty(n, k)
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    counts = np.diff(indptr)
    if data.size == 0:
        return out
    # Sort every row's entries by descending score in one pass: key = (row, -score).
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((-data, rows))
    rank = np.arange(data.size) - np.repeat(indptr[:-1], counts)
    ranked_rows, ranked_rank = rows[order], rank
    keep = ranked_rank < k
    out.idx[ranked_rows[keep], ranked_rank[keep]] = indices[order][keep]
    out.score[ranked_rows[keep], ranked_rank[keep]] = data[order][keep]
    return out
