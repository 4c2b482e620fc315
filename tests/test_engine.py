"""The Coder API: statuses, reasons, order and dedupe, industry context (small model), and
golden titles with the real model."""

import math

import numpy as np
import pandas as pd
import pytest

from coder import MISSING_CODE, Candidate, Coder, Result
from coder.candidates import METHODS
from coder.errors import Reason


@pytest.mark.parametrize(
    "title, reason",
    [
        (None, "missing value"),
        (float("nan"), "missing value"),
        (pd.NA, "missing value"),
        ("", "empty title"),
        ("   ", "empty title"),
        ("12345", "no letters in the title"),
        ("x" * 1001, "title too long to be a job title"),
        ("\x00\x01\x02abc\x03\x04", "not text (control or binary characters)"),
        ("part time", "no occupation words"),
        ("(NHS)", "only bracketed text"),
        ("don't know", "missing value"),
        ("N/A", "missing value"),
        ("NaN", "missing value"),
        ("#N/A", "missing value"),
        ("-9", "missing value"),
        ("Refused", "missing value"),
        ("not applicable", "not a job title"),
        ("retired", "not an occupation (e.g. student, retired, homemaker)"),
        ("Student", "not an occupation (e.g. student, retired, homemaker)"),
        ("housewife", "not an occupation (e.g. student, retired, homemaker)"),
    ],
)
def test_uncodable_inputs_get_a_reason_and_the_missing_code(small_coder: Coder, title, reason):
    r = small_coder.code(title)
    assert r.status == "uncodable" and r.reason == reason and isinstance(r.reason, Reason)
    assert r.code == MISSING_CODE == "-9" and r.confidence == 0.0 and r.title == ""


def test_result_shape(small_coder: Coder):
    r = small_coder.code("staff nurse", k=3)
    assert isinstance(r, Result) and r.scheme == "soc2000"
    assert 1 <= len(r.candidates) <= 3
    assert all(isinstance(c, Candidate) for c in r.candidates)
    confs = [c.confidence for c in r.candidates]
    assert confs == sorted(confs, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confs)
    assert len({c.code for c in r.candidates}) == len(r.candidates)
    best = r.candidates[0]
    assert best.method in METHODS and best.matched_entry
    assert sum(confs) <= 1.0 + 1e-3  # each is the probability that this code is the right one
    assert r.to_dict()["code"] == r.code
    assert r.status in {"auto", "refer"}


def test_code_many_keeps_order_and_length(small_coder: Coder):
    titles = ["nurse", None, "bus driver", "nurse", "", "NURSE", float("nan"), "teacher"]
    results = small_coder.code_many(titles)
    assert len(results) == len(titles)
    assert [r.text for r in results] == ["nurse", "", "bus driver", "nurse", "", "NURSE", "", "teacher"]
    assert results[0].candidates == results[3].candidates == results[5].candidates
    assert [r.status == "uncodable" for r in results] == [False, True, False, False, True, False, True, False]


def test_repeated_raw_answers_are_read_once_but_kept_apart_exactly(small_coder: Coder):
    """Identical rows share one reading; values equal in Python but different as text (1 and
    1.0, True) and unhashable ones are still each coded as what they say."""
    titles = ["nurse", 1, 1.0, True, "nurse", ["nurse"], "1", "nurse"]
    industries = ["nhs", None, None, None, "nhs", None, None, "school"]
    results = small_coder.code_many(titles, industries)
    assert [r.text for r in results] == ["nurse", "1", "1.0", "True", "nurse", "['nurse']", "1", "nurse"]
    assert [r.industry for r in results] == ["nhs", None, None, None, "nhs", None, None, "school"]
    singles = [small_coder.code(t, i) for t, i in zip(titles, industries)]
    assert [(r.status, r.reason, r.candidates) for r in results] == [(r.status, r.reason, r.candidates) for r in singles]


def test_raw_answers_are_read_once_across_calls(small_model_dir, monkeypatch):
    # A survey file comes in chunks that repeat its common answers: each is read once, at most
    # ``cache_size`` kept, and the memo is dropped when the missing-value markers change.
    c = Coder.load("soc2000", model_dir=small_model_dir, build=False, cache_size=3)
    reads = []
    real = Coder._read
    monkeypatch.setattr(Coder, "_read", lambda self, *a: reads.append(a[0]) or real(self, *a))
    first = c.code_many(["nurse", "teacher", "nurse", "n/a"])
    again = c.code_many(["teacher", "nurse", "n/a"])
    assert reads == ["nurse", "teacher", "n/a"]
    assert [r.text for r in again] == ["teacher", "nurse", "n/a"] and again[2].status == "uncodable"
    assert (again[0], again[1]) == (first[1], first[0])
    c.code_many(["chef", "plumber", "porter", "welder"])  # only the last 3 stay
    c.code_many(["nurse", "welder"])
    assert reads[-5:] == ["chef", "plumber", "porter", "welder", "nurse"]
    c.missing_markers = c.missing_markers | {"nurse"}
    assert c.code("nurse").status == "uncodable" and reads[-1] == "nurse"


def test_missing_values_share_one_reading(small_model_dir, monkeypatch):
    # A float column's NaNs are distinct objects and NaN equals nothing: without care each
    # row would be read (and kept in the memo) on its own.
    c = Coder.load("soc2000", model_dir=small_model_dir, build=False)
    reads = []
    real = Coder._read
    monkeypatch.setattr(Coder, "_read", lambda self, *a: reads.append(a) or real(self, *a))
    titles = ["nurse", "teacher"] * 50
    results = c.code_many(titles, pd.Series([np.nan] * 100, dtype=float), np.full(100, np.nan))
    assert len(reads) == 2 and [r.text for r in results] == titles
    assert all(r.industry is None and r.description is None for r in results)
    assert c.code_many([float("nan"), None, pd.NA])[0].status == "uncodable" and len(reads) == 3


def test_code_many_accepts_series_and_arrays(small_coder: Coder):
    s = pd.Series(["nurse", "bus driver"], index=[10, 20])
    industries = np.array(["hospital", None], dtype=object)
    results = small_coder.code_many(s, industries)
    assert [r.text for r in results] == ["nurse", "bus driver"]
    assert results[0].industry == "hospital" and results[1].industry is None
    with pytest.raises(ValueError, match="industries"):
        small_coder.code_many(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="descriptions"):
        small_coder.code_many(["a", "b"], None, ["x"])
    with pytest.raises(ValueError, match="k must be"):
        small_coder.code("nurse", k=0)


def test_threshold_decides_auto_versus_refer(small_model_dir):
    strict = Coder.load("soc2000", model_dir=small_model_dir, build=False, threshold=1.01)
    lax = Coder.load("soc2000", model_dir=small_model_dir, build=False, threshold=0.0)
    assert strict.code("bus driver").status == "refer"
    assert lax.code("bus driver").status == "auto"
    assert "confidence below" in strict.code("bus driver").reason


def test_changing_the_threshold_applies_to_cached_answers(small_model_dir):
    c = Coder.load("soc2000", model_dir=small_model_dir, build=False, threshold=0.0)
    assert c.code("bus driver").status == "auto"
    c.threshold = 1.01
    assert c.code("bus driver").status == "refer"  # the same answer, now from the cache


def test_a_batch_bigger_than_the_cache_loses_nothing(small_model_dir):
    # Coding a batch evicts keys the same call found in the cache a moment before.
    c = Coder.load("soc2000", model_dir=small_model_dir, build=False, cache_size=5)
    first = ["nurse", "bus driver", "teacher", "cleaner"]
    c.code_many(first)
    titles = first + ["chef", "plumber", "porter", "welder"]
    results = c.code_many(titles)
    assert [r.text for r in results] == titles and all(r.candidates for r in results)


def test_empty_or_junk_descriptions_are_absent(small_coder: Coder):
    plain = small_coder.code("bus driver", "transport")
    for junk in ("", "   ", None, float("nan"), "N/A", "same", "-9"):
        r = small_coder.code("bus driver", "transport", junk)
        assert r.candidates == plain.candidates and r.description is None


def test_description_is_kept_and_used(small_coder: Coder):
    r = small_coder.code("operative", "warehouse", "I drive a fork lift truck")
    assert r.description == "I drive a fork lift truck"
    assert r.to_dict()["description"] == "I drive a fork lift truck"


def test_repeated_calls_are_cached_and_identical(small_coder: Coder):
    a = small_coder.code("warehouse operative")
    b = small_coder.code("Warehouse Operative.")
    assert a.candidates == b.candidates and a.normalised == b.normalised


# ---------------------------------------------------------------- the real model
GOLDEN = [
    ("snr software dev", None, "2132"),
    ("NURSE (NHS)", None, "3211"),
    ("self employed plumber", None, "5314"),
    ("HGV driver", None, "8211"),
    ("primary school teacher", None, "2315"),
    ("teaching asst", None, "6124"),
    ("accounts clerk", None, "4122"),
    ("postman", None, "9211"),
    ("hairdresser", None, "6221"),
    ("electrician", None, "5241"),
    ("police officer", None, "3312"),
    ("care assistant", None, "6115"),
    ("receptionist", None, "4216"),
    ("chef", None, "5434"),
    ("bus driver", None, "8213"),
    ("manager", "bank", "1151"),
    ("manager", "hotel", "1221"),
]


@pytest.mark.parametrize("title, industry, code", GOLDEN)
def test_golden_titles(coder: Coder, title, industry, code):
    r = coder.code(title, industry)
    assert r.code == code, (r.code, r.title, r.candidates[:3])
    assert r.confidence > 0.5 and r.confidence > 2 * r.candidates[1].confidence
    if industry is None and "(" not in title:
        # A plain, common title the index holds must be coded without a person. With an
        # industry the calibrated confidence is lower (held-out qualified index entries make
        # context look like a warning sign) and may fall just under the threshold: see README.
        assert r.status == "auto"


@pytest.mark.parametrize("title", ["manager", "engineer", "teacher", "director", "foreman"])
def test_vague_titles_are_referred_with_likely_codes(coder: Coder, title):
    r = coder.code(title)
    assert r.status == "refer"
    assert len(r.candidates) >= 2


def test_industry_changes_the_answer(coder: Coder):
    salon = coder.code("manager", "nail salon")
    bank = coder.code("manager", "bank")
    assert salon.code != bank.code
    assert salon.code in {"1233", "1239"}


def test_survey_answers_accuracy(coder: Coder):
    """Hand-checked survey-style answers: most clear ones right, vague ones not auto-coded."""
    df = pd.read_csv("benchmarks/survey_answers.csv", dtype=str, keep_default_na=False)
    results = coder.code_many(df["answer"], df["industry"].replace("", None))
    gold = df["soc2000"].to_numpy()
    clear = gold != ""
    top1 = np.mean([r.code == g for r, g in zip(np.array(results)[clear], gold[clear])])
    assert top1 >= 0.7, top1
    vague = df["note"].str.startswith("vague").to_numpy()
    assert all(r.status != "auto" for r in np.array(results)[vague])
    assert not math.isnan(top1)


def test_an_answer_gets_the_same_result_alone_and_in_a_batch(coder: Coder):
    """The page codes one title at a time, batch files thousands: the same answer must come
    back the same (code, confidences, status) either way, on the real model."""
    df = pd.read_csv("data/survey_answers_learn.csv", dtype=str, keep_default_na=False).head(150)
    args = (df["job_title"].tolist(), df["industry"].tolist(), df["job_description"].tolist())
    fresh = Coder(coder.model)
    batch = fresh.code_many(*args)
    alone = []
    for t, i, d in zip(*args):
        single = Coder(coder.model)  # no shared result cache
        alone.append(single.code(t, i, d))
    assert [(r.status, r.candidates) for r in batch] == [(r.status, r.candidates) for r in alone]



def test_distinct_answers_are_coded_a_slice_at_a_time_with_the_same_results(small_coder, monkeypatch):
    """Slicing a batch's distinct answers bounds its memory and changes nothing."""
    from coder import engine

    df = pd.read_csv("data/survey_answers_learn.csv", dtype=str, keep_default_na=False).head(40)
    args = (df["job_title"].tolist(), df["industry"].tolist(), df["job_description"].tolist())
    whole = Coder(small_coder.model).code_many(*args)
    monkeypatch.setattr(engine, "_DISTINCT_SLICE", 7)
    sliced = Coder(small_coder.model).code_many(*args)
    assert [(r.status, r.candidates) for r in sliced] == [(r.status, r.candidates) for r in whole]


def test_a_large_batch_gives_freed_memory_back(small_coder, monkeypatch):
    """A survey run's resident memory stays flat: after a large batch, freed heap pages are
    handed back (glibc keeps them otherwise); small batches do not pay for it."""
    from coder import _memory, engine

    if _memory._trim() is None:
        pytest.skip("no malloc_trim here (not glibc)")
    assert _memory.release_free_memory() is True
    calls = []
    monkeypatch.setattr(engine, "release_free_memory", lambda: calls.append(1))
    coder = Coder(small_coder.model)  # its own, empty cache
    coder.code_many([f"nurse {i}" for i in range(10)])
    assert calls == []
    coder.code_many([f"clerk {i}" for i in range(engine._TRIM_AFTER)])
    assert calls == [1]


def test_what_one_coder_learns_leaves_another_on_the_same_model_alone(small_coder):
    """Coders built on one model share its learned lookup until they learn something."""
    a, b = Coder(small_coder.model), Coder(small_coder.model)
    before = b.code("zzq widget polisher").candidates
    a.learn("zzq widget polisher", code="9139")
    assert a.code("zzq widget polisher").code == "9139"
    assert b.code("zzq widget polisher").candidates == before
    assert Coder(small_coder.model).code("zzq widget polisher").candidates == before
