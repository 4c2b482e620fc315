"""benchmarks/learn_bench.py on the small model: it runs, and re-coding the learned half
comes back at 100%."""

from __future__ import annotations

import json

from benchmarks import learn_bench


def test_learn_bench_on_the_small_model(small_model_dir, tmp_path, capsys):
    out = tmp_path / "learn.json"
    assert learn_bench.main(["--model-dir", str(small_model_dir), "--no-build", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    answers = report["answers"]
    assert answers["learn_half"] + answers["held_out"] == answers["test_part"] > 800
    assert report["recode_learn_half"]["back_right_learned_auto"] == 1.0
    assert report["learn_half"]["after"]["top1"] == 1.0 and report["learn_half"]["after"]["auto_share"] == 1.0
    assert report["held_out"]["after"]["n"] == answers["held_out"]
    assert "| held out | after |" in out.with_suffix(".md").read_text()
    assert "as required" in capsys.readouterr().out


def test_the_halves_are_the_test_part_only():
    frame = learn_bench.test_part()
    learn, held = learn_bench.split(frame, 0)
    assert not set(learn["uid"]) & set(held["uid"]) and len(learn) + len(held) == len(frame)
    import pandas as pd

    raw = pd.read_csv(learn_bench.LABELLED, dtype=str, keep_default_na=False)
    assert set(frame["uid"]) <= set(raw.loc[raw["part"] == "test", "unique_id"])
    assert list(learn_bench.split(frame, 0)[0]["uid"]) == list(learn["uid"])  # seeded
