"""Merge stage signals per code into one calibrated confidence, and decide a status.

A gradient-boosted model scores each (query, code) row from its FEATURES; scores are shared
out within a query, and isotonic regression maps them to the observed frequency of being
right on index entries the retrieval model never saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from ._order import float32_order, run_starts

if TYPE_CHECKING:  # pragma: no cover
    from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["Ranker", "choose_threshold", "ordered", "precision_curve", "share_out"]

# Rows scored at once: bounds the (rows x trees) masks, which are fastest in cache. Fewer than
# _FEW_ROWS (one title's candidates) are scored in one gather, more feature by feature.
_CHUNK = 1024
_FEW_ROWS = 64


def _float32_floor(t: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 ``t``: for a float32 ``x``,
    ``x <= t`` exactly when ``x <= _float32_floor(t)``."""
    t32 = t.astype(np.float32)
    over = t32.astype(np.float64) > t
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


def _sort_key(feature: np.ndarray, x: np.ndarray) -> np.ndarray:
    """uint64 keys ordered as (feature, float32 value): one `searchsorted` then compares every
    feature of a row with its own thresholds (-0.0 is read as 0.0, as a float comparison does)."""
    return (np.asarray(feature, np.uint64) << np.uint64(32)) | float32_order(x)


class _Forest:
    """Boosted trees as plain arrays: what a model file keeps instead of sklearn's estimator,
    so coding never imports sklearn (1.2 s and 150 MB per process).

    Scored without walking the trees (after QuickScorer, Lucchese et al. 2015): a row that
    goes right at a node can never reach a leaf left of it, and the leaf it reaches is the
    leftmost one not ruled out. A row's value for feature f exceeds a prefix of f's
    thresholds (sorted), so ANDing each tree's "still possible" leaf bits over that prefix is
    one table row: per row, one `searchsorted` over all features, one gather of a table row
    per feature, an AND, and the lowest set bit. Numbers equal sklearn's to the bit: the same
    comparisons (finite float32 features against thresholds rounded down to float32 decide
    alike), tree values added in sklearn's order, and the same logistic function.
    """

    def __init__(self, model: "HistGradientBoostingClassifier"):
        trees = [p[0].nodes for p in model._predictors]
        self.n_trees = len(trees)
        self.n_features = int(model.n_features_in_)
        self.baseline = float(np.ravel(model._baseline_prediction)[0])
        if any(t["is_categorical"].any() for t in trees):
            raise ValueError("categorical splits are not supported")
        most_leaves = max(int(t["is_leaf"].sum()) for t in trees)
        if most_leaves > 64:
            raise ValueError(f"a tree has {most_leaves} leaves; at most 64 are supported")
        bits = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64) if np.dtype(d).itemsize * 8 >= most_leaves)
        feature, threshold, keep, tree_of, leaf_values, leaf_start = [], [], [], [], [], []
        for t, nodes in enumerate(trees):
            leaves: list[int] = []
            below: dict[int, int] = {}  # node -> bits of the leaves in its left subtree

            def visit(i: int) -> int:
                """Number the leaves under node ``i`` left to right; their bits."""
                if nodes["is_leaf"][i]:
                    leaves.append(i)
                    return 1 << (len(leaves) - 1)
                left = visit(int(nodes["left"][i]))
                below[i] = left
                return left | visit(int(nodes["right"][i]))

            everything = visit(0)
            for i, left in below.items():
                feature.append(int(nodes["feature_idx"][i]))
                threshold.append(float(nodes["num_threshold"][i]))
                keep.append(everything & ~left)
                tree_of.append(t)
            leaf_start.append(len(leaf_values))
            leaf_values.extend(float(nodes["value"][i]) for i in leaves)
        feature_a = np.array(feature, np.int64)
        threshold32 = _float32_floor(np.array(threshold, np.float64))
        order = np.lexsort((threshold32, feature_a))
        self.keys = _sort_key(feature_a[order], threshold32[order])
        first = np.searchsorted(feature_a[order], np.arange(self.n_features + 1))
        # Table row (base[f] + k): each tree's possible leaves once the row exceeds f's first k
        # thresholds; row base[f] (k = 0) rules nothing out.
        table = np.empty((len(order) + self.n_features, self.n_trees), bits)
        full = np.array([(1 << int(t["is_leaf"].sum())) - 1 for t in trees], np.uint64).astype(bits)
        keep_a, tree_a = np.array(keep, np.uint64).astype(bits), np.array(tree_of, np.int64)
        for f in range(self.n_features):
            rows = order[first[f]:first[f + 1]]
            block = np.tile(full, (len(rows) + 1, 1))
            block[np.arange(1, len(rows) + 1), tree_a[rows]] = keep_a[rows]
            table[first[f] + f:first[f + 1] + f + 1] = np.bitwise_and.accumulate(block, axis=0)
        self.table = table
        # A row's key lands at global position p = first[f] + k: its table row is p + f.
        self.shift = np.arange(self.n_features, dtype=np.int64)
        self.leaf_values = np.array(leaf_values, np.float64)
        self.leaf_start = np.array(leaf_start, np.int64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of float32 features ``X`` (other
        dtypes are read as float32, as the ranker learned from them; inf is fine, NaN is not:
        sklearn sends it the way it learned, which these arrays do not keep)."""
        X = np.asarray(X, np.float32)
        if np.isnan(X).any():
            raise ValueError("ranker features must not be NaN")
        out = np.empty(len(X), np.float64)
        for start in range(0, len(X), _CHUNK):
            out[start:start + _CHUNK] = self._raw(X[start:start + _CHUNK])
        return expit(out)

    def _raw(self, X: np.ndarray) -> np.ndarray:
        position = np.searchsorted(self.keys, _sort_key(self.shift, X), side="left") + self.shift
        if len(X) < _FEW_ROWS:  # one gather and one reduce: fewest NumPy calls
            possible = np.bitwise_and.reduce(self.table[position], axis=1)  # (rows, trees)
        else:  # feature by feature: never the (rows x features x trees) block, 25% faster
            possible = self.table[position[:, 0]]
            for f in range(1, position.shape[1]):
                possible &= self.table[position[:, f]]
        lowest = possible & (~possible + possible.dtype.type(1))
        leaf = np.bitwise_count(lowest - possible.dtype.type(1))
        # Tree-major (trees x rows): sklearn adds tree after tree to the baseline, and NumPy's
        # reduction over the outer axis adds row after row in that order too (only sums along
        # the contiguous axis are pairwise), with whole rows of SIMD adds: 2x a running sum.
        values = np.empty((self.n_trees + 1, len(X)))
        values[0] = self.baseline
        values[1:] = self.leaf_values[self.leaf_start[:, None] + leaf.T]
        return np.add.reduce(values, axis=0)


class Ranker:
    """Learned reranker plus calibrator over candidate feature rows.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes
        Passed to `HistGradientBoostingClassifier`.
    negatives
        Share of the wrong-code rows each fit learns from (seeded; see `fit`).

    Calibration is per group (small integers the caller derives from explicit query flags,
    e.g. "the index holds this title"): the same score can mean a different chance of being
    right in each. A fitted ranker holds only arrays (`_Forest`, calibration thresholds).
    """

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 negatives: float = 0.5, random_state: int = 0):
        if not 2 <= max_leaf_nodes <= 64:  # `_Forest` keeps a tree's leaves as the bits of one integer
            raise ValueError(f"max_leaf_nodes must be 2..64, got {max_leaf_nodes}")
        if not 0.0 < negatives <= 1.0:
            raise ValueError(f"negatives must be in (0, 1], got {negatives}")
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.negatives = negatives
        self.random_state = random_state

    def fit(self, X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> "Ranker":
        """Learn from candidate rows labelled True where the code is the right one.

        Every right row is kept, and a seeded share ``negatives`` of the wrong ones, weighted
        up by its inverse: the expected loss is the same, the fit that much cheaper (most rows
        are easy wrong codes; on held-out folds a half share ranked as well). The trees are
        grown on one thread: sklearn's root sums depend on the thread count, so a model would
        otherwise differ between machines; builds run several fits side by side instead.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        X, labels = np.asarray(X, np.float32), np.asarray(labels, bool)
        weight = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if self.negatives < 1.0:
            weight = np.ones(len(labels)) if weight is None else weight
            keep = labels | (np.random.default_rng(self.random_state).random(len(labels)) < self.negatives)
            X, labels = X[keep], labels[keep]
            weight = np.where(labels, weight[keep], weight[keep] / self.negatives)
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, random_state=self.random_state,
            early_stopping=False,
        )
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(X, labels, sample_weight=weight)
        self.forest_ = _Forest(model)
        # Score -> probability maps, each (x thresholds, y thresholds) of an isotonic fit.
        self.calibrators_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        return self

    # What a fitted ranker is, as plain values and arrays (`to_arrays`, `from_arrays`).
    _PARAMS = ("max_iter", "learning_rate", "max_leaf_nodes", "negatives", "random_state")
    _FOREST_VALUES = ("n_trees", "n_features", "baseline")
    _FOREST_ARRAYS = ("keys", "table", "shift", "leaf_values", "leaf_start")

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted ranker as JSON-able values and named arrays: a file of them needs no
        pickle (`coder.shipped`), and `from_arrays` makes the same ranker again."""
        forest = self.forest_
        values = {**{p: getattr(self, p) for p in self._PARAMS},
                  **{v: getattr(forest, v) for v in self._FOREST_VALUES},
                  "calibrators": list(self.calibrators_)}
        arrays = {f"forest_{a}": getattr(forest, a) for a in self._FOREST_ARRAYS}
        for g, (x, y) in self.calibrators_.items():
            arrays[f"calibrator_{g}_x"], arrays[f"calibrator_{g}_y"] = x, y
        return values, arrays

    @classmethod
    def from_arrays(cls, values: dict, arrays: dict[str, np.ndarray]) -> "Ranker":
        """The ranker `to_arrays` described, every value and array equal (attributes set in
        the order a fit sets them)."""
        ranker = cls(**{p: values[p] for p in cls._PARAMS})
        forest = _Forest.__new__(_Forest)
        forest.n_trees, forest.n_features = int(values["n_trees"]), int(values["n_features"])
        forest.baseline = float(values["baseline"])
        for a in cls._FOREST_ARRAYS:
            setattr(forest, a, np.asarray(arrays[f"forest_{a}"]))
        ranker.forest_ = forest
        ranker.calibrators_ = {int(g): (np.asarray(arrays[f"calibrator_{g}_x"], np.float64),
                                        np.asarray(arrays[f"calibrator_{g}_y"], np.float64))
                               for g in values["calibrators"]}
        return ranker

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return self.forest_.predict_proba(X)

    def raw_scores(self, X: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Model probability per row, scaled down where a query's rows claim more than 1 in all
        (only one code can be right)."""
        if len(X) == 0:
            return np.zeros(0, np.float32)
        p = self._proba(X)
        total = np.bincount(q, weights=p)[q]
        return (p / np.maximum(total, 1.0)).astype(np.float32)

    @staticmethod
    def _cal_groups(raw: np.ndarray, q: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        """Calibration group of each row: the caller's group, split into each query's top
        candidate and the rest. The confidence shown for the best code (which decides
        auto-coding) is then fitted on best codes only."""
        base = np.zeros(len(raw), np.int64) if groups is None else np.asarray(groups, np.int64)
        if len(raw) == 0:
            return base
        top = np.full(int(q.max()) + 1, -np.inf)
        np.maximum.at(top, q, raw)
        return 2 * base + (raw >= top[q])

    def calibrate(self, scores: np.ndarray, labels: np.ndarray, q: np.ndarray, groups: np.ndarray | None = None,
                  *, weights: np.ndarray | None = None, min_rows: int = 200, prior: float = 50.0) -> "Ranker":
        """Fit score -> probability maps on rows the ranker was not trained on: one per group
        (the caller's ``groups`` x top candidate or not), plus a pooled one for groups too
        small to fit. Each group's map also sees the other groups' rows of its kind with the
        weight of ``prior`` rows in all."""
        labels = np.asarray(labels, np.float32)
        groups = self._cal_groups(np.asarray(scores), np.asarray(q), groups)
        weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)

        from sklearn.isotonic import IsotonicRegression

        def fit(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keep = w > 0
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                scores[keep], labels[keep], sample_weight=w[keep])
            return (np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64))

        self.calibrators_ = {-1: fit(weights)}
        # A group's map leans on pooled rows with the weight of `prior` rows in total: where the
        # group has few rows (its extremes) it follows the pooled map instead of jumping to
        # 0 or 1 on a handful of examples; where it has many, the prior is negligible.
        # The prior pools the other groups' rows of the same kind (best candidates, or the rest).
        for g in np.unique(groups):
            mask = groups == g
            if mask.sum() >= min_rows:
                others = ((groups % 2) == (g % 2)) & ~mask
                pooled = np.where(others, weights, 0.0) * (prior / max(weights[others].sum(), 1e-12))
                self.calibrators_[int(g)] = fit(np.where(mask, weights, pooled))
        return self

    def calibrated(self, raw: np.ndarray, q: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Probabilities for raw scores of rows of queries ``q`` in calibration ``groups``."""
        if not self.calibrators_ or len(raw) == 0:
            return raw
        groups = self._cal_groups(raw, np.asarray(q), groups)
        out = np.empty(len(raw), np.float32)
        for g in np.unique(groups):
            mask = groups == g
            out[mask] = _isotonic(self.calibrators_.get(int(g), self.calibrators_[-1]), raw[mask])
        return out

    def score(self, X: np.ndarray, q: np.ndarray, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw score, calibrated probability) per row. Rank by the raw score: calibration is
        a step function and would tie codes the ranker tells apart. A query's calibrated
        probabilities are scaled down where they sum to more than 1: only one code is right."""
        raw = self.raw_scores(X, q)
        return raw, share_out(ordered(self.calibrated(raw, q, groups), raw, q), q)


def _isotonic(fitted: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The fitted isotonic map at ``x`` (as sklearn's out_of_bounds="clip": linear between
    the thresholds, flat beyond them)."""
    return np.interp(np.asarray(x, np.float64), *fitted)


def ordered(conf: np.ndarray, raw: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Make each query's confidences fall with its ranker scores: a candidate ranked below
    another is never said to be likelier (the best and the other candidates are calibrated
    apart, and the two maps can cross)."""
    if len(conf) == 0:
        return np.asarray(conf, np.float32)
    order = np.lexsort((-raw, q))
    c, g = conf[order].astype(np.float64), q[order]
    group = np.cumsum(run_starts(g)) - 1
    # A running minimum over all rows, each query shifted 2 below the one before (values
    # are in [0, 1]): no minimum carries over from an earlier query.
    running = np.minimum.accumulate(c - 2.0 * group) + 2.0 * group
    out = np.empty(len(conf), np.float32)
    out[order] = running
    return out


def share_out(conf: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Scale each query's probabilities down where they sum to more than 1 (one code is right)."""
    if len(conf) == 0:
        return np.asarray(conf, np.float32)
    total = np.bincount(q, weights=conf)[q]
    return (conf / np.maximum(total, 1.0)).astype(np.float32)


def precision_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(levels, n, n right) of the auto-coded set ``{confidence >= level}`` for every observed
    confidence level, highest level first: tied scores are all in or all out."""
    levels, inverse = np.unique(np.asarray(confidence, np.float64), return_inverse=True)
    hits = np.bincount(inverse, weights=np.asarray(correct, np.float64), minlength=len(levels))
    counts = np.bincount(inverse, minlength=len(levels))
    return levels[::-1], np.cumsum(counts[::-1]), np.cumsum(hits[::-1])


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, *, precision: float = 0.95) -> float:
    """Lowest confidence threshold whose auto-coded set ({confidence >= t}) reaches ``precision``.

    ``confidence`` and ``correct`` describe the top candidate of each calibration query.
    Only observed confidence levels are tried, so tied scores are all in or all out.
    Returns 1.0 (auto-code almost nothing) when no threshold reaches the target.
    """
    levels, counts, hits = precision_curve(confidence, correct)
    ok = np.flatnonzero(hits / np.maximum(counts, 1) >= precision)
    if len(ok) == 0:
        return 1.0
    return float(levels[ok[-1]])
