"""Progress people can trust: the coding bar moves within a chunk (so on small files too), the
rate counts coding time only (loading the model is reported apart), and a model build drives
a determinate bar while plain callbacks get the same lines as ever."""

from __future__ import annotations

import io
import re
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from coder import Coder
from coder import build as build_module
from coder.batch import code_file
from coder.batch.commands import summary_line
from coder.build import build_model
from coder.cli import cli
from coder.index import load_index
from coder.progress import BuildPlan, CodingProgress, RowBar, StepBar, step
from coder.store import ensure_built, model_files

ROWS, DISTINCT = 4_000, 2_500  # one chunk (the default is 100,000 rows); 2,500 new answers
WORDS = ["senior", "junior", "trainee", "assistant", "chief", "part time", "relief", "lead"]
TITLES = ["staff nurse", "care assistant", "hgv driver", "teacher", "software developer", "cleaner",
          "accounts clerk", "sales assistant", "electrician", "chef"]


def survey(rows: int, distinct: int) -> pd.DataFrame:
    """``rows`` answers of which ``distinct`` differ, the first of each in file order."""
    titles = [f"{WORDS[i % len(WORDS)]} {TITLES[(i // len(WORDS)) % len(TITLES)]} {i}" for i in range(distinct)]
    picked = [titles[i % distinct] for i in range(rows)]
    return pd.DataFrame({"id": [str(i) for i in range(rows)], "job_title": picked,
                         "industry": ["NHS"] * rows})


@pytest.fixture(scope="module")
def one_chunk(tmp_path_factory, small_coder):
    """A single-chunk file and its coding without any progress reporting."""
    d = tmp_path_factory.mktemp("progress")
    survey(ROWS, DISTINCT).to_csv(d / "in.csv", index=False)
    code_file(d / "in.csv", d / "plain.csv", "job_title", industry_column="industry", coder=small_coder, jobs=1)
    return d


def _check_moving(reports: list[CodingProgress], rows: int, distinct: int, at_least: int) -> None:
    assert [r.rows for r in reports] == sorted(r.rows for r in reports), "rows never go back"
    assert [r.distinct for r in reports] == sorted(r.distinct for r in reports)
    assert [r.seconds for r in reports] == sorted(r.seconds for r in reports)
    inside = {(r.rows, r.distinct) for r in reports if 0 < r.rows < rows}
    assert len(inside) >= at_least, f"the bar should move inside the only chunk: {reports}"
    assert reports[-1].rows == rows and reports[-1].distinct == distinct


def test_progress_moves_within_a_single_chunk(one_chunk, small_coder):
    d = one_chunk
    reports: list[CodingProgress] = []
    summary = code_file(d / "in.csv", d / "reported.csv", "job_title", industry_column="industry",
                        coder=Coder(small_coder.model), jobs=1, on_progress=reports.append)
    assert summary.rows == ROWS and summary.distinct_coded == DISTINCT
    _check_moving(reports, ROWS, DISTINCT, at_least=2)
    # Batches of a thousand new answers: each is reported with the rows it stands for.
    assert {1_000, 2_000} <= {r.distinct for r in reports}
    assert all(r.total is not None and r.resumed_from == 0 for r in reports)
    assert (d / "reported.csv").read_bytes() == (d / "plain.csv").read_bytes(), "progress changes no output byte"


def test_worker_pool_reports_each_batch(one_chunk, small_model_dir):
    d = one_chunk
    reports: list[CodingProgress] = []
    summary = code_file(d / "in.csv", d / "pool.csv", "job_title", industry_column="industry", jobs=2,
                        model_dir=small_model_dir, parallel_min=1, on_progress=reports.append)
    assert summary.workers == 2
    _check_moving(reports, ROWS, DISTINCT, at_least=4)  # batches of ~300 from either process
    assert (d / "pool.csv").read_bytes() == (d / "plain.csv").read_bytes()


class Crash(Exception):
    pass


def test_resumed_run_reports_from_where_it_stopped(tmp_path, small_coder):
    survey(600, 600).to_csv(tmp_path / "in.csv", index=False)
    args = (tmp_path / "in.csv", tmp_path / "out.csv", "job_title")
    code_file(tmp_path / "in.csv", tmp_path / "whole.csv", "job_title", coder=small_coder, chunk_size=200, jobs=1)

    def crash_in_second_chunk(report: CodingProgress) -> None:
        if report.rows > 200:  # the second chunk's answers are coded, not yet written
            raise Crash

    with pytest.raises(Crash):
        code_file(*args, coder=small_coder, chunk_size=200, jobs=1, on_progress=crash_in_second_chunk)
    reports: list[CodingProgress] = []
    summary = code_file(*args, coder=small_coder, chunk_size=200, jobs=1, resume=True, on_progress=reports.append)
    assert summary.resumed_from == 200 and summary.rows == 600
    assert reports[0].rows >= 200 and all(r.resumed_from == 200 for r in reports)
    assert reports[-1].rows == 600
    # The rate is over the rows this run coded, in this run's coding time.
    assert summary.rows_per_second == pytest.approx(400 / summary.coding_seconds)
    assert "200 of them before resuming" in summary_line(summary)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


@pytest.fixture
def slow_load(monkeypatch):
    """Loading a model takes 1.5 s longer than it does."""
    load = Coder.load.__func__

    def slow(cls, *args, **kwargs):
        time.sleep(1.5)
        return load(cls, *args, **kwargs)

    monkeypatch.setattr(Coder, "load", classmethod(slow))


def test_rate_counts_coding_time_only(one_chunk, small_model_dir, slow_load):
    d = one_chunk
    summary = code_file(d / "in.csv", d / "slow.csv", "job_title", industry_column="industry", jobs=1,
                        model_dir=small_model_dir)
    assert summary.load_seconds >= 1.5 and not summary.model_built
    assert summary.coding_seconds is not None and summary.coding_seconds <= summary.seconds - 1.5
    assert summary.rows_per_second == pytest.approx(ROWS / summary.coding_seconds)
    assert summary.rows_per_second > ROWS / summary.seconds


def test_summary_line_reports_the_load_apart(one_chunk, small_model_dir, slow_load):
    d = one_chunk
    result = CliRunner().invoke(cli, ["code", str(d / "in.csv"), "-o", str(d / "cli.csv"), "--column", "job_title",
                                      "--industry-column", "industry", "--jobs", "1", "--model-dir",
                                      str(small_model_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = re.search(r"coded ([\d,]+) rows \(([\d,]+) distinct answers coded\) in ([\d.]+)s, ([\d,]+) rows/s, "
                      r"after ([\d.]+)s loading the model: ", result.output)
    assert found, result.output
    rows, _, coding, rate, load = (float(g.replace(",", "")) for g in found.groups())
    assert rows == ROWS and load >= 1.5
    assert rate > rows / (coding + load), "the rate must not include loading the model"
    assert rows / (coding + 0.05) <= rate <= rows / max(coding - 0.05, 0.01)  # coding time shown to 0.1 s
    assert (d / "cli.csv").read_bytes() == (d / "plain.csv").read_bytes()


def test_row_bar_shows_rows_rate_time_left_and_distinct_answers():
    out = io.StringIO()
    bar = RowBar(1_000, desc="coding in.csv", file=out, tick=None)
    bar.bar.mininterval = 0  # draw every report
    for i in range(1, 4):
        bar(CodingProgress(rows=250 * i, total=1_000, distinct=100 * i, seconds=0.1 * i))
    text = out.getvalue()
    assert "750/1.00k" in text and "300 distinct answers" in text and "rows/s" in text and "<" in text
    bar.close(rows=1_000)
    assert "100%" in out.getvalue() and "1.00k/1.00k" in out.getvalue()


class Recorder(StepBar):
    """A build bar writing into a string, remembering where it stood at the start of every step."""

    def __init__(self) -> None:
        super().__init__(file=io.StringIO(), tick=None)
        self.lines: list[str] = []
        self.totals: list[float | None] = []
        self.stops: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        super().__call__(message)

    def begin(self, total: float | None, desc: str, kinds: dict[str, float] | None = None) -> None:
        self.totals.append(total)
        super().begin(total, desc, kinds)

    def start(self, status: str, units: float = 0.0, kind: str | None = None) -> None:
        super().start(status, units, kind)
        self.stops.append((self.bar.n, status))

    def finish(self) -> None:
        self.stops.append((self.bar.total, "finished"))
        super().finish()


@pytest.fixture(scope="module")
def tiny_build():
    """A tiny build (every 200th index entry, 2 folds), reported both to a bar and, through the
    same calls, to a plain callback."""
    entries, _ = load_index()
    bar, plain = Recorder(), []
    real_step = build_module.step

    def both(progress, *args, **kwargs):
        real_step(progress, *args, **kwargs)
        real_step(plain.append, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build_module, "step", both)
        model = build_model("soc2000", entries=entries[::200], folds=2, answers=None, progress=bar)
    return model, bar, plain


def test_plain_build_progress_keeps_its_lines(tiny_build):
    _, _, plain = tiny_build
    assert len(plain) == 6 and all(re.fullmatch(rf"fold {k}/2: [\d,]+ queries in \d+s", plain[k - 1]) for k in (1, 2))
    assert plain[2:] == ["ranker 1/3", "ranker 2/3", "ranker 3/3", "fitting the shipped stages on every entry"]


def test_build_drives_a_determinate_bar(tiny_build):
    _, bar, plain = tiny_build
    total = BuildPlan(2).total
    assert bar.totals == [total]
    positions = [n for n, _ in bar.stops]
    assert positions == sorted(positions) and len(set(positions)) >= 12, "the bar moves step by step"
    assert positions[-2] == pytest.approx(total - BuildPlan(2).calibrate), "only the calibration left"
    assert bar.stops[-1] == (total, "finished") and bar.bar is None, "it ends full, and is gone"
    statuses = {now for _, now in bar.stops}
    assert {"fold 1/2: fitting the stages", "fold 2/2: labelling", "ranker 3/3", "calibrating",
            "fitting the shipped stages on every entry"} <= statuses
    assert bar.lines == plain[:2], "lines above the bar: the folds; the rest is the bar's status"
    drawn = bar.file.getvalue()
    assert "100%" in drawn and " left, ranker 3/3]" in drawn, "time left is shown once steps are timed"


def test_ensure_built_closes_the_bar_and_reports_the_build(tiny_build, tmp_path):
    model, _, _ = tiny_build
    bar = Recorder()
    bar.begin(10, "building soc2000")  # as if the build had begun its bar
    ensure_built("soc2000", tmp_path, progress=bar, builder=lambda: model, options={"test": "progress"})
    assert model_files("soc2000", tmp_path, options={"test": "progress"})[0].is_file()
    assert bar.bar is None
    assert bar.lines[0].startswith("building the soc2000 model (no built model)")
    assert re.fullmatch(r"built the soc2000 model in \d+s", bar.lines[-1])


def test_step_sends_plain_callbacks_one_line_at_most():
    lines: list[str] = []
    step(lines.append, "fold 1/2: fitting the stages", 3.0, "fit")
    step(lines.append, "ranker 1/3", 1.0, "ranker", plain="ranker 1/3")
    step(lines.append, line="fold 1/2: 10 queries in 1s", plain="unused")
    step(None, "x", 1.0, line="y")
    assert lines == ["ranker 1/3", "fold 1/2: 10 queries in 1s"]


def test_time_left_learns_how_long_each_kind_of_step_takes(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("coder.progress.time.perf_counter", lambda: clock[0])
    bar = StepBar(file=io.StringIO(), tick=None)
    bar.begin(40.0, "building", {"fit": 20.0, "ranker": 20.0})
    bar.start("fit 1", 10.0, "fit")
    assert bar.seconds_left() is None, "no guess before a step is timed"
    clock[0] = 10.0  # fits: 1 s a unit
    bar.start("ranker 1", 10.0, "ranker")
    assert bar.seconds_left() == pytest.approx(30.0), "rankers not timed yet: at the average"
    clock[0] = 60.0  # rankers: 5 s a unit, far slower than planned
    bar.start("fit 2", 10.0, "fit")
    assert bar.seconds_left() == pytest.approx(10.0 + 50.0)
    clock[0] = 64.0  # the running fit counts down
    assert bar.seconds_left() == pytest.approx(6.0 + 50.0)
    clock[0] = 80.0  # and, late, counts as nothing more, never below
    assert bar.seconds_left() == pytest.approx(50.0)
    bar.finish()
    assert bar.bar is None


def test_a_build_in_processes_moves_its_bar_as_pieces_end():
    """With a pool, the folds and then the rankers run side by side: the bar moves as each
    ends, lines report each fold, and it ends full."""
    entries, _ = load_index()
    bar = Recorder()
    build_model("soc2000", entries=entries[::200], folds=2, answers=None, progress=bar, jobs=2)
    plan = BuildPlan(2, parallel=True)
    assert bar.totals == [plan.total] and set(plan.kinds) == {"queries", "folds", "ranker", "calibrate"}
    positions = [n for n, _ in bar.stops]
    assert positions == sorted(positions) and bar.stops[-1] == (plan.total, "finished")
    statuses = [now for _, now in bar.stops]
    assert "coding the folds: 1/2 done" in statuses and "rankers and shipped stages: 3/4 done" in statuses
    assert sorted(line.split(":")[0] for line in bar.lines) == ["fold 1/2", "fold 2/2"]


def test_the_bar_creeps_through_a_long_step_at_the_expected_pace(monkeypatch):
    """Between steps a tick moves the bar by the time the running step should take (never
    past `CREEP` of it); the step's end puts it exactly at the step's end."""
    clock = [0.0]
    monkeypatch.setattr("coder.progress.time.perf_counter", lambda: clock[0])
    bar = StepBar(file=io.StringIO(), tick=None)
    bar.begin(100.0, "building", {"fit": 40.0, "folds": 60.0})
    bar.start("fit", 40.0, "fit")
    bar._redraw()
    assert bar.bar.n == 0.0, "nothing timed yet: no guess"
    clock[0] = 40.0  # fits: 1 s a unit
    bar.start("folds", 60.0, "folds")
    assert bar.bar.n == 40.0
    clock[0] = 70.0  # half the 60 s the folds should take (at the average pace)
    bar._redraw()
    assert bar.bar.n == pytest.approx(40.0 + 60.0 * 0.5 * StepBar.CREEP)
    clock[0] = 500.0  # far longer than expected: it waits short of the step's end
    bar._redraw()
    assert bar.bar.n == pytest.approx(40.0 + 60.0 * StepBar.CREEP)
    bar.finish()
