"""Codebooks: how many rows got each code, as a table whose format follows the file extension.

Every codebook has one row per unit group of the scheme in code order (zero counts included),
then one row for the missing code with an empty label. The label is the code followed by its
title (for SOC90 the survey codebook's own short labels, so a SOC90 codebook matches
``data/soc90_codebook_seed.txt`` line for line). Codes found in the data that are not unit
groups of the scheme (none, with this package's models) get rows of their own before the
missing row, labelled as such, so the counts always sum to the number of rows.

``.csv``, ``.tsv``, ``.xlsx``: a real table, columns ``value``, ``label``, ``count`` and, when
the statuses are known (a coded file), ``auto`` and ``refer`` (rows of that value auto-coded
and referred) and ``auto_share`` and ``refer_share`` (those counts over ``count``, empty
when ``count`` is 0). An .xlsx codebook has a second sheet, ``status``, with the table of
statuses below.

``.txt``, ``.md``: the plain-text layout of the survey codebook seed, a header row and one
``| value | label | count |`` row per value (``.md`` adds the ``|---|`` row that makes it a
Markdown table); after a blank line a second small table gives how the rows were coded::

    | status | count | share |
    | auto | 812 | 81.2% |
    | refer | 150 | 15.0% |
    | uncodable | 38 | 3.8% |
    | total | 1000 | 100.0% |
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from .._atomic import atomic_write
from ..errors import InputError
from ..results import STATUSES
from ..schemes import MISSING_CODE, load_scheme

__all__ = ["CODEBOOK_FORMATS", "codebook_format", "codebook_rows", "codebook_table", "format_codebook",
           "write_codebook", "count_codes", "CodeCounts"]

CODEBOOK_FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx", ".txt": "txt", ".md": "md"}


class CodeCounts(NamedTuple):
    """What `count_codes` found in a coded file."""

    counts: Counter[str]  # code -> rows
    statuses: Counter[str] | None  # status -> rows (None: the file has no status column)
    rows: int
    by_status: Counter[tuple[str, str]] | None = None  # (code, status) -> rows


def codebook_format(path: str | os.PathLike) -> str:
    """The codebook format for ``path`` from its extension; InputError for any other."""
    suffix = Path(path).suffix.lower()
    try:
        return CODEBOOK_FORMATS[suffix]
    except KeyError:
        raise InputError(f"{path}: a codebook is written as {', '.join(CODEBOOK_FORMATS)} "
                         f"(by extension), not {suffix or '(no extension)'!r}") from None


def codebook_rows(counts: Mapping[str, int], scheme: str,
                  missing_code: str = MISSING_CODE) -> list[tuple[str, str, int]]:
    """(value, label, count) for every unit group, any unexpected code, then the missing code."""
    s = load_scheme(scheme)
    rows = [(code, f"{code} {s.labels.get(code) or title}", int(counts.get(code, 0)))
            for code, title in s.units.items()]
    extra = sorted(c for c in counts if c not in s.units and c != missing_code)
    rows += [(c, f"{c} (not a {s.name} unit group)", int(counts[c])) for c in extra]
    rows.append((missing_code, "", int(counts.get(missing_code, 0))))
    return rows


def codebook_table(counts: Mapping[str, int], scheme: str, *,
                   by_status: Mapping[tuple[str, str], int] | None = None,
                   missing_code: str = MISSING_CODE) -> pd.DataFrame:
    """The codebook as a DataFrame (see the module docstring for the columns)."""
    rows = codebook_rows(counts, scheme, missing_code)
    table = pd.DataFrame({"value": [v for v, _, _ in rows], "label": [lab for _, lab, _ in rows],
                          "count": pd.array([n for _, _, n in rows], dtype="int64")})
    if by_status is not None:
        for status in ("auto", "refer"):
            table[status] = pd.array([int(by_status.get((v, status), 0)) for v, _, _ in rows], dtype="int64")
        for status in ("auto", "refer"):
            share = (table[status] / table["count"].where(table["count"] > 0)).round(4)
            table[f"{status}_share"] = share.astype("float64")
    return table


def status_table(statuses: Mapping[str, int]) -> pd.DataFrame:
    """status, count, share (0-1) for auto, refer, uncodable and the total."""
    total = sum(statuses.values())
    names = [*STATUSES, "total"]
    ns = [int(statuses.get(s, 0)) for s in STATUSES] + [total]
    return pd.DataFrame({"status": names, "count": ns,
                         "share": [round(n / total, 4) if total else 0.0 for n in ns]})


def format_codebook(counts: Mapping[str, int], scheme: str, *, statuses: Mapping[str, int] | None = None,
                    missing_code: str = MISSING_CODE, markdown: bool = False) -> str:
    """The codebook text (``.txt`` layout; ``markdown`` adds the header separator rows)."""
    lines = ["| value | label | count |"] + (["|---|---|---:|"] if markdown else [])
    lines += [f"| {v} | {label} | {n} |" for v, label, n in codebook_rows(counts, scheme, missing_code)]
    if statuses is not None:
        total = sum(statuses.values())
        lines += ["", "| status | count | share |"] + (["|---|---:|---:|"] if markdown else [])
        for status in STATUSES:
            n = int(statuses.get(status, 0))
            lines.append(f"| {status} | {n} | {n / total if total else 0:.1%} |")
        lines.append(f"| total | {total} | {1 if total else 0:.1%} |")
    return "\n".join(lines) + "\n"


def write_codebook(path: str | os.PathLike, counts: Mapping[str, int], scheme: str, *,
                   statuses: Mapping[str, int] | None = None,
                   by_status: Mapping[tuple[str, str], int] | None = None,
                   missing_code: str = MISSING_CODE) -> Path:
    """Write the codebook to ``path`` in the format its extension names, atomically."""
    path = Path(path)
    fmt = codebook_format(path)
    if fmt in ("txt", "md"):
        text = format_codebook(counts, scheme, statuses=statuses, missing_code=missing_code,
                               markdown=fmt == "md")
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    from .formats import escape_formulas

    table = codebook_table(counts, scheme, by_status=by_status, missing_code=missing_code)
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        return atomic_write(path, lambda tmp: escape_formulas(table).to_csv(tmp, sep=sep, index=False,
                                                                           lineterminator="\n"))
    from .formats import _need

    openpyxl = _need("openpyxl", "excel", path)

    def write_xlsx(tmp: Path) -> None:
        wb = openpyxl.Workbook(write_only=True)
        sheets = [("codebook", table)]
        if statuses is not None:
            sheets.append(("status", status_table(statuses)))
        for name, frame in sheets:
            ws = wb.create_sheet(name)
            ws.append(list(frame.columns))
            for row in frame.itertuples(index=False, name=None):
                ws.append([None if isinstance(v, float) and v != v else v for v in row])
        wb.save(tmp)

    return atomic_write(path, write_xlsx)


def _code_text(values: pd.Series, units: Mapping[str, str], missing_code: str) -> pd.Series:
    """Codes as text: numbers from Stata/SPSS back to strings ("1163", "0110"), blanks missing."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        width = len(next(iter(units), ""))
        text = values.map(lambda v: missing_code if pd.isna(v) else str(int(v)))
        return text.map(lambda c: c.zfill(width) if c not in units and c.zfill(width) in units else c)
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return text.where(text != "", missing_code)


def count_codes(path: str | os.PathLike, scheme: str, *, column: str | None = None,
                missing_code: str = MISSING_CODE, encoding: str | None = None,
                chunk_size: int = 500_000) -> CodeCounts:
    """Count codes (and statuses, per code too, when a ``status`` column exists) in a coded
    file, streaming it in chunks."""
    from .formats import open_source

    name = load_scheme(scheme).name
    column = column or name
    source = open_source(path, encoding=encoding)
    if column not in source.columns:
        raise InputError(f"{path} has no column {column!r}; is it a file coded to {name}? "
                         f"Its columns are: {', '.join(source.columns[:20])}")
    units = load_scheme(name).units
    counts: Counter[str] = Counter()
    has_status = "status" in source.columns
    statuses: Counter[str] | None = Counter() if has_status else None
    by_status: Counter[tuple[str, str]] | None = Counter() if has_status else None
    rows = 0
    for chunk in source.chunks(chunk_size):
        rows += len(chunk)
        codes = _code_text(chunk[column], units, missing_code)
        counts.update(codes.value_counts().to_dict())
        if statuses is not None and by_status is not None:
            status = chunk["status"].astype(object).where(chunk["status"].notna(), "").astype(str)
            statuses.update(status.value_counts().to_dict())
            pairs = pd.DataFrame({"c": codes.to_numpy(dtype=object), "s": status.to_numpy(dtype=object)})
            by_status.update({(c, s): int(n) for (c, s), n in pairs.value_counts(sort=False).items()})
    return CodeCounts(counts, statuses, rows, by_status)
