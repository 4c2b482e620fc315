"""Crosswalks between classifications, weighted by the ONS coding index.

Every entry of the coding index carries a code in each of the five schemes, so the index says
how often a title coded ``719`` in SOC90 is coded ``7129`` in SOC2000: that share of the source
code's entries is the crosswalk weight. Entries without a code in the source or the target
scheme (``}}}}`` in the index: "not codable from this title alone") are left out and counted in
`CrosswalkReport`.

Three uses, one object:

* `Crosswalk.weights` — the target codes of one source code with their weights and titles;
* `Crosswalk.recode` / `Crosswalk.recode_frame` / `recode_file` — a column of codes to its most
  likely target code, that code's weight and the alternatives, every row kept in order;
* `Crosswalk.convert_codebook` — a frequency table (``value | label | count``, ``-9`` missing,
  like ``data/soc90_codebook_seed.txt``) to the target scheme's table of expected counts, each
  source count shared out by the weights; the total is kept exactly.

Examples
--------
>>> from coder.crosswalk import Crosswalk                                  # doctest: +SKIP
>>> xw = Crosswalk.from_index("soc90", "soc2000")                          # doctest: +SKIP
>>> xw.weights("719")[0]                                                   # doctest: +SKIP
Link(code='7129', weight=0.5512820512820513, title='Sales related occupations n.e.c.')
>>> [r.code for r in xw.recode(["719", "-9", ""])]                         # doctest: +SKIP
['7129', '-9', '-9']
"""

from __future__ import annotations

import codecs
import math
import numbers
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InputError
from .index import IndexEntry
from .schemes import MISSING_CODE, load_scheme

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Crosswalk", "CrosswalkReport", "Link", "Recoded", "CodebookRow", "CodebookConversion",
    "RecodeSummary", "read_codebook", "recode_file", "crosswalk_lookup",
]

_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
_TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


class Link(NamedTuple):
    """One target code of a source code: ``(code, weight, title)``, unpackable as a tuple.

    ``weight`` is the share of the source code's index entries that carry ``code``.
    """

    code: str
    weight: float
    title: str


@dataclass(frozen=True)
class CrosswalkReport:
    """How the index entries were used.

    ``used + no_source_code + no_target_code + no_code == entries``: entries with a code in
    only one of the two schemes, or in neither, are left out of the weights.
    ``codes_without_target`` are source-scheme unit groups that no usable entry carries
    (their `Crosswalk.weights` is empty).
    """

    source: str
    target: str
    entries: int
    used: int
    no_source_code: int
    no_target_code: int
    no_code: int
    codes_without_target: tuple[str, ...]

    @property
    def left_out(self) -> int:
        return self.no_source_code + self.no_target_code + self.no_code


@dataclass(frozen=True)
class Recoded:
    """One recoded value.

    ``source`` is the value as read (a code cleaned of spaces, ``.0`` and missing zero padding,
    or the input as text when it is not a code; ``""`` for blank/None/NaN). ``code`` is the most
    likely target code, or the missing code with a ``reason`` when there is none. ``weight`` is
    that code's weight (``None`` when missing); ``alternatives`` are the other target codes,
    best first.
    """

    source: str
    code: str
    title: str
    weight: float | None
    alternatives: tuple[Link, ...] = ()
    reason: str = ""

    @property
    def certain(self) -> bool:
        """True when the source code has one target code only (weight 1)."""
        return self.weight == 1.0

    @property
    def missing(self) -> bool:
        return self.weight is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; alternatives as ``{"code", "weight", "title"}`` dicts."""
        return {"source": self.source, "code": self.code, "title": self.title, "weight": self.weight,
                "alternatives": [a._asdict() for a in self.alternatives], "reason": self.reason}


@dataclass(frozen=True)
class CodebookRow:
    """One row of a converted codebook.

    ``count`` is the expected count rounded to the conversion's ``decimals`` so that the rows
    add up to the input total exactly (largest remainders); ``expected`` is the unrounded share;
    ``certain`` the part that came from source codes with this code as their only target.
    """

    value: str
    label: str
    count: float
    expected: float
    certain: float

    @property
    def split(self) -> float:
        """The part of ``count`` shared out from source codes with several target codes."""
        return self.count - self.certain


@dataclass(frozen=True)
class CodebookConversion:
    """A frequency table converted to the target scheme.

    ``rows`` hold one row per target unit group in code order (zeros included), then the
    missing code. Of the input ``total``: ``missing`` was already missing (negative codes such as
    ``-9``); ``certain`` moved with certainty (source codes with one target code, weight 1);
    ``split`` was shared out between several target codes by the weights; ``unmapped`` belonged to
    codes with no target (``unmapped_codes``: not source unit groups, or groups the index never
    codes to the target) and is carried in the missing row.
    ``certain + split + unmapped + missing == total``.
    """

    source: str
    target: str
    rows: tuple[CodebookRow, ...]
    total: float
    missing: float
    certain: float
    split: float
    unmapped: float
    unmapped_codes: tuple[str, ...]
    decimals: int

    @property
    def coded(self) -> float:
        """The part of the total that had a (non-missing) code."""
        return self.total - self.missing

    def share(self, part: str, *, of: str = "coded") -> float:
        """``part`` (``"certain"``, ``"split"``, ``"unmapped"``, ``"missing"``) as a share of
        ``of`` (``"coded"`` or ``"total"``); 0.0 when that is zero."""
        if part not in ("certain", "split", "unmapped", "missing") or of not in ("coded", "total"):
            raise ValueError(f"share({part!r}, of={of!r}): unknown part or base")
        base = self.coded if of == "coded" else self.total
        return getattr(self, part) / base if base else 0.0

    def summary(self) -> str:
        """One line: what moved with certainty and what was split."""
        f = self._fmt
        text = (f"{self.source} -> {self.target}: total {f(self.total)} kept ({f(self.missing)} missing); "
                f"of the {f(self.coded)} coded, {f(self.certain)} ({self.share('certain'):.1%}) moved with "
                f"certainty and {f(self.split)} ({self.share('split'):.1%}) were split")
        if self.unmapped:
            shown = ", ".join(self.unmapped_codes[:10]) + (", ..." if len(self.unmapped_codes) > 10 else "")
            text += (f"; {f(self.unmapped)} ({self.share('unmapped'):.1%}) had no {self.target} code "
                     f"({shown}) and were counted as missing")
        return text

    def format(self) -> str:
        """The ``| value | label | count |`` text, then a small table of how the total moved."""
        f = self._fmt
        lines = ["| value | label | count |"]
        lines += [f"| {r.value} | {r.label} | {f(r.count)} |" for r in self.rows]
        lines += ["", "| moved | count | share |"]
        for part in ("certain", "split", "unmapped", "missing"):
            lines.append(f"| {part} | {f(getattr(self, part))} | {self.share(part, of='total'):.1%} |")
        lines.append(f"| total | {f(self.total)} | {1 if self.total else 0:.1%} |")
        return "\n".join(lines) + "\n"

    def to_frame(self) -> "pd.DataFrame":
        """Rows as a DataFrame: value, label, count, certain, split (rounded to ``decimals``)."""
        import pandas as pd

        return pd.DataFrame({
            "value": [r.value for r in self.rows],
            "label": [r.label for r in self.rows],
            "count": [round(r.count, self.decimals) for r in self.rows],
            "certain": [round(r.certain, self.decimals) for r in self.rows],
            "split": [round(r.split, self.decimals) for r in self.rows],
        })

    def write(self, path: str | os.PathLike) -> Path:
        """Write atomically: ``.txt``/``.md`` as `format` text, ``.csv`` as a CSV of `to_frame`."""
        from ._atomic import atomic_write

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".txt", ".md"):
            text = self.format()
        elif suffix == ".csv":
            frame = self.to_frame()
            for name in ("count", "certain", "split"):
                frame[name] = [self._fmt(v) for v in frame[name]]
            text = frame.to_csv(index=False, lineterminator="\n")
        else:
            raise InputError(f"{path}: write the codebook as .txt, .md or .csv")
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def _fmt(self, value: float) -> str:
        text = f"{value:.{self.decimals}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return "0" if text in ("-0", "") else text


class Crosswalk:
    """Weights from the codes of one scheme to those of another. Read-only; build with
    `from_index`.

    Attributes
    ----------
    source, target : str
        Canonical scheme names.
    report : CrosswalkReport
        Entries used and left out.
    """

    source: str
    target: str
    report: CrosswalkReport

    def __init__(self, source: str, target: str, counts: Mapping[str, Mapping[str, int]],
                 report: CrosswalkReport, valid: Iterable[str]) -> None:
        titles = load_scheme(target)
        links: dict[str, tuple[Link, ...]] = {}
        entries: dict[str, tuple[int, ...]] = {}
        for code, by_target in counts.items():
            n = sum(by_target.values())
            ordered = sorted(by_target.items(), key=lambda kv: (-kv[1], kv[0]))
            links[code] = tuple(Link(t, k / n, titles.title(t) or "") for t, k in ordered)
            entries[code] = tuple(k for _, k in ordered)  # aligned with links: exact shares
        self.source, self.target, self.report = source, target, report
        self._links = MappingProxyType(links)
        self._entries = MappingProxyType(entries)
        self._valid = frozenset(valid) | frozenset(links)
        self._width = max((len(c) for c in self._valid), default=0)

    @classmethod
    def from_index(cls, source: str, target: str, *,
                   entries: Iterable[IndexEntry] | None = None) -> "Crosswalk":
        """Crosswalk from ``source`` to ``target`` weighted by coding-index entries.

        Parameters
        ----------
        source, target : str
            Scheme names (``"soc90"``, ``"SOC2000"``, ``"isco-08"``...).
        entries : iterable of IndexEntry, optional
            Index entries to count; by default the shipped coding index (read once, and the
            crosswalk cached, so later calls are instant).

        Raises
        ------
        UnknownSchemeError
            For a scheme name the package does not know.
        InputError
            When ``source`` and ``target`` are the same scheme.
        """
        src, tgt = load_scheme(source).name, load_scheme(target).name
        if src == tgt:
            raise InputError(f"source and target (--from, --to) are both {src}; choose two different schemes")
        if entries is None:
            return _cached(src, tgt)
        return cls._build(src, tgt, entries)

    @classmethod
    def _build(cls, src: str, tgt: str, entries: Iterable[IndexEntry]) -> "Crosswalk":
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        total = no_source = no_target = neither = 0
        for entry in entries:
            total += 1
            s, t = entry.code(src), entry.code(tgt)
            if s and t:
                counts[s][t] += 1
            elif t:
                no_source += 1
            elif s:
                no_target += 1
            else:
                neither += 1
        units = load_scheme(src).units
        report = CrosswalkReport(
            source=src, target=tgt, entries=total, used=total - no_source - no_target - neither,
            no_source_code=no_source, no_target_code=no_target, no_code=neither,
            codes_without_target=tuple(sorted(c for c in units if c not in counts)),
        )
        return cls(src, tgt, counts, report, units)

    def __repr__(self) -> str:
        return (f"Crosswalk({self.source!r} -> {self.target!r}, {len(self._links)} source codes, "
                f"{self.report.used} index entries)")

    @property
    def source_codes(self) -> tuple[str, ...]:
        """Source codes that have weights, in code order."""
        return tuple(sorted(self._links))

    def weights(self, code: object) -> list[Link]:
        """Target codes of a source ``code``: ``[(target_code, weight, title), ...]``.

        Ordered by weight (highest first), then code; the weights sum to 1. Empty for a unit
        group of the source scheme that no usable index entry carries (see
        ``report.codes_without_target``). ``code`` may be text or a number (``719``,
        ``"719.0"``, ISCO ``110`` for ``"0110"``).

        Raises
        ------
        InputError
            When ``code`` is missing (blank, NaN, ``-9``) or not a unit group of the source scheme.
        """
        cleaned, reason = self._clean(code)
        if reason:
            raise InputError(f"{code!r}: {reason}; give a {self.source} unit-group code "
                             f"(e.g. {next(iter(sorted(self._valid)), '')})")
        return list(self._links.get(cleaned, ()))

    def entries(self, code: object) -> int:
        """Number of index entries behind ``code``'s weights (0 when it has none).

        Raises InputError as `weights` does.
        """
        self.weights(code)
        return sum(self._entries.get(self._clean(code)[0], ()))

    def recode(self, codes: Iterable[object], *, missing_code: str = MISSING_CODE) -> list[Recoded]:
        """Recode a column of source codes: one `Recoded` per value, in order, none dropped.

        Missing values (None, NaN, blank, negative survey codes such as ``-9``), values that are
        not source unit groups and groups without a target code all get ``missing_code`` and a
        ``reason``; the most likely target code otherwise (ties: the lower code).
        """
        cache: dict[Any, Recoded] = {}
        out = []
        for value in codes:
            try:
                hit = cache.get(value)
            except TypeError:  # unhashable
                hit = None
            if hit is None:
                hit = self._recode_one(value, missing_code)
                try:
                    cache[value] = hit
                except TypeError:
                    pass
            out.append(hit)
        return out

    def recode_frame(self, frame: "pd.DataFrame", column: str, *,
                     missing_code: str = MISSING_CODE) -> "pd.DataFrame":
        """A copy of ``frame`` with ``<target>``, ``<target>_title``, ``<target>_weight``
        (3 decimals, empty when missing), ``<target>_alternatives`` (``code:weight|...``) and
        ``<target>_reason`` added after its columns. ``frame`` itself is not changed.

        Raises InputError when ``column`` is absent or an added column already exists.
        """
        import pandas as pd

        if column not in frame.columns:
            shown = ", ".join(map(str, list(frame.columns)[:20]))
            raise InputError(f"no column {column!r}; the columns are: {shown}")
        added = self.output_columns()
        clash = [c for c in added if c in frame.columns]
        if clash:
            raise InputError(f"the input already has column(s) {', '.join(clash)}; rename them first")
        results = self.recode(frame[column].tolist(), missing_code=missing_code)
        out = frame.copy()
        t = self.target
        out[t] = pd.Series([r.code for r in results], index=frame.index, dtype=object)
        out[f"{t}_title"] = pd.Series([r.title for r in results], index=frame.index, dtype=object)
        out[f"{t}_weight"] = pd.Series([None if r.weight is None else round(r.weight, 3) for r in results],
                                       index=frame.index, dtype="float64")
        out[f"{t}_alternatives"] = pd.Series(
            ["|".join(f"{a.code}:{a.weight:.3f}" for a in r.alternatives) for r in results],
            index=frame.index, dtype=object)
        out[f"{t}_reason"] = pd.Series([r.reason for r in results], index=frame.index, dtype=object)
        return out

    def output_columns(self) -> list[str]:
        """Columns `recode_frame` adds."""
        t = self.target
        return [t, f"{t}_title", f"{t}_weight", f"{t}_alternatives", f"{t}_reason"]

    def convert_codebook(self, table: Mapping[str, object] | Iterable[Sequence[object]], *,
                         decimals: int = 2, missing_code: str = MISSING_CODE) -> CodebookConversion:
        """Convert a source-scheme frequency table to the target scheme's expected counts.

        Parameters
        ----------
        table : mapping or iterable of rows
            ``{code: count}``, or rows ``(value, label, count)`` / ``(value, count)`` as
            `read_codebook` returns. Counts are non-negative numbers (whole or decimal).
        decimals : int
            Decimal places of the written counts (0: whole numbers). They are rounded by largest
            remainders, so they always add up to the input total.
        missing_code : str
            Value of the missing row. Negative values in the input (``-9``, ``-8``...) are missing
            and carried to it, as are counts of codes with no target code (``unmapped``).

        Raises
        ------
        InputError
            For a negative or non-numeric count, or a value listed twice.
        """
        if not 0 <= int(decimals) <= 9:
            raise InputError(f"decimals={decimals!r}: choose 0 to 9")
        decimals = int(decimals)
        counts = _table_counts(table)
        expected: dict[str, Fraction] = defaultdict(Fraction)
        certain_by: dict[str, Fraction] = defaultdict(Fraction)
        total = missing = certain = split = unmapped = Fraction(0)
        unmapped_codes: set[str] = set()
        for value, count in counts.items():
            total += count
            code, reason = self._clean(value)
            if reason and code is None:
                missing += count
                continue
            links = self._links.get(code) if not reason else None
            if not links:
                if count:
                    unmapped_codes.add(code or str(value))
                unmapped += count
                continue
            if len(links) == 1:
                certain += count
                certain_by[links[0].code] += count
                expected[links[0].code] += count
                continue
            split += count
            ks = self._entries[code]
            for link, k in zip(links, ks):  # exact shares: count x entries / all the code's entries
                expected[link.code] += count * Fraction(k, sum(ks))
        target = load_scheme(self.target)
        values = list(target.units) + sorted(c for c in expected if c not in target.units)
        exact = [expected.get(v, Fraction(0)) for v in values] + [missing + unmapped]
        rounded = _apportion(exact, decimals)
        labels = [f"{v} {target.labels.get(v) or target.units.get(v) or f'(not a {self.target} unit group)'}"
                  for v in values] + [""]
        certain_rows = [certain_by.get(v, Fraction(0)) for v in values] + [Fraction(0)]
        rows = tuple(CodebookRow(value, label, float(r), float(e), float(c))
                     for value, label, r, e, c in zip([*values, missing_code], labels, rounded, exact,
                                                      certain_rows))
        return CodebookConversion(
            source=self.source, target=self.target, rows=rows, total=_number(total),
            missing=_number(missing), certain=_number(certain), split=_number(split),
            unmapped=_number(unmapped), unmapped_codes=tuple(sorted(unmapped_codes)), decimals=decimals,
        )

    # ------------------------------------------------------------------ internals

    def _clean(self, value: object) -> tuple[str | None, str]:
        """(source code, "") for a unit group; (None, reason) when missing; (text, reason) when
        the value is not a source unit group."""
        if _is_missing(value):
            return None, "missing value"
        if isinstance(value, bool):
            return str(value), f"not a {self.source} code"
        if isinstance(value, numbers.Integral):
            text = str(int(value))
        elif isinstance(value, numbers.Real):
            if not float(value).is_integer():
                return str(value), f"not a {self.source} code"
            text = str(int(value))
        else:
            text = str(value).strip()
            if not text:
                return None, "missing value"
            if _INTEGER.fullmatch(text):
                text = str(int(float(text))) if "." in text else text.lstrip("+")
        if re.fullmatch(r"-\d+", text):
            return None, f"missing code {text}"
        if text not in self._valid and text.isdigit() and len(text) < self._width:
            padded = text.zfill(self._width)  # ISCO 0110 read as the number 110
            if padded in self._valid:
                text = padded
        if text not in self._valid:
            return text, f"not a {self.source} unit group"
        return text, ""

    def _recode_one(self, value: object, missing_code: str) -> Recoded:
        code, reason = self._clean(value)
        if reason:
            if code is None:  # missing: "" for blank/None/NaN, the survey code (-9) as written
                code = "" if reason == "missing value" else str(value).strip()
            return Recoded(code, missing_code, "", None, (), reason)
        links = self._links.get(code, ())
        if not links:
            return Recoded(code, missing_code, "", None, (),
                           f"no {self.target} code in the coding index for {self.source} {code}")
        best = links[0]
        return Recoded(code, best.code, best.title, best.weight, links[1:], "")


@lru_cache(maxsize=None)
def _index_entries() -> tuple[IndexEntry, ...]:
    from .index import load_index

    entries, _ = load_index()
    return tuple(entries)


@lru_cache(maxsize=None)
def _cached(source: str, target: str) -> Crosswalk:
    return Crosswalk._build(source, target, _index_entries())


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):  # pandas.NA cannot be truth-tested
        return True


def _to_fraction(value: object, where: str) -> Fraction:
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            count = Fraction(repr(value))  # 0.1 as written, not its binary expansion
        elif isinstance(value, str):
            count = Fraction(value.strip().replace(",", "").replace("_", ""))
        else:
            count = Fraction(value)  # int, Decimal, Fraction, numpy ints
    except (ValueError, TypeError, ZeroDivisionError):
        raise InputError(f"{where}: count {value!r} is not a number") from None
    if count < 0:
        raise InputError(f"{where}: count {value!r} is negative")
    return count


def _table_counts(table: Mapping[str, object] | Iterable[Sequence[object]]) -> dict[object, Fraction]:
    items: Iterable[tuple[object, object]]
    if isinstance(table, Mapping):
        items = table.items()
    else:
        items = []
        for row in table:
            if isinstance(row, (str, bytes)) or len(row) not in (2, 3):
                raise InputError(f"codebook row {row!r}: expected (value, label, count) or (value, count)")
            items.append((row[0], row[-1]))
    counts: dict[object, Fraction] = {}
    for value, count in items:
        key = value.strip() if isinstance(value, str) else value
        if key in counts:
            raise InputError(f"codebook value {value!r} is listed twice; merge its counts first")
        counts[key] = _to_fraction(count, f"codebook value {value!r}")
    return counts


def _apportion(exact: Sequence[Fraction], decimals: int) -> list[Fraction]:
    """Round ``exact`` to ``decimals`` places keeping their sum (largest remainders; ties by
    position, so the order of codes decides)."""
    unit = Fraction(1, 10 ** decimals)
    floors = [math.floor(e / unit) for e in exact]
    goal = round(sum(exact) / unit)
    left = goal - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] / unit - floors[i]), i))
    for i in order[:max(left, 0)]:
        floors[i] += 1
    return [k * unit for k in floors]


def _number(value: Fraction) -> float:
    return int(value) if value.denominator == 1 else float(value)


# ---------------------------------------------------------------------- files


def read_codebook(path: str | os.PathLike, *, encoding: str | None = None) -> list[tuple[str, str, str]]:
    """Read a frequency table as ``(value, label, count)`` rows (count as written).

    ``.csv`` / ``.tsv``: a header with ``value`` and ``count`` columns (``label`` optional; names
    in any case). Anything else: ``| value | label | count |`` lines as in
    ``data/soc90_codebook_seed.txt`` (a header line and other tables, such as a status table,
    are skipped: only lines whose value is a whole number count).

    Raises InputError for a missing file, missing columns or a table without value rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if encoding is None:
        encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (try utf-8, cp1252 or latin-1)") from None
    rows: list[tuple[str, str, str]] = []
    if suffix in (".csv", ".tsv"):
        import csv
        import io

        reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if suffix == ".csv" else "\t")
        header = [h.strip().lower() for h in next(reader, [])]
        if "value" not in header or "count" not in header:
            raise InputError(f"{path}: expected columns value and count (and label); found {', '.join(header)}")
        iv, ic = header.index("value"), header.index("count")
        il = header.index("label") if "label" in header else None
        for line in reader:
            if not any(cell.strip() for cell in line):
                continue
            cells = line + [""] * (len(header) - len(line))
            rows.append((cells[iv].strip(), cells[il].strip() if il is not None else "", cells[ic].strip()))
    else:
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.strip().startswith("|") and len(cells) == 3 and re.fullmatch(r"[+-]?\d+", cells[0]):
                rows.append((cells[0], cells[1], cells[2]))
    if not rows:
        raise InputError(f"{path}: no value rows found; expected '| value | label | count |' lines "
                         "(or a CSV with value and count columns)")
    return rows


@dataclass(frozen=True)
class RecodeSummary:
    """What `recode_file` did: rows written and how they were recoded."""

    rows: int
    certain: int
    split: int
    missing: int
    not_recoded: int
    output: Path


def recode_file(crosswalk: Crosswalk, path: str | os.PathLike, output: str | os.PathLike, *, column: str,
                encoding: str | None = None, missing_code: str = MISSING_CODE,
                chunk_size: int = 100_000) -> RecodeSummary:
    """Recode ``column`` of a CSV/TSV/TXT file into ``output`` (.csv, .tsv or .txt).

    Every row and column of the input is written, in order, with the `Crosswalk.recode_frame`
    columns added. The input is read as text (``dtype=str, keep_default_na=False``, encoding
    sniffed as for ``coder code``); the output appears only when complete (written to a
    temporary file, then renamed). As in ``coder code`` output, text cells a spreadsheet would
    run as a formula get a leading ``'``.

    Raises InputError for other formats, a missing column, a clashing added column, or an
    output path equal to the input.
    """
    from ._atomic import atomic_write
    from .batch.formats import csv_bytes, escape_formulas, open_source

    path, output = Path(path), Path(output)
    for p, role in ((path, "input"), (output, "output")):
        if p.suffix.lower() not in _TEXT_FORMATS:
            raise InputError(f"{p}: crosswalk {role} must be a .csv, .tsv or .txt file")
    if output.resolve() == path.resolve():
        raise InputError(f"{output}: the output would overwrite the input; choose another name")
    source = open_source(path, encoding=encoding)
    if column not in source.columns:
        raise InputError(f"{path} has no column {column!r}; its columns are: {', '.join(source.columns[:20])}")
    clash = [c for c in crosswalk.output_columns() if c in source.columns]
    if clash:
        raise InputError(f"{path} already has column(s) {', '.join(clash)}; rename them first")
    if not output.parent.is_dir():
        raise InputError(f"{output}: the folder {output.parent} does not exist")
    sep = _TEXT_FORMATS[output.suffix.lower()]
    tally = Counter()

    def write(tmp: Path) -> None:
        tally.clear()
        with open(tmp, "wb") as fh:
            first = True
            for chunk in source.chunks(chunk_size):
                out = crosswalk.recode_frame(chunk, column, missing_code=missing_code)
                weight = out[f"{crosswalk.target}_weight"]
                reason = out[f"{crosswalk.target}_reason"]
                tally["rows"] += len(out)
                tally["certain"] += int((weight == 1.0).sum())
                tally["split"] += int(((weight < 1.0) & weight.notna()).sum())
                missing = reason.str.startswith(("missing value", "missing code"))
                tally["missing"] += int(missing.sum())
                tally["not_recoded"] += int((weight.isna() & ~missing).sum())
                data = csv_bytes(escape_formulas(out), sep, header=first)
                if first and source.bom:
                    data = codecs.BOM_UTF8 + data
                fh.write(data)
                first = False

    atomic_write(output, write)
    return RecodeSummary(tally["rows"], tally["certain"], tally["split"], tally["missing"],
                         tally["not_recoded"], output)


# ---------------------------------------------------------------------- service


def crosswalk_lookup(source: str, target: str, codes: Iterable[object]) -> dict[str, Any]:
    """JSON-ready weights for several source codes (for the HTTP API and ``--json``).

    Returns ``{"from", "to", "codes": [{"code", "title", "entries", "targets": [{"code",
    "weight", "title", "entries"}], "reason"}]}``, one item per input code in order. A code that
    is missing, not a source unit group or without index evidence gets ``targets: []`` and a
    ``reason``; it does not fail the others.

    Raises UnknownSchemeError for an unknown scheme and InputError for ``source == target``.
    """
    xw = Crosswalk.from_index(source, target)
    titles = load_scheme(xw.source)
    items = []
    for value in codes:
        code, reason = xw._clean(value)
        links = xw._links.get(code, ()) if not reason else ()
        if not reason and not links:
            reason = f"no {xw.target} code in the coding index for {xw.source} {code}"
        ks = xw._entries.get(code, ()) if not reason else ()
        items.append({
            "code": code if code is not None else ("" if _is_missing(value) else str(value)),
            "title": (titles.title(code) or "") if code and not reason else "",
            "entries": sum(ks),
            "targets": [{"code": link.code, "weight": link.weight, "title": link.title, "entries": k}
                        for link, k in zip(links, ks)],
            "reason": reason,
        })
    return {"from": xw.source, "to": xw.target, "codes": items}
