"""Crosswalks between schemes: weights, recoding a column, converting a codebook, the CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from decimal import Decimal

import pandas as pd
import pytest
from click.testing import CliRunner

from coder._paths import data_path
from coder.crosswalk import Crosswalk, Link, crosswalk_lookup, read_codebook, recode_file
from coder.crosswalk_commands import crosswalk as crosswalk_cmd
from coder.errors import InputError, UnknownSchemeError
from coder.index import IndexEntry
from coder.schemes import SCHEMES, load_scheme, soc90_codebook_counts

SEED = data_path("soc90_codebook_seed.txt")
PAIRS = [("soc90", "soc2000"), ("soc2000", "soc2020"), ("soc2020", "isco08")]


@pytest.fixture(scope="module")
def soc90_soc2000() -> Crosswalk:
    return Crosswalk.from_index("soc90", "soc2000")  # reads the index once; later pairs reuse it


def _entry(uid: str, **codes: str | None) -> IndexEntry:
    full = {s: codes.get(s) for s in SCHEMES}
    return IndexEntry(uid, int(uid), f"Title {uid}", f"Title {uid}", "", "", "", "", full)


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error")]


# ---------------------------------------------------------------------------- weights


@pytest.mark.parametrize("source,target", list(itertools.permutations(SCHEMES, 2)))
def test_weights_sum_to_one_for_every_source_code(source, target):
    xw = Crosswalk.from_index(source, target)
    units = load_scheme(source).units
    assert xw.source_codes, f"{source}->{target} has no weights"
    for code in units:
        links = xw.weights(code)
        if code in xw.report.codes_without_target:
            assert links == []
            continue
        assert links, code
        assert math.isclose(math.fsum(w for _, w, _ in links), 1.0, rel_tol=0, abs_tol=1e-12), code
        assert all(0 < w <= 1 for _, w, _ in links)
        # Deterministic order: weight descending, then code.
        assert [(-w, c) for c, w, _ in links] == sorted((-w, c) for c, w, _ in links)
        assert len({c for c, _, _ in links}) == len(links)


@pytest.mark.parametrize("source,target", PAIRS)
def test_report_counts_every_entry(source, target):
    r = Crosswalk.from_index(source, target).report
    assert r.entries == r.used + r.no_source_code + r.no_target_code + r.no_code
    assert r.left_out == r.entries - r.used
    assert r.no_code > 0  # the index's "}}}}" entries are left out, not silently dropped
    assert r.used > 30_000


def test_weights_are_shares_of_index_entries(soc90_soc2000):
    links = soc90_soc2000.weights("719")
    assert isinstance(links[0], Link) and links[0].code == "7129"
    assert soc90_soc2000.entries("719") == 156
    assert links[0].weight == pytest.approx(86 / 156)
    assert links[0].title == load_scheme("soc2000").title("7129")
    code, weight, title = links[1]  # unpacks as (target_code, weight, title)
    assert (code, weight) == ("7121", pytest.approx(15 / 156))
    assert soc90_soc2000.weights("100") == [Link("1111", 1.0, load_scheme("soc2000").title("1111"))]


def test_from_index_on_given_entries():
    entries = [
        _entry("1", soc90="719", soc2000="7129"),
        _entry("2", soc90="719", soc2000="7129"),
        _entry("3", soc90="719", soc2000="3542"),
        _entry("4", soc90="719", soc2000="1132"),
        _entry("5", soc90="719", soc2000=None),  # no target code: left out
        _entry("6", soc90=None, soc2000="7129"),  # no source code: left out
        _entry("7"),                                # no code at all
    ]
    xw = Crosswalk.from_index("soc90", "soc2000", entries=entries)
    assert [(c, w) for c, w, _ in xw.weights("719")] == [("7129", 0.5), ("1132", 0.25), ("3542", 0.25)]
    r = xw.report
    assert (r.entries, r.used, r.no_target_code, r.no_source_code, r.no_code) == (7, 4, 1, 1, 1)
    assert xw.weights("100") == [] and "100" in r.codes_without_target


def test_numeric_and_padded_codes_are_read_as_codes(soc90_soc2000):
    assert soc90_soc2000.weights(719) == soc90_soc2000.weights(" 719.0 ") == soc90_soc2000.weights("719")
    isco = Crosswalk.from_index("isco08", "soc2020")
    assert isco.weights(110) == isco.weights("0110") != []


@pytest.mark.parametrize("code", ["7199", "abc", "", None, "-9", float("nan"), 7.5])
def test_unknown_or_missing_code_is_an_input_error(soc90_soc2000, code):
    with pytest.raises(InputError, match="soc90"):
        soc90_soc2000.weights(code)


def test_unit_group_without_index_entries_has_no_weights(soc90_soc2000):
    assert "151" in load_scheme("soc90").units
    assert soc90_soc2000.weights("151") == [] and soc90_soc2000.entries("151") == 0
    assert "151" in soc90_soc2000.report.codes_without_target


def test_unknown_and_equal_schemes_are_errors():
    with pytest.raises(UnknownSchemeError, match="soc1066"):
        Crosswalk.from_index("soc1066", "soc2000")
    with pytest.raises(UnknownSchemeError, match="nope"):
        Crosswalk.from_index("soc90", "nope")
    with pytest.raises(InputError, match="both soc2000"):
        Crosswalk.from_index("SOC2000", "soc-2000")


# ---------------------------------------------------------------------------- recode


def test_recode_keeps_every_row_in_order(soc90_soc2000):
    values = ["719", "-9", "", None, float("nan"), pd.NA, "abc", "7199", "151", "100", 719, "-8", "719"]
    out = soc90_soc2000.recode(values)
    assert len(out) == len(values)
    assert [r.code for r in out] == ["7129", "-9", "-9", "-9", "-9", "-9", "-9", "-9", "-9", "1111", "7129",
                                     "-9", "7129"]
    reasons = [r.reason for r in out]
    assert reasons[0] == "" and reasons[9] == ""
    assert reasons[1] == "missing code -9" and reasons[11] == "missing code -8"
    assert reasons[2] == reasons[3] == reasons[4] == reasons[5] == "missing value"
    assert reasons[6] == reasons[7] == "not a soc90 unit group"
    assert reasons[8].startswith("no soc2000 code in the coding index")
    assert all(r.weight is None and r.missing for r in out if r.code == "-9")
    best = out[0]
    assert best.weight == pytest.approx(86 / 156) and not best.certain
    assert [a.code for a in best.alternatives] == [c for c, _, _ in soc90_soc2000.weights("719")[1:]]
    assert out[9].certain and out[9].alternatives == ()
    assert out[0].to_dict()["alternatives"][0]["code"] == "7121"
    assert soc90_soc2000.recode(["-9"], missing_code="-1")[0].code == "-1"


def test_recode_frame_leaves_the_input_alone(soc90_soc2000):
    df = pd.DataFrame({"id": ["a", "b", "c"], "soc90": ["100", "-9", "719"]})
    before = df.copy()
    out = soc90_soc2000.recode_frame(df, "soc90")
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns) == ["id", "soc90", "soc2000", "soc2000_title", "soc2000_weight",
                                 "soc2000_alternatives", "soc2000_reason"]
    assert out["soc2000"].tolist() == ["1111", "-9", "7129"]
    assert out["soc2000_weight"].iloc[0] == 1.0 and pd.isna(out["soc2000_weight"].iloc[1])
    assert out["soc2000_alternatives"].iloc[2].startswith("7121:0.096|")
    with pytest.raises(InputError, match="no column 'job'"):
        soc90_soc2000.recode_frame(df, "job")
    with pytest.raises(InputError, match="already has"):
        soc90_soc2000.recode_frame(out, "soc90")


# ---------------------------------------------------------------------------- codebook


def test_seed_codebook_conversion_keeps_the_total(soc90_soc2000):
    rows = read_codebook(SEED)
    total = sum(int(c) for _, _, c in rows)
    assert total == sum(soc90_codebook_counts().values())
    conv = soc90_soc2000.convert_codebook(rows)
    assert conv.total == total
    assert math.fsum(r.count for r in conv.rows) == total
    assert math.fsum(r.expected for r in conv.rows) == pytest.approx(total)
    assert conv.certain + conv.split + conv.unmapped + conv.missing == total
    assert conv.missing == soc90_codebook_counts()["-9"] and conv.rows[-1].value == "-9"
    assert conv.rows[-1].count == conv.missing + conv.unmapped
    assert [r.value for r in conv.rows[:-1]] == list(load_scheme("soc2000").units)
    assert 0 < conv.share("certain") < 1 and conv.share("certain") + conv.share("split") == pytest.approx(1)
    # The same from the {code: count} mapping, and in whole numbers.
    whole = soc90_soc2000.convert_codebook(soc90_codebook_counts(), decimals=0)
    assert sum(r.count for r in whole.rows) == total and all(r.count == int(r.count) for r in whole.rows)
    assert (whole.certain, whole.split) == (conv.certain, conv.split)


def test_codebook_conversion_shares_counts_out_by_weight(soc90_soc2000):
    conv = soc90_soc2000.convert_codebook({"719": 156, "100": 3, "-9": 5}, decimals=4)
    by = {r.value: r for r in conv.rows}
    assert by["7129"].count == 86 and by["7121"].count == 15
    assert by["1111"].count == 3 and by["1111"].certain == 3 and by["7129"].certain == 0
    assert (conv.certain, conv.split, conv.missing, conv.total) == (3, 156, 5, 164)


def test_codebook_unmapped_codes_are_carried_as_missing(soc90_soc2000):
    conv = soc90_soc2000.convert_codebook([("151", "x", "2"), ("9999", "bad", "3"), ("100", "", "1.5"),
                                           ("-9", "", "4"), ("-8", "", "1")])
    assert conv.unmapped == 5 and conv.unmapped_codes == ("151", "9999")
    assert conv.missing == 5 and conv.total == 11.5
    assert conv.rows[-1].count == 10 and math.fsum(r.count for r in conv.rows) == 11.5
    assert "had no soc2000 code (151, 9999)" in conv.summary()


@pytest.mark.parametrize("table,match", [
    ({"100": -1}, "negative"),
    ({"100": "many"}, "not a number"),
    ([("100", "a", "1"), ("100", "b", "2")], "listed twice"),
])
def test_bad_codebook_counts_are_input_errors(soc90_soc2000, table, match):
    with pytest.raises(InputError, match=match):
        soc90_soc2000.convert_codebook(table)


def test_written_codebook_adds_up_exactly(soc90_soc2000, tmp_path):
    conv = soc90_soc2000.convert_codebook(read_codebook(SEED))
    txt, table = tmp_path / "soc2000.txt", tmp_path / "soc2000.csv"
    conv.write(txt)
    conv.write(table)
    rows = read_codebook(txt)  # the written text reads back in the seed's layout
    assert sum(Decimal(c) for _, _, c in rows) == conv.total
    assert txt.read_text().startswith("| value | label | count |\n| 1111 | 1111 Senior officials")
    frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["value", "label", "count", "certain", "split"]
    assert sum(Decimal(c) for c in frame["count"]) == conv.total
    with pytest.raises(InputError, match=".txt, .md or .csv"):
        conv.write(tmp_path / "soc2000.xlsx")


def test_read_codebook_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    with pytest.raises(InputError, match="no value rows"):
        read_codebook(empty)
    with pytest.raises(InputError, match="no such file"):
        read_codebook(tmp_path / "absent.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("code,n\n100,1\n")
    with pytest.raises(InputError, match="value and count"):
        read_codebook(bad)


# ---------------------------------------------------------------------------- files and API


def test_recode_file_keeps_rows_and_columns(soc90_soc2000, tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("id\tsoc90\tnote\n1\t719\tN/A\n2\t-9\t\n3\t\tNone\n4\tabc\tx\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    s = recode_file(soc90_soc2000, src, out, column="soc90")
    assert (s.rows, s.split, s.missing, s.not_recoded) == (4, 1, 2, 1)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame[["id", "soc90", "note"]].values.tolist() == [["1", "719", "N/A"], ["2", "-9", ""],
                                                             ["3", "", "None"], ["4", "abc", "x"]]
    assert frame["soc2000"].tolist() == ["7129", "-9", "-9", "-9"]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_lookup_for_the_api():
    payload = crosswalk_lookup("soc90", "soc2000", ["719", "7199", "151"])
    assert payload["from"] == "soc90" and payload["to"] == "soc2000"
    first, bad, empty = payload["codes"]
    assert first["entries"] == 156 and first["targets"][0] == {
        "code": "7129", "weight": pytest.approx(86 / 156), "title": load_scheme("soc2000").title("7129"),
        "entries": 86}
    assert bad["targets"] == [] and bad["reason"] == "not a soc90 unit group"
    assert empty["targets"] == [] and empty["reason"].startswith("no soc2000 code")
    json.dumps(payload)


# ---------------------------------------------------------------------------- CLI


def test_cli_prints_weights_for_codes():
    result = CliRunner().invoke(crosswalk_cmd, ["--from", "soc90", "--to", "soc2000", "719", "100"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("soc90 719 ") and lines[0].endswith("-> soc2000 (156 index entries)")
    assert lines[1].split()[:3] == ["code", "weight", "entries"]
    assert lines[2].split()[:3] == ["7129", "0.551", "86"]
    assert "  1111  1.000   47 " in result.output


def test_cli_json():
    result = CliRunner().invoke(crosswalk_cmd, ["--from", "soc2020", "--to", "isco08", "1111", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    weights = [t["weight"] for t in payload["codes"][0]["targets"]]
    assert math.fsum(weights) == pytest.approx(1)


def test_cli_recodes_a_file(tmp_path):
    src = tmp_path / "answers.csv"
    src.write_text("id,old_code,comment\n1,719,=SUM(A1)\n2,-9,\n3,,blank\n4,7199,typo\n5,100,\n",
                   encoding="utf-8")
    out = tmp_path / "recoded.csv"
    result = CliRunner().invoke(crosswalk_cmd, ["--from", "soc90", "--to", "soc2000", str(src),
                                                "--column", "old_code", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "recoded 5 rows" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["old_code"] for r in rows] == ["719", "-9", "", "7199", "100"]
    assert [r["soc2000"] for r in rows] == ["7129", "-9", "-9", "-9", "1111"]
    assert [r["soc2000_weight"] for r in rows] == ["0.551", "", "", "", "1"]
    assert rows[0]["soc2000_alternatives"].startswith("7121:0.096|3542:0.051")
    assert [r["soc2000_reason"] for r in rows[1:4]] == ["missing code -9", "missing value",
                                                        "not a soc90 unit group"]
    assert rows[0]["comment"] == "'=SUM(A1)"  # spreadsheet formulas escaped, as in `coder code`


def test_cli_converts_the_seed_codebook(tmp_path):
    out = tmp_path / "soc2000_codebook.txt"
    result = CliRunner().invoke(crosswalk_cmd, ["--codebook", str(SEED), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "total 8842 kept" in result.output and "moved with certainty" in result.output
    assert "were split" in result.output
    assert sum(Decimal(c) for _, _, c in read_codebook(out)) == 8842
    csv_out = tmp_path / "soc2000_codebook.csv"
    result = CliRunner().invoke(crosswalk_cmd, ["--codebook", str(SEED), "-o", str(csv_out), "--decimals", "0"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(csv_out, dtype=str, keep_default_na=False)
    assert sum(int(c) for c in frame["count"]) == 8842 and frame["value"].iloc[-1] == "-9"


@pytest.mark.parametrize("args,needle", [
    (["--from", "soc1066", "719"], "soc1066"),
    (["--from", "soc90", "--to", "nope", "719"], "nope"),
    (["--from", "soc90", "--to", "soc90", "719"], "both soc90"),
    (["7199"], "'7199': not a soc90 unit group"),
    (["--", "-9"], "missing code -9"),  # after --: click reads -9 as an option
    ([], "give CODE"),
    (["719", "-o", "x.csv"], "-o is for"),
    (["--codebook", "absent.txt"], "no such file"),
])
def test_cli_errors_are_one_line_exit_2(args, needle):
    result = CliRunner().invoke(crosswalk_cmd, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = _error_lines(result)
    assert len(errors) == 1 and needle in errors[0], result.output


def test_cli_file_errors(tmp_path):
    src = tmp_path / "answers.csv"
    src.write_text("id,soc90,soc2000\n1,719,x\n", encoding="utf-8")
    runner = CliRunner()
    cases = [
        ([str(src)], "is a file"),
        ([str(src), "--column", "code", "-o", str(tmp_path / "o.csv")], "no column 'code'"),
        ([str(src), "--column", "soc90", "-o", str(tmp_path / "o.csv")], "already has column(s) soc2000"),
        ([str(src), "--column", "soc90"], "needs -o"),
        ([str(src), "--column", "soc90", "-o", str(src)], "overwrite the input"),
        ([str(src), "--column", "soc90", "-o", str(tmp_path / "o.xlsx")], ".csv, .tsv or .txt"),
    ]
    for args, needle in cases:
        result = runner.invoke(crosswalk_cmd, args)
        assert result.exit_code == 2, (args, result.output)
        errors = _error_lines(result)
        assert len(errors) == 1 and needle in errors[0], (args, result.output)
    assert not (tmp_path / "o.csv").exists()
