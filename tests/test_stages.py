"""Each candidate stage on a tiny index, the stage protocol, and the top-k helpers against a
simple reference."""

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coder.candidates import BASE_FEATURES, CandidateGenerator, feature_names
from coder.index import IndexEntry
from coder.stages import STAGES, Stage, TopK, top_k_dense, top_k_sparse
from coder.stages.base import Pairs, Proposals, Queries
from coder.stages.classifier import ClassifierStage
from coder.stages.exact import ExactStage
from coder.stages.fuzzy import FuzzyStage
from coder.stages.tfidf import TfidfEncoder, TfidfRetriever
from coder.stages.wordcode import WordCodeStage
from coder.table import IndexTable

TITLES = ["staff nurse", "nurse", "bookshop manager", "shop manager", "bank manager",
          "heavy goods vehicle driver", "bus driver", "software developer", "software engineer",
          "primary school teacher"]
CODES = ["3211", "3211", "1163", "1163", "1151", "8211", "8213", "2132", "2132", "2315"]


def _entry(i: int, title: str, code: str | None, ind: str = "", default: str = "") -> IndexEntry:
    return IndexEntry(uid=f"u{i}", recno=i, title=title, natural=title, add="", ind=ind, see="",
                      default=default, codes={"soc2000": code})


def tiny_entries() -> list[IndexEntry]:
    entries = [_entry(i, t.capitalize(), c) for i, (t, c) in enumerate(zip(TITLES, CODES))]
    entries += [_entry(20, "Manager", None), _entry(21, "Manager", "1224", ind="public house"),
                _entry(22, "Manager", "1163", ind="retail trade"), _entry(23, "Sales assistant", "7111", default="O"),
                _entry(24, "Sales assistant", "7112", ind="petrol station"), _entry(25, "Shelf filler", "9251"),
                _entry(26, "Fork lift truck driver", "8222")]
    return entries


@pytest.fixture(scope="module")
def table() -> IndexTable:
    return IndexTable("soc2000").fit(tiny_entries())


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


def test_exact_stage(table):
    stage = ExactStage().fit(table)
    found = stage.find(["nurse", "nurse staff", ""])
    assert [table.titles_[i] if i >= 0 else None for i in found] == ["nurse", None, None]
    exact, endings = stage.propose(Queries(["nurse", "zzz", "hospital staff nurse"], ["", "", ""], ["", "", ""], table))
    assert exact.exact and exact.kind == "title" and exact.q.tolist() == [0]
    # A title the index lacks but ends in one it holds: proposed, not claimed as its own.
    assert not endings.exact and endings.q.tolist() == [2]
    assert table.titles_[endings.target[0]] == "staff nurse" and endings.score[0] == pytest.approx(2 / 3)


def test_exact_stage_finds_compounds_split_or_joined():
    entries = [_entry(i, t, "1111") for i, t in enumerate(
        ["hairdresser", "fire fighter", "check out operator", "checkout operator", "post man"])]
    t = IndexTable("soc2000").fit(entries)
    stage = ExactStage().fit(t)
    found = stage.find(["hair dresser", "firefighter", "postman", "checkoutoperator", "hair"])
    names = [t.titles_[i] if i >= 0 else None for i in found]
    assert names == ["hairdresser", "fire fighter", "post man", None, None]  # two titles join alike: no guess


def test_fuzzy_stage_forgives_typos_and_order(table):
    stage = FuzzyStage(k=2).fit(table)
    hits = stage.query(["sofware develper", "driver bus", "zzzz"])
    assert table.titles_[hits.idx[0, 0]] == "software developer"
    assert table.titles_[hits.idx[1, 0]] == "bus driver" and hits.score[1, 0] == pytest.approx(1.0)
    assert hits.idx[2, 0] == -1  # nothing above the cutoff


def test_fuzzy_stage_proposes_only_where_nothing_matched_well(table):
    stage = FuzzyStage(k=2).fit(table)
    queries = Queries(["sofware develper", "nurse"], ["", ""], ["", ""], table)
    queries.best_title[1] = 1.0  # found exactly by an earlier stage
    assert set(stage.propose(queries).q.tolist()) == {0}


def test_fuzzy_stage_chunks_agree(table):
    queries = ["nurse", "manger", "techer", "bus drivr"] * 3
    whole = FuzzyStage(k=3).fit(table).query(queries)
    chunked = FuzzyStage(k=3, chunk=5).fit(table).query(queries)
    assert np.array_equal(whole.idx, chunked.idx)


def test_fuzzy_stage_scores_are_token_sort_ratio(table):
    from rapidfuzz import fuzz

    queries = ["manager shop book", "nurse  staff", "drivr bus", "software developer senior"]
    hits = FuzzyStage(k=3, score_cutoff=0).fit(table).query(queries)
    for q, idx, score in zip(queries, hits.idx, hits.score):
        for i, s in zip(idx, score):
            assert s == pytest.approx(fuzz.token_sort_ratio(q, table.titles_[i]) / 100, abs=0.0051)  # uint8


_WORDS = st.text(alphabet="aeinrsté z", min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(titles=st.lists(_WORDS, min_size=1, max_size=40), query=_WORDS,
       cutoff=st.sampled_from([0, 1, 30, 60, 90, 100]))
def test_fuzzy_char_bound_keeps_every_title_that_scores(titles, query, cutoff):
    """The characters a query shares with a title bound the ratio from above: no title the
    full cdist scores is left out (repeated letters, letters no title has, empty strings)."""
    from rapidfuzz import fuzz, process

    from coder.stages.fuzzy import _CharBound

    scores = process.cdist([query], titles, scorer=fuzz.ratio, dtype=np.uint8, score_cutoff=cutoff)[0]
    kept, top, bottom = _CharBound(titles).reach(query, cutoff)
    assert set(np.flatnonzero(scores).tolist()) <= set(kept.tolist())
    assert np.all(np.diff(kept) > 0)
    # Exactly the titles whose shared characters reach one point below the cutoff.
    shared = [sum((Counter(query) & Counter(t)).values()) for t in titles]
    assert kept.tolist() == [i for i, t in enumerate(titles)
                             if 200 * shared[i] >= max(cutoff - 1, 0) * (len(t) + len(query))]
    assert top.tolist() == [200 * shared[i] for i in kept] and bottom.tolist() == [len(titles[i]) + len(query) for i in kept]


@pytest.mark.parametrize("cutoff", [0, 60])
def test_fuzzy_stage_one_query_alone_as_in_a_block(table, cutoff):
    """One query is scored against the titles `_CharBound` keeps; a block against all: the
    same titles, scores and order."""
    from coder.stages.fuzzy import _BOUNDED_UP_TO

    stage = FuzzyStage(k=4, score_cutoff=cutoff).fit(table)
    for q in ["sofware develper", "nurse", "drivr bus", "zzzz", "", "eeeeeeeeeeeeeeee", "nürse"]:
        alone, block = stage.query([q]), stage.query([q] + ["nurse"] * _BOUNDED_UP_TO)
        assert np.array_equal(alone.idx[0], block.idx[0]) and np.array_equal(alone.score[0], block.score[0]), q


def _fuzzy_reference(query: str, titles: list[str], cutoff: int, k: int) -> list[tuple[int, int]]:
    """Every title scored: the best k (title, score) by score, ties by title number."""
    from rapidfuzz import fuzz, process

    scores = process.cdist([query], titles, scorer=fuzz.ratio, dtype=np.uint8, score_cutoff=cutoff)[0]
    hit = np.flatnonzero(scores)
    return sorted(((int(i), int(scores[i])) for i in hit), key=lambda x: (-x[1], x[0]))[:k]


def _fuzzy_alone(query: str, titles: list[str], cutoff: int, k: int) -> list[tuple[int, int]]:
    stage = FuzzyStage(k=k, score_cutoff=cutoff)
    stage.titles_ = stage.sorted_titles_ = titles
    top = stage._query_bounded(query)
    return [(int(i), int(s)) for i, s in zip(top.idx[0], top.score[0]) if i >= 0]


@settings(max_examples=60, deadline=None)
@given(titles=st.lists(st.text(alphabet="aeinrst z", min_size=0, max_size=18), min_size=100, max_size=400),
       query=st.text(alphabet="aeinrstz ", min_size=0, max_size=24), cutoff=st.sampled_from([0, 30, 60, 80]),
       k=st.sampled_from([1, 3, 5]))
def test_fuzzy_query_alone_ranks_as_scoring_every_title(titles, query, cutoff, k):
    """Scored alone, a query meets the titles with the highest bounds first and the rest only
    where their bound reaches the k-th best so far: the same titles, scores and order (ties by
    title number) as scoring every title."""
    assert _fuzzy_alone(query, titles, cutoff, k) == _fuzzy_reference(query, titles, cutoff, k)


def test_fuzzy_query_alone_takes_the_second_look_and_ranks_the_same():
    from coder.stages.fuzzy import _FIRST_LOOK, _CharBound

    rng = np.random.default_rng(7)
    letters = np.array(list("aeinrst"))
    titles = ["".join(rng.choice(letters, rng.integers(4, 16))) for _ in range(3000)]
    titles += titles[:50]  # equal titles: tied scores
    for query in ["sitter", "tea taster", "aeinrstaeinrst", "ratns"]:
        assert len(_CharBound(titles).candidates(query, 60)) > 2 * _FIRST_LOOK  # the two-pass path
        for k in (1, 5):
            assert _fuzzy_alone(query, titles, 60, k) == _fuzzy_reference(query, titles, 60, k), query


def test_fuzzy_second_look_keeps_a_title_that_rounds_up_to_a_tie():
    """Title 0 scores 93.75, which rounds to the 94 that title 1 (first look) scores: the tie
    goes to title 0, found only if the second look reaches one point below the k-th best
    (rapidfuzz's cutoff applies before rounding). Fillers fill the first look."""
    from rapidfuzz import fuzz

    from coder.stages.fuzzy import _FIRST_LOOK, _CharBound

    query = "abcdefghijklmnop"
    rng = np.random.default_rng(11)
    scramble = lambda chars: "".join(rng.permutation(list(chars)))  # noqa: E731
    titles = ["abcdefghijklmnoz", "bacdefghijklmnop"]  # 93.75 (bound 93.75), 93.75 (bound 100)
    titles += [scramble(query) for _ in range(40)]  # bound 100, scores low
    titles += [scramble(query[:15]) for _ in range(20)]  # bound 96.8
    titles += [scramble(query[:12]) for _ in range(60)]  # bound 85.7
    assert fuzz.ratio(query, titles[0]) == fuzz.ratio(query, titles[1]) == 93.75
    assert len(_CharBound(titles).candidates(query, 60)) > 2 * _FIRST_LOOK
    assert _fuzzy_reference(query, titles, 60, 1) == [(0, 94)]
    assert _fuzzy_alone(query, titles, 60, 1) == [(0, 94)]


def test_tfidf_encoder_matches_sklearn_transform():
    enc = TfidfEncoder().fit(TITLES)
    ours = enc.transform(["staff nurse", "book shop manager", "unseen words"])
    char, word = enc.vectorizers(TITLES)
    assert ours.shape[1] == len(char.vocabulary_) + len(word.vocabulary_)
    norms = np.sqrt(np.asarray(ours.multiply(ours).sum(axis=1))).ravel()
    assert norms == pytest.approx([1, 1, 1], abs=1e-5)


def _sklearn_stack(enc: TfidfEncoder, docs: list[str]) -> sp.csr_matrix:
    """What ``enc`` (fitted on TITLES) should give: sklearn's vectorisers, stacked and normalised."""
    from sklearn.preprocessing import normalize

    char, word = enc.vectorizers(TITLES)
    return normalize(sp.hstack([char.transform(docs) * enc.char_weight,
                                word.transform(docs) * enc.word_weight], format="csr")).astype(np.float32)


def test_tfidf_batch_transform_is_sklearn_to_the_bit():
    """Batches count each word's character n-grams once: the same matrix as sklearn's, bit
    for bit (the model is trained on batch features), for repeated, unseen and odd words."""
    enc = TfidfEncoder(char_ngrams=(3, 5), max_df=0.5).fit(TITLES)
    docs = [*TITLES, "nurse nurse  nurse", "", "x", "Staff NURSE", "zzqx unseen", "book-shop  manager"] * 12
    enc.transform(docs[:80])  # warm the word cache, then transform again through it
    ours, theirs = enc.transform(docs), _sklearn_stack(enc, docs)
    assert ours.dtype == theirs.dtype == np.float32
    assert (ours.indptr == theirs.indptr).all() and (ours.indices == theirs.indices).all()
    assert (ours.data == theirs.data).all()


def test_character_ngrams_are_sklearns():
    enc = TfidfEncoder(char_ngrams=(2, 5)).fit(TITLES)
    sk = enc.vectorizers(TITLES)[0].build_analyzer()
    for word in ["a", "ab", "abc", "abcd", "abcde", "abcdef", "straße", "n°1", "x-ray's", "ÉCOLE"]:
        assert enc._analyzer(enc._preprocess(word)) == sk(word), word


def test_tfidf_single_transform_is_sklearn_to_the_bit():
    """One type-ahead title gets exactly the vector it gets in a batch (and from sklearn)."""
    enc = TfidfEncoder().fit(TITLES)
    docs = ["staff nurse", "nurse nurse", "", "Book Shop manager", "unseen", "staff  nurse (nhs)"]
    for chunk in [[d] for d in docs] + [docs]:  # each alone, and all six (still the few-document path)
        ours, theirs = enc.transform(chunk), _sklearn_stack(enc, chunk)
        assert ours.indptr.tolist() == theirs.indptr.tolist()
        assert ours.indices.tolist() == theirs.indices.tolist()
        assert (ours.data == theirs.data).all()
    few, many = enc.transform(docs[:3]), enc.transform(docs * 20)[:3]
    assert (few != many).nnz == 0


def test_small_sparse_products_equal_scipy():
    from coder.stages.base import SMALL_ROWS, dense_product, rowwise_dot

    rng = np.random.default_rng(3)
    a = sp.random(4, 300, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    b = sp.random(300, 40, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    assert a.shape[0] <= SMALL_ROWS
    assert (dense_product(a, b) == (a @ b).toarray()).all()  # to the bit: float32, SciPy's order
    titles = sp.random(50, 300, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    ia, ib = rng.integers(0, 4, 200), rng.integers(0, 50, 200)
    expected = np.asarray(a[ia].multiply(titles[ib]).sum(axis=1)).ravel()
    assert rowwise_dot(a, ia, titles, ib) == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert rowwise_dot(a, ia[:0], titles, ib[:0]).shape == (0,)
    big = sp.random(SMALL_ROWS + 5, 300, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    assert (dense_product(big, b) == (big @ b).toarray()).all()  # many rows: the same, to the bit
    wide = sp.random(300, 20_000, density=0.01, format="csr", dtype=np.float32, random_state=rng)
    assert (dense_product(big, wide) == (big @ wide).toarray()).all()  # too wide to densify: SciPy's


def test_csr_product_is_scipys_product_array_for_array():
    from coder.stages import base

    rng = np.random.default_rng(5)
    a = sp.random(3, 200, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    b = sp.random(200, 30, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    a.data[::3] *= -1  # opposite signs, so some sums cancel
    ours, theirs = base.csr_product(a, b), a @ b
    assert base.csr_matmat is not None  # the direct call is what this SciPy gets
    assert ours[0].tolist() == theirs.indptr.tolist()
    assert ours[1].tolist() == theirs.indices.tolist()  # SciPy's (unsorted) order
    assert ours[2].tobytes() == theirs.data.tobytes()  # to the bit
    # Other types take SciPy's public product: the same entries.
    indptr, indices, data = base.csr_product(a.astype(np.float64), b)
    assert indptr.tolist() == theirs.indptr.tolist() and np.allclose(data, theirs.data)
    empty = sp.csr_matrix((2, 200), dtype=np.float32)
    assert base.csr_product(empty, b)[0].tolist() == [0, 0, 0]
    assert base.dense_product(empty, b).shape == (2, 30)


def test_queries_rows_of_each_field(table):
    queries = Queries(["staff nurse", "tester"], ["nhs", ""], ["", ""], table)
    expected = table.encoder_.transform(["staff nurse", "tester", "nhs", "", "staff nurse nhs", "tester"])
    for name, rows in (("title", slice(0, 2)), ("industry", slice(2, 4)), ("full", slice(4, 6))):
        assert (queries.vectors(name) != expected[rows]).nnz == 0, name
    assert queries.vectors("description").shape == (2, table.encoder_.n_features_)
    assert queries.vectors("description").nnz == 0  # no query has one: zero rows
    none = Queries([], [], [], table)
    assert none.vectors("full").shape == (0, table.encoder_.n_features_)


def test_title_retrievers_share_one_space(table):
    """The TF-IDF and description stages search the same index titles: one fitted space,
    equal to fitting it alone, kept once when the model is pickled."""
    import pickle

    from coder.stages.description import DescriptionStage
    from coder.stages.tfidf import TfidfStage

    tfidf, description = TfidfStage().fit(table), DescriptionStage().fit(table)
    assert tfidf.retriever_.matrix_t_ is description.retriever_.matrix_t_
    assert tfidf.retriever_.encoder_ is description.retriever_.encoder_
    alone = TfidfRetriever(k=tfidf.k).fit(table.titles_)
    assert (alone.matrix_t_ != tfidf.retriever_.matrix_t_).nnz == 0
    assert alone.encoder_.char_.vocabulary_ == tfidf.retriever_.encoder_.char_.vocabulary_
    tfidf2, description2 = pickle.loads(pickle.dumps((tfidf, description)))
    assert tfidf2.retriever_.matrix_t_ is description2.retriever_.matrix_t_
    assert "_title_spaces" not in pickle.loads(pickle.dumps(table)).__dict__


def test_tfidf_retriever_finds_compounds_and_word_overlap():
    stage = TfidfRetriever(k=3, max_df=1.0).fit(TITLES)
    hits = stage.query(["book shop manager", "nursing", "software"])
    assert {TITLES[i] for i in hits.idx[0, :2]} == {"bookshop manager", "shop manager"}
    assert TITLES[hits.idx[1, 0]] in {"nurse", "staff nurse"}
    assert {TITLES[i] for i in hits.idx[2, :2]} == {"software developer", "software engineer"}
    assert isinstance(hits, TopK)


def test_classifier_stage_learns_codes(table):
    stage = ClassifierStage(k=2).fit(table)
    scores = stage.scores(table.encoder_.transform(["registered nurse", "software tester"]))
    assert scores.shape == (2, table.n_codes)
    assert table.codes_[scores.argmax(axis=1)].tolist() == ["3211", "2132"]
    assert sp.issparse(stage.coef_)


def test_classifier_reads_title_and_industry_apart(table):
    # An industry word must not pass for a title word: the title-only score ignores it.
    stage = ClassifierStage(k=3).fit(table)
    q = Queries(["sales assistant"], ["petrol station"], [""], table)
    title, full = stage._scores(q, "title"), stage._scores(q, "full")
    petrol = list(table.codes_).index("7112")
    assert full[0, petrol] > title[0, petrol]


def test_fields_share_one_encoding_of_each_distinct_text(table):
    # A title without an industry is its own "full" text; repeated strings are encoded once.
    # Every field's rows must be what encoding it alone gives.
    titles, inds, descs = ["nurse", "bus driver", "nurse", "shop manager"], ["", "buses", "", "bus driver"], \
        ["", "drive a bus", "care", "nurse"]
    queries = Queries(titles, inds, descs, table)
    for name in Queries.FIELDS:
        expected = table.encoder_.transform(queries.texts(name))
        got = queries.vectors(name)
        assert got.shape == expected.shape and (got != expected).nnz == 0, name
    assert queries.full_rows.tolist() == [1, 3]


def test_classifier_scores_titles_without_industry_once(table):
    stage = ClassifierStage(k=3).fit(table)
    q = Queries(["sales assistant", "nurse", "bus driver"], ["petrol station", "", "buses"], ["", "", ""], table)
    full = stage._scores(q, "full")
    assert np.array_equal(full, stage.scores(q.vectors("full")))  # as if every row were scored
    assert np.array_equal(full[1], stage._scores(q, "title")[1])


def test_wordcode_weighs_head_modifier_and_context(table):
    stage = WordCodeStage().fit(table)
    queries = Queries(["night manager", "staff nurse", "zzz"], ["public house", "", ""], ["", "", "drive a bus"], table)
    pairs = _all_pairs(queries.n, table.n_codes)
    f = stage.features(queries, pairs)
    code = {c: i for i, c in enumerate(table.codes_)}
    def at(name, qi, c):
        return f[name][(pairs.q == qi) & (pairs.code == code[c])][0]
    assert at("w_head", 0, "1224") > at("w_head", 0, "3211")
    assert at("w_mod", 1, "3211") > at("w_mod", 1, "1163")
    assert at("w_ctx", 0, "1224") > at("w_ctx", 0, "1163")
    assert at("w_desc", 2, "8213") > at("w_desc", 2, "3211")
    assert not f["w_head"][pairs.q == 2].any()


def _all_pairs(n: int, n_codes: int) -> Pairs:
    q = np.repeat(np.arange(n), n_codes)
    z = np.zeros(0, np.int64)
    return Pairs(n_queries=n, q=q, code=np.tile(np.arange(n_codes), n), tq=z, tt=z, e_pair=z, e_entry=z, e_tp=z)


def test_every_stage_follows_the_protocol(table):
    queries = Queries(["nurse", "sales assistant", "", "manager"], ["", "supermarket", "", "pub"],
                      ["", "fill shelves", "", "run the pub"], table)
    pairs = _all_pairs(queries.n, table.n_codes)
    for cls in STAGES:
        stage = cls().fit(table, seed=0)
        assert isinstance(stage, Stage) and stage.name and isinstance(stage.FEATURES, tuple)
        made = stage.propose(queries)
        for props in [] if made is None else [made] if isinstance(made, Proposals) else made:
            assert isinstance(props, Proposals) and props.kind in ("title", "code")
            assert len(props.q) == len(props.target) == len(props.score)
            assert ((props.score >= -1e-6) & (props.score <= 1 + 1e-6)).all()
        feats = stage.features(queries, pairs)
        assert set(feats) == set(cls.FEATURES)
        for name, values in feats.items():
            assert np.asarray(values).shape == (len(pairs),), (cls.name, name)
            assert np.isfinite(values).all(), (cls.name, name)


class _ShoutStage:
    """A new signal: one module, one line in the list of stages."""

    name = "shout"
    FEATURES = ("shout",)

    def fit(self, table, *, seed=0):
        self.n_codes = table.n_codes
        return self

    def propose(self, queries):
        rows = np.flatnonzero([t.isupper() for t in queries.titles])
        return Proposals("code", rows, np.zeros(len(rows), np.int64), np.ones(len(rows), np.float32))

    def features(self, queries, pairs):
        return {"shout": (pairs.code == 0).astype(np.float32)}


def test_adding_a_stage_is_one_line():
    stages = (*STAGES, _ShoutStage)
    gen = CandidateGenerator("soc2000", stages=stages).fit(tiny_entries())
    assert gen.features_ == feature_names(stages) and gen.features_[-1] == "shout"
    assert gen.features_[: len(BASE_FEATURES)] == BASE_FEATURES
    cands = gen.generate(["ZZZ", "nurse"], ["", ""])
    frame = cands.frame()
    shouted = frame[(frame.q == 0) & (frame.code == 0)]
    assert shouted.iloc[0]["method"] == "shout" and shouted.iloc[0]["shout"] == 1.0
    assert (frame.loc[frame.q == 1, "method"] != "shout").all()


def test_code_proposals_without_any_title_match():
    # A query no title stage matches, but a code stage proposes for ("E", "x"): no entry rows.
    gen = CandidateGenerator("soc2000").fit(tiny_entries())
    cands = gen.generate(["e", "x", "zzzz qqq"], ["", "", ""])
    assert len(cands.q) == len(cands.X) and np.isfinite(cands.X).all()


def test_feature_names_must_not_clash():
    class Clash(_ShoutStage):
        FEATURES = ("cos",)

    with pytest.raises(ValueError, match="clash"):
        feature_names((*STAGES, Clash))


def test_industry_chooses_among_entries_sharing_the_title():
    gen = CandidateGenerator("soc2000").fit(tiny_entries())
    cands = gen.generate(["manager", "manager", "sales assistant"], ["public house", "", "supermarket"])
    frame = cands.frame()
    code = lambda c: list(gen.codes_).index(c)  # noqa: E731
    pub = frame[(frame.q == 0) & (frame.code == code("1224"))].iloc[0]
    assert pub["ind"] > 0.8 and pub["hit"] == 1 and cands.context_match[(cands.q == 0) & (cands.code == code("1224"))][0]
    assert cands.vague.tolist() == [True, True, False]
    assert cands.hit.tolist() == [True, False, True]
    # "supermarket" matches no qualifier of "sales assistant": its unqualified entry is the hit.
    plain = frame[(frame.q == 2) & (frame.code == code("7111"))].iloc[0]
    assert plain["hit"] == 1 and plain["hit_plain"] == 1
    petrol = frame[(frame.q == 2) & (frame.code == code("7112"))]
    assert petrol.empty or petrol.iloc[0]["hit"] == 0


def test_description_proposes_what_they_mainly_do():
    gen = CandidateGenerator("soc2000").fit(tiny_entries())
    cands = gen.generate(["operative"], ["warehouse"], ["i am a fork lift truck driver"])
    frame = cands.frame()
    row = frame[frame.code == list(gen.codes_).index("8222")]
    assert not row.empty and row.iloc[0]["d_phrase"] == 4 and row.iloc[0]["method"] == "description"


def test_tfidf_encoder_equals_stacked_sklearn_vectorisers():
    from sklearn.preprocessing import normalize

    docs = ["", *TITLES, "", "", "unseen qqq", "nurse nurse nurse staff", ""]
    enc = TfidfEncoder(char_weight=0.7).fit(TITLES)
    char, word = enc.vectorizers(TITLES)
    expected = normalize(sp.hstack([char.transform(docs) * 0.7, word.transform(docs)]).tocsr())
    got = enc.transform(docs)
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-6


def test_tfidf_encoder_batch_and_single_paths_agree():
    # Big batches share each word's n-grams, small ones take a plain pass: same numbers.
    enc = TfidfEncoder().fit(TITLES)
    docs = (TITLES + ["", "nurse nurse staff", "unseen qqq"]) * 10
    whole = enc.transform(docs)
    one_by_one = sp.vstack([enc.transform([d]) for d in docs]).tocsr()
    assert len(docs) > 64 and abs(whole - one_by_one).max() < 1e-6


@pytest.mark.parametrize("shape", [(3, 7), (40, 1001), (1, 5), (0, 9), (4, 8)])
def test_ranking_a_mostly_empty_score_block_equals_ranking_it_as_sparse(shape):
    """The fuzzy stage ranks its uint8 score blocks without building a sparse matrix: the
    same best entries, in the same order (ties by column), as `top_k_sparse`."""
    from coder.stages.base import nonzero_bytes, top_k_entries, top_k_sparse

    rng = np.random.default_rng(sum(shape))
    block = ((rng.random(shape) < 0.05) * rng.integers(60, 101, shape)).astype(np.uint8)
    block[:, :3] = 80  # ties
    pos = nonzero_bytes(block)
    assert pos.tolist() == np.flatnonzero(block).tolist()
    rows, cols = np.divmod(pos, shape[1])
    ours = top_k_entries(rows, cols, block.reshape(-1)[pos], shape[0], 5)
    theirs = top_k_sparse(sp.csr_matrix(block), 5)
    assert (ours.idx == theirs.idx).all() and (ours.score == theirs.score).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 80), st.sampled_from([np.float32, np.uint8]), st.integers(0, 2**31 - 1))
def test_top_k_entries_orders_as_a_lexsort_with_ties_in_given_order(n, m, dtype, seed):
    """Best k per row by descending score, ties (and -0.0 against 0.0) in the given order."""
    from coder.stages.base import top_k_entries

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.integers(0, n, m))
    cols = rng.permutation(m)
    if dtype is np.uint8:
        data = rng.integers(1, 6, m).astype(np.uint8)  # few values: many ties
    else:
        data = rng.choice(np.array([-0.0, 0.0, 0.25, 0.5, 1.0, np.inf], np.float32), m)
    k = 3
    got = top_k_entries(rows, cols, data, n, k)
    order = np.lexsort((-data.astype(np.float64), rows))
    for r in range(n):
        mine = order[rows[order] == r][:k]
        assert got.idx[r, :len(mine)].tolist() == cols[mine].tolist()
        assert (got.idx[r, len(mine):] == -1).all()


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 20), st.integers(0, 3000), st.sampled_from([1, 3, 10]), st.booleans(),
       st.sampled_from([np.float32, np.uint8]), st.integers(0, 2**31 - 1))
def test_top_k_entries_cut_to_the_likely_best_keeps_every_tie(n, m, k, few_values, dtype, seed):
    """Rows with many entries are first cut to the value bins of their k-th best (`_may_rank`):
    the result is still a lexsort's, ties in the given order, rows with fewer than k whole."""
    from coder.stages.base import top_k_entries

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, m, p=np.r_[0.9, np.full(n - 1, 0.1 / max(n - 1, 1))] if n > 1 else None))
    cols = rng.permutation(m)
    if dtype is np.uint8:
        data = rng.integers(60, 101 if not few_values else 63, m).astype(np.uint8)
    elif few_values:
        data = rng.choice(np.array([0.05, 0.3, 0.3000001, 0.7, 0.99], np.float32), m)
    else:
        data = (rng.random(m) ** 3).astype(np.float32)
    got = top_k_entries(rows, cols, data, n, k)
    order = np.lexsort((-data.astype(np.float64), rows))
    for r in range(n):
        mine = order[rows[order] == r][:k]
        assert got.idx[r, :len(mine)].tolist() == cols[mine].tolist()
        assert got.score[r, :len(mine)].tolist() == data[mine].astype(np.float32).tolist()
        assert (got.idx[r, len(mine):] == -1).all()


def test_the_cut_drops_entries_that_cannot_rank_and_keeps_ties():
    from coder.stages.base import _may_rank

    rows = np.repeat([0, 1, 2], [100, 100, 2])
    data = np.r_[np.linspace(0.05, 1.0, 100), np.full(100, 0.5), [0.2, 0.9]].astype(np.float32)
    keep = _may_rank(rows, data, 3, 3)
    assert keep[:100].sum() < 10 and keep[97:100].all()  # row 0: its best few bins only
    assert keep[100:200].all()  # row 1: one value, all tied
    assert keep[200:].all()  # row 2: fewer than k
    assert _may_rank(rows, np.full(len(rows), 0.5, np.float32), 3, 3) is None  # nothing to cut by
    assert _may_rank(rows, np.r_[data[:-1], np.inf].astype(np.float32), 3, 3) is None


def test_top_k_entries_refuses_scores_float32_would_round():
    from coder.stages.base import top_k_entries

    with pytest.raises(ValueError, match="float32 or narrower"):
        top_k_entries(np.zeros(2, np.int64), np.arange(2), np.array([0.1, 0.2]), 1, 1)


def test_top_k_above_ranks_only_scores_past_the_floor():
    """The same as `top_k_dense` where scores differ; ties by column; nothing at the floor."""
    from coder.stages import top_k_above

    rng = np.random.default_rng(3)
    scores = rng.random((40, 300)).astype(np.float32)
    dense, above = top_k_dense(scores, 7, min_score=0.6), top_k_above(scores, 7, 0.6)
    np.testing.assert_array_equal(dense.idx, above.idx)
    np.testing.assert_array_equal(dense.score, above.score)
    tied = np.array([[0.5, 0.9, 0.7, 0.9, 0.5]], np.float32)
    got = top_k_above(tied, 4, 0.5)
    assert got.idx.tolist() == [[1, 3, 2, -1]] and got.score[0, :3].tolist() == pytest.approx([0.9, 0.9, 0.7])
    assert top_k_above(np.zeros((2, 0), np.float32), 3, 0.5).idx.tolist() == [[-1] * 3] * 2
    # ``cap`` clips only what passes, as clipping the whole block first would (ties included).
    over = np.array([[1.02, 0.4, 1.01, 0.97, 0.55, 0.61, 1.0, 0.3, 0.9]], np.float32)
    for capped, clipped in ((top_k_above(over, 5, 0.5, cap=1.0), top_k_above(np.minimum(over, 1.0), 5, 0.5)),
                            (top_k_above(scores, 7, 0.6, cap=0.8), top_k_above(np.minimum(scores, 0.8), 7, 0.6))):
        np.testing.assert_array_equal(capped.idx, clipped.idx)
        np.testing.assert_array_equal(capped.score, clipped.score)
    assert top_k_above(over, 5, 0.5, cap=1.0).idx.tolist() == [[0, 2, 6, 3, 8]]
    assert (top_k_above(over, 5, 1.0, cap=1.0).idx == -1).all()


def test_top_k_rescored_ranks_as_the_exact_scores_do():
    """Approximate scores as far from the exact ones as allowed, each pushed the way that
    reorders near-ties most (the best exact entries down, the rest up): the same k in the same
    order as ranking every exact score, while scoring few of them exactly. A margin of one
    slack instead of two loses entries here."""
    from coder.stages import top_k_above
    from coder.stages.base import top_k_rescored

    rng = np.random.default_rng(5)
    slack = 0.05
    # The last: the k best near the floor, which then decides what is scored.
    for cap, min_score, k, top in ((None, 0.5, 5, 110), (1.0, 0.5, 5, 110), (None, 0.3, 12, 110), (1.0, 0.9, 3, 110),
                                   (None, 0.55, 12, 60)):
        exact = (rng.integers(0, top, (30, 400)) / 100).astype(np.float32)  # ties 0.01 apart
        ref = top_k_above(exact, k, min_score, cap=cap)
        kth = np.sort(np.minimum(exact, 1.0 if cap else np.inf), axis=1)[:, -k][:, None]
        approx = exact + np.where(np.minimum(exact, 1.0 if cap else np.inf) >= kth, -0.99, 0.99) * slack
        asked = []

        def score(r, c):
            asked.append(len(r))
            return exact[r, c]

        got = top_k_rescored(approx.astype(np.float32), score, k, min_score, slack=slack, cap=cap)
        np.testing.assert_array_equal(got.idx, ref.idx)
        np.testing.assert_array_equal(got.score, ref.score)
        assert sum(asked) < exact.size / 4
    empty = top_k_rescored(np.zeros((2, 0), np.float32), lambda r, c: np.zeros(len(r), np.float32), 3, 0.5, slack=0.1)
    assert empty.idx.tolist() == [[-1] * 3] * 2


def test_semantic_search_finds_what_scoring_every_title_finds(coder):
    """Through the tokens, cosines stay within a quarter of the slack of the stored vectors'
    over every index title, and a few titles' k nearest are those of scoring every title one
    dot product each, to the bit; many titles' come from one matrix product, as the builds
    learned them: the same titles, the cosines within a few units in the last place."""
    from coder.stages.base import top_k_above
    from coder.stages.semantic import _FEW, _SLACK, _dots

    stage = {s.name: s for s in coder.model.generator.stages_}["semantic"]
    titles = stage.titles16_
    texts = [str(t) for t in coder.model.generator.table_.titles_[::97]]
    texts += ["nurse in a care home", "looks after the grounds", "software dev", "till worker", "zzqx", "the"]
    vectors = stage.embedder_.embed(texts)
    n, m = len(vectors), len(titles)
    exact = _dots(vectors, np.repeat(np.arange(n), m), titles, np.tile(np.arange(m), n)).reshape(n, m)
    assert np.abs(np.stack([stage._by_tokens(v) for v in vectors]) - exact).max() < _SLACK / 4
    want = top_k_above(exact, stage.k, stage.min_score, cap=1.0)
    many = stage._nearest(vectors, np.arange(n), stage.k)
    assert many.q.tolist() == np.repeat(np.arange(n), (want.idx >= 0).sum(axis=1)).tolist()
    assert many.target.tolist() == want.idx[want.idx >= 0].tolist()
    np.testing.assert_allclose(many.score, want.score[want.idx >= 0], rtol=0, atol=1e-6)
    for start in range(0, n, _FEW):
        few = stage._nearest(vectors, np.arange(start, min(start + _FEW, n)), stage.k)
        rows = (want.idx[start:start + _FEW] >= 0)
        assert few.target.tolist() == want.idx[start:start + _FEW][rows].tolist()
        np.testing.assert_array_equal(few.score, want.score[start:start + _FEW][rows])
