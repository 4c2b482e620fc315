"""Prepare blind clerical-coding materials (no use of the `coder` package)."""
import pandas as pd, numpy as np, collections, textwrap
D = "/work/main/data/"
ans = pd.read_csv("/work/shared/data/survey_answers_unlabelled.csv", dtype=str, keep_default_na=False)
rng = np.random.default_rng(20261130)
order = rng.permutation(len(ans))
ans = ans.iloc[order].reset_index(drop=True)
ans.to_csv("answers_shuffled.csv", index=False)
B = 300
for b in range(6):
    part = ans.iloc[b * B:(b + 1) * B]
    if len(part):
        part.to_csv(f"batch_{b+1}.csv", index=False)
idx = pd.read_csv(D + "soc2020_coding_index_v12.csv", dtype=str, keep_default_na=False)
h = pd.read_csv(D + "soc2000_hierarchy.csv", dtype=str, keep_default_na=False)
units = h[h.level == "unit"]
desc = pd.read_csv(D + "soc2020_volume1_descriptions.csv", dtype=str, keep_default_na=False)
desc = desc[desc.unit != ""].set_index("unit")
out = ["# SOC2000 unit groups (clerical reference)\n",
       "For each SOC2000 unit group: its title, then the SOC2020 unit groups its index entries map to",
       "(with how many index entries), with the SOC2020 description and tasks (SOC2000 has no descriptions here;",
       "SOC2020 groups are close but not identical). Use `python lookup.py` to search the coding index.\n"]
for _, u in units.iterrows():
    code = u.code
    sub = idx[idx.SOC_2000 == code]
    m = collections.Counter(sub.SOC_2020)
    out.append(f"\n## {code} {u.title}\n")
    out.append(f"Index entries: {len(sub)}. Examples: " + "; ".join(sub["INDEXOCC_-_natural_word_order"].head(12)))
    for c20, n in m.most_common(4):
        if c20 in desc.index:
            d = desc.loc[c20]
            tasks = " ".join(t.strip("~ \n") + ";" for t in d.tasks.split("\n") if t.strip())
            out.append(f"\n- SOC2020 {c20} {d.title} ({n} entries): {d.description}\n  Tasks: {tasks}")
open("soc2000_reference.md", "w").write("\n".join(out))
print(len(units), "units;", len(ans), "answers")
