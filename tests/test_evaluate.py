"""coder.evaluate: metrics on tiny hand-made frames with known answers, and `coder evaluate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.errors import InputError, Reason
from coder.evaluate import (
    MIN_THRESHOLD_ROWS,
    accepted_codes,
    accuracy_by_level,
    confusions,
    evaluate_frame,
    expected_calibration_error,
    format_report,
    precision_coverage,
    predict,
    read_gold,
    reliability_bins,
    score,
    threshold_for_precision,
)
from coder.results import Candidate, Result

# ------------------------------------------------------------------------------ metrics
GOLD = ["4112", "4112", "2132", "9233", "1163"]
CANDS = [
    ("4112", "4113"),  # right
    ("4113", "4112"),  # same minor (411), right at top-2
    ("2131", "2132"),  # same minor (213), right at top-2
    ("8211",),         # wrong everywhere
    (),                # uncodable: wrong everywhere
]


def test_accuracy_by_level_counts_every_level():
    acc = accuracy_by_level(GOLD, CANDS, "soc2000", k=5)
    assert list(acc) == ["unit", "minor", "sub_major", "major"]
    assert acc["unit"] == {"top1": 1 / 5, "top5": 3 / 5}
    assert acc["minor"] == {"top1": 3 / 5, "top5": 3 / 5}
    assert acc["sub_major"] == {"top1": 3 / 5, "top5": 3 / 5}
    assert acc["major"] == {"top1": 3 / 5, "top5": 3 / 5}


def test_accuracy_top_k_only_looks_at_k_candidates():
    acc = accuracy_by_level(["2132"], [("2131", "2133", "2132")], "soc2000", k=2)
    assert acc["unit"] == {"top1": 0.0, "top2": 0.0}
    assert acc["minor"]["top1"] == 1.0


def test_soc90_has_no_sub_major_level():
    acc = accuracy_by_level(["929"], [("921",)], "soc90")
    assert list(acc) == ["unit", "minor", "major"]
    assert acc["minor"]["top1"] == 1.0 and acc["unit"]["top1"] == 0.0


def test_reliability_bins_and_ece_by_hand():
    conf = [0.95, 0.95, 0.95, 0.95, 0.15, 0.15, 1.0]
    right = [1, 1, 1, 0, 0, 1, 1]
    table = reliability_bins(conf, right, bins=10)
    assert len(table) == 10 and table[0]["lo"] == 0.0 and table[-1]["hi"] == 1.0
    top, low = table[9], table[1]
    assert top["n"] == 5 and low["n"] == 2  # 1.0 falls in the last bin
    assert top["accuracy"] == pytest.approx(4 / 5) and top["mean_confidence"] == pytest.approx(0.96)
    assert low["accuracy"] == 0.5 and low["mean_confidence"] == pytest.approx(0.15)
    assert table[5]["n"] == 0 and table[5]["accuracy"] is None
    # ECE = 5/7 * |0.8 - 0.96| + 2/7 * |0.5 - 0.15|
    assert expected_calibration_error(conf, right, bins=10) == pytest.approx(5 / 7 * 0.16 + 2 / 7 * 0.35)


def test_ece_is_zero_when_calibrated_and_nan_when_empty():
    assert expected_calibration_error([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)
    assert math.isnan(expected_calibration_error([], []))


def test_precision_coverage_curve_and_target_threshold():
    conf = np.array([0.9, 0.8, 0.8, 0.6, 0.4, 0.3])
    right = np.array([1, 1, 0, 1, 0, 1])
    eligible = np.array([True, True, True, True, True, False])  # the last is vague: never auto
    curve = precision_coverage(conf, right, eligible, total=6)
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.6, 0.4]
    assert curve["n_auto"].tolist() == [1, 3, 4, 5]
    assert curve["coverage"].tolist() == pytest.approx([1 / 6, 3 / 6, 4 / 6, 5 / 6])
    assert curve["precision"].tolist() == pytest.approx([1.0, 2 / 3, 3 / 4, 3 / 5])
    # Lowest threshold reaching the target, even when a higher one does not (0.8 gives 2/3).
    assert threshold_for_precision(curve, 0.7)["threshold"] == 0.6
    assert threshold_for_precision(curve, 0.7)["coverage"] == pytest.approx(4 / 6)
    assert threshold_for_precision(curve, 0.99)["threshold"] == 0.9
    none = threshold_for_precision(precision_coverage([0.5], [0]), 0.9)
    assert none["threshold"] is None and none["coverage"] == 0.0


def test_confusions_counts_titles_and_examples():
    gold = ["9233", "9233", "9233", "2132", "1163", "1163"]
    pred = ["9132", "9132", "9233", "2131", "-9", "1163"]
    text = ["cleaner", "office cleaner", "cleaner", "programmer", "???", "shop mgr"]
    out = confusions(gold, pred, "soc2000", titles=text, top=5)
    assert [(c["true"], c["predicted"], c["count"]) for c in out] == [("9233", "9132", 2), ("2132", "2131", 1)]
    assert out[0]["examples"] == ["cleaner", "office cleaner"]
    assert out[0]["true_title"].startswith("Cleaners") and out[0]["predicted_title"]


def test_score_reports_everything_and_keeps_no_gold_rows_apart():
    frame = pd.DataFrame({
        "title": ["clerk", "clerk", "programmer", "cleaner", "blah", "manager", "n/a"],
        "gold": ["4112", "4112", "2132", "9233", "1163", "", "-9"],
        "candidates": CANDS + [("1121", "1163"), ()],
        "confidence": [0.95, 0.6, 0.5, 0.2, 0.0, 0.4, 0.0],
        "status": ["auto", "refer", "refer", "refer", "uncodable", "refer", "uncodable"],
        "eligible": [True, True, True, True, False, False, False],
    })
    before = frame.copy()
    rep = score(frame, "soc2000", threshold=0.9, bins=10, target_precision=0.5)
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is not changed
    assert rep["rows"] == 7 and rep["rows_with_gold"] == 5
    assert rep["accuracy"]["unit"] == {"top1": 0.2, "top5": 0.6}
    assert rep["auto"] == {"n": 1, "coverage": 0.2, "precision": 1.0}
    assert rep["status"] == {"auto": 0.2, "refer": 0.6, "uncodable": 0.2}
    assert rep["target"]["threshold"] == 0.6 and rep["target"]["coverage"] == pytest.approx(0.4)
    cal = rep["calibration"]
    assert cal["rows"] == 4  # the uncodable row has no confidence to judge
    assert cal["ece"] == pytest.approx(expected_calibration_error([0.95, 0.6, 0.5, 0.2], [1, 0, 0, 0]))
    assert rep["no_gold"]["rows"] == 2 and rep["no_gold"]["not_auto"] == 1.0
    assert rep["no_gold"]["status"] == {"auto": 0.0, "refer": 0.5, "uncodable": 0.5}
    assert {(c["true"], c["predicted"]) for c in rep["confusions"]} == {("4112", "4113"), ("2132", "2131"),
                                                                       ("9233", "8211")}
    json.dumps(rep, allow_nan=False)  # JSON-ready: no NaN


def test_score_groups_and_missing_columns():
    frame = pd.DataFrame({"gold": ["4112", "2132"], "candidates": [("4112",), ("2131",)],
                          "confidence": [0.9, 0.9], "status": ["auto", "auto"]})
    rep = score(frame, "soc2000", groups={"first": [True, False]})
    assert rep["groups"]["first"]["accuracy"]["unit"]["top1"] == 1.0
    assert rep["auto"]["precision"] == 0.5
    with pytest.raises(InputError, match="candidates"):
        score(frame.drop(columns="candidates"), "soc2000")


def test_read_gold_keeps_text_and_codes(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("answer,code\nNone,0110\nN/A,\n", encoding="utf-8")
    frame = read_gold(path)
    assert frame["answer"].tolist() == ["None", "N/A"] and frame["code"].tolist() == ["0110", ""]
    with pytest.raises(InputError, match="no such file"):
        read_gold(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_gold(tmp_path / "empty.csv")


def test_accuracy_by_level_counts_accepted_codes_as_right():
    gold = ["4112", "2132", "9233"]
    cands = [("4113", "4112"), ("2131",), ("8211",)]
    plain = accuracy_by_level(gold, cands, "soc2000", k=5)
    assert plain["unit"] == {"top1": 0.0, "top5": 1 / 3}
    acc = accuracy_by_level(gold, cands, "soc2000", k=5, accepted=[("4113",), (), ("8211", "9234")])
    assert acc["unit"] == {"top1": 2 / 3, "top5": 2 / 3}
    # An accepted code also widens the higher levels: 8211 is major group 8, gold 9233 is 9.
    assert acc["major"]["top1"] == pytest.approx(1.0)


def test_accepted_codes_read_from_columns():
    data = pd.DataFrame({"a": ["4112", "", "-9", "2132"], "b": ["4112", "9233;9234", "", "2132 / 2131"]})
    assert accepted_codes(data, ["a", "b"]) == [("4112",), ("9233", "9234"), (), ("2132", "2131")]


def test_score_counts_a_code_right_if_either_coder_gave_it():
    frame = pd.DataFrame({
        "title": ["a", "b", "c", "d"],
        "gold": ["4112", "2132", "9233", "1163"],
        "accepted": [("4112", "4113"), ("2132",), ("9233", "9132"), "1163 1162"],
        "candidates": [("4113",), ("2131", "2132"), ("9132",), ("1121", "1162")],
        "confidence": [0.95, 0.9, 0.5, 0.4],
        "status": ["auto", "auto", "refer", "refer"],
    })
    rep = score(frame, "soc2000", target_precision=0.5)
    assert rep["accuracy"]["unit"] == {"top1": 0.5, "top5": 1.0}
    assert rep["gold_only"]["top1"] == 0.0 and rep["gold_only"]["top5"] == 0.25
    assert rep["auto"]["precision"] == 0.5 and rep["gold_only"]["auto_precision"] == 0.0
    assert rep["calibration"]["top1"] == 0.5
    assert rep["accepted"] == {"rows_with_other_codes": 3, "right_only_by_accepted": 2}
    # Right by an accepted code is not a confusion.
    assert {(c["true"], c["predicted"]) for c in rep["confusions"]} == {("2132", "2131"), ("1163", "1121")}
    assert "counts as right" in format_report({**rep, "source": "x"})
    # Without the column nothing changes.
    assert "gold_only" not in score(frame.drop(columns="accepted"), "soc2000")


def test_threshold_from_a_small_sample_says_so():
    def frame(n):
        return pd.DataFrame({"gold": ["4112"] * n, "candidates": [("4112",)] * n,
                             "confidence": np.linspace(0.5, 0.99, n), "status": ["auto"] * n})

    small = score(frame(20), "soc2000")
    assert small["target"]["rows"] == 20 and "only 20 rows" in small["target"]["note"]
    assert "note: threshold proposed from only 20 rows" in format_report({**small, "source": "x"})
    big = score(frame(MIN_THRESHOLD_ROWS), "soc2000")
    assert big["target"]["threshold"] is not None and "note" not in big["target"]


class _FakeCoder:
    """Records what `predict` passes to ``code_many`` and returns set results."""

    def __init__(self, results):
        self.results, self.calls = results, []

    def code_many(self, titles, industries=None, descriptions=None, *, k=5):
        self.calls.append((titles, industries, descriptions, k))
        return self.results


def test_predict_passes_descriptions_and_reads_the_reason_enum():
    cand = (Candidate("1163", "Shopkeepers", 0.6, "exact", "Manager (shop)"),)
    fake = _FakeCoder([
        Result("manager", None, "soc2000", "refer", cand, Reason.VAGUE),
        Result("manager", "shop", "soc2000", "refer", cand, Reason.LOW_CONFIDENCE),
        Result("", None, "soc2000", "uncodable", (), Reason.EMPTY),
    ])
    out = predict(fake, pd.Series(["manager", "manager", ""]), ["", "shop", ""], ["runs it", "", ""], k=3)
    assert fake.calls == [(["manager", "manager", ""], ["", "shop", ""], ["runs it", "", ""], 3)]
    assert out["eligible"].tolist() == [False, True, False]  # vague: never auto-coded
    assert out["reason"].tolist() == [Reason.VAGUE.value, Reason.LOW_CONFIDENCE.value, Reason.EMPTY.value]
    assert out["candidates"].tolist() == [("1163",), ("1163",), ()]


def test_evaluate_frame_gives_the_description_to_the_engine(small_coder, monkeypatch):
    seen = {}
    real = small_coder.code_many

    def spy(titles, industries=None, descriptions=None, *, k=5):
        seen["descriptions"] = descriptions
        return real(titles, industries, descriptions, k=k)

    monkeypatch.setattr(small_coder, "code_many", spy)
    data = pd.DataFrame({"t": ["Sales assistant", "nurse"], "d": ["replenishes shelves", ""],
                         "i": ["supermarket", "NHS"], "g": ["9251", "3211"], "a": ["7111", ""]})
    before = data.copy()
    report, pred = evaluate_frame(small_coder, data, column="t", gold="g", industry_column="i",
                                  description_column="d", accept_columns=["a"])
    pd.testing.assert_frame_equal(data, before)
    assert seen["descriptions"] == ["replenishes shelves", ""]
    assert pred["description"].tolist() == ["replenishes shelves", ""]
    assert pred["accepted"].tolist() == [("7111",), ()]
    assert report["columns"]["accepted"] == ["a"] and "gold_only" in report
    with pytest.raises(InputError, match="no column 'nope'"):
        evaluate_frame(small_coder, data, column="t", gold="g", accept_columns=["a", "nope"])


def test_read_gold_reads_every_format_the_batch_reader_does(tmp_path):
    frame = pd.DataFrame({"answer": ["None", "N/A", "nurse"], "code": ["0110", "-9", "3211"]})
    frame.to_csv(tmp_path / "g.tsv", sep="\t", index=False)
    frame.to_excel(tmp_path / "g.xlsx", index=False)
    frame.to_parquet(tmp_path / "g.parquet", index=False)
    for name in ("g.tsv", "g.xlsx", "g.parquet"):
        got = read_gold(tmp_path / name)
        assert got["answer"].tolist() == ["None", "N/A", "nurse"], name
        assert got["code"].tolist() == ["0110", "-9", "3211"], name
    # Typed formats: numbers as a CSV export writes them.
    pd.DataFrame({"answer": ["nurse", "cook"], "code": [3211, np.nan]}).to_stata(tmp_path / "g.dta", write_index=False)
    assert read_gold(tmp_path / "g.dta")["code"].tolist() == ["3211", ""]
    # cp1252 bytes in a UTF-8 file decode as the batch reader decodes them.
    (tmp_path / "latin.csv").write_bytes("answer,code\ncaf\xe9 owner,1223\n".encode("latin-1"))
    assert read_gold(tmp_path / "latin.csv")["answer"].tolist() == ["café owner"]


def test_read_gold_skips_comment_lines_above_the_header(tmp_path):
    path = tmp_path / "test-part.csv"
    path.write_bytes(b"\xef\xbb\xbf# TEST PART: never tune on it, nor choose a threshold.\n# second\n"
                     b"job,true\nnurse,3211\n#hashtag manager,1163\n")
    frame = read_gold(path)
    assert list(frame.columns) == ["job", "true"]
    assert frame["job"].tolist() == ["nurse", "#hashtag manager"]  # only lines above the header
    assert "skipped 2 comment lines" in frame.attrs["notes"][0]
    plain = tmp_path / "plain.csv"
    plain.write_text("job,true\nnurse,3211\n")
    assert read_gold(plain).attrs["notes"] == []
    broken = tmp_path / "broken.csv"
    broken.write_text("# only a comment\n")
    with pytest.raises(InputError) as info:
        read_gold(broken)
    assert str(broken) in str(info.value) and "coder-gold-" not in str(info.value)


def _corrupt_xlsx(tmp_path):
    garbage = tmp_path / "garbage.xlsx"
    garbage.write_bytes(b"PK\x03\x04 this is not really a workbook")
    real = tmp_path / "real.xlsx"
    pd.DataFrame({"job": ["nurse"] * 200, "true": ["3211"] * 200}).to_excel(real, index=False)
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    wrong = tmp_path / "text.xlsx"
    wrong.write_text("job,true\nnurse,3211\n")
    return [garbage, truncated, wrong]


def test_read_gold_corrupt_xlsx_is_an_input_error(tmp_path):
    for path in _corrupt_xlsx(tmp_path):
        with pytest.raises(InputError) as info:
            read_gold(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture()
def gold_csv(tmp_path):
    path = tmp_path / "gold.csv"
    pd.DataFrame({
        "job": ["nurse", "bus driver", "software developer", "cleaner", "manager", "n/a", "accountant"],
        "where": ["hospital", "", "bank", "school", "", "", ""],
        "true": ["3211", "8213", "2132", "9233", "", "", "2421"],
    }).to_csv(path, index=False)
    return path


def test_evaluate_cli_end_to_end(small_model_dir, gold_csv, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, [
        "evaluate", str(gold_csv), "--column", "job", "--gold", "true", "--industry-column", "where",
        "--model-dir", str(small_model_dir), "--out", str(out), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "unit" in result.output and "ECE" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 7 and metrics["rows_with_gold"] == 5 and metrics["no_gold"]["rows"] == 2
    assert set(metrics["accuracy"]) == {"unit", "minor", "sub_major", "major"}
    assert 0.0 <= metrics["accuracy"]["unit"]["top1"] <= metrics["accuracy"]["major"]["top5"] <= 1.0
    for png in ("reliability.png", "precision_coverage.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pred = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert len(pred) == 7 and {"gold", "code", "status", "confidence"} <= set(pred.columns)


def test_evaluate_cli_threshold_and_json(small_model_dir, gold_csv, tmp_path):
    result = CliRunner().invoke(cli, [
        "evaluate", str(gold_csv), "--column", "job", "--gold", "true", "--model-dir", str(small_model_dir),
        "--out", str(tmp_path / "r"), "--threshold", "0", "--json", "--no-plots", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["threshold"] == 0.0
    assert metrics["status"]["auto"] > 0  # everything not vague or uncodable is auto at 0
    assert not (tmp_path / "r" / "reliability.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--column", "nope", "--gold", "true"], "no column 'nope'"),
    (["--column", "job", "--gold", "nope"], "no column 'nope'"),
    (["--column", "job", "--gold", "true", "--industry-column", "nope"], "no column 'nope'"),
])
def test_evaluate_cli_bad_columns_exit_2(gold_csv, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["evaluate", str(gold_csv), *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_evaluate_cli_unreadable_file_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    for path in (bad, tmp_path / "missing.csv"):
        result = CliRunner().invoke(cli, ["evaluate", str(path), "--column", "a", "--gold", "b"])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1


def test_evaluate_cli_corrupt_xlsx_one_line_error(tmp_path):
    for path in _corrupt_xlsx(tmp_path):
        result = CliRunner().invoke(cli, ["evaluate", str(path), "--column", "job", "--gold", "true",
                                          "--out", str(tmp_path / "r"), "--no-plots"])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, UnboundLocalError)


def test_evaluate_cli_description_and_accept_columns(small_model_dir, tmp_path):
    path = tmp_path / "answers.csv"
    pd.DataFrame({
        "job": ["nurse", "bus driver", "software developer", "cleaner"],
        "does": ["looks after patients", "drives buses", "writes code", "cleans offices"],
        "where": ["hospital", "", "bank", "school"],
        "final": ["3211", "8213", "2132", "9233"],
        "coder_a": ["3211", "8213", "2132", "9233"],
        "coder_b": ["1234", "8213", "2131", ""],
    }).to_csv(path, index=False)
    out = tmp_path / "report"
    args = ["evaluate", str(path), "--column", "job", "--gold", "final", "--industry-column", "where",
            "--description-column", "does", "--model-dir", str(small_model_dir), "--out", str(out),
            "--no-plots", "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--accept-columns", "coder_a,coder_b", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["columns"]["description"] == "does"
    assert metrics["columns"]["accepted"] == ["coder_a", "coder_b"]
    assert metrics["accepted"]["rows_with_other_codes"] == 2
    assert metrics["accuracy"]["unit"]["top1"] >= metrics["gold_only"]["top1"]
    pred = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert pred["description"].tolist()[0] == "looks after patients"
    assert pred["accepted"].tolist() == ["3211 1234", "8213", "2132 2131", "9233"]
    # The labelled test part starts with a "never tune on it" comment line: read past it.
    commented = tmp_path / "answers-test.csv"
    commented.write_text("# TEST PART: never tune on it\n" + path.read_text())
    result = CliRunner().invoke(cli, [*args[:1], str(commented), *args[2:], "--accept-columns", "coder_a,coder_b",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 4
    text = CliRunner().invoke(cli, [*args, "--accept-columns", "coder_a,coder_b"])
    assert "counts as right" in text.output and "coder_a, coder_b" in text.output
    bad = CliRunner().invoke(cli, [*args, "--accept-columns", "coder_a,nope"])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output
    bad = CliRunner().invoke(cli, [*args, "--description-column", "nope"])
    assert bad.exit_code == 2 and "no column 'nope' (the description column)" in bad.output


def test_evaluate_cli_escapes_formulas_in_predictions(small_model_dir, tmp_path):
    path = tmp_path / "hostile.csv"
    pd.DataFrame({"job": ["=HYPERLINK(\"http://x\")", "@SUM(1)", "nurse", "???"],
                  "true": ["3211", "-9", "3211", ""]}).to_csv(path, index=False)
    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--column", "job", "--gold", "true",
                                      "--model-dir", str(small_model_dir), "--out", str(out), "--no-plots",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    assert pred["title"].tolist()[:2] == ["'=HYPERLINK(\"http://x\")", "'@SUM(1)"]
    assert pred["code"].tolist()[3] == "-9"  # plain numbers are not escaped


def test_evaluate_cli_says_when_the_threshold_sample_is_small(small_model_dir, gold_csv, tmp_path):
    result = CliRunner().invoke(cli, [
        "evaluate", str(gold_csv), "--column", "job", "--gold", "true", "--model-dir", str(small_model_dir),
        "--out", str(tmp_path / "r"), "--no-plots", "--quiet", "--target-precision", "0.5",
    ])
    assert result.exit_code == 0, result.output
    assert "proposed from only 5 rows" in result.output
