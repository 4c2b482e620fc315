"""Small frozen result types, returned best first."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .schemes import MISSING_CODE

__all__ = ["Candidate", "Decided", "Result", "STATUSES"]

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
class Decided:
    """What coders decided for one answer (as read): the majority code, how many decisions
    gave it out of how many, and the provenance of the latest of them."""

    code: str
    votes: int
    total: int
    who: str = ""
    when: str = ""
    source: str = ""

    @property
    def share(self) -> float:
        return self.votes / self.total if self.total else 0.0

    def describe(self) -> str:
        """How the decision is quoted in place of an index entry."""
        who = f" by {self.who}" if self.who else ""
        when = f" on {self.when[:10]}" if self.when else ""
        votes = f"; {self.votes} of {self.total} decisions" if self.total > 1 else ""
        return f"decided{who}{when} ({self.source or 'decision'}{votes})"


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

    def in_scheme(self, scheme: str) -> "Result":
        """This coding in another classification, from the matched index entries (`coder.derive`):
        no second model, no second pass."""
        from .derivation import derive

        return derive(self, scheme)

    def to_dict(self) -> dict:
        """JSON-ready dict: the fields plus the best candidate's code, title and confidence."""
        out = asdict(self)
        out.update(code=self.code, title=self.title, confidence=self.confidence, reason=str(self.reason))
        return out
