"""The occupational classifications, parsed from the data files shipped in ``data/``.

Each scheme is read on first use and cached; importing this module reads nothing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Iterable, Mapping

from ._paths import data_path
from .errors import DataError, UnknownSchemeError

__all__ = [
    "SCHEMES", "MISSING_CODE", "LEVELS", "Group", "Scheme", "load_scheme", "soc90_codebook_counts",
]

SCHEMES: tuple[str, ...] = ("soc2000", "soc90", "soc2010", "soc2020", "isco08")
MISSING_CODE = "-9"
LEVELS: tuple[str, ...] = ("major", "sub_major", "minor", "unit")

# Code length of each level. SOC90 minor groups are 2-digit; its sub-major groups are
# lettered (1a, 1b, ...) and cannot be derived from a unit code, so the level is left out.
_DIGITS = {"major": 1, "sub_major": 2, "minor": 3, "unit": 4}
_SOC90_DIGITS = {"major": 1, "minor": 2, "unit": 3}


@dataclass(frozen=True)
class Group:
    """One node of a classification hierarchy.

    ``level`` is one of ``LEVELS``; ``title`` is ``""`` when no shipped source names the group.
    """

    code: str
    title: str
    level: str


class Scheme:
    """One classification: its unit groups and the hierarchy above them. Read-only.

    Attributes
    ----------
    name : str
        Canonical scheme name (one of ``SCHEMES``).
    levels : tuple of str
        Levels the scheme has, top down (SOC90 has no derivable sub-major level).
    units : Mapping[str, str]
        Unit-group code -> official title, ordered by code.
    labels : Mapping[str, str]
        Secondary short labels per unit code. SOC90: the survey codebook's labels
        (e.g. ``"929" -> "other building etc labourers"``); empty for the other schemes.
    source_notes : tuple of str
        Where the data deviates from, or had to be repaired against, its source file.
    """

    name: str
    levels: tuple[str, ...]
    units: Mapping[str, str]
    labels: Mapping[str, str]
    source_notes: tuple[str, ...]

    def __init__(self, name: str, groups: Iterable[Group], labels: Mapping[str, str] | None = None,
                 source_notes: Iterable[str] = ()) -> None:
        digits = _SOC90_DIGITS if name == "soc90" else _DIGITS
        by_code = {g.code: g for g in groups}
        units = {c: g.title for c, g in sorted(by_code.items()) if g.level == "unit"}
        # Proxies, not dicts: a Scheme is cached and shared, so callers must not be able to edit it.
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "levels", tuple(digits))
        object.__setattr__(self, "units", MappingProxyType(units))
        object.__setattr__(self, "labels", MappingProxyType(dict(labels or {})))
        object.__setattr__(self, "source_notes", tuple(source_notes))
        object.__setattr__(self, "_groups", by_code)
        object.__setattr__(self, "_digits", digits)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Scheme {self.name!r} is read-only")

    def __contains__(self, code: object) -> bool:
        return code in self.units

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return f"Scheme({self.name!r}, {len(self)} unit groups)"

    def title(self, code: str) -> str | None:
        """Title of a code at any level, or None if the code is unknown or has no title."""
        group = self._groups.get(code)
        return (group.title or None) if group else None

    def level_code(self, code: str, level: str) -> str:
        """Code of ``level`` containing ``code``, by leading digits (``"4112"``, minor -> ``"411"``).

        Raises ValueError for a level the scheme lacks or a code too short for it.
        """
        n = self._digits.get(level)
        if n is None:
            raise ValueError(f"{self.name} has no level {level!r}; choose from {self.levels}")
        if len(code) < n:
            raise ValueError(f"code {code!r} is too short for {self.name} level {level!r}")
        return code[:n]

    def hierarchy(self, code: str) -> list[Group]:
        """Groups from major down to the unit group ``code``; ``[]`` if it is not a unit code."""
        if code not in self.units:
            return []
        return [self._group(self.level_code(code, lvl), lvl) for lvl in self.levels]

    def major(self, code: str) -> Group | None:
        """Major group containing ``code`` (a code at any level), or None if the code is unknown."""
        if code not in self._groups:
            return None
        return self._group(code[:1], "major")

    def _group(self, code: str, level: str) -> Group:
        return self._groups.get(code) or Group(code, "", level)


def _sentence_case(title: str) -> str:
    # SOC2010/2020 print major and sub-major titles in capitals; other titles are kept as published.
    title = title.strip()
    return title[:1] + title[1:].lower() if title.isupper() else title


def _rows(name: str) -> list[dict[str, str]]:
    with data_path(name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _soc2000() -> tuple[list[Group], dict[str, str], list[str]]:
    text = data_path("soc2000_unit_groups_seed.txt").read_text(encoding="utf-8")
    groups, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("ILR specification", "SOC\t", "SOC Major Group")):
            continue  # blanks and the page headers repeated through the annex
        code, _, title = (part.strip() for part in line.partition("\t"))
        if not re.fullmatch(r"\d{4}", code):
            pending = stripped  # a title that page layout pushed above its code line (4122)
            continue
        title, pending = title or pending, ""
        if not title:
            raise DataError(f"SOC2000 seed: no title for code {code}")
        # Major groups are written 1000..9000; no unit code ends in 000.
        groups.append(Group(code[0], title, "major") if code.endswith("000") else Group(code, title, "unit"))
    # Sub-major and minor titles are not in the seed; unit titles must stay the seed's.
    groups += [Group(r["code"].strip(), r["title"].strip(), r["level"]) for r in _rows("soc2000_hierarchy.csv")
               if r["level"] in ("sub_major", "minor")]
    return groups, {}, []


def _soc90_codebook() -> list[tuple[str, str, int]]:
    """Codebook rows ``| value | label | count |`` as (value, label as printed, count)."""
    rows = []
    for line in data_path("soc90_codebook_seed.txt").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"-?\d+", cells[0]):
            rows.append((cells[0], cells[1], int(cells[2])))
    if not rows:
        raise DataError("SOC90 codebook seed holds no value rows")
    return rows


def _soc90() -> tuple[list[Group], dict[str, str], list[str]]:
    ons = {r["soc90"].strip(): r["title"].strip() for r in _rows("soc90_unit_groups_ons.csv")}
    groups, labels, notes = [], {}, []
    for code, printed, _ in _soc90_codebook():
        if code == MISSING_CODE:
            continue
        number, label = re.fullmatch(r"(\d*)\s*(.*)", printed).groups()
        if number != code:  # the value is the code; the label's own number can be wrong (929 reads 925)
            notes.append(f"{code}: codebook label {printed!r} carries another number; code {code} kept")
        if code not in ons:
            notes.append(f"{code}: no ONS wording; title from the codebook label")
        labels[code] = label
        groups.append(Group(code, ons.get(code) or label[:1].upper() + label[1:], "unit"))
    return groups, labels, notes


def _soc2010() -> tuple[list[Group], dict[str, str], list[str]]:
    groups = []
    for r in _rows("soc2010_structure.csv"):
        level = next((lvl for lvl in LEVELS if r[lvl].strip()), None)
        if level is None:
            raise DataError(f"SOC2010 structure row without a code: {r}")
        groups.append(Group(r[level].strip(), _sentence_case(r["title"]), level))
    return groups, {}, []


def _soc2020() -> tuple[list[Group], dict[str, str], list[str]]:
    return [Group(r["code"].strip(), _sentence_case(r["title"]), r["level"].strip())
            for r in _rows("soc2020_framework.csv")], {}, []


def _isco08() -> tuple[list[Group], dict[str, str], list[str]]:
    groups = []
    with data_path("isco08_framework.csv").open(encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f):
            code = row[0].strip() if row else ""
            if code.isdigit() and 1 <= len(code) <= 4:  # skips the source/heading preamble
                groups.append(Group(code, _sentence_case(row[1]), LEVELS[len(code) - 1]))
    return groups, {}, []


_PARSERS = {"soc2000": _soc2000, "soc90": _soc90, "soc2010": _soc2010,
            "soc2020": _soc2020, "isco08": _isco08}


@lru_cache(maxsize=None)
def _load(name: str) -> Scheme:
    try:
        groups, labels, notes = _PARSERS[name]()
    except (KeyError, IndexError, ValueError) as exc:  # a column or cell missing: an edited file
        raise DataError(f"shipped data for {name} is malformed ({exc!r}); reinstall the package") from exc
    scheme = Scheme(name, groups, labels, notes)
    if not scheme.units:
        raise DataError(f"shipped data for {name} holds no unit groups; reinstall the package")
    return scheme


def load_scheme(name: str) -> Scheme:
    """Load a classification by name (cached).

    Case, spaces, hyphens and underscores are ignored: ``"SOC2000"``, ``"soc-2000"`` and
    ``"isco-08"`` all work. Raises UnknownSchemeError naming the valid choices.
    """
    key = re.sub(r"[\s_-]", "", str(name)).lower()
    if key not in _PARSERS:
        raise UnknownSchemeError(f"unknown classification scheme {name!r}; choose one of: {', '.join(SCHEMES)}")
    return _load(key)


@lru_cache(maxsize=None)
def _codebook_counts() -> tuple[tuple[str, int], ...]:
    return tuple((code, count) for code, _, count in _soc90_codebook())


def soc90_codebook_counts() -> dict[str, int]:
    """SOC90 example frequency table from the survey codebook: code -> count, incl. ``"-9"``."""
    return dict(_codebook_counts())  # a fresh dict, so callers cannot edit the cached table
