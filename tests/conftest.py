"""Shared fixtures.

`coder` is the real SOC2000 model (built once into models/ if missing or stale: a few
minutes on a fresh clone). `small_coder` is a quick model over a slice of the index, for
tests of behaviour (I/O, interfaces, errors) rather than accuracy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import coder as coder_package
from coder import Coder
from coder._paths import model_dir
from coder.index import load_index
from coder.build import build_model
from coder.store import ensure_built, model_files


@pytest.fixture(scope="session")
def coder() -> Coder:
    return Coder.load("soc2000")


def _source_sha256() -> str:
    """Hash of the package's code: a cached test model is rebuilt whenever any of it changes."""
    h = hashlib.sha256()
    for path in sorted(Path(coder_package.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory holding a small soc2000 model (every 10th index entry, 2 folds).

    Built once and kept in a per-user cache (``$CODER_TEST_MODEL_DIR`` overrides) in a folder
    named by a hash of the package's source, so repeated and parallel test sessions share
    one build (the build lock) and any code change builds anew. Each session gets a copy.
    """
    base = Path(os.environ.get("CODER_TEST_MODEL_DIR") or model_dir().parent / "test-models")
    cache = base / _source_sha256()

    def builder():
        entries, _ = load_index()
        return build_model("soc2000", entries=entries[::10], folds=2)

    ensure_built("soc2000", cache, builder=builder)
    # Keep the few newest builds (other checkouts or edits); drop the rest.
    for old in sorted(base.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)[4:]:
        shutil.rmtree(old, ignore_errors=True)
    directory = tmp_path_factory.mktemp("models")
    path, _ = model_files("soc2000", cache)
    shutil.copytree(path.parent, directory / path.parent.name)
    return directory


@pytest.fixture(scope="session")
def small_coder(small_model_dir) -> Coder:
    return Coder.load("soc2000", model_dir=small_model_dir, build=False)
