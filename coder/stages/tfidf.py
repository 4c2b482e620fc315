"""TF-IDF nearest neighbours over word and character n-grams (sparse, top-k, chunked)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # pragma: no cover
    from sklearn.feature_extraction.text import TfidfVectorizer

    from ..table import IndexTable

from .._order import offsets
from .base import Pairs, Proposals, Queries, TopK, csr_product, rowwise_dot, top_k_entries

__all__ = ["TfidfEncoder", "TfidfRetriever", "TfidfStage", "rowwise_dot", "split_tokens"]


# Up to this many documents, one pure-Python pass; beyond it, the batch path below (the faster
# from about 32 documents on).
_SMALL_BATCH = 32
# Words whose character n-grams are kept between calls (a survey's vocabulary is small).
_WORD_CACHE = 200_000


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
        self.char_, self.word_ = (_Vocabulary(v) for v in self.vectorizers(docs))
        return self

    def vectorizers(self, docs: Sequence[str]) -> tuple["TfidfVectorizer", "TfidfVectorizer"]:
        """sklearn's (character, word) vectorisers fitted on ``docs``: what `fit` learns from,
        and what `transform` equals to the bit."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        # At least one document's worth, so a tiny index (tests) keeps its rarest n-grams.
        max_df = max(self.max_df, 1.0 / max(len(docs), 1))
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams, sublinear_tf=True,
            max_df=max_df, dtype=np.float32,
        ).fit(docs)
        word = TfidfVectorizer(
            analyzer="word", tokenizer=split_tokens, token_pattern=None, lowercase=False,
            ngram_range=(1, 2), sublinear_tf=True, max_df=max(max_df, 0.05),
            dtype=np.float32,
        ).fit(docs)
        return char, word

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised rows of [char TF-IDF * char_weight, word TF-IDF * word_weight].

        Equal, bit for bit, to stacking the two vectorisers' ``transform`` outputs, without their
        per-document Python work: a few titles go through a plain NumPy pass (sklearn's per-call
        validation costs more than the work for one type-ahead title); batches count each
        distinct word's character n-grams once (`_transform_batch`).
        """
        docs = list(docs)
        if len(docs) > _SMALL_BATCH:
            return self._transform_batch(docs)
        # The few-document path: counts by one sort, then sklearn's float32 arithmetic step for
        # step (`_l2_rows`), so a title gets the same vector alone as in a batch. Part 2i + p is
        # document i's character (p = 0) or word (p = 1) part, which its vectoriser normalises
        # alone. Each occurrence is keyed (part, stacked column): sorted, the distinct keys come
        # document by document, each one's character columns then its word columns, in order:
        # the stacked matrix's own order.
        n_char, width = len(self.char_.vocabulary_), self.n_features_
        keys = []
        for i, doc in enumerate(docs):
            keys.extend(self._word_grams(w) + 2 * i * width for w in self._preprocess(doc).split())
            keys.append(np.asarray(self._word_columns(doc), np.int64) + ((2 * i + 1) * width + n_char))
        found, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)
        part, cols_a = np.divmod(found, width)
        kind = part & 1
        data = counts.astype(np.float32)
        sublinear = np.array([self.char_.sublinear_tf, self.word_.sublinear_tf])
        if sublinear.any():
            logged = sublinear[kind]
            np.log(data, out=data, where=logged)
            np.add(data, 1.0, out=data, where=logged)
        data *= self._idf[cols_a]
        weights = np.array([self.char_weight, self.word_weight], np.float32)
        data = _l2_rows(data, part, 2 * len(docs)) * weights[kind]
        rows = part >> 1
        data = _l2_rows(data, rows, len(docs))
        indptr = offsets(np.bincount(rows, minlength=len(docs)))
        return sp.csr_matrix((data, cols_a.astype(np.int32), indptr.astype(np.int32)),
                             shape=(len(docs), self.n_features_))

    @cached_property
    def _idf(self) -> np.ndarray:
        """Both vocabularies' idf, in the stacked column order."""
        return np.concatenate([self.char_.idf_, self.word_.idf_])

    def _transform_batch(self, docs: list[str]) -> sp.csr_matrix:
        """`transform` for many documents at once.

        Character n-grams never cross a word boundary (``char_wb``), so a document's character
        counts are the sum of its words' counts: (documents x distinct words) @ (words x
        n-grams), with each distinct word analysed once and remembered. Word uni- and bigrams
        are one dictionary lookup each.
        """
        word_col: dict[str, int] = {}
        rows, cols, w_rows, w_cols = [], [], [], []
        for i, doc in enumerate(docs):
            for w in self._preprocess(doc).split():
                rows.append(i)
                cols.append(word_col.setdefault(w, len(word_col)))
            found = self._word_columns(doc)
            w_rows.extend([i] * len(found))
            w_cols.extend(found)
        n = len(docs)
        doc_words = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(word_col)))
        grams = [self._word_grams(w) for w in word_col]
        lengths = np.fromiter((len(g) for g in grams), np.int64, len(grams))
        word_grams = sp.csr_matrix(
            (np.ones(int(lengths.sum()), np.float32), np.concatenate(grams) if grams else np.zeros(0, np.int64),
             offsets(lengths)), shape=(len(word_col), len(self.char_.vocabulary_)))
        char = self._weigh(doc_words @ word_grams, self.char_)
        word = self._weigh(sp.csr_matrix((np.ones(len(w_rows), np.float32), (w_rows, w_cols)),
                                         shape=(n, len(self.word_.vocabulary_))), self.word_)
        return _l2_csr(sp.hstack([char * self.char_weight, word * self.word_weight], format="csr"))

    @staticmethod
    def _weigh(counts: sp.csr_matrix, vocabulary: "_Vocabulary") -> sp.csr_matrix:
        """What the fitted ``TfidfTransformer`` does to float32 counts, step for step (so the
        numbers are sklearn's to the last bit): (sublinear) tf x idf, L2 rows."""
        counts = counts.tocsr()
        counts.sum_duplicates()
        counts.sort_indices()
        _tf_idf(counts.data, counts.indices, vocabulary)
        return _l2_csr(counts)

    # sklearn's preprocessing of the character analyser (``lowercase=True``, no accent folding).
    _preprocess = staticmethod(str.lower)

    def _analyzer(self, word: str) -> list[str]:
        """sklearn's ``char_wb`` n-grams of one lowercased word: padded with a space each side,
        every n-gram of each length; a word shorter than n gives itself once."""
        w = f" {word} "
        out = []
        for n in range(self.char_.ngram_range[0], self.char_.ngram_range[1] + 1):
            out.extend(w[i:i + n] for i in range(max(len(w) - n, 0) + 1))
            if len(w) <= n:
                break
        return out

    @cached_property
    def _word_cache(self) -> dict[str, np.ndarray]:
        """Word -> its character n-gram columns (a survey's vocabulary is small)."""
        return {}

    def _word_grams(self, word: str) -> np.ndarray:
        """Character n-gram columns of one preprocessed word, repeated as often as they occur."""
        cache = self._word_cache
        grams = cache.get(word)
        if grams is None:
            if len(cache) >= _WORD_CACHE:
                cache.clear()
            vocab = self.char_.vocabulary_
            grams = cache[word] = np.fromiter((vocab[g] for g in self._analyzer(word) if g in vocab), np.int64)
        return grams

    def _word_columns(self, doc: str) -> list[int]:
        """Word uni- and bigram columns of one document, one per occurrence."""
        vocab = self.word_.vocabulary_
        tokens = doc.split()
        grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
        return [vocab[g] for g in grams if g in vocab]

    @property
    def n_features_(self) -> int:
        return len(self.char_.vocabulary_) + len(self.word_.vocabulary_)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_word_cache", None)  # a cache, rebuilt on use
        state.pop("_idf", None)  # derived
        return state


class _Vocabulary:
    """What a fitted ``TfidfVectorizer`` knows, as plain data: a model file then never imports
    sklearn (1.2 s and 150 MB per process)."""

    def __init__(self, vectorizer: "TfidfVectorizer"):
        self.vocabulary_: dict[str, int] = dict(vectorizer.vocabulary_)
        self.idf_: np.ndarray = vectorizer.idf_
        self.sublinear_tf: bool = bool(vectorizer.sublinear_tf)
        self.ngram_range: tuple[int, int] = tuple(vectorizer.ngram_range)


def _tf_idf(counts: np.ndarray, columns: np.ndarray, vocabulary: _Vocabulary) -> np.ndarray:
    """What the fitted ``TfidfTransformer`` does to float32 counts before normalising, in place
    and step for step: (sublinear) term frequency times idf."""
    if vocabulary.sublinear_tf:
        np.log(counts, counts)
        counts += 1.0
    counts *= vocabulary.idf_[columns]
    return counts


def _l2_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """sklearn's ``normalize`` of a float32 CSR matrix (L2 rows), to the bit."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    data = _l2_rows(matrix.data, rows, matrix.shape[0])
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def _l2_rows(data: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """sklearn's in-place L2 row normalisation of float32 CSR data, to the bit: float32
    squares summed in float64 in index order, each value divided in float64."""
    data = np.asarray(data, np.float32)
    if not len(data):
        return data
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=n))[rows]
    return np.where(norms > 0, data / np.where(norms > 0, norms, 1.0), data).astype(np.float32)


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

    def fit_titles(self, table: IndexTable) -> "TfidfRetriever":
        """`fit` on the table's index titles, sharing what it learns with the table's other
        retrievers of the same ``max_df`` (`IndexTable.title_space`): one copy in the model
        and in memory, whichever stages search the titles."""
        self.encoder_, self.matrix_t_ = table.title_space(self.max_df)
        return self

    def query(self, docs: Sequence[str]) -> TopK:
        return self.query_vectors(self.encoder_.transform(docs))

    def query_vectors(self, q: sp.csr_matrix) -> TopK:
        out = TopK.empty(q.shape[0], self.k)
        for start in range(0, q.shape[0], self.chunk):
            block = q if q.shape[0] <= self.chunk else q[start : start + self.chunk]
            indptr, indices, data = csr_product(block, self.matrix_t_)
            # The entries at or above min_score (never a stored zero), in stored order: what
            # zeroing the rest and eliminating zeros kept, without rebuilding the matrix.
            rows = np.repeat(np.arange(block.shape[0]), np.diff(indptr))
            keep = (data >= self.min_score) & (data != 0)
            top = top_k_entries(rows[keep], indices[keep], data[keep], block.shape[0], self.k)
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
        self.retriever_ = TfidfRetriever(k=self.k).fit_titles(table)
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
