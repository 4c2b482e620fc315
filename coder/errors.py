"""One error family. Messages say what was wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "CoderError",
    "UnknownSchemeError",
    "InputError",
    "ModelError",
    "DataError",
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
