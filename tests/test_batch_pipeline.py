"""The batch run's pipeline: reading ahead on a thread, writing behind on a thread, sharing
small chunks with worker processes once they run, and counting the output's rows back."""

from __future__ import annotations

import codecs
import threading
from pathlib import Path

import pandas as pd
import pytest

from coder.batch import code_file, runner
from coder.batch.formats import _count_text_rows, _count_text_rows_arrow
from coder.batch.frame import coded_rows
from coder.batch.runner import LocalBackend, _ChunkWriter, _expected_rows, _read_ahead


def _reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "coder-read"]


def test_read_ahead_yields_in_order_then_raises_the_readers_error():
    def chunks():
        for i in range(3):
            yield i
        raise ValueError("bad row 4")

    got = []
    with pytest.raises(ValueError, match="bad row 4"):
        for chunk in _read_ahead(chunks()):
            got.append(chunk)
    assert got == [0, 1, 2]  # every chunk before the error, as without the thread
    assert not _reading_threads()


def test_read_ahead_closed_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def chunks():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    reader = _read_ahead(chunks())
    assert next(reader) == 0
    reader.close()
    assert closed.is_set()
    assert not _reading_threads()


def test_chunk_writer_keeps_order_and_raises_a_failed_write():
    done: list[int] = []
    writer = _ChunkWriter()

    def write(i: int) -> None:
        if i == 3:
            raise OSError("disk full")
        done.append(i)

    for i in range(3):
        writer.submit(write, i)
    writer.submit(write, 3)
    with pytest.raises(OSError, match="disk full"):
        writer.wait()
    writer.close()
    assert done == [0, 1, 2]


def test_chunk_writer_close_drops_the_error_of_a_run_already_stopping():
    writer = _ChunkWriter()
    writer.submit(lambda: (_ for _ in ()).throw(OSError("late")))
    writer.close()  # no raise: the run is stopping on another error
    writer.close()  # and twice is fine


def _tricky_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["1", "2", "3", "4"],
        "job_title": ['nurse\n(night shift)', 'say "hi"', "", "a,b\r\nc"],
        "note": ["", "x", "", "y"],
    })


@pytest.mark.parametrize("sep", [",", "\t"])
@pytest.mark.parametrize("bom", [False, True])
def test_row_count_fast_path_agrees_with_pandas(tmp_path: Path, sep: str, bom: bool):
    pytest.importorskip("pyarrow")
    path = tmp_path / "out.csv"
    data = _tricky_frame().to_csv(index=False, sep=sep).encode()
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    slow = _count_text_rows(path, sep)
    assert slow == 4
    assert _count_text_rows_arrow(path, sep) == slow
    assert _count_text_rows(path, sep, expected=4) == 4


def test_row_count_disagreement_is_settled_by_pandas(tmp_path: Path):
    path = tmp_path / "out.csv"
    _tricky_frame().to_csv(path, index=False)
    assert _count_text_rows(path, ",", expected=5) == 4  # the check then fails, as it should


def test_row_count_of_header_only_and_empty_files(tmp_path: Path):
    header = tmp_path / "header.csv"
    header.write_text("id,job_title\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _count_text_rows(header, ",", expected=0) == 0
    assert _count_text_rows(empty, ",", expected=0) == 0
    assert _count_text_rows_arrow(empty, ",") is None


def test_a_started_pool_takes_smaller_chunks(small_coder, small_model_dir, monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_AGAIN", 20)
    used: list[int] = []
    real = LocalBackend._parallel

    def parallel(self, keys, report=None):
        used.append(len(keys))
        return real(self, keys, report)

    monkeypatch.setattr(LocalBackend, "_parallel", parallel)
    keys = [(f"staff nurse {i}", "", "") for i in range(200)]
    backend = LocalBackend(small_coder, 1, jobs=2, model_dir=str(small_model_dir), threshold=None,
                           parallel_min=100)
    try:
        got = backend(keys[:50])  # under parallel_min, no pool yet: coded here
        assert used == []
        got += backend(keys[50:170])
        assert used == [120]
        got += backend(keys[170:200])  # under parallel_min, but the pool runs
        assert used == [120, 30]
        got += backend(keys[:10])  # too few to share
        assert used == [120, 30]
        assert backend.workers == 2
    finally:
        backend.close()
    assert got == coded_rows(small_coder, keys + keys[:10], 1)


def test_warm_starts_the_workers_before_any_chunk(small_coder, small_model_dir):
    backend = LocalBackend(small_coder, 1, jobs=2, model_dir=str(small_model_dir), threshold=None)
    try:
        backend.warm()
        assert backend._pool is not None
        assert backend.workers == 1  # none has coded yet
    finally:
        backend.close()
    single = LocalBackend(small_coder, 1, jobs=1, model_dir=str(small_model_dir), threshold=None)
    single.warm()
    assert single._pool is None


def test_expected_rows_guesses_low_from_a_text_files_size(tmp_path: Path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,job_title\n" + b"1,nurse\n" * 1000)

    class Source:
        total_rows = None

    source = Source()
    source.path = path
    assert 0 < _expected_rows(source) <= 1000
    source.total_rows = 1234
    assert _expected_rows(source) == 1234
    source.total_rows, source.path = None, tmp_path / "gone.csv"
    assert _expected_rows(source) == 0


def test_writes_behind_and_reads_ahead_give_the_same_file(tmp_path: Path, small_model_dir):
    """Many small chunks through both threads: the same bytes as one chunk in one go."""
    titles = ["staff nurse", "HGV driver", "teacher", "cleaner", "chef", "=cmd|' /C calc'!A0"]
    df = pd.DataFrame({"id": [str(i) for i in range(300)],
                       "job_title": [f"{titles[i % 6]} {i % 37}" for i in range(300)]})
    df.to_csv(tmp_path / "in.csv", index=False)
    one = code_file(tmp_path / "in.csv", tmp_path / "one.csv", "job_title", jobs=1, chunk_size=1000,
                    model_dir=small_model_dir, refer=tmp_path / "one_refer.csv")
    many = code_file(tmp_path / "in.csv", tmp_path / "many.csv", "job_title", jobs=1, chunk_size=7,
                     model_dir=small_model_dir, refer=tmp_path / "many_refer.csv")
    assert one.rows == many.rows == 300
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "many.csv").read_bytes()
    refer = [pd.read_csv(tmp_path / f"{n}_refer.csv", dtype=str) for n in ("one", "many")]
    pd.testing.assert_frame_equal(*refer)
    assert not _reading_threads()


def test_coding_processes_run_rapidfuzz_on_one_thread(small_coder):
    from coder.stages import fuzzy

    fuzzy_stage = next(s for s in small_coder.generator.stages_ if s.name == "fuzzy")
    titles = [f"staf nurse {i}" for i in range(40)]  # over 16: a block rapidfuzz may thread
    threaded = fuzzy_stage.query(titles)
    assert fuzzy.THREADS is None
    limits = runner._OneThread()
    try:
        assert fuzzy.THREADS == 1
        single = fuzzy_stage.query(titles)
    finally:
        limits.restore_original_limits()
    assert fuzzy.THREADS is None
    assert (single.idx == threaded.idx).all() and (single.score == threaded.score).all()
    alone = runner._OneThread(fuzzy_too=False)  # one process: rapidfuzz may use every CPU
    try:
        assert fuzzy.THREADS is None
    finally:
        alone.restore_original_limits()


def test_heap_freezer_freezes_then_collects_frozen_cycles_once_the_heap_doubled():
    import gc
    import sys
    import weakref

    from coder.batch.heap import HeapFreezer

    class Node:
        pass

    heap = HeapFreezer()
    try:
        heap.settle()  # the heap as found: frozen, nothing walked
        assert gc.get_freeze_count() > 0
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle, alive at the next settle: frozen with the rest
        gone = weakref.ref(a)
        heap.settle()
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: ordinary collections skip it
        keep = [[i] for i in range(sys.getallocatedblocks() + 1000)]  # the heap (memory blocks) doubles
        heap.settle()
        assert gone() is None  # one collection over everything found the frozen cycle
        assert gc.get_freeze_count() > len(keep)  # and what is alive is frozen again
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0


def test_heap_freezer_leaves_a_process_that_froze_objects_itself_alone():
    import gc

    from coder.batch.heap import HeapFreezer

    gc.freeze()  # as a server does before forking its workers
    try:
        before = gc.get_freeze_count()
        heap = HeapFreezer()
        keep = [[i] for i in range(1000)]
        heap.settle()
        assert gc.get_freeze_count() == before  # nothing more frozen
        heap.release()
        assert gc.get_freeze_count() == before  # and nothing unfrozen
        assert keep
    finally:
        gc.unfreeze()


def test_batches_shrink_from_both_ends_toward_the_middle():
    """The pool takes batches from the front and this process from the back: every key once,
    in order, the big batches at the ends and the small ones where the two sides meet."""
    from coder.batch.runner import _SMALLEST_BATCH, _batches

    for n, workers in ((0, 2), (1, 2), (99, 2), (600, 2), (9_000, 2), (50_000, 4)):
        batches = _batches(list(range(n)), workers)
        assert [k for b in batches for k in b] == list(range(n))
        sizes = [len(b) for b in batches]
        assert all(0 < s <= 4_000 for s in sizes)
        if n >= 10 * _SMALLEST_BATCH:
            middle = sizes.index(min(sizes))
            assert sizes[:middle] == sorted(sizes[:middle], reverse=True)  # the front: falling
            assert sizes[middle + 1:] == sorted(sizes[middle + 1:])  # the back: falling from the end
            assert max(sizes[0], sizes[-1]) >= 4 * min(sizes)
        in_order = [len(b) for b in _batches(list(range(n)), workers, both_ends=False)]  # Dask: in order
        assert sorted(in_order) == sorted(sizes) and in_order[:-1] == sorted(in_order[:-1], reverse=True)
