"""The coding index loader: faithful fields, vague entries, malformed rows reported not fatal."""

import csv

from coder.index import SCHEME_COLUMNS, load_index


def test_loads_the_shipped_index():
    entries, report = load_index()
    assert report.rows == len(entries) == 30589
    assert report.problems == []
    assert len(report.sha256) == 64
    architect = [e for e in entries if e.title == "Architect" and not e.add and not e.ind]
    assert architect and architect[0].codes["soc2000"] == "2431" and architect[0].default == "M"


def test_vague_entries_have_no_code_but_stay():
    entries, _ = load_index()
    vague = [e for e in entries if e.code("soc2000") is None]
    assert 200 < len(vague) < 300
    assert any(e.title == "Engineer, senior" and e.see.startswith("see") for e in vague)
    # Vague in one scheme does not mean vague in all: SOC90 has }}} where SOC2000 has 7111.
    mixed = [e for e in entries if e.code("soc90") is None and e.code("soc2000") is not None]
    assert mixed


def test_qualifiers_and_natural_order():
    entries, _ = load_index()
    e = next(e for e in entries if e.title == "Manager" and e.ind == "hotel")
    assert e.natural == "Manager" and e.code("soc2000") == "1221"
    assert e.describe() == "Manager (hotel)"


def _write(path, rows, header):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_malformed_rows_are_reported_with_record_number(tmp_path):
    header = ["UNIQUE ID", "RECNO", "D", "SOC_90", "SOC_2000", "SOC_2010", "SOC_2020",
              "SOC_2020_ext", "INDEXOCC", "ADD", "IND", "SEE", "ISCO-08 code based on SOC2020",
              "INDEXOCC_-_natural_word_order"]
    good = ["a", "1", "", "532", "5314", "5314", "5315", "", "Plumber", "", "", "", "7126", "Plumber"]
    short_code = ["b", "2", "", "532", "531", "5314", "5315", "", "Plumber, gas", "", "", "", "7126", ""]
    no_title = ["c", "3", "", "532", "5314", "5314", "5315", "", "", "", "", "", "7126", ""]
    multiline = ["d", "4", "", "}}}", "}}}}", "}}}}", "}}}}", "", "Worker,\nodd", "", "", "see notes", "}}}}", ""]
    path = tmp_path / "index.csv"
    _write(path, [good, short_code, no_title, multiline], header)
    entries, report = load_index(path)
    assert [e.recno for e in entries] == [1, 4]
    assert entries[1].codes == {s: None for s in SCHEME_COLUMNS}
    assert entries[1].natural == "Worker,\nodd"  # falls back to INDEXOCC
    assert len(report.problems) == 2
    assert report.problems[0].startswith("record 2") and "531" in report.problems[0]
    assert report.problems[1].startswith("record 3")


def test_missing_columns_load_nothing(tmp_path):
    path = tmp_path / "bad.csv"
    _write(path, [["x"]], ["something"])
    entries, report = load_index(path)
    assert entries == [] and "missing columns" in report.problems[0]
