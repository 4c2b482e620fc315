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
           queries (`coder.training`): the natural word order title ("Project
           accountant") as the title, and the entry's ADD and IND qualifiers joined as the
           industry text. ``seen_title`` flags rows whose normalised title is also the title
           of a training entry (a sibling entry with other qualifiers, or the same title under
           another code); the ``unseen`` rows are titles the model has never met.
``messy``  the same rows with the title passed through `benchmarks.messy.make_messy_frame`
           (seed ``MESSY_SEED``, every title corrupted; ``corruptions`` lists what was done;
           industry text is left as it is).
``survey`` ``benchmarks/survey_answers.csv``: hand-checked survey-style answers (soc2000 only);
           its vague and non-answers have no code and are reported apart.
``answers`` the TEST part of the labelled real survey answers
           (``benchmarks/data/survey-answers-test.csv``, soc2000 only): title, description and
           industry as respondents wrote them, the adjudicated code as gold and the two
           coders' codes as accepted codes ("right if either coder gave it"). Nothing may be
           tuned on it: the dev model learns from the labelled LEARN part only (shipped as
           ``data/survey_answers_learn.csv``).
``context`` the industry-hijack check: titles that the index codes without any qualifier
           (every index entry with that normalised title is unqualified and all agree on one
           code), drawn seeded from the dev model's training entries, each paired with an
           unrelated industry (seeded draw from the industries of the labelled LEARN part and
           the index's IND qualifiers; never one seen with the title's minor group, never one
           sharing a word with the title). Coded alone and with the industry, the code should
           not change.

The dev model lives in ``<model dir>/dev-<scheme>/`` (``models/dev-soc2000/`` in a checkout),
never over the shipped model; an ablation model built without one stage in
``dev-<scheme>-without-<stage>/``. Its manifest records the split and the stages; it is
rebuilt only when `coder.store.stale_reason` finds it stale or the recorded split or stages
differ.
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

from benchmarks._common import built_folder as _built_folder
from benchmarks._common import zipf_rows
from benchmarks.messy import make_messy_frame

__all__ = [
    "DevSplit", "split_index", "training_entries", "clean_frame", "messy_frame", "survey_frame",
    "answers_frame", "context_frame", "context_industries", "unqualified_titles",
    "survey_pool", "zipf_rows", "survey_like",
    "dev_model_dir", "dev_model_status", "build_dev_model", "load_dev_coder", "write_dev_sets",
    "stage_names", "stages_without", "recorded_manifest", "manifest_mismatch", "model_path",
    "DEV_FRACTION", "DEV_SEED", "MESSY_SEED", "CONTEXT_SEED", "SURVEY_CSV", "ANSWERS_TEST_CSV",
    "LABELLED_CSV", "DATA_DIR",
]

log = logging.getLogger(__name__)

DEV_FRACTION = 0.10
DEV_SEED = 0
MESSY_SEED = 0
CONTEXT_SEED = 0
HERE = Path(__file__).resolve().parent
SURVEY_CSV = HERE / "survey_answers.csv"
DATA_DIR = HERE / "data"
LABELLED_CSV = DATA_DIR / "survey-answers-labelled.csv"
ANSWERS_TEST_CSV = DATA_DIR / "survey-answers-test.csv"


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
        # As coder.training makes its queries: ADD then IND, as the context of the title.
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


def answers_frame(path: str | Path = ANSWERS_TEST_CSV) -> pd.DataFrame:
    """The labelled real answers' TEST part: columns uid, title, description, industry, gold
    (the adjudicated soc2000 code), coder_a, coder_b (each coder's code: accepted as right),
    agree, certainty_a, certainty_b.

    The file's first line is a ``#`` comment saying never to tune on it; it is checked here so
    that a learn-part file is never taken for the test part by mistake.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    if not first.startswith("#") or "TEST PART" not in first:
        raise ValueError(f"{path}: expected the test part of the labelled answers (first line a "
                         f"'# TEST PART ...' comment), found {first.strip()[:60]!r}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skiprows=1)
    return pd.DataFrame({
        "uid": raw["unique_id"], "title": raw["job_title"], "description": raw["job_description"],
        "industry": raw["industry"], "gold": raw["soc2000"].str.strip(),
        "coder_a": raw["coder_a"].str.strip(), "coder_b": raw["coder_b"].str.strip(),
        "agree": raw["agree"].str.lower() == "true",
        "certainty_a": raw["certainty_a"], "certainty_b": raw["certainty_b"],
    })


def _minor(code: str | None) -> str | None:
    return code[:3] if code and len(code) >= 3 and code[:3].isdigit() else None


def context_industries(scheme: str = "soc2000", *, entries: Sequence | None = None,
                       labelled: str | Path = LABELLED_CSV) -> dict[str, dict]:
    """Industry texts for the context check, each with the minor groups it was seen with.

    From the labelled answers' LEARN part (never the test part): each answer's industry with
    the minor groups of its final code and both coders' codes (soc2000 only). From the index:
    every IND qualifier with the minor groups of the entries that carry it. Returns
    ``{industry text: {"minors": set, "source": "answers" | "index"}}``, answers first.
    """
    from coder import load_scheme

    scheme = load_scheme(scheme).name
    out: dict[str, dict] = {}
    if scheme == "soc2000":
        raw = pd.read_csv(labelled, dtype=str, keep_default_na=False)
        learn = raw[raw["part"] == "learn"]
        for row in learn.itertuples(index=False):
            text = row.industry.strip()
            if text:
                item = out.setdefault(text, {"minors": set(), "source": "answers"})
                item["minors"] |= {m for m in map(_minor, (row.soc2000, row.coder_a, row.coder_b)) if m}
    for e in _entries(entries):
        text = (e.ind or "").strip()
        if text:
            item = out.setdefault(text, {"minors": set(), "source": "index"})
            if (m := _minor(e.code(scheme))) is not None:
                item["minors"].add(m)
    return out


def unqualified_titles(split: DevSplit, entries: Sequence | None = None) -> pd.DataFrame:
    """Titles the index codes without any qualifier, among the dev model's training entries.

    A normalised title qualifies when every index entry (held out or not) with that title has
    no ADD or IND qualifier and all of them carry the same code; it must also be read whole as
    occupation words by `coder.answer.read_answer`. Columns: title (natural order, as the index
    writes it), norm, gold, uid; one row per normalised title, sorted by it.
    """
    from coder.answer import read_answer
    from coder.normalise import normalise

    entries = _entries(entries)
    by_title: dict[str, list] = {}
    for e in entries:
        by_title.setdefault(normalise(e.natural), []).append(e)
    held = set(split.held_out)
    rows = []
    for norm, group in sorted(by_title.items()):
        codes = {e.code(split.scheme) for e in group}
        if not norm or len(codes) != 1 or None in codes or any(e.add or e.ind for e in group):
            continue
        train = [e for e in group if e.uid not in held]
        if not train:
            continue
        read = read_answer(train[0].natural)
        if read.title != norm or read.not_occupation:
            continue
        rows.append({"title": train[0].natural, "norm": norm, "gold": codes.pop(), "uid": train[0].uid})
    return pd.DataFrame(rows, columns=["title", "norm", "gold", "uid"])


def context_frame(split: DevSplit, entries: Sequence | None = None, *, n: int = 1_000,
                  seed: int = CONTEXT_SEED, labelled: str | Path = LABELLED_CSV) -> pd.DataFrame:
    """``n`` unqualified titles (`unqualified_titles`, seeded choice), each with one unrelated
    industry: drawn from the labelled LEARN part's industries or the index's IND qualifiers
    (each source with probability 1/2, then uniformly), excluding any industry seen with the
    title's minor group and any that shares a word of 3+ letters with the title.

    Columns: title, industry, gold, industry_source, uid.
    """
    from coder.normalise import tokens

    entries = _entries(entries)
    titles = unqualified_titles(split, entries)
    industries = context_industries(split.scheme, entries=entries, labelled=labelled)
    pools = {src: [t for t, v in industries.items() if v["source"] == src] for src in ("answers", "index")}
    pools = {k: v for k, v in pools.items() if v}
    words = {t: {w for w in tokens(t) if len(w) >= 3} for t in industries}
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(titles))[: min(n, len(titles))])
    out = []
    for row in titles.iloc[pick].itertuples(index=False):
        minor, title_words = _minor(row.gold), {w for w in tokens(row.title) if len(w) >= 3}
        for _ in range(100):
            source = list(pools)[rng.integers(len(pools))]
            pool = pools[source]
            industry = pool[rng.integers(len(pool))]
            if minor not in industries[industry]["minors"] and not words[industry] & title_words:
                break
        else:  # pragma: no cover - needs an industry tied to nearly every minor group
            continue
        out.append({"title": row.title, "industry": industry, "gold": row.gold, "industry_source": source,
                    "uid": row.uid})
    return pd.DataFrame(out, columns=["title", "industry", "gold", "industry_source", "uid"])


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


def survey_like(n_rows: int, *, pool_size: int = 20_000, exponent: float = 1.1, seed: int = 0,
                entries: Sequence | None = None) -> tuple[list[str], list[str]]:
    """A survey-like list of ``n_rows`` (titles, industries) with Zipf-distributed repeats
    (`survey_pool` drawn by `zipf_rows`)."""
    pool = survey_pool(pool_size=pool_size, seed=seed, entries=entries)
    rows = zipf_rows(len(pool), n_rows, exponent=exponent, seed=seed)
    return [pool[i][0] for i in rows], [pool[i][1] for i in rows]


# ------------------------------------------------------------------------------ dev model
def stage_names() -> list[str]:
    """Names of the engine's candidate stages, in order (`coder.stages.STAGES`)."""
    from coder.stages import STAGES

    return [cls.name for cls in STAGES]


def stages_without(stage: str) -> tuple[type, ...]:
    """`coder.stages.STAGES` without the stage called ``stage`` (ValueError naming the choices)."""
    from coder.stages import STAGES

    if stage not in stage_names():
        raise ValueError(f"no stage {stage!r}; the stages are {', '.join(stage_names())}")
    return tuple(cls for cls in STAGES if cls.name != stage)


def dev_model_dir(scheme: str = "soc2000", *, without: str | None = None) -> Path:
    """``<model dir>/dev-<scheme>`` (``models/dev-soc2000`` in a checkout); with ``without``,
    the ablation model's ``dev-<scheme>-without-<stage>``."""
    from coder._paths import model_dir

    return model_dir() / (f"dev-{scheme}" + (f"-without-{without}" if without else ""))


def recorded_manifest(scheme: str, directory: str | Path) -> dict:
    """Manifest of the model in ``directory``, current or stale ({} when there is none)."""
    folder = _built_folder(scheme, Path(directory))
    if folder is None:
        return {}
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def manifest_mismatch(manifest: dict, split: DevSplit, stages: Sequence[str] | None = None) -> str | None:
    """Why a manifest does not describe a dev model for ``split`` with ``stages`` (None if it does)."""
    info = manifest.get("info") or {}
    if info.get("dev_split") != split.describe():
        return "built for another dev split (or without one)"
    want = list(stage_names() if stages is None else stages)
    if info.get("stages") is not None and list(info["stages"]) != want:
        return f"built with stages {', '.join(info['stages'])}, not {', '.join(want)}"
    return None


def dev_model_status(split: DevSplit, directory: str | Path | None = None, *,
                     stages: Sequence[str] | None = None) -> str | None:
    """Why the dev model in ``directory`` cannot be used for ``split`` built with ``stages``
    (stage names; default every stage), or None when it can."""
    from coder.store import read_manifest, stale_reason

    directory = dev_model_dir(split.scheme) if directory is None else directory
    reason = stale_reason(split.scheme, directory)
    if reason is not None:
        return reason
    return manifest_mismatch(read_manifest(split.scheme, directory) or {}, split, stages)


def build_dev_model(split: DevSplit, directory: str | Path | None = None, *,
                    progress: Callable[[str], None] | None = None, **build_options) -> dict:
    """Build the model without the held-out entries and save it in ``directory``.

    ``build_options`` go to `coder.build.build_model` (``stages=`` for an ablation).
    Returns ``{"seconds": build time, "path": model file}``.
    """
    from coder.build import build_model
    from coder.store import save_model

    directory = dev_model_dir(split.scheme) if directory is None else Path(directory)
    started = time.perf_counter()
    model = build_model(split.scheme, exclude=split.held_out, progress=progress, **build_options)
    seconds = time.perf_counter() - started
    model.info["dev_split"] = split.describe()
    path = save_model(model, directory, build_seconds=round(seconds, 1))
    return {"seconds": round(seconds, 2), "path": str(path)}


def _load_unchecked(scheme: str, directory: Path):
    """Load a model whose only fault is being stale: its checksum must still match."""
    import joblib

    from coder.build import Model
    from coder.errors import ModelError

    folder = _built_folder(scheme, Path(directory))
    if folder is None:
        raise ModelError(f"no built {scheme} model in {directory}; run `python -m benchmarks` to build it")
    path = folder / "model.joblib"
    manifest = recorded_manifest(scheme, directory)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != manifest.get("model_sha256"):
        raise ModelError(f"{path} does not match its manifest; delete {directory} and rerun")
    model = joblib.load(path)
    if not isinstance(model, Model) or model.scheme != scheme:
        raise ModelError(f"{path} is not a {scheme} model; delete {directory} and rerun")
    return model


def model_path(scheme: str, directory: str | Path) -> Path | None:
    """The model file the dev coder loads from ``directory`` (current build, else newest stale)."""
    folder = _built_folder(scheme, Path(directory))
    return None if folder is None else folder / "model.joblib"


def load_dev_coder(split: DevSplit, directory: str | Path | None = None, *, build: bool = True,
                   allow_stale: bool = False, progress: Callable[[str], None] | None = None,
                   stages: Sequence[type] | None = None):
    """The dev `Coder` for ``split``, building the dev model first when missing or stale.

    ``stages`` (stage classes, default all) builds and checks an ablation model.
    ``allow_stale`` (with ``build=False``) uses a model that is stale only because the code
    or libraries changed since it was built, with a warning in the returned info; a model
    built for another split or other stages is never used. Returns ``(coder, info)`` where info
    says whether the model was built now, how long that took, and any staleness.
    """
    from coder import Coder
    from coder.errors import ModelError
    from coder.store import load_model

    directory = dev_model_dir(split.scheme) if directory is None else Path(directory)
    names = None if stages is None else [cls.name for cls in stages]
    info: dict = {"directory": str(directory), "built_now": False, "stale": None}
    reason = dev_model_status(split, directory, stages=names)
    if reason is not None:
        usable_stale = allow_stale and manifest_mismatch(recorded_manifest(split.scheme, directory), split, names) is None
        if build:
            if progress:
                progress(f"building the dev model in {directory} ({reason}); a few minutes")
            options = {} if stages is None else {"stages": stages}
            info.update(build_dev_model(split, directory, progress=progress, **options))
            info["built_now"] = True
        elif usable_stale:
            info["stale"] = reason
            log.warning("dev model in %s is stale (%s); using it anyway", directory, reason)
        else:
            raise ModelError(f"dev model in {directory}: {reason}; run `python -m benchmarks` "
                             "without --skip-build to build it")
    manifest = recorded_manifest(split.scheme, directory)
    info["manifest_build_seconds"] = manifest.get("build_seconds") or (manifest.get("info") or {}).get("build_seconds")
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
