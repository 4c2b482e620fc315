"""A linear classifier over TF-IDF features of index titles (with their qualifiers).

It generalises across entries ("...nurse" -> 3211 for words it has seen with many codes)
where nearest neighbours only copy one entry. It reads the title, the title with the
industry, and the description separately, so an industry word cannot pass for a title word:
the ranker sees three scores and learns how far to trust each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from .base import Pairs, Proposals, Queries, dense_product, top_k_dense

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["ClassifierStage"]


class ClassifierStage:
    """One-vs-rest linear SVM over the shared TF-IDF space; scores are squashed margins, not
    probabilities (the ranker calibrates).

    Proposes the top ``k`` codes for the title, and for the title with its industry.
    Features: ``clf`` (title), ``clf_full`` (title + industry), ``clf_desc`` (description; 0
    without one), ``clf_rank``/``gap_clf``/``q_clf_top`` (of ``clf_full``), ``clf_minor``
    (share of the classifier's belief in the code's minor group) and ``centroid`` (cosine to
    the mean TF-IDF vector of the code's entries).
    """

    name = "classifier"
    FEATURES = ("clf", "clf_full", "clf_desc", "clf_rank", "gap_clf", "q_clf_top", "clf_minor", "centroid")

    def __init__(self, *, k: int = 10, C: float = 1.0, prune: float = 1e-3, n_jobs: int | None = None):
        self.k = k
        self.C = C
        self.prune = prune
        self.n_jobs = n_jobs

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "ClassifierStage":
        from joblib import Parallel, delayed, effective_n_jobs
        from sklearn.preprocessing import normalize

        codable = np.flatnonzero(table.codable_)
        X = table.encoder_.transform([table.docs_[i] for i in codable])
        y = table.entry_code_[codable]
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("the classifier needs entries of at least two codes")
        # One-vs-rest as sklearn's OneVsRestClassifier fits it (one seeded binary SVM per code;
        # with two codes one SVM, the second code against the first), to the same weights.
        # liblinear reads float64: converted once here, not once per code (353 copies).
        X64 = X.astype(np.float64)
        positive = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        # Each SVM is the same in any process, so any number of jobs gives the same weights.
        # None: one job unless the caller set more (joblib's `parallel_config`): builds fit whole
        # folds side by side instead (`coder.build`); a build from a shipped ranker fits the
        # codes in every process. One slice of codes per job, interleaved to balance the
        # work, and each returns float32 weights: cheaper than a task per code. Processes,
        # whatever backend the caller chose: liblinear's random numbers are one global
        # stream, so SVMs fitted on threads at once would differ from run to run.
        jobs = min(effective_n_jobs(self.n_jobs), len(positive))
        if jobs <= 1:
            weights, bias = _fit_codes(X64, y, positive, self.C, seed)
        else:
            parts = Parallel(n_jobs=jobs, backend="loky")(
                delayed(_fit_codes)(X64, y, positive[j::jobs], self.C, seed) for j in range(jobs))
            weights = np.empty((len(positive), X.shape[1]), np.float32)
            bias = np.empty(len(positive), np.float64)
            for j, (w, b) in enumerate(parts):
                weights[j::jobs], bias[j::jobs] = w, b
        coef = np.zeros((X.shape[1], table.n_codes), np.float32)
        intercept = np.full(table.n_codes, -10.0, np.float32)  # codes never seen: never proposed
        if len(self.classes_) == 2:
            coef[:, self.classes_[1]], coef[:, self.classes_[0]] = weights[0], -weights[0]
            intercept[self.classes_] = [-bias[0], bias[0]]
        else:
            coef[:, self.classes_] = weights.T
            intercept[self.classes_] = bias
        # Most weights are ~0 (a feature never occurs with most codes): a sparse matrix is
        # ~15x smaller and scoring becomes one sparse product.
        coef[np.abs(coef) < self.prune] = 0.0
        self.coef_ = sp.csr_matrix(coef)
        self.intercept_ = intercept
        member = sp.csr_matrix((np.ones(len(codable), np.float32), (y, np.arange(len(codable)))),
                               shape=(table.n_codes, len(codable)))
        self.centroids_t_ = normalize(member @ X).T.tocsr().astype(np.float32)
        self.group_onehot_ = np.eye(table.code_group_.max() + 1, dtype=np.float32)[table.code_group_]
        self.code_group_ = table.code_group_
        return self

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        """Squashed margins for every code: a dense (queries x codes) array."""
        margins = dense_product(X, self.coef_) + self.intercept_
        return expit(2.0 * margins).astype(np.float32)

    def _scores(self, queries: Queries, name: str) -> np.ndarray:
        key = f"{self.name}:{name}"
        if key not in queries.scratch:
            if name == "full":
                # Only the rows with an industry differ from the title's: a row is scored on
                # its own, so the others are the title's scores to the bit.
                rows, scores = queries.full_rows, self._scores(queries, "title")
                if len(rows) == queries.n:  # every row (one type-ahead title with an industry)
                    scores = self.scores(queries.vectors("full"))
                elif len(rows):
                    scores = scores.copy()
                    scores[rows] = self.scores(queries.vectors("full")[rows])
                queries.scratch[key] = scores
            else:
                queries.scratch[key] = self.scores(queries.vectors(name))
        return queries.scratch[key]  # type: ignore[return-value]

    def propose(self, queries: Queries) -> Proposals:
        parts = [Proposals.from_topk(top_k_dense(self._scores(queries, name), self.k, min_score=-1.0), "code")
                 for name in ("title", "full")]
        return Proposals("code", np.concatenate([p.q for p in parts]), np.concatenate([p.target for p in parts]),
                         np.concatenate([p.score for p in parts]))

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        q, c = pairs.q, pairs.code
        title, full = self._scores(queries, "title"), self._scores(queries, "full")
        clf_full = full[q, c]
        # Rank among all codes: how many codes score higher, plus one.
        rank = (full[q] > clf_full[:, None]).sum(axis=1).astype(np.float32) + 1 if len(q) else np.zeros(0, np.float32)
        if queries.has_description.any():
            desc = self.scores(queries.vectors("description"))
            clf_desc = np.where(queries.has_description[q], desc[q, c], 0.0).astype(np.float32)
        else:
            clf_desc = np.zeros(len(q), np.float32)
        mass = full @ self.group_onehot_
        top = full.max(axis=1) if len(full) else np.zeros(0, np.float32)
        centroid = dense_product(queries.vectors("full"), self.centroids_t_)
        return {
            "clf": title[q, c], "clf_full": clf_full, "clf_desc": clf_desc,
            "clf_rank": np.minimum(rank, self.k + 1), "gap_clf": top[q] - clf_full, "q_clf_top": top[q],
            "clf_minor": mass[q, self.code_group_[c]] / np.maximum(mass.sum(axis=1), 1e-9)[q],
            "centroid": centroid[q, c],
        }


def _fit_codes(X: sp.csr_matrix, y: np.ndarray, codes: np.ndarray, C: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One binary linear SVM per code of ``codes`` (that code against every other entry):
    weights (codes x features, float32) and intercepts."""
    from sklearn.svm import LinearSVC

    weights = np.empty((len(codes), X.shape[1]), np.float32)
    bias = np.empty(len(codes), np.float64)
    for i, code in enumerate(codes):
        svm = LinearSVC(C=C, random_state=seed).fit(X, (y == code).astype(np.int64))
        weights[i], bias[i] = svm.coef_[0], svm.intercept_[0]
    return weights, bias
