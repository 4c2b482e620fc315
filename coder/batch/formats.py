"""Reading and writing data files in chunks, chosen by file extension.

Readers yield `pandas.DataFrame` chunks that keep every column and row of the input:

* CSV / TSV / TXT are read as strings (``dtype=str, keep_default_na=False``, blank lines kept
  as empty rows), so answers such as ``"N/A"`` or codes such as ``"0110"`` survive untouched.
  A .txt file uses whatever delimiter its header line shows (tab, comma, ``;`` or ``|``);
  written .txt files are tab-separated. A data row with more fields than the header is an
  error (pandas would otherwise take the extra fields as row labels and lose a column).
* Encodings of text files. ``--encoding`` settles it: the file is decoded with that codec,
  strictly (a byte that is not valid there is an error, never a guess). Without it:

  - a byte-order mark decides: UTF-8, UTF-16 or UTF-32 (LE or BE);
  - UTF-16 without a BOM is recognised by its zero bytes (mostly-Latin text), and decoded
    strictly;
  - anything else is read as UTF-8, cell by cell: a cell that is not valid UTF-8 has its
    invalid bytes read as cp1252 (Latin-1 for the five bytes cp1252 leaves undefined). Such
    cells are counted, and the run says how many there were and where the first one is, so
    a Latin-2 or MacRoman file read this way does not go unnoticed: run it again with
    ``--encoding iso-8859-2`` (or ``mac-roman``). Valid UTF-8 cells are never changed.

  `Source.text` says which encoding was used and how it was chosen; `Source.fallback_cells`
  how many cells needed the fallback.
* Excel (.xlsx, first sheet, first row = header) is read as text the same way. A column with
  data but no header gets the name ``Unnamed: N`` (as pandas names it); columns and rows that
  are empty to the right and at the bottom of the sheet (formatting only) are left out.
* Parquet keeps its Arrow types; Stata and SPSS keep their numeric types, with variable
  and value labels carried over to the output where the format can hold them.

Writers ("sinks") never write the target path directly. CSV/TSV output is appended to a hidden
``.NAME.partial`` file in the target's directory; the other formats spill each chunk to a part
file in a hidden ``.NAME.parts/`` directory and are assembled at the end (Parquet and Excel
streaming through the parts, Stata and SPSS in one go because pandas and pyreadstat cannot
append, so those two need memory in proportion to the output). Part files are data, not
code: Parquet when pyarrow is installed, otherwise CSV with a small JSON file of column types
(nothing in them is ever unpickled or executed). Only a complete file whose row count has been
checked by reading it back is renamed onto the target.

What an output format cannot hold
---------------------------------
Spreadsheet formulas: in CSV, TSV and Excel output a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is prefixed with ``'`` (the OWASP advice against CSV
injection), unless the whole cell is a plain number such as ``-9``, ``-3.5`` or ``+44``: those
cannot run as formulas and must stay machine-readable, so the missing code ``-9`` is written as
is. Parquet, Stata and SPSS output is never escaped. Beyond that, output cells equal input
cells except where the format cannot hold them:

* Excel cells cannot hold most control characters (they become U+FFFD) nor more than 32,767
  characters (an error names the row; write .csv or .parquet instead), and a carriage return
  in an Excel cell reads back as a line feed (XML line ends);
* Stata and SPSS strings cannot hold NUL characters (they become U+FFFD) and have no missing
  value for text (empty instead); SPSS drops trailing spaces from strings;
* Stata and SPSS variable names are restricted: a column whose name the format cannot hold is
  an error before anything is coded (rename it, or write another format).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "FORMATS", "file_format", "open_source", "Source", "TextEncoding", "open_sink", "Sink",
    "escape_formula", "escape_formulas", "sniff_encoding", "check_output_names", "part_format",
]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "txt", ".xlsx": "xlsx", ".parquet": "parquet",
           ".dta": "dta", ".sav": "sav"}
_SEPARATORS = {"csv": ",", "tsv": "\t", "txt": "\t"}
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767

# ---------------------------------------------------------------------------- formats


def file_format(path: str | os.PathLike) -> str:
    """Format name for ``path`` from its extension; InputError for one we cannot handle."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        ) from None


def _need(module: str, extra: str, path: str | os.PathLike) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"{path}: reading or writing this format needs {module.split('.')[0]}; "
            f"install it with `pip install coder[{extra}]`"
        ) from None


# ---------------------------------------------------------------------------- encodings

FALLBACK = "cp1252"
_UNDEFINED_CP1252 = frozenset(b"\x81\x8d\x8f\x90\x9d")


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    text = "".join(chr(b) if b in _UNDEFINED_CP1252 else bytes([b]).decode("cp1252") for b in bad)
    return text, exc.end


codecs.register_error("coder-cp1252", _cp1252_fallback)

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32 LE"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32 BE"),
         (codecs.BOM_UTF8, "utf-8", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"))


@dataclass(frozen=True)
class TextEncoding:
    """How a text file is decoded, and why.

    ``codec`` decodes the text after ``skip`` bytes (a UTF-8 BOM). With ``fallback`` the file
    is read as UTF-8 cell by cell and a cell that is not valid UTF-8 is decoded with the
    fallback for its invalid bytes (counted); without it decoding is strict.
    """

    codec: str
    name: str  # for people: "UTF-8", "UTF-16 LE", "cp1252", ...
    how: str  # "byte-order mark", "detected", "--encoding", "default"
    fallback: str | None = None
    skip: int = 0
    bom: bool = False  # the file starts with a UTF-8 BOM (UTF-8 output keeps one)

    def describe(self) -> str:
        """``UTF-8 (default; cells that are not valid UTF-8 read as cp1252)`` and the like."""
        extra = f"; cells that are not valid UTF-8 read as {self.fallback}" if self.fallback else ""
        return f"{self.name} ({self.how}{extra})"


def _utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le``/``utf-16-be`` when ``head`` looks like mostly-Latin UTF-16 text, else None."""
    n = len(head) // 2 * 2
    if n < 8:
        return None
    pairs = n // 2
    zero_even, zero_odd = head[0:n:2].count(0), head[1:n:2].count(0)
    if zero_odd >= 0.3 * pairs and zero_even <= 0.05 * pairs:
        codec = "utf-16-le"
    elif zero_even >= 0.3 * pairs and zero_odd <= 0.05 * pairs:
        codec = "utf-16-be"
    else:
        return None
    try:
        codecs.getincrementaldecoder(codec)().decode(head[:n], final=False)
    except UnicodeDecodeError:
        return None
    return codec


def sniff_encoding(path: str | os.PathLike, encoding: str | None = None) -> TextEncoding:
    """How to decode the text file ``path`` (see the module docstring); ``encoding`` settles it.

    Raises InputError for an encoding Python does not know.
    """
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    utf8_bom = head.startswith(codecs.BOM_UTF8)
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r} (try utf-8, cp1252, latin-1, "
                             "iso-8859-2, mac-roman or utf-16)") from None
        if name == "utf-8":  # a BOM is not part of the first column's name
            return TextEncoding("utf-8", "UTF-8", "--encoding", skip=3 if utf8_bom else 0, bom=utf8_bom)
        return TextEncoding(encoding, encoding, "--encoding", bom=utf8_bom and name == "utf-8-sig")
    for mark, codec, name in _BOMS:
        if head.startswith(mark):
            if codec == "utf-8":
                return TextEncoding("utf-8", name, "byte-order mark", FALLBACK, skip=3, bom=True)
            return TextEncoding(codec, name, "byte-order mark")
    utf16 = _utf16_without_bom(head)
    if utf16:
        return TextEncoding(utf16, utf16.upper().replace("-LE", " LE").replace("-BE", " BE"),
                            "detected, no byte-order mark")
    return TextEncoding("utf-8", "UTF-8", "default", FALLBACK)


def _decode_cell(text: str, fallback: str) -> tuple[str, bool]:
    """A cell read as Latin-1 (its bytes) decoded as UTF-8; (text, whether it needed the fallback)."""
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", f"coder-{fallback}"), True


def _ascii_mask(col: pd.Series) -> np.ndarray:
    try:
        mask = col.str.isascii()
    except (AttributeError, TypeError):  # pandas < 3
        mask = col.map(lambda v: not isinstance(v, str) or v.isascii())
    return mask.fillna(True).to_numpy(dtype=bool)


# ---------------------------------------------------------------------------- formulas

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def escape_formula(value: object) -> object:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula.

    >>> escape_formula("=HYPERLINK(1)"), escape_formula("-9"), escape_formula("- none -")
    ("'=HYPERLINK(1)", '-9', "'- none -")
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that would start a formula escaped (``frame`` is kept)."""
    frame = frame.copy(deep=False)
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if not _is_text(col):
            continue
        risky = col.str.startswith(_FORMULA_START) if not pd.api.types.is_object_dtype(col.dtype) else \
            col.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
        risky = risky.fillna(False).astype(bool).to_numpy()
        if risky.any():
            values = col.to_numpy(dtype=object, copy=True)
            idx = np.flatnonzero(risky)
            values[idx] = [escape_formula(v) for v in values[idx]]
            frame.isetitem(j, pd.Series(values, index=frame.index, dtype=col.dtype))
    return frame


# ---------------------------------------------------------------------------- sources


@dataclass
class Source:
    """An input file: its format, its columns, and a way to read it in chunks.

    ``labels`` carries what the format can say about its columns (Stata/SPSS variable and
    value labels) so writers of the same format can put it back. For text files ``text``
    says how they are decoded; after reading, ``fallback_cells`` counts the cells that were
    not valid UTF-8 and ``fallback_first`` gives the first one as (row, column), rows
    counted from 1 = the first data row (0 = the header).
    """

    path: Path
    format: str
    columns: list[str]
    total_rows: int | None = None
    text: TextEncoding | None = None
    sep: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    width: int | None = None  # .xlsx: columns read from each row
    fallback_cells: int = 0
    fallback_first: tuple[int, str] | None = None
    header_fallback: tuple[int, tuple[int, str] | None] = (0, None)  # header names that needed it

    @property
    def bom(self) -> bool:
        return self.text is not None and self.text.bom

    @property
    def encoding(self) -> str | None:
        """How a text file is decoded, for people (None for other formats)."""
        return self.text.describe() if self.text else None

    def chunks(self, size: int) -> Iterator[pd.DataFrame]:
        """Yield the file as DataFrames of at most ``size`` rows (a fresh RangeIndex each)."""
        reader = getattr(self, f"_chunks_{self.format if self.format not in _SEPARATORS else 'text'}")
        empty = True
        for chunk in reader(size):
            empty = False
            yield chunk.reset_index(drop=True)
        if empty:  # a header and no rows: one empty chunk, so the output still gets its columns
            yield self._empty()

    def _empty(self) -> pd.DataFrame:
        if self.format == "parquet":
            pq = _need("pyarrow.parquet", "parquet", self.path)
            return pq.ParquetFile(self.path).schema_arrow.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns})

    # -- text
    def _open_text(self) -> io.TextIOWrapper:
        assert self.text is not None
        raw = open(self.path, "rb")
        raw.seek(self.text.skip)
        # With a fallback the text goes through as Latin-1 (one character per byte, nothing
        # lost); cells are then decoded one by one (`_repair`), so each can be counted.
        codec = "latin-1" if self.text.fallback else self.text.codec
        return io.TextIOWrapper(raw, encoding=codec, errors="strict", newline="")

    def _read_csv(self, handle: Any, **kw: Any) -> Any:
        return pd.read_csv(
            handle, sep=self.sep, dtype=str, keep_default_na=False, na_filter=False,
            skip_blank_lines=False, engine="c", quoting=csv.QUOTE_MINIMAL, **kw,
        )

    def _decoding_error(self, exc: UnicodeDecodeError) -> InputError:
        assert self.text is not None
        return InputError(f"{self.path}: not valid {self.text.name} ({exc.reason}, byte "
                          f"{exc.object[exc.start:exc.start + 1]!r}); give the file's encoding with "
                          "--encoding (for example cp1252, iso-8859-2, mac-roman or utf-16)")

    def _chunks_text(self, size: int) -> Iterator[pd.DataFrame]:
        self.fallback_cells, self.fallback_first = self.header_fallback
        row = 0
        with self._open_text() as fh:
            try:
                with self._read_csv(fh, chunksize=size) as reader:
                    for chunk in reader:
                        if not isinstance(chunk.index, pd.RangeIndex):
                            raise InputError(
                                f"{self.path}: a data row has more fields than the header "
                                f"({len(self.columns)} names), so a column would have no name; "
                                "add the missing names to the header row")
                        if self.text is not None and self.text.fallback:
                            self._repair(chunk, row)
                        row += len(chunk)
                        yield chunk
            except pd.errors.ParserError as exc:
                raise InputError(f"{self.path}: not a well-formed {self.format.upper()} file ({exc})") from None
            except UnicodeDecodeError as exc:
                raise self._decoding_error(exc) from None

    def _repair(self, chunk: pd.DataFrame, row0: int) -> None:
        """Decode the cells of ``chunk`` (read as Latin-1) as UTF-8, in place, counting fallbacks."""
        fallback = self.text.fallback  # type: ignore[union-attr]
        for j in range(chunk.shape[1]):
            col = chunk.iloc[:, j]
            todo = np.flatnonzero(~_ascii_mask(col))
            if not len(todo):
                continue
            values = col.to_numpy(dtype=object, copy=True)
            codes, uniques = pd.factorize(values[todo])  # answers repeat: decode each once
            decoded = [_decode_cell(v, fallback) for v in uniques]
            values[todo] = np.asarray([text for text, _ in decoded], dtype=object)[codes]
            bad = np.asarray([b for _, b in decoded], dtype=bool)[codes]
            if bad.any():
                self.fallback_cells += int(bad.sum())
                if self.fallback_first is None:
                    self.fallback_first = (row0 + int(todo[np.argmax(bad)]) + 1, self.columns[j])
            chunk.isetitem(j, pd.Series(values, index=chunk.index, dtype=col.dtype))

    # -- excel
    def _chunks_xlsx(self, size: int) -> Iterator[pd.DataFrame]:
        openpyxl = _need("openpyxl", "excel", self.path)
        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            rows = wb.worksheets[0].iter_rows(values_only=True)
            next(rows, None)  # header, already in self.columns
            width = self.width if self.width is not None else len(self.columns)
            batch: list[list[str]] = []
            blank: list[list[str]] = []  # empty rows are held back: trailing ones are dropped
            for number, row in enumerate(rows, start=1):
                if len(row) > width and not all(_blank(v) for v in row[width:]):
                    raise InputError(f"{self.path}: row {number + 1} has data to the right of the "
                                     f"{width} columns found from the sheet's size; open and save the "
                                     "file in Excel (which records the size) or export it as CSV")
                cells = [_excel_text(v) for v in row[:width]]
                cells += [""] * (width - len(cells))
                if all(_blank(v) for v in row):
                    blank.append(cells)
                    continue
                batch.extend(blank)
                blank = []
                batch.append(cells)
                if len(batch) >= size:
                    yield pd.DataFrame(batch[:size], columns=self.columns, dtype=str)
                    batch = batch[size:]
            while batch:
                yield pd.DataFrame(batch[:size], columns=self.columns, dtype=str)
                batch = batch[size:]
        finally:
            wb.close()

    # -- parquet
    def _chunks_parquet(self, size: int) -> Iterator[pd.DataFrame]:
        pq = _need("pyarrow.parquet", "parquet", self.path)
        import pyarrow as pa

        pf = pq.ParquetFile(self.path)
        for batch in pf.iter_batches(batch_size=size):
            yield pa.Table.from_batches([batch]).to_pandas(types_mapper=pd.ArrowDtype)

    # -- stata
    def _chunks_dta(self, size: int) -> Iterator[pd.DataFrame]:
        with pd.read_stata(self.path, chunksize=size, convert_categoricals=False,
                           convert_missing=False, preserve_dtypes=True) as reader:
            yield from reader

    # -- spss
    def _chunks_sav(self, size: int) -> Iterator[pd.DataFrame]:
        pyreadstat = _need("pyreadstat", "spss", self.path)
        for frame, _ in pyreadstat.read_file_in_chunks(pyreadstat.read_sav, str(self.path), chunksize=size):
            yield frame


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _excel_text(value: object) -> str:
    """An Excel cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _dedupe(names: Sequence[str]) -> list[str]:
    """Column names made unique as pandas' CSV reader does (``x``, ``x.1``, ``x.2``)."""
    seen: set[str] = set()
    out = []
    for name in names:
        new, n = name, 0
        while new in seen:
            n += 1
            new = f"{name}.{n}"
        seen.add(new)
        out.append(new)
    return out


def _xlsx_source(path: Path) -> Source:
    openpyxl = _need("openpyxl", "excel", path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile/XML errors: not an Excel file
        raise InputError(f"{path}: not a readable .xlsx file ({exc})") from None
    try:
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if not header:
            raise InputError(f"{path}: the first sheet is empty; expected a header row")
        named = [i for i, v in enumerate(header) if not _blank(v)]
        width = named[-1] + 1 if named else 0
        declared = ws.max_column  # from the sheet's recorded size; None when it has none
        total = max((ws.max_row or 1) - 1, 0)
        if declared is None or declared > width:
            # Columns beyond the last header name: keep those that hold data (a column with no
            # header is still data), drop those that are only formatting. Needs one pass.
            total = 0
            for number, row in enumerate(rows, start=1):
                for j in range(len(row) - 1, width - 1, -1):
                    if not _blank(row[j]):
                        width = j + 1
                        break
                if not all(_blank(v) for v in row):
                    total = number
    except InputError:
        raise
    except Exception as exc:  # a corrupt sheet inside a readable zip
        raise InputError(f"{path}: not a readable .xlsx file ({exc})") from None
    finally:
        wb.close()
    names = [_excel_text(header[i]) if i < len(header) else "" for i in range(width)]
    columns = _dedupe([name or f"Unnamed: {i}" for i, name in enumerate(names)])
    return Source(path, "xlsx", columns, total, width=width)


def open_source(path: str | os.PathLike, *, encoding: str | None = None) -> Source:
    """Open ``path`` for chunked reading, reading only its header (and metadata).

    Raises InputError (a missing file, an unknown extension, an empty or malformed file).
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt in _SEPARATORS:
        return _text_source(path, fmt, encoding)
    if fmt == "xlsx":
        return _xlsx_source(path)
    if fmt == "parquet":
        pq = _need("pyarrow.parquet", "parquet", path)
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        return Source(path, fmt, list(pf.schema_arrow.names), pf.metadata.num_rows)
    if fmt == "dta":
        try:
            with pd.read_stata(path, iterator=True, convert_categoricals=False) as reader:
                variable_labels = dict(reader.variable_labels())  # one entry per variable, in order
                columns = list(variable_labels)
                tables = reader.value_labels()
                # Which label table each variable uses is not public API; pandas-written files
                # name the table after the variable, which is the fallback.
                names = getattr(reader, "_lbllist", None) or [c if c in tables else "" for c in columns]
                labels = {
                    "variable_labels": variable_labels,
                    "value_label_names": dict(zip(columns, names)),
                    "value_labels": tables,
                    "data_label": reader.data_label,
                }
                total = getattr(reader, "_nobs", None)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable Stata file ({exc})") from None
        return Source(path, fmt, columns, total, labels=labels)
    pyreadstat = _need("pyreadstat", "spss", path)
    try:
        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
    except Exception as exc:  # pyreadstat.ReadstatError and friends
        raise InputError(f"{path}: not a readable SPSS file ({exc})") from None
    labels = {
        "column_labels": {k: v for k, v in meta.column_names_to_labels.items() if v},
        "variable_value_labels": dict(meta.variable_value_labels),
        "variable_measure": dict(meta.variable_measure),
    }
    return Source(path, fmt, list(meta.column_names), meta.number_rows, labels=labels)


def _text_source(path: Path, fmt: str, encoding: str | None) -> Source:
    text = sniff_encoding(path, encoding)
    source = Source(path, fmt, [], None, text)
    with source._open_text() as fh:
        try:
            first = fh.readline()
        except UnicodeDecodeError as exc:
            raise source._decoding_error(exc) from None
    if not first.strip("\r\n"):
        raise InputError(f"{path}: the file is empty or its first line is blank; expected a header row")
    sep = _SEPARATORS[fmt]
    if fmt == "txt" or (fmt == "csv" and "," not in first):
        # .txt: whatever delimiter the header uses; .csv: a European ';' export.
        found = [s for s in ("\t", ",", ";", "|") if s in first]
        sep = found[0] if found else sep
    source.sep = sep
    with source._open_text() as fh:
        try:
            header = source._read_csv(fh, nrows=0)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{path}: not a well-formed {fmt.upper()} file ({exc})") from None
        except UnicodeDecodeError as exc:
            raise source._decoding_error(exc) from None
    columns = [str(c) for c in header.columns]
    if text.fallback:
        decoded = [_decode_cell(c, text.fallback) for c in columns]
        columns = [c for c, _ in decoded]
        bad = [i for i, (_, b) in enumerate(decoded) if b]
        if bad:
            source.header_fallback = (len(bad), (0, columns[bad[0]]))
            source.fallback_cells, source.fallback_first = source.header_fallback
    source.columns = columns
    if len(set(source.columns)) != len(source.columns):  # pragma: no cover - pandas dedupes
        raise InputError(f"{path}: duplicate column names in the header")
    return source


def estimate_text_rows(path: Path) -> int:
    """Line count minus the header: an upper bound on rows when cells hold newlines."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


# ---------------------------------------------------------------------------- sinks


def _partial_name(target: Path, suffix: str) -> Path:
    return target.parent / f".{target.name}.{suffix}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class OutputLabels:
    """What a Stata or SPSS writer needs to label the code column."""

    code_column: str | None = None
    code_labels: Mapping[str, str] = field(default_factory=dict)
    missing_code: str = "-9"
    variable_labels: Mapping[str, str] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)  # Source.labels of the same format


class Sink:
    """Where coded chunks go. ``append`` chunks, ``checkpoint`` after each, ``commit`` at the end.

    ``checkpoint()`` returns a small JSON-able state; ``open_sink(..., state=state)`` reopens a
    sink whose run was interrupted, dropping anything written after that checkpoint.
    """

    target: Path
    rows: int

    def append(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def checkpoint(self) -> dict:
        raise NotImplementedError

    def commit(self) -> int:
        """Finish the file, check its row count, move it onto the target; returns the rows."""
        raise NotImplementedError

    def close(self) -> None:
        """Release handles without committing; partial files stay for `--resume`."""


class TextSink(Sink):
    """CSV/TSV appended to ``.NAME.partial``; a checkpoint is a byte offset."""

    def __init__(self, target: Path, fmt: str, *, bom: bool = False, state: dict | None = None):
        self.target = target
        self.fmt = fmt
        self.sep = _SEPARATORS[fmt]
        self.bom = bom
        self.partial = _partial_name(target, "partial")
        if state is None:
            self.partial.unlink(missing_ok=True)
            self.rows, size = 0, 0
        else:
            self.rows, size = int(state["rows"]), int(state["bytes"])
            if not self.partial.is_file() or self.partial.stat().st_size < size:
                raise InputError(f"cannot resume: {self.partial} is missing or shorter than recorded; "
                                 "run again without --resume")
        self._fh = open(self.partial, "r+b" if state else "wb")
        self._fh.truncate(size)
        self._fh.seek(size)
        self._header = state is not None and size > 0

    def append(self, frame: pd.DataFrame) -> None:
        data = csv_bytes(escape_formulas(frame), self.sep, header=not self._header)
        if not self._header and self.bom:
            data = codecs.BOM_UTF8 + data
        self._fh.write(data)
        self._header = True
        self.rows += len(frame)

    def checkpoint(self) -> dict:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return {"rows": self.rows, "bytes": self._fh.tell()}

    def commit(self) -> int:
        self.checkpoint()
        self._fh.close()
        counted = _count_text_rows(self.partial, self.sep, expected=self.rows)
        if counted != self.rows:
            raise InputError(f"{self.target}: wrote {self.rows:,} rows but the file reads back as "
                             f"{counted:,}; output not saved (the partial file is {self.partial})")
        os.replace(self.partial, self.target)
        return counted

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def csv_bytes(frame: pd.DataFrame, sep: str = ",", *, header: bool = True) -> bytes:
    """``frame`` as UTF-8 CSV: text quoted, numbers bare, missing empty, ``confidence`` to 3 places.

    Text cells are always quoted (as R's ``write.csv`` does), so the layout does not depend on
    the content; pyarrow's writer does this fast, the csv module is the fallback.
    """
    conf = frame.get("confidence")
    fixed = conf is not None and pd.api.types.is_float_dtype(conf.dtype)
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        pa = None
    if pa is not None:
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if fixed:
                i = table.schema.get_field_index("confidence")
                table = table.set_column(i, "confidence",
                                         pc.cast(pc.round(table.column(i), 3), pa.decimal128(12, 3)))
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=header, delimiter=sep,
                                                            quoting_style="needed"))
            return sink.getvalue().to_pybytes()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass  # a column pyarrow cannot convert (mixed Python objects): the csv module copes
    import decimal

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    if header:
        writer.writerow([str(c) for c in frame.columns])
    columns = []
    for name in frame.columns:
        col = frame[name]
        values = col.astype(object).where(col.notna(), None).tolist()
        if name == "confidence" and fixed:
            values = [None if v is None else decimal.Decimal(f"{v:.3f}") for v in values]
        elif not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        columns.append(values)
    writer.writerows(zip(*columns))
    return buf.getvalue().encode("utf-8")


def _count_text_rows(path: Path, sep: str, *, expected: int | None = None) -> int:
    """Data rows of a CSV/TSV file as read back (quoted line breaks inside a cell).

    With ``expected``, pyarrow's parser (on every core, 2-3x faster) counts first; only when
    it is missing, fails or disagrees does pandas' parser give the answer."""
    if expected is not None:
        quick = _count_text_rows_arrow(path, sep)
        if quick == expected:
            return quick
    with open(path, encoding="utf-8-sig", newline="") as fh:
        if not fh.readline():
            return 0
    rows = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        with pd.read_csv(fh, sep=sep, dtype=str, usecols=[0], keep_default_na=False, na_filter=False,
                         skip_blank_lines=False, chunksize=1_000_000) as reader:
            for chunk in reader:
                rows += len(chunk)
    return rows


def _count_text_rows_arrow(path: Path, sep: str) -> int | None:
    """Data rows by pyarrow (the header row not counted), or None when it cannot say."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
        if not first.strip(codecs.BOM_UTF8 + b"\r\n"):
            return None
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(skip_rows=1, autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(include_columns=["f0"], column_types={"f0": pa.string()}))
    except (pa.ArrowException, OSError, ValueError):
        return None
    return table.num_rows


def part_format() -> str:
    """The format part files are written in: ``parquet`` with pyarrow installed, else ``csv``."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return "csv"
    return "parquet"


def _write_parquet_part(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` as Parquet; False when pyarrow cannot hold a column (mixed Python objects)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    pq.write_table(table, path)
    return True


def _read_parquet_part(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


# CSV part files: every cell is quoted and tagged with its type ("s" text, "i" integer, "f" float,
# "b" boolean, "t" timestamp, "r" anything else as text, "" missing), so text such as "" or "1"
# and numbers come back as they went in; a JSON file beside it records names and dtypes.
def _tag(value: object) -> str:
    if isinstance(value, str):
        return "s" + value
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "b1" if value else "b0"
    if isinstance(value, (int, np.integer)):
        return f"i{int(value)}"
    if isinstance(value, (float, np.floating)):
        return "f" + repr(float(value))
    if isinstance(value, pd.Timestamp):
        return "t" + value.isoformat()
    return "r" + str(value)


def _untag(cell: str) -> object:
    if not cell:
        return None
    kind, text = cell[0], cell[1:]
    if kind == "i":
        return int(text)
    if kind == "f":
        return float(text)
    if kind == "b":
        return text == "1"
    if kind == "t":
        return pd.Timestamp(text)
    return text


def _write_csv_part(frame: pd.DataFrame, path: Path) -> None:
    meta = {"columns": [str(c) for c in frame.columns], "dtypes": [str(t) for t in frame.dtypes]}
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    _fsync(meta_path)
    columns = [frame.iloc[:, j].astype(object).tolist() for j in range(frame.shape[1])]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows([_tag(v) for v in row] for row in zip(*columns))


def _read_csv_part(path: Path) -> pd.DataFrame:
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    data = {}
    for j, (name, dtype) in enumerate(zip(meta["columns"], meta["dtypes"])):
        values = [_untag(row[j]) for row in rows]
        try:
            col = pd.Series(values, dtype=dtype) if values else pd.Series([], dtype=dtype)
        except (TypeError, ValueError):
            col = pd.Series(values, dtype=object)
        data[j] = col
    frame = pd.DataFrame(data)
    frame.columns = meta["columns"]
    return frame


class PartsSink(Sink):
    """Chunks spilled as part files in ``.NAME.parts/``, assembled by ``commit``.

    Parts are data files (`part_format`: Parquet, else CSV with a JSON file of dtypes), private
    to this run: written here and read back only by this module, never unpickled.
    """

    def __init__(self, target: Path, fmt: str, *, labels: OutputLabels | None = None,
                 state: dict | None = None):
        self.target = target
        self.fmt = fmt
        self.labels = labels or OutputLabels()
        self.dir = _partial_name(target, "parts")
        if state is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            self.parts, self.rows = 0, 0
            self.part_format = part_format()
        else:
            self.parts, self.rows = int(state["parts"]), int(state["rows"])
            self.part_format = state.get("part_format", "")
            if self.part_format not in ("parquet", "csv") or (self.part_format == "parquet"
                                                              and part_format() != "parquet"):
                raise InputError(f"cannot resume: the part files in {self.dir} cannot be read here; "
                                 "run again without --resume")
            missing = [p for p in range(self.parts) if self._part(p) is None]
            if missing:
                raise InputError(f"cannot resume: part files are missing from {self.dir}; "
                                 "run again without --resume")
            for extra in self.dir.iterdir():
                number = extra.name[5:11]
                if not extra.name.startswith("part-") or not number.isdigit() or int(number) >= self.parts:
                    extra.unlink()  # written after the last checkpoint

    def _part(self, i: int) -> Path | None:
        """Part ``i``'s data file (None when it is missing)."""
        for suffix in (".parquet", ".csv"):
            path = self.dir / f"part-{i:06d}{suffix}"
            if path.is_file():
                return path
        return None

    def append(self, frame: pd.DataFrame) -> None:
        if self.fmt == "xlsx":
            _check_excel_fits(frame, self.rows, self.target)
        stem = self.dir / f"part-{self.parts:06d}"
        tmp = stem.with_suffix(".tmp")
        if self.part_format == "parquet" and _write_parquet_part(frame, tmp):
            final = stem.with_suffix(".parquet")
        else:
            _write_csv_part(frame, tmp)  # its JSON file of types goes straight to part-N.json
            final = stem.with_suffix(".csv")
        _fsync(tmp)
        os.replace(tmp, final)  # the data file appears last: its presence means the part is whole
        self.parts += 1
        self.rows += len(frame)

    def checkpoint(self) -> dict:
        return {"parts": self.parts, "rows": self.rows, "part_format": self.part_format}

    def _read_part(self, i: int) -> pd.DataFrame:
        path = self._part(i)
        if path is None:
            raise InputError(f"{self.dir}: part file {i} disappeared during the run")
        return _read_parquet_part(path) if path.suffix == ".parquet" else _read_csv_part(path)

    def _frames(self) -> Iterator[pd.DataFrame]:
        for i in range(self.parts):
            yield self._read_part(i)

    def commit(self) -> int:
        partial = _partial_name(self.target, "partial")
        partial.unlink(missing_ok=True)
        try:
            counted = getattr(self, f"_write_{self.fmt}")(partial)
            if counted != self.rows:
                raise InputError(f"{self.target}: wrote {self.rows:,} rows but the file reads back "
                                 f"as {counted:,}; output not saved")
            os.replace(partial, self.target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        shutil.rmtree(self.dir, ignore_errors=True)
        return counted

    # -- writers; each returns the row count read back from what it wrote
    def _write_parquet(self, path: Path) -> int:
        pq = _need("pyarrow.parquet", "parquet", path)
        import pyarrow as pa

        writer = None
        try:
            for i in range(self.parts):
                part = self._part(i)
                if part is not None and part.suffix == ".parquet":
                    table = pq.read_table(part)
                else:
                    table = pa.Table.from_pandas(self._read_part(i), preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table.cast(writer.schema))
            if writer is None:
                raise InputError(f"{self.target}: nothing to write")
        finally:
            if writer is not None:
                writer.close()
        return pq.ParquetFile(path).metadata.num_rows

    def _write_xlsx(self, path: Path) -> int:
        openpyxl = _need("openpyxl", "excel", path)
        from openpyxl.cell import WriteOnlyCell

        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("coded")
        header = False
        for frame in self._frames():
            if not header:
                ws.append([str(c) for c in frame.columns])
                header = True
            frame = escape_formulas(frame)
            for row in frame.itertuples(index=False, name=None):
                cells = []
                for value in row:
                    if isinstance(value, str):
                        cell = WriteOnlyCell(ws, value=_excel_safe(value, self.target))
                        cell.data_type = "s"  # a string, never a formula
                        cells.append(cell)
                    elif value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                        cells.append(None)
                    else:
                        cells.append(value.item() if isinstance(value, np.generic) else value)
                ws.append(cells)
        wb.save(path)
        return max(_count_xlsx_rows(path) - 1, 0)

    def _coded_frame(self) -> pd.DataFrame:
        frames = list(self._frames())
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _numeric_codes(self, frame: pd.DataFrame) -> dict[int, str]:
        """Turn the code column into integers (Stata/SPSS value labels need numbers)."""
        lab = self.labels
        col = lab.code_column
        if not col or col not in frame:
            return {}
        codes = list(lab.code_labels) + [lab.missing_code]
        if not all(re.fullmatch(r"-?\d+", c) for c in codes):
            return {}  # a scheme with non-numeric codes: keep the column as text, unlabelled
        frame[col] = pd.to_numeric(frame[col], errors="raise").astype("int32")
        labels = {int(code): title for code, title in lab.code_labels.items()}
        labels[int(lab.missing_code)] = "uncodable (missing)"
        return labels

    def _write_dta(self, path: Path) -> int:
        frame = self._coded_frame()
        code_labels = self._numeric_codes(frame)
        src = self.labels.source
        value_labels: dict[str, dict[int | float, str]] = {}
        tables = src.get("value_labels", {})
        for var, name in src.get("value_label_names", {}).items():
            if name and name in tables and var in frame and pd.api.types.is_numeric_dtype(frame[var]):
                value_labels[var] = dict(tables[name])
        if code_labels:
            value_labels[self.labels.code_column] = code_labels  # type: ignore[index]
        variable_labels = {**src.get("variable_labels", {}), **self.labels.variable_labels}
        variable_labels = {k: v[:80] for k, v in variable_labels.items() if v and k in frame}
        long_text = []
        for c in frame.columns:
            if _is_text(frame[c]) or _all_missing(frame[c]):
                # Stata strings cannot be missing (empty instead); over 2,045 bytes they are strL.
                frame[c] = _stat_text(frame[c])
                if len(frame) and frame[c].map(lambda v: len(v.encode("utf-8"))).max() > 2045:
                    long_text.append(c)
        frame.to_stata(path, write_index=False, version=118, value_labels=value_labels or None,
                       variable_labels=variable_labels or None, convert_strl=long_text,
                       data_label=src.get("data_label") or None)
        first = [frame.columns[0]] if len(frame.columns) else None
        with pd.read_stata(path, chunksize=1_000_000, columns=first, convert_categoricals=False) as reader:
            return sum(len(chunk) for chunk in reader)

    def _write_sav(self, path: Path) -> int:
        pyreadstat = _need("pyreadstat", "spss", path)
        frame = self._coded_frame()
        code_labels = self._numeric_codes(frame)
        src = self.labels.source
        col = self.labels.code_column
        value_labels = {k: v for k, v in src.get("variable_value_labels", {}).items() if k in frame}
        missing: dict[str, list] = {}
        if code_labels and col:
            frame[col] = frame[col].astype("float64")
            value_labels[col] = {float(k): v for k, v in code_labels.items()}
            missing[col] = [float(self.labels.missing_code)]
        column_labels = {**src.get("column_labels", {}), **self.labels.variable_labels}
        for c in frame.columns:
            if _is_text(frame[c]) or _all_missing(frame[c]):
                frame[c] = _stat_text(frame[c])
        pyreadstat.write_sav(
            frame, str(path),
            column_labels={c: column_labels.get(c) for c in frame.columns} if column_labels else None,
            variable_value_labels=value_labels or None,
            missing_ranges=missing or None,
            variable_measure={k: v for k, v in src.get("variable_measure", {}).items() if k in frame} or None,
        )
        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
        return int(meta.number_rows)


def _all_missing(col: pd.Series) -> bool:
    """A column with no type of its own (Arrow's null type, or objects that are all missing)."""
    return str(col.dtype) == "null[pyarrow]" or (col.dtype == object and not col.notna().any())


def _stat_text(col: pd.Series) -> pd.Series:
    """Text for Stata/SPSS: missing as empty, NUL (which ends a string there) as U+FFFD."""
    values = col.astype(object).where(col.notna(), "").astype(str)
    return values.str.replace("\x00", "\ufffd", regex=False).astype(object)


def check_output_names(target: str | os.PathLike, columns: Sequence[str]) -> None:
    """InputError when ``target``'s format cannot hold a column name (Stata, SPSS) as it is.

    pandas would rename such a Stata variable with only a warning, and pyreadstat fails at the
    end of the run; checked on an empty table before anything is coded.
    """
    target = Path(target)
    fmt = file_format(target)
    if fmt not in ("dta", "sav"):
        return
    empty = pd.DataFrame({j: pd.Series([], dtype=object) for j in range(len(columns))})
    empty.columns = list(columns)
    fix = "rename it, or write .csv or .parquet"
    if fmt == "dta":
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                empty.to_stata(buf, write_index=False, version=118)
            except ValueError as exc:
                raise InputError(f"{target}: the columns cannot be Stata variables ({exc}); {fix}") from None
        buf.seek(0)
        written = list(pd.read_stata(buf).columns)
        for name, new in zip(columns, written):
            if name != new:
                raise InputError(f"{target}: column {name!r} cannot be a Stata variable name (letters, "
                                 f"digits and _, at most 32 characters; Stata would call it {new!r}); {fix}")
        return
    pyreadstat = _need("pyreadstat", "spss", target)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            pyreadstat.write_sav(empty, str(Path(tmp) / "names.sav"))
        except Exception as exc:  # pyreadstat.ReadstatError, PyreadstatError
            raise InputError(f"{target}: the columns cannot be SPSS variables ({exc}); {fix}") from None


def _count_xlsx_rows(path: Path) -> int:
    """Rows in the first worksheet, counted from its XML (write-only files carry no dimension)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        sheets = sorted(n for n in zf.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        rows, tail = 0, b""
        with zf.open(sheets[0]) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                data = tail + block
                rows += data.count(b"<row ") + data.count(b"<row>")
                tail = data[-5:]
                rows -= tail.count(b"<row ") + tail.count(b"<row>")  # counted again next time
        return rows + tail.count(b"<row ") + tail.count(b"<row>")


def _is_text(col: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)


def _check_excel_fits(frame: pd.DataFrame, rows_before: int, target: Path) -> None:
    """Fail on the chunk that breaks Excel's limits, not after the whole run."""
    if rows_before + len(frame) + 1 > EXCEL_MAX_ROWS:
        raise InputError(f"{target}: more than {EXCEL_MAX_ROWS - 1:,} rows do not fit in an Excel sheet; "
                         "write .csv or .parquet instead")
    for name in frame.columns:
        col = frame[name]
        if _is_text(col):
            lengths = col.map(lambda v: len(v) if isinstance(v, str) else 0) if col.dtype == object \
                else col.str.len().fillna(0)
            if len(lengths) and lengths.max() > EXCEL_MAX_CHARS:
                row = rows_before + int(np.argmax(lengths.to_numpy())) + 1
                raise InputError(f"{target}: row {row:,}, column {name!r} holds {int(lengths.max()):,} "
                                 f"characters, more than an Excel cell can ({EXCEL_MAX_CHARS:,}); "
                                 "write .csv or .parquet instead")


_ILLEGAL_EXCEL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _excel_safe(value: str, target: Path) -> str:
    if len(value) > EXCEL_MAX_CHARS:
        raise InputError(f"{target}: a cell of {len(value):,} characters does not fit in Excel "
                         f"(limit {EXCEL_MAX_CHARS:,}); write .csv or .parquet instead")
    return _ILLEGAL_EXCEL.sub("\ufffd", value)


def open_sink(target: str | os.PathLike, *, bom: bool = False, labels: OutputLabels | None = None,
              state: dict | None = None) -> Sink:
    """A sink for ``target`` (format by extension); ``state`` resumes an interrupted one."""
    target = Path(target)
    fmt = file_format(target)
    if not target.parent.is_dir():
        raise InputError(f"{target}: the folder {target.parent} does not exist")
    if fmt in _SEPARATORS:
        return TextSink(target, fmt, bom=bom, state=state)
    _need({"xlsx": "openpyxl", "parquet": "pyarrow", "sav": "pyreadstat"}.get(fmt, "pandas"),
          {"xlsx": "excel", "parquet": "parquet", "sav": "spss"}.get(fmt, "all"), target)
    return PartsSink(target, fmt, labels=labels, state=state)
