"""Two naive coders to measure the real one against, fitted on the same index entries.

* `FuzzyBaseline`: ``rapidfuzz.process.extractOne`` (default scorer WRatio, default
  processor: lower case, non-alphanumerics to spaces) over the natural-order titles of the
  codable entries; the code of the best-matching entry.
* `TfidfBaseline`: character TF-IDF (``TfidfVectorizer(analyzer="char_wb",
  ngram_range=(2, 4))``) over the same titles, cosine nearest neighbour; the code of the
  nearest entry.

Both read the title only (no industry), have no threshold and no notion of "vague", and code
each distinct input string once (the same saving the coder makes, so speed ratios compare
the work per title, not the de-duplication). Top-k lists the codes of the best-scoring
entries, distinct, best first; ``confidence`` is the best score (WRatio / 100 or cosine),
which is a ranking score, not a probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FuzzyBaseline", "TfidfBaseline", "BASELINES"]


def _distinct(titles: Sequence) -> tuple[np.ndarray, list[str]]:
    texts = ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in titles]
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    return codes, list(uniques)


def _top_codes(scores: np.ndarray, codes: np.ndarray, k: int, depth: int) -> list[tuple[str, ...]]:
    """Distinct codes of the best ``depth`` columns of each row, best first, up to ``k``.

    Ties go to the earlier column, and the first code is always that of ``argmax`` (the
    first best column), which is what ``extractOne`` returns.
    """
    depth = min(depth, scores.shape[1])
    first = scores.argmax(axis=1)
    part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    rows = np.arange(scores.shape[0])[:, None]
    key = np.lexsort((part, -scores[rows, part]), axis=1)
    order = np.take_along_axis(part, key, axis=1)
    out = []
    for row, cols in enumerate(order):
        cols = [first[row], *(c for c in cols if c != first[row])]
        best = [c for c in cols if scores[row, c] > 0]
        out.append(tuple(dict.fromkeys(codes[best].tolist()))[:k])
    return out


class _Baseline:
    name = ""

    def __init__(self, scheme: str = "soc2000"):
        self.scheme = scheme

    def fit(self, entries: Sequence) -> "_Baseline":
        """Learn from the entries with a code in the scheme (vague entries have none)."""
        usable = [e for e in entries if e.code(self.scheme) is not None]
        self.titles_ = [e.natural for e in usable]
        self.codes_ = np.array([e.code(self.scheme) for e in usable], dtype=object)
        self._fit()
        return self

    def _fit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _top1(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _topk(self, texts: list[str], k: int) -> tuple[list[tuple[str, ...]], np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def code_many(self, titles: Sequence, industries: Sequence | None = None) -> np.ndarray:
        """Best code per title (``-9`` when nothing matches); industries are ignored."""
        inverse, texts = _distinct(titles)
        codes, _ = self._top1(texts)
        return codes[inverse]

    def predict(self, titles: Sequence, industries: Sequence | None = None, *, k: int = 5) -> pd.DataFrame:
        """Columns ``candidates``, ``confidence``, ``status`` as `coder.evaluate.score` expects
        (status is "refer" with a candidate, "uncodable" without)."""
        inverse, texts = _distinct(titles)
        cands, conf = self._topk(texts, k)
        cands = [cands[i] for i in inverse]
        return pd.DataFrame({
            "candidates": cands,
            "confidence": conf[inverse],
            "status": ["refer" if c else "uncodable" for c in cands],
        })


class FuzzyBaseline(_Baseline):
    """Code of the index title that ``rapidfuzz.process.extractOne`` picks."""

    name = "rapidfuzz extractOne"

    def _fit(self) -> None:
        from rapidfuzz import utils

        # Process the choices once; queries are processed the same way per call.
        self.choices_ = [utils.default_process(t) for t in self.titles_]

    def _top1(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        from rapidfuzz import process, utils

        codes = np.full(len(texts), "-9", dtype=object)
        conf = np.zeros(len(texts))
        for i, text in enumerate(texts):
            hit = process.extractOne(utils.default_process(text), self.choices_, processor=None)
            if hit is not None and hit[1] > 0:
                codes[i], conf[i] = self.codes_[hit[2]], hit[1] / 100
        return codes, conf

    def _topk(self, texts: list[str], k: int, *, chunk: int = 256) -> tuple[list[tuple[str, ...]], np.ndarray]:
        # Same scorer as extractOne over all choices at once (multi-threaded); the first code
        # is the earliest best-scoring choice, as extractOne picks.
        from rapidfuzz import fuzz, process, utils

        out: list[tuple[str, ...]] = []
        conf = np.zeros(len(texts))
        for start in range(0, len(texts), chunk):
            queries = [utils.default_process(t) for t in texts[start:start + chunk]]
            scores = process.cdist(queries, self.choices_, scorer=fuzz.WRatio, processor=None,
                                   workers=-1, dtype=np.float32)
            out += _top_codes(scores, self.codes_, k, depth=8 * k)
            conf[start:start + len(queries)] = scores.max(axis=1) / 100 if scores.size else 0
        return out, conf


class TfidfBaseline(_Baseline):
    """Code of the nearest index title by cosine over character 2-4-gram TF-IDF."""

    name = "char TF-IDF 1-NN"

    def _fit(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
        self.matrix_ = self.vectorizer_.fit_transform(self.titles_).T.tocsr()

    def _scores(self, texts: list[str], chunk: int):
        for start in range(0, len(texts), chunk):
            q = self.vectorizer_.transform(texts[start:start + chunk])
            yield start, (q @ self.matrix_).toarray()  # rows are L2-normalised: cosine

    def _top1(self, texts: list[str], chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        codes = np.full(len(texts), "-9", dtype=object)
        conf = np.zeros(len(texts))
        for start, scores in self._scores(texts, chunk):
            best = scores.argmax(axis=1)
            value = scores[np.arange(len(best)), best]
            hit = value > 0
            idx = np.arange(start, start + len(best))
            codes[idx[hit]] = self.codes_[best[hit]]
            conf[idx] = value
        return codes, conf

    def _topk(self, texts: list[str], k: int, chunk: int = 512) -> tuple[list[tuple[str, ...]], np.ndarray]:
        out: list[tuple[str, ...]] = []
        conf = np.zeros(len(texts))
        for start, scores in self._scores(texts, chunk):
            out += _top_codes(scores, self.codes_, k, depth=8 * k)
            conf[start:start + len(scores)] = scores.max(axis=1) if scores.size else 0
        return out, conf


BASELINES = {"fuzzy": FuzzyBaseline, "tfidf": TfidfBaseline}
