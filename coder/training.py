"""Training queries: what the ranker and the calibration learn from.

Three kinds, each with the truth the index or a coder gave it:

``unseen``  index entries held out of the fold's stages: the long tail of titles the index
            does not hold (natural-order title, ADD/IND qualifiers as industry).
``seen``    index entries the stages did see, drawn as often as their code occurs in a real
            survey (the shipped SOC90 codebook's frequencies, carried to the scheme through
            the index's dual coding), asked the way survey answers come: nearly always with an
            industry, often with what they mainly do, sometimes mistyped.
``answer``  real survey answers coded by two clerical coders (the learn part of the labelled
            set, `data/survey_answers_learn.csv`; the test part is never shipped).
``answer_title``  the same answers without their description: survey answers that come with
            a title and an industry only.
``vague``   a title the index calls too vague to code ("operative", "assistant") with a
            description that names the job ("fork lift truck driver"): the description
            decides. The job is drawn from the codes that have index titles ending in that
            word, by survey frequency.

Borrowed industries and descriptions come from entries and answers whose code lies in the
same minor group, so context looks like what goes with such a job; unit-group tasks
(SOC2020 Volume 1) fill in where no answer has the code.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._paths import data_path
from .answer import read_answer
from .augment import typo
from .index import IndexEntry
from .normalise import normalise
from .schemes import load_scheme, soc90_codebook_counts

__all__ = ["QueryMix", "Queries", "LabelledAnswers", "load_answers", "index_queries", "answer_queries", "decided",
           "vague_queries",
           "survey_weights", "ANSWERS_FILE"]

ANSWERS_FILE = "survey_answers_learn.csv"


@dataclass(frozen=True)
class QueryMix:
    """How training queries are made.

    ``typo``: share of index queries with one keyboard slip. ``add_context``: unseen entries
    without qualifiers that borrow an industry (so an industry is not the tell-tale sign of a
    qualified entry). ``seen_share``: seen queries per unseen one. ``seen_context`` /
    ``seen_description``: seen queries given an industry / a description. ``answer_weight``:
    weight of one real answer against one index query in the ranker and the calibration.
    """

    typo: float = 0.25
    add_context: float = 0.4
    seen_share: float = 0.5
    vague_share: float = 0.1
    seen_context: float = 0.9
    seen_description: float = 0.6
    answer_weight: float = 10.0


CLEAN = QueryMix(typo=0.0, add_context=0.0, seen_context=0.0, seen_description=0.0)


@dataclass
class Queries:
    """Normalised training queries with their truth (code strings) and kind."""

    titles: list[str] = field(default_factory=list)
    industries: list[str] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.titles)

    def extend(self, other: "Queries") -> "Queries":
        for name in ("titles", "industries", "descriptions", "truth", "kind"):
            getattr(self, name).extend(getattr(other, name))
        return self


@dataclass(frozen=True)
class LabelledAnswers:
    """Coded survey answers (raw text) with the code the coders agreed on (or the adjudicated
    one) and every code either coder gave."""

    titles: tuple[str, ...]
    industries: tuple[str, ...]
    descriptions: tuple[str, ...]
    codes: tuple[str, ...]
    accepted: tuple[frozenset, ...]
    scheme: str = "soc2000"

    def __len__(self) -> int:
        return len(self.titles)


def load_answers(path=None) -> LabelledAnswers:
    """Read a labelled-answers CSV (columns job_title, job_description, industry, soc2000 and
    optionally coder_a, coder_b); the shipped learn part by default."""
    path = data_path(ANSWERS_FILE) if path is None else path
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if (r.get("soc2000") or "").strip() not in ("", "-9")]
    return LabelledAnswers(
        titles=tuple(r["job_title"] for r in rows),
        industries=tuple(r.get("industry", "") for r in rows),
        descriptions=tuple(r.get("job_description", "") for r in rows),
        codes=tuple(r["soc2000"].strip() for r in rows),
        accepted=tuple(frozenset(c for c in (r["soc2000"], r.get("coder_a", ""), r.get("coder_b", ""))
                                 if c and c.strip() not in ("", "-9")) for r in rows),
    )


def survey_weights(entries: Sequence[IndexEntry], scheme: str) -> dict[str, float]:
    """How often each code of ``scheme`` occurs in a real survey: the SOC90 codebook counts,
    shared out over the scheme's codes in proportion to the index entries coded to both."""
    counts = {c: n for c, n in soc90_codebook_counts().items() if c != "-9"}
    pairs = Counter((e.code("soc90"), e.code(scheme)) for e in entries if e.code("soc90") and e.code(scheme))
    per_soc90 = Counter()
    for (s90, _), n in pairs.items():
        per_soc90[s90] += n
    out: dict[str, float] = defaultdict(float)
    for (s90, code), n in sorted(pairs.items()):
        out[code] += counts.get(s90, 0) * n / per_soc90[s90]
    return dict(out)


class _Context:
    """Pools of industries and descriptions by minor group and by code."""

    def __init__(self, entries: Sequence[IndexEntry], scheme: str, answers: LabelledAnswers | None):
        self.scheme = load_scheme(scheme)
        self.industries: dict[str, list[str]] = defaultdict(list)
        self.descriptions: dict[str, list[str]] = defaultdict(list)
        self.minor_descriptions: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            code = e.code(scheme)
            if code and e.ind:
                self.industries[self.minor(code)].append(e.ind)
        if answers is not None and answers.scheme == self.scheme.name:
            for ind, desc, code in zip(answers.industries, answers.descriptions, answers.codes):
                if code in self.scheme:
                    if ind.strip():
                        self.industries[self.minor(code)].append(ind)
                    if desc.strip():
                        self.descriptions[code].append(desc)
                        self.minor_descriptions[self.minor(code)].append(desc)
        self.tasks = _task_phrases(entries, scheme)

    def minor(self, code: str) -> str:
        return self.scheme.level_code(code, "minor")

    def industry(self, code: str, rng: random.Random) -> str:
        pool = self.industries.get(self.minor(code))
        return rng.choice(pool) if pool else ""

    def description(self, code: str, rng: random.Random) -> str:
        for pool in (self.descriptions.get(code), self.tasks.get(code), self.minor_descriptions.get(self.minor(code))):
            if pool:
                return rng.choice(pool)
        return ""


def _task_phrases(entries: Sequence[IndexEntry], scheme: str) -> dict[str, list[str]]:
    """Short task phrases per code of ``scheme`` from SOC2020 Volume 1 ("cleans rooms"), the
    way respondents say what they do: the first few words of each task."""
    by_2020: dict[str, list[str]] = {}
    with open(data_path("soc2020_volume1_descriptions.csv"), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["unit"]:
                tasks = [t.strip(" ~;\n") for t in row["tasks"].split("\n") if t.strip(" ~;\n")]
                by_2020[row["unit"]] = [" ".join(t.split()[:6]).rstrip(",;") for t in tasks]
    share = Counter((e.code(scheme), e.code("soc2020")) for e in entries if e.code(scheme) and e.code("soc2020"))
    out: dict[str, list[str]] = defaultdict(list)
    for (code, c2020), _ in sorted(share.items()):
        out[code].extend(by_2020.get(c2020, []))
    return dict(out)


def index_queries(entries: Sequence[IndexEntry], scheme: str, kind: str, mix: QueryMix, seed: int,
                  context: _Context) -> Queries:
    """Queries from index entries. Unseen ones keep their own qualifiers as industry (and
    sometimes borrow one); seen ones are asked like survey answers."""
    rng = random.Random(seed)
    out = Queries()
    for e in entries:
        code = e.code(scheme) or ""
        title = typo(e.natural, rng) if rng.random() < mix.typo else e.natural
        industry = f"{e.add} {e.ind}".strip()
        description = ""
        if kind == "unseen":
            if not industry and rng.random() < mix.add_context:
                industry = context.industry(code, rng)
        else:
            if not industry and rng.random() < mix.seen_context:
                industry = context.industry(code, rng)
            if rng.random() < mix.seen_description:
                description = context.description(code, rng)
        out.titles.append(normalise(title))
        out.industries.append(normalise(industry))
        out.descriptions.append(normalise(description))
        out.truth.append(code)
        out.kind.append(kind)
    return out


def answer_queries(answers: LabelledAnswers, rows: Sequence[int], *, description: bool = True) -> Queries:
    """Labelled answers as queries, read the way `Coder` reads them (kind ``answer``, or
    ``answer_title`` without the description)."""
    out = Queries()
    for i in rows:
        read = read_answer(answers.titles[i], answers.industries[i], answers.descriptions[i] if description else None)
        out.titles.append(read.title)
        out.industries.append(read.industry)
        out.descriptions.append(read.description)
        out.truth.append(answers.codes[i])
        out.kind.append("answer" if description else "answer_title")
    return out


def decided(answers: LabelledAnswers | None, rows: Sequence[int] | None = None) -> list[tuple[tuple[str, str, str], str]]:
    """Labelled answers (``rows`` of them, default all) as the learned stage's decisions:
    ((title, industry, description) as `Coder` reads them, code)."""
    if answers is None:
        return []
    out = []
    for i in range(len(answers)) if rows is None else rows:
        read = read_answer(answers.titles[i], answers.industries[i], answers.descriptions[i])
        out.append(((read.title, read.industry, read.description), answers.codes[i]))
    return out


def vague_queries(entries: Sequence[IndexEntry], candidates: np.ndarray, size: int, scheme: str,
                  weights: dict[str, float], rng: np.random.Generator, context: "_Context") -> Queries:
    """``size`` queries of a vague one-word index title and a description naming the job
    (another title of the true code, or one of its tasks)."""
    from .normalise import head_word

    vague = sorted({normalise(e.natural) for e in entries
                    if e.code(scheme) is None and not (e.add or e.ind) and len(normalise(e.natural).split()) == 1})
    vague_set = set(vague)
    by_head: dict[str, list[int]] = defaultdict(list)
    for i in candidates:
        e = entries[i]
        title = normalise(e.natural)
        head = head_word(title)
        if head in vague_set and title != head and not (e.add or e.ind) and e.code(scheme):
            by_head[head].append(int(i))
    heads = sorted(by_head)
    out = Queries()
    if size <= 0 or not heads:
        return out
    py = random.Random(int(rng.integers(2**31)))
    for _ in range(size):
        head = heads[int(rng.integers(len(heads)))]
        pool = by_head[head]
        w = np.array([max(weights.get(entries[i].code(scheme), 0.0), 1e-3) for i in pool])
        entry = entries[pool[int(rng.choice(len(pool), p=w / w.sum()))]]
        code = entry.code(scheme) or ""
        description = entry.natural if py.random() < 0.6 else (context.description(code, py) or entry.natural)
        out.titles.append(head)
        out.industries.append(normalise(context.industry(code, py)) if py.random() < 0.8 else "")
        out.descriptions.append(normalise(description))
        out.truth.append(code)
        out.kind.append("vague")
    return out


def seen_sample(entries: Sequence[IndexEntry], candidates: np.ndarray, size: int, scheme: str,
                weights: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """``size`` entries of ``candidates`` drawn as a survey would meet them: codes by survey
    frequency, and within a code unqualified default entries (the common titles) first."""
    if size <= 0 or len(candidates) == 0:
        return np.zeros(0, np.int64)
    codes = [entries[i].code(scheme) for i in candidates]
    per_code = Counter(codes)
    floor = max(min(weights.values(), default=1.0), 1e-3)
    w = np.array([
        max(weights.get(c, 0.0), floor) / per_code[c]
        * (3.0 if entries[i].default else 1.0) * (0.5 if (entries[i].add or entries[i].ind) else 1.0)
        for i, c in zip(candidates, codes)
    ])
    w /= w.sum()
    return rng.choice(candidates, size=min(size, len(candidates)), replace=False, p=w)
