"""Code a whole file: stream it in chunks, code each distinct (title, industry, description)
once, write every row back out with its codes, atomically, with a codebook and a referral
file on request.

How a run works
---------------
1. The input's header is read and checked (the title, industry and description columns
   exist; no column clashes with the ones coding adds; the output format can hold every
   column name) before the model is loaded, so mistakes fail fast.
2. Chunks of ``chunk_size`` rows are read (memory stays flat however long the file is). In
   each chunk the distinct (title, industry, description) answers are found with pandas'
   factorize; only answers not already in the run's cache (up to 300,000, least recently seen
   dropped first) are coded. The engine normalises them and caches again on normalised keys.
3. Coding runs in this process for small amounts of work. When a chunk has at least
   ``parallel_min`` new answers and ``jobs > 1``, a pool of ``jobs - 1`` worker processes is
   started once (each loads the model once; for an input of at least ``parallel_min`` rows
   they start in the background before the first chunk) and this process works alongside
   them, taking batches from the back of the queue, so starting the pool never stalls the
   run. Once the pool runs, any chunk with `PARALLEL_AGAIN` new answers is shared with it.
   The next chunk is read on a background thread while this one is coded.
   ``engine="dask"`` sends the new answers to a Dask cluster instead; the file itself is read
   and written here, so the workers do not need to see it, nor the decision store: the
   decisions that stand when the run starts go to them in memory (`DecisionStore.snapshot`).
4. Output goes to hidden partial files next to the target (see `coder.batch.formats`),
   written on a background thread while the next chunk is coded. After
   each chunk is durably written, a small state file ``.OUTPUT.coder-state.json`` records how
   far the run got. At the end the output is read back, its row count is checked against the
   input's, and only then is it renamed onto the target; the state file is removed.

The output has the input's columns and the coding columns (`coder.batch.frame.output_columns`);
a ``candidates`` column only on request (``candidates=True`` / ``--candidates``, or ``k`` /
``--top-k`` above 1), because it is most of the output's size. The referral file always lists
the candidates (at least 5) with their titles.

Resuming
--------
If a run stops (Ctrl-C, a crash, a killed job), the target is never created or replaced; the
partial files and the state file stay. Running the same command again with ``--resume``
checks that the input file (size and modification time), the options and the model are
unchanged, drops anything written after the last completed chunk, skips the chunks already
done and carries on; the result is byte-for-byte what an uninterrupted run writes. Without
``--resume`` a new run starts from scratch and removes the old partial files.

Which files are data and which are code
---------------------------------------
Everything a run writes is data: the output, the referral file and the codebook; the state
file (JSON: counts, options, byte offsets); CSV/TSV partial output (plain CSV); part files
for the other formats (Parquet, or CSV with a JSON file of column types when pyarrow is not
installed). Reading them runs nothing, so they are safe to open wherever they came from.

A *model file* is different: ``<model dir>/<scheme>-<key>/model.joblib`` is a pickle of the
trained model (NumPy and SciPy arrays and this package's classes), and loading a pickle can
run code. Its ``manifest.json`` records a SHA-256 checksum that `Coder.load`
checks, which catches a truncated or altered file but not a deliberately made one. Load only
models you built (``coder build``, or the first run) or got from someone you trust, and point
``--model-dir`` only at such folders.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write
from ..errors import CoderError, InputError
from ..derivation import parse_schemes
from ..progress import CodingProgress, RowBar, build_progress
from ..schemes import MISSING_CODE, load_scheme
from .formats import (OutputLabels, Sink, check_output_names, estimate_text_rows, file_format, open_sink,
                      open_source)
from .frame import ChunkCoder, Coded, Key, Row, check_columns, coded_rows, output_columns, take_text
from .heap import HeapFreezer

if TYPE_CHECKING:
    from ..engine import Coder

__all__ = ["code_file", "RunSummary", "state_path", "PARALLEL_MIN"]

PARALLEL_MIN = 2_000  # new answers in one chunk worth starting worker processes for
# Once they run, a chunk with this many new answers (two of the smallest batches) is shared
# with them: a survey file's later chunks bring a few hundred to a thousand new answers each,
# and coding those here alone left the workers idle for most of the run.
PARALLEL_AGAIN = 500
_SMALLEST_BATCH = 100  # keys: a batch's own cost (sending, a code_many call) stays small beside its coding
PROGRESS_BATCH = 1_000  # new answers coded between progress reports when coding in this process (~1 s)
REFER_CANDIDATES = 5  # candidates shown in the referral file (more with a larger --top-k)
DEFAULT_CANDIDATES = 5  # candidates shown with --candidates and no --top-k
STATE_VERSION = 2
REFER_EXTRA = ("input_row", "candidates", "candidate_titles")


@dataclass
class RunSummary:
    """What a `code_file` run did."""

    rows: int
    distinct_coded: int
    statuses: dict[str, int]
    counts: dict[str, int]
    seconds: float
    output: Path
    codebook: Path | None = None
    refer: Path | None = None
    refer_rows: int = 0
    resumed_from: int = 0
    workers: int = 1
    encoding: str | None = None  # how a text input was decoded (None for other formats)
    fallback_cells: int = 0  # cells that were not valid UTF-8 and were read as cp1252
    # ``seconds`` (the whole run) split in two: checks and loading (or building) the model,
    # then coding (reading, coding, writing and checking the output).
    load_seconds: float = 0.0
    coding_seconds: float | None = None
    model_built: bool = False  # the model was missing or stale: built by this run (or by another it waited for)

    @property
    def rows_per_second(self) -> float:
        """Rows coded by this run (a resumed run's earlier rows excluded) per second of coding
        time: loading or building the model does not count."""
        seconds = self.seconds if self.coding_seconds is None else self.coding_seconds
        rows = self.rows - self.resumed_from
        return rows / seconds if seconds else float("inf")


def state_path(output: str | os.PathLike) -> Path:
    """The resume state file kept beside ``output`` while a run is unfinished."""
    output = Path(output)
    return output.parent / f".{output.name}.coder-state.json"


# ------------------------------------------------------------------------------ backends

_WORKER: dict[str, Any] = {}


class _OneThread:
    """BLAS/OpenMP and rapidfuzz limited to one thread in this process, until
    `restore_original_limits`.

    Several coding processes each running a thread per CPU oversubscribe the machine; with
    OpenBLAS's spinning threads that made a two-process run several times slower than one,
    and rapidfuzz's threads cost a two-process run 3% (22.0 s against 22.7 s for 100,000
    distinct titles).
    """

    def __init__(self, *, fuzzy_too: bool = True) -> None:
        from ..stages import fuzzy

        self._fuzzy = fuzzy.THREADS
        if fuzzy_too:
            fuzzy.THREADS = 1
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - scikit-learn depends on it
            self._blas = None
        else:
            self._blas = threadpool_limits(limits=1)

    def restore_original_limits(self) -> None:
        from ..stages import fuzzy

        fuzzy.THREADS = self._fuzzy
        if self._blas is not None:
            self._blas.restore_original_limits()


def _init_worker(scheme: str, model_dir: str | None, threshold: float | None, decisions: Any = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _WORKER["threads"] = _OneThread()
    from ..engine import Coder

    _WORKER["coder"] = Coder.load(scheme, model_dir=model_dir, threshold=threshold, build=False,
                                  decisions=decisions)
    _WORKER["heap"] = HeapFreezer()


def _worker_code(keys: list[Key], k: int) -> list[Coded]:
    rows = coded_rows(_WORKER["coder"], keys, k)
    _WORKER["heap"].settle()
    return rows


def _worker_ready() -> None:
    """A task that returns once a worker has started (and loaded its model)."""


def _batches(keys: list[Key], workers: int, *, both_ends: bool = True) -> list[list[Key]]:
    """``keys`` in order, cut into batches that shrink toward where the last ones are taken.

    Each size is a share of what is left (guided scheduling), between `_SMALLEST_BATCH` and
    4,000 keys, so whoever takes the last batches takes small ones and nobody waits long for
    a big one. ``both_ends``: the pool's workers take batches from the front and this process
    from the back (`LocalBackend._parallel`), so the batches shrink from both ends toward the
    middle, where the two sides meet; otherwise (a Dask cluster takes them in order) they
    shrink from first to last. With batches of one size (a quarter of the keys over the
    workers, 250 to 4,000), this process spent 1.5 s of a 7 s survey-like run waiting for
    the worker's last batch of each chunk.
    """
    sizes, left = [], len(keys)
    while left > 0:
        size = min(left, max(_SMALLEST_BATCH, min(4_000, -(-left // (workers * 2)))))
        sizes.append(size)
        left -= size
    # Big ones at both ends, small in the middle; or falling in order.
    ordered = sizes[0::2] + sizes[1::2][::-1] if both_ends else sizes
    starts = np.cumsum([0] + ordered)
    return [keys[lo:hi] for lo, hi in zip(starts[:-1].tolist(), starts[1:].tolist())]


class LocalBackend:
    """Codes in this process, plus a lazily started process pool for big batches of work."""

    def __init__(self, coder: "Coder", k: int, *, jobs: int, model_dir: str | None,
                 threshold: float | None, parallel_min: int = PARALLEL_MIN,
                 say: Callable[[str], None] = lambda message: None):
        self.coder = coder
        self.k = k
        self.jobs = max(1, jobs)
        self.model_dir = model_dir
        self.threshold = threshold
        self.parallel_min = parallel_min
        self.say = say
        self._pool: Any = None
        self._pool_worked = False
        # Coding processes run one BLAS/OpenMP thread each: parallelism comes from processes,
        # and the engine's multithreaded paths were slower than one thread on a busy machine.
        self._threads: Any = _OneThread(fuzzy_too=self.jobs > 1)  # alone, rapidfuzz may use every CPU
        self.workers = 1  # processes that coded: this one, plus the pool once started
        self._heap = HeapFreezer()

    def __call__(self, keys: list[Key], report: Callable[[list[Key]], None] | None = None) -> list[Coded]:
        """Code ``keys``, in order. ``report`` is called with each batch of keys once it is
        coded (in any order), so a progress bar can move while a big batch is coded."""
        if self.jobs < 2 or len(keys) < (self.parallel_min if self._pool is None else
                                         min(self.parallel_min, PARALLEL_AGAIN)):
            return self._here(keys, report)
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._parallel(keys, report)
        except BrokenProcessPool:
            self.close()
            if self._pool_worked:
                raise CoderError("a worker process died (out of memory?); run the same command with "
                                 "--resume, and with --jobs 1 if it happens again") from None
            # The pool never worked (e.g. a script read from stdin cannot be spawned): go on alone.
            self.say("could not start worker processes; coding in this process only")
            self.jobs, self.workers = 1, 1
            return self._here(keys, report)

    def warm(self) -> None:
        """Start the worker processes now, in the background: a big input's first chunk then
        finds them ready (each takes about a second to start and load the model)."""
        if self.jobs >= 2:
            try:
                self._start().submit(_worker_ready)
            except Exception:  # noqa: BLE001 - the first big chunk starts them, or codes here
                self.close()

    def _here(self, keys: list[Key], report: Callable[[list[Key]], None] | None) -> list[Coded]:
        """Code in this process: in one go, or in batches of `PROGRESS_BATCH` to report."""
        if report is None:
            return self._code(keys)
        out: list[Coded] = []
        for start in range(0, len(keys), PROGRESS_BATCH):
            batch = keys[start:start + PROGRESS_BATCH]
            out.extend(self._code(batch))
            report(batch)
        return out

    def _code(self, keys: list[Key]) -> list[Coded]:
        """Code ``keys`` in this process, then freeze what stays alive (`HeapFreezer`)."""
        rows = coded_rows(self.coder, keys, self.k)
        self._heap.settle()
        return rows

    def _parallel(self, keys: list[Key], report: Callable[[list[Key]], None] | None = None) -> list[Coded]:
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._start()
        self.workers = self.jobs
        batches = _batches(keys, self.jobs)
        futures = [pool.submit(_worker_code, batch, self.k) for batch in batches]
        done: list[list[Coded] | None] = [None] * len(batches)

        def collect(i: int) -> None:  # a worker's batch is back
            done[i] = futures[i].result()
            self._pool_worked = True
            if report is not None:
                report(batches[i])

        for i in reversed(range(len(batches))):  # this process takes work from the back
            if futures[i].cancel():
                done[i] = self._code(batches[i])
                if report is not None:
                    report(batches[i])
                    for j in range(len(batches)):  # and the workers' batches finished meanwhile
                        if done[j] is None and futures[j].done():
                            collect(j)
        pending = {futures[i]: i for i in range(len(batches)) if done[i] is None}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=pending.__getitem__):
                collect(pending.pop(future))
        out: list[Coded] = []
        for rows in done:
            out.extend(rows)  # type: ignore[arg-type]
        return out

    def _start(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the parent may hold threads (tqdm, pyarrow) that fork would copy.
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs - 1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.coder.scheme_name, self.model_dir, self.threshold, self.coder.decisions),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._threads is not None:
            self._threads.restore_original_limits()
            self._threads = None
        self._heap.release()


class DaskBackend:
    """Sends new answers to a Dask cluster; each worker loads the model once. ``decisions``
    (a `coder.decisions.DecisionSnapshot`) goes to every worker once, and they apply it as a
    local coder applies its store."""

    def __init__(self, scheme: str, k: int, *, scheduler: str | None, jobs: int,
                 model_dir: str | None, threshold: float | None, decisions: Any = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--engine dask needs dask and distributed; "
                             "install them with `pip install coder[dask]`") from None
        self.scheme, self.k, self.model_dir, self.threshold = scheme, k, model_dir, threshold
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        else:
            import logging

            self.cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {})) or max(1, jobs)
        # Sent once to every worker, not with each batch.
        self.decisions = None if decisions is None else self.client.scatter(decisions, broadcast=True)

    def __call__(self, keys: list[Key], report: Callable[[list[Key]], None] | None = None) -> list[Coded]:
        from .cluster import code_keys_on_worker

        if not keys:
            return []
        batches = _batches(keys, self.workers, both_ends=False)
        futures = self.client.map(code_keys_on_worker, batches, k=self.k,
                                  scheme=self.scheme, model_dir=self.model_dir,
                                  threshold=self.threshold, decisions=self.decisions, pure=False)
        if report is not None:  # report each batch as it comes back; gather keeps the order
            from distributed import as_completed

            batch_of = {future.key: batch for future, batch in zip(futures, batches)}
            for future in as_completed(futures):
                if future.status == "finished":  # a failed batch raises in gather below
                    report(batch_of[future.key])
        out: list[Coded] = []
        for rows in self.client.gather(futures):
            out.extend(rows)
        return out

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ------------------------------------------------------------------------------ helpers


def _expected_rows(source: Any) -> int:
    """Rows the input holds, or for a text file a low guess from its size (64 bytes a row):
    enough to decide whether worker processes are worth starting before the first chunk."""
    if source.total_rows is not None:
        return int(source.total_rows)
    try:
        return source.path.stat().st_size // 64
    except OSError:
        return 0


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _input_signature(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _model_identity(scheme: str, model_dir: str | None) -> str | None:
    try:
        from ..store import read_manifest

        manifest = read_manifest(scheme, model_dir) or {}
    except Exception:  # noqa: BLE001 - identity is best effort; resume then checks less
        return None
    return manifest.get("model_sha256")


def _write_json_atomic(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data), encoding="utf-8"), fsync=True)


def _variable_labels(scheme: str, missing_code: str) -> dict[str, str]:
    up = scheme.upper()
    return {
        scheme: f"{up} unit group (coder); {missing_code} = uncodable",
        f"{scheme}_title": f"{up} unit group title",
        "confidence": "Calibrated probability the code is right",
        "status": "auto = auto-coded, refer = check clerically, uncodable",
        "method": "Stage that matched: exact, fuzzy, tfidf or classifier",
        "matched_entry": "Coding-index entry behind the code",
        "reason": "Why the row was not auto-coded",
        "candidates": "Top candidates, code:confidence, best first",
        "input_row": "Row number in the input file (1 = first data row)",
        "candidate_titles": "Top candidates with their titles",
    }


_END = object()


def _read_ahead(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``chunks``, each read on a background thread while this one codes the one before
    (pandas' parser and pyarrow mostly run without the GIL). At most one chunk is read
    ahead; a reading error is raised here, after the chunks before it, as without the
    thread. Closing this generator stops the thread and closes ``chunks``."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            put((_END, exc))
        finally:
            chunks.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=read, name="coder-read", daemon=True)
    thread.start()
    try:
        while True:
            chunk, error = box.get()
            if chunk is _END:
                if error is not None:
                    raise error
                return
            yield chunk
    finally:
        stop.set()
        thread.join()


def _write_chunk(sinks: dict[str, Sink], state_file: Path, recorded: dict, out: pd.DataFrame,
                 rows: Sequence[Row], inv: np.ndarray, start_row: int) -> None:
    """Append one coded chunk to the output (and the referral file), then record the
    checkpoint: the state file names only chunks whose rows are durably written."""
    sinks["output"].append(out)
    if "refer" in sinks:
        sinks["refer"].append(_refer_rows(out, rows, inv, start_row))
    _write_json_atomic(state_file, {**recorded, "output": sinks["output"].checkpoint(),
                                    "refer": sinks["refer"].checkpoint() if "refer" in sinks else None})


class _ChunkWriter:
    """Writes coded chunks on one background thread, in order, while this thread reads and
    codes the next chunk: formatting and writing a chunk (pyarrow, the disk) mostly run
    without the GIL, and worker processes were idle while this process wrote.

    At most one chunk waits to be written (memory stays at about one chunk more); a write's
    error is raised by the next `submit` or by `wait`.
    """

    def __init__(self) -> None:
        self._pool: Any = None
        self._pending: Any = None

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.wait()
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coder-write")
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Until the last chunk submitted is written; its error, if any, raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Let a write in progress end (its error is dropped: the run is stopping anyway), then
        stop the thread."""
        try:
            self.wait()
        except BaseException:  # noqa: BLE001 - already stopping on another error
            pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _Tracker:
    """A run's progress, within chunks as well as across them, sent to ``report`` as a
    `CodingProgress`.

    Rows whose answer the run has already coded (its cache) count as done as soon as the
    chunk's new answers are known; the rest of the chunk's rows in proportion to its new
    answers coded so far, batch by batch. In proportion, not row by row: a file's frequent
    answers come first, so counting their rows as they are coded would make the rate look
    high and the time left short at the start of every chunk. Use `code_keys` as the
    `ChunkCoder`'s coding function, and call `chunk` with each chunk's keys before they are
    looked up.
    """

    def __init__(self, backend: Any, report: Callable[[CodingProgress], None], *, total: int | None,
                 done_rows: int, started: float):
        self.backend, self.report, self.total, self.started = backend, report, total, started
        self.rows = self.resumed = done_rows
        self.distinct = 0
        self._inv: np.ndarray = np.zeros(0, np.int64)
        self._keys: list[Key] = []
        self._base = self._new_rows = self._new = self._coded_now = 0

    def chunk(self, inv: np.ndarray, keys: list[Key], rows_before: int) -> None:
        """A chunk's row -> key numbers and distinct keys, before they are looked up."""
        self._inv, self._keys = inv, keys
        self.rows = rows_before

    def code_keys(self, keys: list[Key]) -> list[Coded]:
        """Code the chunk's new answers with the backend, reporting each batch as it is done."""
        # Rows per distinct key of the chunk (keys are distinct within a chunk), summed over the new ones.
        weight = dict(zip(self._keys, np.bincount(self._inv, minlength=len(self._keys)).tolist()))
        self._new_rows = min(len(self._inv), sum(weight.get(key, 0) for key in keys))
        self._new, self._coded_now = len(keys), 0
        self._base = self.rows + len(self._inv) - self._new_rows  # cached answers' rows: done already
        self.rows = self._base
        self.send()
        return self.backend(keys, report=self._coded)

    def _coded(self, batch: list[Key]) -> None:
        self._coded_now += len(batch)
        self.distinct += len(batch)
        self.rows = self._base + self._new_rows * min(self._coded_now, self._new) // max(self._new, 1)
        self.send()

    def chunk_done(self, rows: int, distinct: int) -> None:
        self.rows, self.distinct = rows, distinct
        self.send()

    def send(self) -> None:
        self.report(CodingProgress(rows=self.rows, total=self.total, distinct=self.distinct,
                                   seconds=time.perf_counter() - self.started, resumed_from=self.resumed))


def _fan_out(reports: list[Callable[[CodingProgress], None]]) -> Callable[[CodingProgress], None]:
    if len(reports) == 1:
        return reports[0]

    def report(progress: CodingProgress) -> None:
        for each in reports:
            each(progress)

    return report


# ------------------------------------------------------------------------------ the run


def code_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    column: str,
    *,
    industry_column: str | None = None,
    description_column: str | None = None,
    scheme: str = "soc2000",
    k: int | None = None,
    candidates: bool = False,
    threshold: float | None = None,
    missing_code: str = MISSING_CODE,
    encoding: str | None = None,
    chunk_size: int = 100_000,
    jobs: int | None = None,
    resume: bool = False,
    codebook: str | os.PathLike | None = None,
    refer: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    coder: "Coder | None" = None,
    parallel_min: int = PARALLEL_MIN,
    decisions: Any = None,
    on_progress: Callable[[CodingProgress], None] | None = None,
) -> RunSummary:
    """Code the job titles in column ``column`` of ``input`` into ``output``.

    Formats follow the file extensions (.csv .tsv .txt .xlsx .parquet .dta .sav). Every input
    row and column comes out, in order, followed by the coding columns (see
    `coder.batch.frame.output_columns`). ``industry_column`` and ``description_column`` name
    the answer's context (the employer's business; what the person mainly does); each distinct
    (title, industry, description) is coded once. A ``candidates`` column is added only when
    ``candidates`` is true (``k`` of them, 5 by default) or ``k`` is above 1. ``codebook``
    writes a table of code counts (format by extension: .csv .tsv .xlsx .txt .md), ``refer``
    the rows to check clerically, with their candidates. ``coder`` reuses an already loaded
    `Coder` (local engine only; its scheme must match). ``decisions`` (a
    `coder.decisions.DecisionStore`) is used by the coder loaded here and by worker processes:
    answers decided before get their decided code, method ``learned`` (the Dask engine's
    workers get the decisions that stand when the run starts, `DecisionStore.snapshot`).
    See the module docstring for streaming, parallelism, ``resume`` and which files are safe
    to load.

    ``progress`` shows a bar on stderr (`coder.progress.RowBar`: rows, distinct answers, rate,
    time left; a bar for building the model too, if it must be built); ``on_progress`` is
    called with a `coder.progress.CodingProgress` several times per chunk (after each batch of
    about a thousand new answers) and after each chunk is written. Their clock, and the
    summary's ``rows_per_second``, start once the model is loaded: ``load_seconds`` is apart.

    Raises
    ------
    InputError
        A missing file or column, a column clash, an unsupported format, a failed row check,
        or a resume whose input, options or model changed.
    """
    started = time.perf_counter()
    say = log or (lambda message: None)
    try:
        names = parse_schemes(scheme)
    except (KeyError, ValueError) as exc:
        raise InputError(f"--scheme: {exc}") from None
    scheme_name, also = names[0], names[1:]  # the first is coded; the others derived from it
    if k is not None and k < 1:
        raise InputError(f"--top-k must be at least 1, got {k}")
    k_out = k if k is not None else (DEFAULT_CANDIDATES if candidates else 1)
    show = bool(candidates) or k_out > 1
    if chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {chunk_size}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be between 0 and 1, got {threshold}")
    if engine not in ("local", "dask"):
        raise InputError(f"--engine must be local or dask, got {engine!r}")
    if coder is not None and coder.scheme_name != scheme_name:
        raise InputError(f"the coder given codes to {coder.scheme_name}, not {scheme_name}")
    snapshot = None
    if engine == "dask" and decisions is not None and decisions.count(scheme_name):
        # Dask workers may not reach the store's file: its decisions go to them in memory.
        if not hasattr(decisions, "snapshot"):
            raise InputError(f"--engine dask needs a decision store it can take a snapshot of, not "
                             f"{type(decisions).__name__}; code with --engine local, or add --no-decisions")
        snapshot = decisions.snapshot(scheme_name)
    jobs = jobs or cpu_count()
    model_dir = str(model_dir) if model_dir is not None else None

    in_path, out_path = Path(input), Path(output)
    out_fmt = file_format(out_path)
    refer_path = Path(refer) if refer is not None else None
    refer_fmt = file_format(refer_path) if refer_path is not None else None
    codebook_path = Path(codebook) if codebook is not None else None
    if codebook_path is not None:
        from .codebook import codebook_format

        codebook_format(codebook_path)
    source = open_source(in_path, encoding=encoding)
    targets = [p for p in (out_path, refer_path, codebook_path) if p is not None]
    for target in targets:
        if target.exists() and target.resolve() == in_path.resolve():
            raise InputError(f"{target} is the input file; choose another output name")
        if target.is_dir():
            raise InputError(f"{target} is a folder; give a file name")
        if not target.parent.is_dir():
            raise InputError(f"{target}: the folder {target.parent} does not exist")
    if len({str(t.resolve()) for t in targets}) != len(targets):
        raise InputError("the output, --refer and --codebook files must be different files")
    numeric = {"dta", "sav"} & {out_fmt, refer_fmt}
    if numeric and not str(missing_code).lstrip("-").isdigit():
        raise InputError(f"--missing-code must be a whole number for .{numeric.pop()} output "
                         f"(value labels need numbers), got {missing_code!r}")
    named = {"title": column, "industry": industry_column, "description": description_column}
    context = [named[c] for c in ("industry", "description")]
    added = output_columns(scheme_name, k_out, candidates=show, also=also)
    check_columns(source.columns, named, added, str(in_path))
    check_output_names(out_path, [*source.columns, *added])
    if refer_path is not None:
        check_columns(source.columns, named, list(REFER_EXTRA), str(in_path))
        check_output_names(refer_path, _refer_columns(source.columns, scheme_name, also))

    k_code = max(k_out, REFER_CANDIDATES) if refer_path is not None else k_out
    if also:  # derived schemes share out every candidate's confidence, not just the best one's
        k_code = max(k_code, DEFAULT_CANDIDATES)
    settings = {
        "column": column, "industry_column": industry_column, "description_column": description_column,
        "scheme": scheme_name, "also": also, "k": k_out, "candidates": show,
        # Which decision store codes the run (answers decided there get their decided code).
        "decisions": _store_identity(decisions),
        "threshold": threshold, "missing_code": missing_code, "encoding": encoding,
        "chunk_size": chunk_size, "output": str(out_path.resolve()),
        "refer": str(refer_path.resolve()) if refer_path else None,
        "codebook": str(codebook_path.resolve()) if codebook_path else None,
        "model": None,  # filled in once the model is loaded (or built)
    }
    state_file = state_path(out_path)
    state = _load_state(state_file, in_path, settings, say) if resume else None
    if not resume:
        state_file.unlink(missing_ok=True)
    if source.text is not None:
        say(f"reading {in_path.name} as {source.text.describe()}")

    # The model: load (building it if missing or stale) before any worker needs it.
    backend: Any
    model_built = False
    load_say = build_progress(say, bar=progress)  # a build shows a bar when the run shows one
    if engine == "dask" or coder is None:
        from ..store import stale_reason

        model_built = stale_reason(scheme_name, model_dir) is not None  # so the load below builds it
    if engine == "dask":
        from ..store import ensure_built

        ensure_built(scheme_name, model_dir, progress=load_say)  # here, so cluster workers never race to build
        settings["model"] = _model_identity(scheme_name, model_dir)
        say(f"connecting to Dask ({scheduler or f'a local cluster of {jobs} workers'})")
        backend = DaskBackend(scheme_name, k_code, scheduler=scheduler, jobs=jobs, model_dir=model_dir,
                              threshold=threshold, decisions=snapshot)
    else:
        if coder is None:
            from ..engine import Coder

            coder = Coder.load(scheme_name, model_dir=model_dir, threshold=threshold, progress=load_say,
                               decisions=decisions)
            settings["model"] = _model_identity(scheme_name, model_dir)
        backend = LocalBackend(coder, k_code, jobs=jobs, model_dir=model_dir, threshold=threshold,
                               parallel_min=parallel_min, say=say)
        if _expected_rows(source) >= parallel_min:
            backend.warm()
    if state is not None and settings["model"] != state["settings"].get("model"):
        backend.close()
        raise InputError("cannot resume: the model changed since the interrupted run; "
                         "run again without --resume")

    scheme_obj = load_scheme(scheme_name)
    labels = OutputLabels(scheme_name, dict(scheme_obj.units), str(missing_code), _variable_labels(scheme_name, str(missing_code)))
    out_labels = OutputLabels(**{**labels.__dict__, "source": source.labels if source.format == out_fmt else {}})
    sinks: dict[str, Sink] = {}
    tracker: _Tracker | None = None
    chunker = ChunkCoder(backend, scheme=scheme_name, k=k_code, k_out=k_out, candidates=show,
                         missing_code=str(missing_code), refer=refer_path is not None, also=also)
    counts: Counter[str] = Counter(state["counts"] if state else {})
    statuses: Counter[str] = Counter(state["statuses"] if state else {})
    by_status: Counter[tuple[str, str]] = Counter(
        {(c, st): n for c, st, n in state["by_status"]} if state else {})
    done_chunks = state["chunks"] if state else 0
    done_rows = state["rows"] if state else 0
    rows_in = 0
    bar: RowBar | None = None
    coding_started = time.perf_counter()
    writer = _ChunkWriter()
    stack = ExitStack()  # the reading thread, stopped however the run ends
    try:
        sinks["output"] = open_sink(out_path, bom=source.bom, labels=out_labels,
                                    state=state["output"] if state else None)
        if refer_path is not None:
            refer_labels = OutputLabels(**{**labels.__dict__, "source": source.labels if source.format == refer_fmt else {}})
            sinks["refer"] = open_sink(refer_path, bom=source.bom, labels=refer_labels,
                                       state=state["refer"] if state else None)
        if state:
            say(f"resuming after {done_rows:,} rows ({done_chunks} chunks) already written")
        reports: list[Callable[[CodingProgress], None]] = [on_progress] if on_progress is not None else []
        total = source.total_rows
        if reports or progress:
            if total is None and source.format in ("csv", "tsv", "txt"):
                total = estimate_text_rows(in_path)
        if progress:
            bar = RowBar(total, desc=f"coding {in_path.name}", initial=done_rows, file=sys.stderr)
            reports.append(bar)
        coding_started = time.perf_counter()  # the coding clock: the model is loaded by now
        if reports:
            tracker = _Tracker(backend, _fan_out(reports), total=total, done_rows=done_rows, started=coding_started)
            chunker.code_keys = tracker.code_keys  # the chunk's new answers go through the tracker
        signature = _input_signature(in_path)  # saved with each checkpoint; --resume compares it
        chunks = stack.enter_context(closing(_read_ahead(source.chunks(chunk_size))))
        for number, chunk in enumerate(chunks):
            start_row = rows_in
            rows_in += len(chunk)
            if number < done_chunks:
                continue
            if number == done_chunks and state and rows_in - len(chunk) != done_rows:
                raise InputError("cannot resume: the input does not split into the recorded chunks; "
                                 "run again without --resume")
            # As `ChunkCoder.code`, with the tracker told the chunk's keys before they are coded.
            titles = chunk[column]
            inv, keys = chunker.factorize(titles, *(chunk[c] if c else None for c in context))
            if tracker is not None:
                tracker.chunk(inv, keys, start_row)
            rows = chunker.lookup(keys)
            coded = chunker.frame(rows, inv, titles.index)
            out = pd.concat([chunk, coded], axis=1)
            pairs = pd.DataFrame({"code": coded[scheme_name].to_numpy(dtype=object),
                                  "status": coded["status"].to_numpy(dtype=object)})
            for (code, status), n in pairs.value_counts(sort=False).items():
                counts[code] += int(n)
                statuses[status] += int(n)
                by_status[(code, status)] += int(n)
            # The counts as they stand after this chunk: the writer records them with its checkpoint.
            recorded = {"version": STATE_VERSION, "input": signature, "settings": settings,
                        "chunks": number + 1, "rows": rows_in, "counts": dict(counts), "statuses": dict(statuses),
                        "by_status": [[c, st, n] for (c, st), n in sorted(by_status.items())]}
            writer.submit(_write_chunk, sinks, state_file, recorded, out, rows, inv, start_row)
            if tracker is not None:
                tracker.chunk_done(rows_in, chunker.distinct_coded)
        writer.wait()
        if bar is not None:
            bar.close(rows=rows_in)
            bar = None
        if done_chunks and rows_in < done_rows:
            raise InputError("cannot resume: the input is shorter than the rows already written; "
                             "run again without --resume")
        written = sinks["output"].commit()
        if written != rows_in or (source.total_rows is not None and source.format in ("parquet", "dta", "sav")
                                  and written != source.total_rows):
            raise InputError(f"row check failed: read {rows_in:,} rows from {in_path} but {out_path} "
                             f"holds {written:,}")
        refer_rows = sinks["refer"].commit() if "refer" in sinks else 0
        if "refer" in sinks and refer_rows != statuses.get("refer", 0):
            raise InputError(f"row check failed: {statuses.get('refer', 0):,} rows to refer but "
                             f"{refer_path} holds {refer_rows:,}")
        if codebook_path is not None:
            from .codebook import write_codebook

            write_codebook(codebook_path, counts, scheme_name, statuses=statuses, by_status=by_status,
                           missing_code=str(missing_code))
        state_file.unlink(missing_ok=True)
    except BaseException as exc:
        writer.close()  # a chunk being written is finished first: its checkpoint stays valid
        if bar is not None:
            bar.close()
        for sink in sinks.values():
            sink.close()
        if state_file.exists() and not isinstance(exc, InputError):
            say(f"stopped after {_done(state_file):,} rows were written; the output file was not "
                "created. Run the same command with --resume to continue")
        raise
    finally:
        stack.close()
        writer.close()
        backend.close()
    finished = time.perf_counter()
    if source.fallback_cells:
        row, name = source.fallback_first or (0, "")
        where = "the header" if row == 0 else f"row {row:,}"
        say(f"warning: {source.fallback_cells:,} cells of {in_path.name} were not valid UTF-8 and were "
            f"read as {source.text.fallback if source.text else 'cp1252'} (the first in {where}, column "
            f"{name!r}); if the text looks wrong, run again with --encoding (e.g. iso-8859-2, mac-roman)")
    return RunSummary(
        rows=rows_in, distinct_coded=chunker.distinct_coded, statuses=dict(statuses), counts=dict(counts),
        seconds=finished - started, output=out_path, codebook=codebook_path, refer=refer_path,
        refer_rows=refer_rows, resumed_from=done_rows, workers=getattr(backend, "workers", 1),
        encoding=source.encoding, fallback_cells=source.fallback_cells,
        load_seconds=coding_started - started, coding_seconds=finished - coding_started, model_built=model_built,
    )


def _refer_columns(columns: Sequence[str], scheme: str, also: Sequence[str] = ()) -> list[str]:
    """The referral file's columns: the row number, the input's, the coding columns, candidates."""
    return ["input_row", *columns, *output_columns(scheme, 1, also=also), "candidates", "candidate_titles"]


def _store_identity(decisions: Any) -> str | None:
    """The decision store a run uses, as recorded for --resume (its path, or its type)."""
    if decisions is None:
        return None
    path = getattr(decisions, "path", None)
    return str(Path(path).resolve()) if path else type(decisions).__name__


def _done(state_file: Path) -> int:
    try:
        return int(json.loads(state_file.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def _refer_rows(out: pd.DataFrame, rows: Sequence[Row], inv: np.ndarray, start_row: int) -> pd.DataFrame:
    """The chunk's rows with status ``refer``, numbered, with candidates and their titles."""
    mask = (out["status"] == "refer").to_numpy(dtype=bool)
    picked = inv[mask]
    refer = out.loc[mask].drop(columns=["candidates"], errors="ignore").reset_index(drop=True)
    refer.insert(0, "input_row", np.flatnonzero(mask) + start_row + 1)
    refer["candidates"] = take_text([r[8] for r in rows], picked)
    refer["candidate_titles"] = take_text([r[9] for r in rows], picked)
    return refer


def _load_state(path: Path, in_path: Path, settings: dict, say: Callable[[str], None]) -> dict | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        say("nothing to resume (no unfinished run for this output); starting from the beginning")
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot resume: {path} is unreadable ({exc}); run again without --resume") from None
    if state.get("version") != STATE_VERSION:
        raise InputError(f"cannot resume: {path} was written by another version; run again without --resume")
    if state.get("input") != _input_signature(in_path):
        raise InputError(f"cannot resume: {in_path} changed since the interrupted run; "
                         "run again without --resume")
    old = state.get("settings", {})
    defaults = {"also": [], "decisions": None}  # settings that older runs did not record
    changed = [name for name in settings
               if name != "model" and old.get(name, defaults.get(name)) != settings[name]]
    if changed:
        name = changed[0]
        flag = "-o" if name == "output" else "--" + {"k": "top-k", "also": "scheme", "decisions": "store"}.get(
            name, name).replace("_", "-")
        then, now = old.get(name, defaults.get(name)), settings[name]
        if name == "also":  # shown as the --scheme list it came from
            then, now = ",".join([old.get("scheme", ""), *then]), ",".join([settings["scheme"], *now])
        raise InputError(f"cannot resume: {flag} differs from the interrupted run "
                         f"({then!r} then, {now!r} now); "
                         "use the same options or run again without --resume")
    return state
