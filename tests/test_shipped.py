"""Shipped rankers (`coder.shipped`): a build that takes one makes the full build's model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import coder.build as build_module
from coder.build import build_from_ranker, default_model
from coder.index import load_index
from coder.rank import Ranker
from coder.schemes import SCHEMES
from coder.shipped import SHIPPED_DIR, export_ranker, find_ranker, probe_queries, read_ranker
from coder.stages.classifier import ClassifierStage
from coder.table import IndexTable

from _same import differences

OPTIONS = {"test": "shipped"}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_ships_a_ranker_for_this_data_and_these_features(scheme):
    shipped, why = find_ranker(scheme)
    assert shipped is not None, (f"{why}: after changing the data or the features, re-export with "
                                 "`coder build --scheme all --full --export-rankers coder/rankers`")
    assert shipped.threshold == shipped.info["calibration"]["threshold"]
    assert len(shipped.probe_codes) == len(probe_queries(scheme)[0])


@pytest.fixture(scope="module")
def small(small_model_dir, tmp_path_factory):
    """The small test model (a full build on every 10th entry), its ranker exported."""
    from coder.store import load_model

    entries, _ = load_index()
    entries = entries[::10]
    model = load_model("soc2000", small_model_dir)
    queries = probe_queries("soc2000", entries)
    directory = tmp_path_factory.mktemp("rankers")
    export_ranker(model, directory, options=OPTIONS, queries=queries)
    return model, entries, queries, directory


@pytest.mark.parametrize("jobs", [1, 2])  # 2: the classifier's codes in two processes, the stages on two threads
def test_a_build_from_the_exported_ranker_is_the_full_build(small, jobs):
    model, entries, queries, directory = small
    shipped, why = find_ranker("soc2000", directory, options=OPTIONS)
    assert shipped is not None, why
    rebuilt = build_from_ranker("soc2000", shipped, entries=entries, jobs=jobs)
    assert differences(model, rebuilt) == []
    assert shipped.mismatch(rebuilt, queries) == (None, 0.0)


def test_the_export_is_the_same_bytes_each_time(small, tmp_path):
    model, _, queries, directory = small
    export_ranker(model, tmp_path, options=OPTIONS, queries=queries)
    for name in ("soc2000.npz", "soc2000.json"):
        assert (tmp_path / name).read_bytes() == (directory / name).read_bytes()


def test_the_ranker_survives_its_arrays(small):
    ranker = small[0].ranker
    values, arrays = ranker.to_arrays()
    again = Ranker.from_arrays(json.loads(json.dumps(values)), arrays)
    assert differences(ranker, again) == []
    rows = np.random.default_rng(0).random((50, ranker.forest_.n_features)).astype(np.float32)
    q = np.repeat(np.arange(10), 5)
    assert np.array_equal(ranker.score(rows, q)[0], again.score(rows, q)[0])


def test_a_ranker_for_other_options_or_data_is_not_used(small, tmp_path):
    _, _, _, directory = small
    assert find_ranker("soc2000", directory)[0] is None  # exported for OPTIONS, asked for the default
    assert "other options" in find_ranker("soc2000", directory)[1]
    assert find_ranker("soc90", directory) == (None, "no shipped ranker for soc90")
    shutil.copytree(directory, tmp_path / "r")
    meta = tmp_path / "r" / "soc2000.json"
    described = json.loads(meta.read_text())
    described["spec"]["data"] = "0" * 64
    meta.write_text(json.dumps(described))
    shipped, why = find_ranker("soc2000", tmp_path / "r", options=OPTIONS)
    assert shipped is None and "other data" in why
    npz = tmp_path / "r" / "soc2000.npz"
    npz.write_bytes(npz.read_bytes()[:-10])  # truncated
    shipped, why = find_ranker("soc2000", tmp_path / "r", options=OPTIONS)
    assert shipped is None and "unreadable" in why and "checksum" in why


def test_a_damaged_description_is_not_used(small, tmp_path):
    shutil.copytree(small[3], tmp_path / "r")
    meta = tmp_path / "r" / "soc2000.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "thresholds": [1, 2]}))
    shipped, why = find_ranker("soc2000", tmp_path / "r", options=OPTIONS)
    assert shipped is None and "unreadable" in why
    meta.write_text("[]")
    assert find_ranker("soc2000", tmp_path / "r", options=OPTIONS)[0] is None


def test_a_build_that_fails_from_the_shipped_ranker_falls_back_to_the_full_build(small, monkeypatch):
    model, entries, _, directory = small
    shipped, _ = read_ranker("soc2000", directory)
    monkeypatch.setattr("coder.shipped.find_ranker", lambda scheme: (shipped, "test"))
    monkeypatch.setattr(build_module, "load_index", lambda: (entries, None))

    def broken(*args, **kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(build_module, "build_from_ranker", broken)
    monkeypatch.setattr(build_module, "build_model", lambda scheme, **kw: model)
    built, provenance = default_model("soc2000", jobs=1)
    assert built is model and provenance["ranker"] == "cross-fitted" and "MemoryError: no room" in provenance["why"]


def test_stages_that_code_the_probes_otherwise_are_caught(small):
    model, _, queries, directory = small
    shipped, _ = read_ranker("soc2000", directory)
    assert shipped.mismatch(model, queries) == (None, 0.0)
    shipped.probe_confidence = shipped.probe_confidence.copy()
    shipped.probe_confidence[3, 0] += 0.01
    reason, moved = shipped.mismatch(model, queries)
    assert reason.startswith("1 of ") and "(probe 3, code" in reason and moved == pytest.approx(0.01)
    shipped.probe_codes = shipped.probe_codes.copy()
    first = [i for i in range(len(shipped.probe_codes)) if i != 3 and shipped.probe_confidence[i, 0] > 0.01][:2]
    shipped.probe_codes[first, 0] = "9999"  # another best code, with its confidence
    reason, _ = shipped.mismatch(model, queries)
    assert reason.startswith("3 of ")
    shipped, _ = read_ranker("soc2000", directory)
    shipped.probe_confidence = np.full_like(shipped.probe_confidence, np.nan)
    reason, moved = shipped.mismatch(model, queries)
    assert "moved by more than" in reason and np.isnan(moved)


def test_two_near_equal_codes_may_swap_places(small):
    model, _, queries, directory = small
    shipped, _ = read_ranker("soc2000", directory)
    codes, conf = shipped.probe_codes.copy(), shipped.probe_confidence.copy()
    i = next(i for i in range(len(codes)) if codes[i, 4])  # a probe with five candidates
    codes[i, [3, 4]], conf[i, [3, 4]] = codes[i, [4, 3]], conf[i, [4, 3]]
    conf[i, 4] -= 1e-4  # still within the tolerance of where it was
    shipped.probe_codes, shipped.probe_confidence = codes, conf
    reason, moved = shipped.mismatch(model, queries)
    assert reason is None and moved == pytest.approx(1e-4)


def test_a_ranker_that_does_not_fit_the_stages_falls_back_to_the_full_build(small, monkeypatch):
    model, entries, queries, directory = small
    shipped, _ = read_ranker("soc2000", directory)
    shipped.probe_codes = np.full_like(shipped.probe_codes, "1111")
    monkeypatch.setattr("coder.shipped.find_ranker", lambda scheme: (shipped, "test"))
    monkeypatch.setattr("coder.shipped.probe_queries", lambda *a, **k: queries)
    monkeypatch.setattr(build_module, "load_index", lambda: (entries, None))
    full = []
    monkeypatch.setattr(build_module, "build_model", lambda scheme, **kw: full.append(scheme) or model)
    built, provenance = default_model("soc2000", jobs=1)
    assert built is model and full == ["soc2000"]
    assert provenance["ranker"] == "cross-fitted" and "does not fit these stages" in provenance["why"]
    shipped.probe_codes = read_ranker("soc2000", directory)[0].probe_codes
    built, provenance = default_model("soc2000", jobs=1)
    assert full == ["soc2000"] and provenance["ranker"] == "shipped" and differences(model, built) == []


def test_the_classifier_is_sklearns_one_vs_rest_in_one_process_or_several():
    from joblib import parallel_config
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    entries, _ = load_index()
    table = IndexTable("soc2000").fit(entries[::40])
    one = ClassifierStage().fit(table)
    with parallel_config(backend="threading", n_jobs=2):  # processes all the same (see the stage)
        two = ClassifierStage().fit(table)
    assert differences(one, two) == []
    codable = np.flatnonzero(table.codable_)
    X = table.encoder_.transform([table.docs_[i] for i in codable]).astype(np.float64)
    reference = OneVsRestClassifier(LinearSVC(random_state=0)).fit(X, table.entry_code_[codable])
    weights = np.vstack([e.coef_.ravel() for e in reference.estimators_]).T.astype(np.float32)
    weights[np.abs(weights) < one.prune] = 0.0
    assert np.array_equal(one.coef_[:, reference.classes_].toarray(), weights)
    assert np.array_equal(one.intercept_[reference.classes_],
                          np.array([e.intercept_[0] for e in reference.estimators_], np.float32))


def test_the_shipped_rankers_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from fnmatch import fnmatch
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["coder"]
    shipped = sorted(p.relative_to(SHIPPED_DIR.parent).as_posix() for p in SHIPPED_DIR.iterdir())
    assert shipped == sorted([f"rankers/{s}.{ext}" for s in SCHEMES for ext in ("json", "npz")])
    assert all(any(fnmatch(name, p) for p in patterns) for name in shipped)


def test_the_stages_fitted_here_code_the_probes_as_the_shipped_ranker_expects():
    """What a fresh checkout's first build checks (25-30 s: the stages on every entry): a
    stage whose output changed since the export would make every first build fall back to
    the full build (slowly, but to a right model) until the rankers are re-exported."""
    shipped, why = find_ranker("soc2000")
    assert shipped is not None, why
    model = build_from_ranker("soc2000", shipped)
    reason, moved = shipped.mismatch(model, probe_queries("soc2000"))
    assert reason is None, (f"{reason}: re-export with "
                            "`coder build --scheme all --full --export-rankers coder/rankers`")
    assert moved == 0.0  # the same library versions here: the same confidences
