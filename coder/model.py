"""Build, save and load models: one joblib file and one JSON manifest per scheme.

The ranker must learn from titles the retrieval stages have not memorised, so the build is
cross-fitted: the index's codable entries are split into folds; for each fold the stages are
fitted on the rest and the fold's entries are coded as queries (natural word order, with their
ADD/IND qualifiers as industry context). The ranker learns from all folds but the last, which
calibrates confidences and picks the auto-coding threshold. The shipped stages are then fitted
on every entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from ._atomic import atomic_write
from ._paths import data_path, model_dir
from .augment import typo
from .candidates import FEATURES, CandidateGenerator
from .errors import ModelError
from .index import INDEX_FILE, IndexEntry, load_index
from .normalise import normalise
from .rank import Ranker, choose_threshold
from .schemes import load_scheme

__all__ = ["Model", "build_model", "save_model", "load_model", "ensure_built", "model_files", "training_frame"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_LIBRARIES = ("scikit-learn", "numpy", "scipy", "rapidfuzz", "joblib", "pandas")
# Files whose change makes a built model stale: the data and the code that shapes features.
_DATA_FILES = (INDEX_FILE, "soc2020_index_abbreviations.csv", "survey_abbreviations.csv")
_CODE_FILES = ("normalise.py", "index.py", "candidates.py", "rank.py", "model.py", "augment.py",
               "stages/__init__.py", "stages/exact.py", "stages/fuzzy.py", "stages/tfidf.py",
               "stages/classifier.py", "stages/wordcode.py")


@dataclass
class Model:
    """Everything `Coder` needs for one scheme."""

    scheme: str
    generator: CandidateGenerator
    ranker: Ranker
    threshold: float
    info: dict = field(default_factory=dict)


def fingerprint() -> str:
    """Hash of the shipped data and the model-shaping code: a model built from anything else
    is stale."""
    h = hashlib.sha256()
    for name in _DATA_FILES:
        h.update(data_path(name).read_bytes())
    here = Path(__file__).resolve().parent
    for name in _CODE_FILES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[lib] = "unknown"
    try:
        out["coder"] = metadata.version("coder")
    except metadata.PackageNotFoundError:
        out["coder"] = "source"
    return out


@dataclass(frozen=True)
class QueryMix:
    """How training queries are made from index entries, to look like survey input.

    Respondents mistype (``typo``), and they give an industry whatever their job
    (``add_context``: an entry without qualifiers borrows the industry qualifier of another
    entry in its minor group, so that an industry is not a tell-tale sign of a qualified entry).
    ``drop_context`` asks qualified entries without their qualifiers; it is off by default
    because those queries have no right answer and pushed the auto threshold up for nothing
    (held-out entries: auto coverage 13% -> 9%, survey answers 44% -> 20%, top-1 unchanged).
    """

    typo: float = 0.25
    add_context: float = 0.4
    drop_context: float = 0.0


CLEAN = QueryMix(typo=0.0, add_context=0.0, drop_context=0.0)


def _queries(entries: Sequence[IndexEntry], scheme: str = "soc2000", mix: QueryMix = CLEAN,
             seed: int = 0, pool: Sequence[IndexEntry] = ()) -> tuple[list[str], list[str]]:
    """(titles, contexts) for index entries: natural-order title, ADD/IND as industry context,
    varied by ``mix`` with industries borrowed from ``pool``."""
    rng = random.Random(seed)
    levels = load_scheme(scheme)
    industries: dict[str, list[str]] = {}
    for e in pool:
        code = e.code(scheme)
        if code and e.ind:
            industries.setdefault(levels.level_code(code, "minor"), []).append(e.ind)
    titles, contexts = [], []
    for e in entries:
        titles.append(normalise(typo(e.natural, rng) if rng.random() < mix.typo else e.natural))
        context = f"{e.add} {e.ind}".strip()
        if context and rng.random() < mix.drop_context:
            context = ""
        elif not context and rng.random() < mix.add_context:
            code = e.code(scheme)
            borrowed = industries.get(levels.level_code(code, "minor"), []) if code else []
            context = rng.choice(borrowed) if borrowed else ""
        contexts.append(normalise(context))
    return titles, contexts


def training_frame(
    scheme: str, entries: Sequence[IndexEntry], *, folds: int = 4, seed: int = 0,
    mix: QueryMix = QueryMix(), seen_share: float = 0.3, n_jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Candidate rows for every codable entry, each coded by stages that never saw it, plus
    ``seen_share`` as many entries the stages did see.

    The unseen queries teach the ranker titles the index lacks; the seen ones teach it the most
    common case in real surveys, a title the index holds (held-out entries never are).
    Adds columns ``fold``, ``seen`` and ``label``. Queries are varied by ``mix`` so the ranker
    and the calibration see the kind of input surveys send.
    """
    rng = np.random.default_rng(seed)
    codable = np.flatnonzero([e.code(scheme) is not None for e in entries])
    fold_of = np.full(len(entries), -1)
    fold_of[codable] = rng.permutation(len(codable)) % folds
    frames = []
    offset = 0
    for k in range(folds):
        t0 = time.perf_counter()
        held = np.flatnonzero(fold_of == k)
        kept = [e for e, f in zip(entries, fold_of) if f != k]
        known = np.flatnonzero((fold_of >= 0) & (fold_of != k))
        seen = rng.choice(known, size=min(len(known), int(seen_share * len(held))), replace=False)
        queries = np.concatenate([held, seen])
        gen = CandidateGenerator(scheme, classifier_jobs=n_jobs).fit(kept)
        titles, contexts = _queries([entries[i] for i in queries], scheme, mix, seed=seed + k, pool=kept)
        frame = gen.generate(titles, contexts).frame()
        truth = np.array([entries[i].code(scheme) for i in queries])
        frame["seen"] = frame["q"].to_numpy() >= len(held)
        frame["code"] = gen.codes_[frame["code"].to_numpy()]  # fold-local index -> code string
        frame["label"] = frame["code"].to_numpy() == truth[frame["q"].to_numpy()]
        frame["q"] += offset
        frame["fold"] = k
        offset += len(queries)
        frames.append(frame)
        if progress:
            progress(f"fold {k + 1}/{folds}: {len(held)} queries in {time.perf_counter() - t0:.0f}s")
    return pd.concat(frames, ignore_index=True)


def features(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(FEATURES)].to_numpy(np.float32)


def _top1(frame: pd.DataFrame, score: np.ndarray, conf: np.ndarray) -> pd.DataFrame:
    """Each query's best row by ranker score, with its calibrated confidence."""
    return (frame.assign(score=score, confidence=conf)
            .sort_values(["q", "score"], ascending=[True, False], kind="stable")
            .groupby("q", sort=False).head(1))


def build_model(
    scheme: str = "soc2000", *, exclude: Collection[str] = (),
    entries: Sequence[IndexEntry] | None = None, folds: int = 4, seed: int = 0,
    mix: QueryMix = QueryMix(), seen_share: float = 0.3,
    precision: float = 0.95, n_jobs: int | None = -1,
    progress: Callable[[str], None] | None = None,
) -> Model:
    """Build a model for ``scheme`` from the shipped index.

    Parameters
    ----------
    exclude
        Index UNIQUE IDs to leave out entirely (a held-out evaluation split).
    entries
        Build from these index entries instead of the shipped index (small test models).
    mix, seen_share
        How training queries are made (see `QueryMix`, `training_frame`).
    precision
        Target precision of ``status="auto"`` on the calibration fold; picks the threshold.
    """
    scheme = load_scheme(scheme).name
    started = time.perf_counter()
    problems: list[str] = []
    if entries is None:
        entries, report = load_index()
        problems = report.problems
    excluded = set(exclude)
    entries = [e for e in entries if e.uid not in excluded]
    frame = training_frame(scheme, entries, folds=folds, seed=seed, mix=mix, seen_share=seen_share,
                           n_jobs=n_jobs, progress=progress)
    X, labels = features(frame), frame["label"].to_numpy()
    fold, q = frame["fold"].to_numpy(), frame["q"].to_numpy()
    # Cross-fitted ranker scores: each fold scored by a ranker that never saw it. They fit
    # the calibration and pick the threshold; the shipped ranker then learns from all folds.
    out_of_fold = np.zeros(len(frame), np.float32)
    for k in range(folds):
        if progress:
            progress(f"ranker {k + 1}/{folds + 1}")
        held = fold == k
        out_of_fold[held] = Ranker().fit(X[~held], labels[~held]).raw_scores(X[held], q[held])
    if progress:
        progress(f"ranker {folds + 1}/{folds + 1}")
    ranker = Ranker(group_feature=FEATURES.index("q_hit")).fit(X, labels)
    ranker.calibrate(out_of_fold, labels, X)
    top = _top1(frame, out_of_fold, ranker.calibrated(out_of_fold, X))
    unseen = top[~top["seen"]]
    n_unseen = int(sum(e.code(scheme) is not None for e in entries))  # unreached truths count as wrong
    # The threshold is chosen on titles the index does not hold: the conservative case.
    threshold = choose_threshold(unseen["confidence"].to_numpy(), unseen["label"].to_numpy(),
                                 precision=precision)

    def summary(rows: pd.DataFrame, n: int) -> dict:
        auto = rows["confidence"].to_numpy() >= threshold
        return {
            "queries": n,
            "top1": float(rows["label"].sum() / max(n, 1)),
            "auto_coverage": float(auto.sum() / max(n, 1)),
            "auto_precision": float(rows["label"].to_numpy()[auto].mean()) if auto.any() else None,
        }

    seen_rows = top[top["seen"]]
    if progress:
        progress("fitting the shipped stages on every entry")
    generator = CandidateGenerator(scheme, classifier_jobs=n_jobs).fit(entries)
    info = {
        "scheme": scheme,
        "entries": len(entries),
        "excluded": len(excluded),
        "index_problems": problems[:50],
        "folds": folds,
        "seed": seed,
        # Out-of-fold: every codable entry coded by stages and a ranker that never saw it
        # ("unseen"), and a sample of entries coded by stages that did ("seen").
        "calibration": {
            **summary(unseen, n_unseen),
            "threshold": threshold,
            "target_precision": precision,
            "seen": summary(seen_rows, int(frame.loc[frame["seen"], "q"].nunique())),
        },
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    return Model(scheme=scheme, generator=generator, ranker=ranker, threshold=threshold, info=info)


def model_files(scheme: str, directory: str | Path | None = None) -> tuple[Path, Path]:
    """(model file, manifest file) for ``scheme`` in ``directory`` (default `model_dir()`)."""
    base = Path(directory) if directory is not None else model_dir()
    return base / f"{scheme}.joblib", base / f"{scheme}.manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: Model, directory: str | Path | None = None) -> Path:
    """Write the model and its manifest atomically; returns the model file path."""
    path, manifest_path = model_files(model.scheme, directory)
    # Uncompressed: loading is then mostly a memory copy (compress=3 made loading 4x slower).
    atomic_write(path, lambda tmp: joblib.dump(model, tmp))
    manifest = {
        "format_version": FORMAT_VERSION,
        "scheme": model.scheme,
        "fingerprint": fingerprint(),
        "model_sha256": _sha256(path),
        "versions": _versions(),
        "threshold": model.threshold,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "info": model.info,
    }
    atomic_write(manifest_path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))
    return path


def read_manifest(scheme: str, directory: str | Path | None = None) -> dict | None:
    _, manifest_path = model_files(scheme, directory)
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None


def stale_reason(scheme: str, directory: str | Path | None = None) -> str | None:
    """Why the model on disk cannot be used as is (None when it can)."""
    path, _ = model_files(scheme, directory)
    manifest = read_manifest(scheme, directory)
    if not path.is_file() or manifest is None:
        return "no built model"
    if manifest.get("format_version") != FORMAT_VERSION:
        return "model format changed"
    if manifest.get("fingerprint") != fingerprint():
        return "data or code changed since the model was built"
    now = _versions()
    for lib in ("scikit-learn", "numpy", "scipy", "joblib"):
        if manifest.get("versions", {}).get(lib) != now[lib]:
            return f"{lib} is {now[lib]}, model was built with {manifest['versions'].get(lib)}"
    return None


def ensure_built(scheme: str, directory: str | Path | None = None, *,
                 progress: Callable[[str], None] | None = None) -> None:
    """Build and save the model for ``scheme`` if it is missing or stale."""
    reason = stale_reason(scheme, directory)
    if reason is not None:
        log.info("building %s model (%s)", scheme, reason)
        if progress:
            progress(f"building the {scheme} model ({reason}); this takes a few minutes, once")
        save_model(build_model(scheme, progress=progress), directory)


def load_model(scheme: str = "soc2000", directory: str | Path | None = None, *,
               build: bool = True, progress: Callable[[str], None] | None = None) -> Model:
    """Load the model for ``scheme``, building it first when missing or stale.

    Raises `ModelError` when the file on disk does not match its manifest's checksum (it
    was altered or truncated), or when it is missing/stale and ``build`` is False.
    """
    scheme = load_scheme(scheme).name
    path, _ = model_files(scheme, directory)
    if build:
        ensure_built(scheme, directory, progress=progress)
    elif (reason := stale_reason(scheme, directory)) is not None:
        raise ModelError(f"{scheme} model in {path.parent}: {reason}; run `coder build --scheme {scheme}`")
    manifest = read_manifest(scheme, directory) or {}
    if _sha256(path) != manifest.get("model_sha256"):
        raise ModelError(
            f"{path} does not match the checksum in its manifest (altered or truncated); "
            f"delete it and run `coder build --scheme {scheme}`"
        )
    model = joblib.load(path)
    if not isinstance(model, Model) or model.scheme != scheme:
        raise ModelError(f"{path} is not a {scheme} model; run `coder build --scheme {scheme}`")
    return model
