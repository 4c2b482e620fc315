"""Batch coding of files: `coder code`, `coder codebook`, `code_frame`, `code_file`.

Behaviour tests on the small model: rows and columns preserved (hostile cells, encodings,
every format), formula escaping, atomic output, resume, codebook, referral file, errors.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from coder import MISSING_CODE, InputError
from coder.batch import code_file, code_frame, count_codes, format_codebook, output_columns
from coder.batch.codebook import codebook_rows
from coder.batch.formats import escape_formula
from coder.batch.runner import state_path
from coder.cli import cli
from coder.schemes import load_scheme, soc90_codebook_counts

ADDED = output_columns("soc2000")  # no candidates column unless asked for
TITLES = ["staff nurse", "Care Assistant", "HGV driver", "teacher", "snr software dev", "cleaner",
          "accounts clerk", "sales assistant", "electrician", "chef"]
INDUSTRIES = ["NHS hospital", "care home", "", "primary school", "bank", "", "", "supermarket", "", "hotel"]


@pytest.fixture
def runner(small_model_dir):
    """Invoke ``coder ARGS...`` on the small model; returns the click Result."""

    def invoke(*args: object) -> object:
        argv = [str(a) for a in args]
        if argv[0] == "code":
            argv += ["--model-dir", str(small_model_dir)]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    return invoke


def read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)


def survey(n: int = 40) -> pd.DataFrame:
    """``n`` rows of repeated answers with an id and a column that must keep its zeros."""
    return pd.DataFrame({
        "id": [f"R{i:04d}" for i in range(n)],
        "job_title": [TITLES[i % len(TITLES)] for i in range(n)],
        "industry": [INDUSTRIES[i % len(INDUSTRIES)] for i in range(n)],
        "region": ["0110", "N/A"] * (n // 2),
    })


def assert_single_line_error(result: object, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


# --------------------------------------------------------------------------- code_frame


def test_code_frame_returns_new_frame_and_keeps_callers(small_coder):
    df = pd.DataFrame({"job": ["staff nurse", None, np.nan, "", "12345", "nurse"], "x": range(6)},
                      index=[5, 5, 7, 8, 9, 10])  # a duplicated index must not matter
    before = df.copy()
    out = code_frame(df, "job", coder=small_coder, k=3)
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns) == ["job", "x", *output_columns("soc2000", 3)]
    assert list(out.index) == list(df.index)
    assert (out["soc2000"].iloc[1:5] == MISSING_CODE).all()
    assert (out["status"].iloc[1:5] == "uncodable").all()
    assert all(out["reason"].iloc[1:5] != "")
    assert out["soc2000"].iloc[0] in load_scheme("soc2000").units
    assert out["candidates"].iloc[0].count("|") <= 2 and ":" in out["candidates"].iloc[0]
    assert out["soc2000"].iloc[0] == small_coder.code("staff nurse").code


def test_code_frame_errors_name_the_column(small_coder):
    df = pd.DataFrame({"job": ["nurse"], "status": ["x"]})
    with pytest.raises(InputError, match="'status'"):
        code_frame(df, "job", coder=small_coder)
    with pytest.raises(InputError, match="'title'"):
        code_frame(df, "title", coder=small_coder)


# --------------------------------------------------------------------------- rows survive


def test_hostile_rows_all_come_out_in_order(tmp_path, runner):
    big = "cleaner " * 1_310_000  # a 10 MB cell
    hostile = [
        "", "   ", "N/A", "None", "NaN", "12345", big, "line one\nline two", 'say "hello", ok',
        "nul\x00byte\x01\x02\x03\x04", "\x07\x08\x0b\x0c\x0e\x0f", "café owner", "staff nurse",
    ]
    df = pd.DataFrame({"id": [str(i) for i in range(len(hostile))], "job_title": hostile,
                       "note": ["0110"] * len(hostile)})
    src = tmp_path / "hostile.csv"
    df.to_csv(src, index=False)
    result = runner("code", src, "-o", tmp_path / "out.csv", "--column", "job_title", "--chunk-size", 4)
    assert result.exit_code == 0, result.output
    out = read_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(out[df.columns.tolist()], df)
    assert list(out.columns) == [*df.columns, *ADDED]
    codes = dict(zip(out["job_title"], zip(out["soc2000"], out["status"], out["reason"])))
    for value in ["", "   ", "N/A", "12345", big, "nul\x00byte\x01\x02\x03\x04", "\x07\x08\x0b\x0c\x0e\x0f"]:
        code, status, reason = codes[value]
        assert (code, status) == ("-9", "uncodable") and reason, (value[:20], reason)
    assert codes["staff nurse"][0] in load_scheme("soc2000").units
    assert not list(tmp_path.glob(".out.csv*")), "no partial or state files after success"


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8-sig", "mixed"])
def test_encodings_are_sniffed(tmp_path, runner, encoding):
    rows = ["job_title,employer", "café owner,Société Générale", "Gärtner,Müller GmbH", "nurse,NHS"]
    text = "\n".join(rows) + "\n"
    if encoding == "mixed":  # an export pasted together from a UTF-8 and a cp1252 file
        data = "\n".join(rows[:2]).encode("utf-8") + ("\n" + "\n".join(rows[2:]) + "\n").encode("cp1252")
    else:
        data = text.encode(encoding)
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    result = runner("code", src, "-o", tmp_path / "out.csv", "--column", "job_title")
    assert result.exit_code == 0, result.output
    out = read_csv(tmp_path / "out.csv")
    assert out["job_title"].tolist() == ["café owner", "Gärtner", "nurse"]
    assert out["employer"].tolist() == ["Société Générale", "Müller GmbH", "NHS"]
    assert (tmp_path / "out.csv").read_bytes().startswith(codecs.BOM_UTF8) == (encoding == "utf-8-sig")


def test_explicit_encoding_and_bad_encoding(tmp_path, runner):
    src = tmp_path / "in.csv"
    src.write_bytes("job_title\nwaiter \x80 tips\n".encode("latin-1"))
    assert runner("code", src, "-o", tmp_path / "a.csv", "--column", "job_title", "--encoding", "latin-1").exit_code == 0
    assert read_csv(tmp_path / "a.csv")["job_title"][0] == "waiter \x80 tips"
    assert_single_line_error(
        runner("code", src, "-o", tmp_path / "b.csv", "--column", "job_title", "--encoding", "utf-8"))
    assert_single_line_error(
        runner("code", src, "-o", tmp_path / "c.csv", "--column", "job_title", "--encoding", "klingon"), "klingon")
    assert not (tmp_path / "b.csv").exists()
    bom = tmp_path / "bom.csv"
    bom.write_bytes(codecs.BOM_UTF8 + "job_title\nnurse\n".encode())
    assert runner("code", bom, "-o", tmp_path / "d.csv", "--column", "job_title", "--encoding", "utf-8").exit_code == 0


# --------------------------------------------------------------------------- formats


def write_any(df: pd.DataFrame, path: Path) -> None:
    ext = path.suffix
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif ext == ".xlsx":
        df.to_excel(path, index=False)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    elif ext == ".dta":
        df.to_stata(path, write_index=False, version=118)
    elif ext == ".sav":
        import pyreadstat

        pyreadstat.write_sav(df, str(path), column_labels={"id": "Respondent"})


def read_any(path: Path) -> pd.DataFrame:
    ext = path.suffix
    if ext in (".csv", ".tsv"):
        return read_csv(path, "\t" if ext == ".tsv" else ",")
    if ext == ".xlsx":
        return pd.read_excel(path, dtype=str, keep_default_na=False, na_filter=False)
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext == ".dta":
        return pd.read_stata(path, convert_categoricals=False)
    import pyreadstat

    return pyreadstat.read_sav(str(path), user_missing=True)[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_model_dir):
    """The survey coded to CSV: what every other format must agree with."""
    d = tmp_path_factory.mktemp("ref")
    survey().to_csv(d / "in.csv", index=False)
    code_file(d / "in.csv", d / "out.csv", "job_title", industry_column="industry", model_dir=small_model_dir)
    return read_csv(d / "out.csv")


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".xlsx", ".parquet", ".dta", ".sav"])
def test_format_round_trip(tmp_path, runner, reference, ext):
    df = survey()
    src, dst = tmp_path / f"in{ext}", tmp_path / f"out{ext}"
    write_any(df, src)
    result = runner("code", src, "-o", dst, "--column", "job_title", "--industry-column", "industry",
                    "--chunk-size", 15)
    assert result.exit_code == 0, result.output
    out = read_any(dst)
    assert list(out.columns) == [*df.columns, *ADDED]
    for col in df.columns:
        assert out[col].astype(str).tolist() == df[col].tolist(), col
    codes = out["soc2000"].astype(float).astype(int).astype(str) if ext in (".dta", ".sav") else out["soc2000"]
    assert codes.tolist() == reference["soc2000"].tolist()
    assert out["status"].tolist() == reference["status"].tolist()
    assert np.allclose(out["confidence"].astype(float), reference["confidence"].astype(float))
    if ext == ".dta":
        with pd.io.stata.StataReader(dst) as reader:
            labels = reader.value_labels()["soc2000"]
            variable_labels = reader.variable_labels()
        assert labels[1111] == load_scheme("soc2000").units["1111"]
        assert labels[-9].startswith("uncodable")
        assert len(labels) == len(load_scheme("soc2000").units) + 1
        assert variable_labels["soc2000"].startswith("SOC2000")
        assert pd.api.types.is_integer_dtype(out["soc2000"])
    if ext == ".sav":
        import pyreadstat

        _, meta = pyreadstat.read_sav(str(dst), metadataonly=True, user_missing=True)
        labels = meta.variable_value_labels["soc2000"]
        assert labels[1111.0] == load_scheme("soc2000").units["1111"]
        assert labels[-9.0].startswith("uncodable")
        assert meta.missing_ranges["soc2000"] == [{"lo": -9.0, "hi": -9.0}]
        assert meta.column_names_to_labels["id"] == "Respondent"  # input labels carried over


def test_parquet_keeps_types_and_nulls(tmp_path, small_coder):
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "job": ["nurse", None, "chef"]})
    df.to_parquet(tmp_path / "in.parquet", index=False)
    code_file(tmp_path / "in.parquet", tmp_path / "out.parquet", "job", coder=small_coder, k=1)
    out = pd.read_parquet(tmp_path / "out.parquet", dtype_backend="pyarrow")
    assert str(out["n"].dtype) == "int64[pyarrow]" and out["n"].isna().tolist() == [False, True, False]
    assert out["soc2000"][1] == "-9" and out["reason"][1] == "missing value"
    assert "candidates" not in out  # --top-k 1


@pytest.mark.parametrize("ext", ["csv", "parquet", "dta"])
def test_header_only_input_gives_header_only_output(tmp_path, small_coder, ext):
    (tmp_path / "in.csv").write_text("id,job_title\n")
    summary = code_file(tmp_path / "in.csv", tmp_path / f"out.{ext}", "job_title", coder=small_coder,
                        codebook=tmp_path / "cb.txt")
    out = read_any(tmp_path / f"out.{ext}")
    assert summary.rows == 0 and len(out) == 0 and list(out.columns) == ["id", "job_title", *ADDED]
    assert "| total | 0 | 0.0% |" in (tmp_path / "cb.txt").read_text()


# --------------------------------------------------------------------------- formulas


def test_escape_formula_rules():
    assert escape_formula("=1+2") == "'=1+2"
    assert escape_formula("+44 7700 900123") == "'+44 7700 900123"
    assert escape_formula("@SUM(A1)") == "'@SUM(A1)"
    assert escape_formula("\tx") == "'\tx" and escape_formula("\rx") == "'\rx"
    assert escape_formula("- none -") == "'- none -"
    for number in ("-9", "-3.5", "+44", "1e5", "-0.25", "12"):
        assert escape_formula(number) == number
    assert escape_formula("nurse") == "nurse" and escape_formula("") == "" and escape_formula(3) == 3


def test_formulas_escaped_in_csv_and_excel_not_parquet(tmp_path, small_coder):
    titles = ["=HYPERLINK(\"http://x\")", "+44 7700 900123", "-9", "@cmd", "nurse", "-3.5"]
    pd.DataFrame({"job": titles, "other": ["=1+1"] * 6}).to_csv(tmp_path / "in.csv", index=False)
    for ext in ("csv", "xlsx", "parquet"):
        code_file(tmp_path / "in.csv", tmp_path / f"out.{ext}", "job", coder=small_coder, missing_code="-9")
    csv_out = read_csv(tmp_path / "out.csv")
    expected = ["'=HYPERLINK(\"http://x\")", "'+44 7700 900123", "-9", "'@cmd", "nurse", "-3.5"]
    assert csv_out["job"].tolist() == expected
    assert (csv_out["other"] == "'=1+1").all()
    assert csv_out.loc[csv_out["status"] == "uncodable", "soc2000"].eq("-9").all()  # -9 stays a number
    import openpyxl

    ws = openpyxl.load_workbook(tmp_path / "out.xlsx").active
    cells = [c for c in next(ws.iter_cols(min_col=1, max_col=1, min_row=2))]
    assert [c.value for c in cells] == expected
    assert all(c.data_type == "s" for c in cells)  # never stored as formulas
    assert pd.read_parquet(tmp_path / "out.parquet")["job"].tolist() == titles  # parquet untouched
    # Escaping the CSV output does not leak into a Parquet referral file of the same run.
    code_file(tmp_path / "in.csv", tmp_path / "again.csv", "job", coder=small_coder,
              refer=tmp_path / "refer.parquet")
    refer = pd.read_parquet(tmp_path / "refer.parquet")
    assert len(refer) and set(refer["job"]) <= set(titles) and (refer["other"] == "=1+1").all()


# --------------------------------------------------------------------------- atomic + resume


def fail_on_call(monkeypatch, n: int, exc: type[BaseException] = RuntimeError) -> None:
    """Make the n-th call that codes new titles raise ``exc``."""
    from coder.batch import runner as runner_module

    real = runner_module.LocalBackend.__call__
    calls = {"n": 0}

    def flaky(self, keys):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc("simulated crash")
        return real(self, keys)

    monkeypatch.setattr(runner_module.LocalBackend, "__call__", flaky)


def distinct_survey(n: int) -> pd.DataFrame:
    """Mostly distinct answers, so every chunk has new titles to code."""
    words = ["senior", "junior", "trainee", "assistant", "chief", "part time", "relief", "lead"]
    titles = [f"{words[i % len(words)]} {TITLES[(i // len(words)) % len(TITLES)]} {i}" for i in range(n)]
    return pd.DataFrame({"id": [str(i) for i in range(n)], "job_title": titles,
                         "industry": [INDUSTRIES[i % 10] for i in range(n)]})


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_crash_leaves_no_output_and_resume_matches(tmp_path, small_coder, monkeypatch, ext):
    distinct_survey(120).to_csv(tmp_path / "in.csv", index=False)
    kw = dict(industry_column="industry", chunk_size=25, coder=small_coder)
    full = tmp_path / f"full.{ext}"
    code_file(tmp_path / "in.csv", full, "job_title", codebook=tmp_path / "full.txt",
              refer=tmp_path / f"full_refer.{ext}", **kw)

    out = tmp_path / f"out.{ext}"
    with monkeypatch.context() as m:
        fail_on_call(m, 3)
        with pytest.raises(RuntimeError, match="simulated"):
            code_file(tmp_path / "in.csv", out, "job_title", codebook=tmp_path / "cb.txt",
                      refer=tmp_path / f"refer.{ext}", **kw)
    assert not out.exists() and not (tmp_path / "cb.txt").exists() and not (tmp_path / f"refer.{ext}").exists()
    state = json.loads(state_path(out).read_text())
    assert state["chunks"] == 2 and state["rows"] == 50
    assert [p.name for p in tmp_path.glob(f".out.{ext}.*")]  # the partial stays for --resume

    summary = code_file(tmp_path / "in.csv", out, "job_title", codebook=tmp_path / "cb.txt",
                        refer=tmp_path / f"refer.{ext}", resume=True, **kw)
    assert summary.resumed_from == 50 and summary.rows == 120
    assert out.read_bytes() == full.read_bytes() if ext == "csv" else \
        pd.read_parquet(out).equals(pd.read_parquet(full))
    assert (tmp_path / "cb.txt").read_text() == (tmp_path / "full.txt").read_text()
    assert read_any(tmp_path / f"refer.{ext}").equals(read_any(tmp_path / f"full_refer.{ext}"))
    assert not state_path(out).exists() and not list(tmp_path.glob(f".out.{ext}.*"))


def test_ctrl_c_keeps_partial_and_cli_resume(tmp_path, runner, monkeypatch):
    distinct_survey(60).to_csv(tmp_path / "in.csv", index=False)
    args = ["code", tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--column", "job_title",
            "--chunk-size", 20]
    with monkeypatch.context() as m:
        fail_on_call(m, 2, KeyboardInterrupt)
        result = runner(*args[:-2], "--chunk-size", 20, "--jobs", 1)  # without --quiet: the hint shows
    assert result.exit_code == 1 and "Aborted" in result.output  # click's handling of Ctrl-C
    assert "stopped after 20 rows" in result.output and "--resume" in result.output
    assert not (tmp_path / "out.csv").exists() and state_path(tmp_path / "out.csv").exists()
    # Resume refuses a changed option, then continues with the same ones.
    assert_single_line_error(runner(*args, "--resume", "--top-k", 3), "--top-k differs")
    assert runner(*args, "--resume").exit_code == 0
    assert runner(*args[:3], tmp_path / "again.csv", *args[4:]).exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()


def test_each_distinct_pair_coded_once_across_chunks(tmp_path, small_coder):
    survey(200).to_csv(tmp_path / "in.csv", index=False)
    summary = code_file(tmp_path / "in.csv", tmp_path / "out.csv", "job_title", industry_column="industry",
                        chunk_size=7, coder=small_coder)
    distinct = len(set(zip(survey(200)["job_title"], survey(200)["industry"])))
    assert summary.distinct_coded == distinct and summary.rows == 200


# --------------------------------------------------------------------------- codebook + referral


def test_codebook_counts_sum_to_rows_and_include_zeros(tmp_path, runner):
    src = tmp_path / "in.csv"
    df = survey(40)
    df.loc[[3, 7], "job_title"] = ["", "???"]
    df.to_csv(src, index=False)
    result = runner("code", src, "-o", tmp_path / "out.csv", "--column", "job_title",
                    "--codebook", tmp_path / "cb.txt", "--refer", tmp_path / "refer.csv")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "cb.txt").read_text()
    table, summary = text.split("\n\n")
    rows = [line.strip("|").split("|") for line in table.splitlines()[1:]]
    units = load_scheme("soc2000").units
    assert [r[0].strip() for r in rows] == [*units, "-9"]
    assert sum(int(r[2]) for r in rows) == 40
    assert sum(int(r[2]) == 0 for r in rows) > 300  # zero rows are listed
    assert rows[-1][1].strip() == "" and int(rows[-1][2]) >= 2
    assert rows[0][1].strip() == f"1111 {units['1111']}"
    status = {r.strip("|").split("|")[0].strip(): r for r in summary.splitlines()[1:]}
    assert set(status) == {"auto", "refer", "uncodable", "total"}
    assert "| total | 40 | 100.0% |" in summary

    # The codebook command gives the same table from the coded file, in any format.
    again = runner("codebook", tmp_path / "out.csv", "--scheme", "soc2000")
    assert again.exit_code == 0 and again.output == text
    counts, statuses, n, by_status = count_codes(tmp_path / "out.csv", "soc2000")
    assert n == 40 and sum(counts.values()) == 40 and sum(statuses.values()) == 40
    assert sum(by_status.values()) == 40

    refer = read_csv(tmp_path / "refer.csv")
    coded = read_csv(tmp_path / "out.csv")
    assert (refer["status"] == "refer").all()
    assert len(refer) == (coded["status"] == "refer").sum()
    assert refer["input_row"].astype(int).tolist() == [i + 1 for i in coded.index[coded["status"] == "refer"]]
    assert refer["id"].tolist() == coded.loc[coded["status"] == "refer", "id"].tolist()
    first = refer.iloc[0]
    assert first["candidates"].split("|")[0] == f"{first['soc2000']}:{float(first['confidence']):.3f}"
    assert first["candidate_titles"].startswith(f"{first['soc2000']} {units[first['soc2000']]}")


def test_codebook_from_stata_and_soc90_seed_shape(tmp_path, runner, small_coder):
    survey(20).to_csv(tmp_path / "in.csv", index=False)
    code_file(tmp_path / "in.csv", tmp_path / "out.dta", "job_title", coder=small_coder)
    result = runner("codebook", tmp_path / "out.dta", "-o", tmp_path / "cb.txt")
    assert result.exit_code == 0, result.output
    assert "| total | 20 | 100.0% |" in (tmp_path / "cb.txt").read_text()
    # A SOC90 codebook of the seed's own counts reproduces the seed's rows.
    seed = soc90_codebook_counts()
    rows = codebook_rows(seed, "soc90")
    assert [(v, n) for v, _, n in rows] == list(seed.items())
    assert ("100", "100 gen managers - national government", 0) in rows and rows[-1] == ("-9", "", 8700)
    assert format_codebook(seed, "soc90").splitlines()[-1] == "| -9 |  | 8700 |"


# --------------------------------------------------------------------------- errors


def test_user_errors_are_one_line_exit_2(tmp_path, runner):
    src = tmp_path / "in.csv"
    pd.DataFrame({"job_title": ["nurse"], "status": ["x"]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert_single_line_error(runner("code", src, "-o", out, "--column", "job_title"), "'status'")
    assert_single_line_error(runner("code", src, "-o", out, "--column", "job"), "'job'", "job_title")
    assert_single_line_error(runner("code", src, "-o", out, "--column", "job_title", "--industry-column", "ind"),
                             "'ind'")
    assert_single_line_error(runner("code", tmp_path / "nope.csv", "-o", out, "--column", "x"), "nope.csv")
    assert_single_line_error(runner("code", src, "-o", out, "--column", "job_title", "--scheme", "soc1066"),
                             "soc1066")
    assert_single_line_error(runner("code", src, "-o", tmp_path / "out.json", "--column", "job_title"), ".json")
    assert_single_line_error(runner("code", src, "-o", tmp_path / "no" / "out.csv", "--column", "job_title"),
                             "does not exist")
    assert_single_line_error(runner("code", src, "-o", src, "--column", "job_title"), "input file")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert_single_line_error(runner("code", tmp_path / "bad.parquet", "-o", out, "--column", "x"), "Parquet")
    assert_single_line_error(runner("codebook", tmp_path / "nope.csv"), "nope.csv")
    assert_single_line_error(runner("codebook", src), "'soc2000'")
    assert not out.exists()
