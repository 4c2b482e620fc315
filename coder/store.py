"""Model files: where they live, when they are stale, and how they are published.

A built model is a directory ``<scheme>-<key>/`` holding ``model.joblib`` (a pickle of
`coder.build.Model`: NumPy arrays, scikit-learn estimators and this package's classes) and
``manifest.json`` (what it was built from, library versions, a checksum of the model file,
calibration figures, build time). ``key`` is a hash of everything that decides what a build
produces: the model format, `FEATURE_VERSION` with the ranker's feature names, the build
options, every shipped data file, and the versions of the libraries that pickle into it.
A model whose key differs is never loaded (it is stale); no list of source files is kept.

Publishing is atomic: a build is written into a temporary directory beside the target and
renamed into place, model and manifest together. Building takes a per-scheme lock, so a
second process waits for the first and then loads what it built.

Only load model files you built or trust: a pickle can run code. The checksum in the
manifest guards against truncated or altered files, not against a hostile one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import joblib

from ._paths import data_dir, model_dir
from .errors import ModelError
from .schemes import load_scheme

__all__ = ["FORMAT_VERSION", "FEATURE_VERSION", "model_key", "model_files", "read_manifest", "stale_reason",
           "save_model", "load_model", "ensure_built", "build_lock"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
# Bump when a change to the stages, features, training queries or ranking changes what a
# build produces without changing a feature name or a data file.
FEATURE_VERSION = 3
_PICKLED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")
_LIBRARIES = (*_PICKLED_LIBRARIES, "rapidfuzz", "pandas")


def _version(lib: str) -> str:
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), **{lib: _version(lib) for lib in _LIBRARIES}}
    try:
        out["coder"] = metadata.version("coder")
    except metadata.PackageNotFoundError:
        out["coder"] = "source"
    return out


@lru_cache(maxsize=1)
def data_sha256() -> str:
    """Hash of every shipped data file (names and bytes)."""
    h = hashlib.sha256()
    base = data_dir()
    for path in sorted(p for p in base.iterdir() if p.is_file() and p.suffix in (".csv", ".txt", ".npz")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def model_key(scheme: str, options: dict | None = None) -> str:
    """What decides a build's output, hashed: 16 hex digits."""
    from .candidates import FEATURES

    spec = {
        "format": FORMAT_VERSION, "feature_version": FEATURE_VERSION, "features": list(FEATURES),
        "scheme": scheme, "options": options or {}, "data": data_sha256(),
        "libraries": {lib: _version(lib) for lib in _PICKLED_LIBRARIES},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _base(directory: str | Path | None) -> Path:
    return Path(directory) if directory is not None else model_dir()


def model_files(scheme: str, directory: str | Path | None = None, *, options: dict | None = None) -> tuple[Path, Path]:
    """(model file, manifest file) of the current build of ``scheme`` in ``directory``."""
    folder = _base(directory) / f"{scheme}-{model_key(scheme, options)}"
    return folder / "model.joblib", folder / "manifest.json"


def read_manifest(scheme: str, directory: str | Path | None = None, *, options: dict | None = None) -> dict | None:
    _, manifest_path = model_files(scheme, directory, options=options)
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None


def stale_reason(scheme: str, directory: str | Path | None = None, *, options: dict | None = None) -> str | None:
    """Why there is no usable model for ``scheme`` (None when there is one)."""
    path, _ = model_files(scheme, directory, options=options)
    if path.is_file() and read_manifest(scheme, directory, options=options) is not None:
        return None
    others = sorted(_base(directory).glob(f"{scheme}-*/manifest.json"))
    if others:
        return "data, code version or libraries changed since the model was built"
    return "no built model"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def build_lock(scheme: str, directory: str | Path | None = None) -> Iterator[None]:
    """Exclusive per-scheme lock around building and publishing (released on exit or crash)."""
    base = _base(directory)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{scheme}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save_model(model, directory: str | Path | None = None, *, options: dict | None = None,
               build_seconds: float | None = None) -> Path:
    """Publish ``model`` and its manifest together (atomic rename of a fresh directory);
    returns the model file path. Older builds of the same scheme are removed."""
    path, manifest_path = model_files(model.scheme, directory, options=options)
    base = path.parent.parent
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.scheme}-", dir=base))
    try:
        # Uncompressed: loading is then mostly a memory copy (compress=3 made loading 4x slower).
        joblib.dump(model, tmp / "model.joblib")
        manifest = {
            "format_version": FORMAT_VERSION, "feature_version": FEATURE_VERSION,
            "scheme": model.scheme, "key": path.parent.name.rsplit("-", 1)[1], "options": options or {},
            "data_sha256": data_sha256(), "model_sha256": _sha256(tmp / "model.joblib"),
            "versions": versions(), "threshold": model.threshold,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": build_seconds, "info": model.info,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for p in (tmp, tmp / "model.joblib", tmp / "manifest.json"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if path.parent.exists():  # replaced by an explicit rebuild: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{model.scheme}-old-", dir=base))
            os.replace(path.parent, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for other in base.glob(f"{model.scheme}-*"):
        if other.is_dir() and other != path.parent and (other / "manifest.json").is_file():
            shutil.rmtree(other, ignore_errors=True)
    return path


def ensure_built(scheme: str, directory: str | Path | None = None, *,
                 progress: Callable[[str], None] | None = None, builder: Callable[[], object] | None = None,
                 options: dict | None = None) -> None:
    """Build and publish the model for ``scheme`` unless a current one exists; a second
    process asking at the same time waits for the first build instead of repeating it.
    ``builder`` (with ``options`` naming what it builds, part of the key) replaces the
    default full build: small test models."""
    if stale_reason(scheme, directory, options=options) is None:
        return
    with build_lock(scheme, directory):
        reason = stale_reason(scheme, directory, options=options)
        if reason is None:  # another process built it while we waited
            return
        from .build import build_model

        log.info("building %s model (%s)", scheme, reason)
        if progress:
            progress(f"building the {scheme} model ({reason}); this happens once")
        started = time.perf_counter()
        try:
            model = builder() if builder is not None else build_model(scheme, progress=progress)
        finally:
            _release_build_workers()
        save_model(model, directory, options=options, build_seconds=round(time.perf_counter() - started, 1))


def _release_build_workers() -> None:
    """Stop joblib's idle worker processes left by the build: otherwise a process that built a
    model (e.g. a multiprocessing child) waits for their 300 s idle timeout before it can exit."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception as exc:  # never fail a finished build over cleanup
        log.debug("could not stop build workers: %s", exc)


def load_model(scheme: str = "soc2000", directory: str | Path | None = None, *,
               build: bool = True, progress: Callable[[str], None] | None = None,
               options: dict | None = None):
    """Load the model for ``scheme``, building it first when missing or stale.

    Raises `ModelError` when the file does not match its manifest's checksum (altered or
    truncated), or when it is missing/stale and ``build`` is False.
    """
    scheme = load_scheme(scheme).name
    path, _ = model_files(scheme, directory, options=options)
    if build and not options:
        ensure_built(scheme, directory, progress=progress)
    elif (reason := stale_reason(scheme, directory, options=options)) is not None:
        raise ModelError(f"{scheme} model in {path.parent.parent}: {reason}; run `coder build --scheme {scheme}`")
    manifest = read_manifest(scheme, directory, options=options) or {}
    if _sha256(path) != manifest.get("model_sha256"):
        raise ModelError(
            f"{path} does not match the checksum in its manifest (altered or truncated); "
            f"delete {path.parent} and run `coder build --scheme {scheme}`"
        )
    model = joblib.load(path)
    from .build import Model

    if not isinstance(model, Model) or model.scheme != scheme:
        raise ModelError(f"{path} is not a {scheme} model; run `coder build --scheme {scheme}`")
    return model
