"""Model store: manifest, checksum refusal, staleness by key, atomic publish, one build
under concurrency, and reproducible builds."""

import json
import multiprocessing as mp
import shutil

import numpy as np
import pytest

from coder import Coder, ModelError
from coder.build import build_model
from coder.index import load_index
from coder.store import ensure_built, load_model, model_files, read_manifest, stale_reason


def test_manifest_records_what_built_the_model(small_model_dir):
    manifest = read_manifest("soc2000", small_model_dir)
    assert manifest["format_version"] >= 2 and manifest["scheme"] == "soc2000"
    assert len(manifest["data_sha256"]) == 64 and len(manifest["model_sha256"]) == 64
    for lib in ("scikit-learn", "numpy", "scipy", "rapidfuzz", "joblib"):
        assert manifest["versions"][lib]
    cal = manifest["info"]["calibration"]
    assert 0 <= cal["threshold"] <= 1 and 0 < cal["unseen"]["top1"] <= 1
    assert stale_reason("soc2000", small_model_dir) is None


def test_model_and_manifest_live_together_under_the_build_key(small_model_dir):
    path, manifest_path = model_files("soc2000", small_model_dir)
    assert path.parent == manifest_path.parent and path.parent.name.startswith("soc2000-")
    assert read_manifest("soc2000", small_model_dir)["key"] == path.parent.name.split("-", 1)[1]


def test_refuses_a_tampered_model_file(small_model_dir, tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(small_model_dir, directory)
    path, _ = model_files("soc2000", directory)
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelError, match="checksum"):
        load_model("soc2000", directory)


def test_a_model_built_from_other_data_or_code_is_never_loaded(small_model_dir, tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(small_model_dir, directory)
    path, _ = model_files("soc2000", directory)
    path.parent.rename(directory / "soc2000-0000000000000000")  # as if built before a change
    assert "changed" in stale_reason("soc2000", directory)
    with pytest.raises(ModelError, match="coder build"):
        Coder.load("soc2000", model_dir=directory, build=False)


def test_missing_model_without_build_says_what_to_do(tmp_path):
    assert stale_reason("soc90", tmp_path) == "no built model"
    with pytest.raises(ModelError, match="coder build --scheme soc90"):
        load_model("soc90", tmp_path, build=False)


def _tiny_build():
    entries, _ = load_index()
    return build_model("soc2000", entries=entries[::60], folds=2, answers=None)


def _build_and_log(directory: str, log: str) -> None:
    def builder():
        with open(log, "a") as fh:
            fh.write("built\n")
        return _tiny_build()

    ensure_built("soc2000", directory, builder=builder)
    load_model("soc2000", directory, build=False)


def test_two_processes_build_once_and_both_load(tmp_path):
    directory, log = str(tmp_path / "models"), str(tmp_path / "log")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_and_log, args=(directory, log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert open(log).read() == "built\n"  # the second process waited, then loaded
    assert len(list((tmp_path / "models").glob("soc2000-*"))) == 1
    assert not list((tmp_path / "models").glob(".soc2000-*"))  # no half-published leftovers


def test_same_data_and_seed_give_the_same_model():
    a, b = _tiny_build(), _tiny_build()
    ca, cb = Coder(a), Coder(b)
    titles = ["nurse", "bus driver", "manager", "sofware developer", "cleaner", "shop assistant"]
    ra, rb = ca.code_many(titles, ["hospital", None, "pub", None, "school", "supermarket"]), cb.code_many(
        titles, ["hospital", None, "pub", None, "school", "supermarket"])
    assert [r.candidates for r in ra] == [r.candidates for r in rb]
    assert a.threshold == b.threshold and a.info == b.info
    assert np.array_equal(a.generator.stages_[3].coef_.toarray(), b.generator.stages_[3].coef_.toarray())


def test_the_model_is_the_same_whatever_the_number_of_build_processes():
    entries, _ = load_index()
    one, two = (build_model("soc2000", entries=entries[::60], folds=2, answers=None, jobs=jobs) for jobs in (1, 2))
    assert one.threshold == two.threshold and one.info == two.info and one.thresholds == two.thresholds
    for name, value in vars(one.ranker.forest_).items():
        assert np.array_equal(np.asarray(value), np.asarray(vars(two.ranker.forest_)[name])), name
    assert one.ranker.calibrators_.keys() == two.ranker.calibrators_.keys()
    for g, (x, y) in one.ranker.calibrators_.items():
        assert np.array_equal(x, two.ranker.calibrators_[g][0]) and np.array_equal(y, two.ranker.calibrators_[g][1])
    titles = ["nurse", "bus driver", "manager", "sofware developer", "cleaner", "shop assistant"]
    industries = ["hospital", None, "pub", None, "school", "supermarket"]
    assert ([r.candidates for r in Coder(one).code_many(titles, industries)]
            == [r.candidates for r in Coder(two).code_many(titles, industries)])


def test_build_jobs_defaults_to_one_process_for_small_builds():
    from coder.build import PARALLEL_ENTRIES, build_jobs

    assert build_jobs(None, PARALLEL_ENTRIES - 1) == 1 and build_jobs(3, 10) == 3
    assert build_jobs(None, PARALLEL_ENTRIES) >= 1
    with pytest.raises(ValueError, match="at least 1"):
        build_jobs(0, 10)


def _jobs_in_daemon(queue) -> None:
    from coder.build import build_jobs

    queue.put(build_jobs(4, 50_000))


def test_a_daemonic_process_builds_in_one_process():
    """multiprocessing forbids a daemonic process children: it must not start a pool."""
    queue = mp.get_context("spawn").Queue()
    child = mp.get_context("spawn").Process(target=_jobs_in_daemon, args=(queue,), daemon=True)
    child.start()
    child.join(60)
    assert queue.get(timeout=5) == 1


def test_builds_in_one_process_run_one_at_a_time(tmp_path):
    """Two threads building two schemes (a service building on request) never overlap: the
    builds share joblib's worker pool, which each stops when it ends."""
    import threading
    import time as clock

    entries, _ = load_index()
    models = {s: build_model(s, entries=entries[::60], folds=2, answers=None) for s in ("soc2000", "soc90")}
    running, overlapped = [], []

    def builder(scheme):
        def build():
            running.append(scheme)
            overlapped.append(len(running) > 1)
            clock.sleep(0.3)
            running.remove(scheme)
            return models[scheme]
        return build

    threads = [threading.Thread(target=ensure_built, args=(s, tmp_path),
                                kwargs={"builder": builder(s), "options": {"test": "one at a time"}})
               for s in ("soc2000", "soc90")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlapped == [False, False]
    assert all(stale_reason(s, tmp_path, options={"test": "one at a time"}) is None for s in ("soc2000", "soc90"))
