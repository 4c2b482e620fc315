"""Property-based round trips: every input and output format, hostile cells.

Each example writes a table with a hostile mix of cells (empty, whitespace, missing-value
markers, control characters, long cells, formulas, numbers as text, mixed types, many
columns, columns without a header) in one format, codes it with `code_file` into another, and
reads the output back: every row and column must come out, in order, with its value unchanged
except for the documented cases (formula escaping in CSV/TSV/Excel, what Excel, Stata and
SPSS cannot hold; see `coder.batch.formats`).

The round trips code with `EchoCoder`, a stand-in with the engine's interface: they test
reading, de-duplication, layout and writing, and stay fast; `test_batch.py` runs the same
paths with the real (small) model.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
import zlib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder import InputError
from coder.batch import code_file, output_columns
from coder.batch.formats import escape_formula
from coder.errors import Reason
from coder.results import Candidate, Result
from coder.schemes import load_scheme

ADDED = output_columns("soc2000")
TEXT_FORMATS = ("csv", "tsv", "txt")
ALL_FORMATS = ("csv", "tsv", "txt", "xlsx", "parquet", "dta", "sav")
# A few examples per run keep the batch tests quick; BATCH_EXAMPLES=200 searches harder.
SETTINGS = settings(max_examples=int(os.environ.get("BATCH_EXAMPLES", "8")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE = [
    "", " ", "   ", "\t", "NaN", "nan", "#N/A", "N/A", "NULL", "None", "-9", "-8", "refused", "don't know",
    "=1+2", "=HYPERLINK(\"http://x\")", "+44 7700 900123", "-x", "@SUM(A1)", "\tx", "0110", "1e5", "TRUE",
    "12345", "-3.5", "line one\nline two", "cr\ronly", 'say "hello", ok', "semi;colon|pipe", "café owner",
    "Gärtner", "日本語", "😀 emoji", "\u200bzero width", " lead", "trail ", "staff nurse", "teacher", "nurse",
    "\x01\x02ctl", "bell\x07", "\x7f", "Unnamed: 0",
]
_ILLEGAL_EXCEL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class EchoCoder:
    """The engine's interface, with a code chosen from a hash of the answer (deterministic)."""

    scheme_name = "soc2000"
    threshold = 0.5

    def __init__(self) -> None:
        self.units = list(load_scheme("soc2000").units.items())
        self.calls: list[int] = []

    def code_many(self, titles, industries=None, descriptions=None, *, k=5):
        titles = list(titles)
        industries = list(industries) if industries is not None else [None] * len(titles)
        descriptions = list(descriptions) if descriptions is not None else [None] * len(titles)
        self.calls.append(len(titles))
        out = []
        for t, i, d in zip(titles, industries, descriptions):
            if t is None or not str(t).strip():
                out.append(Result(t or "", i, "soc2000", "uncodable", reason=Reason.EMPTY, description=d))
                continue
            h = zlib.crc32(f"{t}\x00{i}\x00{d}".encode("utf-8", "surrogatepass"))
            cands = tuple(Candidate(code, title, round(0.9 / (r + 1), 3), "exact", title)
                          for r, (code, title) in enumerate(self.units[h % 300:h % 300 + k]))
            out.append(Result(t, i, "soc2000", "auto" if h % 2 else "refer", cands,
                              Reason.NONE if h % 2 else Reason.LOW_CONFIDENCE, description=d))
        return out


@pytest.fixture(scope="module")
def echo():
    return EchoCoder()


def cells(*, nul: bool = True, control: bool = True, long: int = 0) -> st.SearchStrategy[str]:
    """Hostile text cells; ``long`` > 0 adds cells of that many characters."""
    blacklist = ["Cs"] if control else ["Cs", "Cc"]
    free = st.text(st.characters(blacklist_categories=blacklist), max_size=12)
    pool = [c for c in HOSTILE if control or not any(ch < " " or ch == "\x7f" for ch in c)]
    out = st.sampled_from(pool) | free
    if long:
        out = out | st.builds(lambda ch, n: ch * n, st.sampled_from("ab é"), st.just(long))
    if not nul:
        out = out.map(lambda s: s.replace("\x00", ""))
    return out


@st.composite
def tables(draw, *, names_blank: bool, nul: bool = True, control: bool = True, long: int = 0,
           trailing_space: bool = True) -> tuple[list[str], list[list[str]]]:
    """(column names, rows of text): a title column ``job`` and 0-3 or 40 more columns."""
    extra = draw(st.sampled_from([0, 1, 2, 3, 40]))
    names = ["job"] + [f"c{i}" for i in range(extra)]
    if names_blank and extra:
        blanks = draw(st.lists(st.integers(1, extra), max_size=2))
        names = [("" if i in blanks else n) for i, n in enumerate(names)]
    n_rows = draw(st.integers(0, 7))
    strat = cells(nul=nul, control=control, long=long)
    if not trailing_space:
        strat = strat.map(lambda s: s.rstrip(" "))
    rows = [[draw(strat) for _ in names] for _ in range(n_rows)]
    return names, rows


def header_names(names: list[str]) -> list[str]:
    """The names a reader gives blank header cells (pandas' ``Unnamed: N``)."""
    return [n or f"Unnamed: {i}" for i, n in enumerate(names)]


# --------------------------------------------------------------------------- writers


def write_text(path: Path, names: list[str], rows: list[list[str]]) -> None:
    sep = "," if path.suffix == ".csv" else "\t"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows(rows)


def write_xlsx(path: Path, names: list[str], rows: list[list[object]]) -> None:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("data")

    def cell(value: object) -> object:
        if isinstance(value, str):
            c = WriteOnlyCell(ws, value=value or None)
            c.data_type = "s"  # text, never a formula
            return c
        return value

    ws.append([cell(n) for n in names])
    for row in rows:
        ws.append([cell(v) for v in row])
    wb.save(path)


def frame_of(names: list[str], rows: list[list[object]], dtypes: list[str] | None = None) -> pd.DataFrame:
    cols = {}
    for j in range(len(names)):
        values = [r[j] for r in rows]
        cols[j] = pd.Series(values, dtype=(dtypes[j] if dtypes else object))
    df = pd.DataFrame(cols)
    df.columns = names
    return df


def write_typed(path: Path, df: pd.DataFrame) -> None:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".dta":
        df.to_stata(path, write_index=False, version=118)
    else:
        import pyreadstat

        pyreadstat.write_sav(df, str(path))


# --------------------------------------------------------------------------- reading outputs


def read_output(path: Path) -> tuple[list[str], list[list[object]]]:
    """(column names, rows) of a coded file, values as the format gives them back."""
    fmt = path.suffix[1:]
    if fmt in TEXT_FORMATS:
        df = pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                         na_filter=False, encoding="utf-8-sig")
    elif fmt == "xlsx":
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True)
        rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        wb.close()
        return [str(v) for v in rows[0]], rows[1:]
    elif fmt == "parquet":
        df = pd.read_parquet(path)
    elif fmt == "dta":
        df = pd.read_stata(path, convert_categoricals=False)
    else:
        import pyreadstat

        df = pyreadstat.read_sav(str(path), user_missing=True)[0]
    return [str(c) for c in df.columns], df.astype(object).to_numpy().tolist()


def missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def expected_text(value: str, fmt: str) -> str:
    """What an output format holds for input text ``value`` (see coder.batch.formats)."""
    if fmt in TEXT_FORMATS:
        return escape_formula(value)
    if fmt == "xlsx":  # XML reads a carriage return (or CR LF) as a line feed
        text = _ILLEGAL_EXCEL.sub("\ufffd", escape_formula(value))
        return text.replace("\r\n", "\n").replace("\r", "\n")
    if fmt == "dta":
        return value.replace("\x00", "\ufffd")
    if fmt == "sav":
        return value.replace("\x00", "\ufffd").rstrip(" ")
    return value


def assert_same(expected: object, got: object, fmt: str, where: str) -> None:
    if missing(expected) or (isinstance(expected, str) and expected == "" and fmt in ("xlsx", "dta", "sav")):
        assert missing(got) or got == "", where
    elif isinstance(expected, str):
        assert isinstance(got, str) and got == expected_text(expected, fmt), (where, expected[:40], got)
    else:  # a number
        value = float(got) if isinstance(got, str) else got
        assert value == pytest.approx(float(expected), rel=1e-12, abs=0), (where, expected, got)


def check_output(out: Path, names: list[str], rows: list[list[object]]) -> None:
    fmt = out.suffix[1:]
    got_names, got_rows = read_output(out)
    assert got_names == [*header_names(names), *ADDED]
    assert len(got_rows) == len(rows)
    for i, (want, got) in enumerate(zip(rows, got_rows)):
        for j, value in enumerate(want):
            assert_same(value, got[j], fmt, f"row {i}, column {got_names[j]!r}")
        assert got[len(want)] not in (None, "")  # every row was coded (or given the missing code)


def run(coder, src: Path, out: Path) -> None:
    code_file(src, out, "job", coder=coder, chunk_size=3, jobs=1)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@SETTINGS
@given(table=tables(names_blank=True, long=40_000), out_fmt=st.sampled_from(["csv", "parquet"]))
def test_text_inputs_round_trip(echo, fmt, table, out_fmt):
    names, rows = table
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / f"in.{fmt}", Path(d) / f"out.{out_fmt}"
        write_text(src, names, rows)
        run(echo, src, out)
        check_output(out, names, rows)


@SETTINGS
@given(table=tables(names_blank=True, control=False, long=30_000), out_fmt=st.sampled_from(["csv", "parquet"]),
       numbers=st.lists(st.integers(-10**6, 10**6), max_size=7))
def test_xlsx_input_round_trip(echo, table, out_fmt, numbers):
    names, rows = table
    # Number cells read as text the way a CSV export writes them; trailing blank rows are
    # formatting, not data, and are left out (a row of empty strings is blank in Excel).
    rows = [[(numbers[i] if j == len(r) - 1 and i < len(numbers) and len(r) > 1 else v)
             for j, v in enumerate(r)] for i, r in enumerate(rows)]
    while rows and all(v == "" for v in rows[-1]):
        rows.pop()
    expected = [[str(v) if isinstance(v, int) else v for v in r] for r in rows]
    kept = list(names)  # an unnamed column at the right with no data is formatting: left out
    while len(kept) > 1 and kept[-1] == "" and all(r[len(kept) - 1] == "" for r in expected):
        kept.pop()
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.xlsx", Path(d) / f"out.{out_fmt}"
        write_xlsx(src, names, rows)
        run(echo, src, out)
        check_output(out, kept, [r[:len(kept)] for r in expected])


@st.composite
def typed_tables(draw, fmt: str) -> tuple[list[str], list[list[object]], list[str]]:
    """Text columns (with missing values where the format has them) beside numbers."""
    names, rows = draw(tables(names_blank=False, nul=fmt == "parquet", long=5_000 if fmt != "sav" else 0,
                              trailing_space=fmt != "sav"))
    dtypes = ["object"] * len(names)
    if len(names) > 1:
        number = {"parquet": st.integers(-2**40, 2**40) | st.none(),
                  "dta": st.integers(-10**6, 10**6),
                  "sav": st.floats(-1e15, 1e15) | st.just(float("nan"))}[fmt]
        dtypes[-1] = {"parquet": "Int64", "dta": "int32", "sav": "float64"}[fmt]
        rows = [[*r[:-1], draw(number)] for r in rows]
        if fmt == "parquet":  # text can be missing too
            rows = [[None if v == "None" else v for v in r] for r in rows]
    return names, rows, dtypes


@pytest.mark.parametrize("fmt", ["parquet", "dta", "sav"])
@SETTINGS
@given(data=st.data(), out_fmt=st.sampled_from(["csv", "parquet"]))
def test_typed_inputs_round_trip(echo, fmt, data, out_fmt):
    names, rows, dtypes = data.draw(typed_tables(fmt))
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / f"in.{fmt}", Path(d) / f"out.{out_fmt}"
        write_typed(src, frame_of(names, rows, dtypes))
        run(echo, src, out)
        if fmt in ("dta", "sav"):  # strings there cannot be missing: empty instead
            rows = [[("" if v is None else v) for v in r] for r in rows]
        check_output(out, names, rows)


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@SETTINGS
@given(table=tables(names_blank=False, long=20_000), mixed=st.lists(
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False), st.booleans(), cells()),
    max_size=7))
def test_every_output_format_round_trip(echo, fmt, table, mixed):
    """Parquet input (text with missing values, and a column of mixed Python types written as
    text) to every output format."""
    names, rows = table
    if len(names) > 1:  # mixed types in one column: written to Parquet as their text
        rows = [[*r[:-1], str(mixed[i]) if i < len(mixed) else None] for i, r in enumerate(rows)]
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.parquet", Path(d) / f"out.{fmt}"
        frame_of(names, rows).to_parquet(src, index=False)
        too_long = fmt == "xlsx" and any(len(v or "") > 32_767 for r in rows for v in r)
        if too_long:
            with pytest.raises(InputError, match="Excel"):
                run(echo, src, out)
            assert not out.exists()
            return
        run(echo, src, out)
        check_output(out, names, rows)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_headerless_and_wide_columns_kept_everywhere(tmp_path, echo, fmt):
    """Columns without a header and a 300-column table keep every column, named as pandas names them."""
    names = ["job", "", "x", ""] + [f"w{i}" for i in range(296)]
    rows = [["nurse", "a", "", "b", *map(str, range(296))], ["", "", "", "d", *[""] * 296]]
    src = tmp_path / f"in.{'csv' if fmt == 'parquet' else fmt}"
    (write_xlsx if fmt == "xlsx" else write_text)(src, names, rows)
    out = tmp_path / f"out.{fmt}"
    run(echo, src, out)
    check_output(out, names, rows)


def test_row_wider_than_header_is_an_error_not_a_lost_column(tmp_path, echo):
    """pandas reads a first data row with an extra field as row labels: a column silently lost."""
    src = tmp_path / "in.csv"
    src.write_text("job,b\nnurse,1,extra\nteacher,2,more\n", encoding="utf-8")
    with pytest.raises(InputError, match="more fields than the header"):
        run(echo, src, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("fmt", ["dta", "sav"])
def test_names_stata_and_spss_cannot_hold_fail_before_coding(tmp_path, echo, fmt):
    src = tmp_path / "in.csv"
    src.write_text("job,job title\nnurse,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="'job title'"):
        run(echo, src, tmp_path / f"out.{fmt}")
    assert not list(tmp_path.glob(".out*")), "nothing was started"


def test_ten_megabyte_cells_in_text_and_parquet(tmp_path, echo):
    big = "cleaner " * 1_310_000
    for fmt in ("txt", "parquet"):
        names, rows = ["job", "note"], [[big, "0110"], ["nurse", big]]
        src = tmp_path / f"in.{fmt}"
        write_text(src, names, rows) if fmt == "txt" else frame_of(names, rows).to_parquet(src)
        out = tmp_path / f"out.{fmt}"
        run(echo, src, out)
        check_output(out, names, rows)


def test_chunk_of_unmatchable_titles_codes_without_crashing(tmp_path, small_coder):
    """A chunk whose new titles match no index title ("x", "qqqq") must not end the run (the
    engine raised IndexError on such a batch: candidates with no title rows)."""
    (tmp_path / "in.csv").write_text("job\nqqqq\nx\n", encoding="utf-8")
    code_file(tmp_path / "in.csv", tmp_path / "out.csv", "job", coder=small_coder, jobs=1)
    assert (tmp_path / "out.csv").exists()
