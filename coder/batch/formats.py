"""Reading and writing data files in chunks, chosen by file extension.

Readers yield `pandas.DataFrame` chunks that keep every column and row of the input:

* CSV / TSV / TXT are read as strings (``dtype=str, keep_default_na=False``, blank lines kept
  as empty rows), so answers such as ``"N/A"`` or codes such as ``"0110"`` survive untouched.
  Without ``--encoding`` the encoding is sniffed: a BOM decides (UTF-8 or UTF-16); otherwise
  the file is read as UTF-8 and any byte sequence that is not valid UTF-8 is decoded as
  cp1252 (Latin-1 for the five bytes cp1252 leaves undefined). A cp1252/Latin-1 export, a UTF-8
  file and a file pasted together from both therefore all read without mojibake or errors.
  A .txt file uses whatever delimiter its header line shows (tab, comma, ``;`` or ``|``);
  written .txt files are tab-separated.
* Excel (.xlsx, first sheet, first row = header) is read as text the same way.
* Parquet keeps its Arrow types; Stata and SPSS keep their numeric types, with variable
  and value labels carried over to the output where the format can hold them.

Writers ("sinks") never write the target path directly. CSV/TSV output is appended to a hidden
``.NAME.partial`` file in the target's directory; the other formats spill each chunk to a part
file in a hidden ``.NAME.parts/`` directory and are assembled at the end (Parquet and Excel
streaming through the parts, Stata and SPSS in one go because pandas and pyreadstat cannot
append, so those two need memory in proportion to the output). Only a complete file whose
row count has been checked by reading it back is renamed onto the target.

Spreadsheet formulas: in CSV, TSV and Excel output a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is prefixed with ``'`` (the OWASP advice against CSV
injection), unless the whole cell is a plain number such as ``-9``, ``-3.5`` or ``+44``: those
cannot run as formulas and must stay machine-readable, so the missing code ``-9`` is written as
is. This is the one place where output cells can differ from input cells; Parquet, Stata and
SPSS output is never escaped. Excel cells also cannot hold most control characters: they are
replaced by U+FFFD in .xlsx output (CSV keeps them).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "FORMATS", "file_format", "open_source", "Source", "open_sink", "Sink",
    "escape_formula", "escape_formulas", "sniff_encoding",
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

_UNDEFINED_CP1252 = frozenset(b"\x81\x8d\x8f\x90\x9d")


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    text = "".join(chr(b) if b in _UNDEFINED_CP1252 else bytes([b]).decode("cp1252") for b in bad)
    return text, exc.end


codecs.register_error("coder-cp1252", _cp1252_fallback)


def sniff_encoding(path: str | os.PathLike) -> tuple[str, str]:
    """(encoding, errors) to open a text file with; see the module docstring."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "coder-cp1252"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict"
    return "utf-8", "coder-cp1252"


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
    for name in frame.columns:
        col = frame[name]
        if not _is_text(col):
            continue
        risky = col.str.startswith(_FORMULA_START) if not pd.api.types.is_object_dtype(col.dtype) else \
            col.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
        risky = risky.fillna(False).astype(bool).to_numpy()
        if risky.any():
            values = col.to_numpy(dtype=object, copy=True)
            idx = np.flatnonzero(risky)
            values[idx] = [escape_formula(v) for v in values[idx]]
            frame[name] = pd.Series(values, index=frame.index, dtype=col.dtype)
    return frame


# ---------------------------------------------------------------------------- sources


@dataclass
class Source:
    """An input file: its format, its columns, and a way to read it in chunks.

    ``labels`` carries what the format can say about its columns (Stata/SPSS variable and
    value labels) so writers of the same format can put it back.
    """

    path: Path
    format: str
    columns: list[str]
    total_rows: int | None = None
    encoding: str | None = None
    errors: str = "strict"
    sep: str | None = None
    bom: bool = False
    labels: dict[str, Any] = field(default_factory=dict)

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
        return open(self.path, encoding=self.encoding, errors=self.errors, newline="")

    def _read_csv(self, handle: Any, **kw: Any) -> Any:
        return pd.read_csv(
            handle, sep=self.sep, dtype=str, keep_default_na=False, na_filter=False,
            skip_blank_lines=False, engine="c", quoting=csv.QUOTE_MINIMAL, **kw,
        )

    def _chunks_text(self, size: int) -> Iterator[pd.DataFrame]:
        with self._open_text() as fh:
            try:
                with self._read_csv(fh, chunksize=size) as reader:
                    yield from reader
            except pd.errors.ParserError as exc:
                raise InputError(f"{self.path}: not a well-formed {self.format.upper()} file ({exc})") from None

    # -- excel
    def _chunks_xlsx(self, size: int) -> Iterator[pd.DataFrame]:
        openpyxl = _need("openpyxl", "excel", self.path)
        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            rows = wb.worksheets[0].iter_rows(values_only=True)
            next(rows, None)  # header, already in self.columns
            width = len(self.columns)
            batch: list[list[str]] = []
            blank: list[list[str]] = []  # empty rows are held back: trailing ones are dropped
            for row in rows:
                cells = [_excel_text(v) for v in row[:width]]
                cells += [""] * (width - len(cells))
                if not any(row):
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


def _excel_text(value: object) -> str:
    """An Excel cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
        openpyxl = _need("openpyxl", "excel", path)
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile/XML errors: not an Excel file
            raise InputError(f"{path}: not a readable .xlsx file ({exc})") from None
        try:
            ws = wb.worksheets[0]
            header = next(ws.iter_rows(values_only=True), None)
            total = max((ws.max_row or 1) - 1, 0)
        finally:
            wb.close()
        if not header:
            raise InputError(f"{path}: the first sheet is empty; expected a header row")
        columns = [_excel_text(v) or f"Unnamed: {i}" for i, v in enumerate(header)]
        while columns and columns[-1].startswith("Unnamed: "):
            columns.pop()  # formatting-only columns at the right
        return Source(path, fmt, columns, total)
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
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r} (try utf-8, cp1252 or latin-1)") from None
        enc, errors = encoding, "strict"
    else:
        enc, errors = sniff_encoding(path)
    with open(path, "rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
    if bom and codecs.lookup(enc).name == "utf-8":
        enc = "utf-8-sig"  # --encoding utf-8 on a file with a BOM: do not glue it to the first name
    with open(path, encoding=enc, errors=errors, newline="") as fh:
        first = fh.readline()
    if not first.strip("\r\n"):
        raise InputError(f"{path}: the file is empty or its first line is blank; expected a header row")
    sep = _SEPARATORS[fmt]
    if fmt == "txt" or (fmt == "csv" and "," not in first):
        # .txt: whatever delimiter the header uses; .csv: a European ';' export.
        found = [s for s in ("\t", ",", ";", "|") if s in first]
        sep = found[0] if found else sep
    source = Source(path, fmt, [], None, enc, errors, sep, bom)
    with source._open_text() as fh:
        try:
            header = source._read_csv(fh, nrows=0)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{path}: not a well-formed {fmt.upper()} file ({exc})") from None
    source.columns = [str(c) for c in header.columns]
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
        counted = _count_text_rows(self.partial, self.sep)
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


def _count_text_rows(path: Path, sep: str) -> int:
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


class PartsSink(Sink):
    """Chunks spilled as pickled part files in ``.NAME.parts/``, assembled by ``commit``.

    The part files are private to this run (written here, read back only by this module).
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
        else:
            self.parts, self.rows = int(state["parts"]), int(state["rows"])
            missing = [p for p in range(self.parts) if not self._part(p).is_file()]
            if missing:
                raise InputError(f"cannot resume: part files are missing from {self.dir}; "
                                 "run again without --resume")
            for extra in self.dir.glob("part-*"):
                if int(extra.name[5:11]) >= self.parts:
                    extra.unlink()  # written after the last checkpoint

    def _part(self, i: int) -> Path:
        return self.dir / f"part-{i:06d}.pkl"

    def append(self, frame: pd.DataFrame) -> None:
        if self.fmt == "xlsx":
            _check_excel_fits(frame, self.rows, self.target)
        path = self._part(self.parts)
        tmp = path.with_suffix(".tmp")
        frame.to_pickle(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        self.parts += 1
        self.rows += len(frame)

    def checkpoint(self) -> dict:
        return {"parts": self.parts, "rows": self.rows}

    def _frames(self) -> Iterator[pd.DataFrame]:
        for i in range(self.parts):
            yield pd.read_pickle(self._part(i))

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
            for frame in self._frames():
                table = pa.Table.from_pandas(frame, preserve_index=False)
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
            if _is_text(frame[c]):
                # Stata strings cannot be missing (empty instead); over 2,045 bytes they are strL.
                frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str).astype(object)
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
            if _is_text(frame[c]):
                frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str).astype(object)
        pyreadstat.write_sav(
            frame, str(path),
            column_labels={c: column_labels.get(c) for c in frame.columns} if column_labels else None,
            variable_value_labels=value_labels or None,
            missing_ranges=missing or None,
            variable_measure={k: v for k, v in src.get("variable_measure", {}).items() if k in frame} or None,
        )
        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
        return int(meta.number_rows)


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
