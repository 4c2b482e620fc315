"""Defects found by new users in batch coding (issue 14), one test (or more) each.

1. the codebook format follows the file extension;
2. an .xlsx column with data but no header is kept;
3. encodings: BOMs and UTF-16 without one detected, fallbacks counted and reported,
   ``--encoding`` settles it;
9. the ``candidates`` column is opt-in for files, and stays in the referral file;
10. resume state is data (JSON, Parquet or CSV parts), never a pickle.
"""

from __future__ import annotations

import codecs
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from coder import InputError
from coder.batch import code_file, output_columns
from coder.batch import formats as formats_module
from coder.batch import runner as runner_module
from coder.batch.runner import state_path
from coder.cli import cli
from coder.schemes import load_scheme

TITLES = ["staff nurse", "Care Assistant", "HGV driver", "teacher", "manager", "cleaner",
          "accounts clerk", "sales assistant", "electrician", "chef", "", "N/A"]


def survey(n: int = 36) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"R{i:03d}" for i in range(n)],
                         "job_title": [TITLES[i % len(TITLES)] for i in range(n)],
                         "industry": ["hospital", "", "school", "shop"] * (n // 4)})


def read_csv(path, sep=","):
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)


@pytest.fixture(scope="module")
def coded(tmp_path_factory, small_coder):
    """A survey coded once, with every codebook format written from the same run."""
    d = tmp_path_factory.mktemp("cb")
    survey().to_csv(d / "in.csv", index=False)
    books = {}
    for ext in ("csv", "tsv", "xlsx", "txt", "md"):
        out = d / f"out_{ext}.csv"
        code_file(d / "in.csv", out, "job_title", industry_column="industry", coder=small_coder,
                  codebook=d / f"codebook.{ext}", chunk_size=10)
        books[ext] = d / f"codebook.{ext}"
    return read_csv(d / "out_csv.csv"), books


# --------------------------------------------------------------------------- item 1: codebook


@pytest.mark.parametrize("ext", ["csv", "tsv", "xlsx"])
def test_codebook_is_a_real_table_for_csv_tsv_xlsx(coded, ext):
    out, books = coded
    path = books[ext]
    if ext == "xlsx":
        table = pd.read_excel(path, sheet_name="codebook", dtype={"value": str, "label": str})
        status = pd.read_excel(path, sheet_name="status")
        assert status["status"].tolist() == ["auto", "refer", "uncodable", "total"]
        assert status["count"].tolist()[-1] == len(out)
    else:
        table = pd.read_csv(path, sep="," if ext == "csv" else "\t", dtype={"value": str, "label": str},
                            keep_default_na=False, na_values={"auto_share": [""], "refer_share": [""]})
    assert list(table.columns) == ["value", "label", "count", "auto", "refer", "auto_share", "refer_share"]
    units = load_scheme("soc2000").units
    assert table["value"].tolist() == [*units, "-9"]  # every unit group, zeros included, then missing
    assert table["count"].sum() == len(out)
    for status in ("auto", "refer"):
        per_code = out[out["status"] == status]["soc2000"].value_counts()
        got = table.set_index("value")[status]
        assert all(got[c] == n for c, n in per_code.items())
        assert table[status].sum() == (out["status"] == status).sum()
    used = table[table["count"] > 0]
    assert ((used["auto_share"] - used["auto"] / used["count"]).abs() < 1e-4).all()
    assert table.loc[table["count"] == 0, "auto_share"].isna().all()  # no rows: no share
    missing = table.iloc[-1]
    assert missing["value"] == "-9" and missing["count"] == (out["status"] == "uncodable").sum()


@pytest.mark.parametrize("ext", ["txt", "md"])
def test_codebook_text_layout_for_txt_md(coded, ext):
    out, books = coded
    lines = books[ext].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "| value | label | count |"
    body = lines[2:] if ext == "md" else lines[1:]
    if ext == "md":
        assert lines[1].startswith("|---")
    first = body[0]
    units = load_scheme("soc2000").units
    assert first == f"| 1111 | 1111 {units['1111']} | {(out['soc2000'] == '1111').sum()} |"
    assert f"| total | {len(out)} | 100.0% |" in lines


def test_codebook_with_another_extension_fails_before_coding(tmp_path, small_coder):
    survey().to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match=r"\.json"):
        code_file(tmp_path / "in.csv", tmp_path / "out.csv", "job_title", coder=small_coder,
                  codebook=tmp_path / "codebook.json")
    assert not list(tmp_path.glob("*out*")) and not list(tmp_path.glob(".*"))


def test_codebook_command_writes_a_table_for_csv(tmp_path, small_coder):
    survey().to_csv(tmp_path / "in.csv", index=False)
    code_file(tmp_path / "in.csv", tmp_path / "out.dta", "job_title", coder=small_coder)
    result = CliRunner().invoke(cli, ["codebook", str(tmp_path / "out.dta"), "-o", str(tmp_path / "cb.csv")])
    assert result.exit_code == 0, result.output
    table = read_csv(tmp_path / "cb.csv")
    assert table.columns[:3].tolist() == ["value", "label", "count"]
    assert table["count"].astype(int).sum() == 36
    bad = CliRunner().invoke(cli, ["codebook", str(tmp_path / "out.dta"), "-o", str(tmp_path / "cb.json")])
    assert bad.exit_code == 2 and ".json" in bad.output


# --------------------------------------------------------------------------- item 2: xlsx headers


def test_xlsx_column_with_data_but_no_header_is_kept(tmp_path, small_coder):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["job_title", None, "note", None])
    ws.append(["nurse", "kept 1", "a", "kept 2"])
    ws.append(["teacher", None, "b", None])
    ws["H20"].number_format = "0.00"  # formatting far to the right and below: not data
    wb.save(tmp_path / "in.xlsx")
    code_file(tmp_path / "in.xlsx", tmp_path / "out.csv", "job_title", coder=small_coder)
    out = read_csv(tmp_path / "out.csv")
    assert out.columns[:4].tolist() == ["job_title", "Unnamed: 1", "note", "Unnamed: 3"]
    assert out["Unnamed: 1"].tolist() == ["kept 1", ""] and out["Unnamed: 3"].tolist() == ["kept 2", ""]
    assert len(out) == 2


def test_xlsx_without_recorded_size_keeps_unnamed_columns(tmp_path, small_coder):
    """Write-only workbooks record no sheet size: rows are read to find the widest."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("s")
    ws.append(["job_title", "x"])
    ws.append(["nurse", "1"])
    ws.append(["chef", "2", None, "far right"])
    ws.append(["baker", 0])  # a row of zeros is data, not blank
    wb.save(tmp_path / "in.xlsx")
    code_file(tmp_path / "in.xlsx", tmp_path / "out.parquet", "job_title", coder=small_coder)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out.columns[:4].tolist() == ["job_title", "x", "Unnamed: 2", "Unnamed: 3"]
    assert out["Unnamed: 3"].tolist() == ["", "far right", ""] and out["x"].tolist() == ["1", "2", "0"]


def test_xlsx_duplicate_headers_are_told_apart(tmp_path, small_coder):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["job_title", "a", "a"])
    wb.active.append(["nurse", "1", "2"])
    wb.save(tmp_path / "in.xlsx")
    code_file(tmp_path / "in.xlsx", tmp_path / "out.csv", "job_title", coder=small_coder)
    out = read_csv(tmp_path / "out.csv")
    assert out.columns[:3].tolist() == ["job_title", "a", "a.1"] and out.iloc[0, 1:3].tolist() == ["1", "2"]


# --------------------------------------------------------------------------- item 3: encodings

ROWS = ["job_title,employer", "café owner,Société Générale", "Gärtner,Müller GmbH", "nurse,NHS"]


def code_bytes(tmp_path, small_coder, data: bytes, **kw):
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    messages: list[str] = []
    summary = code_file(src, tmp_path / "out.csv", "job_title", coder=small_coder, log=messages.append, **kw)
    return read_csv(tmp_path / "out.csv"), summary, messages


@pytest.mark.parametrize("codec, bom, name", [
    ("utf-8", codecs.BOM_UTF8, "UTF-8"), ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16 LE"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16 BE"), ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32 LE"),
    ("utf-32-be", codecs.BOM_UTF32_BE, "UTF-32 BE"),
])
def test_byte_order_marks_decide_the_encoding(tmp_path, small_coder, codec, bom, name):
    text = "\r\n".join(ROWS) + "\r\n"
    out, summary, messages = code_bytes(tmp_path, small_coder, bom + text.encode(codec))
    assert out["job_title"].tolist() == ["café owner", "Gärtner", "nurse"]
    assert out["employer"].tolist() == ["Société Générale", "Müller GmbH", "NHS"]
    assert summary.encoding.startswith(f"{name} (byte-order mark") and summary.fallback_cells == 0
    assert any(name in m for m in messages)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_detected(tmp_path, small_coder, codec):
    """Without detection every other byte is NUL: the file read as garbage, or not at all."""
    out, summary, _ = code_bytes(tmp_path, small_coder, ("\n".join(ROWS) + "\n").encode(codec))
    assert out["employer"].tolist() == ["Société Générale", "Müller GmbH", "NHS"]
    assert summary.encoding.startswith(codec.upper().replace("-LE", " LE").replace("-BE", " BE"))


def test_cells_needing_the_fallback_are_counted_and_reported(tmp_path, small_coder):
    """A Latin-2 export read as UTF-8: the cp1252 fallback is not silent."""
    rows = ["job_title,town", "kierowca,Łódź", "nurse,Leeds", "nauczyciel,Kraków Śródmieście", "chef,Bath"]
    data = ("\n".join(rows) + "\n").encode("iso-8859-2")
    out, summary, messages = code_bytes(tmp_path, small_coder, data)
    assert summary.fallback_cells == 2
    warning = [m for m in messages if m.startswith("warning:")]
    assert warning and "2 cells" in warning[0] and "row 1" in warning[0] and "'town'" in warning[0]
    assert "--encoding" in warning[0]
    assert out["town"].tolist()[1::2] == ["Leeds", "Bath"]  # untouched cells stay as they were
    # --encoding settles it, strictly and without a fallback.
    out, summary, messages = code_bytes(tmp_path, small_coder, data, encoding="iso-8859-2")
    assert out["town"].tolist() == ["Łódź", "Leeds", "Kraków Śródmieście", "Bath"]
    assert summary.fallback_cells == 0 and not [m for m in messages if m.startswith("warning:")]
    assert summary.encoding == "iso-8859-2 (--encoding)"


def test_valid_utf8_cells_are_never_changed_next_to_fallback_cells(tmp_path, small_coder):
    """Only the cell with the bad byte falls back: "Ã©" (valid UTF-8) stays "Ã©"."""
    data = "job_title,x\nnurse,Ã© ok\n".encode("utf-8") + b"chef,caf\xe9\n"
    out, summary, _ = code_bytes(tmp_path, small_coder, data)
    assert out["x"].tolist() == ["Ã© ok", "café"] and summary.fallback_cells == 1


def test_mac_roman_needs_encoding(tmp_path, small_coder):
    data = "job_title\ncafé owner\n".encode("mac-roman")
    out, summary, _ = code_bytes(tmp_path, small_coder, data)
    assert summary.fallback_cells == 1 and out["job_title"][0] != "café owner"  # guessed, and said so
    out, _, _ = code_bytes(tmp_path, small_coder, data, encoding="mac-roman")
    assert out["job_title"][0] == "café owner"


def test_fallback_in_the_header_is_reported(tmp_path, small_coder):
    data = b"job_title,caf\xe9\nnurse,x\n"
    out, summary, messages = code_bytes(tmp_path, small_coder, data)
    assert "café" in out.columns and summary.fallback_cells == 1
    assert any(m.startswith("warning:") and "the header" in m for m in messages)


def test_cli_says_which_encoding_it_used(tmp_path, small_model_dir):
    src = tmp_path / "in.csv"
    src.write_bytes(codecs.BOM_UTF16_LE + "job_title\nnurse\n".encode("utf-16-le"))
    result = CliRunner().invoke(cli, ["code", str(src), "-o", str(tmp_path / "out.csv"), "--column",
                                      "job_title", "--model-dir", str(small_model_dir)])
    assert result.exit_code == 0, result.output
    assert "as UTF-16 LE (byte-order mark)" in result.output


# --------------------------------------------------------------------------- item 9: candidates opt-in


def test_candidates_column_only_on_request(tmp_path, small_model_dir):
    survey().to_csv(tmp_path / "in.csv", index=False)

    def run(name, *flags):
        result = CliRunner().invoke(cli, ["code", str(tmp_path / "in.csv"), "-o", str(tmp_path / name),
                                          "--column", "job_title", "--model-dir", str(small_model_dir),
                                          "--quiet", *flags])
        assert result.exit_code == 0, result.output
        return read_csv(tmp_path / name)

    plain = run("plain.csv", "--refer", str(tmp_path / "refer.csv"))
    assert "candidates" not in plain.columns
    assert list(plain.columns) == ["id", "job_title", "industry", *output_columns("soc2000")]
    assert "candidates" not in run("k1.csv", "--top-k", "1").columns
    three = run("k3.csv", "--top-k", "3")
    assert three["candidates"].str.count(r"\|").max() == 2
    five = run("flag.csv", "--candidates")
    assert five["candidates"].str.count(r"\|").max() == 4
    one = run("flag1.csv", "--candidates", "--top-k", "1")
    assert "candidates" in one.columns and not one["candidates"].str.contains(r"\|").any()
    # The referral file keeps the candidates (with titles) although the output has none.
    refer = read_csv(tmp_path / "refer.csv")
    assert len(refer) and (refer["candidates"] != "").all() and (refer["candidate_titles"] != "").all()
    assert refer.columns[-2:].tolist() == ["candidates", "candidate_titles"]
    assert (plain.drop(columns=[]).iloc[:, :10] == three.iloc[:, :10]).all().all()  # same coding


# --------------------------------------------------------------------------- item 10: resume state


def interrupt(monkeypatch, at: int) -> None:
    real = runner_module.LocalBackend.__call__
    calls = {"n": 0}

    def flaky(self, keys):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real(self, keys)

    monkeypatch.setattr(runner_module.LocalBackend, "__call__", flaky)


@pytest.mark.parametrize("parts", ["parquet", "csv"])
@pytest.mark.parametrize("ext", ["xlsx", "dta"])
def test_resume_parts_are_data_files_not_pickles(tmp_path, small_coder, monkeypatch, parts, ext):
    df = survey(60)
    df["job_title"] = [f"{t} {i}" for i, t in enumerate(df["job_title"])]  # new titles in every chunk
    df.to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setattr(formats_module, "part_format", lambda: parts)  # csv: as without pyarrow
    out = tmp_path / f"out.{ext}"
    kw = dict(coder=small_coder, chunk_size=15, refer=tmp_path / f"refer.{ext}")
    with monkeypatch.context() as m:
        interrupt(m, 3)
        with pytest.raises(KeyboardInterrupt):
            code_file(tmp_path / "in.csv", out, "job_title", **kw)
    state = json.loads(state_path(out).read_text())  # JSON
    assert state["output"]["part_format"] == parts
    files = sorted((tmp_path / f".out.{ext}.parts").iterdir())
    assert [f.suffix for f in files if f.suffix != ".json"] == [f".{parts}"] * 2
    for f in files:
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} is a pickle"
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            assert pq.read_table(f).num_rows == 15
        elif f.suffix == ".csv":
            assert len(f.read_text(encoding="utf-8").splitlines()) == 15
    code_file(tmp_path / "in.csv", out, "job_title", resume=True, **kw)
    code_file(tmp_path / "in.csv", tmp_path / f"ref.{ext}", "job_title", coder=small_coder, chunk_size=15)
    read = (lambda p: pd.read_excel(p, dtype=str, keep_default_na=False)) if ext == "xlsx" else pd.read_stata
    pd.testing.assert_frame_equal(read(out), read(tmp_path / f"ref.{ext}"))


def test_parts_in_csv_keep_types_and_text_exactly(tmp_path):
    """Without pyarrow: text such as "", "1", "NaN" stays text; numbers and missing stay themselves."""
    frame = pd.DataFrame({
        "text": pd.Series(["", "1", "NaN", None, "a\r\nb", "\x00x", '"q"', "=1"], dtype=object),
        "i8": pd.Series([1, -2, 3, 4, 5, 6, 7, 8], dtype="int8"),
        "f": [0.1, float("nan"), 1e300, -0.0, 2.5, 3.0, 1 / 3, 7.0],
        "mixed": pd.Series([1, "1", 1.5, True, None, "x", 2, "y"], dtype=object),
        "n": pd.array([1, None, 3, 4, 5, 6, 7, 8], dtype="Int64"),
    })
    path = tmp_path / "part-000000.csv"
    formats_module._write_csv_part(frame, path)
    back = formats_module._read_csv_part(path)
    assert back["text"].tolist() == ["", "1", "NaN", None, "a\r\nb", "\x00x", '"q"', "=1"]
    assert back["mixed"].tolist() == [1, "1", 1.5, True, None, "x", 2, "y"]
    assert str(back["i8"].dtype) == "int8" and back["i8"].tolist() == frame["i8"].tolist()
    assert back["f"].equals(frame["f"]) and back["n"].equals(frame["n"])


def test_batch_docs_say_which_files_are_safe_to_load():
    doc = runner_module.__doc__
    assert "model.joblib" in doc and "pickle" in doc and "safe to open" in doc
    assert "never unpickled" in formats_module.PartsSink.__doc__
