"""Tests for the messy-answer generator and the hand-checked survey answers file."""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.messy import (
    ABBREVIATIONS,
    EMPLOYER_CONTEXT,
    KINDS,
    make_messy,
    make_messy_frame,
)

REPO = Path(__file__).resolve().parents[1]
SURVEY_CSV = REPO / "benchmarks" / "survey_answers.csv"
SEED_FILE = REPO / "data" / "soc2000_unit_groups_seed.txt"

TITLES = [
    "Software developer",
    "Senior software engineer",
    "Care assistant",
    "Assistant manager, customer services",
    "Heavy goods vehicle driver",
    "Information technology manager",
    "Health and safety officer",
    "Maintenance engineer",
    "Accounts assistant",
    "Fork lift truck driver",
    "Teaching assistant",
    "Nurse",
    "Chef",
    "Bar staff",
    "Warehouse operative",
    "Sales representative",
    "Administrator",
    "Police officer",
    "Electrician",
    "Hairdresser",
    "Director of development and operations",
    "Junior sales executive",
    "Machine operator",
    "Shop assistant",
    "Receptionist",
    "Primary school teacher",
    "Refuse collector",
    "Building labourer",
    "Customer service adviser",
    "Plumber and heating engineer",
]


def _index_titles(n: int = 3000) -> list[str]:
    df = pd.read_csv(REPO / "data" / "soc2020_coding_index_v12.csv", dtype=str, keep_default_na=False)
    titles = df[df.columns[-1]].tolist()
    return titles[:: max(1, len(titles) // n)][:n]


# --------------------------------------------------------------------------- make_messy


def test_deterministic_for_seed():
    assert make_messy(TITLES, seed=7) == make_messy(TITLES, seed=7)


def test_different_seeds_differ():
    outs = [tuple(make_messy(TITLES, seed=s)) for s in range(5)]
    assert len(set(outs)) == 5
    # and not just in one title
    a, b = outs[0], outs[1]
    assert sum(x != y for x, y in zip(a, b)) >= len(TITLES) // 3


def test_same_length_and_order():
    out = make_messy(TITLES, seed=3)
    assert len(out) == len(TITLES)
    # output i belongs to input i: the sequence is consumed title by title, so a prefix of
    # the input gives a prefix of the output ...
    for k in (1, 5, 17):
        assert make_messy(TITLES[:k], seed=3) == out[:k]
    # ... and every messy title still resembles its own title more than any other one
    # (single-word titles without abbreviations, so the resemblance is unambiguous).
    from difflib import SequenceMatcher

    words = ["Nurse", "Chef", "Electrician", "Hairdresser", "Plumber", "Receptionist",
             "Architect", "Solicitor", "Butcher", "Pharmacist", "Scaffolder", "Midwife"]

    def sim(a: str, b: str) -> float:
        return SequenceMatcher(None, a.lower(), b.lower()).ratio()

    for seed in range(5):
        for i, m in enumerate(make_messy(words, seed=seed)):
            own = sim(m, words[i])
            assert all(own > sim(m, t) for j, t in enumerate(words) if j != i), (m, words[i])


def test_rate_zero_is_identity_and_rate_is_checked():
    assert make_messy(TITLES, seed=1, rate=0.0) == TITLES
    with pytest.raises(ValueError):
        make_messy(TITLES, rate=1.5)
    with pytest.raises(ValueError):
        make_messy(TITLES, rate=-0.1)


def test_rate_one_changes_every_title():
    out = make_messy(TITLES, seed=11)
    assert all(o != t for o, t in zip(out, TITLES))


def test_partial_rate_changes_some_titles():
    titles = _index_titles(1000)
    out = make_messy(titles, seed=2, rate=0.5)
    share = sum(o != t for o, t in zip(out, titles)) / len(titles)
    assert 0.4 < share < 0.6


def test_never_empty_for_non_empty_input():
    odd = ["a", "I", "  ", " x ", "-", "12345", "???", "Ab", "A&E", "MD", "n/a", "\t"]
    for seed in range(50):
        for t, o in zip(odd + TITLES, make_messy(odd + TITLES, seed=seed)):
            assert o != ""
            assert isinstance(o, str)
            if t.strip():
                assert o.strip()


def test_empty_and_non_string_items_pass_through():
    items = ["", "Nurse", None, float("nan"), "Chef"]
    out = make_messy(items, seed=0)  # type: ignore[arg-type]
    assert out[0] == ""
    assert out[2] is None
    assert out[3] != out[3]  # still NaN
    assert len(out) == 5


def test_does_not_touch_global_random_state():
    random.seed(123)
    state = random.getstate()
    make_messy(TITLES, seed=5)
    make_messy_frame(pd.DataFrame({"t": TITLES}), "t", seed=5)
    assert random.getstate() == state


def test_all_kinds_occur_and_employer_is_rare():
    titles = _index_titles(3000)
    f = make_messy_frame(pd.DataFrame({"t": titles}), "t", seed=0)
    kinds = f["corruptions"].str.split(";").explode()
    counts = kinds.value_counts()
    assert set(counts.index) == set(KINDS)
    share = counts / len(f)
    assert share["employer"] < 0.12
    # typically 1-2 kinds per title
    n = f["corruptions"].str.count(";") + 1
    assert n.between(1, 3).all()
    assert 1.2 < n.mean() < 1.8


def _frame(titles: list[str], seed: int) -> pd.DataFrame:
    return make_messy_frame(pd.DataFrame({"t": titles}), "t", seed=seed)


def test_typo_only_changes_few_long_words():
    titles = [t for t in _index_titles(3000) if re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)*", t)]
    f = _frame(titles, seed=4)
    typo = f[f["corruptions"] == "typo"]
    assert len(typo) > 100
    for orig, messy in zip(pd.Series(titles)[typo.index], typo["t"]):
        ow, mw = orig.split(" "), messy.split(" ")
        assert len(ow) == len(mw)
        changed = [(a, b) for a, b in zip(ow, mw) if a != b]
        assert 1 <= len(changed) <= max(1, len(ow) // 3)
        for a, b in changed:
            assert len(a) >= 4
            assert a[0] == b[0]  # first letter kept
            assert abs(len(a) - len(b)) <= 1


def test_case_only_keeps_letters():
    f = _frame(TITLES * 10, seed=8)
    case = f[f["corruptions"] == "case"]
    assert len(case) > 0
    for orig, messy in zip(pd.Series(TITLES * 10)[case.index], case["t"]):
        assert orig.lower() == messy.lower()
        assert orig != messy


def test_abbrev_only_uses_listed_abbreviations():
    abbrevs = {a.lower() for v in ABBREVIATIONS.values() for a in v}
    titles = TITLES * 10
    f = _frame(titles, seed=9)
    ab = f[f["corruptions"] == "abbrev"]
    assert len(ab) > 10
    for orig, messy in zip(pd.Series(titles)[ab.index], ab["t"]):
        assert messy != orig
        assert any(re.search(rf"(?<![a-z]){re.escape(a)}(?![a-z])", messy.lower()) for a in abbrevs)


def test_employer_context_from_fixed_list():
    titles = TITLES * 20
    f = _frame(titles, seed=10)
    emp = f[f["corruptions"] == "employer"]
    assert len(emp) > 0
    for orig, messy in zip(pd.Series(titles)[emp.index], emp["t"]):
        assert messy[len(orig) + 1 :] in EMPLOYER_CONTEXT


# --------------------------------------------------------------------------- make_messy_frame


def test_frame_does_not_mutate_and_records_corruptions():
    df = pd.DataFrame(
        {"title": TITLES, "soc2000": ["2132"] * len(TITLES), "x": range(len(TITLES))},
        index=range(100, 100 + len(TITLES)),
    )
    before = df.copy(deep=True)
    out = make_messy_frame(df, "title", seed=6)
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    assert list(out.columns) == ["title", "soc2000", "x", "corruptions"]
    assert list(out.index) == list(df.index)
    pd.testing.assert_series_equal(out["soc2000"], df["soc2000"])
    assert out["title"].tolist() == make_messy(TITLES, seed=6)
    for orig, messy, c in zip(df["title"], out["title"], out["corruptions"]):
        kinds = c.split(";")
        assert kinds and all(k in KINDS for k in kinds)
        assert kinds == [k for k in KINDS if k in kinds]  # application order, no repeats
        assert messy != orig


def test_frame_rate_zero_records_nothing():
    df = pd.DataFrame({"title": TITLES})
    out = make_messy_frame(df, "title", seed=1, rate=0.0)
    assert out["title"].tolist() == TITLES
    assert (out["corruptions"] == "").all()


def test_frame_missing_column():
    with pytest.raises(KeyError):
        make_messy_frame(pd.DataFrame({"a": ["x"]}), "title")


# --------------------------------------------------------------------------- property


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=string.printable, max_size=40), max_size=20),
    st.integers(min_value=0, max_value=2**32),
)
def test_property_any_printable_titles(titles, seed):
    out = make_messy(titles, seed=seed)
    assert len(out) == len(titles)
    assert all(isinstance(o, str) for o in out)
    for t, o in zip(titles, out):
        if t:
            assert o
        if t.strip():
            assert o.strip()
    assert out == make_messy(titles, seed=seed)


# --------------------------------------------------------------------------- survey CSV


def _seed_codes() -> set[str]:
    codes = set()
    for line in SEED_FILE.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^(\d{4})\t", line)
        if m and not m.group(1).endswith("000"):
            codes.add(m.group(1))
    return codes


@pytest.fixture(scope="module")
def survey() -> pd.DataFrame:
    # keep_default_na=False: answers such as "n/a" must stay strings
    return pd.read_csv(SURVEY_CSV, dtype=str, keep_default_na=False)


def test_survey_columns_and_size(survey):
    assert list(survey.columns) == ["answer", "industry", "soc2000", "note"]
    assert 130 <= len(survey) <= 200
    assert 0.25 <= (survey["industry"] != "").mean() <= 0.5


def test_survey_codes_are_valid_unit_groups(survey):
    codes = _seed_codes()
    assert len(codes) > 350
    coded = survey[survey["soc2000"] != ""]
    assert coded["soc2000"].str.fullmatch(r"\d{4}").all()
    bad = sorted(set(coded["soc2000"]) - codes)
    assert not bad, bad


def test_survey_every_major_group_represented(survey):
    coded = survey[survey["soc2000"] != ""]
    counts = coded["soc2000"].str[0].value_counts()
    for major in "123456789":
        assert counts.get(major, 0) >= 8, (major, counts.to_dict())


def test_survey_vague_and_uncodable(survey):
    empty = survey[survey["soc2000"] == ""]
    assert set(empty["note"]) == {"vague", "uncodable"}
    assert (survey["note"] == "vague").sum() >= 8
    assert (survey["note"] == "uncodable").sum() >= 5
    assert {"manager", "engineer", "teacher", "self employed", "director"} <= set(
        survey.loc[survey["note"] == "vague", "answer"]
    )
    assert "" in set(survey.loc[survey["note"] == "uncodable", "answer"])
    coded = survey[survey["soc2000"] != ""]
    assert (coded["answer"].str.strip() != "").all()
    assert not coded["note"].isin(["vague", "uncodable"]).any()
    # the same answer twice only when the industry tells them apart
    assert not survey.duplicated(["answer", "industry"]).any()
