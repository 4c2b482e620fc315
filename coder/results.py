"""Small frozen result types, returned best first."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .schemes import MISSING_CODE

__all__ = ["Candidate", "Result", "STATUSES"]

STATUSES = ("auto", "refer", "uncodable")


@dataclass(frozen=True)
class Candidate:
    """One possible code for a title.

    ``confidence`` is a calibrated probability that this code is right; ``method`` names the
    stage whose match explains it (exact, fuzzy, tfidf, or classifier when only the linear
    model proposed it); ``matched_entry`` is that coding-index entry as a coder would quote it.
    """

    code: str
    title: str
    confidence: float
    method: str
    matched_entry: str


@dataclass(frozen=True)
class Result:
    """The coding of one answer: a status, a reason when not auto-coded, and candidates.

    ``text``, ``industry`` and ``description`` are the answer as given (None where absent);
    ``normalised`` the occupation words that were matched and ``context`` the industry
    context read from the answer (the industry, bracketed words, an employer or place).
    ``reason`` is a `coder.errors.Reason` (a string: its value is the text people read).
    """

    text: str
    industry: str | None
    scheme: str
    status: str
    candidates: tuple[Candidate, ...] = ()
    reason: str = ""
    normalised: str = ""
    context: str = field(default="", repr=False)
    description: str | None = None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def code(self) -> str:
        """Best code, or the missing code (-9) when the title is uncodable."""
        return self.candidates[0].code if self.candidates and self.status != "uncodable" else MISSING_CODE

    @property
    def title(self) -> str:
        return self.candidates[0].title if self.candidates and self.status != "uncodable" else ""

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence if self.candidates and self.status != "uncodable" else 0.0

    @property
    def method(self) -> str:
        return self.candidates[0].method if self.candidates and self.status != "uncodable" else ""

    @property
    def matched_entry(self) -> str:
        return self.candidates[0].matched_entry if self.candidates and self.status != "uncodable" else ""

    def to_dict(self) -> dict:
        """JSON-ready dict: the fields plus the best candidate's code, title and confidence."""
        out = asdict(self)
        out.update(code=self.code, title=self.title, confidence=self.confidence, reason=str(self.reason))
        return out
