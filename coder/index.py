"""The ONS coding index, read faithfully into `IndexEntry` records.

`}}}}` in a code column means "not codable from this title alone"; such entries are kept,
with no code in that scheme, as evidence that a title is too vague to code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._paths import data_path

__all__ = ["IndexEntry", "LoadReport", "load_index", "INDEX_FILE", "SCHEME_COLUMNS"]

log = logging.getLogger(__name__)

INDEX_FILE = "soc2020_coding_index_v12.csv"
# scheme -> (code column, code pattern)
SCHEME_COLUMNS: dict[str, tuple[str, re.Pattern[str]]] = {
    "soc2000": ("SOC_2000", re.compile(r"\d{4}")),
    "soc90": ("SOC_90", re.compile(r"\d{3}")),
    "soc2010": ("SOC_2010", re.compile(r"\d{4}")),
    "soc2020": ("SOC_2020", re.compile(r"\d{4}")),
    "isco08": ("ISCO-08 code based on SOC2020", re.compile(r"\d{4}")),
}
_VAGUE = re.compile(r"\}{3,4}")
_REQUIRED = ("UNIQUE ID", "RECNO", "D", "INDEXOCC", "ADD", "IND", "SEE")
_NATURAL = "INDEXOCC_-_natural_word_order"


@dataclass(frozen=True)
class IndexEntry:
    """One line of the coding index.

    ``codes[scheme]`` is ``None`` where the index says the title alone is not codable.
    """

    uid: str
    recno: int
    title: str  # INDEXOCC, inverted order: "Accountant, project"
    natural: str  # natural word order: "Project accountant"
    add: str  # additional qualifier
    ind: str  # industry qualifier
    see: str
    default: str  # D flag: O, I, A, Q, QS, M or ""
    codes: dict[str, str | None] = field(hash=False, compare=False)

    def code(self, scheme: str) -> str | None:
        return self.codes.get(scheme)

    def describe(self) -> str:
        """Human-readable entry as a coder would quote it: "Manager (hotel)"."""
        quals = ", ".join(q for q in (self.add, self.ind) if q)
        return f"{self.natural} ({quals})" if quals else self.natural


@dataclass
class LoadReport:
    """What the loader skipped and why; problems carry the record number."""

    rows: int = 0
    loaded: int = 0
    problems: list[str] = field(default_factory=list)
    sha256: str = ""


def _parse_row(row: dict[str, str]) -> IndexEntry:
    codes: dict[str, str | None] = {}
    for scheme, (column, pattern) in SCHEME_COLUMNS.items():
        value = (row.get(column) or "").strip()
        if _VAGUE.fullmatch(value):
            codes[scheme] = None
        elif pattern.fullmatch(value):
            codes[scheme] = value
        else:
            raise ValueError(f"{column}={value!r} is not a {scheme} code")
    title = (row.get("INDEXOCC") or "").strip()
    if not title:
        raise ValueError("empty INDEXOCC")
    natural = (row.get(_NATURAL) or "").strip() or title
    return IndexEntry(
        uid=(row.get("UNIQUE ID") or "").strip(),
        recno=int(row["RECNO"]),
        title=title,
        natural=natural,
        add=(row.get("ADD") or "").strip(),
        ind=(row.get("IND") or "").strip(),
        see=(row.get("SEE") or "").strip(),
        default=(row.get("D") or "").strip(),
        codes=codes,
    )


def load_index(path: str | Path | None = None) -> tuple[list[IndexEntry], LoadReport]:
    """Read the coding index; malformed rows are reported (with RECNO) and skipped.

    Returns the entries in file order and a `LoadReport`. Never raises for a bad row; raises
    `DataError` (via `data_path`) only when the file itself is missing.
    """
    path = Path(path) if path is not None else data_path(INDEX_FILE)
    raw = path.read_bytes()
    report = LoadReport(sha256=hashlib.sha256(raw).hexdigest())
    text = raw.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        report.problems.append(f"{path.name}: missing columns {missing}; nothing loaded")
        return [], report
    entries: list[IndexEntry] = []
    for lineno, row in enumerate(reader, start=2):
        report.rows += 1
        try:
            entries.append(_parse_row(row))
        except (ValueError, KeyError, TypeError) as exc:
            recno = (row.get("RECNO") or "?").strip()
            report.problems.append(f"record {recno} (line {lineno}): {exc}; skipped")
    report.loaded = len(entries)
    for problem in report.problems[:20]:
        log.warning("coding index: %s", problem)
    return entries, report
