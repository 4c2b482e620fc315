"""coder: code free-text job titles to UK SOC2000 (and SOC90, SOC2010, SOC2020, ISCO-08).

>>> from coder import Coder                      # doctest: +SKIP
>>> Coder.load("soc2000").code("snr software dev").code   # doctest: +SKIP
'2132'

Names are imported on first use, so ``import coder`` (and ``coder --help``) stays fast:
NumPy and SciPy take a quarter of a second; scikit-learn and pandas (building, evaluating,
files) most of a second more.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import CoderError, DataError, InputError, ModelError, UnknownSchemeError
from .schemes import MISSING_CODE, SCHEMES, load_scheme

__version__ = "0.1.0"

_LAZY = {
    "Coder": "engine", "Result": "results", "Candidate": "results", "code_frame": "batch.frame",
    "build_model": "build", "load_model": "store", "save_model": "store", "read_answer": "answer", "Crosswalk": "crosswalk", "normalise": "normalise",
    "derive": "derivation",
}

__all__ = [
    "Coder", "Result", "Candidate", "code_frame", "Crosswalk", "derive",
    "CoderError", "DataError", "InputError", "ModelError", "UnknownSchemeError",
    "build_model", "load_model", "save_model", "load_scheme", "normalise", "read_answer",
    "SCHEMES", "MISSING_CODE", "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from .batch.frame import code_frame
    from .engine import Coder
    from .answer import read_answer
    from .build import build_model
    from .crosswalk import Crosswalk
    from .derivation import derive
    from .store import load_model, save_model
    from .normalise import normalise
    from .results import Candidate, Result


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coder' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
