"""Model files: where they live, when they are stale, and how they are published.

A built model is a directory ``<scheme>-<key>/`` holding ``model.joblib`` (a plain pickle,
protocol 5, of `coder.model.Model`: NumPy and SciPy arrays and this package's
classes; `pickle.load` and `joblib.load` both read it) and
``manifest.json`` (what it was built from, library versions, a checksum of the model file,
calibration figures, build time). ``key`` is a hash of everything that decides what a build
produces: the model format, `FEATURE_VERSION` with the ranker's feature names, the build
options, every shipped data file, and the versions of the libraries that fit or pickle into it.
A model whose key differs is never loaded (it is stale); no list of source files is kept.

Publishing is atomic: a build is written into a temporary directory beside the target and
renamed into place, model and manifest together. Building takes a per-scheme lock, so a
second process waits for the first and then loads what it built.

Only load model files you built or trust: a pickle can run code. The checksum in the
manifest guards against truncated or altered files, not against a hostile one. Hashing the
whole file on every load would cost more than unpickling it, so a match is remembered in
``.verified.json`` beside it, tied to the file's size, mtime, ctime, inode and device: any
write, truncation, copy or replacement changes one of them, and the next load hashes again
(ctime cannot be set back from user space, so restoring the mtime does not hide an edit).
The hash of the shipped data (part of the key) is remembered the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from ._paths import data_dir, model_dir
from .errors import ModelError
from .schemes import load_scheme

__all__ = ["FORMAT_VERSION", "FEATURE_VERSION", "build_spec", "model_key", "model_files", "read_manifest",
           "stale_reason", "save_model", "load_model", "ensure_built", "build_lock"]

log = logging.getLogger(__name__)

# 4: the model file is a plain pickle read by the C unpickler (joblib's pure-Python one took
# 5x longer on the model's many small objects). 5: no sklearn objects in it (`coder.model`),
# and the semantic stage carries its word vectors. 6: the stages that search the index titles
# share one retrieval space (`IndexTable.title_space`): 6.5 MB less on disk, 13 MB in memory.
# 7: the semantic stage searches for a few titles by its titles' token counts (`SemanticStage._by_tokens`).
FORMAT_VERSION = 7
# Bump when a change to the stages, features, training queries or ranking changes what a
# build produces without changing a feature name or a data file.
FEATURE_VERSION = 7  # 4: features rounded (FEATURE_DECIMALS); 5: semantic code cosines one dot per pair;
# 6: rankers learn from half the wrong rows, on one thread each; 7: semantic ties by column
# Libraries whose version can change what a build produces or how its file reads.
_MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy")
_LIBRARIES = (*_MODEL_LIBRARIES, "rapidfuzz", "pandas", "joblib")


@lru_cache(maxsize=None)  # a process keeps the libraries it imported; the key is made several times a load
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


# A file changed less than this long ago is hashed but its hash not remembered: a write in the
# same clock tick as the one recorded would leave its stat signature unchanged.
_SETTLE_NS = 2_000_000_000
_VERIFIED = ".verified.json"
_DATA_HASHES = ".data-sha256.json"
# One build at a time in a process (e.g. a service building two schemes on request): builds
# share joblib's pool of worker processes, and each stops it when it ends.
_BUILDING = threading.RLock()


def _signature(path: Path) -> list[int]:
    """What changes whenever a file's bytes may have: size, mtime, ctime, inode, device."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _settled(signatures: list[list[int]]) -> bool:
    now = time.time_ns()
    return all(now - sig[2] > _SETTLE_NS for sig in signatures)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: object) -> None:
    """Write ``value`` to ``path`` atomically; a cache, so a folder we may not write is fine."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    except OSError:
        return
    try:
        os.fchmod(fd, 0o644)  # like the model files: readable by whoever may load them
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _data_files(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_file() and p.suffix in (".csv", ".txt", ".npz"))


@lru_cache(maxsize=1)
def data_sha256() -> str:
    """Hash of every shipped data file (names and bytes).

    Remembered in the model folder against the files' stat signatures (see the module
    docstring), so a load does not read the 27 MB of data again.
    """
    base = data_dir()
    files = _data_files(base)
    signatures = {str(p): _signature(p) for p in files}
    cache = model_dir() / _DATA_HASHES
    remembered = _read_json(cache)
    if isinstance(remembered, dict) and remembered.get("files") == signatures and remembered.get("sha256"):
        return str(remembered["sha256"])
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    digest = h.hexdigest()
    if _settled(list(signatures.values())) and cache.parent.is_dir():
        _write_json(cache, {"files": signatures, "sha256": digest})
    return digest


def build_spec(scheme: str, options: dict | None = None) -> dict:
    """What decides a build's output, library versions aside: the ranker's features, the
    scheme, the build options and the shipped data (`coder.shipped` matches on it)."""
    from .candidates import FEATURES

    return {"feature_version": FEATURE_VERSION, "features": list(FEATURES), "scheme": scheme,
            "options": options or {}, "data": data_sha256()}


def model_key(scheme: str, options: dict | None = None) -> str:
    """What decides a build's output (`build_spec`, the model format, library versions),
    hashed: 16 hex digits."""
    spec = {**build_spec(scheme, options), "format": FORMAT_VERSION,
            "libraries": {lib: _version(lib) for lib in _MODEL_LIBRARIES}}
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


def _matches_checksum(path: Path, expected: object) -> bool:
    """Whether the model file's bytes hash to ``expected`` (its manifest's checksum). A match
    is remembered beside the file against its stat signature; see the module docstring."""
    if not isinstance(expected, str) or not expected:
        return False
    marker = path.parent / _VERIFIED
    signature = _signature(path)  # before hashing: a write from now on changes it
    if _read_json(marker) == {"model_sha256": expected, "file": signature}:
        return True
    if _sha256(path) != expected:
        return False
    if _settled([signature]):
        _write_json(marker, {"model_sha256": expected, "file": signature})
    return True


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
               build_seconds: float | None = None, provenance: dict | None = None) -> Path:
    """Publish ``model`` and its manifest together (atomic rename of a fresh directory);
    returns the model file path. Older builds of the same scheme are removed.
    ``provenance`` (how it was built, e.g. from a shipped ranker) goes into the manifest."""
    path, manifest_path = model_files(model.scheme, directory, options=options)
    base = path.parent.parent
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.scheme}-", dir=base))
    try:
        # Uncompressed (compress=3 made loading 4x slower), and a plain pickle, not joblib.dump:
        # pickle.load is C throughout, where joblib.load unpickles in Python (0.5 s against 0.1 s).
        with open(tmp / "model.joblib", "wb") as fh:
            pickle.dump(model, fh, protocol=5)
        manifest = {
            "format_version": FORMAT_VERSION, "feature_version": FEATURE_VERSION,
            "scheme": model.scheme, "key": path.parent.name.rsplit("-", 1)[1], "options": options or {},
            "data_sha256": data_sha256(), "model_sha256": _sha256(tmp / "model.joblib"),
            "versions": versions(), "threshold": model.threshold,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": build_seconds, "built_from": provenance or {"ranker": "cross-fitted"},
            "info": model.info,
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
    process asking at the same time waits for the first build instead of repeating it, and
    builds in one process run one at a time. ``builder`` (with ``options`` naming what it
    builds, part of the key) replaces the default build (`coder.build.default_model`):
    small test models."""
    reason = stale_reason(scheme, directory, options=options)
    if reason is None:
        return
    if progress:  # before the lock: waiting for another process's build is not silent either
        progress(f"building the {scheme} model ({reason}); this happens once")
    waited = time.perf_counter()
    with _BUILDING, build_lock(scheme, directory):
        reason = stale_reason(scheme, directory, options=options)
        if reason is None:  # another process built it while we waited
            if progress:
                progress(f"another process built the {scheme} model meanwhile "
                         f"(waited {time.perf_counter() - waited:.0f}s)")
            return
        from .build import default_model

        log.info("building %s model (%s)", scheme, reason)
        started = time.perf_counter()
        provenance = None
        try:
            if builder is not None:
                model = builder()
            else:
                model, provenance = default_model(scheme, progress=progress)
        finally:
            _release_build_workers()
            from .progress import StepBar

            if isinstance(progress, StepBar):  # a build bar: gone, whether the build ended or failed
                progress.close()
        save_model(model, directory, options=options, build_seconds=round(time.perf_counter() - started, 1),
                   provenance=provenance)
        if progress:
            progress(f"built the {scheme} model in {time.perf_counter() - started:.0f}s")


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
    if not _matches_checksum(path, manifest.get("model_sha256")):
        raise ModelError(
            f"{path} does not match the checksum in its manifest (altered or truncated); "
            f"delete {path.parent} and run `coder build --scheme {scheme}`"
        )
    with open(path, "rb") as fh:
        model = pickle.load(fh)
    from .model import Model

    if not isinstance(model, Model) or model.scheme != scheme:
        raise ModelError(f"{path} is not a {scheme} model; run `coder build --scheme {scheme}`")
    return model
