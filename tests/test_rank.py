"""Ranker: the vectorised tree walk equals sklearn, scores share out per query, thresholds."""

import numpy as np
import pytest

from coder.rank import Ranker, _Forest, choose_threshold, ordered, share_out


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.random((3000, 6)).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 1] + 0.1 * rng.standard_normal(3000)) > 0.7
    return Ranker(max_iter=40).fit(X, y), X, y


@pytest.mark.parametrize("leaves", [2, 8, 9, 16, 17, 33, 64])
def test_flat_forest_equals_sklearn_to_the_bit(leaves):
    """Every leaf-bit width (uint8 .. uint64), ties at thresholds, -0.0 and inf."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(leaves)
    X = rng.standard_normal((4000, 6)).astype(np.float32)
    X[:, 2] = np.round(X[:, 2], 1)  # many rows exactly at split thresholds
    X[:, 5] = 0.0  # never split on
    y = (X[:, 0] + 0.3 * X[:, 1] + 0.5 * rng.standard_normal(4000)) > 0.2
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=leaves, early_stopping=False,
                                           random_state=0).fit(X, y)
    forest = _Forest(model)
    probe = np.vstack([X, -np.abs(X[:50]) * 0.0, np.full((3, 6), np.inf, np.float32),
                       np.full((3, 6), -np.inf, np.float32)]).astype(np.float32)
    theirs = model.predict_proba(probe)[:, 1]
    np.testing.assert_array_equal(forest.predict_proba(probe), theirs)  # chunked
    np.testing.assert_array_equal(forest.predict_proba(probe[:7]), theirs[:7])
    assert forest.predict_proba(probe[:0]).shape == (0,)


def test_the_forest_refuses_nan_and_the_ranker_too_many_leaves():
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = np.random.default_rng(0).random((300, 3)).astype(np.float32)
    forest = _Forest(HistGradientBoostingClassifier(max_iter=3).fit(X, X[:, 0] > 0.5))
    with pytest.raises(ValueError, match="NaN"):
        forest.predict_proba(np.full((1, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="max_leaf_nodes"):
        Ranker(max_leaf_nodes=65)


def test_the_ranker_learns_from_a_seeded_share_of_the_wrong_rows():
    """Every right row and half the wrong ones, weighted up: as good a ranking as all rows,
    the same one for the same seed, and with ``negatives=1`` exactly sklearn's on all rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(1)
    X = rng.random((6000, 5)).astype(np.float32)
    y = (X[:, 0] + 0.4 * X[:, 1] + 0.2 * rng.standard_normal(6000)) > 1.1
    test = rng.random((2000, 5)).astype(np.float32)
    truth = (test[:, 0] + 0.4 * test[:, 1]) > 1.1

    def auc(p: np.ndarray) -> float:
        pos, neg = p[truth], p[~truth]
        return float((pos[:, None] > neg[None, :]).mean())

    half = Ranker(max_iter=30).fit(X, y)
    every = Ranker(max_iter=30, negatives=1.0).fit(X, y)
    assert abs(auc(half._proba(test)) - auc(every._proba(test))) < 0.01
    np.testing.assert_array_equal(half._proba(test), Ranker(max_iter=30).fit(X, y)._proba(test))
    assert not np.array_equal(half._proba(test), every._proba(test))
    sk = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, early_stopping=False, random_state=0).fit(X, y)
    np.testing.assert_array_equal(every._proba(test), sk.predict_proba(test)[:, 1])
    with pytest.raises(ValueError, match="negatives"):
        Ranker(negatives=0.0)


def test_a_fitted_ranker_pickles_without_sklearn(fitted):
    """Loading a model must not import sklearn (1 s and 150 MB): the ranker keeps arrays."""
    import pickle
    import pickletools

    ranker, X, y = fitted
    q = np.arange(len(X))
    ranker.calibrate(ranker.raw_scores(X, q), y, q)
    data = pickle.dumps(ranker)
    modules = {str(arg).split()[0] for op, arg, _ in pickletools.genops(data)
               if op.name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE") and isinstance(arg, str)}
    assert not any(m.startswith("sklearn") for m in modules)
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.score(X[:50], q[:50])[1], ranker.score(X[:50], q[:50])[1])


def test_scores_never_claim_more_than_one_per_query(fitted):
    ranker, X, _ = fitted
    q = np.repeat(np.arange(100), 30)
    s = ranker.raw_scores(X, q)
    assert (np.bincount(q, weights=s) <= 1.0 + 1e-5).all()
    assert ranker.raw_scores(X[:0], q[:0]).shape == (0,)


def test_calibration_is_monotone_and_bounded(fitted):
    ranker, X, y = fitted
    q = np.arange(len(X))
    ranker.calibrate(ranker.raw_scores(X, q), y, q)
    conf = ranker.score(X, q)[1]
    order = np.argsort(ranker.raw_scores(X, q))
    assert (np.diff(conf[order]) >= -1e-6).all()
    assert conf.min() >= 0 and conf.max() <= 1


def test_choose_threshold():
    conf = np.array([0.95, 0.9, 0.9, 0.8, 0.8, 0.5])
    right = np.array([1, 1, 1, 1, 0, 0])
    assert choose_threshold(conf, right, precision=0.95) == 0.9
    assert choose_threshold(conf, right, precision=0.8) == 0.8
    assert choose_threshold(conf, right, precision=0.6) == 0.5
    assert choose_threshold(np.array([0.3]), np.array([0]), precision=0.9) == 1.0
    # Ties are all in or all out: at 0.8 the auto set is 4 right of 5.
    t = choose_threshold(conf, right, precision=0.85)
    assert right[conf >= t].mean() >= 0.85


def test_groups_are_calibrated_separately():
    # The same score means 90% right in group 1 and 30% right in group 0.
    rng = np.random.default_rng(1)
    n = 4000
    group = np.arange(n) % 2
    X = np.full((n, 1), 0.5, np.float32)
    labels = np.where(group == 1, rng.random(n) < 0.9, rng.random(n) < 0.3)
    ranker = Ranker(max_iter=5).fit(X, labels)
    scores = np.full(n, 0.5, np.float32)
    q = np.arange(n)  # one candidate per query: every row is its query's top
    ranker.calibrate(scores, labels, q, group)
    conf = ranker.calibrated(scores, q, group)
    assert conf[group == 1].mean() == pytest.approx(0.9, abs=0.03)
    assert conf[group == 0].mean() == pytest.approx(0.3, abs=0.03)
    # A group too small to fit falls back to the pooled calibration.
    pooled = Ranker(max_iter=5).fit(X, labels).calibrate(scores, labels, q, group, min_rows=10**6)
    assert pooled.calibrated(scores[:4], q[:4], group[:4]) == pytest.approx([0.6] * 4, abs=0.03)


def test_best_candidates_are_calibrated_apart_from_the_rest():
    # At the same score, a query's best code is right 80% of the time, a runner-up 10%.
    rng = np.random.default_rng(2)
    n = 3000
    q = np.repeat(np.arange(n), 2)
    scores = np.tile(np.array([0.5, 0.4], np.float32), n)
    labels = np.where(np.arange(2 * n) % 2 == 0, rng.random(2 * n) < 0.8, rng.random(2 * n) < 0.1)
    ranker = Ranker(max_iter=2).fit(np.zeros((2 * n, 1), np.float32), labels)
    ranker.calibrate(scores, labels, q)
    conf = ranker.calibrated(scores, q)
    assert conf[::2].mean() == pytest.approx(0.8, abs=0.03)
    assert conf[1::2].mean() == pytest.approx(0.1, abs=0.03)


def test_calibration_weights_count():
    # Weighted rows count as many: 1 right row of weight 3 against 1 wrong row is 75% right.
    ranker = Ranker(max_iter=2).fit(np.zeros((4, 1), np.float32), np.array([0, 1, 0, 1], bool))
    ranker.calibrate(np.full(2, 0.5, np.float32), np.array([1, 0]), np.array([0, 1]), weights=np.array([3.0, 1.0]))
    assert ranker.calibrated(np.array([0.5], np.float32), np.array([0])) == pytest.approx([0.75])


def test_candidate_confidences_never_sum_past_one():
    # Calibration maps every candidate up: shared out, a query's candidates sum to at most 1.
    conf = np.array([0.6, 0.5, 0.2, 0.3], np.float32)
    q = np.array([0, 0, 1, 1])
    out = share_out(conf, q)
    assert np.bincount(q, weights=out).max() <= 1.0 + 1e-6
    assert out[2:] == pytest.approx([0.2, 0.3])  # already under 1: unchanged
    assert out[0] / out[1] == pytest.approx(0.6 / 0.5)  # order kept


def test_confidences_fall_with_the_ranking():
    raw = np.array([0.9, 0.5, 0.4, 0.8, 0.7], np.float32)
    conf = np.array([0.44, 0.50, 0.10, 0.3, 0.6], np.float32)  # two calibration maps crossed
    q = np.array([0, 0, 0, 1, 1])
    assert ordered(conf, raw, q).tolist() == pytest.approx([0.44, 0.44, 0.10, 0.3, 0.3])


def test_a_groups_sparse_extremes_follow_the_pooled_map():
    # Group 1 has many rows at high scores and three (all wrong) at a low score; the pooled
    # data says a low score is right 40% of the time. The group's low end must not read 0.
    rng = np.random.default_rng(3)
    n = 6000
    scores = np.r_[rng.uniform(0.6, 1.0, 3000), np.full(3000, 0.2), np.full(3, 0.2)].astype(np.float32)
    group = np.r_[np.ones(3000, int), np.zeros(3000, int), np.ones(3, int)]
    labels = np.r_[rng.random(3000) < scores[:3000], rng.random(3000) < 0.4, np.zeros(3, bool)]
    q = np.arange(len(scores))
    ranker = Ranker(max_iter=5).fit(scores[:, None], labels)
    ranker.calibrate(scores, labels, q, group)
    low = ranker.calibrated(np.float32([0.2]), np.array([0]), np.array([1]))[0]
    assert 0.2 < low < 0.4
    high = ranker.calibrated(np.float32([0.95]), np.array([0]), np.array([1]))[0]
    assert high == pytest.approx(0.95, abs=0.05)


def test_isotonic_reading_matches_sklearn():
    from sklearn.isotonic import IsotonicRegression

    from coder.rank import _isotonic

    rng = np.random.default_rng(4)
    x = rng.random(500)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, rng.random(500) < x)
    probe = np.r_[-1.0, 0.0, rng.random(200), 1.0, 2.0]
    assert np.allclose(_isotonic((fitted.X_thresholds_, fitted.y_thresholds_), probe), fitted.predict(probe), atol=1e-9)
