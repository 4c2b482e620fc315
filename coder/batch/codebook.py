"""Codebooks: how many rows got each code, in the shape of the survey codebook seed.

The file is a plain-text table, one ``| value | label | count |`` row per unit group of the
scheme in code order (zero counts included), then one row for the missing code with an empty
label, exactly like ``data/soc90_codebook_seed.txt``; a header row names the columns. The
label is the code followed by its title (for SOC90 the survey codebook's own short labels, so
a SOC90 codebook matches the seed line for line). Codes found in the data that are not unit
groups of the scheme (none, with this package's models) get rows of their own before the
missing row, labelled as such, so the counts always sum to the number of rows.

After a blank line a second small table gives how the rows were coded::

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

import pandas as pd

from .._atomic import atomic_write
from ..errors import InputError
from ..schemes import MISSING_CODE, load_scheme
from ..results import STATUSES

__all__ = ["codebook_rows", "format_codebook", "write_codebook", "count_codes"]


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


def format_codebook(counts: Mapping[str, int], scheme: str, *, statuses: Mapping[str, int] | None = None,
                    missing_code: str = MISSING_CODE) -> str:
    """The codebook text (see the module docstring)."""
    lines = ["| value | label | count |"]
    lines += [f"| {v} | {label} | {n} |" for v, label, n in codebook_rows(counts, scheme, missing_code)]
    if statuses is not None:
        total = sum(statuses.values())
        lines += ["", "| status | count | share |"]
        for status in STATUSES:
            n = int(statuses.get(status, 0))
            lines.append(f"| {status} | {n} | {n / total if total else 0:.1%} |")
        lines.append(f"| total | {total} | {1 if total else 0:.1%} |")
    return "\n".join(lines) + "\n"


def write_codebook(path: str | os.PathLike, counts: Mapping[str, int], scheme: str, *,
                   statuses: Mapping[str, int] | None = None, missing_code: str = MISSING_CODE) -> Path:
    """Write the codebook to ``path`` atomically (a temp file renamed into place)."""
    path = Path(path)
    text = format_codebook(counts, scheme, statuses=statuses, missing_code=missing_code)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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
                chunk_size: int = 500_000) -> tuple[Counter[str], Counter[str] | None, int]:
    """Count codes (and statuses, when a ``status`` column exists) in a coded file.

    Returns (code counts, status counts or None, rows). Streams the file in chunks.
    """
    from .formats import open_source

    name = load_scheme(scheme).name
    column = column or name
    source = open_source(path, encoding=encoding)
    if column not in source.columns:
        raise InputError(f"{path} has no column {column!r}; is it a file coded to {name}? "
                         f"Its columns are: {', '.join(source.columns[:20])}")
    units = load_scheme(name).units
    counts: Counter[str] = Counter()
    statuses: Counter[str] | None = Counter() if "status" in source.columns else None
    rows = 0
    for chunk in source.chunks(chunk_size):
        rows += len(chunk)
        counts.update(_code_text(chunk[column], units, missing_code).value_counts().to_dict())
        if statuses is not None:
            statuses.update(chunk["status"].astype(str).value_counts().to_dict())
    return counts, statuses, rows
