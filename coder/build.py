"""Cross-fitted, deterministic model build.

The ranker must learn from queries the retrieval stages have not memorised, so the build is
cross-fitted: the index's codable entries (and the labelled answers) are split into folds;
for each fold the stages are fitted on the other folds' entries and the fold's queries are
coded (`coder.training` says which queries). Each fold is then scored by a ranker trained
on the other folds: those out-of-fold scores fit the calibration and choose the auto-coding
threshold. The shipped ranker learns from every fold, the shipped stages from every entry.

Every random choice is seeded from ``seed``; nothing time- or machine-dependent enters the
model (build timings go to the manifest), so the same data, seed and library versions give
the same model. The independent pieces (the folds; then the rankers and the shipped stages)
run in a pool of worker processes, each piece seeded on its own and single-threaded, so the
model does not depend on the number of processes or cores either.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .candidates import CandidateGenerator, feature_names
from .index import IndexEntry, load_index
from .model import Model
from .progress import BuildPlan, ShippedPlan, begin, finish, step
from .rank import Ranker, choose_threshold, ordered, share_out
from .schemes import load_scheme
from .stages import STAGES
from .training import (LabelledAnswers, QueryMix, Queries, _Context, answer_queries, decided, index_queries,
                       load_answers, seen_sample, survey_weights, vague_queries)

if TYPE_CHECKING:  # pragma: no cover
    from .shipped import ShippedRanker

__all__ = ["Model", "build_from_ranker", "build_jobs", "build_model", "default_model", "learning_settings",
           "training_frame", "top1"]

log = logging.getLogger(__name__)

# Builds from at least this many index entries use every core by default (a pool of worker
# processes costs a few seconds to start: more than a small test build takes).
PARALLEL_ENTRIES = 5000
# Answers the threshold is chosen on, when there are at least this many.
MIN_THRESHOLD_ANSWERS = 200
ANSWER_KINDS = ("answer", "answer_title")
# Query kinds the calibration is fitted on: what deployment sends (survey answers, and titles
# the index does not hold). Seen index entries teach the ranker but are easier than any real
# answer: calibrating on them would make confidences too high.
CALIBRATION_KINDS = ("unseen", *ANSWER_KINDS)


def shipped_answers(scheme: str) -> LabelledAnswers | None:
    return load_answers() if scheme == "soc2000" else None


@dataclass
class _Task:
    """One independent piece of a build: ``fn(*args)``, shown as ``status`` (``units`` of the
    plan, of ``kind``). A task run in the build process also gets the progress callback and
    plan as ``progress=``/``plan=`` when ``steps`` (it then reports its own sub-steps)."""

    fn: Callable
    args: tuple
    status: str
    units: float
    kind: str
    plain: str | None = None
    steps: bool = False


def _numbered(i: int, fn: Callable, args: tuple):
    return i, fn(*args)


def build_jobs(jobs: int | None, entries: int) -> int:
    """Worker processes for a build of ``entries`` index entries: ``jobs``, or by default every
    core for a full-size index and one (no pool to start) for small test builds. A daemonic
    process (a multiprocessing worker) may not start processes: it builds in one (joblib would
    fall back to one too, with a warning)."""
    import multiprocessing

    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if multiprocessing.current_process().daemon:
        return 1
    if jobs is not None:
        return jobs
    from joblib import cpu_count

    return cpu_count() if entries >= PARALLEL_ENTRIES else 1


def _run(tasks: Sequence[_Task], jobs: int, progress: Callable[[str], None] | None, plan: BuildPlan,
         phase: str, kind: str, done: Callable[[int, object], None] | None = None) -> list:
    """Every task's result, in task order; ``done(i, result)`` as each ends.

    One job runs the tasks in turn, each its own progress step. More run them in a process
    pool, longest first, and the bar moves by an equal share of the phase as each ends. The
    results are the same either way: each task is seeded on its own.
    """
    results: list = [None] * len(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            extra = {"progress": progress, "plan": plan} if task.steps else {}
            if not task.steps:
                step(progress, task.status, task.units, task.kind, plain=task.plain)
            results[i] = task.fn(*task.args, **extra)
            if done is not None:
                done(i, results[i])
        return results
    from joblib import Parallel, delayed

    share = sum(task.units for task in tasks) / len(tasks)
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].units)
    step(progress, f"{phase}: 0/{len(tasks)} done ({min(jobs, len(tasks))} processes)", share, kind,
         plain=f"{phase}: {len(tasks)} in {min(jobs, len(tasks))} processes")
    ended = 0
    for i, result in Parallel(n_jobs=min(jobs, len(tasks)), return_as="generator_unordered")(
            delayed(_numbered)(i, tasks[i].fn, tasks[i].args) for i in order):
        results[i] = result
        ended += 1
        if done is not None:
            done(i, result)
        if ended < len(tasks):
            step(progress, f"{phase}: {ended}/{len(tasks)} done", share, kind)
    return results


def _fold_frame(k: int, folds: int, scheme: str, kept: list[IndexEntry], known_answers: list,
                queries: Queries, stages: Sequence[type] | None, seed: int, answer_weight: float,
                progress: Callable[[str], None] | None = None, plan: BuildPlan | None = None,
                ) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Fold ``k``'s candidate rows and queries (numbered from 0), coded by stages fitted on
    the other folds' entries ``kept`` and answers ``known_answers``; and the seconds taken."""
    t0 = time.perf_counter()
    plan = plan or BuildPlan(folds)
    step(progress, f"fold {k + 1}/{folds}: fitting the stages", plan.fold_fit, "fit")
    gen = CandidateGenerator(scheme, stages=stages).fit(kept, seed=seed, decided=known_answers)
    step(progress, f"fold {k + 1}/{folds}: candidates for {len(queries):,} queries", plan.fold_generate, "generate")
    cands = gen.generate(queries.titles, queries.industries, queries.descriptions)
    step(progress, f"fold {k + 1}/{folds}: labelling", plan.fold_label, "label")
    frame = cands.frame()
    truth = np.array(queries.truth)
    kind = np.array(queries.kind)
    weight = np.where(np.isin(kind, ANSWER_KINDS), answer_weight, 1.0)
    qs = frame["q"].to_numpy()
    frame["code"] = gen.codes_[frame["code"].to_numpy()]  # fold-local number -> code string
    frame["label"] = frame["code"].to_numpy() == truth[qs]
    frame["kind"] = kind[qs]
    frame["weight"] = weight[qs]
    frame["fold"] = k
    query_frame = pd.DataFrame({"q": np.arange(len(queries)), "kind": kind, "fold": k, "truth": truth,
                                "weight": weight, "title": queries.titles, "industry": queries.industries,
                                "description": queries.descriptions})
    return frame, query_frame, time.perf_counter() - t0


def training_frame(
    scheme: str, entries: Sequence[IndexEntry], *, answers: LabelledAnswers | None = None,
    folds: int = 4, seed: int = 0, mix: QueryMix = QueryMix(), stages: Sequence[type] | None = None,
    progress: Callable[[str], None] | None = None, jobs: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidate rows, queries) for every training query, each coded by stages that never
    saw its fold.

    Rows carry the generator's features plus ``q``, ``code``, ``label``, ``fold``, ``kind``,
    ``weight`` and ``group``; queries carry ``q``, ``kind``, ``fold``, ``truth``, ``weight``
    (a query no stage reached has no rows but still counts as wrong). The queries are drawn
    in turn (one random stream); the folds are then coded in ``jobs`` processes.
    """
    rng = np.random.default_rng(seed)
    codable = np.flatnonzero([e.code(scheme) is not None for e in entries])
    fold_of = np.full(len(entries), -1)
    fold_of[codable] = rng.permutation(len(codable)) % folds
    answer_fold = rng.permutation(len(answers)) % folds if answers is not None else np.zeros(0, int)
    weights = survey_weights(entries, scheme)
    jobs = build_jobs(jobs, len(entries))
    plan = BuildPlan(folds, parallel=jobs > 1)
    tasks = []
    for k in range(folds):
        step(progress, f"fold {k + 1}/{folds}: making queries", plan.fold_queries, "queries")
        held = np.flatnonzero(fold_of == k)
        kept = [e for e, f in zip(entries, fold_of) if f != k]
        known = np.flatnonzero((fold_of >= 0) & (fold_of != k))
        seen = seen_sample(entries, known, int(mix.seen_share * len(held)), scheme, weights, rng)
        answer_rows = np.flatnonzero(answer_fold == k)
        # Context is borrowed only from this fold's answers: the rankers that score them
        # (trained on the other folds) never meet their words.
        fold_answers = None
        if answers is not None:
            fold_answers = LabelledAnswers(*(tuple(getattr(answers, f)[i] for i in answer_rows)
                                             for f in ("titles", "industries", "descriptions", "codes", "accepted")),
                                           scheme=answers.scheme)
        context = _Context(kept, scheme, fold_answers)
        queries = Queries()
        queries.extend(index_queries([entries[i] for i in held], scheme, "unseen", mix, seed * 1000 + 2 * k, context))
        queries.extend(index_queries([entries[i] for i in seen], scheme, "seen", mix, seed * 1000 + 2 * k + 1, context))
        queries.extend(vague_queries(entries, known, int(mix.vague_share * len(held)), scheme, weights, rng, context))
        if answers is not None:
            queries.extend(answer_queries(answers, answer_rows))
            queries.extend(answer_queries(answers, answer_rows, description=False))
        # The learned stage sees the other folds' answers: each answer is judged by the
        # decisions made on others, as a new answer will be.
        known_answers = decided(answers, np.flatnonzero(answer_fold != k)) if answers is not None else []
        tasks.append(_Task(_fold_frame, (k, folds, scheme, kept, known_answers, queries, stages, seed, mix.answer_weight),
                           f"fold {k + 1}/{folds}", plan.fold_fit + plan.fold_generate + plan.fold_label, "folds",
                           steps=True))

    def report(k: int, result) -> None:
        step(progress, line=f"fold {k + 1}/{folds}: {len(result[1]):,} queries in {result[2]:.0f}s")

    coded = _run(tasks, jobs, progress, plan, "coding the folds", "folds", done=report)
    frames, query_frames, offset = [], [], 0
    for frame, query_frame, _ in coded:
        frame["q"] += offset
        query_frame["q"] += offset
        offset += len(query_frame)
        frames.append(frame)
        query_frames.append(query_frame)
    return pd.concat(frames, ignore_index=True), pd.concat(query_frames, ignore_index=True)


def _out_of_fold(X: np.ndarray, labels: np.ndarray, weights: np.ndarray, held: np.ndarray, q: np.ndarray,
                 seed: int) -> np.ndarray:
    """Raw scores of the ``held`` rows by a ranker trained on the others."""
    return Ranker(random_state=seed).fit(X[~held], labels[~held], weights[~held]).raw_scores(X[held], q[held])


def _ranker(X: np.ndarray, labels: np.ndarray, weights: np.ndarray, seed: int) -> Ranker:
    return Ranker(random_state=seed).fit(X, labels, weights)


def _generator(scheme: str, entries: Sequence[IndexEntry], stages: Sequence[type] | None, seed: int,
               known: list) -> CandidateGenerator:
    return CandidateGenerator(scheme, stages=stages).fit(entries, seed=seed, decided=known)


def top1(frame: pd.DataFrame, score: np.ndarray, conf: np.ndarray) -> pd.DataFrame:
    """Each query's best row by ranker score, with its confidence."""
    return (frame.assign(score=score, confidence=conf)
            .sort_values(["q", "score"], ascending=[True, False], kind="stable")
            .groupby("q", sort=False).head(1))


def _summary(top: pd.DataFrame, queries: pd.DataFrame, threshold: float) -> dict:
    """Top-1 and auto coverage/precision over ``queries`` (unreached queries count as wrong)."""
    n = len(queries)
    rows = top[top["q"].isin(queries["q"])]
    auto = rows["confidence"].to_numpy() >= threshold
    return {
        "queries": n,
        "top1": float(rows["label"].sum() / max(n, 1)),
        "auto_coverage": float(auto.sum() / max(n, 1)),
        "auto_precision": float(rows["label"].to_numpy()[auto].mean()) if auto.any() else None,
    }


def build_model(
    scheme: str = "soc2000", *, exclude: Collection[str] = (),
    entries: Sequence[IndexEntry] | None = None, answers: LabelledAnswers | None | str = "shipped",
    folds: int = 4, seed: int = 0, mix: QueryMix = QueryMix(), precision: float = 0.95,
    stages: Sequence[type] | None = None, progress: Callable[[str], None] | None = None,
    jobs: int | None = None,
) -> Model:
    """Build a model for ``scheme`` from the shipped index (and, for SOC2000, the shipped
    labelled answers).

    Parameters
    ----------
    exclude
        Index UNIQUE IDs to leave out entirely (a held-out evaluation split).
    entries
        Build from these index entries instead of the shipped index (small test models).
    answers
        Labelled answers to learn and calibrate on; "shipped" takes the shipped learn part
        when the scheme is SOC2000, None uses none.
    mix
        How training queries are made (see `coder.training.QueryMix`).
    stages
        Stage classes to use instead of `coder.stages.STAGES` (ablations).
    jobs
        Processes to build in (default: every core for a full index, see `build_jobs`); the
        model is the same for any number.
    precision
        Target precision of ``status="auto"``: the lowest threshold reaching it on
        out-of-fold survey answers (or, without enough of them, survey-like index queries).
    """
    scheme = load_scheme(scheme).name
    problems: list[str] = []
    if entries is None:
        entries, report = load_index()
        problems = report.problems
    if isinstance(answers, str):
        answers = shipped_answers(scheme)
    excluded = set(exclude)
    entries = [e for e in entries if e.uid not in excluded]
    jobs = build_jobs(jobs, len(entries))
    plan = BuildPlan(folds, parallel=jobs > 1)
    begin(progress, plan, f"building {scheme}")
    frame, queries = training_frame(scheme, entries, answers=answers, folds=folds, seed=seed, mix=mix,
                                    stages=stages, progress=progress, jobs=jobs)
    features = feature_names(STAGES if stages is None else stages)
    X = frame[list(features)].to_numpy(np.float32)
    labels, weights = frame["label"].to_numpy(), frame["weight"].to_numpy()
    fold, q, groups = frame["fold"].to_numpy(), frame["q"].to_numpy(), frame["group"].to_numpy()
    # The out-of-fold rankers, the shipped ranker and the shipped stages need nothing from
    # each other: one pool runs them side by side.
    tasks = [_Task(_out_of_fold, (X, labels, weights, fold == k, q, seed), f"ranker {k + 1}/{folds + 1}",
                   plan.fold_ranker, "ranker", plain=f"ranker {k + 1}/{folds + 1}") for k in range(folds)]
    tasks.append(_Task(_ranker, (X, labels, weights, seed), f"ranker {folds + 1}/{folds + 1}", plan.ranker,
                       "ranker", plain=f"ranker {folds + 1}/{folds + 1}"))
    tasks.append(_Task(_generator, (scheme, entries, stages, seed, decided(answers)),
                       "fitting the shipped stages on every entry", plan.final_fit, "fit",
                       plain="fitting the shipped stages on every entry"))
    *scores, ranker, generator = _run(tasks, jobs, progress, plan, "rankers and shipped stages", "ranker")
    out_of_fold = np.zeros(len(frame), np.float32)
    for k, held_scores in enumerate(scores):
        out_of_fold[fold == k] = held_scores
    step(progress, "calibrating", plan.calibrate, "calibrate")
    cal = frame["kind"].isin(CALIBRATION_KINDS).to_numpy()
    if not cal.any():  # no unseen queries or answers (tiny test builds): calibrate on what there is
        cal[:] = True
    ranker.calibrate(out_of_fold[cal], labels[cal], q[cal], groups[cal], weights=weights[cal])
    top = top1(frame, out_of_fold, share_out(ordered(ranker.calibrated(out_of_fold, q, groups), out_of_fold, q), q))
    pick = "answer" if (queries["kind"] == "answer").sum() >= MIN_THRESHOLD_ANSWERS else "unseen"
    chosen = top[top["kind"] == pick]
    # Queries no stage reached count as wrong: they stay in the precision curve as misses
    # only through coverage, so the threshold is chosen on the reached ones.
    threshold = choose_threshold(chosen["confidence"].to_numpy(), chosen["label"].to_numpy(), precision=precision)
    thresholds = _group_thresholds(top[top["kind"].isin(CALIBRATION_KINDS)], precision, threshold)
    finish(progress)
    info = {
        "scheme": scheme,
        "entries": len(entries),
        "excluded": len(excluded),
        "answers": 0 if answers is None else len(answers),
        "index_problems": problems[:50],
        "folds": folds,
        "seed": seed,
        "mix": mix.__dict__,
        "stages": [cls.name for cls in (STAGES if stages is None else stages)],
        # Out-of-fold: every query coded by stages and a ranker that never saw its fold.
        "calibration": {
            "threshold": threshold,
            "target_precision": precision,
            "threshold_chosen_on": pick,
            **{kind: _summary(top, queries[queries["kind"] == kind], threshold)
               for kind in ("unseen", "seen", "vague", *ANSWER_KINDS) if (queries["kind"] == kind).any()},
        },
    }
    info["calibration"]["group_thresholds"] = {str(g): t for g, t in thresholds.items()}
    return Model(scheme=scheme, generator=generator, ranker=ranker, threshold=threshold, info=info,
                 thresholds=thresholds)


def build_from_ranker(
    scheme: str, shipped: ShippedRanker, *, entries: Sequence[IndexEntry] | None = None,
    answers: LabelledAnswers | None | str = "shipped", seed: int = 0, stages: Sequence[type] | None = None,
    jobs: int | None = None,
) -> Model:
    """The model `build_model` makes (with the same arguments as the full build that exported
    ``shipped``), from that build's ranker, thresholds and figures: only the stages are
    fitted, on every entry, as the full build fits them last. The classifier's one-vs-rest
    SVMs are spread over ``jobs`` processes (the same weights for any number)."""
    from joblib import parallel_config

    scheme = load_scheme(scheme).name
    if entries is None:
        entries, _ = load_index()
    if isinstance(answers, str):
        answers = shipped_answers(scheme)
    with parallel_config(n_jobs=build_jobs(jobs, len(entries))):
        generator = _generator(scheme, entries, stages, seed, decided(answers))
    return Model(scheme=scheme, generator=generator, ranker=shipped.ranker, threshold=shipped.threshold,
                 info=shipped.info, thresholds=shipped.thresholds)


def _ready() -> None:
    import sklearn.svm  # noqa: F401  (what the classifier's workers need)


def _warm_workers(jobs: int):
    """Start the pool the classifier will fit in (joblib reuses it) on a thread, so its
    processes start and import sklearn (2 s) while this one fits the index table."""
    if jobs <= 1:
        return None
    import threading

    from joblib import Parallel, delayed

    def start() -> None:
        Parallel(n_jobs=jobs, backend="loky")(delayed(_ready)() for _ in range(jobs))

    thread = threading.Thread(target=start, name="coder-warm-workers", daemon=True)
    thread.start()
    return thread


def learning_settings() -> dict:
    """What decides a full build's learned half besides the features and the data: the
    ranker's settings, the training query mix, the build's defaults and the calibration's
    constants. A shipped ranker is used only where they are what it was exported with
    (`coder.shipped.ranker_spec`); what they do not name, FEATURE_VERSION must."""
    defaults = inspect.signature(build_model).parameters
    return {
        "ranker": {p: getattr(Ranker(), p) for p in Ranker._PARAMS},
        "mix": dict(QueryMix().__dict__),
        "build": {p: defaults[p].default for p in ("folds", "seed", "precision")},
        "calibration_kinds": list(CALIBRATION_KINDS), "answer_kinds": list(ANSWER_KINDS),
        "min_threshold_answers": MIN_THRESHOLD_ANSWERS,
        "group_min_queries": inspect.signature(_group_thresholds).parameters["min_queries"].default,
    }


def default_model(scheme: str = "soc2000", *, full: bool = False, progress: Callable[[str], None] | None = None,
                  jobs: int | None = None) -> tuple[Model, dict]:
    """The default model of ``scheme`` (what `coder.Coder.load` builds) and how it was made:
    from the shipped ranker when it was exported for these features, data and settings and
    this build codes its probe queries as the full build did (`coder.shipped`), else (or when
    ``full``) by a full cross-fitted build. With the library versions that exported the
    ranker, the two are the same model, array for array."""
    from .shipped import find_ranker, probe_queries

    scheme = load_scheme(scheme).name
    shipped, why = (None, "a full build was asked for") if full else find_ranker(scheme)
    if shipped is not None:
        plan = ShippedPlan()
        begin(progress, plan, f"building {scheme} from its shipped ranker")
        step(progress, "fitting the stages on every entry", plan.FIT, "fit",
             plain=f"building {scheme} from its shipped ranker: fitting the stages on every entry")
        try:
            entries, _ = load_index()
            jobs = build_jobs(jobs, len(entries))
            warming = _warm_workers(jobs)
            model = build_from_ranker(scheme, shipped, entries=entries, jobs=jobs)
            if warming is not None:
                warming.join()
            step(progress, "checking the probe queries", plan.CHECK, "check")
            reason, moved = shipped.mismatch(model, probe_queries(scheme, entries))
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the full build is the way on
            reason, moved = f"{type(exc).__name__}: {exc}", float("nan")
            log.exception("building %s from its shipped ranker failed", scheme)
        if reason is None:
            finish(progress)
            return model, {"ranker": "shipped", "file": shipped.path.name, "exported_with": shipped.exported_with,
                           "probe_max_difference": moved}
        why = f"the shipped ranker does not fit these stages: {reason}"
        log.warning("%s: %s; building in full", scheme, why)
        step(progress, line=f"{why}; building in full")
    model = build_model(scheme, progress=progress, jobs=jobs)
    return model, {"ranker": "cross-fitted", "why": why}


def _group_thresholds(top: pd.DataFrame, precision: float, fallback: float, *, min_queries: int = 150) -> dict[int, float]:
    """The lowest threshold reaching ``precision`` for each calibration group of best
    candidates (``fallback`` where a group has too few queries to tell)."""
    out = {}
    base = top["group"].to_numpy()
    for g in np.unique(base):
        rows = top[base == g]
        if len(rows) >= min_queries:
            out[int(g)] = choose_threshold(rows["confidence"].to_numpy(), rows["label"].to_numpy(), precision=precision)
        else:
            out[int(g)] = fallback
    return out
