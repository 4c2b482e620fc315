"""What a model file holds: the fitted stages, ranker and thresholds of one scheme.

Kept apart from `coder.build` (which needs pandas and sklearn) so that loading a model
imports only NumPy, SciPy and this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .candidates import CandidateGenerator
from .rank import Ranker

__all__ = ["Model"]


@dataclass
class Model:
    """Everything `Coder` needs for one scheme."""

    scheme: str
    generator: CandidateGenerator
    ranker: Ranker
    threshold: float
    info: dict = field(default_factory=dict)
    # Auto-coding threshold per calibration group of the best candidate (`Candidates.groups`):
    # each reaches the target precision on its own kind of query, so any mix of them does.
    thresholds: dict = field(default_factory=dict)
