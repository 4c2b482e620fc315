"""Cold start: from a clean clone to the first coded file, and the first use of each scheme.
``python -m benchmarks.cold_start``

In a temporary directory, as a new user would:

1. clone this repository (its last commit) and make a virtual environment;
2. ``pip install .`` (timed; with pip's cache unless ``--no-pip-cache``, which downloads
   every wheel again and so measures the network too);
3. run the README's main command (found in README.md, not copied here) with an empty model
   directory: the model is built on first use (from the shipped ranker when it matches,
   `coder.shipped`), then the 210-row example is coded;
4. ``coder build --scheme S`` into empty directories for the other schemes: their first use;
5. beside them, in the same run, the baselines: the full cross-fitted build
   (``coder build --full``, the first use before shipped rankers) and the naive char TF-IDF
   baseline's fit on the index.

Wall times of whole commands (start-up included), against the targets of 60 s (install to
first coded file) and 30 s (another scheme). Results: ``benchmarks/results/cold_start.json``
and ``cold_start.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import REPO, built_folder, git_commit, load_average, log

RESULTS = REPO / "benchmarks" / "results"
FIRST_FILE_TARGET, OTHER_SCHEME_TARGET = 60.0, 30.0
OTHER_SCHEMES = ("soc90", "soc2010", "soc2020", "isco08")


def readme_main_command(readme: Path) -> str:
    """The README's main command: the first line of its first bash block."""
    block = re.search(r"```bash\n(.*?)\n```", readme.read_text(), re.S)
    if block is None:
        raise SystemExit("no bash block in README.md")
    return block.group(1).strip().splitlines()[0]


def _timed(command: list[str] | str, *, cwd: Path, env: dict[str, str], shell: bool = False) -> dict:
    log(f"  $ {command if shell else shlex.join(command)}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, shell=shell, capture_output=True, text=True,
                          executable="/bin/bash" if shell else None)
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    log(f"    {seconds} s")
    return {"seconds": seconds, "stdout": done.stdout, "stderr": done.stderr}


def _manifest(directory: Path, scheme: str) -> dict:
    folder = built_folder(scheme, directory)
    return json.loads((folder / "manifest.json").read_text()) if folder is not None else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-pip-cache", action="store_true", help="Install without pip's cache (downloads).")
    parser.add_argument("--schemes", nargs="*", default=list(OTHER_SCHEMES), help="Other schemes to build.")
    parser.add_argument("--skip-full", action="store_true", help="Skip the full-build baseline (2-3 minutes).")
    parser.add_argument("--out", default="cold_start", help="Name of the results files in benchmarks/results/.")
    args = parser.parse_args(argv)

    out: dict = {"argv": list(sys.argv[1:] if argv is None else argv), "commit": git_commit(),
                 "load_average_before": load_average(),
                 "targets": {"install_to_first_file_s": FIRST_FILE_TARGET, "other_scheme_s": OTHER_SCHEME_TARGET}}
    with tempfile.TemporaryDirectory(prefix="coder-cold-") as tmp:
        tmp = Path(tmp)
        clone, venv = tmp / "clone", tmp / "venv"
        # A user's environment: none of this one's settings for coder, Python or the numeric
        # libraries' threads (pip's settings stay: they say where packages come from).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CODER_", "VIRTUAL_ENV", "PYTHONPATH", "OMP_", "MKL_", "OPENBLAS_", "LOKY_"))}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["CODER_MODEL_DIR"] = str(tmp / "models")
        log("clone and virtual environment")
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        command = readme_main_command(clone / "README.md")
        install, _, run = command.partition(" && ")
        if not install.startswith("python -m pip install"):
            raise SystemExit(f"unexpected README main command: {command}")
        if args.no_pip_cache:
            install += " --no-cache-dir"
        log("README main command, in two timed parts")
        installed = _timed(install, cwd=clone, env=env, shell=True)
        first = _timed(run, cwd=clone, env=env, shell=True)
        manifest = _manifest(tmp / "models", "soc2000")
        coded = (clone / "coded.csv").read_text().count("\n") - 1
        out["first_file"] = {
            "command": command, "pip_cache": not args.no_pip_cache,
            "install_s": installed["seconds"], "first_run_s": first["seconds"],
            "install_to_first_file_s": round(installed["seconds"] + first["seconds"], 1),
            "model_build_s": manifest.get("build_seconds"), "built_from": manifest.get("built_from", {}).get("ranker"),
            "rows_coded": coded,
        }
        schemes = {}
        for scheme in args.schemes:
            log(f"first use of {scheme}")
            directory = tmp / f"models-{scheme}"
            built = _timed(["coder", "build", "--scheme", scheme, "--model-dir", str(directory), "--quiet"],
                           cwd=clone, env=env)
            schemes[scheme] = {"seconds": built["seconds"],
                               "built_from": _manifest(directory, scheme).get("built_from", {}).get("ranker")}
        out["other_schemes"] = schemes
        baselines: dict = {}
        if not args.skip_full:
            log("baseline: the full cross-fitted build")
            full = _timed(["coder", "build", "--scheme", "soc2000", "--full", "--model-dir", str(tmp / "full"),
                           "--quiet"], cwd=clone, env=env)
            baselines["full_build_soc2000_s"] = full["seconds"]
        log("baseline: char TF-IDF fit on the index")
        tfidf = _timed([str(venv / "bin" / "python"), "-c",
                        "import time; t = time.perf_counter(); from coder.index import load_index; "
                        "from benchmarks.baselines import TfidfBaseline; "
                        "TfidfBaseline().fit(load_index()[0]); print(round(time.perf_counter() - t, 2))"],
                       cwd=clone, env=env)
        baselines["tfidf_fit_s_in_process"] = float(tfidf["stdout"].strip())
        baselines["tfidf_fit_s_whole_command"] = tfidf["seconds"]
        out["baselines"] = baselines
    out["load_average_after"] = load_average()
    out["cpu_count"] = os.cpu_count()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(_markdown(out))
    print(_markdown(out))
    return 0


def _markdown(out: dict) -> str:
    first = out["first_file"]
    met = lambda s, t: "met" if s <= t else "missed"  # noqa: E731
    lines = [
        "# Cold start", "",
        f"`{' '.join(['python -m benchmarks.cold_start', *out['argv']])}` at {out['commit']}, "
        f"{out['cpu_count']} cores, load average before "
        f"{out['load_average_before']}, after {out['load_average_after']}.", "",
        "| figure | seconds | target |", "|---|---|---|",
        f"| `pip install .` ({'with' if first['pip_cache'] else 'without'} pip's cache) | {first['install_s']} | |",
        f"| README main command after it: model built ({first['built_from']} ranker, {first['model_build_s']} s "
        f"in the manifest) and {first['rows_coded']} rows coded | {first['first_run_s']} | |",
        f"| **install to first coded file** | **{first['install_to_first_file_s']}** | "
        f"{FIRST_FILE_TARGET:.0f} ({met(first['install_to_first_file_s'], FIRST_FILE_TARGET)}) |",
    ]
    for scheme, r in out["other_schemes"].items():
        lines.append(f"| first use of {scheme}: `coder build` ({r['built_from']} ranker) | {r['seconds']} | "
                     f"{OTHER_SCHEME_TARGET:.0f} ({met(r['seconds'], OTHER_SCHEME_TARGET)}) |")
    b = out["baselines"]
    if "full_build_soc2000_s" in b:
        lines.append(f"| baseline: full cross-fitted build, soc2000 (`coder build --full`) | "
                     f"{b['full_build_soc2000_s']} | |")
    lines.append(f"| baseline: naive char TF-IDF fit on the index (in-process / whole command) | "
                 f"{b['tfidf_fit_s_in_process']} / {b['tfidf_fit_s_whole_command']} | |")
    lines += ["", f"Command: `{first['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
