"""Every scheme from one coding: `coder.derive` and ``coder code --scheme a,b``."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from coder.batch import code_file, output_columns
from coder.cli import cli
from coder.derivation import Derivation, derive, parse_schemes
from coder.errors import Reason
from coder.index import load_index
from coder.results import Candidate, Result
from coder.schemes import SCHEMES, load_scheme

ANSWERS = [("staff nurse", "NHS hospital"), ("software developer", ""), ("labourer", ""),
           ("sales assistant", "supermarket"), ("", ""), ("manager", "pub"), ("electrician", "")]


def _entries_by_description():
    entries, _ = load_index()
    out: dict[tuple[str, str], set] = {}
    for e in entries:
        out.setdefault((e.code("soc2000"), e.describe()), set()).add(e)
    return out


def test_parse_schemes_keeps_order_expands_all_and_refuses_unknown_names():
    assert parse_schemes("soc2000, SOC2020") == ["soc2000", "soc2020"]
    assert parse_schemes("soc2020,all") == ["soc2020", *[s for s in SCHEMES if s != "soc2020"]]
    assert parse_schemes(["soc2000", "soc2000"]) == ["soc2000"]
    with pytest.raises((KeyError, ValueError)):
        parse_schemes("soc2000,soc1066")
    with pytest.raises(ValueError):
        parse_schemes(" , ")


def test_a_matched_entry_gives_its_own_code_in_every_scheme(small_coder):
    by_desc = _entries_by_description()
    for title, industry in ANSWERS:
        result = small_coder.code(title, industry)
        for target in SCHEMES[1:]:
            got = derive(result, target)
            assert got.scheme == target and got.text == result.text
            if result.status == "uncodable":
                assert got.status == "uncodable" and got.code == "-9" and not got.candidates
                continue
            assert sum(c.confidence for c in got.candidates) <= sum(c.confidence for c in result.candidates) + 1e-5
            assert [c.confidence for c in got.candidates] == sorted((c.confidence for c in got.candidates), reverse=True)
            assert all(c.code in load_scheme(target) for c in got.candidates)
            if got.status == "auto":  # auto only where the index fixes the code for the matched entry
                assert result.status == "auto"
                (entry, *more) = by_desc[(result.code, result.matched_entry)]
                assert {e.code(target) for e in (entry, *more)} - {None} == {got.code}
                assert got.confidence >= result.confidence - 1e-6


def test_an_exact_match_keeps_its_entrys_code_and_status(small_coder):
    found = 0
    for title in ("staff nurse", "software developer", "electrician", "chef", "hairdresser", "plumber",
                  "bus driver", "cleaner", "postman", "dentist"):
        result = small_coder.code(title)
        if result.status != "auto" or result.method != "exact":
            continue
        for target in ("soc2020", "isco08", "soc90"):
            d = Derivation("soc2000", target)
            if not d.certain(result.code, result.matched_entry, result.method):
                continue
            got = result.in_scheme(target)
            assert got.status == "auto" and got.confidence >= result.confidence - 1e-6
            assert got.code == d.shares(result.code, result.matched_entry, result.method)[0][0]
            found += 1
    assert found >= 3  # the premise: several exact, certain matches among these titles


def test_lower_candidates_cannot_make_another_code_auto():
    # The best candidate (0.45) fixes target A; two lower ones (0.3 + 0.2) share target B:
    # B wins on confidence, but the answer's own match does not give it, so it is referred.
    d = Derivation("soc2000", "soc2020")
    certain = [(code, links[0][0]) for code, links in d._links.items() if len(links) == 1]
    (a_src, a_tgt), (b_src, b_tgt) = next((x, y) for x in certain for y in certain if x[1] != y[1])
    result = Result(text="x", industry=None, scheme="soc2000", status="auto", candidates=(
        Candidate(a_src, "", 0.45, "fuzzy", ""), Candidate(b_src, "", 0.3, "fuzzy", ""),
        Candidate(b_src, "", 0.2, "tfidf", "")))
    got = d.derive(result)
    assert got.code == b_tgt and got.status == "refer" and got.reason == Reason.DERIVED_SPLIT


def test_a_code_the_entry_does_not_fix_is_shared_out_and_referred():
    # An entry quoted differently from the index: the crosswalk shares the confidence out.
    d = Derivation("soc90", "soc2000")
    code = next(c for c in d.crosswalk.source_codes if len(d.crosswalk.weights(c)) > 1)
    result = Result(text="x", industry=None, scheme="soc90", status="auto",
                    candidates=(Candidate(code, "", 0.99, "exact", "no such entry"),))
    got = d.derive(result)
    assert got.status == "refer" and got.reason == Reason.DERIVED_SPLIT
    weights = d.crosswalk.weights(code)
    assert [c.code for c in got.candidates][:1] == [weights[0].code]
    assert got.candidates[0].confidence == pytest.approx(0.99 * weights[0].weight, abs=1e-5)
    with pytest.raises(ValueError):
        Derivation("soc2000", "soc2020").derive(result)  # a soc90 result


def test_code_file_adds_derived_columns_that_agree_with_the_api(small_model_dir, small_coder, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(ANSWERS) * 2), "job": [a for a, _ in ANSWERS] * 2,
                  "ind": [b for _, b in ANSWERS] * 2}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    code_file(src, out, "job", industry_column="ind", scheme="soc2000,soc2020,isco08",
              model_dir=small_model_dir)
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    added = output_columns("soc2000", also=["soc2020", "isco08"])
    assert list(got.columns) == ["id", "job", "ind", *added]
    assert added[-4:] == ["isco08", "isco08_title", "isco08_confidence", "isco08_status"]
    for row in got.itertuples(index=False):
        want = derive(small_coder.code(row.job, row.ind or None), "soc2020")
        assert (row.soc2020, row.soc2020_status) == (want.code, want.status)
        assert float(row.soc2020_confidence) == pytest.approx(want.confidence, abs=2e-3)
        if row.status == "uncodable":
            assert row.soc2020 == "-9" and row.isco08_status == "uncodable"


def test_cli_names_an_unknown_scheme_in_the_list(small_model_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("job\nnurse\n")
    result = CliRunner().invoke(cli, ["code", str(src), "-o", str(tmp_path / "o.csv"), "--column", "job",
                                      "--scheme", "soc2000,soc1066", "--model-dir", str(small_model_dir)])
    assert result.exit_code == 2 and "soc1066" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_result_in_scheme_is_derive(small_coder):
    import coder

    result = small_coder.code("staff nurse", "hospital")
    assert result.in_scheme("isco08") == coder.derive(result, "isco08")
    assert result.in_scheme("soc2000") is result


def test_the_api_gives_each_result_in_the_schemes_asked_for(small_coder, small_model_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from coder.service.app import create_app

    body = {"items": [{"title": "staff nurse", "industry": "hospital"}, {"title": ""}],
            "also": ["isco08", "soc90"]}
    with TestClient(create_app(small_coder, model_dir=small_model_dir)) as client:
        got = client.post("/code", json=body).json()
        first, blank = got["results"]
        assert set(first["derived"]) == {"isco08", "soc90"}
        want = derive(small_coder.code("staff nurse", "hospital"), "isco08")
        assert (first["derived"]["isco08"]["code"], first["derived"]["isco08"]["status"]) == (want.code, want.status)
        assert blank["derived"]["soc90"] == {"code": "-9", "title": "", "confidence": 0.0,
                                             "status": "uncodable", "reason": blank["reason"]}
        assert "derived" not in client.post("/code", json={"items": [{"title": "nurse"}]}).json()["results"][0]
        bad = client.post("/code", json={**body, "also": ["soc1066"]})
        assert bad.status_code == 422


def test_suggest_gives_each_candidates_codes_in_other_schemes(small_coder, small_model_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from coder.derivation import Derivation
    from coder.service.app import create_app

    with TestClient(create_app(small_coder, model_dir=small_model_dir)) as client:
        got = client.get("/suggest", params=[("q", "staff nurse"), ("also", "soc2020"), ("also", "isco08")]).json()
        assert set(got["derived"]) == {"soc2020", "isco08"}
        for cand in got["candidates"]:
            d = Derivation("soc2000", "isco08")
            assert cand["in_schemes"]["isco08"] == d.shares(cand["code"], cand["matched_entry"], cand["method"])[0][0]
        plain = client.get("/suggest", params={"q": "staff nurse"}).json()
        assert "derived" not in plain and all("in_schemes" not in c for c in plain["candidates"])
        assert client.get("/suggest", params={"q": "nurse", "also": "soc1066"}).status_code == 422
