"""Request and response shapes of the HTTP API (pydantic), and the Result -> JSON mapping.

The endpoints build plain dicts with `coding_json` and return them as `JSONResponse`, so
FastAPI does not re-validate every response; the models here describe those dicts for the
OpenAPI document and validate requests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..candidates import METHODS
from ..derivation import candidate_codes
from ..results import Result
from ..schemes import MISSING_CODE, SCHEMES, Scheme

__all__ = [
    "MAX_TEXT_CHARS", "MAX_INDUSTRY_CHARS", "MAX_DESCRIPTION_CHARS", "MAX_K", "MAX_ITEMS", "HAS_TEXT",
    "SCHEME_DOC", "SCHEME_OR_DEFAULT", "has_text", "coding_json",
    "MajorGroup", "CandidateOut", "Coding", "CodeItem", "CodeRequest", "CodeResponse",
    "GroupOut", "CodeInfo", "SchemeInfo", "SchemesOut", "HealthOut", "FieldError", "ErrorOut",
    "FollowUpOut", "DecisionIn", "DecisionOut", "StandingOut", "DecisionResponse", "DecisionsOut", "ForgetOut",
    "CodeMatch", "CodeSearchOut", "ProgressOut", "QueueOut", "QueuesOut", "ClerkIn", "NextIn", "SettleIn",
    "ItemOut", "NextOut", "SettleOut", "MAX_WHO_CHARS", "SESSION_PATTERN",
]

# Longer text is not an answer to code. Real survey answers run to ~90 characters for a
# title, ~270 for an industry and ~500 for "what do you mainly do".
MAX_TEXT_CHARS = 200  # job title
MAX_INDUSTRY_CHARS = 500
MAX_DESCRIPTION_CHARS = 1000
MAX_K = 20
MAX_ITEMS = 1000
MAX_WHO_CHARS = 100
SESSION_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"

# Text is blank when it has no character outside this class: Python's whitespace
# (str.isspace) and the byte-order mark, written out so that the pattern in the OpenAPI
# document and the server's own check are the same test in any regex dialect.
_BLANK = r"\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
HAS_TEXT = f"[^{_BLANK}]"
_HAS_TEXT = re.compile(HAS_TEXT)

# Documented scheme values: the canonical names (aliases such as "SOC-2000" are accepted too,
# but not advertised). Documentation only: the server validates names itself.
SCHEME_DOC = "Classification: " + ", ".join(SCHEMES) + " (case, spaces and hyphens ignored)"
SCHEME_OR_DEFAULT = {"anyOf": [{"type": "string", "enum": list(SCHEMES)}, {"type": "null"}]}


def has_text(text: str) -> bool:
    """Whether ``text`` has a character that is not blank (see `HAS_TEXT`)."""
    return _HAS_TEXT.search(text) is not None


Status = Literal["auto", "refer", "uncodable"]


class MajorGroup(BaseModel):
    code: str = Field(examples=["3"])
    title: str = Field(examples=["Associate professional and technical occupations"])


class CandidateOut(BaseModel):
    code: str = Field(examples=["3211"])
    title: str = Field(description="Official title of the unit group.", examples=["Nurses"])
    major_group: MajorGroup | None = None
    confidence: float = Field(ge=0, le=1, description="Calibrated probability that this code is right.")
    method: str = Field(description="Stage whose match explains the candidate: "
                                    f"{', '.join(METHODS[:-1])} or {METHODS[-1]}.", examples=["exact"])
    matched_entry: str = Field(description="The coding-index entry behind the candidate.",
                               examples=["Nurse"])
    in_schemes: dict[str, str] = Field(
        {}, description="With `also`: this candidate's most likely code in each further scheme "
                        "(its matched entry's code, or the crosswalk's likeliest).",
        examples=[{"soc2020": "2237", "isco08": "2221"}])


class FollowUpOptionOut(BaseModel):
    code: str = Field(examples=["1221"])
    title: str = Field(examples=["Hotel and accommodation managers"])
    qualifiers: list[str] = Field(description="Qualifiers of this code's index entries with the shared "
                                              "title, the matched one first.", examples=[["hotel", "hostel"]])


class FollowUpOut(BaseModel):
    """What would decide between candidates whose index entries differ only by a qualifier."""

    field: Literal["industry", "description"] = Field(
        description="The part of the answer that would settle it: the industry, or what they mainly do.")
    question: str = Field(examples=["Which industry or employer?"])
    missing: bool = Field(description="The answer did not give this part.")
    entry: str = Field(description="The index title the candidates share.", examples=["Manager"])
    options: list[FollowUpOptionOut]


class DerivedOut(BaseModel):
    """One answer's coding in a further scheme, derived from the same coding (`coder.derive`)."""

    code: str = Field(description=f"Best code, or {MISSING_CODE!r} when uncodable.", examples=["2237"])
    title: str = ""
    confidence: float
    status: Status
    reason: str = ""


class Coding(BaseModel):
    """The coding of one title, candidates best first."""

    text: str = Field(description="The title as sent.")
    industry: str | None = Field(None, description="The industry as sent; null when absent or "
                                                   "saying nothing (blank, \"n/a\", \"same\").")
    description: str | None = Field(None, description="What the person mainly does, as sent; null "
                                                      "when absent or saying nothing.")
    scheme: str = Field(examples=["soc2000"])
    status: Status = Field(description="auto: safe to code automatically; refer: a person should "
                                       "choose; uncodable: not a codable answer (see reason).")
    reason: str = Field("", description="Why the title was not auto-coded.")
    normalised: str = ""
    code: str = Field(description=f"Best code, or {MISSING_CODE!r} when uncodable.", examples=["3211"])
    candidates: list[CandidateOut] = []
    follow_up: list[FollowUpOut] = Field(
        [], description="For referred answers whose candidates differ only by what the answer did not "
                        "say: what would decide (which industry, what they mainly do) and which code each "
                        "choice gives.")
    derived: dict[str, DerivedOut] = Field(
        {}, description="The same coding in each scheme asked for with `also` (POST /code), derived "
                        "through the matched index entries: no second model, no second pass.")


class CodeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(max_length=MAX_TEXT_CHARS,
                              description="Job title; null or blank comes back uncodable.")
    industry: str | None = Field(None, max_length=MAX_INDUSTRY_CHARS,
                                 description="Employer or industry, if known; null or blank: absent.")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS,
                                    description="What the person mainly does in the job, if known; "
                                                "null or blank: absent.")


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "items": [{"title": "snr software dev"}, {"title": "Store Mgr", "industry": "supermarket"},
                  {"title": "Sales assistant", "industry": "supermarket",
                   "description": "fills shelves and takes out dated stock"}],
        "k": 3, "scheme": "soc2000"}]})

    items: list[CodeItem] = Field(min_length=1, max_length=MAX_ITEMS)
    k: int = Field(5, ge=1, le=MAX_K, description="Candidates per title.")
    scheme: str | None = Field(None, description=SCHEME_DOC + "; the service's default if omitted.",
                               json_schema_extra=SCHEME_OR_DEFAULT)
    also: list[Literal[SCHEMES]] = Field(  # type: ignore[valid-type]
        [], max_length=len(SCHEMES),
        description="Further schemes to give each answer in (field `derived` of each result), derived "
                    "from the one coding in `scheme`.")


class CodeResponse(BaseModel):
    scheme: str
    k: int
    count: int
    summary: dict[str, int] = Field(description="How many results have each status.")
    results: list[Coding]


class GroupOut(BaseModel):
    code: str
    title: str
    level: str = Field(examples=["unit"])


class CodeInfo(BaseModel):
    scheme: str
    code: str
    title: str
    level: str
    is_unit: bool
    hierarchy: list[GroupOut] = Field(description="Groups from the major group down to this code.")


class SchemeInfo(BaseModel):
    name: str
    default: bool
    loaded: bool
    state: Literal["loaded", "loading", "building", "available", "not_built", "failed"] = Field(
        description="loaded: in memory; available: built on disk, loaded on first request (a few "
                    "seconds); not_built: requests get 503 unless the service builds on demand; "
                    "loading/building: in progress; failed: the last attempt failed (see detail).")
    detail: str = ""
    units: int = Field(description="Number of unit groups.")
    levels: list[str]
    threshold: float | None = Field(None, description="Auto-coding threshold, when loaded.")


class SchemesOut(BaseModel):
    default: str
    schemes: list[SchemeInfo]


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    default_scheme: str
    loaded: list[str]
    uptime_seconds: float


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    error: str = Field(description="Machine-readable kind, e.g. invalid_request, unknown_scheme.",
                       examples=["invalid_request"])
    detail: str = Field(description="One sentence saying what was wrong and what to do.")
    errors: list[FieldError] | None = Field(None, description="Per-field problems (validation errors).")


# ------------------------------------------------------------------ decisions and queues
_TITLE_FIELD = dict(min_length=1, max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": HAS_TEXT})


def _who():
    return Field("", max_length=MAX_WHO_CHARS, description="Who decided (a clerk's name or initials).",
                 examples=["ann"])


class DecisionIn(BaseModel):
    """One answer and the code a person chose for it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "title": "sparky", "industry": "building site", "code": "5241", "who": "ann"}]})

    title: str = Field(description="The job title as the respondent wrote it (not blank).", **_TITLE_FIELD)
    industry: str | None = Field(None, max_length=MAX_INDUSTRY_CHARS, description="Industry, if given.")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS,
                                    description="What they mainly do, if given.")
    code: str = Field(description="A unit group of the scheme.", examples=["5241"],
                      json_schema_extra={"pattern": "^[0-9]{3,4}$"})
    scheme: str | None = Field(None, description=SCHEME_DOC + "; the service's default if omitted.",
                               json_schema_extra=SCHEME_OR_DEFAULT)
    who: str = _who()
    source: Literal["clerical", "override"] = Field(
        "clerical", description="clerical: one vote among coders' decisions (the majority decides); "
                                "override: settles the answer on its own, whatever others decided.")


class DecisionOut(BaseModel):
    id: int
    scheme: str
    title: str
    industry: str | None
    description: str | None
    key: list[str] = Field(description="The answer as the coder reads it: title, industry, description.")
    code: str
    who: str
    when: str = Field(description="UTC, ISO 8601.", examples=["2025-01-31T12:00:00Z"])
    source: Literal["clerical", "imported", "override"]
    origin: str = Field("", description="The file an imported decision came from.")


class StandingOut(BaseModel):
    """The decision that stands for the answer now, over every decision made on it."""

    code: str
    votes: int = Field(description="Decisions that gave this code.")
    total: int = Field(description="Decisions made on this answer.")
    share: float = Field(ge=0, le=1)
    majority: bool = Field(description="More than half of the decisions gave this code (or an override did).")


class DecisionResponse(BaseModel):
    decision: DecisionOut
    standing: StandingOut
    coding: Coding = Field(description="The answer coded again, with the decision applied.")


class DecisionsOut(BaseModel):
    count: int = Field(description="Decisions of this scheme in the store.")
    decisions: list[DecisionOut] = Field(description="Newest first.")


class ForgetOut(BaseModel):
    forgotten: list[DecisionOut]


class CodeMatch(BaseModel):
    code: str = Field(examples=["5241"])
    title: str
    major_group: MajorGroup | None = None
    entries: list[str] = Field(description="Index entries of this code that match the words.")


class CodeSearchOut(BaseModel):
    scheme: str
    q: str
    results: list[CodeMatch]


class ProgressOut(BaseModel):
    items: int = Field(description="Distinct answers in the queue.")
    open: int = Field(description="Answers not decided yet.")
    decided: int
    uncodable: int = Field(description="Answers marked uncodable.")
    leased: int = Field(description="Open answers other clerks are coding now.")
    rows: int = Field(description="Rows of the file the answers stand for.")
    rows_done: int


class QueueOut(BaseModel):
    id: str
    name: str = Field(description="The file's name.")
    scheme: str
    kind: Literal["refer", "coded"] = Field(description="refer: a referral file (coder code --refer); "
                                                        "coded: a coded file's refer rows.")
    title_column: str
    industry_column: str | None
    description_column: str | None
    rows: int = Field(description="Rows in the file.")
    created: str
    progress: ProgressOut


class QueuesOut(BaseModel):
    queues: list[QueueOut]


class ClerkIn(BaseModel):
    """Who is working: a name for the record and a session id (one per open page) for leases."""

    model_config = ConfigDict(extra="forbid")

    who: str = _who()
    session: str = Field(description="The page's own random id; leases belong to it.",
                         json_schema_extra={"pattern": SESSION_PATTERN}, min_length=8, max_length=64,
                         examples=["3f9c2a7be1d04c55"])


class NextIn(ClerkIn):
    skip: list[int] = Field([], max_length=10_000, description="Items this clerk skipped: offered last.")
    item: int | None = Field(None, description="Ask for this item (if it is free).")


class SettleIn(ClerkIn):
    code: str | None = Field(None, description="The chosen unit group; null with uncodable.",
                             json_schema_extra={"pattern": "^[0-9]{3,4}$"}, examples=["5241"])
    uncodable: bool = Field(False, description="Mark the answer uncodable instead of choosing a code.")


class ItemOut(BaseModel):
    item: int = Field(description="Number of the answer in the queue, from 1.")
    rows: int = Field(description="Rows of the file with this answer.")
    first_row: int = Field(description="Its first row (the input file's row for a referral file).")
    title: str
    industry: str | None
    description: str | None
    state: Literal["open", "decided", "uncodable"]
    code: str | None
    decision_id: int | None
    who: str | None = Field(description="Who decided it.")
    at: str | None
    lease_who: str | None = Field(description="Who is coding it now.")
    lease_until: str | None = Field(description="Until when (UTC) the lease holds.")
    coding: Coding | None = Field(None, description="The answer coded now (decisions so far applied).")


class NextOut(BaseModel):
    queue: QueueOut
    item: ItemOut | None = Field(description="The answer leased to this session; null when none is free.")


class SettleOut(BaseModel):
    queue: QueueOut
    item: ItemOut
    decision: DecisionOut | None = None


def _major(scheme: Scheme, code: str, cache: dict[str, dict | None]) -> dict | None:
    if code not in cache:
        group = scheme.major(code)
        cache[code] = {"code": group.code, "title": group.title} if group else None
    return cache[code]


def coding_json(result: Result, scheme: Scheme, majors: dict[str, dict | None], *,
                follow: bool | None = None, also: Sequence[str] = ()) -> dict:
    """`Result` as the JSON the API returns (the shape of `Coding`).

    ``majors`` caches major groups per code across calls (a dict the caller keeps).
    ``follow``: add the follow-up prompts (`coder.decisions.follow_up`); by default for
    referred answers only. ``also``: schemes to derive the result in (`Result.in_scheme`).
    """
    prompts = []
    if (result.status == "refer" if follow is None else follow) and len(result.candidates) > 1:
        from ..decisions import follow_up

        prompts = [f.to_dict() for f in follow_up(result)]
    others = [other for other in also if other != result.scheme]
    out = {
        "text": result.text,
        "industry": result.industry,
        "description": result.description,
        "scheme": result.scheme,
        "status": result.status,
        "reason": str(result.reason),
        "normalised": result.normalised,
        "code": result.code,
        "candidates": [
            {"code": c.code, "title": c.title, "major_group": _major(scheme, c.code, majors),
             "confidence": c.confidence, "method": c.method, "matched_entry": c.matched_entry}
            | ({"in_schemes": candidate_codes(result.scheme, c, others)} if others else {})
            for c in result.candidates
        ],
        "follow_up": prompts,
    }
    if also:  # only when asked for: clients that do not ask see the shape they always saw
        out["derived"] = {other: _derived_json(result.in_scheme(other)) for other in others}
    return out


def _derived_json(result: Result) -> dict:
    return {"code": result.code, "title": result.title, "confidence": result.confidence,
            "status": result.status, "reason": str(result.reason)}
