"""What every stage shares: the `Stage` protocol, the batch of `Queries` it reads, the
`Proposals` it makes and the candidate `Pairs` it describes with named feature columns.

A stage is fitted on an `IndexTable` (the coding index for one scheme). For a batch of
queries it may *propose* candidates (index titles, each bringing all its entries, or codes
with the entry that explains them) and it *describes* every candidate (query, code) pair by
named feature columns, whoever proposed it. The generator (`coder.candidates`) runs the
stages in the order of `coder.stages.STAGES`; the ranker learns from the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from .._order import float32_order, run_starts

try:  # SciPy's own sparse-product routine, called without its per-call Python (see `csr_product`)
    from scipy.sparse._sparsetools import csr_matmat, csr_matmat_maxnnz
except ImportError:  # pragma: no cover - another SciPy layout: the public product
    csr_matmat = csr_matmat_maxnnz = None

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["Stage", "Queries", "Proposals", "Pairs", "TopK", "top_k_above", "top_k_dense", "top_k_sparse",
           "rank_desc", "group_max", "csr_product", "dense_product", "rowwise_dot", "segments"]


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
    row = np.arange(n)[:, None]  # indexing by it is take_along_axis without its Python
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = scores[row, part]
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx, sc = part[row, order], part_scores[row, order]
    keep = sc > min_score
    out.idx[:, :k_eff] = np.where(keep, idx, -1)
    out.score[:, :k_eff] = np.where(keep, sc, 0.0)
    return out


def top_k_above(scores: np.ndarray, k: int, min_score: float, *, cap: float | None = None) -> TopK:
    """`top_k_dense` for a dense block where few scores pass ``min_score``: only those are
    ranked (each row's top k by descending score, ties by column), not every column. 15x
    faster for the semantic search, where a title has ~140 of 20k index titles above 0.5.
    ``cap``: scores are first clipped to at most it (done on the few that pass, not the block)."""
    scores = np.asarray(scores, np.float32)
    if cap is not None and min_score >= cap:
        return top_k_at(scores, np.zeros(0, np.int64), k)
    # min(s, cap) > min_score exactly when s > min_score, as min_score < cap.
    return top_k_at(scores, nonzero_bytes((scores > min_score).view(np.uint8)), k, cap=cap)


def top_k_rescored(approx: np.ndarray, exact: Callable[[np.ndarray, np.ndarray], np.ndarray], k: int,
                   min_score: float, *, slack: float, cap: float | None = None) -> TopK:
    """`top_k_above` of exact scores that are costly to compute for every column, from a dense
    block of ``approx`` scores each less than ``slack`` from its exact one; ``exact(rows,
    cols)`` gives the exact scores of those entries. The same k, in the same order.

    Only entries that may rank are scored exactly: above ``min_score - slack``, and not below
    their row's k-th best approximate score less twice the slack (the row's k-th best exact
    score is at least that approximate one less the slack, and an entry reaching it is
    approximately at most the slack below). Clipping to ``cap`` moves no two scores apart.
    """
    approx = np.asarray(approx, np.float32)
    n, width = approx.shape
    pos = nonzero_bytes((approx > np.float32(min_score - slack)).view(np.uint8))
    rows, cols = np.divmod(pos, width)
    near = approx.reshape(-1)[pos]
    if cap is not None:
        near = np.minimum(near, np.float32(cap))
    kth = top_k_entries(rows, cols, near, n, k)
    floor = np.where(kth.idx[:, k - 1] >= 0, kth.score[:, k - 1].astype(np.float64) - 2 * slack, -np.inf)
    may = near >= floor[rows]
    rows, cols = rows[may], cols[may]
    scores = np.asarray(exact(rows, cols), np.float32)
    above = scores > min_score
    rows, cols, scores = rows[above], cols[above], scores[above]
    return top_k_entries(rows, cols, scores if cap is None else np.minimum(scores, np.float32(cap)), n, k)


def top_k_at(scores: np.ndarray, pos: np.ndarray, k: int, *, cap: float | None = None) -> TopK:
    """Best k per row of a dense 2-D block among its flat positions ``pos`` (ascending), ties
    by column: the rest of the block never competes. ``cap``: clip those scores to at most it."""
    n, width = scores.shape
    if width == 0:
        return TopK.empty(n, k)
    rows, cols = np.divmod(pos, width)
    data = scores.reshape(-1)[pos]
    return top_k_entries(rows, cols, data if cap is None else np.minimum(data, np.float32(cap)), n, k)


def top_k_sparse(matrix, k: int) -> TopK:
    """Best k stored entries per row of a CSR matrix, without densifying it."""
    matrix = matrix.tocsr()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return top_k_entries(rows, matrix.indices, matrix.data, matrix.shape[0], k)


_EXACT_IN_FLOAT32 = tuple(np.dtype(t) for t in (np.float32, np.float16, np.uint8, np.int8, np.uint16, np.int16))


def _exact_scores(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.dtype not in _EXACT_IN_FLOAT32:
        raise ValueError(f"scores must be float32 or narrower, not {data.dtype}: they would be rounded")
    return data


def _row_then_descending(rows: np.ndarray, data: np.ndarray) -> np.ndarray:
    """uint64 keys ordered by row, then by float32 ``data`` descending (-0.0 equal to 0.0)."""
    data = _exact_scores(data)
    return (np.asarray(rows).astype(np.uint64) << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - float32_order(data))


# Rows with many more entries than k are first cut down to their likely best (`_may_rank`):
# sorting a retrieval block's ~300 entries a row took as long as finding them.
_CUT_ABOVE = 4  # entries per row (times k) from which the cut pays
_CUT_BINS = 256


def _may_rank(rows: np.ndarray, data: np.ndarray, n: int, k: int) -> np.ndarray | None:
    """Which entries may be among their row's k best: every entry in the value bins from the
    row's k-th best up, so the k best and all their ties are kept, in order. None: keep all.

    Values are binned by a monotone map (equal values share a bin, a larger one never gets
    a lower bin), so the bin of a row's k-th best value is the highest bin with k entries at
    or above it.
    """
    lo, hi = float(data.min()), float(data.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return None
    bins = ((data.astype(np.float64) - lo) * ((_CUT_BINS - 1) / (hi - lo))).astype(np.int64)
    np.clip(bins, 0, _CUT_BINS - 1, out=bins)  # monotone still; guards rounding at the ends
    counts = np.bincount(np.asarray(rows, np.int64) * _CUT_BINS + bins, minlength=n * _CUT_BINS)
    at_or_above = counts.reshape(n, _CUT_BINS)[:, ::-1].cumsum(axis=1) >= k  # from the top bin down
    # A row with fewer than k entries keeps them all (cut at bin 0).
    cut = np.where(at_or_above[:, -1], _CUT_BINS - 1 - at_or_above.argmax(axis=1), 0)
    return bins >= cut[rows]


def top_k_entries(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, n: int, k: int) -> TopK:
    """Best k of the entries (``rows[i]``, ``cols[i]``, ``data[i]``) per row of an n-row matrix,
    the entries given row by row: ties keep their given order."""
    out = TopK.empty(n, k)
    if len(data) == 0:
        return out
    if n == 1:  # one title: its k best by one partition, then a stable sort of those
        data, cols = _exact_scores(data).astype(np.float32, copy=False), np.asarray(cols)
        if len(data) > k:
            # Every entry at or above the k-th best value, ties included, in given order.
            keep = np.flatnonzero(data >= np.partition(data, len(data) - k)[len(data) - k])
            cols, data = cols[keep], data[keep]
        order = np.argsort(-data, kind="stable")[:k]
        out.idx[0, :len(order)], out.score[0, :len(order)] = cols[order], data[order]
        return out
    if len(data) > _CUT_ABOVE * k * n:
        data = np.asarray(data)
        keep = _may_rank(rows, data, n, k)
        if keep is not None:
            rows, cols, data = rows[keep], cols[keep], data[keep]
    # Sort every row's entries by descending score in one pass: one stable sort of a uint64
    # key (row, then score descending), the order `np.lexsort((-data, rows))` gives, 3x faster.
    order = np.argsort(_row_then_descending(rows, data), kind="stable")
    ranked_rows = rows[order]
    starts = np.searchsorted(ranked_rows, np.arange(n))
    rank = np.arange(len(data)) - starts[ranked_rows]
    keep = rank < k
    out.idx[ranked_rows[keep], rank[keep]] = cols[order][keep]
    out.score[ranked_rows[keep], rank[keep]] = data[order][keep]
    return out


def nonzero_bytes(block: np.ndarray) -> np.ndarray:
    """Flat positions of the non-zero values of a uint8 array, in order: scanned eight bytes at
    a time (a block of edit-distance scores is mostly zeros; NumPy's byte-wise scan is 10x slower)."""
    if block.dtype.itemsize != 1:
        raise ValueError(f"nonzero_bytes reads one-byte values, not {block.dtype}")
    flat = np.ascontiguousarray(block).reshape(-1)
    whole = len(flat) - len(flat) % 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    pos = (words[:, None] * 8 + np.arange(8)).ravel()
    pos = pos[flat[pos] != 0]
    tail = whole + np.flatnonzero(flat[whole:])
    return np.concatenate([pos, tail]) if len(tail) else pos


# Up to this many query rows, `rowwise_dot` gathers in NumPy (SciPy's per-call overhead costs
# more than the work for one title) and `dense_product` leaves the product to SciPy.
SMALL_ROWS = 16


# A dense (queries x index titles) block is at most this big: the top-k selection over it makes
# several same-sized temporaries (and an int64 one twice the size), which set a batch's peak memory.
BLOCK_BYTES = 8 * 2**20


def block_rows(width: int, itemsize: int, limit: int) -> int:
    """Query rows per dense block of ``width`` columns of ``itemsize`` bytes: as many as fit in
    `BLOCK_BYTES`, at most ``limit``, but never fewer than 16 (or ``limit`` when it is smaller).
    Each row's top-k is chosen on its own, so the block size decides memory and speed; a
    matrix product's last bits can still depend on it (see `coder.stages.semantic`)."""
    return max(min(16, limit), min(limit, BLOCK_BYTES // max(width * itemsize, 1)))


def segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] .. starts[i] + lengths[i] - 1`` for every i, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)


_DIRECT_DENSE = 1 << 16  # (rows x columns) up to which `csr_product` allocates for a dense result


def csr_product(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``indptr, indices, data`` of the CSR product ``a @ b``, as SciPy computes it.

    For float32 CSR matrices with 32-bit indices, SciPy's own routine (``csr_matmat``) is called
    directly: the same C loop, so the same entries in the same order to the bit, without the
    checks and index-type choices of ``a @ b`` and the result object's validation, which for one
    title cost more than the product (each title makes three to five). Anything else: ``a @ b``.
    Each row's entries come in SciPy's order (not sorted by column); there are no zeros.
    """
    if (csr_matmat is not None and sp.isspmatrix_csr(a) and sp.isspmatrix_csr(b) and a.shape[1] == b.shape[0]
            and a.dtype == np.float32 and b.dtype == np.float32
            and a.indptr.dtype == a.indices.dtype == b.indptr.dtype == b.indices.dtype == np.int32):
        n, m = a.shape[0], b.shape[1]
        # Room for every entry: a dense result's size when small (SciPy's exact count, a pass as
        # long as the product, is then not worth it), else that count.
        size = n * m if n * m <= _DIRECT_DENSE else csr_matmat_maxnnz(n, m, a.indptr, a.indices, b.indptr, b.indices)
        if size < 2**31:
            indptr = np.empty(n + 1, np.int32)
            indices, data = np.empty(size, np.int32), np.empty(size, np.float32)
            csr_matmat(n, m, a.indptr, a.indices, a.data, b.indptr, b.indices, b.data, indptr, indices, data)
            return indptr, indices[: indptr[-1]], data[: indptr[-1]]
    c = sp.csr_matrix(a @ b)
    return c.indptr, c.indices, c.data


def dense_product(a, b) -> np.ndarray:
    """``(a @ b).toarray()`` as float32 for float32 CSR ``a`` and CSR ``b``, to the last bit: the
    float32 products are added into each (i, column) one after another in ``a``'s stored order,
    so a title coded alone gets exactly the features it gets in a batch. Few rows: SciPy's own
    product (`csr_product`; for one title's ~100 stored values over a classifier's rows it beat
    gathering in NumPy by a third on average, threefold on long answers); many:
    `_dense_rows_product`."""
    if a.shape[0] > SMALL_ROWS:
        return _dense_rows_product(a, b)
    indptr, indices, data = csr_product(a, b)
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    # Each (row, column) appears once, never as a zero: placed, as SciPy's toarray adds it to 0.
    out[np.repeat(np.arange(a.shape[0]), np.diff(indptr)), indices] = data
    return out


def _dense_rows_product(a, b) -> np.ndarray:
    """``(a @ b).toarray()`` for many rows, to the last bit: when the rows of ``b`` that ``a``
    uses fit in `BLOCK_BYTES` dense, it is sparse @ dense over just those rows (1.5-2x faster
    than SciPy's sparse @ sparse, which builds a sparse result only to densify it). Both add
    each output's float32 products one after another in ``a``'s stored order; a product with
    a zero ``b`` entry that the sparse path skips adds nothing, save possibly a zero's sign."""
    lo, hi = a.indptr[0], a.indptr[-1]
    used, local = np.unique(a.indices[lo:hi], return_inverse=True)
    if len(used) * b.shape[1] * 4 > BLOCK_BYTES or a.dtype != np.float32 or b.dtype != np.float32:
        return np.asarray((a @ b).toarray(), np.float32)
    narrow = sp.csr_matrix((a.data[lo:hi], local.astype(np.int32), (a.indptr - lo).astype(np.int32)),
                           shape=(a.shape[0], len(used)))
    return np.asarray(narrow @ b[used].toarray(), np.float32)


def rowwise_dot(a, ia: np.ndarray, b, ib: np.ndarray) -> np.ndarray:
    """``a[ia[i]] . b[ib[i]]`` for every i (CSR ``a`` and ``b`` with sorted indices), without
    forming a dense matrix of ``b``. Few rows of ``a``: computed in NumPy with SciPy's
    arithmetic in SciPy's order, so the numbers are the same."""
    if len(ia) == 0:
        return np.zeros(0, np.float32)
    rows = np.unique(ia)
    if len(rows) > SMALL_ROWS:
        return np.asarray(a[ia].multiply(b[ib]).sum(axis=1), dtype=np.float32).ravel()
    # The few query rows of ``a`` densified; each b row's stored values look theirs up.
    lengths = (a.indptr[rows + 1] - a.indptr[rows]).astype(np.int64)
    pos = segments(a.indptr[rows].astype(np.int64), lengths)
    dense = np.zeros((len(rows), a.shape[1]), a.dtype)
    dense[np.repeat(np.arange(len(rows)), lengths), a.indices[pos]] = a.data[pos]
    local = np.searchsorted(rows, ia)
    b_len = (b.indptr[ib + 1] - b.indptr[ib]).astype(np.int64)
    pos = segments(b.indptr[ib].astype(np.int64), b_len)
    pair = np.repeat(np.arange(len(ib), dtype=np.int64), b_len)
    products = dense[local[pair], b.indices[pos]] * b.data[pos]  # float32, as SciPy multiplies
    # SciPy's row sum of float32 accumulates in float64, in index order: so does bincount.
    return np.bincount(pair, weights=products, minlength=len(ib)).astype(np.float32)


def _row_slice(m: sp.csr_matrix, lo: int, hi: int) -> sp.csr_matrix:
    """``m[lo:hi]`` for CSR ``m``, the same arrays without SciPy's indexing machinery (a few
    times the cost of the copy for one title's rows)."""
    indptr = m.indptr[lo:hi + 1]
    start, end = indptr[0], indptr[-1]
    return sp.csr_matrix((m.data[start:end], m.indices[start:end], indptr - start), shape=(hi - lo, m.shape[1]))


def rank_desc(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-based rank of each value within its group, largest first, ties sharing the best rank."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.float32)
    order = np.lexsort((-values, group))
    g, v = group[order], values[order]
    pos = np.arange(n)
    new_group = run_starts(g)
    new_value = new_group | run_starts(v)
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_value, pos, 0))
    rank = np.empty(n, np.float32)
    rank[order] = run_start - group_start + 1
    return rank


def group_max(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-row maximum of ``values`` over the row's group (groups need not be sorted)."""
    out = np.full(n_groups, -np.inf, np.float32)
    np.maximum.at(out, group, values)
    return out[group]


class Queries:
    """A batch of read answers (normalised strings) and the representations several stages
    share, each computed once on first use.

    ``best_title[i]`` is the best score any title-proposing stage has given query i so far:
    later stages may skip queries that are already well matched (fuzzy matching does).
    """

    FIELDS = ("title", "industry", "description", "full")

    def __init__(self, titles: Sequence[str], industries: Sequence[str], descriptions: Sequence[str],
                 table: "IndexTable"):
        self.titles = list(titles)
        self.industries = list(industries)
        self.descriptions = list(descriptions)
        self.table = table
        self.n = len(self.titles)
        self.has_industry = np.array([bool(x) for x in self.industries], bool)
        self.has_description = np.array([bool(x) for x in self.descriptions], bool)
        self.best_title = np.zeros(self.n, np.float32)
        self.scratch: dict[str, object] = {}  # per-batch results a stage keeps for `features`
        self._vectors: dict[str, sp.csr_matrix] = {}

    def texts(self, name: str) -> list[str]:
        """The batch's strings for ``name``: title, industry, description, or full (title and
        industry together)."""
        if name == "full":
            return [f"{t} {c}".strip() for t, c in zip(self.titles, self.industries)]
        return {"title": self.titles, "industry": self.industries, "description": self.descriptions}[name]

    def vectors(self, name: str) -> sp.csr_matrix:
        """TF-IDF rows (the table's shared encoder) of `texts(name)`; empty texts give zero rows."""
        if name not in self._vectors:
            if not self._vectors:
                self._encode()
            if name not in self._vectors:  # a field no query has: zero rows, made when asked for
                self._vectors[name] = self._zero_rows()
        return self._vectors[name]

    def _zero_rows(self) -> sp.csr_matrix:
        return sp.csr_matrix((np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(self.n + 1, np.int32)),
                             shape=(self.n, self.table.encoder_.n_features_))

    def _encode(self) -> None:
        """Every field's rows in one encoder call: stages use them all, and for one type-ahead
        title four calls cost more than the work. Rows are the same either way."""
        encoder = self.table.encoder_
        wanted = []
        for name in self.FIELDS:
            texts = self.texts(name)
            if name == "full" and not self.has_industry.any():
                continue  # the title's rows, below
            if self.n and (name == "title" or any(texts)):
                wanted.append((name, texts))
        if wanted:
            # Each distinct string once: a title without an industry is its own "full" text,
            # and industries and descriptions repeat within a batch.
            slots: dict[str, int] = {}
            where = [slots.setdefault(t, len(slots)) for _, texts in wanted for t in texts]
            rows = encoder.transform(list(slots))
            if len(slots) < len(where):
                rows = rows[np.asarray(where, np.int64)]
            for i, (name, _) in enumerate(wanted):
                self._vectors[name] = rows if len(wanted) == 1 else _row_slice(rows, i * self.n, (i + 1) * self.n)
        else:  # no queries
            self._vectors["title"] = self._zero_rows()
        self._vectors.setdefault("full", self._vectors["title"])

    @property
    def full_rows(self) -> np.ndarray:
        """The queries whose "full" text is not just the title (they have an industry)."""
        if "full_rows" not in self.scratch:
            differ = [f != t for f, t in zip(self.texts("full"), self.titles)] if self.has_industry.any() else []
            self.scratch["full_rows"] = np.flatnonzero(np.asarray(differ, bool))
        return self.scratch["full_rows"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Proposals:
    """Candidates a stage puts forward: row i proposes ``target[i]`` for query ``q[i]`` with a
    score in [0, 1].

    ``kind="title"``: targets are index titles (row numbers of ``IndexTable.titles_``), each
    bringing all its entries; ``exact=True`` claims each title *is* the query's title (the
    index holds the answer as written), which decides whether the query is an index hit or a
    vague title. ``kind="code"``: targets are code numbers, each explained by ``entry[i]``
    (-1: the code's representative entry).
    """

    kind: str
    q: np.ndarray
    target: np.ndarray
    score: np.ndarray
    entry: np.ndarray | None = None
    exact: bool = False

    @classmethod
    def from_topk(cls, top: TopK, kind: str = "title", rows: np.ndarray | None = None,
                  entry: np.ndarray | None = None) -> "Proposals":
        """Flatten a `TopK` (for the queries ``rows``, default all) into proposals."""
        n, k = top.idx.shape
        rows = np.arange(n) if rows is None else np.asarray(rows)
        q = np.repeat(rows, k)
        keep = top.idx.ravel() >= 0
        return cls(kind, q[keep].astype(np.int64), top.idx.ravel()[keep].astype(np.int64),
                   top.score.ravel()[keep].astype(np.float32),
                   None if entry is None else entry.ravel()[keep].astype(np.int64))


@dataclass
class Pairs:
    """The candidate (query, code) rows of a batch, sorted by query then code, and what lies
    behind them.

    Title level: ``tq, tt`` are the (query, index title) pairs some stage proposed. Entry
    level: every codable index entry of those titles, ``e_tp`` its title pair and ``e_pair``
    its (query, code) row. Stages reduce title- or entry-level values to pair rows with
    `from_titles` / `from_entries`.
    """

    n_queries: int
    q: np.ndarray
    code: np.ndarray
    tq: np.ndarray
    tt: np.ndarray
    e_pair: np.ndarray
    e_entry: np.ndarray
    e_tp: np.ndarray
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.q)

    def from_entries(self, values: np.ndarray, how: str = "max") -> np.ndarray:
        """Reduce entry-row values to pair rows (max or sum; 0 for pairs with no entry rows)."""
        out = np.zeros(len(self.q), np.float32)
        if len(self.e_pair):
            if how == "max":
                np.maximum.at(out, self.e_pair, np.asarray(values, np.float32))
            else:
                np.add.at(out, self.e_pair, np.asarray(values, np.float32))
        return out

    def from_titles(self, values: np.ndarray, how: str = "max") -> np.ndarray:
        """Reduce title-pair values to pair rows through the entries each title brought."""
        return self.from_entries(np.asarray(values, np.float32)[self.e_tp], how)

    def per_query(self, values: np.ndarray) -> np.ndarray:
        """Spread one value per query to the query's pair rows."""
        return np.asarray(values)[self.q]

    def query_max(self, values: np.ndarray) -> np.ndarray:
        """Each pair row's query maximum of ``values``."""
        return group_max(self.q, np.asarray(values, np.float32), self.n_queries) if len(self.q) else values

    def rank(self, values: np.ndarray) -> np.ndarray:
        """1-based rank of each pair row's value within its query, largest first."""
        return rank_desc(self.q, np.asarray(values, np.float32))


@runtime_checkable
class Stage(Protocol):
    """One signal. ``name`` is also the method reported when this stage proposed the entry that
    explains the winning code; ``FEATURES`` names the columns `features` returns."""

    name: ClassVar[str]
    FEATURES: ClassVar[tuple[str, ...]]

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "Stage":
        """Learn from the index table (``seed`` fixes any randomness)."""

    def propose(self, queries: Queries) -> Proposals | Sequence[Proposals] | None:
        """Candidates for the batch (one or several `Proposals`), or None when the stage only
        describes."""

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        """One float32 array per name in ``FEATURES``, aligned with the pair rows."""
