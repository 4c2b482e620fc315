"""Progress people can trust: a bar for coding a file and a bar for building a model.

Coding a file
-------------
`coder.batch.code_file` reports a `CodingProgress` (rows done, distinct answers coded, coding
time) several times per chunk: each chunk's new answers are coded in batches (a thousand in
this process, a few hundred to a few thousand per worker) and every finished batch is
reported, so the bar moves on a small file too. `RowBar` shows those reports as a tqdm bar:
rows done of the total, rows per second, time left and the distinct answers coded. The time
is coding time only: loading (or building) the model comes before the bar starts and is
reported on its own.

Building a model
----------------
Build code (`coder.build`) reports through a plain ``Callable[[str], None]``: a line per
finished fold, ranker and stage fit, as before. When that callable is a `StepBar` (the
command line passes one when stderr is a terminal), the same calls also drive a determinate
bar: the build's steps (each fold's queries, stage fits and candidates; each ranker fit; the
final stage fit) are weighted by how long they take relative to each other (`BuildPlan`),
and the time left is corrected as steps of each kind are timed (a busy machine slows ranker
fits far more than stage fits); elapsed time and time left keep moving during a long step.
Lines are written above the bar. Use `begin`, `step` and `finish` from build code: they
work with any callable, or None.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["CodingProgress", "RowBar", "StepBar", "BuildPlan", "begin", "step", "finish", "build_progress"]


@dataclass(frozen=True)
class CodingProgress:
    """How far a `code_file` run is.

    ``rows`` counts rows done, including rows a resumed run skipped: within a chunk, the rows
    of answers coded before (the run's cache) at once, the others in proportion to the
    chunk's new answers coded so far; ``total`` is the rows expected (an estimate for text
    files, None when unknown); ``distinct`` the distinct answers coded so far in this run;
    ``seconds`` the coding time so far (loading or building the model excluded);
    ``resumed_from`` the rows an earlier run had already written.
    """

    rows: int
    total: int | None
    distinct: int
    seconds: float
    resumed_from: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows coded in this run per second of coding time."""
        return (self.rows - self.resumed_from) / self.seconds if self.seconds > 0 else 0.0


class _Ticker:
    """Calls ``redraw`` every ``interval`` seconds on a daemon thread, so a bar's elapsed time
    (and time left) moves during a long step."""

    def __init__(self, redraw: Callable[[], Any], interval: float = 1.0):
        self._redraw = redraw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="coder-progress", daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._redraw()
            except Exception:  # noqa: BLE001 - a closed or broken display must not kill anything
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


def _tqdm(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


class RowBar:
    """A tqdm bar for a `code_file` run, fed `CodingProgress` reports (call it with each).

    Shows rows done of ``total``, the rate in rows per second, the time left and the distinct
    answers coded. ``initial`` rows (a resumed run's) count as done but not towards the rate.
    """

    def __init__(self, total: int | None, *, desc: str, initial: int = 0, file: IO[str] | None = None,
                 tick: float | None = 1.0):
        self.bar = _tqdm(total=total, initial=initial, unit=" rows", unit_scale=True, file=file or sys.stderr,
                         dynamic_ncols=True, desc=desc, smoothing=0.1, mininterval=0.25,
                         postfix="0 distinct answers")
        self._ticker = _Ticker(self.bar.refresh, tick) if tick else None

    def __call__(self, report: CodingProgress) -> None:
        bar = self.bar
        if report.total is not None and report.rows > report.total:  # the estimate was short
            bar.total = report.rows
        bar.set_postfix_str(f"{report.distinct:,} distinct answers", refresh=False)
        bar.update(report.rows - bar.n)

    def close(self, rows: int | None = None) -> None:
        """Stop the bar; with ``rows`` (the run finished) it ends on the true row count."""
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if rows is not None:
            self.bar.total = rows
            self.bar.update(rows - self.bar.n)
        self.bar.close()


class StepBar:
    """A ``Callable[[str], None]`` for build progress that build code can also drive as a bar.

    Called with a line, it writes the line (above the bar while one is shown) through ``say``
    (default: stderr). `begin` shows a determinate bar of ``total`` units; `start` begins a
    step (finishing the one before), `finish` fills the bar and removes it (`close` just
    removes it).

    Time left: each step has a kind ("fit", "ranker", ...). Once a step of a kind is done,
    the rest of that kind's units are expected to take as long per unit; kinds not seen yet
    go at the average so far. The guess counts down between steps (the current step's share
    never below nothing), and is shown once `ETA_FROM` of the work is done. So a machine on
    which ranker fits are slow (busy cores) corrects the guess after the first ranker. The
    bar itself creeps through a running step at the same expected pace (`_redraw`), never
    past `CREEP` of it before the step ends.
    """

    ETA_FROM = 0.05
    CREEP = 0.9  # the most of a running step's units a tick shows as done
    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"

    def __init__(self, say: Callable[[str], None] | None = None, *, file: IO[str] | None = None,
                 tick: float | None = 1.0):
        self.say = say
        self.file = file or sys.stderr
        self.tick = tick
        self.bar: Any = None
        self._ticker: _Ticker | None = None
        self._lock = threading.RLock()
        self._left: dict[str, float] = {}  # units per kind not yet done
        self._seen: dict[str, list[float]] = {}  # kind -> [seconds, units] of finished steps
        self._step: tuple[str | None, float, float, str] | None = None  # kind, units, start, status
        self._base = 0.0  # where the bar stood when the running step began

    def __call__(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=self.file)
        elif self.say is not None:
            self.say(message)
        else:
            print(message, file=self.file, flush=True)

    def begin(self, total: float | None, desc: str, kinds: dict[str, float] | None = None) -> None:
        """Show a bar of ``total`` units (None: no end known); ``kinds`` splits them by kind."""
        self.close()
        with self._lock:
            self._left, self._seen, self._step, self._base = dict(kinds or {}), {}, None, 0.0
            self.bar = _tqdm(total=total, desc=desc, file=self.file, dynamic_ncols=True, mininterval=0.25,
                             bar_format=self._FORMAT if total else "{desc}: [{elapsed}{postfix}]")
        self._ticker = _Ticker(self._redraw, self.tick) if self.tick else None

    def start(self, status: str, units: float = 0.0, kind: str | None = None) -> None:
        """The step before is done; ``status`` (``units`` of the bar, of ``kind``) runs now."""
        if self.bar is None:
            self.begin(None, "building")
        with self._lock:
            self._done()
            self._step = (kind, units, time.perf_counter(), status)
            self._base = self.bar.n if self.bar is not None else 0.0
            self._show()

    def finish(self) -> None:
        with self._lock:
            self._done()
            if self.bar is not None and self.bar.total:
                self.bar.n = self.bar.total
                self._show()
        self.close()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        with self._lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._step = None

    # ------------------------------------------------------------------ internals
    def _done(self) -> None:
        """Count the running step as done: move the bar, learn how long its kind takes."""
        if self._step is None or self.bar is None:
            return
        kind, units, started, _ = self._step
        self._step = None
        if kind is not None and units > 0:
            seen = self._seen.setdefault(kind, [0.0, 0.0])
            seen[0] += time.perf_counter() - started
            seen[1] += units
            self._left[kind] = max(self._left.get(kind, 0.0) - units, 0.0)
        if units > 0:  # from where the step began: a guess made while it ran (`_redraw`) is replaced
            end = self._base + units
            self.bar.n = max(self.bar.n, min(end, self.bar.total) if self.bar.total else end)  # never past the end

    def _rate(self, kind: str | None) -> float | None:
        """Seconds per unit expected of ``kind``: as its finished steps went, else the average
        of all finished steps (None before any)."""
        timed = [seen for seen in self._seen.values() if seen[1] > 0]
        if not timed:
            return None
        seen = self._seen.get(kind) if kind is not None else None
        if seen and seen[1] > 0:
            return seen[0] / seen[1]
        return sum(s for s, _ in timed) / sum(u for _, u in timed)

    def seconds_left(self) -> float | None:
        """The time the rest of the build should take (None until a step was timed)."""
        with self._lock:
            if self._rate(None) is None:
                return None
            rate = self._rate
            left = sum(units * rate(kind) for kind, units in self._left.items())
            if self._step is not None:  # the running step: what it should still take, not below 0
                kind, units, started, _ = self._step
                planned = min(units, self._left.get(kind, 0.0)) if kind is not None else 0.0  # counted above
                left += max(units * rate(kind) - (time.perf_counter() - started), 0.0) - planned * rate(kind)
            return max(left, 0.0)

    def _show(self) -> None:
        bar = self.bar
        if bar is None:
            return
        status = self._step[3] if self._step is not None else ""
        left = self.seconds_left() if bar.total and self.ETA_FROM * bar.total <= bar.n < bar.total else None
        shown = f"~{bar.format_interval(left)} left" if left is not None else ""
        bar.set_postfix_str(", ".join(part for part in (shown, status) if part), refresh=False)
        bar.refresh()

    def _redraw(self) -> None:
        """A tick: the running step's share moves with the time it should take, up to
        `CREEP` of it (its end moves the rest), so a long step (a build's folds run side by
        side for half a minute) never leaves the bar standing."""
        with self._lock:
            bar, running = self.bar, self._step
            if bar is not None and bar.total and running is not None and running[1] > 0:
                kind, units, started, _ = running
                rate = self._rate(kind)
                if rate:
                    done = min((time.perf_counter() - started) / (units * rate), 1.0) * self.CREEP
                    bar.n = max(bar.n, min(self._base + units * done, bar.total))
            self._show()


class BuildPlan:
    """How far each step of a model build moves the build bar, in rough seconds of the full
    SOC2000 build (4 folds; measured on an idle machine), and the kind of each step, which
    `StepBar` times to correct its guess of the time left. Stage fits scale with the entries
    they see, ranker fits with the candidate rows."""

    QUERIES, FIT, GENERATE, LABEL = 1.0, 22.0, 7.5, 0.5  # per fold; FIT: stages on every entry
    RANKER, SCORE, CALIBRATE = 16.0, 3.0, 2.0  # RANKER: a ranker on every fold's rows

    def __init__(self, folds: int, *, parallel: bool = False):
        self.folds = folds
        self.parallel = parallel
        share = (folds - 1) / folds if folds > 1 else 1.0
        self.fold_queries, self.fold_fit = self.QUERIES, self.FIT * share
        self.fold_generate, self.fold_label = self.GENERATE, self.LABEL
        self.fold_ranker = self.RANKER * share + self.SCORE * 4 / max(folds, 1)
        self.ranker, self.calibrate, self.final_fit = self.RANKER, self.CALIBRATE, self.FIT

    @property
    def kinds(self) -> dict[str, float]:
        """Units of the whole build by kind of step."""
        n = self.folds
        if self.parallel:  # whole folds, then rankers and the final fit, run side by side
            return {"queries": n * self.fold_queries,
                    "folds": n * (self.fold_fit + self.fold_generate + self.fold_label),
                    "ranker": n * self.fold_ranker + self.ranker + self.final_fit, "calibrate": self.calibrate}
        return {"queries": n * self.fold_queries, "fit": n * self.fold_fit + self.final_fit,
                "generate": n * self.fold_generate, "label": n * self.fold_label,
                "ranker": n * self.fold_ranker + self.ranker, "calibrate": self.calibrate}

    @property
    def total(self) -> float:
        return sum(self.kinds.values())


class ShippedPlan:
    """The build bar of a model from a shipped ranker (`coder.shipped`): the stages fitted on
    every entry (the classifier's codes spread over the cores), then the probe check."""

    FIT, CHECK = 14.0, 1.0

    @property
    def kinds(self) -> dict[str, float]:
        return {"fit": self.FIT, "check": self.CHECK}

    @property
    def total(self) -> float:
        return self.FIT + self.CHECK


def build_progress(say: Callable[[str], None] | None, bar: bool) -> Callable[[str], None] | None:
    """What to pass build code as ``progress``: a `StepBar` writing lines through ``say`` when
    ``bar`` (stderr is a terminal), else ``say`` itself (plain lines, or None for silence)."""
    if say is None or not bar or isinstance(say, StepBar):
        return say
    return StepBar(say)


def begin(progress: Callable[[str], None] | None, plan: BuildPlan | ShippedPlan, desc: str) -> None:
    """Start a determinate bar for ``plan`` when ``progress`` is a `StepBar` (else nothing)."""
    if isinstance(progress, StepBar):
        progress.begin(plan.total, desc, plan.kinds)


def step(progress: Callable[[str], None] | None, now: str | None = None, units: float = 0.0,
         kind: str | None = None, *, line: str | None = None, plain: str | None = None) -> None:
    """Report build progress. ``now`` starts a step (``units`` of the plan, of ``kind``), the
    step before it being done; ``line`` is a line for the log. A `StepBar` writes ``line``
    above the bar, then moves and shows ``now``; a plain callable gets ``line``, or else
    ``plain`` (a line a bar shows as its status instead): one line at most."""
    if progress is None:
        return
    if isinstance(progress, StepBar):
        if line is not None:
            progress(line)
        if now is not None:
            progress.start(now, units, kind)
    elif line is not None or plain is not None:
        progress(line if line is not None else plain)  # type: ignore[arg-type]


def finish(progress: Callable[[str], None] | None) -> None:
    """End a `StepBar`'s bar at 100% (else nothing)."""
    if isinstance(progress, StepBar):
        progress.finish()
