"""Interrupt a run anywhere, then ``--resume``: the output is what an uninterrupted run writes.

Two kinds of interruption, each at seeded random points:

* in process, fast: an exception (a crash, or Ctrl-C) raised while coding a chunk, half-way
  through writing output bytes, after a part file is written but before it is renamed, or
  while saving the resume state; sometimes again during the resumed run;
* a real ``SIGKILL`` of ``coder code`` running in its own process, at a random moment, twice.

CSV and Parquet output must be byte-identical to an uninterrupted run. Excel and Stata files
carry their creation time, so two runs never give the same bytes; their content must be equal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from coder.batch import code_file
from coder.batch import formats as formats_module
from coder.batch import runner as runner_module
from coder.batch.runner import state_path
from coder.cli import cli

TITLES = ["staff nurse", "Care Assistant", "HGV driver", "teacher", "snr software dev", "cleaner",
          "accounts clerk", "sales assistant", "electrician", "chef"]
FORMATS = ["csv", "parquet", "xlsx", "dta"]
ROWS, CHUNK = 100, 20


class Crash(Exception):
    """A simulated crash."""


def distinct_survey(n: int) -> pd.DataFrame:
    """Mostly distinct answers, so every chunk has new titles to code."""
    words = ["senior", "junior", "trainee", "assistant", "chief", "part time", "relief", "lead"]
    titles = [f"{words[i % len(words)]} {TITLES[(i // len(words)) % len(TITLES)]} {i}" for i in range(n)]
    return pd.DataFrame({"id": [str(i) for i in range(n)], "job_title": titles,
                         "industry": ["NHS", "", "school", "shop", "bank"] * (n // 5),
                         "note": ["=1+1", "0110", "", "-9", "x"] * (n // 5)})


def run(d, out, coder, **kw):
    return code_file(d / "in.csv", out, "job_title", industry_column="industry", coder=coder,
                     chunk_size=CHUNK, jobs=1, codebook=out.with_name(out.stem + "_cb.csv"),
                     refer=out.with_name(out.stem + "_refer" + out.suffix), **kw)


def read(path):
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=str, keep_default_na=False)
    return pd.read_stata(path, convert_categoricals=False)


def assert_same_output(got, want):
    for suffix in ("", "_refer"):
        a, b = got.with_name(got.stem + suffix + got.suffix), want.with_name(want.stem + suffix + want.suffix)
        if got.suffix in (".csv", ".parquet"):
            assert a.read_bytes() == b.read_bytes(), a.name
        else:
            pd.testing.assert_frame_equal(read(a), read(b))
    assert got.with_name(got.stem + "_cb.csv").read_bytes() == want.with_name(want.stem + "_cb.csv").read_bytes()
    assert not list(got.parent.glob(f".{got.name}*")), "no partial, part or state files left"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_coder):
    d = tmp_path_factory.mktemp("resume")
    distinct_survey(ROWS).to_csv(d / "in.csv", index=False)
    for fmt in FORMATS:
        run(d, d / f"ref.{fmt}", small_coder)
    return d


# --------------------------------------------------------------------------- in-process faults


def arm(monkeypatch, rng: random.Random, fmt: str) -> str:
    """Patch one random place of a run to fail on its n-th call; returns what was chosen."""
    where = rng.choice(["coding", "state", "output bytes" if fmt == "csv" else "part file"])
    n = rng.randint(1, ROWS // CHUNK)
    exc = rng.choice([Crash, KeyboardInterrupt])
    calls = {"n": 0}

    def due() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    if where == "coding":
        real_code = runner_module.LocalBackend.__call__

        def code(self, keys):
            if due():
                raise exc("while coding")
            return real_code(self, keys)

        monkeypatch.setattr(runner_module.LocalBackend, "__call__", code)
    elif where == "output bytes":
        real_append = formats_module.TextSink.append

        class HalfWriter:
            def __init__(self, fh):
                self.fh = fh

            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                raise exc("half-way through writing")

        def append(self, frame):
            if due():
                self._fh, real_fh = HalfWriter(self._fh), self._fh
                try:
                    real_append(self, frame)
                finally:
                    self._fh = real_fh
            return real_append(self, frame)

        monkeypatch.setattr(formats_module.TextSink, "append", append)
    elif where == "part file":
        for name in ("_write_parquet_part", "_write_csv_part"):
            real = getattr(formats_module, name)

            def write(frame, path, real=real):
                result = real(frame, path)
                if due():
                    raise exc("part written, not yet renamed")
                return result

            monkeypatch.setattr(formats_module, name, write)
    else:
        real_state = runner_module._write_json_atomic

        def save(path, data):
            if due():
                raise exc("while saving the state")
            return real_state(path, data)

        monkeypatch.setattr(runner_module, "_write_json_atomic", save)
    return f"{where}, call {n}, {exc.__name__}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", range(3))
def test_interrupt_anywhere_then_resume(reference, tmp_path, small_coder, monkeypatch, fmt, seed):
    rng = random.Random(f"{fmt}-{seed}")
    (tmp_path / "in.csv").write_bytes((reference / "in.csv").read_bytes())
    out = tmp_path / f"out.{fmt}"
    attempts = []
    for attempt in range(rng.choice([1, 2])):  # sometimes the resumed run is interrupted too
        before = out.read_bytes() if out.exists() else None  # a finished run may be there
        with monkeypatch.context() as m:
            attempts.append(arm(m, rng, fmt))
            try:
                run(tmp_path, out, small_coder, resume=attempt > 0)
            except (Crash, KeyboardInterrupt):  # the target is never created or replaced half-done
                assert (out.read_bytes() if out.exists() else None) == before, attempts
    run(tmp_path, out, small_coder, resume=True)
    assert_same_output(out, reference / f"ref.{fmt}")


# --------------------------------------------------------------------------- real SIGKILL


@pytest.mark.parametrize("seed, fmt", [(0, "csv"), (1, "parquet")])
def test_sigkill_at_random_moments_then_resume(reference, tmp_path, small_model_dir, seed, fmt):
    rng = random.Random(seed)
    rows = 1200  # long enough that the first kill lands mid-run
    distinct_survey(rows).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / f"out.{fmt}"
    args = ["code", str(tmp_path / "in.csv"), "-o", str(out), "--column", "job_title", "--industry-column",
            "industry", "--chunk-size", "20", "--jobs", "1", "--quiet", "--model-dir", str(small_model_dir),
            "--codebook", str(tmp_path / "cb.csv")]
    done = []
    for kill in range(2):
        cmd = [sys.executable, "-m", "coder", *args, *(["--resume"] if kill else [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.monotonic()
        while not state_path(out).exists() and proc.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.02)  # wait for the first checkpoint (or the end), then a random moment
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # The target appears only whole: from a run that got to the end (a kill may still land
        # after that, while it tidies up or shuts down), never from one cut short mid-file.
        if out.exists():
            whole = pd.read_csv(out, dtype=str) if fmt == "csv" else pd.read_parquet(out)
            assert len(whole) == rows
        if state_path(out).exists():
            done.append(json.loads(state_path(out).read_text())["rows"])
    assert done and 0 < done[0] < rows, done  # the first kill landed mid-run
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    full = tmp_path / f"full.{fmt}"
    full_args = [a if a not in (str(out), str(tmp_path / "cb.csv")) else str(full) if a == str(out)
                 else str(tmp_path / "full_cb.csv") for a in args]
    assert CliRunner().invoke(cli, full_args).exit_code == 0
    assert out.read_bytes() == full.read_bytes()
    assert (tmp_path / "cb.csv").read_bytes() == (tmp_path / "full_cb.csv").read_bytes()
    assert not list(tmp_path.glob(f".{out.name}*"))
