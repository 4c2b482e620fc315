"""Where shipped data is read from and where built models are written."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import DataError

__all__ = ["data_path", "model_dir"]


def data_path(name: str) -> Path:
    """Path of a shipped data file (repo-root ``data/``, installed as ``coder._data``)."""
    try:
        base = Path(str(resources.files("coder._data")))
    except ModuleNotFoundError:  # running from a source tree that was never installed
        base = Path(__file__).resolve().parent.parent / "data"
    path = base / name
    if not path.is_file():
        raise DataError(f"data file {name!r} not found in {base}; reinstall the package")
    return path


def model_dir() -> Path:
    """Directory for built model files.

    ``$CODER_MODEL_DIR`` wins; a source checkout uses its own ``models/``; an installed
    package uses a per-user cache, because site-packages may not be writable.
    """
    env = os.environ.get("CODER_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "models").is_dir():
        return repo / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "coder" / "models"
