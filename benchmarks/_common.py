"""Helpers the benchmark scripts share: which code was measured, latency percentiles and peak
memory. Used by `benchmarks.run` and `benchmarks.service_bench`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["REPO", "log", "git_state", "git_commit", "latency_summary", "PeakRSS", "vm_hwm", "load_average",
           "built_folder", "zipf_rows"]

REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    """Progress to stderr (stdout carries results)."""
    print(message, file=sys.stderr, flush=True)


def built_folder(scheme: str, directory: str | Path) -> Path | None:
    """Folder of the current build of ``scheme`` in ``directory``, else of the newest stale one
    (content-addressed folders: a code or library change gives the current build a new name).
    Here, not in `benchmarks.devsets`, so the speed worker does not import pandas to find it."""
    from coder.store import model_files

    path, manifest = model_files(scheme, directory)
    if path.is_file() and manifest.is_file():
        return path.parent
    built = [m.parent for m in Path(directory).glob(f"{scheme}-*/manifest.json") if (m.parent / "model.joblib").is_file()]
    return max(built, key=lambda f: (f / "manifest.json").stat().st_mtime) if built else None


# How survey-like rows are drawn from a pool of answers (`zipf_rows`): the speed, batch and
# memory benchmarks draw the same way.
SURVEY_DRAW = {"exponent": 1.1, "seed": 0}


def zipf_rows(pool_len: int, n_rows: int, *, exponent: float = 1.1, seed: int = 0):
    """``n_rows`` indices into a pool, rank r drawn with probability proportional to 1/r**exponent."""
    import numpy as np

    weights = 1.0 / np.arange(1, pool_len + 1) ** exponent
    return np.random.default_rng(seed).choice(pool_len, size=n_rows, p=weights / weights.sum())


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages, rounded (other work on the machine moves timings)."""
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------ git
def git_state(repo: str | Path = REPO) -> dict[str, object]:
    """``{"commit": short id or None, "dirty": tracked files changed since it}``."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or None
    dirty = bool(commit) and bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "dirty": dirty}


def git_commit(repo: str | Path = REPO) -> str:
    """The commit measured, as one string: ``a60b560``, ``a60b560+uncommitted changes``, or
    ``unknown (not a git checkout)``."""
    state = git_state(repo)
    if not state["commit"]:
        return "unknown (not a git checkout)"
    return f"{state['commit']}" + ("+uncommitted changes" if state["dirty"] else "")


# ------------------------------------------------------------------------------ latency
def latency_summary(seconds: Sequence[float], quantiles: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Latencies in milliseconds: ``n``, ``p<q>`` for each quantile, ``mean`` and ``max``
    (only ``n`` when there are none).

    >>> latency_summary([0.001, 0.002, 0.003], quantiles=(50,))
    {'n': 3, 'p50': 2.0, 'mean': 2.0, 'max': 3.0}
    """
    import numpy as np

    ms = np.asarray(seconds, dtype=float) * 1000
    out: dict[str, float] = {"n": int(len(ms))}
    if len(ms):
        out.update({f"p{q}": round(float(np.percentile(ms, q)), 3) for q in quantiles})
        out.update(mean=round(float(ms.mean()), 3), max=round(float(ms.max()), 3))
    return out


# ------------------------------------------------------------------------------ memory
def vm_hwm(pid: int | None = None) -> int | None:
    """The kernel's peak RSS of a process image (Linux ``VmHWM``), in bytes; None elsewhere.

    Not ``ru_maxrss``: that survives ``exec`` and so reports the parent's peak in a child.
    """
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            try:
                return int(line.split()[1]) * 1024
            except (ValueError, IndexError):
                return None
    return None


class PeakRSS:
    """Peak resident set size of a process (this one by default): psutil sampled on a thread
    every ``interval`` seconds, and the kernel's VmHWM where there is one.

    >>> with PeakRSS() as mem:                      # doctest: +SKIP
    ...     work()
    >>> mem.report()["peak_rss_mb"]                 # doctest: +SKIP
    """

    def __init__(self, pid: int | None = None, *, interval: float = 0.01):
        import psutil

        self._pid = pid
        self._proc = psutil.Process(pid)
        self._interval = interval
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return self._proc.memory_info().rss
        except Exception:  # the process has gone (psutil.NoSuchProcess): keep the last peak
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def now_mb(self) -> float:
        return self._rss() / 2**20

    def report(self) -> dict[str, float]:
        """``peak_rss_sampled_mb``, ``vm_hwm_mb`` (Linux) and ``peak_rss_mb``, the larger."""
        self.peak = max(self.peak, self._rss())
        out = {"peak_rss_sampled_mb": round(self.peak / 2**20, 1)}
        hwm = vm_hwm(self._pid)
        if hwm is not None:
            out["vm_hwm_mb"] = round(hwm / 2**20, 1)
        out["peak_rss_mb"] = max(out.values())
        return out
