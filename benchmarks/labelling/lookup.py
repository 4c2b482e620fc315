"""Search the ONS coding index like a clerical coder's look-up tool.

  python lookup.py WORD [WORD ...]   entries whose title contains every word (prefix match), with
                                     qualifiers (ADD / IND), SEE notes and SOC2000 code + title
  python lookup.py --code 9251       a SOC2000 unit group: title, up to 60 index titles, SOC2020 description
  python lookup.py --units           the list of all 353 SOC2000 unit groups
"""
import sys, re, csv
D = "/work/main/data/"
rows = list(csv.DictReader(open(D + "soc2020_coding_index_v12.csv", encoding="utf-8-sig")))
units = {r["code"]: r["title"] for r in csv.DictReader(open(D + "soc2000_hierarchy.csv")) if r["level"] == "unit"}
args = sys.argv[1:]
if not args:
    print(__doc__); sys.exit()
if args[0] == "--units":
    for c, t in units.items():
        print(c, t)
    sys.exit()
if args[0] == "--code":
    code = args[1]
    print(code, units.get(code, "?"))
    sub = [r for r in rows if r["SOC_2000"] == code]
    print(f"{len(sub)} index entries, e.g.:")
    for r in sub[:60]:
        q = ", ".join(x for x in (r["ADD"], r["IND"]) if x)
        print("  ", r["INDEXOCC_-_natural_word_order"] + (f" ({q})" if q else ""))
    text = open("/work/labelling/soc2000_reference.md").read()
    m = re.search(rf"^## {code} .*?(?=^## |\Z)", text, re.S | re.M)
    if m:
        print(m.group(0)[:6000])
    sys.exit()
words = [w.lower() for w in args]
def ok(r):
    t = (r["INDEXOCC"] + " " + r["INDEXOCC_-_natural_word_order"]).lower()
    toks = re.findall(r"[a-z0-9']+", t)
    return all(any(tok.startswith(w) for tok in toks) for w in words)
hits = [r for r in rows if ok(r)]
print(f"{len(hits)} entries match {' '.join(words)!r}" + (" (first 150)" if len(hits) > 150 else ""))
for r in hits[:150]:
    q = "; ".join(f"{k}: {r[k]}" for k in ("ADD", "IND", "SEE") if r[k])
    c = r["SOC_2000"]
    print(f"  {r['INDEXOCC_-_natural_word_order']:<45} {('[' + q + ']') if q else '':<45} -> {c} {units.get(c, '(not codable from title alone: see SEE)')}")
