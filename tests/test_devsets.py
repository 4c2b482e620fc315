"""benchmarks.devsets and benchmarks.baselines: the dev split is deterministic and disjoint from
training, the sets are built as documented, and the baselines behave as described."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.baselines import FuzzyBaseline, TfidfBaseline
from benchmarks.devsets import (
    clean_frame,
    dev_model_status,
    messy_frame,
    split_index,
    survey_frame,
    survey_like,
    training_entries,
)
from coder.index import load_index
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
    for f in Path(small_model_dir).iterdir():
        shutil.copy(f, tmp_path / f.name)
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
