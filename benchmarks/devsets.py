"""Development sets: a seeded hold-out of the ONS coding index, and the model built without it.

The split
---------
Of the index entries that carry a code in the scheme (``}}}}`` vague entries always stay in
training), ``fraction`` (default 10%) are held out, chosen by ``numpy.random.default_rng(seed)``
permuting the entries' UNIQUE IDs in sorted order. The split is therefore a pure function of
(index file, scheme, fraction, seed). The held-out entries are excluded from every part of
the dev model's build (``build_model(exclude=...)``): retrieval stages, ranker and calibration.

The sets
--------
``clean``  one row per held-out entry, written the way the model build writes its own training
           queries (`coder.model._queries`): the natural word order title ("Project
           accountant") as the title, and the entry's ADD and IND qualifiers joined as the
           industry text. ``seen_title`` flags rows whose normalised title is also the title
           of a training entry (a sibling entry with other qualifiers, or the same title under
           another code); the ``unseen`` rows are titles the model has never met.
``messy``  the same rows with the title passed through `benchmarks.messy.make_messy_frame`
           (seed ``MESSY_SEED``, every title corrupted; ``corruptions`` lists what was done;
           industry text is left as it is).
``survey`` ``benchmarks/survey_answers.csv``: hand-checked survey-style answers (soc2000 only);
           its vague and non-answers have no code and are reported apart.

The dev model lives in ``<model dir>/dev-<scheme>/`` (``models/dev-soc2000/`` in a checkout),
never over the shipped model. Its manifest records the split; it is rebuilt only when
`coder.model.stale_reason` finds it stale or the recorded split differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.messy import make_messy_frame

__all__ = [
    "DevSplit", "split_index", "training_entries", "clean_frame", "messy_frame", "survey_frame",
    "survey_pool", "zipf_rows", "survey_like",
    "dev_model_dir", "dev_model_status", "build_dev_model", "load_dev_coder", "write_dev_sets",
    "DEV_FRACTION", "DEV_SEED", "MESSY_SEED", "SURVEY_CSV", "DATA_DIR",
]

log = logging.getLogger(__name__)

DEV_FRACTION = 0.10
DEV_SEED = 0
MESSY_SEED = 0
HERE = Path(__file__).resolve().parent
SURVEY_CSV = HERE / "survey_answers.csv"
DATA_DIR = HERE / "data"


@dataclass(frozen=True)
class DevSplit:
    """A hold-out of index entries: ``held_out`` are sorted UNIQUE IDs."""

    scheme: str
    fraction: float
    seed: int
    held_out: tuple[str, ...]
    codable: int

    @property
    def ids_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.held_out).encode()).hexdigest()

    def describe(self) -> dict:
        """What the dev model's manifest records, to tell whether it was built for this split."""
        return {"scheme": self.scheme, "fraction": self.fraction, "seed": self.seed,
                "held_out": len(self.held_out), "codable": self.codable, "ids_sha256": self.ids_sha256}


def _entries(entries: Sequence | None) -> list:
    if entries is not None:
        return list(entries)
    from coder.index import load_index

    return load_index()[0]


def split_index(scheme: str = "soc2000", *, fraction: float = DEV_FRACTION, seed: int = DEV_SEED,
                entries: Sequence | None = None) -> DevSplit:
    """Hold out ``fraction`` of the codable entries of ``scheme``, chosen by a seeded RNG."""
    from coder import load_scheme

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
    scheme = load_scheme(scheme).name
    uids = sorted(e.uid for e in _entries(entries) if e.code(scheme) is not None)
    n = int(round(fraction * len(uids)))
    picked = np.random.default_rng(seed).permutation(len(uids))[:n]
    return DevSplit(scheme, fraction, seed, tuple(sorted(uids[i] for i in picked)), len(uids))


def training_entries(split: DevSplit, entries: Sequence | None = None) -> list:
    """Index entries the dev model may learn from (everything but the held-out ones)."""
    held = set(split.held_out)
    return [e for e in _entries(entries) if e.uid not in held]


def clean_frame(split: DevSplit, entries: Sequence | None = None) -> pd.DataFrame:
    """Held-out entries as queries: columns uid, title, industry, gold, index_title, seen_title."""
    from coder.normalise import normalise

    entries = _entries(entries)
    held = set(split.held_out)
    train_titles = {normalise(e.natural) for e in entries if e.uid not in held}
    rows = [e for e in entries if e.uid in held]
    return pd.DataFrame({
        "uid": [e.uid for e in rows],
        "title": [e.natural for e in rows],
        # As coder.model._queries: ADD then IND, as the context of the title.
        "industry": [" ".join(x for x in (e.add, e.ind) if x) for e in rows],
        "gold": [e.code(split.scheme) for e in rows],
        "index_title": [e.title for e in rows],
        "seen_title": [normalise(e.natural) in train_titles for e in rows],
    })


def messy_frame(clean: pd.DataFrame, *, seed: int = MESSY_SEED) -> pd.DataFrame:
    """The clean set with every title made messy (`benchmarks.messy`); adds ``corruptions``."""
    return make_messy_frame(clean, "title", seed=seed, rate=1.0)


def survey_frame(path: str | Path = SURVEY_CSV) -> pd.DataFrame:
    """Hand-checked survey answers: columns title, industry, gold (soc2000; '' = no code), note."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.DataFrame({"title": raw["answer"], "industry": raw["industry"],
                         "gold": raw["soc2000"].str.strip(), "note": raw["note"]})


def survey_pool(*, pool_size: int = 20_000, seed: int = 0,
                entries: Sequence | None = None) -> list[tuple[str, str]]:
    """Distinct (title, industry) answers for `survey_like`, most frequent first.

    ``pool_size`` index entries (seeded choice, vague ones included); half of their natural
    titles are made messy (`benchmarks.messy`), 30% carry their IND qualifier as industry.
    """
    from benchmarks.messy import make_messy

    entries = _entries(entries)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(entries))[: min(pool_size, len(entries))]
    titles = make_messy([entries[i].natural for i in pick], seed=seed, rate=0.5)
    with_ind = rng.random(len(pick)) < 0.3
    pairs = [(t, entries[i].ind if w else "") for t, i, w in zip(titles, pick, with_ind)]
    return list(dict.fromkeys(pairs))


def zipf_rows(pool_len: int, n_rows: int, *, exponent: float = 1.1, seed: int = 0) -> np.ndarray:
    """``n_rows`` indices into a pool, rank r drawn with probability proportional to 1/r**exponent."""
    weights = 1.0 / np.arange(1, pool_len + 1) ** exponent
    return np.random.default_rng(seed).choice(pool_len, size=n_rows, p=weights / weights.sum())


def survey_like(n_rows: int, *, pool_size: int = 20_000, exponent: float = 1.1, seed: int = 0,
                entries: Sequence | None = None) -> tuple[list[str], list[str]]:
    """A survey-like list of ``n_rows`` (titles, industries) with Zipf-distributed repeats
    (`survey_pool` drawn by `zipf_rows`)."""
    pool = survey_pool(pool_size=pool_size, seed=seed, entries=entries)
    rows = zipf_rows(len(pool), n_rows, exponent=exponent, seed=seed)
    return [pool[i][0] for i in rows], [pool[i][1] for i in rows]


# ------------------------------------------------------------------------------ dev model
def dev_model_dir(scheme: str = "soc2000") -> Path:
    """``<model dir>/dev-<scheme>``: ``models/dev-soc2000`` in a checkout."""
    from coder._paths import model_dir

    return model_dir() / f"dev-{scheme}"


def dev_model_status(split: DevSplit, directory: str | Path | None = None) -> str | None:
    """Why the dev model in ``directory`` cannot be used for ``split`` (None when it can)."""
    from coder.store import read_manifest, stale_reason

    directory = dev_model_dir(split.scheme) if directory is None else directory
    reason = stale_reason(split.scheme, directory)
    if reason is not None:
        return reason
    recorded = ((read_manifest(split.scheme, directory) or {}).get("info") or {}).get("dev_split")
    if recorded != split.describe():
        return "built for another dev split (or without one)"
    return None


def build_dev_model(split: DevSplit, directory: str | Path | None = None, *,
                    progress: Callable[[str], None] | None = None, **build_options) -> dict:
    """Build the model without the held-out entries and save it in ``directory``.

    Returns ``{"seconds": build time, "path": model file}``.
    """
    from coder.build import build_model
    from coder.store import save_model

    directory = dev_model_dir(split.scheme) if directory is None else Path(directory)
    started = time.perf_counter()
    model = build_model(split.scheme, exclude=split.held_out, progress=progress, **build_options)
    seconds = time.perf_counter() - started
    model.info["dev_split"] = split.describe()
    path = save_model(model, directory)
    return {"seconds": round(seconds, 2), "path": str(path)}


def _load_unchecked(scheme: str, directory: Path):
    """Load a model whose only fault is being stale: its checksum must still match."""
    import joblib

    from coder.build import Model
    from coder.store import model_files, read_manifest

    path, _ = model_files(scheme, directory)
    manifest = read_manifest(scheme, directory) or {}
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    from coder.errors import ModelError

    if h.hexdigest() != manifest.get("model_sha256"):
        raise ModelError(f"{path} does not match its manifest; delete {directory} and rerun")
    model = joblib.load(path)
    if not isinstance(model, Model) or model.scheme != scheme:
        raise ModelError(f"{path} is not a {scheme} model; delete {directory} and rerun")
    return model


def load_dev_coder(split: DevSplit, directory: str | Path | None = None, *, build: bool = True,
                   allow_stale: bool = False, progress: Callable[[str], None] | None = None):
    """The dev `Coder` for ``split``, building the dev model first when missing or stale.

    ``allow_stale`` (with ``build=False``) uses a model that is stale only because the code
    or libraries changed since it was built, with a warning in the returned info; a model
    built for another split is never used. Returns ``(coder, info)`` where info says whether
    the model was built now, how long that took, and any staleness.
    """
    from coder import Coder
    from coder.errors import ModelError
    from coder.store import load_model, read_manifest

    directory = dev_model_dir(split.scheme) if directory is None else Path(directory)
    info: dict = {"directory": str(directory), "built_now": False, "stale": None}
    reason = dev_model_status(split, directory)
    if reason is not None:
        recorded = ((read_manifest(split.scheme, directory) or {}).get("info") or {}).get("dev_split")
        usable_stale = allow_stale and recorded == split.describe()
        if build:
            if progress:
                progress(f"building the dev model in {directory} ({reason}); a few minutes")
            info.update(build_dev_model(split, directory, progress=progress))
            info["built_now"] = True
        elif usable_stale:
            info["stale"] = reason
            log.warning("dev model in %s is stale (%s); using it anyway", directory, reason)
        else:
            raise ModelError(f"dev model in {directory}: {reason}; run `python -m benchmarks` "
                             "without --skip-build to build it")
    manifest = read_manifest(split.scheme, directory) or {}
    info["manifest_build_seconds"] = (manifest.get("info") or {}).get("build_seconds")
    try:
        model = load_model(split.scheme, directory, build=False)
    except ModelError as exc:
        # Code edited between building and loading (others work on the model concurrently).
        if not (allow_stale or info["built_now"]):
            raise
        info["stale"] = str(exc)
        model = _load_unchecked(split.scheme, directory)
    return Coder(model), info


def write_dev_sets(sets: dict[str, pd.DataFrame], split: DevSplit, directory: str | Path = DATA_DIR) -> list[Path]:
    """Save the dev sets as CSV (``dev-<scheme>-<name>.csv``) with a JSON note on the split."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in sets.items():
        path = directory / f"dev-{split.scheme}-{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    note = directory / f"dev-{split.scheme}-split.json"
    note.write_text(json.dumps({**split.describe(), "messy_seed": MESSY_SEED,
                                "made_by": "benchmarks/devsets.py"}, indent=2) + "\n")
    paths.append(note)
    return paths
