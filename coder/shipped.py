"""The learned half of a full build, shipped with the package: first use fits only the stages.

A full build (`coder.build.build_model`) cross-fits: it fits the stages on each fold, codes
the held-out queries, trains a ranker per fold for out-of-fold scores, calibrates on them,
chooses the auto-coding thresholds, and finally fits the stages and a ranker on everything.
Nine tenths of its two minutes go to the folds and rankers, yet what they leave in the model
is small: the shipped ranker's trees and calibration maps, the thresholds and the out-of-fold
figures, under 60 kB a scheme. ``coder/rankers/<scheme>.npz`` (arrays) and ``<scheme>.json``
(values) hold them for the default build of every scheme, written from a full build by
``coder build --scheme all --full --export-rankers coder/rankers``.

A default build whose `ranker_spec` (features, scheme, options, data, and the settings the
ranker learns with) equals the shipped one's fits the stages on every entry, as the full
build does last, and takes the rest from the files: with the library versions that exported
them, the model is the full build's, array for array (its pickle's bytes may differ in how
objects are shared). The stages' code is not in the spec, so the fitted model then codes the
probe queries (`probe_queries`) and must give each code the confidence the full build gave
it, within `PROBE_TOLERANCE` (`ShippedRanker.mismatch`); otherwise (a stage changed without a
new FEATURE_VERSION, or other library versions moved a feature) the caller builds in full.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .rank import Ranker
from .store import build_spec, versions

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from .index import IndexEntry
    from .model import Model
    from .training import LabelledAnswers

__all__ = ["SHIPPED_DIR", "ShippedRanker", "export_ranker", "find_ranker", "probe_queries", "ranker_spec",
           "read_ranker"]

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "rankers"
# Probe queries: this many index entries, of them misspelt, and survey answers; candidates
# kept per probe; and how far a probe's confidence may move (a feature rounded the other way
# by another library version moves a confidence by ~1e-5; a changed stage by far more).
PROBE_ENTRIES, PROBE_TYPOS, PROBE_ANSWERS, PROBE_K = 200, 50, 100, 5
PROBE_TOLERANCE = 1e-3
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip member times: the same file from the same arrays


def probe_queries(scheme: str, entries: "Sequence[IndexEntry] | None" = None,
                  answers: "LabelledAnswers | None | str" = "shipped") -> tuple[list[str], list[str], list[str]]:
    """(titles, industries, descriptions) the check codes, in any scheme: evenly spaced
    codable index entries as a survey answer would give them (title in natural order,
    industry qualifier), some of them misspelt (a middle letter dropped), and evenly spaced
    survey answers as written, with their industries and descriptions (their codes are not
    needed). Default: the shipped index and labelled answers."""
    if entries is None:
        from .index import load_index

        entries, _ = load_index()
    if isinstance(answers, str):
        from .training import load_answers

        answers = load_answers()
    codable = [e for e in entries if e.code(scheme) is not None]
    picked = codable[:: max(1, len(codable) // PROBE_ENTRIES)][:PROBE_ENTRIES]
    titles, industries = [e.natural for e in picked], [e.ind for e in picked]
    for e in picked[:: max(1, len(picked) // PROBE_TYPOS)][:PROBE_TYPOS]:
        middle = len(e.natural) // 2
        titles.append(e.natural[:middle] + e.natural[middle + 1:])
        industries.append("")
    descriptions = [""] * len(titles)
    if answers is not None and len(answers):
        rows = range(0, len(answers), max(1, len(answers) // PROBE_ANSWERS))[:PROBE_ANSWERS]
        titles += [answers.titles[i] for i in rows]
        industries += [answers.industries[i] for i in rows]
        descriptions += [answers.descriptions[i] for i in rows]
    return titles, industries, descriptions


def ranker_spec(scheme: str, options: dict | None = None) -> dict:
    """What a shipped ranker must have been exported for: the build spec (features, scheme,
    options, data) and the settings the build learns and calibrates with."""
    from .build import learning_settings

    return {**build_spec(scheme, options), "learning": learning_settings()}


def _probe(model: "Model", queries: tuple[list[str], list[str], list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's best ``PROBE_K`` codes ('' past the last) and their confidences (0 there)."""
    from .engine import Coder

    results = Coder(model).code_many(*queries, k=PROBE_K)
    codes = np.full((len(results), PROBE_K), "", dtype=object)
    confidence = np.zeros((len(results), PROBE_K), np.float64)
    for i, result in enumerate(results):
        for j, c in enumerate(result.candidates[:PROBE_K]):
            codes[i, j], confidence[i, j] = c.code, c.confidence
    return codes.astype(str), confidence


@dataclass
class ShippedRanker:
    """A scheme's shipped ranker, thresholds and out-of-fold figures, and what its full build
    gave the probe queries."""

    scheme: str
    path: Path
    ranker: Ranker
    threshold: float
    thresholds: dict[int, float]
    info: dict
    probe_codes: np.ndarray
    probe_confidence: np.ndarray
    exported_with: dict

    def mismatch(self, model: "Model", queries: tuple[list[str], list[str], list[str]]) -> tuple[str | None, float]:
        """Why ``model`` (the fitted stages with this ranker) does not code the probe queries
        as the full build did (None if it does), and the largest difference: each probe's
        confidence in each code must be within `PROBE_TOLERANCE` of the full build's (a code
        outside the best `PROBE_K` counts as 0, so two near-equal codes may swap places)."""
        codes, confidence = _probe(model, queries)
        if codes.shape != self.probe_codes.shape:
            return f"{len(codes)} probe queries, the shipped ranker knows {len(self.probe_codes)}", float("inf")
        worst = []  # per probe: (largest move, code, confidence now, confidence exported)
        for now_codes, now_conf, was_codes, was_conf in zip(codes, confidence, self.probe_codes, self.probe_confidence):
            now = {c: p for c, p in zip(now_codes, now_conf) if c}
            was = {c: p for c, p in zip(was_codes, was_conf) if c}
            moves = [(abs(now.get(c, 0.0) - was.get(c, 0.0)), c, now.get(c, 0.0), was.get(c, 0.0))
                     for c in sorted(now.keys() | was.keys())]
            worst.append(max(moves, key=lambda m: np.nan_to_num(m[0], nan=np.inf), default=(0.0, "", 0.0, 0.0)))
        moved = np.array([m[0] for m in worst], np.float64)
        largest = float(np.nan if np.isnan(moved).any() else moved.max(initial=0.0))
        over = np.flatnonzero(~(moved <= PROBE_TOLERANCE))  # NaN too
        if len(over):
            i = int(over[np.argmax(np.nan_to_num(moved[over], nan=np.inf))])
            _, code, now_p, was_p = worst[i]
            return (f"{len(over)} of {len(codes)} probe queries moved by more than {PROBE_TOLERANCE:g} (probe {i}, "
                    f"code {code}: confidence {now_p:.4f} against {was_p:.4f} exported)"), largest
        return None, largest


def _files(scheme: str, directory: Path) -> tuple[Path, Path]:
    return directory / f"{scheme}.npz", directory / f"{scheme}.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (what `np.load` reads) whose bytes depend on the arrays alone: `np.savez`
    stamps each member with the time of writing."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def export_ranker(model: "Model", directory: str | Path, *, options: dict | None = None,
                  queries: tuple[list[str], list[str], list[str]] | None = None) -> tuple[Path, Path]:
    """Write ``model``'s learned half (a full build with build ``options``) and what it gives
    the probe ``queries`` (default: `probe_queries` of the shipped data) into ``directory``;
    returns the two files' paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz, meta = _files(model.scheme, directory)
    values, arrays = model.ranker.to_arrays()
    codes, confidence = _probe(model, probe_queries(model.scheme) if queries is None else queries)
    arrays = {**arrays, "probe_codes": codes, "probe_confidence": confidence}
    _atomic_write(npz, _npz_bytes(arrays))
    description = {
        "scheme": model.scheme,
        "spec": ranker_spec(model.scheme, options),
        "arrays_sha256": _sha256(npz),
        "exported_with": versions(),
        "threshold": model.threshold,
        "thresholds": {str(g): t for g, t in model.thresholds.items()},
        "ranker": values,
        "info": model.info,
    }
    _atomic_write(meta, (json.dumps(description, indent=1) + "\n").encode())
    return npz, meta


def read_ranker(scheme: str, directory: str | Path = SHIPPED_DIR) -> tuple[ShippedRanker, dict]:
    """The shipped ranker of ``scheme`` in ``directory`` and the build spec it was exported
    for. Raises OSError or ValueError for a missing, altered or unreadable file."""
    npz, meta = _files(scheme, Path(directory))
    description = json.loads(meta.read_text())
    if description.get("arrays_sha256") != _sha256(npz):
        raise ValueError(f"{npz} does not match the checksum in {meta.name}")
    with np.load(npz, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    shipped = ShippedRanker(
        scheme=scheme, path=npz, ranker=Ranker.from_arrays(description["ranker"], arrays),
        threshold=float(description["threshold"]),
        thresholds={int(g): float(t) for g, t in description["thresholds"].items()},
        info=description["info"], probe_codes=arrays["probe_codes"], probe_confidence=arrays["probe_confidence"],
        exported_with=description.get("exported_with", {}),
    )
    return shipped, description["spec"]


def find_ranker(scheme: str, directory: str | Path = SHIPPED_DIR, *,
                options: dict | None = None) -> tuple[ShippedRanker | None, str]:
    """The shipped ranker a build of ``scheme`` with ``options`` can use, and why (or why
    not): None when there is none, it is damaged, or it was exported for other features, data
    or learning settings."""
    try:
        shipped, spec = read_ranker(scheme, directory)
    except FileNotFoundError:
        return None, f"no shipped ranker for {scheme}"
    except Exception as exc:  # any damage (the JSON is not checksummed): build in full instead
        log.warning("shipped ranker for %s unusable: %s", scheme, exc)
        return None, f"the shipped ranker for {scheme} is unreadable ({type(exc).__name__}: {exc})"
    current = ranker_spec(scheme, options)
    if not isinstance(spec, dict):
        return None, f"the shipped ranker for {scheme} is unreadable (no spec)"
    differ = sorted(k for k in current.keys() | spec.keys() if current.get(k) != spec.get(k))
    if differ:
        return None, f"the shipped ranker for {scheme} was exported for other {', '.join(differ)}"
    return shipped, f"shipped ranker {shipped.path.name}"
