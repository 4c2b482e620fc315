"""Accuracy and speed together: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

What it does
------------
1. Splits the ONS index (`benchmarks.devsets`: 10% of codable entries, seed 0), writes the
   clean and messy dev sets to ``benchmarks/data/`` and builds the dev model without the
   held-out entries in ``models/dev-<scheme>/`` (only when missing or stale).
2. Accuracy of the dev model on the clean, messy and survey sets, beside two naive baselines
   fitted on the same training entries (`benchmarks.baselines`). Per-set reports and plots go
   to ``benchmarks/results/accuracy/<set>/``; all of it to ``accuracy.json``.
3. Speed, each measured in its own fresh process so memory figures do not mix: model build
   and load time, throughput on distinct titles (cold caches), throughput on a survey-like
   list with Zipf-distributed repeats (``code_many`` in chunks), single-title latency (cache
   cleared before each title) and peak RSS (psutil, sampled every 10 ms, and the kernel's
   VmHWM). Baselines get the same inputs. Results: ``speed.json``.
4. ``summary.md``: one table per part, each figure beside the baselines as a ratio
   (coder / baseline), and the targets with how far each is missed.

``--quick`` samples the dev sets and shortens the speed runs (results go to
``*-quick.json``; summary.md is left alone); ``--skip-build`` never builds the dev model and
uses it even when stale (code changed since), with a note in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # `python benchmarks/run.py` from anywhere
    sys.path.insert(0, str(REPO))

RESULTS = HERE / "results"

# Reported, never asserted. (metric key, target, "ge" | "le", unit)
TARGETS = {
    "distinct_titles_per_s": (5_000, "ge"),
    "survey_rows_per_s": (100_000, "ge"),
    "latency_p99_ms": (5.0, "le"),
    "load_seconds": (1.0, "le"),
    "peak_rss_mb": (400, "le"),
}
ACCURACY_TARGETS = {  # set -> {metric: target}
    "clean": {"top1": 0.75, "top5": 0.95},
    "messy": {"top1": 0.68, "top5": 0.90},
}
AUTO_TARGET = {"coverage": 0.60, "precision": 0.92}

FULL = {"sample": None, "distinct": 6_000, "latency": 1_000, "survey_rows": 1_000_000, "chunk": 50_000,
        "baseline_budget_s": 90.0, "pool": 20_000}
QUICK = {"sample": 400, "distinct": 500, "latency": 100, "survey_rows": 100_000, "chunk": 50_000,
         "baseline_budget_s": 10.0, "pool": 20_000}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# =============================================================================== memory
class PeakRSS:
    """Peak resident set size of this process: psutil sampled on a thread, and the kernel's VmHWM."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def now_mb(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def report(self) -> dict[str, float]:
        self.peak = max(self.peak, self._proc.memory_info().rss)
        out = {"peak_rss_sampled_mb": round(self.peak / 2**20, 1)}
        hwm = _vm_hwm()
        if hwm is not None:
            out["vm_hwm_mb"] = round(hwm / 2**20, 1)
        out["peak_rss_mb"] = max(out.values())
        return out


def _vm_hwm() -> int | None:
    """The kernel's peak RSS of this process image (Linux ``VmHWM``), in bytes.

    Not ``ru_maxrss``: that survives ``exec`` and so reports the parent's peak in a child.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _percentiles(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(seconds) * 1000
    return {"latency_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "latency_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "latency_mean_ms": round(float(ms.mean()), 3), "latency_n": len(ms)}


# =============================================================================== workers
def _worker_build(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.devsets import build_dev_model, split_index

    with PeakRSS() as mem:
        split = split_index(args.scheme)
        out = build_dev_model(split, args.model_dir, progress=_log)
    return {"build_seconds": out["seconds"], **mem.report()}


def _read_inputs(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _survey_rows(inputs: dict[str, Any]) -> tuple[list[str], list[str]]:
    from benchmarks.devsets import zipf_rows

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
        from coder.store import model_files, stale_reason
        t0 = time.perf_counter()
        stale_reason(args.scheme, args.model_dir)
        out["load_check_seconds"] = round(time.perf_counter() - t0, 3)
        import hashlib

        path = model_files(args.scheme, args.model_dir)[0]
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


WORKERS = {"build": _worker_build, "coder": _worker_coder, "fuzzy": _worker_baseline, "tfidf": _worker_baseline}


def _spawn(worker: str, args: argparse.Namespace, inputs: Path | None = None, timeout: float = 3600) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", worker, "--scheme", args.scheme,
           "--model-dir", str(args.model_dir)]
    if inputs is not None:
        cmd += ["--inputs", str(inputs)]
    _log(f"[{worker}] {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {worker!r} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ============================================================================== accuracy
def _sets(split, quick: dict) -> dict[str, Any]:
    from benchmarks.devsets import clean_frame, messy_frame, survey_frame

    clean = clean_frame(split)
    messy = messy_frame(clean)
    sets = {"clean": clean, "messy": messy}
    if quick["sample"] and quick["sample"] < len(clean):
        import numpy as np

        keep = np.sort(np.random.default_rng(0).choice(len(clean), quick["sample"], replace=False))
        sets = {k: v.iloc[keep].reset_index(drop=True) for k, v in sets.items()}
    if split.scheme == "soc2000":
        sets["survey"] = survey_frame()
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
    return groups


def _trim(report: dict) -> dict:
    """The report without its long curve (kept in the per-set metrics.json)."""
    return {k: v for k, v in report.items() if k != "precision_coverage"}


def run_accuracy(args: argparse.Namespace, split, cfg: dict, dev_info: dict) -> dict[str, Any]:
    import pandas as pd

    from benchmarks.baselines import BASELINES
    from benchmarks.devsets import load_dev_coder, training_entries, write_dev_sets
    from coder.evaluate import evaluate_frame, format_report, score, write_report

    sets = _sets(split, cfg)
    if not cfg["sample"]:
        write_dev_sets({k: v for k, v in sets.items() if k != "survey"}, split)
    coder, info = load_dev_coder(split, args.model_dir, build=False, allow_stale=True)
    if info.get("stale"):
        _log(f"note: dev model is stale ({info['stale']}); figures describe the model as built")
    train = training_entries(split)
    baselines = {}
    for key, cls in BASELINES.items():
        t0 = time.perf_counter()
        baselines[key] = cls(split.scheme).fit(train)
        _log(f"baseline {cls.name}: fitted on {len(baselines[key].titles_):,} titles in "
             f"{time.perf_counter() - t0:.1f}s")
    out: dict[str, Any] = {"sets": {}}
    for name, frame in sets.items():
        _log(f"accuracy: {name} ({len(frame):,} rows)")
        t0 = time.perf_counter()
        report, pred = evaluate_frame(coder, frame, column="title", gold="gold", industry_column="industry",
                                      source=f"dev {name}", groups=_groups(name, frame))
        report["seconds"] = round(time.perf_counter() - t0, 2)
        write_report(report, pred, args.out / args.accuracy_dir / name)
        _log(format_report(report).split("most frequent confusions")[0].rstrip())
        entry = {"rows": len(frame), "coder": _trim(report), "baselines": {}}
        for key, base in baselines.items():
            t0 = time.perf_counter()
            bp = base.predict(frame["title"])
            bframe = pd.concat([frame[["title", "gold"]].reset_index(drop=True), bp], axis=1)
            breport = score(bframe, split.scheme, groups=_groups(name, frame))
            entry["baselines"][key] = {
                "name": base.name, "seconds": round(time.perf_counter() - t0, 2),
                "accuracy": breport["accuracy"], "target": breport["target"],
                "calibration": {k: breport["calibration"][k] for k in ("ece", "mean_confidence", "top1")},
                "groups": {g: {"rows": r["rows"], "accuracy": r["accuracy"]}
                           for g, r in (breport.get("groups") or {}).items()},
            }
            unit = breport["accuracy"]["unit"]
            _log(f"  {base.name}: top-1 {unit['top1']:.1%}, top-5 {unit['top5']:.1%}")
        out["sets"][name] = entry
    out["dev_model"] = {**dev_info, **{k: v for k, v in info.items() if k not in dev_info},
                        "threshold": coder.threshold,
                        "build_calibration": coder.model.info.get("calibration"),
                        "entries": coder.model.info.get("entries"),
                        "excluded": coder.model.info.get("excluded")}
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
              "survey_rows": cfg["survey_rows"], "exponent": 1.1, "seed": 0, "chunk": cfg["chunk"],
              "baseline_budget_s": cfg["baseline_budget_s"]}
    with tempfile.TemporaryDirectory(prefix="coder-bench-") as tmp:
        path = Path(tmp) / "inputs.json"
        path.write_text(json.dumps(inputs))
        out = {"coder": _spawn("coder", args, path)}
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
        lines += ["## Accuracy", "",
                  f"Dev split: {split['held_out']:,} of {split['codable']:,} codable index entries "
                  f"({split['fraction']:.0%}, seed {split['seed']}) held out of the dev model entirely "
                  f"(`{_rel(dev['directory'])}`, threshold {dev['threshold']:.3f}). clean = natural-order title + "
                  "ADD/IND qualifiers as industry; messy = the same through `benchmarks/messy.py`; survey = "
                  "`benchmarks/survey_answers.csv`. Baselines: (a) rapidfuzz `extractOne`, (b) char 2-4-gram "
                  "TF-IDF 1-NN, both over the training entries' natural titles." +
                  (f" **Dev model stale**: {dev['stale']}." if dev.get("stale") else ""), "",
                  "| set | figure | coder | target | verdict | rapidfuzz | ratio | TF-IDF | ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, entry in accuracy["sets"].items():
            rep = entry["coder"]
            fz, tf = entry["baselines"]["fuzzy"], entry["baselines"]["tfidf"]
            targets = ACCURACY_TARGETS.get(name, {})
            for level in ("unit", "major"):
                for m in ("top1", "top5"):
                    if level == "major" and m == "top5":
                        continue
                    v = rep["accuracy"][level][m]
                    t = targets.get(m) if level == "unit" else None
                    a, b = fz["accuracy"][level][m], tf["accuracy"][level][m]
                    lines.append(f"| {name} | {m.replace('top', 'top-')} {level.replace('_', '-')} | {_pct(v)} | "
                                 f"{'≥' + _pct(t) if t else ''} | {_verdict(v, t, 'ge', pct=True) if t else ''} | "
                                 f"{_pct(a)} | {_ratio(v, a)} | {_pct(b)} | {_ratio(v, b)} |")
            unseen = (rep.get("groups") or {}).get("title unseen in training")
            if unseen:
                v = unseen["accuracy"]["unit"]["top1"]
                a = fz["groups"]["title unseen in training"]["accuracy"]["unit"]["top1"]
                b = tf["groups"]["title unseen in training"]["accuracy"]["unit"]["top1"]
                lines.append(f"| {name} | top-1 unit, titles unseen in training ({unseen['rows']:,}) | {_pct(v)} | | | "
                             f"{_pct(a)} | {_ratio(v, a)} | {_pct(b)} | {_ratio(v, b)} |")
            auto = rep["auto"]
            ok = (auto["coverage"] or 0) >= AUTO_TARGET["coverage"] and (auto["precision"] or 0) >= AUTO_TARGET["precision"]
            verdict = "met" if ok else (
                f"coverage {'short by ' + format((AUTO_TARGET['coverage'] - auto['coverage']) * 100, '.1f') + ' pts' if auto['coverage'] < AUTO_TARGET['coverage'] else 'ok'}, "
                f"precision {'short by ' + format((AUTO_TARGET['precision'] - (auto['precision'] or 0)) * 100, '.1f') + ' pts' if (auto['precision'] or 0) < AUTO_TARGET['precision'] else 'ok'}")
            lines.append(f"| {name} | auto at stored threshold: coverage / precision | {_pct(auto['coverage'])} / "
                         f"{_pct(auto['precision'])} | ≥60% / ≥92% | {verdict} | | | | |")
            t = rep["target"]
            bt = [entry["baselines"][k]["target"] for k in ("fuzzy", "tfidf")]
            lines.append(f"| {name} | coverage at ≥92% precision (threshold chosen on this set) | "
                         f"{_pct(t['coverage'])}" + (f" (t={t['threshold']:.3f})" if t["threshold"] is not None else "") +
                         f" | ≥60% | {_verdict(t['coverage'], 0.60, 'ge', pct=True)} | {_pct(bt[0]['coverage'])} | "
                         f"{_ratio(t['coverage'], bt[0]['coverage'])} | {_pct(bt[1]['coverage'])} | "
                         f"{_ratio(t['coverage'], bt[1]['coverage'])} |")
            cal = rep["calibration"]
            if cal["ece"] is not None:
                lines.append(f"| {name} | ECE ({cal['bins']} bins); mean confidence vs top-1 | {cal['ece']:.3f}; "
                             f"{cal['mean_confidence']:.3f} vs {cal['top1']:.3f} | | | "
                             f"{fz['calibration']['ece']:.3f} | | {tf['calibration']['ece']:.3f} | |")
            ng = rep["no_gold"]
            if ng["rows"]:
                lines.append(f"| {name} | rows with no code ({ng['rows']}): sent to refer/uncodable | "
                             f"{_pct(ng['not_auto'])} | | | | | | |")
        cal = dev.get("build_calibration") or {}
        if cal:
            lines += ["", f"Build-time calibration fold (index entries, as the build saw them): top-1 "
                          f"{_pct(cal.get('top1'))}, threshold {cal.get('threshold', 0):.3f} auto-codes "
                          f"{_pct(cal.get('auto_coverage'))} at precision {_pct(cal.get('auto_precision'))} "
                          f"(target {_pct(cal.get('target_precision'))})."]
        lines += ["", "Reliability of the top-1 confidence (10 equal-width bins; titles, mean confidence → share right):", ""]
        for name, entry in accuracy["sets"].items():
            bins = [b for b in entry["coder"]["calibration"]["reliability"] if b["n"]]
            lines.append(f"- {name}: " + ", ".join(
                f"{b['lo']:.1f}-{b['hi']:.1f}: {b['n']} titles, {b['mean_confidence']:.2f} → {b['accuracy']:.2f}"
                for b in bins))
        for name in ("clean", "messy"):
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
        for key, r in (("rapidfuzz", fz), ("TF-IDF", tf), ("coder", c)):
            if r.get("survey_extrapolated"):
                notes.append(f"{key} survey-like figure extrapolated: {r['survey_extrapolated']}")
            if r.get("load_note"):
                notes.append(f"{key}: {r['load_note']}")
        lines += [""] + [f"- {n}" for n in notes]
    if meta.get("extra"):
        lines += ["", "## Other benchmarks", ""] + [f"- `{k}`: exit code {v['returncode']}" for k, v in meta["extra"].items()]
    return "\n".join(lines) + "\n"


# ================================================================================== main
def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="sample the dev sets and shorten the speed runs")
    p.add_argument("--skip-build", action="store_true",
                   help="never build the dev model; use it even if stale (fails if there is none)")
    p.add_argument("--only", choices=("accuracy", "speed"), help="run one part only")
    p.add_argument("--scheme", default="soc2000", help="classification (survey answers exist for soc2000 only)")
    p.add_argument("--model-dir", type=Path, default=None, help="dev model directory [models/dev-<scheme>]")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory [benchmarks/results]")
    p.add_argument("--extra", action="store_true",
                   help="also run benchmarks/batch_bench.py and service_bench.py when present")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)), flush=True)
        return 0
    from benchmarks.devsets import dev_model_dir, dev_model_status, split_index
    from coder import load_scheme
    from coder.store import read_manifest

    started = time.perf_counter()
    args.scheme = load_scheme(args.scheme).name
    args.model_dir = args.model_dir or dev_model_dir(args.scheme)
    cfg = QUICK if args.quick else FULL
    meta = {
        "command": "python -m benchmarks" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": _git_commit(),
        "cpus": os.cpu_count(), "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "python": platform.python_version(), "config": cfg,
    }
    split = split_index(args.scheme)
    meta["split"] = split.describe()

    reason = dev_model_status(split, args.model_dir)
    build = None
    if reason is not None and not args.skip_build:
        _log(f"dev model: {reason}; building it in {args.model_dir} (a few minutes)")
        build = _spawn("build", args)
    elif reason is not None:
        recorded = ((read_manifest(args.scheme, args.model_dir) or {}).get("info") or {}).get("dev_split")
        if recorded != split.describe():
            _log(f"error: no usable dev model in {args.model_dir} ({reason}); run without --skip-build")
            return 2
        _log(f"dev model is stale ({reason}); --skip-build: using it anyway")
    manifest = read_manifest(args.scheme, args.model_dir) or {}
    if build is None:
        build = {"build_seconds": (manifest.get("info") or {}).get("build_seconds"), "peak_rss_mb": None}
        meta["build_note"] = "build time from the dev model's manifest (not rebuilt in this run)"
    dev_info = {"built_now": build.get("peak_rss_mb") is not None, "stale": reason if args.skip_build else None}

    suffix = "-quick" if args.quick else ""
    args.accuracy_dir = f"accuracy{suffix}"
    where = (args.out / args.accuracy_dir).resolve()
    meta["accuracy_dir"] = str(where.relative_to(REPO) if where.is_relative_to(REPO) else where)
    args.out.mkdir(parents=True, exist_ok=True)
    accuracy = speed = None
    try:
        if args.only in (None, "accuracy"):
            accuracy = run_accuracy(args, split, cfg, dev_info)
            accuracy["meta"] = meta
            (args.out / f"accuracy{suffix}.json").write_text(json.dumps(accuracy, indent=2, default=str))
        if args.only in (None, "speed"):
            speed = run_speed(args, split, cfg, build)
    except (AttributeError, TypeError, KeyError, RuntimeError) as exc:
        if not dev_info["stale"]:
            raise
        # A model pickled before a code change may not fit the new code.
        _log(f"error: the stale dev model does not work with the current code ({type(exc).__name__}: "
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
