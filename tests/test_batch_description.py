"""The description field in batch coding (issue 9, item 1): `code_frame`, `code_file`, the CLI,
resume; each distinct (title, industry, description) coded once, every row and column kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from coder import InputError
from coder.batch import code_file, code_frame, output_columns
from coder.batch.frame import factorize_keys
from coder.batch.runner import state_path
from coder.cli import cli

TITLES = ["Sales assistant", "Factory operative", "Manager", "nurse", "teacher", ""]
INDUSTRIES = ["supermarket", "food factory", "pub", "", None]
DESCRIPTIONS = ["replenishes shelves and reduces dated products", "forklift driver", "runs the pub",
                "", "N/A", None, "same as above"]


def answers(n: int = 70) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"R{i:03d}" for i in range(n)],
        "job_title": [TITLES[i % len(TITLES)] for i in range(n)],
        "industry": [INDUSTRIES[i % len(INDUSTRIES)] for i in range(n)],
        "what_do": [DESCRIPTIONS[i % len(DESCRIPTIONS)] for i in range(n)],
        "region": ["0110"] * n,
    })


class Recorder:
    """Wraps a Coder and records every (title, industry, description) it is asked to code."""

    def __init__(self, coder):
        self.coder = coder
        self.scheme_name = coder.scheme_name
        self.threshold = coder.threshold
        self.keys: list[tuple] = []

    def code_many(self, titles, industries=None, descriptions=None, *, k=5):
        titles = list(titles)
        self.keys += list(zip(titles, industries or [None] * len(titles), descriptions or [None] * len(titles)))
        return self.coder.code_many(titles, industries, descriptions, k=k)


def as_key(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def test_code_frame_passes_descriptions_to_the_engine(small_coder):
    df = answers()
    out = code_frame(df, "job_title", "industry", "what_do", coder=small_coder, k=3)
    assert list(out.columns) == [*df.columns, *output_columns("soc2000", 3)]
    pd.testing.assert_frame_equal(out[df.columns], df)
    expected = small_coder.code_many(df["job_title"], df["industry"], df["what_do"], k=3)
    assert out["soc2000"].tolist() == [r.code for r in expected]
    assert out["status"].tolist() == [r.status for r in expected]
    assert out["reason"].tolist() == [str(r.reason) for r in expected]
    assert np.allclose(out["confidence"], [round(r.confidence, 3) for r in expected])


def test_each_distinct_answer_is_coded_once_across_chunks(tmp_path, small_coder):
    df = answers(140)
    df.to_csv(tmp_path / "in.csv", index=False)
    recorder = Recorder(small_coder)
    summary = code_file(tmp_path / "in.csv", tmp_path / "out.csv", "job_title", industry_column="industry",
                        description_column="what_do", coder=recorder, chunk_size=9, jobs=1)
    read = pd.read_csv(tmp_path / "in.csv", dtype=str, keep_default_na=False)
    distinct = set(zip(read["job_title"], read["industry"], read["what_do"]))
    assert len(recorder.keys) == len(set(recorder.keys)) == len(distinct) == summary.distinct_coded
    assert set(recorder.keys) == distinct
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(out[read.columns], read)
    by_frame = code_frame(read, "job_title", "industry", "what_do", coder=small_coder, k=1)
    assert out["soc2000"].tolist() == by_frame["soc2000"].tolist()


def test_descriptions_are_part_of_the_key(small_coder):
    """The same title and industry with two descriptions is two answers, coded apart."""
    df = pd.DataFrame({"t": ["Sales assistant"] * 4, "d": ["replenishes shelves", "serves customers"] * 2})
    recorder = Recorder(small_coder)
    code_frame(df, "t", description_column="d", coder=recorder)
    assert sorted(recorder.keys) == [("Sales assistant", None, "replenishes shelves"),
                                     ("Sales assistant", None, "serves customers")]


def test_missing_description_column_is_a_clear_error(tmp_path, small_coder, small_model_dir):
    df = answers(4)
    with pytest.raises(InputError, match=r"no column 'what_you_do' \(description column\).*'what_do'"):
        code_frame(df, "job_title", description_column="what_you_do", coder=small_coder)
    df.to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(cli, ["code", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"),
                                      "--column", "job_title", "--description-column", "what_you_do",
                                      "--model-dir", str(small_model_dir)])
    assert result.exit_code == 2 and "'what_you_do' (description column)" in result.output
    assert not (tmp_path / "out.csv").exists()


def test_cli_description_column_and_resume(tmp_path, small_model_dir, small_coder, monkeypatch):
    from coder.batch import runner as runner_module

    df = answers(60)
    df["job_title"] = [f"{t} {i}" for i, t in enumerate(df["job_title"])]
    df.to_csv(tmp_path / "in.csv", index=False)
    args = ["code", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"), "--column", "job_title",
            "--industry-column", "industry", "--chunk-size", "20", "--jobs", "1", "--quiet",
            "--model-dir", str(small_model_dir)]
    real, calls = runner_module.LocalBackend.__call__, {"n": 0}

    def flaky(self, keys):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, keys)

    with monkeypatch.context() as m:
        m.setattr(runner_module.LocalBackend, "__call__", flaky)
        CliRunner().invoke(cli, [*args, "--description-column", "what_do"])
    assert state_path(tmp_path / "out.parquet").exists()
    refused = CliRunner().invoke(cli, [*args, "--resume"])
    assert refused.exit_code == 2 and "--description-column differs" in refused.output
    result = CliRunner().invoke(cli, [*args, "--description-column", "what_do", "--resume"])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(tmp_path / "out.parquet")
    read = pd.read_csv(tmp_path / "in.csv", dtype=str, keep_default_na=False)
    assert out[read.columns].astype(str).equals(read)
    expected = code_frame(read, "job_title", "industry", "what_do", coder=small_coder, k=1)
    assert out["soc2000"].tolist() == expected["soc2000"].tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", None, "", "nan"]), st.sampled_from(["x", None, ""]),
                          st.sampled_from(["d", None, "e"])), max_size=40),
       st.sampled_from([(0, 1, 2), (0, 1), (0, 2), (0,)]))
def test_factorize_keys_matches_a_simple_reference(rows, used):
    """The vectorised keys equal a dict built row by row (None for absent columns)."""
    cols = [pd.Series([r[j] for r in rows], dtype=object) if j in used else None for j in range(3)]
    inv, keys = factorize_keys(cols)
    seen: dict[tuple, int] = {}
    expected_inv = [seen.setdefault(tuple(as_key(r[j]) if j in used else None for j in range(3)), len(seen))
                    for r in rows]
    assert inv.tolist() == expected_inv and keys == list(seen)
