"""Merge the two blind clerical codings and the adjudication into the labelled answer sets.

Inputs (this folder): ``coder_A/batch_*.csv`` and ``coder_B/batch_*.csv`` (each coder's code,
certainty, alternative and note per answer), ``adjudicated.csv`` (the final code where they
disagreed), and the unlabelled answers (``data/survey_answers_unlabelled.csv`` of the shared
data, copied to ``answers.csv`` here).

Outputs:
- ``benchmarks/data/survey-answers-labelled.csv``: all answers with both codings, the final
  code and the part (learn / test).
- ``data/survey_answers_learn.csv``: the learn part, shipped with the package; the model
  learns and calibrates on it.
- ``benchmarks/data/survey-answers-test.csv``: the test part. Nothing is ever tuned on it.

The split is made once: answers are grouped by their normalised (title, description,
industry), so repeats of one answer stay on one side, and groups are assigned by a seeded
permutation (seed 20261130), half to each part.

Run: ``python benchmarks/labelling/merge.py`` (from the repository root).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEED = 20261130
LEARN_SHARE = 0.5


def _read(pattern: str) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(glob.glob(str(HERE / pattern)))]
    return pd.concat(frames, ignore_index=True)


def _key(*texts: str) -> str:
    return " | ".join(" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in texts)


def main() -> None:
    answers = pd.read_csv(HERE / "answers.csv", dtype=str, keep_default_na=False)
    a = _read("coder_A/batch_*.csv").add_suffix("_a").rename(columns={"unique_id_a": "unique_id"})
    b = _read("coder_B/batch_*.csv").add_suffix("_b").rename(columns={"unique_id_b": "unique_id"})
    adj = pd.read_csv(HERE / "adjudicated.csv", dtype=str, keep_default_na=False)
    m = answers.merge(a, on="unique_id", how="left", validate="1:1").merge(b, on="unique_id", how="left", validate="1:1")
    if m["soc2000_a"].eq("").any() or m["soc2000_b"].eq("").any() or m["soc2000_a"].isna().any():
        raise SystemExit("an answer lacks a coding")
    m = m.rename(columns={"soc2000_a": "coder_a", "soc2000_b": "coder_b"})
    m["agree"] = m["coder_a"] == m["coder_b"]
    final = dict(zip(adj["unique_id"], adj["final"]))
    disagree = m.loc[~m["agree"], "unique_id"]
    missing = set(disagree) - set(final)
    if missing:
        raise SystemExit(f"{len(missing)} disagreements not adjudicated: {sorted(missing)[:5]}")
    m["soc2000"] = np.where(m["agree"], m["coder_a"], m["unique_id"].map(final))
    m["adjudicated"] = ~m["agree"]
    m["adjudication_note"] = m["unique_id"].map(dict(zip(adj["unique_id"], adj["note"]))).fillna("")
    keys = [_key(t, d, i) for t, d, i in zip(m["job_title"], m["job_description"], m["industry"])]
    groups = sorted(set(keys))
    order = np.random.default_rng(SEED).permutation(len(groups))
    learn_groups = {groups[i] for i in order[: int(round(LEARN_SHARE * len(groups)))]}
    m["part"] = ["learn" if k in learn_groups else "test" for k in keys]
    m = m.sort_values("unique_id", kind="stable")
    cols = ["unique_id", "job_title", "job_description", "industry", "clerical_sic", "sic_section",
            "soc2000", "coder_a", "certainty_a", "alt_a", "coder_b", "certainty_b", "alt_b",
            "agree", "adjudicated", "adjudication_note", "part"]
    out = REPO / "benchmarks" / "data"
    m[cols].to_csv(out / "survey-answers-labelled.csv", index=False)
    test = m[m["part"] == "test"]
    with open(out / "survey-answers-test.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write("# TEST PART of the labelled survey answers: never train, tune, calibrate or choose a threshold on it.\n")
        test[cols[:-1]].to_csv(fh, index=False)
    learn = m[m["part"] == "learn"]
    learn[["unique_id", "job_title", "job_description", "industry", "soc2000", "coder_a", "coder_b"]].to_csv(
        REPO / "data" / "survey_answers_learn.csv", index=False)
    n = len(m)
    print(f"{n} answers: unit-group agreement {m['agree'].mean():.1%} "
          f"(minor {(m['coder_a'].str[:3] == m['coder_b'].str[:3]).mean():.1%}, "
          f"major {(m['coder_a'].str[:1] == m['coder_b'].str[:1]).mean():.1%}); "
          f"{(~m['agree']).sum()} adjudicated; learn {len(learn)}, test {len(test)}")


if __name__ == "__main__":
    main()
