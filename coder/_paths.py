"""Where shipped data is read from and where built models are written."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import DataError

__all__ = ["data_dir", "data_path", "model_dir"]


def data_dir() -> Path:
    """The shipped data folder (repo-root ``data/``, installed as ``coder._data``)."""
    try:
        return Path(str(resources.files("coder._data")))
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return Path(__file__).resolve().parent.parent / "data"


def data_path(name: str) -> Path:
    """Path of a shipped data file."""
    base = data_dir()
    path = base / name
    if not path.is_file():
        raise DataError(f"data file {name!r} not found in {base}; reinstall the package")
    return path


def model_dir() -> Path:
    """Directory for built model files: ``$CODER_MODEL_DIR``, else a per-user cache.

    One place per user whether the package was installed or is a source checkout, so an
    install and an editable install of the same data share one build (site-packages may
    not be writable, and a build does not belong in it).
    """
    env = os.environ.get("CODER_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "coder" / "models"
