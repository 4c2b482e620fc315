"""Accuracy and speed together: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

What it does
------------
1. Splits the ONS index (`benchmarks.devsets`: 10% of codable entries, seed 0), writes the
   clean, messy and context dev sets to ``benchmarks/data/`` and builds the dev model without
   the held-out entries in ``models/dev-<scheme>/`` (only when missing or stale). The dev model
   learns from the labelled answers' LEARN part as the shipped model does, never the test part.
2. Accuracy of the dev model, every figure beside two naive baselines fitted on the same
   training entries and given the title only (`benchmarks.baselines`), on the sets:

   * ``clean`` / ``messy``: held-out index entries (the long tail), targets "no loss" from
     issue 9 (top-1 >= 63.6% / 57.4%) and the earlier ones;
   * ``survey``: the 166 hand-checked survey-style answers (``benchmarks/survey_answers.csv``);
   * ``answers``: the TEST part of the labelled real answers (title, description, industry;
     right if the adjudicated code or either coder's code), with issue 9's targets: auto >= 60%
     at >= 95% precision, top-1 >= 85%, top-5 >= 97%, ECE <= 0.04;
   * ``context``: the industry-hijack check of issue 9: titles the index codes without any
     qualifier, coded alone and with an unrelated industry; the share of pairs whose code
     changes (target <= 1%) and the auto-coded share with and without the industry.

   Per-set reports and plots go to ``benchmarks/results/accuracy/<set>/``; all of it to
   ``accuracy.json``.
3. Speed, each measured in its own fresh process so memory figures do not mix: model build
   and load time, throughput on distinct titles (cold caches), throughput on a survey-like
   list with Zipf-distributed repeats (``code_many`` in chunks), single-title latency (cache
   cleared before each title) and peak RSS (psutil, sampled every 10 ms, and the kernel's
   VmHWM). Baselines get the same inputs. ``coder suggest`` is timed as a whole command on
   the full model (median of 5). Results: ``speed.json``.
4. ``summary.md``: one table per part, each figure beside the baselines as a ratio
   (coder / baseline), and the targets with how far each is missed.

``--ablation STAGE`` builds a second dev model without one candidate stage (in
``models/dev-<scheme>-without-<stage>/``) and reports the accuracy sets for both models side
by side, with the baselines, in ``ablation-<stage>.json`` / ``.md`` (no speed part).

``--quick`` samples the dev sets and shortens the speed runs (results go to
``*-quick.json``; summary.md is left alone); ``--sets`` runs some accuracy sets only;
``--skip-build`` never builds a dev model and uses it even when stale (code changed since),
with a note in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # `python benchmarks/run.py` from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks._common import SURVEY_DRAW, PeakRSS, git_commit, latency_summary  # noqa: E402
from benchmarks._common import log as _log  # noqa: E402

RESULTS = HERE / "results"

# Reported, never asserted. (metric key, target, "ge" | "le", unit)
TARGETS = {
    "distinct_titles_per_s": (5_000, "ge"),
    "survey_rows_per_s": (150_000, "ge"),
    "latency_p99_ms": (3.0, "le"),
    "load_seconds": (1.0, "le"),
    "suggest_seconds": (0.5, "le"),
    "peak_rss_mb": (350, "le"),
}
# set -> metric -> [(target, where it comes from)], all "at least".
ACCURACY_TARGETS: dict[str, dict[str, list[tuple[float, str]]]] = {
    "clean": {"top1": [(0.636, "no loss"), (0.75, "earlier")], "top5": [(0.95, "earlier")]},
    "messy": {"top1": [(0.574, "no loss"), (0.68, "earlier")], "top5": [(0.90, "earlier")]},
    "answers": {"top1": [(0.85, "")], "top5": [(0.97, "")]},
}
ECE_TARGETS = {"answers": 0.04}  # at most
AUTO_TARGETS = {"answers": (0.60, 0.95)}  # (coverage, precision); the rest: AUTO_TARGET
AUTO_TARGET = (0.60, 0.92)
CONTEXT_TARGETS = {"changed_share": 0.01, "auto_gap": 0.01}  # at most; gap = auto alone - auto with
SETS = ("clean", "messy", "survey", "answers", "context")

FULL = {"sample": None, "context": 1_000, "distinct": 6_000, "latency": 1_000, "survey_rows": 1_000_000,
        "chunk": 50_000, "baseline_budget_s": 90.0, "pool": 20_000}
QUICK = {"sample": 400, "context": 200, "distinct": 500, "latency": 100, "survey_rows": 100_000,
         "chunk": 50_000, "baseline_budget_s": 10.0, "pool": 20_000}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    lat = latency_summary(seconds, quantiles=(50, 99))
    return {"latency_p50_ms": lat.get("p50"), "latency_p99_ms": lat.get("p99"),
            "latency_mean_ms": lat.get("mean"), "latency_n": lat["n"]}


# =============================================================================== workers
def _worker_build(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.devsets import build_dev_model, split_index, stages_without

    options = {"stages": stages_without(args.ablation)} if args.ablation else {}
    with PeakRSS() as mem:
        split = split_index(args.scheme)
        out = build_dev_model(split, args.model_dir, progress=_log, **options)
    return {"build_seconds": out["seconds"], **mem.report()}


def _read_inputs(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _survey_rows(inputs: dict[str, Any]) -> tuple[list[str], list[str]]:
    from benchmarks._common import zipf_rows  # not devsets: it imports pandas

    pool = inputs["pool"]
    rows = zipf_rows(len(pool), inputs["survey_rows"], exponent=inputs["exponent"], seed=inputs["seed"])
    return [pool[i][0] for i in rows], [pool[i][1] for i in rows]


def _worker_coder(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        import coder  # noqa: F401  (import cost is reported apart from load)
        from coder import Coder
        from coder.errors import ModelError
        from coder.normalise import tokens
        out["import_seconds"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        try:
            c = Coder.load(args.scheme, model_dir=args.model_dir, build=False)
        except ModelError as exc:  # stale (code changed since the build): load it without the check
            from benchmarks.devsets import _load_unchecked

            out["load_note"] = f"manifest check failed ({exc}); loaded without it"
            t0 = time.perf_counter()
            c = Coder(_load_unchecked(args.scheme, Path(args.model_dir)))
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        out["rss_after_load_mb"] = round(mem.now_mb(), 1)
        # Where load time goes: the manifest check (hashes data, code and the model file).
        from benchmarks._common import built_folder  # not devsets: it imports pandas
        from coder.store import stale_reason
        t0 = time.perf_counter()
        stale_reason(args.scheme, args.model_dir)
        out["load_check_seconds"] = round(time.perf_counter() - t0, 3)
        import hashlib

        path = built_folder(args.scheme, args.model_dir) / "model.joblib"
        t0 = time.perf_counter()
        hashlib.sha256(path.read_bytes()).hexdigest()
        out["load_checksum_seconds"] = round(time.perf_counter() - t0, 3)
        out["model_file_mb"] = round(path.stat().st_size / 2**20, 1)
        model = c.model
        inputs = _read_inputs(args.inputs)
        c.code_many(["nurse", "bus driver"])  # first call pays one-off lazy set-up

        def fresh() -> "Coder":
            tokens.cache_clear()  # the normaliser's memo is a cache too
            return Coder(model)

        titles = [t for t, _ in inputs["distinct"]]
        inds = [i for _, i in inputs["distinct"]]
        cold = fresh()
        t0 = time.perf_counter()
        cold.code_many(titles, inds)
        sec = time.perf_counter() - t0
        out.update(distinct_titles=len(titles), distinct_seconds=round(sec, 3),
                   distinct_titles_per_s=round(len(titles) / sec, 1))

        single = fresh()
        times = []
        for t, i in inputs["latency"]:
            single._cache.clear()
            single._reads.clear()  # the memo of raw answers read (each title here is new anyway)
            tokens.cache_clear()
            t0 = time.perf_counter()
            single.code(t, i)
            times.append(time.perf_counter() - t0)
        out.update(_percentiles(times))

        rows, row_inds = _survey_rows(inputs)
        survey = fresh()
        chunk = inputs["chunk"]
        t0 = time.perf_counter()
        for start in range(0, len(rows), chunk):
            survey.code_many(rows[start:start + chunk], row_inds[start:start + chunk])
        sec = time.perf_counter() - t0
        out.update(survey_rows=len(rows), survey_distinct=len(set(zip(rows, row_inds))),
                   survey_seconds=round(sec, 3), survey_rows_per_s=round(len(rows) / sec, 1))
    out.update(mem.report())
    return out


def _worker_baseline(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from benchmarks.baselines import BASELINES
    from benchmarks.devsets import split_index, training_entries

    out: dict[str, Any] = {}
    with PeakRSS() as mem:
        inputs = _read_inputs(args.inputs)
        t0 = time.perf_counter()
        from coder.index import load_index

        entries, _ = load_index()
        train = training_entries(split_index(args.scheme, entries=entries), entries)
        out["index_seconds"] = round(time.perf_counter() - t0, 3)
        base = BASELINES[args.worker](args.scheme).fit(train)
        # A baseline is fitted from the index at start-up: its build and its load are both
        # reading the index plus fitting.
        out["build_seconds"] = out["load_seconds"] = round(time.perf_counter() - t0, 3)
        del entries, train
        out["rss_after_load_mb"] = round(mem.now_mb(), 1)
        base.code_many(["nurse"])

        titles = [t for t, _ in inputs["distinct"]]
        t0 = time.perf_counter()
        base.code_many(titles)
        sec = time.perf_counter() - t0
        out.update(distinct_titles=len(titles), distinct_seconds=round(sec, 3),
                   distinct_titles_per_s=round(len(titles) / sec, 1))

        times = []
        for t, _ in inputs["latency"]:
            t0 = time.perf_counter()
            base.code_many([t])
            times.append(time.perf_counter() - t0)
        out.update(_percentiles(times))

        # Survey-like: de-duplicate, then code the distinct answers within a time budget;
        # past the budget the remaining distinct answers are extrapolated at the rate so far.
        rows, _ = _survey_rows(inputs)
        from benchmarks.baselines import _distinct

        t0 = time.perf_counter()
        inverse, texts = _distinct(rows)
        done, budget, step = 0, inputs["baseline_budget_s"], 256
        codes = []
        while done < len(texts) and time.perf_counter() - t0 < budget:
            codes.append(base._top1(texts[done:done + step])[0])
            done += len(codes[-1])
        sec = time.perf_counter() - t0
        if done < len(texts):
            sec = sec / done * len(texts)
            out["survey_extrapolated"] = (f"coded {done:,} of {len(texts):,} distinct answers in the "
                                          f"{budget:.0f}s budget; time scaled up linearly")
        else:
            np.concatenate(codes)[inverse]  # the per-row answer, as a caller would need it
        out.update(survey_rows=len(rows), survey_distinct=len(texts), survey_seconds=round(sec, 3),
                   survey_rows_per_s=round(len(rows) / sec, 1))
    out.update(mem.report())
    return out


def _worker_suggest(args: argparse.Namespace) -> dict[str, Any]:
    """`coder suggest` as a user runs it: the whole command, start-up included, on the full
    model in the default place (the dev model is built with other options, so the command
    would not find it); median wall time of 5 runs after one warm-up, and their peak RSS."""
    import resource
    import shutil
    import statistics

    from coder.store import stale_reason

    why = stale_reason(args.scheme)
    if why is not None:
        return {"suggest_note": f"not measured: no current full model ({why}); run `coder build`"}
    exe = shutil.which("coder")
    cmd = [exe] if exe else [sys.executable, "-m", "coder"]
    times = []
    with tempfile.TemporaryDirectory(prefix="coder-suggest-") as tmp:
        env = {**os.environ, "CODER_STORE": str(Path(tmp) / "decisions.sqlite")}
        for run in range(6):
            t0 = time.perf_counter()
            subprocess.run([*cmd, "suggest", "staff nurse", "--scheme", args.scheme], env=env, check=True,
                           capture_output=True, timeout=300)
            if run:  # the first run warms the page cache and remembers the model's checksum
                times.append(time.perf_counter() - t0)
    return {"suggest_seconds": round(statistics.median(times), 3),
            "suggest_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


WORKERS = {"build": _worker_build, "coder": _worker_coder, "fuzzy": _worker_baseline, "tfidf": _worker_baseline,
           "suggest": _worker_suggest}


def _spawn(worker: str, args: argparse.Namespace, inputs: Path | None = None, timeout: float = 3600, *,
           model_dir: Path | None = None, ablation: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", worker, "--scheme", args.scheme,
           "--model-dir", str(model_dir or args.model_dir)]
    if inputs is not None:
        cmd += ["--inputs", str(inputs)]
    if ablation:
        cmd += ["--ablation", ablation]
    _log(f"[{worker}] {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {worker!r} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ============================================================================== accuracy
# How each set is coded and scored: evaluate_frame options beyond title/gold/industry.
_SET_OPTIONS: dict[str, dict[str, Any]] = {
    "answers": {"description_column": "description", "accept_columns": ["coder_a", "coder_b"],
                "target_precision": AUTO_TARGETS["answers"][1]},
}


def _sets(split, cfg: dict, names: tuple[str, ...] = SETS) -> dict[str, Any]:
    """The accuracy sets by name (frames), and the context pairs under ``"context"``."""
    import numpy as np

    from benchmarks.devsets import answers_frame, clean_frame, context_frame, messy_frame, survey_frame

    sets: dict[str, Any] = {}
    if {"clean", "messy"} & set(names):
        clean = clean_frame(split)
        both = {"clean": clean, "messy": messy_frame(clean)}
        if cfg["sample"] and cfg["sample"] < len(clean):
            keep = np.sort(np.random.default_rng(0).choice(len(clean), cfg["sample"], replace=False))
            both = {k: v.iloc[keep].reset_index(drop=True) for k, v in both.items()}
        sets.update({k: v for k, v in both.items() if k in names})
    if split.scheme == "soc2000":  # the survey answers are coded to SOC2000 only
        if "survey" in names:
            sets["survey"] = survey_frame()
        if "answers" in names:
            sets["answers"] = answers_frame()
    if "context" in names:
        sets["context"] = context_frame(split, n=cfg["context"])
    return sets


def _groups(name: str, frame) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    if "seen_title" in frame.columns:
        seen = frame["seen_title"].astype(bool).to_numpy()
        groups["title also in training"] = seen
        groups["title unseen in training"] = ~seen
    if name == "messy":
        from benchmarks.messy import KINDS

        kinds = frame["corruptions"].str.split(";")
        for kind in KINDS:
            groups[f"corruption: {kind}"] = kinds.map(lambda ks, k=kind: k in ks).to_numpy()
        groups["no employer context added"] = ~groups["corruption: employer"]
    if name == "answers":
        agree = frame["agree"].astype(bool).to_numpy()
        groups["coders agreed"] = agree
        groups["coders disagreed"] = ~agree
    return groups


def _trim(report: dict) -> dict:
    """The report without its long curve (kept in the per-set metrics.json)."""
    return {k: v for k, v in report.items() if k != "precision_coverage"}


def fit_baselines(split) -> dict[str, Any]:
    from benchmarks.baselines import BASELINES
    from benchmarks.devsets import training_entries

    train = training_entries(split)
    out = {}
    for key, cls in BASELINES.items():
        t0 = time.perf_counter()
        out[key] = cls(split.scheme).fit(train)
        _log(f"baseline {cls.name}: fitted on {len(out[key].titles_):,} titles in {time.perf_counter() - t0:.1f}s")
    return out


def _context(coder, frame) -> dict[str, Any]:
    """Each title coded alone and with its unrelated industry (the issue 9 hijack check)."""
    import numpy as np

    titles, inds, gold = frame["title"].tolist(), frame["industry"].tolist(), frame["gold"].to_numpy(object)
    t0 = time.perf_counter()
    alone = coder.code_many(titles)
    withi = coder.code_many(titles, inds)
    a_code = np.array([r.code for r in alone], object)
    w_code = np.array([r.code for r in withi], object)
    a_auto = np.array([r.status == "auto" for r in alone])
    w_auto = np.array([r.status == "auto" for r in withi])
    a_conf = np.array([r.confidence for r in alone])
    w_conf = np.array([r.confidence for r in withi])
    changed = a_code != w_code
    n = len(frame)
    examples = [{"title": titles[i], "industry": inds[i], "gold": str(gold[i]), "alone": str(a_code[i]),
                 "with_industry": str(w_code[i]), "confidence_alone": round(float(a_conf[i]), 3),
                 "confidence_with": round(float(w_conf[i]), 3), "matched_entry": withi[i].matched_entry,
                 "status_with": withi[i].status}
                for i in np.flatnonzero(changed)[:25]]
    lost = np.flatnonzero(a_auto & ~w_auto)
    return {
        "pairs": n, "seconds": round(time.perf_counter() - t0, 2),
        "changed": int(changed.sum()), "changed_share": float(changed.mean()) if n else None,
        "auto_alone": float(a_auto.mean()) if n else None, "auto_with": float(w_auto.mean()) if n else None,
        "auto_lost": int(len(lost)), "auto_gained": int((w_auto & ~a_auto).sum()),
        "top1_alone": float((a_code == gold).mean()) if n else None,
        "top1_with": float((w_code == gold).mean()) if n else None,
        "mean_confidence_alone": float(a_conf.mean()) if n else None,
        "mean_confidence_with": float(w_conf.mean()) if n else None,
        "confidence_drop_over_0_1": int((a_conf - w_conf > 0.1).sum()),
        "by_industry_source": {
            src: {"pairs": int(m.sum()), "changed_share": float(changed[m].mean()) if m.any() else None,
                  "auto_alone": float(a_auto[m].mean()) if m.any() else None,
                  "auto_with": float(w_auto[m].mean()) if m.any() else None}
            for src in sorted(frame["industry_source"].unique())
            for m in [(frame["industry_source"] == src).to_numpy()]},
        "changed_examples": examples,
        "auto_lost_examples": [{"title": titles[i], "industry": inds[i], "confidence_alone": round(float(a_conf[i]), 3),
                                "confidence_with": round(float(w_conf[i]), 3), "reason_with": str(withi[i].reason)}
                               for i in lost[:15]],
    }


def evaluate_model(coder, sets: dict[str, Any], split, out_dir: Path) -> dict[str, Any]:
    """The coder's reports on every set: ``{"sets": {name: report}, "context": {...}}``."""
    from coder.evaluate import evaluate_frame, format_report, write_report

    out: dict[str, Any] = {"sets": {}}
    for name, frame in sets.items():
        if name == "context":
            _log(f"context: {len(frame):,} titles, each alone and with an unrelated industry")
            out["context"] = _context(coder, frame)
            c = out["context"]
            _log(f"  code changed in {c['changed']} of {c['pairs']} pairs ({_pct(c['changed_share'])}); auto "
                 f"{_pct(c['auto_alone'])} alone, {_pct(c['auto_with'])} with the industry")
            continue
        _log(f"accuracy: {name} ({len(frame):,} rows)")
        t0 = time.perf_counter()
        report, pred = evaluate_frame(coder, frame, column="title", gold="gold", industry_column="industry",
                                      source=f"dev {name}", groups=_groups(name, frame), **_SET_OPTIONS.get(name, {}))
        report["seconds"] = round(time.perf_counter() - t0, 2)
        write_report(report, pred, out_dir / name)
        _log(format_report(report).split("most frequent confusions")[0].rstrip())
        out["sets"][name] = _trim(report)
    return out


def evaluate_baselines(baselines: dict[str, Any], sets: dict[str, Any], split) -> dict[str, Any]:
    """Each baseline on every set, given the title only: ``{"sets": {name: {key: ...}}, "context": {key: ...}}``."""
    import pandas as pd

    from coder.evaluate import score

    out: dict[str, Any] = {"sets": {}, "context": {}}
    for name, frame in sets.items():
        for key, base in baselines.items():
            t0 = time.perf_counter()
            bp = base.predict(frame["title"])
            if name == "context":  # title only: the industry cannot change its code
                top1 = float((bp["candidates"].map(lambda c: c[0] if c else "-9").to_numpy() ==
                              frame["gold"].to_numpy()).mean()) if len(frame) else None
                out["context"][key] = {"name": base.name, "changed_share": 0.0, "top1": top1}
                continue
            cols = ["title", "gold"] + (["coder_a", "coder_b"] if name == "answers" else [])
            bframe = pd.concat([frame[cols].reset_index(drop=True), bp], axis=1)
            if name == "answers":
                bframe["accepted"] = [(a, b) for a, b in zip(bframe.pop("coder_a"), bframe.pop("coder_b"))]
            opts = {k: v for k, v in _SET_OPTIONS.get(name, {}).items() if k == "target_precision"}
            breport = score(bframe, split.scheme, groups=_groups(name, frame), **opts)
            entry = {
                "name": base.name, "seconds": round(time.perf_counter() - t0, 2),
                "accuracy": breport["accuracy"], "target": breport["target"], "auto": breport["auto"],
                "calibration": {k: breport["calibration"][k] for k in ("ece", "mean_confidence", "top1")},
                "groups": {g: {"rows": r["rows"], "accuracy": r["accuracy"]}
                           for g, r in (breport.get("groups") or {}).items()},
            }
            if "gold_only" in breport:
                entry["gold_only"] = breport["gold_only"]
            out["sets"].setdefault(name, {})[key] = entry
            unit = breport["accuracy"]["unit"]
            _log(f"  {name}, {base.name}: top-1 {unit['top1']:.1%}, top-5 {unit['top5']:.1%}")
    return out


def combine(model_out: dict[str, Any], base_out: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    """accuracy.json's layout: each set's coder report beside the baselines."""
    out: dict[str, Any] = {"sets": {}}
    for name, report in model_out["sets"].items():
        out["sets"][name] = {"rows": len(sets[name]), "coder": report, "baselines": base_out["sets"][name]}
    if "context" in model_out:
        out["context"] = {"coder": model_out["context"], "baselines": base_out["context"]}
    return out


def _dev_model_info(coder, info: dict, dev_info: dict) -> dict[str, Any]:
    return {**dev_info, **{k: v for k, v in info.items() if k not in dev_info},
            "threshold": coder.threshold,
            "build_calibration": coder.model.info.get("calibration"),
            "stages": coder.model.info.get("stages"),
            "answers": coder.model.info.get("answers"),
            "entries": coder.model.info.get("entries"),
            "excluded": coder.model.info.get("excluded")}


def run_accuracy(args: argparse.Namespace, split, cfg: dict, dev_info: dict) -> dict[str, Any]:
    from benchmarks.devsets import load_dev_coder, write_dev_sets

    sets = _sets(split, cfg, args.sets)
    if not cfg["sample"]:
        write_dev_sets({k: v for k, v in sets.items() if k in ("clean", "messy", "context")}, split)
    coder, info = load_dev_coder(split, args.model_dir, build=False, allow_stale=True)
    if info.get("stale"):
        _log(f"note: dev model is stale ({info['stale']}); figures describe the model as built")
    model_out = evaluate_model(coder, sets, split, args.out / args.accuracy_dir)
    base_out = evaluate_baselines(fit_baselines(split), sets, split)
    out = combine(model_out, base_out, sets)
    out["dev_model"] = _dev_model_info(coder, info, dev_info)
    return out


def run_ablation(args: argparse.Namespace, split, cfg: dict, dev_info: dict, ablation_info: dict) -> dict[str, Any]:
    """The accuracy sets for the full dev model and the one built without ``args.ablation``."""
    from benchmarks.devsets import load_dev_coder, stages_without

    sets = _sets(split, cfg, args.sets)
    out: dict[str, Any] = {"stage": args.ablation, "models": {}}
    labels = {"all": "all stages", "without": f"without {args.ablation}"}
    for key, directory, stages, dinfo in (("all", args.model_dir, None, dev_info),
                                          ("without", args.ablation_dir, stages_without(args.ablation), ablation_info)):
        coder, info = load_dev_coder(split, directory, build=False, allow_stale=True, stages=stages)
        if info.get("stale"):
            _log(f"note: {labels[key]} dev model is stale ({info['stale']}); figures describe it as built")
        _log(f"== {labels[key]} ({directory})")
        result = evaluate_model(coder, sets, split, args.out / args.accuracy_dir / key)
        out["models"][key] = {"label": labels[key], **result, "dev_model": _dev_model_info(coder, info, dinfo)}
        del coder
    out["baselines"] = evaluate_baselines(fit_baselines(split), sets, split)
    out["rows"] = {name: len(frame) for name, frame in sets.items()}
    return out


# ================================================================================= speed
def run_speed(args: argparse.Namespace, split, cfg: dict, build: dict | None) -> dict[str, Any]:
    import numpy as np

    from benchmarks.devsets import clean_frame, messy_frame, survey_pool

    clean = clean_frame(split)
    messy = messy_frame(clean)
    pairs = list(dict.fromkeys(zip(list(clean["title"]) + list(messy["title"]),
                                   list(clean["industry"]) + list(messy["industry"]))))
    rng = np.random.default_rng(1)
    order = rng.permutation(len(pairs))
    distinct = [pairs[i] for i in order[: cfg["distinct"]]]
    latency = [pairs[i] for i in order[::-1][: cfg["latency"]]]
    inputs = {"distinct": distinct, "latency": latency, "pool": survey_pool(pool_size=cfg["pool"], seed=0),
              "survey_rows": cfg["survey_rows"], **SURVEY_DRAW, "chunk": cfg["chunk"],
              "baseline_budget_s": cfg["baseline_budget_s"]}
    with tempfile.TemporaryDirectory(prefix="coder-bench-") as tmp:
        path = Path(tmp) / "inputs.json"
        path.write_text(json.dumps(inputs))
        out = {"coder": _spawn("coder", args, path)}
        out["coder"].update(_spawn("suggest", args))
        for key in ("tfidf", "fuzzy"):
            out[key] = _spawn(key, args, path)
    if build:
        out["coder"].update(build_seconds=build["build_seconds"], build_peak_rss_mb=build["peak_rss_mb"])
    out["inputs"] = {"distinct_titles": len(distinct), "latency_titles": len(latency),
                     "survey_rows": cfg["survey_rows"], "survey_pool": len(inputs["pool"]),
                     "zipf_exponent": 1.1, "chunk": cfg["chunk"]}
    return out


# =============================================================================== summary
def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def _rel(path: str) -> str:
    """``path`` relative to the repository it lies in (``models/dev-soc2000``), else as is."""
    parts = Path(path).parts
    return str(Path(*parts[parts.index("models"):])) if "models" in parts else path


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _verdict(value: float | None, target: float, op: str, *, pct: bool = False, unit: str = "") -> str:
    if value is None:
        return "not measured"
    ok = value >= target if op == "ge" else value <= target
    if ok:
        return "met"
    if pct:
        return f"missed by {abs(target - value) * 100:.1f} pts"
    if op == "ge":
        return f"missed: {value / target:.0%} of target ({target - value:,.0f}{unit} short)"
    return f"missed: {value / target:.{2 if value < 2 * target else 1}f}× the limit ({value - target:,.2f}{unit} over)"


def _targets(value: float | None, targets: list[tuple[float, str]], op: str = "ge") -> tuple[str, str]:
    """Target and verdict cells for several targets of one figure ("≥63.6% no loss; ≥75.0% earlier")."""
    sign = "≥" if op == "ge" else "≤"
    cell = "; ".join(f"{sign}{_pct(t)}" + (f" {label}" if label else "") for t, label in targets)
    verdict = "; ".join(_verdict(value, t, op, pct=True) for t, _ in targets)
    return cell, verdict


def _auto_verdict(auto: dict, coverage: float, precision: float) -> str:
    cov, prec = auto.get("coverage") or 0.0, auto.get("precision") or 0.0
    if cov >= coverage and prec >= precision:
        return "met"
    return (f"coverage {'short by ' + format((coverage - cov) * 100, '.1f') + ' pts' if cov < coverage else 'ok'}, "
            f"precision {'short by ' + format((precision - prec) * 100, '.1f') + ' pts' if prec < precision else 'ok'}")


def _set_rows(name: str, entry: dict) -> list[str]:
    """Markdown table rows for one accuracy set: coder, targets, baselines and ratios."""
    rep = entry["coder"]
    fz, tf = entry["baselines"]["fuzzy"], entry["baselines"]["tfidf"]
    targets = ACCURACY_TARGETS.get(name, {})
    right = " (right: final or either coder's code)" if rep.get("gold_only") is not None else ""
    lines = []

    def row(figure: str, v, a, b, target: str = "", verdict: str = "", fmt=_pct) -> None:
        lines.append(f"| {name} | {figure} | {fmt(v)} | {target} | {verdict} | {fmt(a)} | {_ratio(v, a)} | "
                     f"{fmt(b)} | {_ratio(v, b)} |")

    for level, m in (("unit", "top1"), ("unit", "top5"), ("major", "top1")):
        v = rep["accuracy"][level][m]
        t, verdict = _targets(v, targets.get(m, [])) if level == "unit" else ("", "")
        row(f"{m.replace('top', 'top-')} {level}{right if level == 'unit' else ''}", v,
            fz["accuracy"][level][m], tf["accuracy"][level][m], t, verdict)
    if rep.get("gold_only") is not None:
        for m in ("top1", "top5"):
            row(f"{m.replace('top', 'top-')} unit, final code only", rep["gold_only"][m],
                fz["gold_only"][m], tf["gold_only"][m])
    for group in ("title unseen in training", "coders disagreed"):
        g = (rep.get("groups") or {}).get(group)
        if g and g["rows"]:
            row(f"top-1 unit, {group} ({g['rows']:,})", g["accuracy"]["unit"]["top1"],
                fz["groups"][group]["accuracy"]["unit"]["top1"], tf["groups"][group]["accuracy"]["unit"]["top1"])
    auto = rep["auto"]
    coverage, precision = AUTO_TARGETS.get(name, AUTO_TARGET)
    lines.append(f"| {name} | auto at the model's threshold: coverage / precision | {_pct(auto['coverage'])} / "
                 f"{_pct(auto['precision'])} | ≥{coverage:.0%} / ≥{precision:.0%} | "
                 f"{_auto_verdict(auto, coverage, precision)} | | | | |")
    t = rep["target"]
    bt = [b["target"] for b in (fz, tf)]
    lines.append(f"| {name} | coverage at ≥{t['target_precision']:.0%} precision, threshold chosen on this set "
                 f"(hindsight, not the model's) | {_pct(t['coverage'])}" +
                 (f" (t={t['threshold']:.3f})" if t["threshold"] is not None else "") +
                 f" | | | {_pct(bt[0]['coverage'])} | {_ratio(t['coverage'], bt[0]['coverage'])} | "
                 f"{_pct(bt[1]['coverage'])} | {_ratio(t['coverage'], bt[1]['coverage'])} |")
    cal = rep["calibration"]
    if cal["ece"] is not None:
        limit = ECE_TARGETS.get(name)
        verdict = "" if limit is None else ("met" if cal["ece"] <= limit else f"missed by {cal['ece'] - limit:.3f}")
        lines.append(f"| {name} | ECE ({cal['bins']} bins); mean confidence vs top-1 | {cal['ece']:.3f}; "
                     f"{cal['mean_confidence']:.3f} vs {cal['top1']:.3f} | {'' if limit is None else f'≤{limit:.2f}'} | "
                     f"{verdict} | {_num(fz['calibration']['ece'])} | | {_num(tf['calibration']['ece'])} | |")
    ng = rep["no_gold"]
    if ng["rows"]:
        lines.append(f"| {name} | rows with no code ({ng['rows']}): sent to refer/uncodable | "
                     f"{_pct(ng['not_auto'])} | | | | | | |")
    return lines


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _context_lines(context: dict) -> list[str]:
    c, fz, tf = context["coder"], context["baselines"]["fuzzy"], context["baselines"]["tfidf"]
    gap = (c["auto_alone"] or 0) - (c["auto_with"] or 0)
    lines = [
        "| figure | coder | target | verdict | rapidfuzz | TF-IDF |", "|---|---|---|---|---|---|",
        f"| pairs whose code changes with the industry | {_pct(c['changed_share'])} ({c['changed']} of "
        f"{c['pairs']:,}) | ≤{CONTEXT_TARGETS['changed_share']:.0%} | "
        f"{_verdict(c['changed_share'], CONTEXT_TARGETS['changed_share'], 'le', pct=True)} | "
        f"{_pct(fz['changed_share'])} (title only) | {_pct(tf['changed_share'])} (title only) |",
        f"| auto-coded alone / with the industry | {_pct(c['auto_alone'])} / {_pct(c['auto_with'])} "
        f"({c['auto_lost']} lost, {c['auto_gained']} gained) | as often (gap ≤{CONTEXT_TARGETS['auto_gap'] * 100:.0f} pt) | "
        f"{'met' if gap <= CONTEXT_TARGETS['auto_gap'] else f'missed: {gap * 100:.1f} pts fewer'} | | |",
        f"| top-1 alone / with the industry | {_pct(c['top1_alone'])} / {_pct(c['top1_with'])} | | | "
        f"{_pct(fz['top1'])} | {_pct(tf['top1'])} |",
        f"| mean top-1 confidence alone / with the industry | {_num(c['mean_confidence_alone'])} / "
        f"{_num(c['mean_confidence_with'])} ({c['confidence_drop_over_0_1']} titles lose more than 0.1) | | | | |",
    ]
    src = c.get("by_industry_source") or {}
    if src:
        lines += ["", "By where the industry came from: " + "; ".join(
            f"{k} ({v['pairs']} pairs): changed {_pct(v['changed_share'])}, auto {_pct(v['auto_alone'])} → "
            f"{_pct(v['auto_with'])}" for k, v in src.items()) + "."]
    if c["changed_examples"]:
        lines += ["", "Pairs whose code changed (title + industry: alone → with the industry, via the entry):", ""]
        lines += [f"- {e['title']} + {e['industry']}: {e['alone']} ({e['confidence_alone']:.2f}) → "
                  f"{e['with_industry']} ({e['confidence_with']:.2f}, {e['status_with']}) via “{e['matched_entry']}”"
                  for e in c["changed_examples"][:10]]
    return lines


_SET_NOTES = {
    "clean": "held-out index entries, natural-order title + ADD/IND qualifiers as industry",
    "messy": "the same through `benchmarks/messy.py`",
    "survey": "`benchmarks/survey_answers.csv`, 166 hand-checked survey-style answers",
    "answers": "the labelled real answers' TEST part (`benchmarks/data/survey-answers-test.csv`): title, "
               "description and industry; right if the final code or either coder's code",
}


def summarise(accuracy: dict | None, speed: dict | None, meta: dict) -> str:
    lines = ["# Benchmarks", "",
             f"`{meta['command']}` on {meta['date']} (commit {meta['commit']}, {meta['cpus']} CPUs, "
             f"load average {meta['load_average']} at start; other jobs shared the machine, so speed "
             "figures are indicative). Ratios are coder ÷ baseline: above 1 is better for accuracy and "
             "throughput, below 1 is better for latency, time and memory. Targets are reported, not asserted.",
             ""]
    if accuracy:
        dev = accuracy["dev_model"]
        split = meta["split"]
        sets = "; ".join(f"{k} = {v}" for k, v in _SET_NOTES.items() if k in accuracy["sets"])
        lines += ["## Accuracy", "",
                  f"Dev split: {split['held_out']:,} of {split['codable']:,} codable index entries "
                  f"({split['fraction']:.0%}, seed {split['seed']}) held out of the dev model entirely "
                  f"(`{_rel(dev['directory'])}`, threshold {dev['threshold']:.3f}" +
                  (f", {dev['answers']:,} labelled LEARN-part answers in training" if dev.get("answers") else "") +
                  f"). {sets}. Baselines: (a) rapidfuzz `extractOne`, (b) char 2-4-gram TF-IDF 1-NN, both over "
                  "the training entries' natural titles and given the title only. Targets: \"no loss\" and the "
                  "answers' targets are issue 9's; \"earlier\" are the first benchmark's." +
                  (f" **Dev model stale**: {dev['stale']}." if dev.get("stale") else ""), "",
                  "| set | figure | coder | target | verdict | rapidfuzz | ratio | TF-IDF | ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, entry in accuracy["sets"].items():
            lines += _set_rows(name, entry)
        cal = dev.get("build_calibration") or {}
        if cal:
            kinds = ", ".join(f"{kind} {_pct(cal[kind].get('top1'))} top-1, {_pct(cal[kind].get('auto_coverage'))} "
                              f"auto at {_pct(cal[kind].get('auto_precision'))}"
                              for kind in ("unseen", "seen", "answer") if isinstance(cal.get(kind), dict))
            lines += ["", f"Build-time calibration (out-of-fold, as the build saw it): threshold "
                          f"{cal.get('threshold', 0):.3f} chosen on {cal.get('threshold_chosen_on', '?')} queries for "
                          f"precision {_pct(cal.get('target_precision'))}" + (f"; {kinds}" if kinds else "") + "."]
        if accuracy.get("context"):
            lines += ["", "## Industry hijack check (context)", "",
                      f"{accuracy['context']['coder']['pairs']:,} titles the index codes without any qualifier (every "
                      "entry with the normalised title unqualified, one code), drawn seeded from the dev model's "
                      "training entries; each coded alone and with one unrelated industry (from the labelled LEARN "
                      "part's industries or the index's IND qualifiers, never one seen with the title's minor group "
                      "or sharing a word with it). Target (issue 9): the code does not change (≤ 1% of pairs) and "
                      "they are auto-coded as often as without the industry.", ""]
            lines += _context_lines(accuracy["context"])
        lines += ["", "Reliability of the top-1 confidence (10 equal-width bins; titles, mean confidence → share right):", ""]
        for name, entry in accuracy["sets"].items():
            bins = [b for b in entry["coder"]["calibration"]["reliability"] if b["n"]]
            lines.append(f"- {name}: " + ", ".join(
                f"{b['lo']:.1f}-{b['hi']:.1f}: {b['n']} titles, {b['mean_confidence']:.2f} → {b['accuracy']:.2f}"
                for b in bins))
        for name in ("clean", "messy", "answers"):
            conf = accuracy["sets"].get(name, {}).get("coder", {}).get("confusions") or []
            if conf:
                lines += ["", f"Most frequent confusions ({name}, true → predicted):", ""]
                lines += [f"- {c['count']} × {c['true']} {c['true_title']} → {c['predicted']} {c['predicted_title']}"
                          f" (e.g. {'; '.join(c['examples'][:2])})" for c in conf[:5]]
        lines += ["", "Per-set reports (JSON, reliability diagram, precision-coverage plot, predictions): "
                      f"`{meta['accuracy_dir']}/<set>/`."]
    if speed:
        c, fz, tf = speed["coder"], speed["fuzzy"], speed["tfidf"]
        inp = speed["inputs"]
        rows = [
            ("distinct titles / s (cold caches)", "distinct_titles_per_s", "{:,.0f}", ""),
            (f"survey-like rows / s ({inp['survey_rows']:,} rows, Zipf repeats)", "survey_rows_per_s", "{:,.0f}", ""),
            ("single-title latency p50 (ms)", "latency_p50_ms", "{:.2f}", ""),
            ("single-title latency p99 (ms)", "latency_p99_ms", "{:.2f}", " ms"),
            ("build (s)", "build_seconds", "{:.1f}", ""),
            ("load (s)", "load_seconds", "{:.2f}", " s"),
            ("peak RSS (MB), load + all speed runs", "peak_rss_mb", "{:,.0f}", " MB"),
            ("`coder suggest \"staff nurse\"`, whole command (s, median of 5, full model)", "suggest_seconds",
             "{:.2f}", " s"),
            ("`coder suggest` peak RSS (MB)", "suggest_peak_rss_mb", "{:,.0f}", " MB"),
        ]
        lines += ["", "## Speed", "",
                  f"Inputs: {inp['distinct_titles']:,} distinct dev titles; {inp['latency_titles']:,} titles one by "
                  f"one; {inp['survey_rows']:,} survey-like rows drawn with Zipf exponent {inp['zipf_exponent']} "
                  f"from {inp['survey_pool']:,} distinct answers, coded in chunks of {inp['chunk']:,}. Each "
                  "column ran in its own fresh process. Baselines: build = load = read the index + fit; they too "
                  "code each distinct string once.", "",
                  "| figure | coder | target | verdict | rapidfuzz | ratio | TF-IDF | ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, key, fmt, unit in rows:
            v = c.get(key)
            target = TARGETS.get(key)
            tcell = "" if not target else ("≥" if target[1] == "ge" else "≤") + f"{target[0]:,}"
            verdict = _verdict(v, target[0], target[1], unit=unit) if target else ""
            cells = [fmt.format(x) if x is not None else "–" for x in (v, fz.get(key), tf.get(key))]
            lines.append(f"| {label} | {cells[0]} | {tcell} | {verdict} | {cells[1]} | {_ratio(v, fz.get(key))} | "
                         f"{cells[2]} | {_ratio(v, tf.get(key))} |")
        notes = [f"coder load: {c.get('import_seconds')} s of imports come first and are not counted; of the "
                 f"{c.get('load_seconds')} s load, the manifest check takes {c.get('load_check_seconds')} s and the "
                 f"model file checksum {c.get('load_checksum_seconds')} s ({c.get('model_file_mb')} MB file); "
                 f"RSS after load {c.get('rss_after_load_mb')} MB",
                 "baselines' memory includes parsing the index with `coder.index` (and importing `coder`)"]
        if c.get("build_peak_rss_mb"):
            notes.append(f"dev model build peak RSS {c['build_peak_rss_mb']:,.0f} MB")
        if c.get("build_note"):
            notes.append(c["build_note"])
        notes.append(_cold_start_note())
        notes.append(_batch_note())
        for key, r in (("rapidfuzz", fz), ("TF-IDF", tf), ("coder", c)):
            if r.get("survey_extrapolated"):
                notes.append(f"{key} survey-like figure extrapolated: {r['survey_extrapolated']}")
            if r.get("load_note"):
                notes.append(f"{key}: {r['load_note']}")
        if c.get("suggest_note"):
            notes.append(f"`coder suggest`: {c['suggest_note']}")
        lines += [""] + [f"- {n}" for n in notes]
    if meta.get("extra"):
        lines += ["", "## Other benchmarks", ""] + [f"- `{k}`: exit code {v['returncode']}" for k, v in meta["extra"].items()]
    return "\n".join(lines) + "\n"


def _batch_note() -> str:
    """Where the throughput targets are measured as the issue states them: whole `coder code`
    commands on every CPU (the figures above are one process, in-process)."""
    note = ("distinct titles / s and survey-like rows / s above are one process coding in-process; the targets "
            "are for a whole `coder code` command on every CPU: `python benchmarks/batch_bench.py --skip-dask`")
    try:
        batch = json.loads((RESULTS / "batch.json").read_text())
        t = batch["targets"]
        survey, distinct = t["survey_rows_per_second"], t["distinct_per_second"]
    except (OSError, ValueError, KeyError, TypeError):
        return note
    return (f"{note} (at {batch.get('commit')}, {batch['machine']['cpus']} processes, start-up included: "
            f"the same survey-like rows {survey:,} rows/s, {'met' if t.get('survey_met') else 'missed'}; "
            f"100,000 distinct titles {distinct:,}/s, {'met' if t.get('distinct_met') else 'missed'})")


def _cold_start_note() -> str:
    """Where a user's first build is measured: the dev model above is a full cross-fitted
    build (it leaves the test answers out), a default one takes the shipped ranker."""
    note = ("build (s) is the dev model's full cross-fitted build; a user's first build takes the shipped "
            "ranker and fits only the stages: `python -m benchmarks.cold_start`")
    try:
        cold = json.loads((RESULTS / "cold_start.json").read_text())
        first = cold["first_file"]
        others = ", ".join(f"{s} {r['seconds']:.0f} s" for s, r in cold.get("other_schemes", {}).items())
    except (OSError, ValueError, KeyError):
        return note
    build = f", model build {first['model_build_s']:.0f} s of it" if first.get("model_build_s") is not None else ""
    return (f"{note} (at {cold['commit']}: install to first coded file {first['install_to_first_file_s']:.0f} s"
            f"{build}" + (f"; first use of {others}" if others else "") + ")")


def summarise_ablation(ablation: dict, meta: dict) -> str:
    """Markdown: every set's figures with all stages and without one, side by side."""
    stage = ablation["stage"]
    full, less = ablation["models"]["all"], ablation["models"]["without"]
    base = ablation["baselines"]
    lines = [f"# Ablation: without the `{stage}` stage", "",
             f"`{meta['command']}` on {meta['date']} (commit {meta['commit']}). Two dev models built the same way "
             f"(same split, seed and training answers) except that one lacks the `{stage}` stage: "
             f"`{_rel(full['dev_model']['directory'])}` (threshold {full['dev_model']['threshold']:.3f}) and "
             f"`{_rel(less['dev_model']['directory'])}` (threshold {less['dev_model']['threshold']:.3f}). "
             "Baselines are given the title only. The stage pays (issue 15) when top-1 gains 3 points or more "
             "on clean, messy and answers with ECE no worse.", "",
             f"| set | figure | all stages | without {stage} | stage adds | stage pays? | rapidfuzz | TF-IDF |",
             "|---|---|---|---|---|---|---|---|"]
    for name in full["sets"]:
        a, b = full["sets"][name], less["sets"][name]
        fz, tf = base["sets"][name]["fuzzy"], base["sets"][name]["tfidf"]

        def row(figure, x, y, bx=None, by=None, *, better="higher", pays=False, fmt=_pct, pts=True):
            diff = "–" if x is None or y is None else (f"{(x - y) * 100:+.1f} pts" if pts else f"{x - y:+.3f}")
            verdict = ""
            if pays and x is not None and y is not None:
                if better == "higher":
                    verdict = "yes (≥ +3 pts)" if x - y >= 0.03 - 1e-12 else "no (< +3 pts)"
                else:
                    verdict = "no worse" if x <= y + 1e-12 else "worse"
            lines.append(f"| {name} | {figure} | {fmt(x)} | {fmt(y)} | {diff} | {verdict} | "
                         f"{'' if bx is None else fmt(bx)} | {'' if by is None else fmt(by)} |")

        key_set = name in ("clean", "messy", "answers")
        row("top-1 unit", a["accuracy"]["unit"]["top1"], b["accuracy"]["unit"]["top1"],
            fz["accuracy"]["unit"]["top1"], tf["accuracy"]["unit"]["top1"], pays=key_set)
        row("top-5 unit", a["accuracy"]["unit"]["top5"], b["accuracy"]["unit"]["top5"],
            fz["accuracy"]["unit"]["top5"], tf["accuracy"]["unit"]["top5"])
        if a.get("gold_only") is not None:
            row("top-1 unit, final code only", a["gold_only"]["top1"], b["gold_only"]["top1"],
                fz["gold_only"]["top1"], tf["gold_only"]["top1"])
        g1, g2 = (a.get("groups") or {}).get("title unseen in training"), (b.get("groups") or {}).get("title unseen in training")
        if g1 and g2:
            row(f"top-1 unit, titles unseen in training ({g1['rows']:,})", g1["accuracy"]["unit"]["top1"],
                g2["accuracy"]["unit"]["top1"], fz["groups"]["title unseen in training"]["accuracy"]["unit"]["top1"],
                tf["groups"]["title unseen in training"]["accuracy"]["unit"]["top1"])
        row("auto coverage at the model's threshold", a["auto"]["coverage"], b["auto"]["coverage"])
        row("auto precision at the model's threshold", a["auto"]["precision"], b["auto"]["precision"])
        t1, t2 = a["target"], b["target"]
        row(f"coverage at ≥{t1['target_precision']:.0%} precision (threshold chosen on this set)",
            t1["coverage"], t2["coverage"], fz["target"]["coverage"], tf["target"]["coverage"])
        row("ECE (10 bins)", a["calibration"]["ece"], b["calibration"]["ece"], fz["calibration"]["ece"],
            tf["calibration"]["ece"], better="lower", pays=key_set, fmt=_num, pts=False)
    if "context" in full and "context" in less:
        a, b = full["context"], less["context"]
        lines += ["", f"Industry hijack check ({a['pairs']:,} unqualified titles, each with an unrelated industry):", "",
                  f"| figure | all stages | without {stage} | stage adds |", "|---|---|---|---|"]
        for label, key in (("pairs whose code changes (target ≤ 1%)", "changed_share"),
                           ("auto-coded alone", "auto_alone"), ("auto-coded with the industry", "auto_with"),
                           ("top-1 with the industry", "top1_with")):
            x, y = a[key], b[key]
            lines.append(f"| {label} | {_pct(x)} | {_pct(y)} | "
                         f"{'–' if x is None or y is None else f'{(x - y) * 100:+.1f} pts'} |")
    lines += ["", f"Per-set reports: `{meta['accuracy_dir']}/all/<set>/` and `{meta['accuracy_dir']}/without/<set>/`."]
    return "\n".join(lines) + "\n"


# ================================================================================== main
def _extra(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for name in ("batch_bench", "service_bench"):
        if not (HERE / f"{name}.py").is_file():
            continue
        _log(f"running benchmarks.{name}")
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        out[name] = {"returncode": proc.returncode, "stdout_tail": proc.stdout[-2000:],
                     "stderr_tail": proc.stderr[-2000:]}
    return out


def _set_names(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in SETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown set(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SETS)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="sample the dev sets and shorten the speed runs")
    p.add_argument("--skip-build", action="store_true",
                   help="never build a dev model; use it even if stale (fails if there is none)")
    p.add_argument("--only", choices=("accuracy", "speed"), help="run one part only")
    p.add_argument("--sets", type=_set_names, default=SETS, metavar="SET[,SET]",
                   help=f"accuracy sets to run [{','.join(SETS)}]")
    p.add_argument("--ablation", metavar="STAGE", default=None,
                   help="also build the dev model without this candidate stage and report both side by side "
                        "(accuracy only; results in ablation-<stage>.json/.md)")
    p.add_argument("--scheme", default="soc2000", help="classification (survey answers exist for soc2000 only)")
    p.add_argument("--model-dir", type=Path, default=None, help="dev model directory [models/dev-<scheme>]")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory [benchmarks/results]")
    p.add_argument("--extra", action="store_true",
                   help="also run benchmarks/batch_bench.py and service_bench.py when present")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _ensure_dev_model(args: argparse.Namespace, split, directory: Path, ablation: str | None = None
                      ) -> tuple[dict | None, str | None]:
    """Build the dev model in ``directory`` when missing or stale (unless --skip-build).

    Returns (build figures or None, staleness accepted under --skip-build or None); raises
    SystemExit(2) when --skip-build leaves no usable model.
    """
    from benchmarks.devsets import dev_model_status, manifest_mismatch, recorded_manifest, stages_without

    names = None if ablation is None else [cls.name for cls in stages_without(ablation)]
    reason = dev_model_status(split, directory, stages=names)
    if reason is None:
        return None, None
    if not args.skip_build:
        _log(f"dev model: {reason}; building it in {directory} (a few minutes)")
        return _spawn("build", args, model_dir=directory, ablation=ablation), None
    mismatch = manifest_mismatch(recorded_manifest(args.scheme, directory), split, names)
    if mismatch is not None:
        _log(f"error: no usable dev model in {directory} ({reason}; {mismatch}); run without --skip-build")
        raise SystemExit(2)
    _log(f"dev model in {directory} is stale ({reason}); --skip-build: using it anyway")
    return None, reason


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)), flush=True)
        return 0
    from benchmarks.devsets import dev_model_dir, recorded_manifest, split_index, stage_names
    from coder import load_scheme

    started = time.perf_counter()
    args.scheme = load_scheme(args.scheme).name
    args.model_dir = args.model_dir or dev_model_dir(args.scheme)
    if args.ablation and args.ablation not in stage_names():
        _log(f"error: no stage {args.ablation!r}; the stages are {', '.join(stage_names())}")
        return 2
    cfg = QUICK if args.quick else FULL
    meta = {
        "command": "python -m benchmarks" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(REPO),
        "cpus": os.cpu_count(), "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "python": platform.python_version(), "config": cfg, "sets": list(args.sets),
    }
    split = split_index(args.scheme)
    meta["split"] = split.describe()

    try:
        build, stale = _ensure_dev_model(args, split, args.model_dir)
        if args.ablation:
            args.ablation_dir = args.model_dir.with_name(f"{args.model_dir.name}-without-{args.ablation}")
            ablation_build, ablation_stale = _ensure_dev_model(args, split, args.ablation_dir, args.ablation)
    except SystemExit as exc:
        return int(exc.code or 2)
    manifest = recorded_manifest(args.scheme, args.model_dir)
    if build is None:
        build = {"build_seconds": manifest.get("build_seconds"), "peak_rss_mb": None}
        meta["build_note"] = "build time from the dev model's manifest (not rebuilt in this run)"
    dev_info = {"built_now": build.get("peak_rss_mb") is not None, "stale": stale}

    suffix = "-quick" if args.quick else ""
    args.accuracy_dir = f"ablation-{args.ablation}{suffix}" if args.ablation else f"accuracy{suffix}"
    where = (args.out / args.accuracy_dir).resolve()
    meta["accuracy_dir"] = str(where.relative_to(REPO) if where.is_relative_to(REPO) else where)
    args.out.mkdir(parents=True, exist_ok=True)
    accuracy = speed = None
    try:
        if args.ablation:
            ab_info = {"built_now": ablation_build is not None, "stale": ablation_stale}
            result = run_ablation(args, split, cfg, dev_info, ab_info)
            result["meta"] = meta
            stem = args.out / f"ablation-{args.ablation}{suffix}"
            stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
            text = summarise_ablation(result, meta)
            stem.with_suffix(".md").write_text(text)
            print(text)
            _log(f"ablation done in {time.perf_counter() - started:.0f}s; results in {stem}.json/.md")
            return 0
        if args.only in (None, "accuracy"):
            accuracy = run_accuracy(args, split, cfg, dev_info)
            accuracy["meta"] = meta
            (args.out / f"accuracy{suffix}.json").write_text(json.dumps(accuracy, indent=2, default=str))
        if args.only in (None, "speed"):
            speed = run_speed(args, split, cfg, build)
    except (AttributeError, TypeError, KeyError, RuntimeError, ValueError) as exc:
        if not (dev_info["stale"] or (args.ablation and ablation_stale)):
            raise
        # A model pickled before a code change may not fit the new code.
        _log(f"error: a stale dev model does not work with the current code ({type(exc).__name__}: "
             f"{exc}); run without --skip-build")
        return 2
    if speed is not None:
        if meta.get("build_note"):
            speed["coder"]["build_note"] = meta["build_note"]
        speed["meta"] = meta
        (args.out / f"speed{suffix}.json").write_text(json.dumps(speed, indent=2, default=str))
    if args.extra:
        meta["extra"] = _extra(args)
    if accuracy is None and (args.out / f"accuracy{suffix}.json").is_file():
        accuracy = json.loads((args.out / f"accuracy{suffix}.json").read_text())
    if speed is None and (args.out / f"speed{suffix}.json").is_file():
        speed = json.loads((args.out / f"speed{suffix}.json").read_text())
    text = summarise(accuracy, speed, meta)
    if not args.quick:
        (args.out / "summary.md").write_text(text)
    print(text)
    _log(f"benchmarks done in {time.perf_counter() - started:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
