"""TF-IDF nearest neighbours over word and character n-grams (sparse, top-k, chunked)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

from .base import Pairs, Proposals, Queries, TopK, top_k_sparse

__all__ = ["TfidfEncoder", "TfidfRetriever", "TfidfStage", "rowwise_dot", "split_tokens"]


_SKLEARN_BATCH = 64


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
        # At least one document's worth, so a tiny index (tests) keeps its rarest n-grams.
        max_df = max(self.max_df, 1.0 / max(len(docs), 1))
        self.char_ = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams, sublinear_tf=True,
            max_df=max_df, dtype=np.float32,
        ).fit(docs)
        self.word_ = TfidfVectorizer(
            analyzer="word", tokenizer=split_tokens, token_pattern=None, lowercase=False,
            ngram_range=(1, 2), sublinear_tf=True, max_df=max(max_df, 0.05),
            dtype=np.float32,
        ).fit(docs)
        return self

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised rows of [char TF-IDF * char_weight, word TF-IDF * word_weight].

        Equal to stacking the two vectorisers' ``transform`` outputs, but built in one pass
        without sklearn's per-call validation, which costs more than the work itself for the
        single titles a type-ahead user sends. Large batches go through sklearn, which is faster
        per title once its fixed cost is spread.
        """
        docs = list(docs)
        if len(docs) > _SKLEARN_BATCH:
            stacked = sp.hstack([self.char_.transform(docs) * self.char_weight,
                                 self.word_.transform(docs) * self.word_weight], format="csr")
            return normalize(stacked).astype(np.float32)
        parts = self._parts()
        indptr, indices, values = [0], [], []
        for doc in docs:
            for analyzer, vocab, idf, offset, weight, sublinear in parts:
                counts: dict[int, int] = {}
                for gram in analyzer(doc):
                    j = vocab.get(gram)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
                if not counts:
                    continue
                keys = sorted(counts)
                vals = [((math.log(counts[j]) + 1.0) if sublinear else counts[j]) * idf[j] for j in keys]
                scale = weight / math.sqrt(sum(v * v for v in vals))
                indices.extend(j + offset for j in keys)
                values.extend(v * scale for v in vals)
            indptr.append(len(indices))
        data = np.asarray(values, np.float64)
        ptr = np.asarray(indptr, np.int64)
        if len(data):
            lengths = np.diff(ptr)
            rows = np.repeat(np.arange(len(lengths)), lengths)
            data /= np.sqrt(np.bincount(rows, weights=data * data, minlength=len(lengths)))[rows]
        return sp.csr_matrix(
            (data.astype(np.float32), np.asarray(indices, np.int32), ptr.astype(np.int32)),
            shape=(len(indptr) - 1, self.n_features_),
        )

    def _parts(self) -> list[tuple]:
        if not hasattr(self, "_cache"):
            n_char = len(self.char_.vocabulary_)
            self._cache = [
                (self.char_.build_analyzer(), self.char_.vocabulary_, self.char_.idf_.tolist(), 0,
                 self.char_weight, self.char_.sublinear_tf),
                (self.word_.build_analyzer(), self.word_.vocabulary_, self.word_.idf_.tolist(), n_char,
                 self.word_weight, self.word_.sublinear_tf),
            ]
        return self._cache

    @property
    def n_features_(self) -> int:
        return len(self.char_.vocabulary_) + len(self.word_.vocabulary_)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_cache", None)  # rebuilt on first use; no need to pickle closures
        return state


def rowwise_dot(a: sp.csr_matrix, ia: np.ndarray, b: sp.csr_matrix, ib: np.ndarray) -> np.ndarray:
    """``a[ia[i]] . b[ib[i]]`` for every i, without forming a dense matrix."""
    if len(ia) == 0:
        return np.zeros(0, np.float32)
    return np.asarray(a[ia].multiply(b[ib]).sum(axis=1), dtype=np.float32).ravel()


class TfidfRetriever:
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

    def fit(self, docs: Sequence[str]) -> "TfidfRetriever":
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


class TfidfStage:
    """TF-IDF over word and character n-grams: nearest index titles, and similarity features.

    Features: ``cos`` (query title vs candidate title in the shared space), its rank and gap to
    the query's best, the query's best (``q_max_cos``), and ``vote``: many close titles with
    one code are stronger evidence than one.
    """

    name = "tfidf"
    FEATURES = ("cos", "rank_cos", "gap_cos", "q_max_cos", "vote")

    def __init__(self, *, k: int = 10):
        self.k = k

    def fit(self, table: IndexTable, *, seed: int = 0) -> "TfidfStage":
        self.retriever_ = TfidfRetriever(k=self.k).fit(table.titles_)
        self.title_vecs_ = table.title_vecs_
        return self

    def propose(self, queries: Queries) -> Proposals:
        return Proposals.from_topk(self.retriever_.query(queries.titles), "title")

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        t_cos = rowwise_dot(queries.vectors("title"), pairs.tq, self.title_vecs_, pairs.tt)
        cos = pairs.from_titles(t_cos)
        best = pairs.query_max(cos)
        return {
            "cos": cos, "rank_cos": pairs.rank(cos), "gap_cos": best - cos, "q_max_cos": best,
            "vote": pairs.from_entries(t_cos[pairs.e_tp] ** 3, how="sum"),
        }
