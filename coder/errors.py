"""One error family. Messages say what was wrong and what to do about it."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CoderError",
    "UnknownSchemeError",
    "InputError",
    "ModelError",
    "DataError",
    "Reason",
]


class CoderError(Exception):
    """Base class for every error this package raises on purpose."""


class UnknownSchemeError(CoderError, ValueError):
    """A classification scheme name that the package does not know."""


class InputError(CoderError, ValueError):
    """Unusable user input: a missing column, an unreadable file, a clashing output column."""


class ModelError(CoderError):
    """A model file that is missing, stale, or does not match its manifest."""


class DataError(CoderError):
    """Shipped data that cannot be read (a broken install or an edited data file)."""


class Reason(str, Enum):
    """Why a result is not auto-coded. The value is the text people read; compare members,
    never the text."""

    NONE = ""
    MISSING = "missing value"
    EMPTY = "empty title"
    TOO_LONG = "title too long to be a job title"
    NOT_TEXT = "not text (control or binary characters)"
    NO_LETTERS = "no letters in the title"
    NO_OCCUPATION_WORDS = "no occupation words"
    ONLY_BRACKETS = "only bracketed text"
    NOT_A_JOB = "not a job title"
    NOT_OCCUPATION = "not an occupation (e.g. student, retired, homemaker)"
    NO_MATCH = "no similar title in the coding index"
    VAGUE = "title too vague to code without more detail (index: see notes)"
    LOW_CONFIDENCE = "confidence below the auto-coding threshold"
    CONFLICTING_DECISIONS = "coders decided this answer differently: no majority"
    DERIVED_SPLIT = "the matched index entries do not fix one code in this scheme"

    def __str__(self) -> str:
        return self.value
