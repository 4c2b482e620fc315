"""Every scheme from one coding, on the index-entry dev split: ``python -m benchmarks.schemes_bench``.

The dev model (SOC2000, built by ``python -m benchmarks``; the held-out entries never seen)
codes the clean and messy dev sets once; each other scheme is derived from that coding
(`coder.derive`) and scored against the held-out entries' own codes in that scheme. Beside
it, the naive baseline (char TF-IDF 1-NN over the training entries) fitted per scheme.
Throughput: coding alone, and coding plus deriving all four other schemes, in one process.

Not measured here: a dedicated single-scheme dev model per scheme (each costs a full build).
Results: ``benchmarks/results/schemes.json`` and ``schemes.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks._common import REPO, git_commit, load_average, log
from benchmarks.baselines import TfidfBaseline
from benchmarks.devsets import clean_frame, load_dev_coder, messy_frame, split_index, training_entries

RESULTS = REPO / "benchmarks" / "results"


def _score(cands: list[tuple[str, ...]], status: list[str], gold: list[str | None]) -> dict:
    keep = [i for i, g in enumerate(gold) if g]
    top1 = np.array([bool(cands[i]) and cands[i][0] == gold[i] for i in keep])
    top5 = np.array([gold[i] in cands[i][:5] for i in keep])
    auto = np.array([status[i] == "auto" for i in keep])
    return {"n": len(keep), "top1": float(top1.mean()), "top5": float(top5.mean()),
            "auto_coverage": float(auto.mean()),
            "auto_precision": float(top1[auto].mean()) if auto.any() else None}


def run(out: Path, *, limit: int | None = None) -> dict:
    from coder import SCHEMES
    from coder.derivation import Derivation
    from coder.index import load_index

    split = split_index("soc2000")
    coder, info = load_dev_coder(split, build=False, allow_stale=True)
    entries, _ = load_index()
    by_uid = {e.uid: e for e in entries}
    clean = clean_frame(split, entries)
    sets = {"clean": clean, "messy": messy_frame(clean)}
    if limit:
        sets = {k: v.head(limit) for k, v in sets.items()}
    # Derived through the training entries only: the held-out answers must not shape the weights.
    train = training_entries(split, entries)
    derivations = {s: Derivation("soc2000", s, train) for s in SCHEMES if s != "soc2000"}
    baselines = {s: TfidfBaseline(s).fit(train) for s in SCHEMES}
    report: dict = {"commit": git_commit(), "load_average": load_average(), "dev_model": info, "sets": {}}
    for name, frame in sets.items():
        titles, industries = frame["title"].tolist(), frame["industry"].tolist()
        started = time.perf_counter()
        results = coder.code_many(titles, industries, k=5)
        t_code = time.perf_counter() - started
        started = time.perf_counter()
        derived = {s: [d.derive(r) for r in results] for s, d in derivations.items()}
        t_derive = time.perf_counter() - started
        derived["soc2000"] = results
        rows = {}
        for scheme in SCHEMES:
            gold = [by_uid[u].code(scheme) for u in frame["uid"]]
            got = derived[scheme]
            model = _score([tuple(c.code for c in r.candidates) if r.status != "uncodable" else () for r in got],
                           [r.status for r in got], gold)
            base = baselines[scheme].predict(titles, k=5)
            naive = _score(list(base["candidates"]), ["refer"] * len(base), gold)
            rows[scheme] = {"coder": model, "baseline_tfidf": naive}
            log(f"{name} {scheme}: top-1 {model['top1']:.1%} (baseline {naive['top1']:.1%}), "
                f"top-5 {model['top5']:.1%}, auto {model['auto_coverage']:.1%} at "
                f"{(model['auto_precision'] or 0):.1%}")
        report["sets"][name] = {
            "rows": len(frame), "schemes": rows,
            "seconds": {"code": round(t_code, 3), "derive_four_schemes": round(t_derive, 3)},
            "throughput_ratio": round(t_code / (t_code + t_derive), 4),
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "schemes.json").write_text(json.dumps(report, indent=2))
    (out / "schemes.md").write_text(summarise(report))
    return report


def summarise(report: dict) -> str:
    lines = ["# Every scheme from one coding", "",
             f"`python -m benchmarks.schemes_bench` at {report['commit']} (load average "
             f"{' '.join(map(str, report['load_average']))} at start). The SOC2000 dev model codes each "
             "held-out index entry once; the other schemes are derived from that coding (`coder.derive`) "
             "and scored against the entry's own code in each scheme. Baseline: char TF-IDF 1-NN fitted "
             "per scheme on the same training entries. A dedicated dev model per scheme was not built.", ""]
    for name, part in report["sets"].items():
        lines += [f"## {name} ({part['rows']:,} held-out entries)", "",
                  "| scheme | entries with a code | top-1 | top-5 | auto coverage / precision | baseline top-1 | baseline top-5 |",
                  "|---|---|---|---|---|---|---|"]
        for scheme, r in part["schemes"].items():
            c, b = r["coder"], r["baseline_tfidf"]
            prec = f"{c['auto_precision']:.1%}" if c["auto_precision"] is not None else "–"
            lines.append(f"| {scheme} | {c['n']:,} | {c['top1']:.1%} | {c['top5']:.1%} | "
                         f"{c['auto_coverage']:.1%} / {prec} | {b['top1']:.1%} | {b['top5']:.1%} |")
        s = part["seconds"]
        lines += ["", f"Coding {s['code']:.2f} s; deriving the four other schemes {s['derive_four_schemes']:.2f} s: "
                  f"all five schemes at {part['throughput_ratio']:.1%} of the single-scheme throughput "
                  "(target ≥ 90%).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--limit", type=int, default=None, help="first N entries of each set (a quick run)")
    args = p.parse_args()
    run(args.out, limit=args.limit)


if __name__ == "__main__":
    main()
