"""What the respondent says they mainly do: evidence for a code beside the title.

"Sales assistant" who "replenishes shelves" is a shelf filler; a "factory operative" who is
a "forklift driver" is a fork-lift truck driver. The description is compared with three
things: the index titles it contains as a phrase ("... forklift driver ..."), the index titles
nearest to it, and a text per code made of the code's index titles and the ONS unit-group
description, tasks and related titles (SOC2020 Volume 1, mapped to the scheme through the
index's dual coding).
"""

from __future__ import annotations

import csv
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .._order import run_starts
from .._paths import data_path
from ..normalise import normalise
from .base import Pairs, Proposals, Queries, TopK
from .tfidf import TfidfRetriever

if TYPE_CHECKING:  # pragma: no cover
    from ..table import IndexTable

__all__ = ["DescriptionStage", "code_documents", "code_summaries"]

DESCRIPTIONS_FILE = "soc2020_volume1_descriptions.csv"
_MAX_PHRASE = 5


def _volume1(fields: tuple[str, ...] = ("title", "description", "tasks", "related_job_titles")) -> dict[str, str]:
    """SOC2020 unit group -> the given fields of its Volume 1 entry as one text."""
    out = {}
    with open(data_path(DESCRIPTIONS_FILE), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["unit"]:
                out[row["unit"]] = " ".join(row[k] for k in fields).replace("~", " ")
    return out


def _groups_of(table: "IndexTable") -> list[list[str]]:
    """Per code of ``table``: the SOC2020 unit groups holding at least a fifth of its entries."""
    soc2020: list[Counter] = [Counter() for _ in range(table.n_codes)]
    for e, code in zip(table.entries, table.entry_code_):
        if code >= 0 and e.code("soc2020"):
            soc2020[code][e.code("soc2020")] += 1
    out = []
    for counts in soc2020:
        total = sum(counts.values())
        out.append(sorted(g for g, n in counts.items() if n >= 0.2 * total))
    return out


def code_summaries(table: "IndexTable") -> list[str]:
    """One short text per code: the title and one-paragraph description of its SOC2020 unit
    groups (what an embedding of a whole task list would blur)."""
    volume1 = _volume1(("title", "description"))
    return [" ".join(volume1.get(g, "") for g in groups) for groups in _groups_of(table)]


def code_documents(table: "IndexTable") -> list[str]:
    """One normalised text per code of ``table``: its entries' titles and the Volume 1 text of
    the SOC2020 unit groups that hold at least a fifth of its entries."""
    volume1 = _volume1()
    titles: list[set[str]] = [set() for _ in range(table.n_codes)]
    for code, title in zip(table.entry_code_, table.entry_title_norm_):
        if code >= 0:
            titles[code].add(title)
    return [" ".join(sorted(titles[code])) + " " + normalise(" ".join(volume1.get(g, "") for g in groups))
            for code, groups in enumerate(_groups_of(table))]


class DescriptionStage:
    """Codes the description points at.

    Proposes the codes of index titles the description contains or is nearest to. Features:
    ``d_phrase`` (words in the longest index title of the code found in the description),
    ``d_whole`` (the whole description is an index title of the code: "Cashier"),
    ``d_title`` (cosine of the description with the code's nearest index title),
    ``d_code`` (cosine with the code's text). All 0 without a description.
    """

    name = "description"
    FEATURES = ("d_phrase", "d_whole", "d_title", "d_code")

    def __init__(self, *, k: int = 5):
        self.k = k

    def fit(self, table: "IndexTable", *, seed: int = 0) -> "DescriptionStage":
        self.lookup_ = {t: i for i, t in enumerate(table.titles_)}
        # A title's code, and the entry that explains it: its unqualified default entry if any.
        self.title_code_, self.title_entry_ = table.title_defaults()
        self.retriever_ = TfidfRetriever(k=self.k, min_score=0.2).fit_titles(table)
        self.code_docs_t_ = table.encoder_.transform(code_documents(table)).T.tocsr()
        self.n_codes_ = table.n_codes
        return self

    def _phrases(self, text: str) -> list[tuple[int, int]]:
        """(title, words) for every index title the text contains as a phrase."""
        words = text.split()
        found = []
        for n in range(min(_MAX_PHRASE, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                t = self.lookup_.get(" ".join(words[i : i + n]))
                if t is not None and self.title_code_[t] >= 0:
                    found.append((t, n))
        return found

    def _evidence(self, queries: Queries) -> tuple[list, object]:
        key = f"{self.name}:evidence"
        if key not in queries.scratch:
            rows = np.flatnonzero(queries.has_description)
            phrases = [self._phrases(queries.descriptions[i]) for i in rows]
            top = (self.retriever_.query([queries.descriptions[i] for i in rows]) if len(rows)
                   else TopK.empty(0, self.retriever_.k))  # what the query gives, without the call
            queries.scratch[key] = (rows, phrases, top)
        return queries.scratch[key]  # type: ignore[return-value]

    def propose(self, queries: Queries) -> Proposals | None:
        rows, phrases, top = self._evidence(queries)
        if len(rows) == 0:
            return None
        q = [np.repeat(rows, top.idx.shape[1])]
        t = [top.idx.ravel()]
        s = [top.score.ravel()]
        for r, found in zip(rows, phrases):
            for title, n in found:
                q.append(np.array([r]))
                t.append(np.array([title]))
                s.append(np.array([1.0], np.float32))
        q_, t_, s_ = np.concatenate(q), np.concatenate(t).astype(np.int64), np.concatenate(s)
        keep = (t_ >= 0)
        keep[keep] &= self.title_code_[t_[keep]] >= 0
        return Proposals("code", q_[keep], self.title_code_[t_[keep]], s_[keep].astype(np.float32),
                         entry=self.title_entry_[t_[keep]])

    def features(self, queries: Queries, pairs: Pairs) -> dict[str, np.ndarray]:
        n = len(pairs)
        out = {name: np.zeros(n, np.float32) for name in self.FEATURES}
        rows, phrases, top = self._evidence(queries)
        if len(rows) == 0 or n == 0:
            return out
        # (query, code) -> value, as sparse matrices, then read at the pair rows.
        shape = (queries.n, self.n_codes_)
        pq, pc, pv, wq, wc = [], [], [], [], []
        for r, found in zip(rows, phrases):
            n_words = len(queries.descriptions[r].split())
            for title, words in found:
                pq.append(r)
                pc.append(self.title_code_[title])
                pv.append(words)
                if words == n_words:
                    wq.append(r)
                    wc.append(self.title_code_[title])
        phrase = _max_matrix(pq, pc, pv, shape)
        whole = _max_matrix(wq, wc, np.ones(len(wq)), shape)
        tq = np.repeat(rows, top.idx.shape[1])
        tt = top.idx.ravel()
        ok = (tt >= 0)
        ok[ok] &= self.title_code_[tt[ok]] >= 0
        title = _max_matrix(tq[ok], self.title_code_[tt[ok]], top.score.ravel()[ok], shape)
        code_cos = (queries.vectors("description") @ self.code_docs_t_).tocsr()
        out["d_phrase"] = np.asarray(phrase[pairs.q, pairs.code], np.float32).ravel()
        out["d_whole"] = np.asarray(whole[pairs.q, pairs.code], np.float32).ravel()
        out["d_title"] = np.asarray(title[pairs.q, pairs.code], np.float32).ravel()
        out["d_code"] = np.asarray(code_cos[pairs.q, pairs.code], np.float32).ravel()
        return out


def _max_matrix(rows, cols, values, shape) -> sp.csr_matrix:
    """Sparse matrix holding the largest value given for each (row, col)."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    values = np.asarray(values, np.float32)
    if len(rows) == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    key = rows * shape[1] + cols
    order = np.lexsort((-values, key))
    first = run_starts(key[order])
    pick = order[first]
    return sp.csr_matrix((values[pick], (rows[pick], cols[pick])), shape=shape)
