"""coder.evaluate: metrics on tiny hand-made frames with known answers, and `coder evaluate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.errors import InputError
from coder.evaluate import (
    accuracy_by_level,
    confusions,
    expected_calibration_error,
    precision_coverage,
    read_gold,
    reliability_bins,
    score,
    threshold_for_precision,
)

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
    with pytest.raises(InputError, match="cannot read"):
        read_gold(tmp_path / "empty.csv")


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
