"""Tests for coder.schemes: counts, titles, hierarchy, and agreement with the ONS coding index."""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import pandas as pd
import pytest

from coder._paths import data_path
from coder.errors import DataError, UnknownSchemeError
from coder.schemes import MISSING_CODE, SCHEMES, Group, Scheme, load_scheme, soc90_codebook_counts

INDEX_COLUMNS = {
    "soc90": "SOC_90",
    "soc2000": "SOC_2000",
    "soc2010": "SOC_2010",
    "soc2020": "SOC_2020",
    "isco08": "ISCO-08 code based on SOC2020",
}


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return pd.read_csv(data_path("soc2020_coding_index_v12.csv"), dtype=str, keep_default_na=False)


def _level_counts(scheme: Scheme) -> dict[str, int]:
    codes: dict[str, set[str]] = defaultdict(set)
    for unit in scheme.units:
        for group in scheme.hierarchy(unit):
            codes[group.level].add(group.code)
    return {level: len(found) for level, found in codes.items()}


def test_scheme_names_and_missing_code() -> None:
    assert SCHEMES == ("soc2000", "soc90", "soc2010", "soc2020", "isco08")
    assert MISSING_CODE == "-9"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("soc2000", {"major": 9, "sub_major": 25, "minor": 81, "unit": 353}),
        ("soc90", {"major": 9, "minor": 77, "unit": 371}),
        ("soc2010", {"major": 9, "sub_major": 25, "minor": 90, "unit": 369}),
        ("soc2020", {"major": 9, "sub_major": 26, "minor": 104, "unit": 412}),
        ("isco08", {"major": 10, "sub_major": 43, "minor": 130, "unit": 436}),
    ],
)
def test_counts(name: str, expected: dict[str, int]) -> None:
    scheme = load_scheme(name)
    assert len(scheme) == len(scheme.units) == expected["unit"]
    assert _level_counts(scheme) == expected
    # every group above unit level carries a title, except SOC90's (no shipped source names them)
    for unit in scheme.units:
        for group in scheme.hierarchy(unit):
            assert bool(group.title) == (name != "soc90" or group.level == "unit"), group


@pytest.mark.parametrize("name", SCHEMES)
def test_units_are_clean(name: str) -> None:
    scheme = load_scheme(name)
    assert MISSING_CODE not in scheme
    assert list(scheme.units) == sorted(scheme.units)
    for code, title in scheme.units.items():
        assert code.isdigit() and title == title.strip() and title
        assert "ILR specification" not in title and "Description" not in title
        assert not title.isupper(), title
        assert scheme.title(code) == title and code in scheme


def test_soc2000_seed_quirks() -> None:
    soc = load_scheme("soc2000")
    assert soc.units["4122"] == "Accounts and wages clerks, book-keepers, other financial clerks"
    assert soc.title("4") == "Administrative and Secretarial Occupations"  # majors from the seed
    assert [soc.title(str(d)) for d in range(1, 10)] == [soc.major(f"{d}1").title for d in range(1, 10)]


def test_soc2000_seed_and_hierarchy_agree_on_units() -> None:
    with data_path("soc2000_hierarchy.csv").open(encoding="utf-8") as f:
        hier = {r["code"]: r for r in csv.DictReader(f)}
    soc = load_scheme("soc2000")
    assert set(soc.units) == {c for c, r in hier.items() if r["level"] == "unit"}
    for unit in soc.units:  # and the hierarchy's parent chain matches the digit-derived one
        assert hier[unit]["parent"] == unit[:3] and hier[unit[:3]]["parent"] == unit[:2]


def test_soc2000_hierarchy() -> None:
    soc = load_scheme("soc2000")
    assert soc.hierarchy("4112") == [
        Group("4", "Administrative and Secretarial Occupations", "major"),
        Group("41", "Administrative occupations", "sub_major"),
        Group("411", "Administrative occupations: government and related organisations", "minor"),
        Group("4112", "Civil service administrative officers and assistants", "unit"),
    ]
    assert soc.hierarchy("9999") == [] and soc.hierarchy("411") == []
    assert soc.major("4112") == soc.major("41") == Group("4", soc.title("4"), "major")
    assert soc.major("nope") is None and soc.title("nope") is None
    assert soc.level_code("4112", "minor") == "411"


def test_soc90_codebook() -> None:
    soc90 = load_scheme("soc90")
    assert "929" in soc90 and "925" not in soc90  # the label's "925" is a typo, not a code
    assert re.search(r"building", soc90.units["929"], re.I) and "labourers" in soc90.units["929"]
    assert soc90.labels["929"] == "other building etc labourers"
    assert soc90.labels["100"] == "gen managers - national government"
    assert soc90.units["151"] == "Officers in non-UK armed forces"  # the one unit without ONS wording
    assert any(note.startswith("929:") for note in soc90.source_notes)
    counts = soc90_codebook_counts()
    assert counts["-9"] == 8700 and len(counts) == 372 and set(counts) - {"-9"} == set(soc90.units)
    counts["-9"] = 0  # the cached table must not change under the caller
    assert soc90_codebook_counts()["-9"] == 8700


def test_soc90_levels() -> None:
    soc90 = load_scheme("soc90")
    assert soc90.levels == ("major", "minor", "unit")
    assert soc90.level_code("929", "major") == "9" and soc90.level_code("929", "minor") == "92"
    assert [g.code for g in soc90.hierarchy("929")] == ["9", "92", "929"]
    with pytest.raises(ValueError, match="sub_major"):
        soc90.level_code("929", "sub_major")


def test_sentence_case_of_capitalised_titles() -> None:
    assert load_scheme("soc2020").title("1") == "Managers, directors and senior officials"
    assert load_scheme("soc2010").title("21") == "Science, research, engineering and technology professionals"
    assert load_scheme("soc2020").title("111") == "Chief Executives and Senior Officials"  # kept as published


@pytest.mark.parametrize("name", SCHEMES)
def test_every_index_code_is_in_its_scheme(name: str, index: pd.DataFrame) -> None:
    codes = set(index[INDEX_COLUMNS[name]]) - {"}}}", "}}}}"}
    scheme = load_scheme(name)
    assert codes and not codes - set(scheme.units)
    assert MISSING_CODE not in codes


def test_index_titles_do_not_override_soc2000_seed(index: pd.DataFrame) -> None:
    driver = index[(index["SOC_2000"] == "8212") & (index["SOC2000_unit_group_title"] != "Van drivers")]
    assert not driver.empty  # the known bad row is still there ...
    assert load_scheme("soc2000").units["8212"] == "Van drivers"  # ... and did not leak in


@pytest.mark.parametrize("alias, name", [
    ("SOC2000", "soc2000"), ("soc-2000", "soc2000"), ("Soc 90", "soc90"), ("isco-08", "isco08"),
    ("ISCO_08", "isco08"), ("soc2020", "soc2020"), ("SOC-2010", "soc2010"),
])
def test_load_scheme_aliases(alias: str, name: str) -> None:
    assert load_scheme(alias) is load_scheme(name)
    assert load_scheme(alias).name == name


@pytest.mark.parametrize("bad", ["soc2030", "", "isco88"])
def test_unknown_scheme(bad: str) -> None:
    with pytest.raises(UnknownSchemeError) as err:
        load_scheme(bad)
    assert all(name in str(err.value) for name in SCHEMES)
    assert isinstance(err.value, ValueError)


def test_scheme_is_read_only() -> None:
    soc = load_scheme("soc2000")
    with pytest.raises(AttributeError):
        soc.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        soc.units["1111"] = "x"  # type: ignore[index]
    assert not isinstance(DataError("x"), ValueError)  # data faults are not user-input faults
