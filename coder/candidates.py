"""Wire the candidate stages and describe every (query, code) candidate by a row of features.

Titles are matched in title space (exact, fuzzy, TF-IDF over the index's distinct titles);
each matched title brings all its index entries, whose industry/additional qualifiers are then
compared with the query's context. The classifier adds codes the title matches missed.
The result is one row per (query, code) for the ranker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from rapidfuzz import fuzz, process
from sklearn.preprocessing import normalize

from .index import IndexEntry
from .normalise import normalise
from .schemes import load_scheme
from .stages import TopK, top_k_dense
from .stages.classifier import ClassifierStage
from .stages.exact import ExactStage
from .stages.fuzzy import FuzzyStage
from .stages.tfidf import TfidfEncoder, TfidfStage
from .stages.wordcode import WordCodeStage

__all__ = ["CandidateGenerator", "FEATURES", "METHODS"]

HIT_INDUSTRY = 0.8  # context-to-qualifier cosine that counts as "the same qualifier"
DEFAULT_FLAGS = {"": 0, "O": 1, "I": 2, "A": 3, "Q": 4, "QS": 5, "M": 6}
METHODS = ("exact", "fuzzy", "tfidf", "classifier")

# Order matters: the ranker is trained on these columns.
FEATURES = (
    "cos", "fuzzy", "exact", "head", "ind", "pair", "n_pairs", "best_default", "best_qualified",
    "any_default_unqualified", "clf", "clf_rank", "prior", "rank_cos", "rank_pair", "gap_cos",
    "gap_pair", "gap_clf", "has_ctx", "n_tok", "q_exact", "q_vague", "q_exact_codes",
    "q_max_cos", "q_clf_top", "vague_cos", "w_head", "w_mod", "w_ctx", "centroid", "clf_minor",
    "vote", "hit", "q_hit",
)


def _rowwise_dot(a: sp.csr_matrix, ia: np.ndarray, b: sp.csr_matrix, ib: np.ndarray) -> np.ndarray:
    """``a[ia[i]] . b[ib[i]]`` for every i, without forming a dense matrix."""
    if len(ia) == 0:
        return np.zeros(0, np.float32)
    return np.asarray(a[ia].multiply(b[ib]).sum(axis=1), dtype=np.float32).ravel()


def _head(title: str) -> str:
    # English job titles put the occupation last: "bookshop *manager*", "fish cake *maker*".
    return title.rsplit(" ", 1)[-1] if title else ""


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first row of every run of equal keys."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _rank_desc(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-based rank of each value within its group, largest first, ties sharing the best rank."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.float32)
    order = np.lexsort((-values, group))
    g, v = group[order], values[order]
    pos = np.arange(n)
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_value = new_group | np.r_[True, v[1:] != v[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_value, pos, 0))
    rank = np.empty(n, np.float32)
    rank[order] = run_start - group_start + 1
    return rank


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, position) of each key in ``sorted_keys``."""
    pos = np.searchsorted(sorted_keys, keys)
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool), pos
    found = sorted_keys[np.minimum(pos, len(sorted_keys) - 1)] == keys
    return found, pos


def _group_max(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-row maximum of ``values`` over the row's group (groups need not be sorted)."""
    out = np.full(n_groups, -np.inf, np.float32)
    np.maximum.at(out, group, values)
    return out[group]


@dataclass(frozen=True)
class Candidates:
    """Candidate rows for a batch, sorted by query: row i proposes ``code[i]`` (an index into
    the generator's codes) for query ``q[i]``, explained by index entry ``entry[i]`` found by
    ``METHODS[method[i]]``; ``X`` holds the FEATURES. ``vague[q]`` flags queries whose exact
    title the index calls not codable on its own."""

    q: np.ndarray
    code: np.ndarray
    entry: np.ndarray
    method: np.ndarray
    X: np.ndarray
    vague: np.ndarray

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (for training and inspection)."""
        out = pd.DataFrame(self.X, columns=list(FEATURES))
        out.insert(0, "q", self.q)
        out.insert(1, "code", self.code)
        out.insert(2, "entry", self.entry)
        out.insert(3, "method", np.asarray(METHODS)[self.method])
        return out


class CandidateGenerator:
    """Fitted on index entries for one scheme; `generate` gives candidate rows for queries."""

    def __init__(self, scheme: str, *, k_tfidf: int = 10, k_fuzzy: int = 5, k_classifier: int = 10,
                 fuzzy_gate: float = 0.9, keep_top: int = 8, classifier_jobs: int | None = None,
                 chunk: int = 2048):
        self.scheme = scheme
        self.k_tfidf = k_tfidf
        self.k_fuzzy = k_fuzzy
        self.k_classifier = k_classifier
        self.fuzzy_gate = fuzzy_gate
        self.chunk = chunk  # bounds the dense (queries x codes) arrays
        self.keep_top = keep_top
        self.classifier_jobs = classifier_jobs

    # ------------------------------------------------------------------ fit
    def fit(self, entries: Sequence[IndexEntry]) -> "CandidateGenerator":
        entry_titles = [normalise(e.natural) for e in entries]
        quals = [normalise(f"{e.add} {e.ind}") for e in entries]
        codes = [e.code(self.scheme) for e in entries]
        self.codes_ = np.array(sorted({c for c in codes if c}))
        code_pos = {c: i for i, c in enumerate(self.codes_)}
        # How each entry is quoted to users. A NumPy string array, not the IndexEntry objects:
        # 30k small objects made loading the model 1 s slower.
        self.entry_text_ = np.array([e.describe() for e in entries], dtype=str)
        self.entry_code_ = np.array([code_pos[c] if c else -1 for c in codes], np.int32)
        self.entry_default_ = np.array([DEFAULT_FLAGS.get(e.default, 0) for e in entries], np.int8)
        self.entry_qualified_ = np.array([bool(q) for q in quals])

        titles, entry_title = np.unique(np.array(entry_titles, dtype=object), return_inverse=True)
        self.titles_ = [str(t) for t in titles]
        self.entry_title_ = entry_title.astype(np.int32)
        order = np.argsort(self.entry_title_, kind="stable")
        self.title_entries_ = order.astype(np.int32)
        self.title_ptr_ = np.searchsorted(self.entry_title_[order], np.arange(len(titles) + 1)).astype(np.int32)
        vague_unqualified = (self.entry_code_ < 0) & ~self.entry_qualified_
        self.title_vague_ = np.zeros(len(titles), bool)
        self.title_vague_[self.entry_title_[vague_unqualified]] = True
        heads = {h: i for i, h in enumerate(sorted({_head(t) for t in self.titles_}))}
        self.head_ids_ = heads
        self.title_head_ = np.array([heads[_head(t)] for t in self.titles_], np.int32)

        codable = self.entry_code_ >= 0
        docs = [f"{t} {q}".strip() for t, q in zip(entry_titles, quals)]
        self.encoder_ = TfidfEncoder().fit(docs)
        self.title_vecs_ = self.encoder_.transform(self.titles_)
        self.qual_vecs_ = self.encoder_.transform(quals)
        self.exact_ = ExactStage().fit(self.titles_)
        self.fuzzy_ = FuzzyStage(k=self.k_fuzzy).fit(self.titles_)
        self.tfidf_ = TfidfStage(k=self.k_tfidf).fit(self.titles_)
        self.classifier_ = ClassifierStage(k=self.k_classifier, n_jobs=self.classifier_jobs).fit(
            [d for d, ok in zip(docs, codable) if ok], self.entry_code_[codable], encoder=self.encoder_
        )
        self.wordcode_ = WordCodeStage().fit(
            [t for t, ok in zip(entry_titles, codable) if ok],
            [q for q, ok in zip(quals, codable) if ok], self.entry_code_[codable], len(self.codes_),
        )
        member = sp.csr_matrix(
            (np.ones(codable.sum(), np.float32), (self.entry_code_[codable], np.flatnonzero(codable))),
            shape=(len(self.codes_), len(entries)),
        )
        doc_vecs = self.encoder_.transform(docs)
        self.centroids_t_ = normalize(member @ doc_vecs).T.tocsr().astype(np.float32)
        scheme = load_scheme(self.scheme)
        groups = np.array([scheme.level_code(c, "minor") for c in self.codes_])
        _, self.code_group_ = np.unique(groups, return_inverse=True)
        class_group = self.code_group_[self.classifier_.classes_]
        self.class_group_onehot_ = np.eye(class_group.max() + 1, dtype=np.float32)[class_group]
        counts = np.bincount(self.entry_code_[codable], minlength=len(self.codes_))
        self.prior_ = np.log1p(counts).astype(np.float32)
        # The entry that stands for a code when only the classifier proposes it: prefer an
        # unqualified default entry, then any unqualified one.
        self.code_entry_ = np.full(len(self.codes_), -1, np.int32)
        rank = np.where(self.entry_qualified_, 2, np.where(self.entry_default_ > 0, 0, 1))
        for i in np.lexsort((rank, self.entry_code_)):
            c = self.entry_code_[i]
            if c >= 0 and self.code_entry_[c] < 0:
                self.code_entry_[c] = i
        return self

    # ------------------------------------------------------------- generate
    def generate(self, titles: Sequence[str], contexts: Sequence[str]) -> Candidates:
        """Candidate rows for normalised ``titles`` with normalised industry ``contexts``."""
        if len(titles) <= self.chunk:
            return self._generate(list(titles), list(contexts))
        parts = [self._generate(list(titles[i : i + self.chunk]), list(contexts[i : i + self.chunk]))
                 for i in range(0, len(titles), self.chunk)]
        offsets = np.cumsum([0] + [len(p.vague) for p in parts[:-1]])
        return Candidates(
            q=np.concatenate([p.q + off for p, off in zip(parts, offsets)]),
            code=np.concatenate([p.code for p in parts]),
            entry=np.concatenate([p.entry for p in parts]),
            method=np.concatenate([p.method for p in parts]),
            X=np.concatenate([p.X for p in parts]),
            vague=np.concatenate([p.vague for p in parts]),
        )

    def _generate(self, titles: list[str], contexts: list[str]) -> Candidates:
        n = len(titles)
        has_ctx = np.array([bool(c) for c in contexts], dtype=bool)
        q_title = self.encoder_.transform(titles)
        if has_ctx.any():  # most survey answers come without one: skip two transforms
            q_full = self.encoder_.transform([f"{t} {c}".strip() for t, c in zip(titles, contexts)])
            q_ctx = self.encoder_.transform(contexts)
        else:
            q_full, q_ctx = q_title, sp.csr_matrix(q_title.shape, dtype=np.float32)

        exact = self.exact_.query(titles)
        tfidf = self.tfidf_.query(titles)
        # Edit distance is the typo fallback: skip it where the title is already found.
        need_fuzzy = np.flatnonzero((exact.idx[:, 0] < 0) & (tfidf.score[:, 0] < self.fuzzy_gate))
        fuzzy = TopK.empty(n, self.k_fuzzy)
        if len(need_fuzzy):
            found = self.fuzzy_.query([titles[i] for i in need_fuzzy])
            fuzzy.idx[need_fuzzy], fuzzy.score[need_fuzzy] = found.idx, found.score
        hits = [exact, fuzzy, tfidf]
        qi = np.concatenate([np.repeat(np.arange(n), h.idx.shape[1]) for h in hits])
        ti = np.concatenate([h.idx.ravel() for h in hits])
        keep = ti >= 0
        pairs = np.unique(np.stack([qi[keep], ti[keep]], 1), axis=0) if keep.any() else np.zeros((0, 2), int)
        pq, pt = pairs[:, 0], pairs[:, 1]

        # Title-level evidence, computed exactly for every (query, title) pair found by any stage.
        t_cos = _rowwise_dot(q_title, pq, self.title_vecs_, pt)
        t_fuzzy = (
            process.cpdist([titles[i] for i in pq], [self.titles_[j] for j in pt],
                           scorer=fuzz.token_sort_ratio,
                           workers=-1 if len(pq) > 20_000 else 1).astype(np.float32) / 100.0
            if len(pq) else np.zeros(0, np.float32)
        )
        exact_title = hits[0].idx[:, 0]
        t_exact = (exact_title[pq] == pt).astype(np.float32)
        q_head = np.array([self.head_ids_.get(_head(t), -1) for t in titles], np.int32)
        t_head = (q_head[pq] == self.title_head_[pt]).astype(np.float32)

        # Expand titles to their entries.
        counts = self.title_ptr_[pt + 1] - self.title_ptr_[pt]
        pair_of = np.repeat(np.arange(len(pt)), counts)
        starts = np.repeat(self.title_ptr_[pt], counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ent = self.title_entries_[starts + offsets]
        eq = pq[pair_of]
        e_code = self.entry_code_[ent]
        e_ind = _rowwise_dot(q_ctx, eq, self.qual_vecs_, ent)
        e_qual = self.entry_qualified_[ent]
        e_default = self.entry_default_[ent]
        # Heuristic pair score, only to pick the entry that explains a code; the ranker decides.
        e_pair = (t_cos[pair_of] + 0.3 * t_exact[pair_of] + e_ind
                  - 0.15 * (e_qual & ~has_ctx[eq]) + 0.05 * (e_default > 0)).astype(np.float32)

        vague_cos = np.zeros(n, np.float32)
        is_vague = e_code < 0
        np.maximum.at(vague_cos, eq[is_vague], t_cos[pair_of][is_vague])
        # The query *is* an index entry: its exact title, and either an entry without
        # qualifiers or one whose qualifiers the query's context repeats. `q_hit` also splits
        # the calibration: the index's own answer is far more reliable than a neighbour's.
        e_hit = (t_exact[pair_of] > 0) & (~e_qual | (e_ind >= HIT_INDUSTRY)) & (e_code >= 0)
        q_hit = np.zeros(n, bool)
        q_hit[eq[e_hit]] = True
        q_vague = np.zeros(n, bool)
        has_exact = exact_title >= 0
        q_vague[has_exact] = self.title_vague_[exact_title[has_exact]]

        # One row per (query, code): maxima over the code's entries, plus its best entry.
        codable = ~is_vague
        n_codes = len(self.codes_)
        pair_key = eq[codable].astype(np.int64) * n_codes + e_code[codable]
        p_pair = e_pair[codable]
        order = np.lexsort((-p_pair, pair_key))
        key_sorted = pair_key[order]
        first = _starts(key_sorted)
        src = np.flatnonzero(codable)[order]  # rows of the entry-level arrays, sorted

        def gmax(values: np.ndarray) -> np.ndarray:
            return np.maximum.reduceat(values[src], first) if len(first) else np.zeros(0, np.float32)

        def gsum(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(values[src], first) if len(first) else np.zeros(0, np.float32)

        best = src[first] if len(first) else np.zeros(0, np.int64)
        t_src = pair_of  # entry row -> (query, title) pair row
        title_keys = key_sorted[first] if len(first) else np.zeros(0, np.int64)
        title_feats = {
            "cos": gmax(t_cos[t_src]), "fuzzy": gmax(t_fuzzy[t_src]), "exact": gmax(t_exact[t_src]),
            "head": gmax(t_head[t_src]), "ind": gmax(e_ind), "pair": gmax(e_pair),
            "n_pairs": np.diff(np.r_[first, len(key_sorted)]).astype(np.float32),
            # Many close titles with this code is stronger evidence than one.
            "vote": gsum(t_cos[t_src] ** 3),
            "best_default": e_default[best].astype(np.float32),
            "best_qualified": e_qual[best].astype(np.float32),
            "any_default_unqualified": gmax(((e_default > 0) & ~e_qual).astype(np.float32)),
            "hit": gmax(e_hit.astype(np.float32)),
        }
        best_exact = t_exact[t_src][best] > 0
        best_method = np.where(best_exact, 0, np.where(t_fuzzy[t_src][best] > t_cos[t_src][best], 1, 2))

        clf_all = self.classifier_.scores(q_full)  # queries x classes
        clf = top_k_dense(clf_all, self.k_classifier, min_score=-1.0)
        kc = clf.idx.shape[1]
        c_ok = clf.idx.ravel() >= 0
        clf_code = self.classifier_.classes_[np.maximum(clf.idx.ravel(), 0)]
        clf_keys = (np.repeat(np.arange(n), kc).astype(np.int64) * n_codes + clf_code)[c_ok]
        clf_score = clf.score.ravel()[c_ok]
        clf_rank = np.tile(np.arange(1, kc + 1, dtype=np.float32), n)[c_ok]

        keys = np.union1d(title_keys, clf_keys)
        m = len(keys)
        from_title, in_title = _lookup(title_keys, keys)
        clf_order = np.argsort(clf_keys)
        from_clf, in_clf = _lookup(clf_keys[clf_order], keys)
        qs = (keys // n_codes).astype(np.int64)
        codes = (keys % n_codes).astype(np.int64)
        feats: dict[str, np.ndarray] = {}
        for name, values in title_feats.items():
            col = np.zeros(m, np.float32)
            col[from_title] = values[in_title[from_title]]
            feats[name] = col
        feats["clf"] = np.zeros(m, np.float32)
        feats["clf_rank"] = np.full(m, kc + 1, np.float32)
        feats["clf"][from_clf] = clf_score[clf_order][in_clf[from_clf]]
        feats["clf_rank"][from_clf] = clf_rank[clf_order][in_clf[from_clf]]
        entry = self.code_entry_[codes].astype(np.int64)
        entry[from_title] = ent[best[in_title[from_title]]]
        method = np.full(m, 3, np.int8)
        method[from_title] = best_method[in_title[from_title]]

        feats["prior"] = self.prior_[codes]
        feats["rank_cos"] = _rank_desc(qs, feats["cos"])
        feats["rank_pair"] = _rank_desc(qs, feats["pair"])
        max_cos = _group_max(qs, feats["cos"], n)
        feats["gap_cos"] = max_cos - feats["cos"]
        feats["gap_pair"] = _group_max(qs, feats["pair"], n) - feats["pair"]
        feats["gap_clf"] = _group_max(qs, feats["clf"], n) - feats["clf"]
        exact_codes = np.bincount(qs[feats["exact"] > 0], minlength=n).astype(np.float32)
        n_tok = np.array([len(t.split()) for t in titles], np.float32)
        feats["has_ctx"] = has_ctx[qs].astype(np.float32)
        feats["n_tok"] = n_tok[qs]
        feats["q_exact"] = has_exact[qs].astype(np.float32)
        feats["q_vague"] = q_vague[qs].astype(np.float32)
        feats["q_hit"] = q_hit[qs].astype(np.float32)
        feats["q_exact_codes"] = exact_codes[qs]
        feats["q_max_cos"] = max_cos
        feats["q_clf_top"] = clf.score[:, 0][qs]
        feats["vague_cos"] = vague_cos[qs]
        w_head, w_mod, w_ctx = self.wordcode_.scores(titles, contexts)
        feats["w_head"] = w_head[qs, codes]
        feats["w_mod"] = w_mod[qs, codes]
        feats["w_ctx"] = w_ctx[qs, codes]
        feats["centroid"] = (q_full @ self.centroids_t_).toarray()[qs, codes]
        # Share of the classifier's belief that falls in this code's minor group.
        mass = clf_all @ self.class_group_onehot_
        feats["clf_minor"] = mass[qs, self.code_group_[codes]] / np.maximum(mass.sum(axis=1), 1e-9)[qs]
        X = np.column_stack([feats[f] for f in FEATURES]).astype(np.float32) if m else np.zeros((0, len(FEATURES)), np.float32)
        # Codes far down both the classifier's and the title matches' lists almost never win
        # after reranking; dropping them cuts the ranker's work by ~40% (measured on held-out
        # entries: top-1 and top-5 unchanged).
        keep = (feats["clf_rank"] <= self.keep_top) | (feats["rank_pair"] <= self.keep_top)
        return Candidates(q=qs[keep], code=codes[keep], entry=entry[keep], method=method[keep],
                          X=X[keep], vague=q_vague)
