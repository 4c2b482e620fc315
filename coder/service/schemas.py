"""Request and response shapes of the HTTP API (pydantic), and the Result -> JSON mapping.

The endpoints build plain dicts with `coding_json` and return them as `JSONResponse`, so
FastAPI does not re-validate every response; the models here describe those dicts for the
OpenAPI document and validate requests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..results import Result
from ..schemes import MISSING_CODE, Scheme

__all__ = [
    "MAX_TEXT_CHARS", "MAX_K", "MAX_ITEMS", "coding_json",
    "MajorGroup", "CandidateOut", "Coding", "CodeItem", "CodeRequest", "CodeResponse",
    "GroupOut", "CodeInfo", "SchemeInfo", "SchemesOut", "HealthOut", "FieldError", "ErrorOut",
]

MAX_TEXT_CHARS = 200  # a job title or industry longer than this is not an answer to code
MAX_K = 20
MAX_ITEMS = 1000

Status = Literal["auto", "refer", "uncodable"]


class MajorGroup(BaseModel):
    code: str = Field(examples=["3"])
    title: str = Field(examples=["Associate professional and technical occupations"])


class CandidateOut(BaseModel):
    code: str = Field(examples=["3211"])
    title: str = Field(description="Official title of the unit group.", examples=["Nurses"])
    major_group: MajorGroup | None = None
    confidence: float = Field(ge=0, le=1, description="Calibrated probability that this code is right.")
    method: str = Field(description="Stage whose match explains the candidate: exact, fuzzy, tfidf "
                                    "or classifier.", examples=["exact"])
    matched_entry: str = Field(description="The coding-index entry behind the candidate.",
                               examples=["Nurse"])


class Coding(BaseModel):
    """The coding of one title, candidates best first."""

    text: str = Field(description="The title as sent.")
    industry: str | None = None
    scheme: str = Field(examples=["soc2000"])
    status: Status = Field(description="auto: safe to code automatically; refer: a person should "
                                       "choose; uncodable: not a codable answer (see reason).")
    reason: str = Field("", description="Why the title was not auto-coded.")
    normalised: str = ""
    code: str = Field(description=f"Best code, or {MISSING_CODE!r} when uncodable.", examples=["3211"])
    candidates: list[CandidateOut] = []


class CodeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(max_length=MAX_TEXT_CHARS,
                              description="Job title; null or blank comes back uncodable.")
    industry: str | None = Field(None, max_length=MAX_TEXT_CHARS,
                                 description="Employer or industry, if known.")


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "items": [{"title": "snr software dev"}, {"title": "Store Mgr", "industry": "supermarket"}],
        "k": 3, "scheme": "soc2000"}]})

    items: list[CodeItem] = Field(min_length=1, max_length=MAX_ITEMS)
    k: int = Field(5, ge=1, le=MAX_K, description="Candidates per title.")
    scheme: str | None = Field(None, description="Classification; the service's default if omitted.")


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


def _major(scheme: Scheme, code: str, cache: dict[str, dict | None]) -> dict | None:
    if code not in cache:
        group = scheme.major(code)
        cache[code] = {"code": group.code, "title": group.title} if group else None
    return cache[code]


def coding_json(result: Result, scheme: Scheme, majors: dict[str, dict | None]) -> dict:
    """`Result` as the JSON the API returns (the shape of `Coding`).

    ``majors`` caches major groups per code across calls (a dict the caller keeps).
    """
    return {
        "text": result.text,
        "industry": result.industry,
        "scheme": result.scheme,
        "status": result.status,
        "reason": result.reason,
        "normalised": result.normalised,
        "code": result.code,
        "candidates": [
            {"code": c.code, "title": c.title, "major_group": _major(scheme, c.code, majors),
             "confidence": c.confidence, "method": c.method, "matched_entry": c.matched_entry}
            for c in result.candidates
        ],
    }
