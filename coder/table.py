"""The coding index laid out for one scheme: what every stage reads.

Titles are matched in title space (the index's distinct normalised titles); each title brings
all its entries, whose qualifiers (ADD / IND) the query's context is compared with. Codes are
numbered ``0..n_codes-1`` in sorted order. The shared TF-IDF space (`encoder_`) is fitted once
here so the stages and the generator compare texts in one vocabulary.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .index import IndexEntry
from .normalise import normalise
from .schemes import load_scheme
from .stages.tfidf import TfidfEncoder, TfidfRetriever

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

__all__ = ["IndexTable", "DEFAULT_FLAGS"]

_SPACES_LOCK = threading.Lock()  # `IndexTable.title_space`

DEFAULT_FLAGS = {"": 0, "O": 1, "I": 2, "A": 3, "Q": 4, "QS": 5, "M": 6}


class IndexTable:
    """Index entries of one scheme as arrays.

    Attributes (after `fit`)
    ------------------------
    codes_ : codes of the scheme found in the index, sorted; a code's number is its position.
    titles_ : distinct normalised entry titles, sorted; ``title_entries_[title_ptr_[t]:title_ptr_[t+1]]``
        are title t's entries.
    entry_code_ : code number per entry, -1 where the index says the title alone is not codable.
    entry_qualified_, entry_default_, entry_text_ : has ADD/IND qualifiers; D flag; quoted form.
    qual_vecs_, title_vecs_ : shared TF-IDF rows of the entries' qualifiers and of the titles.
    code_entry_ : the entry that stands for a code when no title explains it (unqualified
        default first).
    """

    def __init__(self, scheme: str):
        self.scheme = load_scheme(scheme).name

    def fit(self, entries: Sequence[IndexEntry],
            decided: Sequence[tuple[tuple[str, str, str], str]] = ()) -> "IndexTable":
        """Lay out ``entries``; ``decided`` are coded answers the stages may learn from:
        ((title, industry, description) normalised, code)."""
        self.entries = list(entries)  # for stages' fit only; not pickled
        self.decided_keys = [key for key, _ in decided]
        self.decided_codes = [code for _, code in decided]
        self.entry_title_norm_ = [normalise(e.natural) for e in entries]
        self.entry_qual_norm_ = [normalise(f"{e.add} {e.ind}") for e in entries]
        codes = [e.code(self.scheme) for e in entries]
        self.codes_ = np.array(sorted({c for c in codes if c}))
        code_pos = {c: i for i, c in enumerate(self.codes_)}
        self.n_codes = len(self.codes_)
        # How each entry is quoted to users. A NumPy string array, not the IndexEntry objects:
        # 30k small objects made loading the model 1 s slower.
        self.entry_text_ = np.array([e.describe() for e in entries], dtype=str)
        self.entry_code_ = np.array([code_pos[c] if c else -1 for c in codes], np.int32)
        self.entry_default_ = np.array([DEFAULT_FLAGS.get(e.default, 0) for e in entries], np.int8)
        self.entry_qualified_ = np.array([bool(q) for q in self.entry_qual_norm_])
        self.codable_ = self.entry_code_ >= 0

        titles, entry_title = np.unique(np.array(self.entry_title_norm_, dtype=object), return_inverse=True)
        self.titles_ = [str(t) for t in titles]
        self.entry_title_ = entry_title.astype(np.int32)
        order = np.argsort(self.entry_title_, kind="stable")
        self.title_entries_ = order.astype(np.int32)
        self.title_ptr_ = np.searchsorted(self.entry_title_[order], np.arange(len(titles) + 1)).astype(np.int32)
        vague_unqualified = ~self.codable_ & ~self.entry_qualified_
        self.title_vague_ = np.zeros(len(titles), bool)
        self.title_vague_[self.entry_title_[vague_unqualified]] = True

        self.docs_ = [f"{t} {q}".strip() for t, q in zip(self.entry_title_norm_, self.entry_qual_norm_)]
        self.encoder_ = TfidfEncoder().fit(self.docs_)
        self.title_vecs_ = self.encoder_.transform(self.titles_)
        self.qual_vecs_ = self.encoder_.transform(self.entry_qual_norm_)

        counts = np.bincount(self.entry_code_[self.codable_], minlength=self.n_codes)
        self.prior_ = np.log1p(counts).astype(np.float32)
        scheme = load_scheme(self.scheme)
        groups = np.array([scheme.level_code(c, "minor") for c in self.codes_])
        _, self.code_group_ = np.unique(groups, return_inverse=True)
        self.code_entry_ = np.full(self.n_codes, -1, np.int32)
        rank = np.where(self.entry_qualified_, 2, np.where(self.entry_default_ > 0, 0, 1))
        for i in np.lexsort((rank, self.entry_code_)):
            c = self.entry_code_[i]
            if c >= 0 and self.code_entry_[c] < 0:
                self.code_entry_[c] = i
        return self

    def title_defaults(self) -> tuple[np.ndarray, np.ndarray]:
        """(code, explaining entry) of each title, -1 where it has no code: its unqualified
        default entry if any, else an unqualified one, else a qualified one."""
        n_titles = len(self.titles_)
        title_code = np.full(n_titles, -1, np.int64)
        title_entry = np.full(n_titles, -1, np.int64)
        rank = np.where(self.entry_qualified_, 2, np.where(self.entry_default_ > 0, 0, 1))
        for i in np.lexsort((rank, self.entry_title_)):
            t = self.entry_title_[i]
            if self.entry_code_[i] >= 0 and title_entry[t] < 0:
                title_entry[t], title_code[t] = i, self.entry_code_[i]
        return title_code, title_entry

    def title_entries(self, titles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of ``titles`` each entry came from, entry number) for all entries of ``titles``."""
        titles = np.asarray(titles, np.int64)
        counts = self.title_ptr_[titles + 1] - self.title_ptr_[titles]
        of = np.repeat(np.arange(len(titles)), counts)
        starts = np.repeat(self.title_ptr_[titles], counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return of, self.title_entries_[starts + offsets].astype(np.int64)

    def title_space(self, max_df: float) -> tuple[TfidfEncoder, "sp.csr_matrix"]:
        """The index titles' `TfidfRetriever` space for ``max_df`` (its encoder and transposed
        title matrix), fitted once: stages that search the titles share it (stages fit on two
        threads, hence the lock)."""
        with _SPACES_LOCK:
            spaces = self.__dict__.setdefault("_title_spaces", {})
            if max_df not in spaces:
                fitted = TfidfRetriever(max_df=max_df).fit(self.titles_)
                spaces[max_df] = (fitted.encoder_, fitted.matrix_t_)
            return spaces[max_df]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("entries", "entry_title_norm_", "entry_qual_norm_", "docs_", "decided_keys", "decided_codes",
                     "_title_spaces"):
            state.pop(name, None)  # needed while stages fit, not to code
        return state
