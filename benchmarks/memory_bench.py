"""Peak memory per scheme, load plus coding: ``python -m benchmarks.memory_bench``.

For each scheme (``--schemes``, default all five) the full model is built first if it is
missing or stale (the build's wall time is reported: it is what first use of that scheme
costs). Then a fresh process per scheme, as a user's would be, loads the model and codes:

* 6,000 distinct survey-like answers in one call (cold caches);
* 200 answers one at a time (type-ahead);
* 1,000,000 survey-like rows with Zipf repeats, in chunks of 50,000 (the speed benchmark's
  survey-like file: ``benchmarks.devsets.survey_pool``, drawn by ``zipf_rows``), with a new
  `Coder` on the same model, so from cold caches.

Its peak resident set size (the kernel's VmHWM, and psutil sampled every 10 ms) is reported
against the 350 MB target, beside the RSS just after loading and the model file's size. The
answers come from the index, so they are coded in every scheme. Results:
``benchmarks/results/memory.json`` and ``memory.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import REPO, SURVEY_DRAW, PeakRSS, git_commit, load_average, log, zipf_rows

RESULTS = REPO / "benchmarks" / "results"
TARGET_MB = 350.0
DISTINCT, SINGLE, ROWS, CHUNK = 6_000, 200, 1_000_000, 50_000


def _inputs(rows: int) -> dict[str, Any]:
    import numpy as np

    from benchmarks.devsets import survey_pool

    pool = survey_pool(pool_size=20_000, seed=0)
    order = np.random.default_rng(1).permutation(len(pool))
    return {"pool": pool, "distinct": [pool[i] for i in order[:DISTINCT]],
            "single": [pool[i] for i in order[::-1][:SINGLE]], "rows": rows}


def _worker(scheme: str, inputs_path: str) -> dict[str, Any]:
    """Load and code in this (fresh) process; peak memory of all of it."""
    inputs = json.loads(Path(inputs_path).read_text())
    out: dict[str, Any] = {}
    with PeakRSS() as mem:
        from coder import Coder

        t0 = time.perf_counter()
        coder = Coder.load(scheme, build=False)
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        out["rss_after_load_mb"] = round(mem.now_mb(), 1)
        titles, inds = zip(*inputs["distinct"])
        t0 = time.perf_counter()
        coder.code_many(list(titles), list(inds))
        out["distinct_titles_per_s"] = round(len(titles) / (time.perf_counter() - t0), 1)
        for title, ind in inputs["single"]:
            coder.code(title, ind)
        pool = inputs["pool"]
        picks = zipf_rows(len(pool), inputs["rows"], **SURVEY_DRAW)
        rows, row_inds = [pool[i][0] for i in picks], [pool[i][1] for i in picks]
        # The distinct answers came from the same pool: a new coder (the model shared, its
        # caches empty, the first one's freed) so the rows are coded from cold.
        coder = Coder(coder.model)
        t0 = time.perf_counter()
        for start in range(0, len(rows), CHUNK):
            coder.code_many(rows[start:start + CHUNK], row_inds[start:start + CHUNK])
        out["survey_rows_per_s"] = round(len(rows) / (time.perf_counter() - t0), 1)
    out.update(mem.report())
    return out


def _ensure_built(scheme: str) -> float | None:
    """Build the full model when missing or stale; its wall time, or None when it was current."""
    from coder.store import ensure_built, stale_reason

    if stale_reason(scheme, None) is None:
        return None
    log(f"{scheme}: building the model")
    t0 = time.perf_counter()
    ensure_built(scheme, None)
    return round(time.perf_counter() - t0, 1)


def run(schemes: list[str], out_dir: Path, *, rows: int = ROWS) -> dict[str, Any]:
    from coder.store import model_files

    from coder import SCHEMES

    command = "python -m benchmarks.memory_bench" + ("" if list(schemes) == list(SCHEMES) else
                                                     f" --schemes {','.join(schemes)}")
    report: dict[str, Any] = {"command": command + ("" if rows == ROWS else f" --rows {rows}"),
                              "commit": git_commit(), "target_mb": TARGET_MB,
        "inputs": {"distinct": DISTINCT, "single": SINGLE, "survey_rows": rows, "chunk": CHUNK},
        "schemes": {}}
    with tempfile.TemporaryDirectory(prefix="coder-mem-") as tmp:
        path = Path(tmp) / "inputs.json"
        path.write_text(json.dumps(_inputs(rows)))
        report["load_average_before"] = load_average()
        for scheme in schemes:
            built = _ensure_built(scheme)
            log(f"{scheme}: load and code in a fresh process")
            done = subprocess.run([sys.executable, "-m", "benchmarks.memory_bench", "--worker", scheme,
                                   "--inputs", str(path)], capture_output=True, text=True, cwd=REPO)
            if done.returncode:
                raise RuntimeError(f"{scheme} worker failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            model = model_files(scheme)[0]
            result["model_file_mb"] = round(model.stat().st_size / 2**20, 1)
            result["build_seconds"] = built
            result["met"] = result["peak_rss_mb"] <= TARGET_MB
            report["schemes"][scheme] = result
        report["load_average_after"] = load_average()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "memory.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    inp = report["inputs"]
    lines = [
        "# Peak memory per scheme: load plus coding", "",
        f"Command: `{report['command']}`  ", f"Code: {report['commit']}  ",
        f"Load average before {report['load_average_before']}, after {report['load_average_after']}", "",
        f"Each scheme in a fresh process: load the full model, code {inp['distinct']:,} distinct survey-like "
        f"answers in one call, {inp['single']:,} one at a time, then {inp['survey_rows']:,} survey-like rows "
        f"(Zipf repeats) in chunks of {inp['chunk']:,}. Peak RSS is the process's high-water mark.", "",
        "| scheme | model file (MB) | RSS after load (MB) | peak RSS, load + coding (MB) "
        f"| target ≤{report['target_mb']:.0f} | distinct titles/s | survey-like rows/s | build, when it ran (s) |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for scheme, r in report["schemes"].items():
        build = "current" if r["build_seconds"] is None else f"{r['build_seconds']:.0f}"
        lines.append(f"| {scheme} | {r['model_file_mb']} | {r['rss_after_load_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{'met' if r['met'] else '**not met**'} | {r['distinct_titles_per_s']:,.0f} | "
                     f"{r['survey_rows_per_s']:,.0f} | {build} |")
    lines += ["", "A build is a first use of that scheme: its wall time is the model build alone, in its own "
              "pool of processes, before the measured process starts.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from coder import SCHEMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated [all five]")
    p.add_argument("--rows", type=int, default=ROWS, help="survey-like rows [1,000,000]")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.inputs)))
        return
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        p.error(f"unknown schemes: {', '.join(unknown)} (choose from {', '.join(SCHEMES)})")
    run(schemes, args.out, rows=args.rows)


if __name__ == "__main__":
    main()
