"""Candidate stages, one module each, run in the order of `STAGES`.

Adding a signal: write a module with a class following `coder.stages.base.Stage` (``name``,
``FEATURES``, ``fit``, ``propose``, ``features``) and add it to `STAGES`. The generator, the
training frame, the ranker's columns (`coder.candidates.FEATURES`), the reported methods and
the model fingerprint all follow this list. Order matters twice: a stage sees the best title
score of the stages before it (fuzzy matching skips titles already found), and on equal
scores the earlier stage is reported as the method.
"""

from __future__ import annotations

from .base import Pairs, Proposals, Queries, Stage, TopK, top_k_above, top_k_dense, top_k_sparse
from .classifier import ClassifierStage
from .description import DescriptionStage
from .exact import ExactStage
from .fuzzy import FuzzyStage
from .learned import LearnedStage
from .semantic import SemanticStage
from .tfidf import TfidfStage
from .wordcode import WordCodeStage

__all__ = ["STAGES", "Stage", "Queries", "Proposals", "Pairs", "TopK", "top_k_above", "top_k_dense", "top_k_sparse"]

STAGES: tuple[type[Stage], ...] = (
    ExactStage,
    TfidfStage,
    FuzzyStage,
    ClassifierStage,
    WordCodeStage,
    DescriptionStage,
    SemanticStage,
    LearnedStage,
)
