"""Parallel coding gives the same file as coding in one process: worker pool and Dask, with
industries and descriptions as context."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from coder.batch import code_dask_dataframe, code_file, code_frame
from coder.cli import cli

TITLES = ["staff nurse", "Care Assistant", "HGV driver", "teacher", "snr software dev", "cleaner",
          "accounts clerk", "sales assistant", "electrician", "chef"]


def distinct_survey(n: int) -> pd.DataFrame:
    words = ["senior", "junior", "trainee", "assistant", "chief", "part time", "relief", "lead"]
    titles = [f"{words[i % len(words)]} {TITLES[(i // len(words)) % len(TITLES)]} {i}" for i in range(n)]
    industries = ["NHS hospital", "care home", "", "primary school", "bank"]
    descriptions = ["looks after patients", "", "drives a forklift", "teaches children"]
    return pd.DataFrame({"id": [str(i) for i in range(n)], "job_title": titles,
                         "industry": [industries[i % 5] for i in range(n)],
                         "description": [descriptions[i % 4] for i in range(n)]})


@pytest.fixture(scope="module")
def answers(tmp_path_factory, small_model_dir):
    """300 answers (150 distinct) and their single-process coding."""
    d = tmp_path_factory.mktemp("par")
    df = pd.concat([distinct_survey(150)] * 2, ignore_index=True)
    df["id"] = [str(i) for i in range(len(df))]
    df.to_csv(d / "in.csv", index=False)
    code_file(d / "in.csv", d / "local.csv", "job_title", industry_column="industry",
              description_column="description", jobs=1, chunk_size=70, model_dir=small_model_dir)
    return d, df


def test_worker_pool_matches_single_process(answers, small_model_dir):
    d, _ = answers
    summary = code_file(d / "in.csv", d / "pool.csv", "job_title", industry_column="industry",
                        description_column="description", jobs=2, chunk_size=70, model_dir=small_model_dir,
                        parallel_min=1)
    assert summary.workers == 2
    assert (d / "pool.csv").read_bytes() == (d / "local.csv").read_bytes()


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_engine_matches_local_engine(answers, small_model_dir, cluster):
    d, _ = answers
    result = CliRunner().invoke(cli, [
        "code", str(d / "in.csv"), "-o", str(d / "dask.csv"), "--column", "job_title",
        "--industry-column", "industry", "--description-column", "description", "--chunk-size", "70",
        "--model-dir", str(small_model_dir),
        "--engine", "dask", "--scheduler", cluster.scheduler_address, "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert (d / "dask.csv").read_bytes() == (d / "local.csv").read_bytes()


def test_code_dask_dataframe_matches_code_frame(answers, small_model_dir, small_coder, cluster):
    dd = pytest.importorskip("dask.dataframe")
    from distributed import Client

    _, df = answers
    expected = code_frame(df, "job_title", "industry", "description", coder=small_coder, k=3)
    with Client(cluster) as client:
        ddf = dd.from_pandas(df, npartitions=3)
        lazy = code_dask_dataframe(ddf, "job_title", "industry", "description", k=3,
                                   model_dir=str(small_model_dir))
        assert list(lazy.columns) == list(expected.columns)
        got = client.compute(lazy).result()
        # one model load per worker process, reused by every partition it ran
        loads = client.run(lambda: len(__import__("coder.batch.cluster").batch.cluster._CODERS))
    assert set(loads.values()) <= {0, 1}
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)


def test_dask_engine_refuses_a_store_with_decisions(answers, small_model_dir, tmp_path):
    """Dask workers code with the model alone: a store holding decisions for the scheme is an
    error naming the way out, not answers coded otherwise than the local engine codes them."""
    from coder.decisions import DecisionStore, answer_key

    d, store = answers[0], tmp_path / "decisions.sqlite"
    args = ["code", str(d / "in.csv"), "-o", str(tmp_path / "dask.csv"), "--column", "job_title",
            "--model-dir", str(small_model_dir), "--engine", "dask", "--store", str(store), "--quiet"]
    DecisionStore(store).record("soc90", ("cleaner", None, None), answer_key("cleaner", None, None), "958")
    DecisionStore(store).record("soc2000", ("cleaner", None, None), answer_key("cleaner", None, None), "9233")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--engine local" in result.output and "--no-decisions" in result.output
    assert "holds 1 for soc2000" in result.output  # only this scheme's decisions count
    assert not (tmp_path / "dask.csv").exists()


def test_scheduler_needs_dask_engine(tmp_path):
    result = CliRunner().invoke(cli, ["code", "x.csv", "-o", "y.csv", "--column", "a", "--scheduler", "tcp://x:1"])
    assert result.exit_code == 2 and "--engine dask" in result.output
