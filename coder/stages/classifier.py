"""A linear classifier over TF-IDF features of index titles (with their qualifiers).

It generalises across entries ("...nurse" -> 3211 for words it has seen with many codes)
where nearest neighbours only copy one entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from . import TopK, top_k_dense
from .tfidf import TfidfEncoder

__all__ = ["ClassifierStage"]


class ClassifierStage:
    """One-vs-rest linear SVM; scores are squashed margins, not probabilities (the ranker
    calibrates)."""

    def __init__(self, *, k: int = 10, C: float = 1.0, prune: float = 1e-3, n_jobs: int | None = None):
        self.k = k
        self.C = C
        self.prune = prune
        self.n_jobs = n_jobs

    def fit(
        self, docs: Sequence[str], codes: Sequence[str], encoder: TfidfEncoder | None = None
    ) -> "ClassifierStage":
        """Learn codes from ``docs``; pass a fitted ``encoder`` to share one vocabulary."""
        self.encoder_ = encoder if encoder is not None else TfidfEncoder().fit(docs)
        X = self.encoder_.transform(docs)
        self.model_ = OneVsRestClassifier(LinearSVC(C=self.C), n_jobs=self.n_jobs).fit(X, list(codes))
        self.classes_ = np.asarray(self.model_.classes_)
        # Keep the weights as one sparse (features x classes) matrix: most are ~0 because a
        # feature never occurs with most codes; dropping them shrinks the model ~15x and
        # predicting becomes one sparse product.
        coef = np.vstack([e.coef_.ravel() for e in self.model_.estimators_]).T.astype(np.float32)
        coef[np.abs(coef) < self.prune] = 0.0
        self.coef_ = sp.csr_matrix(coef)
        self.intercept_ = np.array([e.intercept_[0] for e in self.model_.estimators_], np.float32)
        del self.model_
        return self

    def query(self, docs: Sequence[str]) -> TopK:
        return self.query_vectors(self.encoder_.transform(docs))

    def query_vectors(self, X: sp.csr_matrix) -> TopK:
        return top_k_dense(self.scores(X), self.k, min_score=-1.0)

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        """Squashed margins for every class: a dense (queries x classes) array."""
        margins = (X @ self.coef_).toarray() + self.intercept_
        return expit(2.0 * margins).astype(np.float32)
