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


def test_code_dask_dataframe_applies_decisions(answers, small_model_dir, small_coder, cluster, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    from distributed import Client

    from coder.decisions import DecisionStore, answer_key
    from coder.engine import Coder

    _, df = answers
    store = DecisionStore(tmp_path / "decisions.sqlite")
    title, industry, description = df.loc[3, ["job_title", "industry", "description"]]
    store.record("soc2000", (title, industry, description), answer_key(title, industry, description), "5241")
    expected = code_frame(df, "job_title", "industry", "description", k=3,
                          coder=Coder(small_coder.model, decisions=store))
    with Client(cluster) as client:
        lazy = code_dask_dataframe(dd.from_pandas(df, npartitions=3), "job_title", "industry", "description", k=3,
                                   model_dir=str(small_model_dir), decisions=store)
        got = client.compute(lazy).result().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
    assert set(got.loc[got["job_title"] == title, "soc2000"]) == {"5241"}


def test_dask_engine_applies_decisions_as_the_local_engine_does(answers, small_model_dir, cluster, tmp_path):
    """Decisions reach the Dask workers (which are not told where the store is): the same file
    as the local engine with the same store, decided answers coded as decided."""
    from coder.decisions import DecisionStore, answer_key

    d, df = answers
    store = DecisionStore(tmp_path / "decisions.sqlite")
    decided = {}
    for row, code in ((0, "9233"), (7, "5241"), (12, "3211")):
        title, industry, description = df.loc[row, ["job_title", "industry", "description"]]
        store.record("soc2000", (title, industry, description), answer_key(title, industry, description), code)
        decided[title] = code
    store.record("soc90", ("cleaner", None, None), answer_key("cleaner", None, None), "958")  # another scheme's
    common = ["--column", "job_title", "--industry-column", "industry", "--description-column", "description",
              "--chunk-size", "70", "--model-dir", str(small_model_dir), "--store", str(store.path), "--quiet"]
    local = CliRunner().invoke(cli, ["code", str(d / "in.csv"), "-o", str(tmp_path / "local.csv"), "--jobs", "1",
                                     *common])
    dask = CliRunner().invoke(cli, ["code", str(d / "in.csv"), "-o", str(tmp_path / "dask.csv"), "--engine", "dask",
                                    "--scheduler", cluster.scheduler_address, *common])
    assert local.exit_code == 0 and dask.exit_code == 0, (local.output, dask.output)
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    out = pd.read_csv(tmp_path / "dask.csv", dtype=str)
    got = dict(zip(out["job_title"], out["soc2000"]))
    assert {title: got[title] for title in decided} == decided
    assert set(out.loc[out["job_title"].isin(list(decided)), "method"]) == {"learned"}
    assert (tmp_path / "dask.csv").read_bytes() != (d / "local.csv").read_bytes()  # the decisions changed codes


def test_decision_snapshot_answers_as_its_store(tmp_path):
    from coder.decisions import DecisionStore, answer_key

    store = DecisionStore(tmp_path / "decisions.sqlite")
    for title, code in (("sparky", "5241"), ("sparky", "5241"), ("sparky", "5249"), ("bin man", "9235")):
        store.record("soc2000", (title, None, None), answer_key(title, None, None), code)
    snap = store.snapshot("soc2000")
    keys = [answer_key(t, None, None) for t in ("sparky", "bin man", "nurse")]
    assert snap.lookup("soc2000", keys) == store.lookup("soc2000", keys) and len(snap.lookup("soc2000", keys)) == 2
    assert sorted(snap.decided("soc2000")) == sorted(store.decided("soc2000"))
    assert snap.lookup("soc90", keys) == {} and snap.count("soc90") == 0 and snap.count("soc2000") == 2
    again = __import__("pickle").loads(__import__("pickle").dumps(snap))
    assert again.token == snap.token and again.lookup("soc2000", keys) == snap.lookup("soc2000", keys)
    store.record("soc2000", ("bin man", None, None), answer_key("bin man", None, None), "9235")
    assert store.snapshot("soc2000").token != snap.token  # another vote: another snapshot
    with pytest.raises(Exception, match="read-only"):
        snap.record("soc2000", ("x", None, None), answer_key("x", None, None), "1111")


def test_scheduler_needs_dask_engine(tmp_path):
    result = CliRunner().invoke(cli, ["code", "x.csv", "-o", "y.csv", "--column", "a", "--scheduler", "tcp://x:1"])
    assert result.exit_code == 2 and "--engine dask" in result.output


def test_worker_coder_keeps_one_model_and_the_latest_snapshots_coder(small_model_dir, tmp_path):
    """A worker loads its model once; a snapshot gets a coder on that same model, kept while
    the snapshot's token stands and replaced when another snapshot comes."""
    from coder.batch import cluster
    from coder.decisions import DecisionStore, answer_key

    store = DecisionStore(tmp_path / "decisions.sqlite")
    store.record("soc2000", ("sparky", None, None), answer_key("sparky", None, None), "5241")
    first = store.snapshot("soc2000")
    plain = cluster.worker_coder("soc2000", str(small_model_dir))
    deciding = cluster.worker_coder("soc2000", str(small_model_dir), decisions=first)
    assert deciding is not plain and deciding.decisions is first
    assert deciding.model.generator.table_ is plain.model.generator.table_  # one loaded model
    assert cluster.worker_coder("soc2000", str(small_model_dir), decisions=store.snapshot("soc2000")) is deciding
    assert deciding.code("sparky").code == "5241"
    store.record("soc2000", ("sparky", None, None), answer_key("sparky", None, None), "5241")
    again = cluster.worker_coder("soc2000", str(small_model_dir), decisions=store.snapshot("soc2000"))
    assert again is not deciding and cluster.worker_coder("soc2000", str(small_model_dir)) is plain
