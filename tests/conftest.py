"""Shared fixtures.

`coder` is the real SOC2000 model (built once into models/ if missing or stale: a few
minutes on a fresh clone). `small_coder` is a quick model over a slice of the index, for
tests of behaviour (I/O, interfaces, errors) rather than accuracy.
"""

from __future__ import annotations

import pytest

from coder import Coder
from coder.index import load_index
from coder.build import build_model
from coder.store import save_model


@pytest.fixture(scope="session")
def coder() -> Coder:
    return Coder.load("soc2000")


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory holding a small soc2000 model (every 10th index entry, 2 folds)."""
    entries, _ = load_index()
    subset = entries[::10]
    directory = tmp_path_factory.mktemp("models")
    save_model(build_model("soc2000", entries=subset, folds=2), directory)
    return directory


@pytest.fixture(scope="session")
def small_coder(small_model_dir) -> Coder:
    return Coder.load("soc2000", model_dir=small_model_dir, build=False)
