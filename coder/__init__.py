"""coder: code free-text job titles to UK SOC2000 (and SOC90, SOC2010, SOC2020, ISCO-08).

>>> from coder import Coder                      # doctest: +SKIP
>>> Coder.load("soc2000").code("snr software dev").code   # doctest: +SKIP
'2132'
"""

from .batch.frame import code_frame
from .engine import Coder
from .errors import CoderError, DataError, InputError, ModelError, UnknownSchemeError
from .model import build_model, load_model, save_model
from .normalise import normalise
from .results import Candidate, Result
from .schemes import MISSING_CODE, SCHEMES, load_scheme

__all__ = [
    "Coder", "Result", "Candidate", "code_frame",
    "CoderError", "DataError", "InputError", "ModelError", "UnknownSchemeError",
    "build_model", "load_model", "save_model", "load_scheme", "normalise",
    "SCHEMES", "MISSING_CODE", "__version__",
]
__version__ = "0.1.0"
