"""benchmarks.devsets and benchmarks.baselines: the dev split is deterministic and disjoint from
training, the sets are built as documented, and the baselines behave as described."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks._common import PeakRSS, git_commit, latency_summary
from benchmarks.baselines import FuzzyBaseline, TfidfBaseline
from benchmarks.devsets import (
    LABELLED_CSV,
    answers_frame,
    clean_frame,
    context_frame,
    context_industries,
    dev_model_dir,
    dev_model_status,
    load_dev_coder,
    messy_frame,
    split_index,
    stage_names,
    stages_without,
    survey_frame,
    survey_like,
    training_entries,
    unqualified_titles,
)
from coder.index import load_index
from coder.normalise import normalise, tokens
from coder.store import save_model


@pytest.fixture(scope="module")
def entries():
    return load_index()[0]


@pytest.fixture(scope="module")
def split(entries):
    return split_index("soc2000", entries=entries)


def test_split_is_deterministic_and_seeded(entries, split):
    again = split_index("soc2000", entries=entries)
    assert again == split and again.ids_sha256 == split.ids_sha256
    # The same entries in another order give the same split (chosen over sorted UNIQUE IDs).
    assert split_index("soc2000", entries=entries[::-1]) == split
    other = split_index("soc2000", entries=entries, seed=1)
    assert other.held_out != split.held_out and len(other.held_out) == len(split.held_out)
    assert split_index("soc2000", entries=entries, fraction=0.2).held_out != split.held_out


def test_split_holds_out_a_tenth_of_codable_entries_only(entries, split):
    codable = {e.uid for e in entries if e.code("soc2000") is not None}
    assert split.codable == len(codable)
    assert len(split.held_out) == round(0.1 * len(codable))
    assert set(split.held_out) <= codable  # vague (}}}}) entries always stay in training
    assert list(split.held_out) == sorted(set(split.held_out))


def test_training_is_disjoint_from_the_held_out_entries(entries, split):
    train = training_entries(split, entries)
    held = set(split.held_out)
    assert not held & {e.uid for e in train}
    assert len(train) + len(held) == len(entries)


def test_clean_and_messy_sets_mirror_the_held_out_entries(entries, split):
    clean = clean_frame(split, entries)
    assert set(clean["uid"]) == set(split.held_out) and len(clean) == len(split.held_out)
    by_uid = {e.uid: e for e in entries}
    for row in clean.head(50).itertuples():
        e = by_uid[row.uid]
        assert row.title == e.natural and row.gold == e.code("soc2000")
        assert row.industry == " ".join(x for x in (e.add, e.ind) if x)
    assert clean["gold"].str.fullmatch(r"\d{4}").all()
    assert 0.0 < clean["seen_title"].mean() < 1.0
    messy = messy_frame(clean)
    assert (messy["uid"] == clean["uid"]).all() and (messy["gold"] == clean["gold"]).all()
    assert (messy["title"] != clean["title"]).mean() > 0.9 and (messy["corruptions"] != "").all()
    pd.testing.assert_frame_equal(messy, messy_frame(clean))  # seeded


def test_survey_set_has_vague_rows_without_a_code():
    survey = survey_frame()
    assert {"title", "industry", "gold"} <= set(survey.columns)
    assert (survey["gold"] == "").sum() >= 10
    assert survey.loc[survey["gold"] != "", "gold"].str.fullmatch(r"\d{4}").all()


def test_survey_like_list_is_seeded_with_zipf_repeats(entries):
    titles, inds = survey_like(5_000, pool_size=500, seed=3, entries=entries)
    assert (titles, inds) == survey_like(5_000, pool_size=500, seed=3, entries=entries)
    counts = pd.Series(list(zip(titles, inds))).value_counts()
    assert len(titles) == 5_000 and len(counts) <= 500
    assert counts.iloc[0] > 20 * counts.median()  # a heavy head


def test_dev_model_status_requires_the_matching_split(tmp_path, small_model_dir, split):
    assert dev_model_status(split, tmp_path) == "no built model"
    # A model built without recording this split is never taken for the dev model.
    for f in Path(small_model_dir).iterdir():  # content-addressed folders: <scheme>-<key>/
        if f.is_dir():
            shutil.copytree(f, tmp_path / f.name)
    assert "another dev split" in dev_model_status(split, tmp_path)


def test_dev_model_with_the_split_recorded_is_current(tmp_path, small_coder, split):
    model = dataclasses.replace(small_coder.model, info={**small_coder.model.info, "dev_split": split.describe()})
    save_model(model, tmp_path)
    assert dev_model_status(split, tmp_path) is None
    other = split_index("soc2000", seed=1)
    assert "another dev split" in dev_model_status(other, tmp_path)


@pytest.mark.parametrize("cls", [FuzzyBaseline, TfidfBaseline])
def test_baselines_code_titles_they_were_fitted_on(cls, entries):
    train = [e for e in entries[:3000] if e.code("soc2000")]
    base = cls("soc2000").fit(train)
    sample = train[::300]
    titles = [e.natural for e in sample]
    codes = base.code_many(titles + ["", titles[0]])
    assert len(codes) == len(titles) + 2
    # Its own title (or an identical one under another code) comes first.
    truth = {}
    for e in train:
        truth.setdefault(e.natural.lower(), set()).add(e.code("soc2000"))
    assert all(c in truth[t.lower()] for c, t in zip(codes, titles))
    assert codes[-1] == codes[0]
    pred = base.predict(titles, k=5)
    assert [c[0] for c in pred["candidates"]] == list(codes[: len(titles)])
    assert all(len(set(c)) == len(c) <= 5 for c in pred["candidates"])
    assert np.all((pred["confidence"] > 0.9) & (pred["confidence"] <= 1.0 + 1e-6))


def test_dev_model_status_checks_the_stages(tmp_path, small_coder, split):
    info = {**small_coder.model.info, "dev_split": split.describe()}
    without = [n for n in stage_names() if n != "description"]
    save_model(dataclasses.replace(small_coder.model, info={**info, "stages": without}), tmp_path)
    assert "built with stages" in dev_model_status(split, tmp_path)
    assert dev_model_status(split, tmp_path, stages=without) is None
    with pytest.raises(ValueError, match="no stage 'nope'"):
        stages_without("nope")
    assert [c.name for c in stages_without("description")] == without
    assert dev_model_dir("soc2000", without="semantic").name == "dev-soc2000-without-semantic"


def test_load_dev_coder_takes_a_stale_build_under_its_old_name(tmp_path, small_coder, split):
    model = dataclasses.replace(small_coder.model, info={**small_coder.model.info, "dev_split": split.describe()})
    path = save_model(model, tmp_path)
    # A code or library change renames the current build's folder: the old one is then stale.
    path.parent.rename(tmp_path / "soc2000-0000000000000000")
    assert dev_model_status(split, tmp_path) is not None
    coder, info = load_dev_coder(split, tmp_path, build=False, allow_stale=True)
    assert info["stale"] and coder.code("nurse").candidates
    with pytest.raises(Exception, match="without --skip-build"):
        load_dev_coder(split, tmp_path, build=False, allow_stale=False)


def test_answers_set_is_the_labelled_test_part():
    answers = answers_frame()
    assert len(answers) >= 600 // 2 and answers["uid"].is_unique
    assert answers["gold"].str.fullmatch(r"\d{4}").all()
    assert {"title", "description", "industry", "coder_a", "coder_b"} <= set(answers.columns)
    labelled = pd.read_csv(LABELLED_CSV, dtype=str, keep_default_na=False)
    test_ids = set(labelled.loc[labelled["part"] == "test", "unique_id"])
    assert set(answers["uid"]) == test_ids
    # Either coder's code differs from the final one somewhere: that is what "accepted" adds.
    assert ((answers["coder_a"] != answers["gold"]) | (answers["coder_b"] != answers["gold"])).any()
    with pytest.raises(ValueError, match="TEST PART"):
        answers_frame(LABELLED_CSV)  # the whole labelled file is not the test part


def test_unqualified_titles_have_one_plain_code_in_the_whole_index(entries, split):
    titles = unqualified_titles(split, entries)
    assert len(titles) > 1_000 and titles["norm"].is_unique
    held = set(split.held_out)
    by_norm: dict[str, list] = {}
    for e in entries:
        by_norm.setdefault(normalise(e.natural), []).append(e)
    for row in titles.sample(300, random_state=0).itertuples():
        group = by_norm[row.norm]
        assert all(not e.add and not e.ind for e in group)
        assert {e.code("soc2000") for e in group} == {row.gold}
        assert row.uid not in held  # drawn from the dev model's training entries


def test_context_pairs_use_unrelated_learn_part_and_index_industries(entries, split):
    pairs = context_frame(split, entries, n=300, seed=1)
    assert len(pairs) == 300
    pd.testing.assert_frame_equal(pairs, context_frame(split, entries, n=300, seed=1))  # seeded
    assert not pairs.equals(context_frame(split, entries, n=300, seed=2))
    assert set(pairs["industry_source"]) == {"answers", "index"}
    industries = context_industries("soc2000", entries=entries)
    labelled = pd.read_csv(LABELLED_CSV, dtype=str, keep_default_na=False)
    learn = set(labelled.loc[labelled["part"] == "learn", "industry"].str.strip())
    for row in pairs.itertuples():
        assert row.gold[:3] not in industries[row.industry]["minors"]
        title_words = {w for w in tokens(row.title) if len(w) >= 3}
        assert not title_words & {w for w in tokens(row.industry) if len(w) >= 3}
        if row.industry_source == "answers":
            assert row.industry in learn  # never an industry from the test part alone
    plain = set(unqualified_titles(split, entries)["title"])
    assert set(pairs["title"]) <= plain


def test_common_helpers():
    lat = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert lat["n"] == 4 and lat["p50"] == pytest.approx(2.5) and lat["max"] == 4.0
    assert latency_summary([]) == {"n": 0}
    commit = git_commit()
    assert commit.startswith("unknown") or len(commit.split("+")[0]) >= 7
    with PeakRSS(interval=0.001) as mem:
        block = bytearray(32 * 2**20)
    report = mem.report()
    del block
    assert report["peak_rss_mb"] >= report["peak_rss_sampled_mb"] > 32


def test_benchmark_report_puts_every_set_beside_the_baselines(tmp_path, small_coder, entries, split):
    from benchmarks import run

    answers = answers_frame().head(40)
    clean = clean_frame(split, entries).head(40)
    sets = {"clean": clean, "messy": messy_frame(clean), "answers": answers,
            "context": context_frame(split, entries, n=30)}
    train = [e for e in training_entries(split, entries)[:4000]]
    baselines = {k: cls("soc2000").fit(train) for k, cls in (("fuzzy", FuzzyBaseline), ("tfidf", TfidfBaseline))}
    model_out = run.evaluate_model(small_coder, sets, split, tmp_path)
    base_out = run.evaluate_baselines(baselines, sets, split)
    acc = run.combine(model_out, base_out, sets)
    assert acc["sets"]["answers"]["coder"]["columns"]["accepted"] == ["coder_a", "coder_b"]
    assert "gold_only" in acc["sets"]["answers"]["baselines"]["fuzzy"]
    ctx = acc["context"]["coder"]
    assert ctx["pairs"] == 30 and 0.0 <= ctx["changed_share"] <= 1.0
    assert acc["context"]["baselines"]["tfidf"]["changed_share"] == 0.0
    assert (tmp_path / "answers" / "metrics.json").is_file()
    acc["dev_model"] = run._dev_model_info(small_coder, {"directory": str(tmp_path)}, {"stale": None})
    meta = {"command": "python -m benchmarks", "date": "today", "commit": "abc", "cpus": 2, "load_average": "0",
            "split": split.describe(), "accuracy_dir": "results/accuracy"}
    text = run.summarise(acc, None, meta)
    assert "| answers | top-1 unit (right: final or either coder's code) |" in text
    assert "≥63.6% no loss" in text and "≥57.4% no loss" in text and "≥85.0%" in text and "≤0.04" in text
    assert "## Industry hijack check (context)" in text and "| pairs whose code changes" in text
    ablation = {"stage": "description", "rows": {k: len(v) for k, v in sets.items()}, "baselines": base_out,
                "models": {key: {**model_out, "dev_model": acc["dev_model"]} for key in ("all", "without")}}
    text = run.summarise_ablation(ablation, meta)
    assert "| answers | top-1 unit | " in text and "+0.0 pts" in text and "without description" in text
