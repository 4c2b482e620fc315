"""Learning from clerical decisions: how much a team's coded answers help, measured.

    python -m benchmarks.learn_bench                       # the full soc2000 model (built if missing)
    python -m benchmarks.learn_bench --model-dir DIR --out /tmp/learn.json   # another model folder

What it does
------------
1. Reads the labelled real answers (``benchmarks/data/survey-answers-labelled.csv``), the TEST
   part only (``part == test``; the shipped model learned from the LEARN part, never these),
   with the adjudicated soc2000 code as gold.
2. Splits them in two halves, seeded by answer id: ``learn`` (the decisions a team would have
   made) and ``held_out`` (new answers).
3. Codes both halves with the model as shipped ("before").
4. Teaches the coder the learn half, one decision at a time through `Coder.learn` into a fresh
   `DecisionStore` (as the clerical page does), timed.
5. Codes both halves again ("after"): the held-out half shows what decisions on *other*
   answers bring (the learned stage weighs similar decided answers; repeated answers are
   decided outright); the learn half must come back at 100%: every learned answer with its
   decided code, method ``learned``, auto-coded. Answers the half holds twice with different
   codes are conflicts: the majority decides (or, with a tie, the answer is referred), so they
   are reported apart and left out of that check.

Reports top-1 (right if the best code is the gold code), top-1 where either coder's code
counts, auto share and auto precision, before and after, for each half; how many held-out
answers repeat a learned answer exactly; and the time per learned decision and per coded
answer. Writes JSON (``--out``, default ``benchmarks/results/learn.json``) and a markdown
table beside it; exits 1 when the re-coded learn half is not 100%.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(HERE.parent))

from benchmarks._common import git_commit, load_average, log  # noqa: E402

LABELLED = HERE / "data" / "survey-answers-labelled.csv"
RESULTS = HERE / "results" / "learn.json"


def test_part(path: Path = LABELLED) -> pd.DataFrame:
    """The TEST part of the labelled answers: uid, title, industry, description, gold, coder_a, coder_b."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, comment=None)
    if "part" not in raw.columns:
        raise SystemExit(f"{path}: no 'part' column; expected the labelled answers with learn/test parts")
    raw = raw[raw["part"].str.strip().str.lower() == "test"]
    frame = pd.DataFrame({
        "uid": raw["unique_id"], "title": raw["job_title"], "industry": raw["industry"],
        "description": raw["job_description"], "gold": raw["soc2000"].str.strip(),
        "coder_a": raw["coder_a"].str.strip(), "coder_b": raw["coder_b"].str.strip(),
    }).reset_index(drop=True)
    return frame[frame["gold"].str.fullmatch(r"\d{4}")].reset_index(drop=True)


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two halves by a seeded permutation of the (sorted) answer ids: (learn, held out)."""
    order = np.random.default_rng(seed).permutation(np.argsort(frame["uid"].to_numpy(), kind="stable"))
    half = len(order) // 2
    first, second = np.sort(order[:half]), np.sort(order[half:])
    return frame.iloc[first].reset_index(drop=True), frame.iloc[second].reset_index(drop=True)


def _none(values: pd.Series) -> list[str | None]:
    return [v if v.strip() else None for v in values]


def code(coder, frame: pd.DataFrame) -> tuple[list, float]:
    if hasattr(coder, "_cache"):
        coder._cache.clear()  # time real coding, not the memo
    started = time.perf_counter()
    results = coder.code_many(list(frame["title"]), _none(frame["industry"]), _none(frame["description"]))
    return results, time.perf_counter() - started


def scores(results: list, frame: pd.DataFrame) -> dict[str, Any]:
    gold = frame["gold"].tolist()
    codes = [r.code for r in results]
    right = np.array([c == g for c, g in zip(codes, gold)])
    accepted = np.array([c in {g, a, b} for c, g, a, b in
                         zip(codes, gold, frame["coder_a"], frame["coder_b"])])
    auto = np.array([r.status == "auto" for r in results])
    methods = Counter(r.method for r in results)
    return {
        "n": len(results),
        "top1": round(float(right.mean()), 4) if len(right) else None,
        "top1_either_coder": round(float(accepted.mean()), 4) if len(accepted) else None,
        "auto_share": round(float(auto.mean()), 4) if len(auto) else None,
        "auto_precision": round(float(right[auto].mean()), 4) if auto.any() else None,
        "learned_method": int(methods.get("learned", 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None, help="Folder of built models (default: the usual one).")
    parser.add_argument("--scheme", default="soc2000", help="Only soc2000 has labelled answers.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split into halves.")
    parser.add_argument("--no-build", action="store_true", help="Fail instead of building a missing model.")
    parser.add_argument("--labelled", default=str(LABELLED), help="The labelled answers (learn and test parts).")
    parser.add_argument("--out", default=str(RESULTS), help="Where to write the JSON (markdown beside it).")
    args = parser.parse_args(argv)

    from coder import Coder
    from coder.decisions import DecisionStore, answer_key

    if args.scheme != "soc2000":
        raise SystemExit("the labelled answers are coded to soc2000 only")
    frame = test_part(Path(args.labelled))
    learn, held = split(frame, args.seed)
    log(f"{len(frame):,} labelled TEST answers: learning from {len(learn):,}, coding {len(held):,} held out")

    started = time.perf_counter()
    coder = Coder.load(args.scheme, model_dir=args.model_dir, build=not args.no_build, progress=log)
    load_seconds = time.perf_counter() - started
    before_held, t_before_held = code(coder, held)
    before_learn, t_before_learn = code(coder, learn)

    with tempfile.TemporaryDirectory(prefix="coder-learn-bench-") as tmp:
        store = DecisionStore(Path(tmp) / "decisions.sqlite")
        # A coder of its own on a copy of the model: learning changes the model's learned stage.
        learner = Coder(copy.deepcopy(coder.model), decisions=store)
        started = time.perf_counter()
        for title, industry, description, gold in zip(learn["title"], _none(learn["industry"]),
                                                      _none(learn["description"]), learn["gold"]):
            learner.learn(title, industry, description, code=gold, who="benchmark", source="imported")
        learn_seconds = time.perf_counter() - started
        after_held, t_after_held = code(learner, held)
        after_learn, t_after_learn = code(learner, learn)
        decisions = store.count()

        # The learn half's answers as read, and which of them coders split on.
        keys = [answer_key(t, i, d) for t, i, d in zip(learn["title"], _none(learn["industry"]),
                                                      _none(learn["description"]))]
        codes_per_key: dict[Any, set] = {}
        for key, gold in zip(keys, learn["gold"]):
            codes_per_key.setdefault(key, set()).add(gold)
        conflicted = np.array([len(codes_per_key[k]) > 1 for k in keys])
        standing = store.lookup(args.scheme, list(codes_per_key))
        back = np.array([r.code == g and r.method == "learned" and r.status == "auto"
                         for r, g in zip(after_learn, learn["gold"])])
        majority_back = np.array([r.code == standing[k].code and r.method == "learned"
                                  for r, k in zip(after_learn, keys)])
        learned_keys = set(keys)
        repeats = np.array([answer_key(t, i, d) in learned_keys for t, i, d in
                            zip(held["title"], _none(held["industry"]), _none(held["description"]))])

    report: dict[str, Any] = {
        "commit": git_commit(), "load_average": load_average(),
        "model_dir": args.model_dir or "(default)", "scheme": args.scheme, "seed": args.seed,
        "answers": {"test_part": len(frame), "learn_half": len(learn), "held_out": len(held),
                    "held_out_repeating_a_learned_answer": int(repeats.sum())},
        "held_out": {"before": scores(before_held, held), "after": scores(after_held, held)},
        "learn_half": {"before": scores(before_learn, learn), "after": scores(after_learn, learn)},
        "recode_learn_half": {
            "rows": len(learn), "conflicted_rows": int(conflicted.sum()),
            "back_right_learned_auto": round(float(back[~conflicted].mean()), 4) if (~conflicted).any() else None,
            "majority_code_back": round(float(majority_back.mean()), 4),
        },
        "speed": {
            "load_seconds": round(load_seconds, 2), "decisions_stored": decisions,
            "ms_per_learned_decision": round(1000 * learn_seconds / max(len(learn), 1), 2),
            "ms_per_answer_before": round(1000 * (t_before_held + t_before_learn) / len(frame), 2),
            "ms_per_answer_after": round(1000 * (t_after_held + t_after_learn) / len(frame), 2),
        },
    }
    if repeats.any():
        report["held_out"]["repeats_after"] = scores([r for r, x in zip(after_held, repeats) if x],
                                                     held[repeats])
        report["held_out"]["others_after"] = scores([r for r, x in zip(after_held, repeats) if not x],
                                                    held[~repeats])
    recode = report["recode_learn_half"]
    ok = recode["back_right_learned_auto"] == 1.0 and recode["majority_code_back"] == 1.0

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = summary(report, ok)
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(markdown)
    log(f"wrote {out} and {out.with_suffix('.md')}")
    return 0 if ok else 1


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def summary(report: dict[str, Any], ok: bool) -> str:
    a = report["answers"]
    lines = [
        "# Learning from decisions (labelled real answers, TEST part)",
        "",
        f"Commit {report['commit']}, model {report['model_dir']}, split seed {report['seed']}, load "
        f"average {report['load_average']}. {a['test_part']:,} answers: the coder learns the gold codes of "
        f"{a['learn_half']:,} (one `Coder.learn` each, into a fresh decision store) and codes the other "
        f"{a['held_out']:,}; {a['held_out_repeating_a_learned_answer']:,} of those repeat a learned answer exactly.",
        "",
        "| half | when | n | top-1 | top-1 (either coder) | auto share | auto precision | method learned |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for half in ("held_out", "learn_half"):
        for when in ("before", "after"):
            s = report[half][when]
            lines.append(f"| {half.replace('_', ' ')} | {when} | {s['n']:,} | {_pct(s['top1'])} | "
                         f"{_pct(s['top1_either_coder'])} | {_pct(s['auto_share'])} | {_pct(s['auto_precision'])} | "
                         f"{s['learned_method']:,} |")
    r = report["recode_learn_half"]
    sp = report["speed"]
    lines += [
        "",
        f"Re-coding the learn half: {_pct(r['back_right_learned_auto'])} of the {r['rows'] - r['conflicted_rows']:,} "
        f"rows whose answer the half codes one way come back with their code, method learned, auto "
        f"({'as required' if ok else 'NOT 100%: a failure'}); {_pct(r['majority_code_back'])} of all rows come back "
        f"with their answer's majority code ({r['conflicted_rows']:,} rows are answers coded two ways: the "
        "majority decides, a tie is referred).",
        "",
        f"Speed: {sp['ms_per_learned_decision']} ms per learned decision (stored in SQLite and learned); "
        f"{sp['ms_per_answer_before']} ms per answer coded before, {sp['ms_per_answer_after']} ms after "
        f"(the learned stage holds {sp['decisions_stored']:,} more decisions); model load {sp['load_seconds']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
