"""Merge stage signals per code into one calibrated confidence, and decide a status.

A gradient-boosted model scores each (query, code) row from its FEATURES; scores are shared
out within a query, and isotonic regression maps them to the observed frequency of being
right on index entries the retrieval model never saw.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from threadpoolctl import threadpool_limits

__all__ = ["Ranker", "choose_threshold", "ordered", "precision_curve", "share_out"]

# Below this many rows, walking all trees at once in NumPy beats sklearn's per-tree loop
# (which costs ~10 us a tree whatever the batch size: 3 ms for one title).
_SMALL_BATCH = 4096


class _Forest:
    """The boosted trees as flat arrays, evaluated for all trees in one vectorised walk.

    Leaves point to themselves (threshold +inf), so every row takes the same number of steps
    with no branching on "is this a leaf": four array operations per level of depth.
    """

    def __init__(self, model: HistGradientBoostingClassifier):
        nodes = [p[0].nodes for p in model._predictors]
        sizes = np.array([len(n) for n in nodes])
        offset = np.r_[0, np.cumsum(sizes)[:-1]]
        flat = np.concatenate(nodes)
        self.roots = offset.astype(np.int64)
        shift = np.repeat(offset, sizes)
        leaf = flat["is_leaf"].astype(bool)
        own = np.arange(len(flat), dtype=np.int64)
        self.feature = np.where(leaf, 0, flat["feature_idx"]).astype(np.int64)
        self.threshold = np.where(leaf, np.inf, flat["num_threshold"]).astype(np.float64)
        # children[node, 0] when the row goes left (x <= threshold), [node, 1] when right.
        self.children = np.stack([np.where(leaf, own, flat["left"].astype(np.int64) + shift),
                                  np.where(leaf, own, flat["right"].astype(np.int64) + shift)], axis=1).ravel()
        self.value = flat["value"].astype(np.float64)
        self.depth = int(flat["depth"].max()) + 1
        self.baseline = float(np.ravel(model._baseline_prediction)[0])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        n, width = X.shape
        flat_x = np.ascontiguousarray(X, np.float64).ravel()
        base = (np.arange(n, dtype=np.int64) * width)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        for _ in range(self.depth):
            right = flat_x[base + self.feature[node]] > self.threshold[node]
            node = self.children[2 * node + right]
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-np.clip(raw, -50.0, 50.0)))


class Ranker:
    """Learned reranker plus calibrator over candidate feature rows.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes
        Passed to `HistGradientBoostingClassifier`.

    Calibration is per group (small integers the caller derives from explicit query flags,
    e.g. "the index holds this title"): the same score can mean a different chance of being
    right in each.
    """

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    def fit(self, X: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> "Ranker":
        """Learn from candidate rows labelled True where the code is the right one."""
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, random_state=self.random_state,
            early_stopping=False,
        ).fit(np.asarray(X, np.float32), np.asarray(labels, bool), sample_weight=sample_weight)
        self.calibrators_: dict[int, IsotonicRegression] = {}
        return self

    @property
    def forest_(self) -> _Forest:
        """The trees as flat arrays for small batches: derived from ``model_`` on first use and
        never pickled, so a model file does not depend on this layout."""
        forest = self.__dict__.get("_forest")
        if forest is None:
            forest = self.__dict__["_forest"] = _Forest(self.model_)
        return forest

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_forest", None)
        state.pop("forest_", None)  # written by older versions
        return state

    def _proba(self, X: np.ndarray) -> np.ndarray:
        if len(X) <= _SMALL_BATCH:
            return self.forest_.predict_proba(np.asarray(X, np.float64))
        # One OpenMP thread: batch callers parallelise with processes, and oversubscribed
        # OpenMP threads were 3x slower than one when both cores were busy.
        with threadpool_limits(1, user_api="openmp"):
            return self.model_.predict_proba(X)[:, 1]

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

        def fit(w: np.ndarray) -> IsotonicRegression:
            keep = w > 0
            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                scores[keep], labels[keep], sample_weight=w[keep])

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


def _isotonic(fitted: IsotonicRegression, x: np.ndarray) -> np.ndarray:
    """``fitted.predict(x)`` (out_of_bounds="clip": linear between the fitted thresholds,
    flat beyond them) without sklearn's per-call validation, which cost more than the work
    for the few rows of one title."""
    return np.interp(np.asarray(x, np.float64), fitted.X_thresholds_, fitted.y_thresholds_)


def ordered(conf: np.ndarray, raw: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Make each query's confidences fall with its ranker scores: a candidate ranked below
    another is never said to be likelier (the best and the other candidates are calibrated
    apart, and the two maps can cross)."""
    if len(conf) == 0:
        return np.asarray(conf, np.float32)
    order = np.lexsort((-raw, q))
    c, g = conf[order].astype(np.float64), q[order]
    group = np.cumsum(np.r_[True, g[1:] != g[:-1]]) - 1
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
