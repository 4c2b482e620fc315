"""Run the stages over a batch and describe every candidate (query, code) by named features.

Title-proposing stages put forward index titles; each title brings all its entries, whose
qualifiers (ADD / IND) are compared here with the query's industry and description: this is
where context chooses between entries that share a title. Code-proposing stages add codes
directly. Every candidate code then gets the generator's own columns (`BASE_FEATURES`) and
each stage's columns; `FEATURES` is their concatenation in `STAGES` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._order import run_starts
from .index import IndexEntry
from .stages import STAGES
from .stages.base import Pairs, Proposals, Queries, Stage
from .stages.tfidf import rowwise_dot
from .table import IndexTable

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CandidateGenerator", "Candidates", "FEATURES", "METHODS", "BASE_FEATURES", "feature_names"]

HIT_INDUSTRY = 0.8  # context-to-qualifier cosine that counts as "the same qualifier"
CONTEXT_MATCH = 0.3  # ... that counts as the context choosing an entry
# Features are rounded to this many decimals before the ranker sees them. Float sums differ in
# the last bit between code paths (one title vs a batch, SciPy vs NumPy): unrounded, a
# cosine of 1.0 vs 0.99999994 could fall either side of a learned split and change an answer.
FEATURE_DECIMALS = 5

# The generator's own columns, from title matches and entry qualifiers.
BASE_FEATURES = (
    "sim",  # best score any stage gave one of the code's titles
    "exact",  # the code has an entry under the query's own title
    "ind", "ind_desc",  # industry / description vs the best-matching entry qualifier
    "pair",  # heuristic entry score of the explaining entry
    "n_pairs", "n_stages",  # entries reached; stages that proposed the code
    "best_default", "best_qualified", "any_default_unqualified",
    "hit",  # the index's own answer: query title, and no qualifier or a matching one
    "hit_plain",  # the query title's unqualified entry has this code
    "prior", "rank_pair", "gap_pair",
    "has_ind", "has_desc", "n_tok",
    "q_exact", "q_exact_codes", "q_hit", "q_vague", "vague_sim",
    "q_title_qualified",  # share of the query title's entries that carry a qualifier
    "q_ind_any",  # how well the context matches any qualifier of the query title's entries
)


def feature_names(stages: Sequence[type[Stage] | Stage]) -> tuple[str, ...]:
    """Ranker columns for a list of stages: the base columns, then each stage's."""
    names = list(BASE_FEATURES)
    for stage in stages:
        names.extend(stage.FEATURES)
    if len(set(names)) != len(names):
        raise ValueError(f"feature names clash: {sorted(n for n in names if names.count(n) > 1)}")
    return tuple(names)


FEATURES = feature_names(STAGES)
METHODS = tuple(stage.name for stage in STAGES)


@dataclass(frozen=True)
class Candidates:
    """Candidate rows for a batch, sorted by query: row i proposes code ``code[i]`` (a code
    number of the generator's table) for query ``q[i]``, explained by index entry
    ``entry[i]`` which stage ``methods[method[i]]`` found; ``X[:, j]`` is feature
    ``features[j]``.

    Per query: ``vague`` (the index holds the title but says it is not codable alone) and
    ``hit`` (the index holds the answer: its title, with no qualifier or a matching one).
    ``described``: the query came with a description. Per row: ``context_match`` (the
    industry or description matches the explaining entry's qualifier: the context chose it).
    """

    q: np.ndarray
    code: np.ndarray
    entry: np.ndarray
    method: np.ndarray
    X: np.ndarray
    context_match: np.ndarray
    vague: np.ndarray
    hit: np.ndarray
    described: np.ndarray
    features: tuple[str, ...]
    methods: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.features.index(name)]

    def groups(self) -> np.ndarray:
        """Calibration group of each row: whether the index holds the query (a hit) and
        whether it came with a description. The same ranker score means a different chance
        of being right in each."""
        return (2 * self.hit[self.q] + self.described[self.q]).astype(np.int64)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (for training and inspection)."""
        import pandas as pd  # training and evaluation only: coding never needs it

        out = pd.DataFrame(self.X, columns=list(self.features))
        out.insert(0, "q", self.q)
        out.insert(1, "code", self.code)
        out.insert(2, "entry", self.entry)
        out.insert(3, "method", np.asarray(self.methods)[self.method])
        out["group"] = self.groups()
        return out

    @classmethod
    def concat(cls, parts: Sequence["Candidates"]) -> "Candidates":
        offsets = np.cumsum([0] + [len(p.vague) for p in parts[:-1]])
        return cls(
            q=np.concatenate([p.q + off for p, off in zip(parts, offsets)]),
            **{name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("code", "entry", "method", "X", "context_match", "vague", "hit", "described")},
            features=parts[0].features, methods=parts[0].methods,
        )


def _first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(run_starts(sorted_keys))


def _fit_stages(stages: Sequence[type], table: IndexTable, seed: int) -> list:
    """The stages fitted on ``table``, in order.

    Where the caller lets joblib use several processes (its ``parallel_config``, as a build
    from a shipped ranker does), they fit on two threads: the classifier mostly waits for
    its worker processes, and the other stages fit meanwhile. Each stage fits on its own
    from the table, so the order they end in changes nothing.
    """
    from joblib import effective_n_jobs, parallel_config

    jobs = effective_n_jobs(None)
    if jobs <= 1 or len(stages) < 2:
        return [cls().fit(table, seed=seed) for cls in stages]
    from concurrent.futures import ThreadPoolExecutor

    def fit(cls: type):
        with parallel_config(n_jobs=jobs):  # joblib's settings are per thread
            return cls().fit(table, seed=seed)

    with ThreadPoolExecutor(2, thread_name_prefix="coder-fit") as pool:
        return [future.result() for future in [pool.submit(fit, cls) for cls in stages]]


class CandidateGenerator:
    """Fitted on index entries for one scheme; `generate` gives candidate rows for queries.

    Parameters
    ----------
    stages
        Stage classes to run, in order (default `coder.stages.STAGES`).
    keep_top
        Candidates ranked below this by every stage's proposals and by the entry score are
        dropped before the stages describe them: they almost never win after reranking.
    chunk
        Queries per internal batch; bounds the dense (queries x codes) arrays.
    """

    def __init__(self, scheme: str, *, stages: Sequence[type[Stage]] | None = None, keep_top: int = 8,
                 chunk: int = 1024):
        self.scheme = scheme
        self.stages = tuple(STAGES if stages is None else stages)
        self.keep_top = keep_top
        self.chunk = chunk

    # ------------------------------------------------------------------ fit
    def fit(self, entries: Sequence[IndexEntry], *, seed: int = 0,
            decided: Sequence[tuple[tuple[str, str, str], str]] = ()) -> "CandidateGenerator":
        """Fit the stages on index ``entries`` and coded answers ``decided`` ((title, industry,
        description) normalised, code)."""
        self.table_ = IndexTable(self.scheme).fit(entries, decided)
        self.stages_ = _fit_stages(self.stages, self.table_, seed)
        self.features_ = feature_names(self.stages_)
        self.methods_ = tuple(stage.name for stage in self.stages_)
        return self

    @property
    def codes_(self) -> np.ndarray:
        return self.table_.codes_

    @property
    def entry_text_(self) -> np.ndarray:
        return self.table_.entry_text_

    # ------------------------------------------------------------- generate
    def generate(self, titles: Sequence[str], industries: Sequence[str],
                 descriptions: Sequence[str] | None = None) -> Candidates:
        """Candidate rows for normalised ``titles`` with normalised ``industries`` and
        ``descriptions`` ('' where absent)."""
        titles, industries = list(titles), list(industries)
        descriptions = [""] * len(titles) if descriptions is None else list(descriptions)
        if len(titles) <= self.chunk:
            return self._generate(titles, industries, descriptions)
        return Candidates.concat([
            self._generate(titles[i : i + self.chunk], industries[i : i + self.chunk],
                           descriptions[i : i + self.chunk])
            for i in range(0, len(titles), self.chunk)
        ])

    def _generate(self, titles: list[str], industries: list[str], descriptions: list[str]) -> Candidates:
        table = self.table_
        queries = Queries(titles, industries, descriptions, table)
        n, n_codes = queries.n, table.n_codes
        title_props: list[tuple[int, Proposals]] = []
        code_props: list[tuple[int, Proposals]] = []
        q_title = np.full(n, -1, np.int64)
        for s, stage in enumerate(self.stages_):
            made = stage.propose(queries)
            for p in ([] if made is None else [made] if isinstance(made, Proposals) else made):
                if len(p.q) == 0:
                    continue
                if p.kind == "title":
                    title_props.append((s, p))
                    np.maximum.at(queries.best_title, p.q, p.score)
                    if p.exact:
                        q_title[p.q] = p.target
                else:
                    code_props.append((s, p))

        # (query, title) pairs: best score, the stage that gave it (earliest on ties), and
        # every stage that proposed it (a bit each).
        tq, tt, t_sim, t_method, t_bits = _title_pairs(title_props)
        of, ent = table.title_entries(tt)
        e_q, e_code = tq[of], table.entry_code_[ent].astype(np.int64)
        vague_sim = np.zeros(n, np.float32)
        vague_rows = e_code < 0
        np.maximum.at(vague_sim, e_q[vague_rows], t_sim[of][vague_rows])
        ok = ~vague_rows
        of, ent, e_q, e_code = of[ok], ent[ok], e_q[ok], e_code[ok]

        e_ind = (rowwise_dot(queries.vectors("industry"), e_q, table.qual_vecs_, ent)
                 if queries.has_industry.any() else np.zeros(len(ent), np.float32))
        e_ind_desc = (rowwise_dot(queries.vectors("description"), e_q, table.qual_vecs_, ent)
                      if queries.has_description.any() else np.zeros(len(ent), np.float32))
        e_exact = tt[of] == q_title[e_q]
        e_qual = table.entry_qualified_[ent]
        e_default = table.entry_default_[ent]
        e_context = np.maximum(e_ind, e_ind_desc)
        e_hit = e_exact & (~e_qual | (e_ind >= HIT_INDUSTRY))
        # Heuristic entry score, only to pick the entry that explains a code; the ranker decides.
        e_score = (t_sim[of] + 0.3 * e_exact + e_ind + 0.5 * e_ind_desc
                   - 0.15 * (e_qual & (e_context < CONTEXT_MATCH)) + 0.05 * (e_default > 0)).astype(np.float32)

        # Candidate (query, code) pairs: from entries and from code proposals.
        c_q = np.concatenate([p.q for _, p in code_props]) if code_props else np.zeros(0, np.int64)
        c_code = np.concatenate([p.target for _, p in code_props]) if code_props else np.zeros(0, np.int64)
        c_score = np.concatenate([p.score for _, p in code_props]) if code_props else np.zeros(0, np.float32)
        c_stage = np.concatenate([np.full(len(p.q), s) for s, p in code_props]) if code_props else np.zeros(0, np.int64)
        c_entry = (np.concatenate([p.entry if p.entry is not None else np.full(len(p.q), -1) for _, p in code_props])
                   if code_props else np.zeros(0, np.int64))
        c_rank = np.concatenate([_rank_in_query(p.q, p.score) for _, p in code_props]) if code_props else np.zeros(0, np.float32)
        e_key = e_q * n_codes + e_code
        c_key = c_q * n_codes + c_code
        keys = np.union1d(e_key, c_key)
        e_pair = np.searchsorted(keys, e_key)
        c_pair = np.searchsorted(keys, c_key)
        m = len(keys)
        pq, pcode = keys // n_codes, keys % n_codes

        def emax(values: np.ndarray) -> np.ndarray:
            out = np.zeros(m, np.float32)
            np.maximum.at(out, e_pair, np.asarray(values, np.float32))
            return out

        # Explaining entry: the pair's best entry row by e_score; else its best code proposal.
        entry = np.full(m, -1, np.int64)
        method = np.zeros(m, np.int8)
        has_rows = np.zeros(m, bool)
        best_row = np.full(m, -1, np.int64)
        if len(e_pair):
            order = np.lexsort((-e_score, e_pair))
            first = order[_first_of_runs(e_pair[order])]
            best_row[e_pair[first]] = first
            has_rows[e_pair[first]] = True
            entry[e_pair[first]] = ent[first]
            method[e_pair[first]] = t_method[of[first]]
        if len(c_pair):
            order = np.lexsort((c_stage, -c_score, c_pair))
            first = order[_first_of_runs(c_pair[order])]
            take = ~has_rows[c_pair[first]]
            pick = first[take]
            chosen = c_entry[pick]
            entry[c_pair[pick]] = np.where(chosen >= 0, chosen, table.code_entry_[c_code[pick]])
            method[c_pair[pick]] = c_stage[pick]
        bits = np.zeros(m, np.int64)
        np.bitwise_or.at(bits, e_pair, t_bits[of])
        np.bitwise_or.at(bits, c_pair, np.left_shift(1, c_stage))
        code_rank = np.full(m, np.inf, np.float32)
        np.minimum.at(code_rank, c_pair, c_rank)

        q_hit = np.zeros(n, bool)
        q_hit[e_q[e_hit]] = True
        has_exact = q_title >= 0
        q_vague = np.zeros(n, bool)
        q_vague[has_exact] = table.title_vague_[q_title[has_exact]]
        exact_codes = np.zeros(n, np.float32)
        exact_pair = emax(e_exact) > 0
        np.add.at(exact_codes, pq[exact_pair], 1.0)
        pair_score = emax(e_score)
        q_entries = np.zeros(n, np.float32)
        q_qualified = np.zeros(n, np.float32)
        np.add.at(q_entries, e_q[e_exact], 1.0)
        np.add.at(q_qualified, e_q[e_exact], e_qual[e_exact].astype(np.float32))
        q_ind_any = np.zeros(n, np.float32)
        np.maximum.at(q_ind_any, e_q[e_exact], e_context[e_exact])
        # Pairs with no entry rows (only code proposals) read the defaults below, never e_*[0].
        safe = np.maximum(best_row, 0) if len(ent) else np.zeros(m, np.int64)
        e_default_at = e_default[safe] if len(ent) else np.zeros(m, np.int8)
        e_qual_at = e_qual[safe] if len(ent) else np.zeros(m, bool)
        e_context_at = e_context[safe] if len(ent) else np.zeros(m, np.float32)
        base = {
            "sim": emax(t_sim[of]), "exact": exact_pair.astype(np.float32),
            "ind": emax(e_ind), "ind_desc": emax(e_ind_desc), "pair": pair_score,
            "n_pairs": np.bincount(e_pair, minlength=m).astype(np.float32),
            "n_stages": np.bitwise_count(bits).astype(np.float32),  # a bit per proposing stage
            "best_default": np.where(has_rows, e_default_at, table.entry_default_[entry]).astype(np.float32),
            "best_qualified": np.where(has_rows, e_qual_at, table.entry_qualified_[entry]).astype(np.float32),
            "any_default_unqualified": emax((e_default > 0) & ~e_qual),
            "hit": emax(e_hit), "hit_plain": emax(e_exact & ~e_qual),
            "prior": table.prior_[pcode],
            "rank_pair": _rank_in_query(pq, pair_score),
            "gap_pair": _query_max(pq, pair_score, n) - pair_score,
            "has_ind": queries.has_industry[pq].astype(np.float32),
            "has_desc": queries.has_description[pq].astype(np.float32),
            "n_tok": np.array([len(t.split()) for t in titles], np.float32)[pq],
            "q_exact": has_exact[pq].astype(np.float32), "q_exact_codes": exact_codes[pq],
            "q_hit": q_hit[pq].astype(np.float32), "q_vague": q_vague[pq].astype(np.float32),
            "vague_sim": vague_sim[pq],
            "q_title_qualified": (q_qualified / np.maximum(q_entries, 1.0))[pq], "q_ind_any": q_ind_any[pq],
        }
        context_match = has_rows & (e_context_at >= CONTEXT_MATCH) & e_qual_at

        # Drop candidates far down every list before the stages describe them.
        keep = (base["rank_pair"] <= self.keep_top) | (code_rank <= self.keep_top) | (base["hit"] > 0)
        kept = np.flatnonzero(keep)
        remap = np.full(m, -1, np.int64)
        remap[kept] = np.arange(len(kept))
        rows_kept = remap[e_pair] >= 0
        pairs = Pairs(n_queries=n, q=pq[kept], code=pcode[kept], tq=tq, tt=tt,
                      e_pair=remap[e_pair][rows_kept], e_entry=ent[rows_kept], e_tp=of[rows_kept])
        columns = {name: values[kept] for name, values in base.items()}
        for stage in self.stages_:
            described = stage.features(queries, pairs)
            if set(described) != set(stage.FEATURES):
                raise RuntimeError(f"stage {stage.name!r} returned {sorted(described)}, declared {stage.FEATURES}")
            columns.update(described)
        # Column by column into one float32 array (the cast `np.asarray(..., np.float32)` makes):
        # faster than `np.column_stack` at any size.
        X = np.empty((len(kept), len(self.features_)), np.float32)
        for j, f in enumerate(self.features_):
            X[:, j] = columns[f]
        np.round(X, FEATURE_DECIMALS, out=X)
        return Candidates(q=pq[kept], code=pcode[kept], entry=entry[kept], method=method[kept], X=X,
                          context_match=context_match[kept], vague=q_vague, hit=q_hit,
                          described=queries.has_description,
                          features=self.features_, methods=self.methods_)


def _title_pairs(props: list[tuple[int, Proposals]]) -> tuple[np.ndarray, ...]:
    """Unique (query, title) pairs over title proposals: (q, title, best score, stage of the
    best score, bit mask of proposing stages)."""
    if not props:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, np.float32), z, z
    q = np.concatenate([p.q for _, p in props])
    t = np.concatenate([p.target for _, p in props])
    score = np.concatenate([p.score for _, p in props])
    stage = np.concatenate([np.full(len(p.q), s) for s, p in props])
    n_titles = int(t.max()) + 1
    key = q * n_titles + t
    order = np.lexsort((stage, -score, key))
    first = order[_first_of_runs(key[order])]
    uniq = key[first]
    bits = np.zeros(len(first), np.int64)
    np.bitwise_or.at(bits, np.searchsorted(uniq, key), np.left_shift(1, stage))
    return q[first], t[first], score[first].astype(np.float32), stage[first], bits


def _rank_in_query(q: np.ndarray, values: np.ndarray) -> np.ndarray:
    from .stages.base import rank_desc

    return rank_desc(np.asarray(q), np.asarray(values, np.float32))


def _query_max(q: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    from .stages.base import group_max

    return group_max(q, values, n) if len(q) else np.zeros(0, np.float32)
