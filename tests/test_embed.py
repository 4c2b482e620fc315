"""Static embeddings (coder/embed.py) on the shipped data/word_vectors.npz: NumPy only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coder.embed import StaticEmbedder, basic_tokenize


@pytest.fixture(scope="module")
def emb() -> StaticEmbedder:
    return StaticEmbedder.load()


def _sim(e: StaticEmbedder, a: str, b: str) -> float:
    x = e.embed([a, b])
    return float(x[0] @ x[1])


def test_shipped_file(emb: StaticEmbedder) -> None:
    n = len(emb.tokens)
    assert emb.vectors.shape == (n, emb.dim) and emb.dim <= 256
    assert emb.vectors.dtype == np.float16
    assert emb.weights.shape == (n,) and np.all(emb.weights > 0) and np.all(emb.weights <= 1)
    assert len(set(emb.tokens)) == n
    assert {"nurse", "##man", "groundsman"} <= set(emb.index)  # a word added whole
    assert emb.metadata["dims"] == emb.dim
    assert emb.metadata["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    json.dumps(emb.metadata)


def test_shapes_dtype_and_norm(emb: StaticEmbedder) -> None:
    texts = ["Staff nurse", "HGV driver", "software developer", "looks after the grounds"]
    x = emb.embed(texts)
    assert x.shape == (4, emb.dim) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, emb.dim)


@pytest.mark.parametrize("text", ["", "   ", "!!!", "-/-", "\x00\x01", "\ufffd", "😀"])
def test_nothing_known_gives_zero_row(emb: StaticEmbedder, text: str) -> None:
    # Punctuation is in the vocabulary but may carry a tiny weight; either way a valid row.
    row = emb.embed([text])[0]
    norm = float(np.linalg.norm(row))
    assert np.all(np.isfinite(row)) and (norm == 0.0 or abs(norm - 1.0) < 1e-5)


def test_empty_and_whitespace_are_exactly_zero(emb: StaticEmbedder) -> None:
    assert not emb.embed(["", "   \t\n"]).any()


@pytest.mark.parametrize("text", [
    "Naïve café worker", "Ärztin", "İstanbul guide", "中文 teacher", "ﬁre ﬁghter",
    "x" * 150, "nurse " * 5000, "a\u2028b", "Ｆｕｌｌ ｗｉｄｔｈ", "€100/hr", "—", "o'neill & co.",
])
def test_odd_input_never_raises(emb: StaticEmbedder, text: str) -> None:
    row = emb.embed([text])[0]
    norm = float(np.linalg.norm(row))
    assert np.all(np.isfinite(row)) and (norm == 0.0 or abs(norm - 1.0) < 1e-5)


def test_non_string_entries_give_zero_rows(emb: StaticEmbedder) -> None:
    x = emb.embed(["nurse", None, float("nan")])  # type: ignore[list-item]
    assert np.linalg.norm(x[0]) > 0.99 and not x[1:].any()


def test_accents_and_case_do_not_matter(emb: StaticEmbedder) -> None:
    x = emb.embed(["CAFÉ MANAGER", "cafe manager"])
    np.testing.assert_allclose(x[0], x[1], atol=1e-6)


def test_deterministic_and_order_independent(emb: StaticEmbedder) -> None:
    texts = ["nurse", "bricklayer", "care worker", "", "nurse"]
    a = emb.embed(texts)
    b = StaticEmbedder.load().embed(texts[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[4])


def test_batches_match_single_calls(emb: StaticEmbedder) -> None:
    # Over 8,192 distinct texts (one tokenizing batch), with repeats and varied lengths.
    texts = [f"{'senior ' * (i % 5)}assistant {i} nurse" if i % 3 else "" for i in range(12000)]
    texts += texts[:50]
    batch = emb.embed(texts)
    for i in (0, 1, 2, 4, 8191, 8192, 8193, 11999, 12001):
        np.testing.assert_array_equal(batch[i], emb.embed([texts[i]])[0])  # to the bit


def test_tokenizer_matches_bert_on_plain_words(emb: StaticEmbedder) -> None:
    # Expected pieces from the model's own tokenizer (transformers BertTokenizer).
    assert basic_tokenize("Foreman-in-charge, H.G.V. driver's mate") == [
        "foreman", "-", "in", "-", "charge", ",", "h", ".", "g", ".", "v", ".",
        "driver", "'", "s", "mate"]
    assert basic_tokenize("Naïve Ångström 中文") == ["naive", "angstrom", "中", "文"]
    assert emb.wordpiece("unbelievableness") == ["unbelievable", "##ness"]
    assert emb.wordpiece("groundsman") == ["groundsman"]  # embedded whole, not grounds ##man


# Pairs with no word in common: only vectors that carry meaning put them close.
SYNONYMS = [
    ("looks after the grounds", "groundsman", "accountant"),
    ("software developer", "programmer", "bus driver"),
    ("chef", "cook", "electrician"),
    ("care worker", "carer", "plumber"),
    ("accounts clerk", "bookkeeper", "farmer"),
    ("fixes cars", "motor mechanic", "nurse"),
    ("works in a shop", "sales assistant", "pilot"),
]


@pytest.mark.parametrize("query, near, far", SYNONYMS)
def test_meaning_without_shared_words(emb: StaticEmbedder, query: str, near: str, far: str) -> None:
    assert _sim(emb, query, near) > _sim(emb, query, far) + 0.15


def test_shared_words_count(emb: StaticEmbedder) -> None:
    assert _sim(emb, "nurse", "staff nurse") > _sim(emb, "nurse", "bricklayer") + 0.5
    assert _sim(emb, "teaching assistant", "classroom assistant") > 0.7


def test_checks_would_fail_on_meaningless_vectors(emb: StaticEmbedder) -> None:
    """Guard for the tests above: the same vectors shuffled across tokens fail most of them."""
    rng = np.random.default_rng(0)
    shuffled = StaticEmbedder(emb.tokens, emb.vectors[rng.permutation(len(emb.tokens))], emb.weights)
    passed = sum(_sim(shuffled, q, a) > _sim(shuffled, q, b) + 0.15 for q, a, b in SYNONYMS)
    assert passed <= 2


def test_pickles_with_the_model(emb: StaticEmbedder) -> None:
    """A fitted semantic stage carries the vectors: a pickled embedder embeds the same."""
    import pickle

    again = pickle.loads(pickle.dumps(emb))
    texts = ["staff nurse", "bus driver", "zzqx", ""]
    np.testing.assert_array_equal(again.embed(texts), emb.embed(texts))
    assert again.wordpiece("plumbing") == emb.wordpiece("plumbing")


def test_bag_of_tokens_sums_to_the_embedding(emb: StaticEmbedder) -> None:
    """A text's token counts times the weighted token vectors, scaled to length one, is its
    embedding (what the semantic search relies on); a repeated token counts twice."""
    texts = ["staff nurse", "nurse nurse", "plumbing and heating", "  ", None]
    bag = emb.bag(texts)
    assert bag.shape == (5, len(emb.tokens)) and bag[4].nnz == 0 and bag[3].nnz == 0
    assert bag[1].data.tolist() == [2.0]
    raw = bag @ emb.weighted(np.arange(len(emb.tokens)))
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0), emb.embed(texts),
                               atol=1e-6)
