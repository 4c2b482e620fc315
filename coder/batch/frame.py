"""Coding a table: each distinct (title, industry, description) coded once, results laid
out as columns.

This is the part shared by `code_frame` (a pandas DataFrame in memory), the streaming file
runner and the Dask partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..derivation import DERIVE_FROM
from ..errors import InputError
from ..results import Result
from ..schemes import MISSING_CODE

if TYPE_CHECKING:
    from ..engine import Coder

__all__ = ["code_frame", "output_columns", "check_columns", "Coded", "Row", "Key", "ChunkCoder", "coded_rows",
           "format_candidates", "format_candidate_titles", "factorize_keys", "CONTEXT"]

# One coded answer: code, title, confidence, status, method, matched entry, reason,
# candidates as ((code, title, confidence, matched entry, method), ...). Plain tuples: cheap to pickle
# between processes.
Coded = tuple[str, str, float, str, str, str, str, tuple[tuple[str, str, float, str, str], ...]]
# An answer as read: (title, industry, description), None where a column is absent or empty.
Key = tuple[str | None, str | None, str | None]
# The context columns a key carries after the title, in key order (as `Coder.code_many` takes them).
CONTEXT = ("industry", "description")

# Answers longer than this (all parts together) are not kept in the run cache (uncodable anyway).
_CACHEABLE_CHARS = 2_000


def output_columns(scheme: str, k: int = 1, *, candidates: bool | None = None,
                   also: Sequence[str] = ()) -> list[str]:
    """Names of the columns coding adds, in order, for ``scheme``.

    A ``candidates`` column follows when ``candidates`` is true (by default: when ``k > 1``);
    then, for each scheme in ``also`` (derived from the same coding, `coder.derive`), its code,
    title, confidence and status.
    """
    cols = [scheme, f"{scheme}_title", "confidence", "status", "method", "matched_entry", "reason"]
    if k > 1 if candidates is None else candidates:
        cols.append("candidates")
    for other in also:
        cols += [other, f"{other}_title", f"{other}_confidence", f"{other}_status"]
    return cols


def check_columns(columns: Sequence[object], named: Mapping[str, str | None], added: Sequence[str],
                  where: str = "the input") -> None:
    """InputError unless every named column exists and no column clashes with ``added``.

    ``named`` maps a role ("title", "industry", "description") to the column given for it
    (None: not used).
    """
    present = [str(c) for c in columns]
    for role, name in named.items():
        if name is not None and name not in present:
            shown = ", ".join(repr(c) for c in present[:20]) + (" ..." if len(present) > 20 else "")
            raise InputError(f"{where} has no column {name!r} ({role} column); its columns are: {shown}")
        if name is not None and present.count(name) > 1:
            raise InputError(f"{where} has {present.count(name)} columns named {name!r} ({role} column); "
                             "rename them so the column to code is clear")
    clash = [c for c in added if c in present]
    if clash:
        raise InputError(
            f"{where} already has a column named {clash[0]!r}, which coding would add; "
            "rename or drop that column first so nothing is overwritten"
        )


def coded_row(result: Result) -> Coded:
    """A `Result` as the flat tuple the batch code passes around."""
    reason = str(result.reason)  # a Reason member's text: plain str between processes and in files
    if result.status == "uncodable" or not result.candidates:
        return (MISSING_CODE, "", 0.0, "uncodable", "", "", reason, ())
    best = result.candidates[0]
    # Unrounded: derived schemes sum these as the API does (the columns show 3 decimals).
    cands = tuple((c.code, c.title, c.confidence, c.matched_entry, c.method) for c in result.candidates)
    return (best.code, best.title, round(best.confidence, 3), result.status, best.method,
            best.matched_entry, reason, cands)


def coded_rows(coder: "Coder", keys: Sequence[Key], k: int) -> list[Coded]:
    """Code distinct (title, industry, description) keys with ``coder``; one tuple per key, in order."""
    if not keys:
        return []
    results = coder.code_many([key[0] for key in keys], [key[1] for key in keys], [key[2] for key in keys], k=k)
    return [coded_row(r) for r in results]


def _key(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else str(value)


def factorize_keys(columns: Sequence[pd.Series | None]) -> tuple[np.ndarray, list[tuple[str | None, ...]]]:
    """(row -> key number, distinct keys) for rows of several aligned columns, vectorised.

    A key is a tuple with one entry per column (None for an absent column or a missing cell),
    numbered in order of first appearance. Each column is factorized once; the codes are then
    combined pairwise and re-factorized, so the combined numbers stay below the row count
    whatever the number of columns.
    """
    present = [c for c in columns if c is not None]
    n = len(present[0]) if present else 0
    combined = np.zeros(n, dtype=np.int64)
    parts: list[tuple[np.ndarray, list[str | None]]] = []
    for col in present:
        codes, uniques = col.factorize(use_na_sentinel=True)
        keys = [_key(v) for v in uniques] + [None]
        codes = np.where(codes < 0, len(uniques), codes).astype(np.int64)
        parts.append((codes, keys))
        combined, _ = pd.factorize(combined * len(keys) + codes)
    if not present:
        return combined, []
    combined = np.asarray(combined, dtype=np.int64)
    # pd.factorize numbers keys by first appearance, so first rows are where the running max grows.
    first = np.flatnonzero(np.diff(np.maximum.accumulate(combined), prepend=-1) > 0) if n else combined
    values = [[keys[c] for c in codes[first].tolist()] for codes, keys in parts]
    it = iter(values)
    full = [next(it) if col is not None else [None] * len(first) for col in columns]
    return combined, list(zip(*full))


# A coded key as laid out in the output: code (missing code applied), title, confidence,
# status, method, matched entry, reason, candidates (top k_out), and for referral files the
# full candidate list and their titles, then (code, title, confidence, status) for each derived
# scheme. Computed once per distinct key, then reused.
Row = tuple  # (str, str, float, str, str, str, str, str, str, str, *derived fields)
_TEXT_FIELDS = (0, 1, 3, 4, 5, 6)


class ChunkCoder:
    """Codes chunks of a table, each distinct (title, industry, description) once across all chunks.

    ``code_keys(keys)`` does the actual coding (in process, in a pool, on a cluster). Results
    are remembered in a bounded cache of raw keys: when it outgrows ``cache_size`` the least
    recently seen half is dropped (recency is refreshed once per chunk, not per row).
    ``k`` candidates are asked for, the first ``k_out`` are shown in the ``candidates``
    column (present when ``candidates`` is true; by default when ``k_out > 1``); with
    ``refer`` the referral file's columns (all ``k`` candidates, with titles) are laid out too.
    ``also`` names further schemes whose code, title, confidence and status are derived from
    the same coding (`coder.derivation`).
    """

    def __init__(self, code_keys: Callable[[list[Key]], list[Coded]], *, scheme: str, k: int,
                 missing_code: str = MISSING_CODE, cache_size: int = 300_000, k_out: int | None = None,
                 candidates: bool | None = None, refer: bool = False, also: Sequence[str] = ()):
        self.code_keys = code_keys
        self.scheme = scheme
        self.k = k
        self.k_out = k if k_out is None else k_out  # candidates shown in the output column
        self.show = self.k_out > 1 if candidates is None else bool(candidates)
        self.missing_code = missing_code
        self.refer = refer  # also lay out the referral file's candidate columns
        self.cache: dict[Key, Row] = {}
        self._strings: dict[str, str] = {}
        self.cache_size = cache_size
        self.distinct_coded = 0
        self.columns = output_columns(scheme, self.k_out, candidates=self.show, also=also)
        # Row fields behind the columns, in column order ("candidates", field 7, only when shown).
        self._fields = [*range(7), *([7] if self.show else []), *range(10, 10 + 4 * len(also))]
        self._numeric = {2, *range(12, 10 + 4 * len(also), 4)}
        if also:
            from ..derivation import Derivation

            self.derivations = [Derivation(scheme, other) for other in also]
        else:
            self.derivations = []

    # ------------------------------------------------------------------ keys
    @staticmethod
    def factorize(titles: pd.Series, *context: pd.Series | None) -> tuple[np.ndarray, list[Key]]:
        """(row -> key number, distinct (title, industry, description) keys) for a chunk."""
        context = tuple(context) + (None,) * (len(CONTEXT) - len(context))
        inv, keys = factorize_keys([titles, *context])
        return inv, keys  # type: ignore[return-value]

    def _row(self, coded: Coded) -> Row:
        code, title, conf, status, method, entry, reason, cands = coded
        if status == "uncodable":
            code = self.missing_code
        # Titles, entries and reasons repeat across keys: keep one copy of each in the cache.
        share = self._strings.setdefault
        code, title, status, method, entry, reason = (share(x, x) for x in (code, title, status, method, entry, reason))
        shown = format_candidates(cands[: self.k_out]) if self.show else ""
        full = format_candidates(cands) if self.refer else ""
        titles = format_candidate_titles(cands) if self.refer else ""
        return (code, title, conf, status, method, entry, reason, shown, full, titles, *self._derived(coded))

    def _derived(self, coded: Coded) -> tuple:
        """(code, title, confidence, status) in each derived scheme, from the same coding."""
        out: list = []
        _, _, _, status, _, _, reason, cands = coded
        for derivation in self.derivations:
            if status == "uncodable" or not cands:
                out += [self.missing_code, "", 0.0, "uncodable"]
                continue
            ranked, fixed = derivation.spread([(c[0], c[2], c[3], c[4]) for c in cands[:DERIVE_FROM]], k=1)
            got, _ = derivation.status(status, reason, ranked, fixed, cands[0][2])
            best = ranked[0] if ranked else None
            share = self._strings.setdefault
            out += [share(best[0], best[0]) if best else self.missing_code,
                    share(t := derivation.scheme.title(best[0]) or "", t) if best else "",
                    round(best[1], 3) if best else 0.0, got]
        return tuple(out)

    def lookup(self, keys: list[Key]) -> list[Row]:
        """Output rows for distinct ``keys``, coding the ones not seen before."""
        cache = self.cache
        rows: list[Row | None] = []
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = cache.pop(key, None)
            if hit is None:
                todo.append(i)
            else:
                cache[key] = hit  # re-insert: most recently seen last
            rows.append(hit)
        if todo:
            fresh = self.code_keys([keys[i] for i in todo])
            if len(fresh) != len(todo):
                raise RuntimeError(f"coding returned {len(fresh)} results for {len(todo)} titles")
            self.distinct_coded += len(todo)
            for i, coded in zip(todo, fresh):
                row = rows[i] = self._row(coded)
                if sum(len(part or "") for part in keys[i]) <= _CACHEABLE_CHARS:
                    cache[keys[i]] = row
            if len(cache) > self.cache_size:
                for old in list(cache)[: len(cache) - self.cache_size // 2]:
                    del cache[old]
        return rows  # type: ignore[return-value]

    # ------------------------------------------------------------------ columns
    def code(self, titles: pd.Series, industries: pd.Series | None = None,
             descriptions: pd.Series | None = None) -> tuple[pd.DataFrame, list[Row], np.ndarray]:
        """Result columns for one chunk (index as ``titles``), plus the distinct rows and mapping."""
        inv, keys = self.factorize(titles, industries, descriptions)
        rows = self.lookup(keys)
        return self.frame(rows, inv, titles.index), rows, inv

    def frame(self, rows: Sequence[Row], inv: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """Lay out distinct rows as result columns, one row per ``inv`` entry."""
        fields = list(zip(*rows)) if rows else [()] * (10 + 4 * len(self.derivations))
        data: dict[str, Any] = {}
        for f, name in zip(self._fields, self.columns):
            if f in self._numeric:
                data[name] = np.asarray(fields[f], dtype=np.float64)[inv]
            else:
                data[name] = take_text(fields[f], inv)
        return pd.DataFrame(data, index=index)


def take_text(values: Sequence[str], inv: np.ndarray) -> Any:
    """``values[inv]`` as a pandas string array, built without a Python object per row."""
    pa = _pyarrow()
    if pa is not None:
        taken = pa.array(values, type=pa.string()).take(pa.array(np.asarray(inv, dtype=np.int64)))
        return _arrow_text(taken)
    return np.asarray(values, dtype=object)[inv]


@lru_cache(maxsize=None)
def _pyarrow() -> Any:
    """pyarrow, imported on first use, or None: pandas works without it (NumPy object arrays)."""
    try:
        import pyarrow

        return pyarrow
    except ImportError:
        return None


def _arrow_text(array: Any) -> Any:
    try:  # pandas >= 2.3: the default string dtype ("str"), NaN for missing
        return pd.arrays.ArrowStringArray(array, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    except TypeError:  # older pandas
        return pd.arrays.ArrowStringArray(array)


def format_candidates(cands: Sequence[tuple]) -> str:
    """``code:confidence|code:confidence|...`` best first, confidences to 3 decimals."""
    return "|".join(f"{c[0]}:{c[2]:.3f}" for c in cands)


def format_candidate_titles(cands: Sequence[tuple]) -> str:
    """``code title | code title | ...`` for clerical coders."""
    return " | ".join(f"{c[0]} {c[1]}" for c in cands)


def code_frame(df: pd.DataFrame, column: str, industry_column: str | None = None,
               description_column: str | None = None, *, coder: "Coder | None" = None,
               scheme: str = "soc2000", k: int = 5, missing_code: str = MISSING_CODE) -> pd.DataFrame:
    """Code the job titles in ``df[column]``; returns a new DataFrame, ``df`` is not changed.

    Each distinct (title, industry, description) is coded once, however often it repeats.

    Parameters
    ----------
    df : pandas.DataFrame
        The data; every column and row is kept, in order, with its index.
    column : str
        Column holding free-text job titles.
    industry_column : str, optional
        Column with the employer's industry or business, used as context.
    description_column : str, optional
        Column with what the person mainly does in the job, used as context.
    coder : Coder, optional
        A loaded `Coder`; its scheme wins over ``scheme``. Default: ``Coder.load(scheme)``.
    scheme : str
        Classification when no ``coder`` is given (soc2000, soc90, soc2010, soc2020, isco08).
    k : int
        Candidates per title; with ``k > 1`` a ``candidates`` column lists them as
        ``code:confidence|...``.
    missing_code : str
        Code written for uncodable titles (default ``"-9"``).

    Returns
    -------
    pandas.DataFrame
        ``df``'s columns plus ``<scheme>``, ``<scheme>_title``, ``confidence``, ``status``,
        ``method``, ``matched_entry``, ``reason`` (and ``candidates``).

    Raises
    ------
    InputError
        When a named column is missing, or ``df`` already has a column coding would add.

    Examples
    --------
    >>> import pandas as pd
    >>> from coder.batch import code_frame
    >>> coded = code_frame(pd.DataFrame({"job": ["staff nurse", ""]}), "job")  # doctest: +SKIP
    >>> coded[["job", "soc2000", "status"]]                                     # doctest: +SKIP
               job soc2000     status
    0  staff nurse    3211       auto
    1                   -9  uncodable
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if coder is None:
        from ..engine import Coder

        coder = Coder.load(scheme)
    name = coder.scheme_name
    named = {"title": column, "industry": industry_column, "description": description_column}
    check_columns(list(df.columns), named, output_columns(name, k), "the DataFrame")
    chunker = ChunkCoder(lambda keys: coded_rows(coder, keys, k), scheme=name, k=k, missing_code=missing_code)
    added, _, _ = chunker.code(*(df[c] if c else None for c in named.values()))
    # Positional assignment on a copy: safe with a duplicated index, and df stays as it was.
    return df.assign(**{name: added[name].to_numpy() for name in added.columns})
