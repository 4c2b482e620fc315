"""TF-IDF nearest neighbours over word and character n-grams (sparse, top-k, chunked)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from . import TopK, top_k_sparse

__all__ = ["TfidfEncoder", "TfidfStage", "split_tokens"]


def split_tokens(text: str) -> list[str]:
    """Tokens of an already-normalised string (module level so joblib can pickle it)."""
    return text.split()


class TfidfEncoder:
    """Word (1-2 gram) and character (2-4 gram, within words) TF-IDF, stacked and L2-normalised.

    Characters carry typos and compounds ("bookshop"); words carry multi-word meaning.
    """

    def __init__(self, *, char_ngrams: tuple[int, int] = (2, 4), max_df: float = 1.0,
                 char_weight: float = 1.0, word_weight: float = 1.0):
        self.char_ngrams = char_ngrams
        self.max_df = max_df
        self.char_weight = char_weight
        self.word_weight = word_weight

    def fit(self, docs: Sequence[str]) -> "TfidfEncoder":
        self.char_ = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams, sublinear_tf=True,
            max_df=self.max_df, dtype=np.float32,
        ).fit(docs)
        self.word_ = TfidfVectorizer(
            analyzer="word", tokenizer=split_tokens, token_pattern=None, lowercase=False,
            ngram_range=(1, 2), sublinear_tf=True, max_df=max(self.max_df, 0.05),
            dtype=np.float32,
        ).fit(docs)
        return self

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        docs = list(docs)
        if not hasattr(self, "_analyzers"):
            self._analyzers = (self.char_.build_analyzer(), self.word_.build_analyzer())
        char, word = self._analyzers
        stacked = sp.hstack(
            [_tfidf(self.char_, char, docs) * self.char_weight,
             _tfidf(self.word_, word, docs) * self.word_weight],
            format="csr",
        )
        return normalize(stacked).astype(np.float32)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_analyzers", None)  # rebuilt on first use; no need to pickle closures
        return state


def _tfidf(vectorizer: TfidfVectorizer, analyzer, docs: list[str]) -> sp.csr_matrix:
    """`vectorizer.transform(docs)` without sklearn's per-call validation (~1 ms, the bulk of
    the time for one title), using only its public fitted attributes."""
    vocab = vectorizer.vocabulary_
    indptr, indices, values = [0], [], []
    for doc in docs:
        counts: dict[int, int] = {}
        for gram in analyzer(doc):
            j = vocab.get(gram)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        indices.extend(counts)
        values.extend(counts.values())
        indptr.append(len(indices))
    X = sp.csr_matrix((np.asarray(values, np.float64), np.asarray(indices, np.int32), indptr),
                      shape=(len(docs), len(vocab)))
    X.sort_indices()
    if vectorizer.sublinear_tf:
        X.data = np.log(X.data) + 1.0
    X.data *= vectorizer.idf_[X.indices]
    return normalize(X)


class TfidfStage:
    """Cosine nearest neighbours of queries among fitted documents.

    Retrieval drops n-grams found in more than ``max_df`` of the documents ("er ", " ma"):
    they barely change the ranking but make the sparse product nearly dense (20x slower).
    Callers that need exact similarities use a full `TfidfEncoder`.
    """

    def __init__(self, *, k: int = 10, chunk: int = 1024, min_score: float = 0.05,
                 max_df: float = 0.02):
        self.k = k
        self.chunk = chunk
        self.min_score = min_score
        self.max_df = max_df

    def fit(self, docs: Sequence[str]) -> "TfidfStage":
        self.encoder_ = TfidfEncoder(char_ngrams=(3, 5), max_df=self.max_df).fit(docs)
        self.matrix_t_ = self.encoder_.transform(docs).T.tocsr()
        return self

    def query(self, docs: Sequence[str]) -> TopK:
        return self.query_vectors(self.encoder_.transform(docs))

    def query_vectors(self, q: sp.csr_matrix) -> TopK:
        out = TopK.empty(q.shape[0], self.k)
        for start in range(0, q.shape[0], self.chunk):
            sims = (q[start : start + self.chunk] @ self.matrix_t_).tocsr()
            sims.data[sims.data < self.min_score] = 0
            sims.eliminate_zeros()
            top = top_k_sparse(sims, self.k)
            out.idx[start : start + top.idx.shape[0]] = top.idx
            out.score[start : start + top.idx.shape[0]] = top.score
        return out
