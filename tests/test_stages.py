"""Each candidate stage on a tiny index, and the top-k helpers against a simple reference."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coder.stages import TopK, top_k_dense, top_k_sparse
from coder.stages.classifier import ClassifierStage
from coder.stages.exact import ExactStage
from coder.stages.fuzzy import FuzzyStage
from coder.stages.tfidf import TfidfEncoder, TfidfStage
from coder.stages.wordcode import WordCodeStage

TITLES = ["staff nurse", "nurse", "bookshop manager", "shop manager", "bank manager",
          "heavy goods vehicle driver", "bus driver", "software developer", "software engineer",
          "primary school teacher"]


def _reference_top_k(dense: np.ndarray, k: int) -> list[list[float]]:
    return [sorted((v for v in row if v > 0), reverse=True)[:k] for row in dense]


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 12)),
              elements=st.floats(0, 1, width=32)), st.integers(1, 5))
def test_top_k_matches_reference(dense, k):
    for top in (top_k_dense(dense, k), top_k_sparse(sp.csr_matrix(dense), k)):
        assert top.idx.shape == (dense.shape[0], k)
        for i, expected in enumerate(_reference_top_k(dense, k)):
            got = [s for j, s in zip(top.idx[i], top.score[i]) if j >= 0]
            assert got == pytest.approx(expected)
            for j, s in zip(top.idx[i], top.score[i]):
                if j >= 0:
                    assert dense[i, j] == pytest.approx(s)


def test_top_k_dense_handles_unsigned_scores():
    # Negating uint8 wraps around: 0 would beat 100 if the helper forgot to widen the type.
    scores = np.array([[0, 100, 50]], np.uint8)
    assert top_k_dense(scores, 2).idx.tolist() == [[1, 2]]


def test_exact_stage():
    stage = ExactStage().fit(TITLES)
    hits = stage.query(["nurse", "nurse staff", ""])
    assert hits.idx[:, 0].tolist() == [1, -1, -1]
    assert "bus driver" in stage and stage.get("x") is None


def test_exact_stage_finds_compounds_split_or_joined():
    stage = ExactStage().fit(["hairdresser", "fire fighter", "check out operator", "checkout operator",
                              "post man"])
    hits = stage.query(["hair dresser", "firefighter", "postman", "checkoutoperator", "hair"])
    assert hits.idx[:, 0].tolist() == [0, 1, 4, -1, -1]  # two titles join alike: no guess


def test_fuzzy_stage_forgives_typos_and_order():
    stage = FuzzyStage(k=2).fit(TITLES)
    hits = stage.query(["sofware develper", "driver bus", "zzzz"])
    assert TITLES[hits.idx[0, 0]] == "software developer"
    assert TITLES[hits.idx[1, 0]] == "bus driver" and hits.score[1, 0] == pytest.approx(1.0)
    assert hits.idx[2, 0] == -1  # nothing above the cutoff


def test_fuzzy_stage_chunks_agree():
    queries = ["nurse", "manger", "techer", "bus drivr"] * 3
    whole = FuzzyStage(k=3).fit(TITLES).query(queries)
    chunked = FuzzyStage(k=3, chunk=5).fit(TITLES).query(queries)
    assert np.array_equal(whole.idx, chunked.idx)


def test_fuzzy_stage_scores_are_token_sort_ratio():
    from rapidfuzz import fuzz

    queries = ["manager shop book", "nurse  staff", "drivr bus", "software developer senior"]
    hits = FuzzyStage(k=3, score_cutoff=0).fit(TITLES).query(queries)
    for q, idx, score in zip(queries, hits.idx, hits.score):
        for i, s in zip(idx, score):
            assert s == pytest.approx(fuzz.token_sort_ratio(q, TITLES[i]) / 100, abs=0.0051)  # uint8 scores


def test_tfidf_encoder_matches_sklearn_transform():
    enc = TfidfEncoder().fit(TITLES)
    ours = enc.transform(["staff nurse", "book shop manager", "unseen words"])
    char = enc.char_.transform(["staff nurse", "book shop manager", "unseen words"])
    assert ours.shape[1] == char.shape[1] + len(enc.word_.vocabulary_)
    norms = np.sqrt(np.asarray(ours.multiply(ours).sum(axis=1))).ravel()
    assert norms == pytest.approx([1, 1, 1], abs=1e-5)


def test_tfidf_stage_finds_compounds_and_word_overlap():
    stage = TfidfStage(k=3, max_df=1.0).fit(TITLES)
    hits = stage.query(["book shop manager", "nursing", "software"])
    assert {TITLES[i] for i in hits.idx[0, :2]} == {"bookshop manager", "shop manager"}
    assert TITLES[hits.idx[1, 0]] in {"nurse", "staff nurse"}
    assert {TITLES[i] for i in hits.idx[2, :2]} == {"software developer", "software engineer"}
    assert isinstance(hits, TopK)


def test_classifier_stage_learns_codes():
    codes = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4]
    stage = ClassifierStage(k=2).fit(TITLES, codes)
    top = stage.query(["registered nurse", "driver", "software tester"])
    assert stage.classes_[top.idx[:, 0]].tolist() == [0, 2, 3]
    assert sp.issparse(stage.coef_)
    assert stage.scores(stage.encoder_.transform(["nurse"])).shape == (1, 5)


def test_wordcode_weighs_head_modifier_and_context():
    stage = WordCodeStage().fit(["shop manager", "bank manager", "staff nurse", "nurse"],
                                ["", "banking", "", ""], [0, 1, 2, 2], 3)
    head, mod, ctx = stage.scores(["night manager", "staff nurse", "zzz"], ["banking", "", ""])
    assert head[0, 0] == pytest.approx(head[0, 1]) and head[0, 0] > head[0, 2]
    assert mod[1].argmax() == 2 and ctx[0].argmax() == 1
    assert not head[2].any() and not mod[0].any() and not ctx[1].any()
    assert np.allclose(head[:2].sum(axis=1), 1.0)


def test_tfidf_encoder_equals_stacked_sklearn_vectorisers():
    from sklearn.preprocessing import normalize

    docs = ["", *TITLES, "", "", "unseen qqq", "nurse nurse nurse staff", ""]
    enc = TfidfEncoder(char_weight=0.7).fit(TITLES)
    expected = normalize(sp.hstack([enc.char_.transform(docs) * 0.7, enc.word_.transform(docs)]).tocsr())
    got = enc.transform(docs)
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-6


def test_tfidf_encoder_batch_and_single_paths_agree():
    # Big batches go through sklearn, small ones through the fast path: same numbers.
    enc = TfidfEncoder().fit(TITLES)
    docs = (TITLES + ["", "nurse nurse staff", "unseen qqq"]) * 10
    whole = enc.transform(docs)
    one_by_one = sp.vstack([enc.transform([d]) for d in docs]).tocsr()
    assert len(docs) > 64 and abs(whole - one_by_one).max() < 1e-6
