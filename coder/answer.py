"""Reading a survey answer: which words name the occupation, and which are only context.

Respondents wrap a job title in words SOC does not code: lead-ins ("I'm a", "I work as"),
employment status ("retired", "ex-", "self-employed"), hours and contract ("part time",
"22 hrs", "nights", "agency"), and the employer or place ("for Tesco", "at the hospital",
"(NHS)"). `read_answer` keeps the occupation words as the title and moves the employer or
place into the industry context, so they can choose between index entries but never become
title words. Words that are part of an occupation ("trainee", "apprentice", "assistant",
"head of") are left alone.

Pure text functions only: no index, no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .normalise import fold, normalise

__all__ = ["Answer", "read_answer", "read_title", "NOT_OCCUPATIONS"]

# Lead-ins: "I am a", "I'm currently working as an", "My job title is", "Job: ".
_LEAD_IN = re.compile(
    r"^(?:(?:i am|i m|im|i was|i work(?:ed)?|i\'m|my (?:main )?(?:job|role|position|occupation|work)"
    r"(?: title)? (?:is|was)|job(?: title)?|occupation|position|role)\b[\s:,-]*)"
    r"(?:(?:currently|presently|now|still|employed|working|work|self[ -]?employed)\b\s*)*"
    r"(?:as\b\s*)?(?:an?\b\s*|the\b\s*)?"
)
# Employment status: recorded, never coded (SOC codes the job, not the contract). Some words
# are status only as a prefix: "former police officer" but "cable former", "agency nurse" but
# "travel agency clerk".
_STATUS_ANYWHERE = (
    r"retired|semi[ -]?retired|currently|presently|self[ -]?employed|selfemployed|sole trader|"
    r"freelancer?|part[ -]?time|full[ -]?time|p ?/ ?t|f ?/ ?t|temporary|casual|seasonal|permanent|"
    r"locum|zero[ -]hours?(?: contract)?|on nights|nights|night shifts?|weekends|on contract|"
    r"fixed[ -]term(?: contract)?"
)
_STATUS_PREFIX = r"ex|former|formerly|previously|agency|temp"
_STATUS = re.compile(
    rf"(?:^(?:{_STATUS_PREFIX})(?=$|[\s,;)/.-])|(?:^|(?<=[\s,;(/-]))(?:{_STATUS_ANYWHERE})(?=$|[\s,;)/.-]))"
)
# "22 hrs", "16 hours a week", "3 days per week", "37.5hrs pw".
_HOURS = re.compile(
    r"\b\d+(?:[.,]\d+)?\s*(?:hrs?|hours?|days?|shifts?)\b(?:\s*(?:a|per|each|every|/)\s*(?:week|wk|month|day))?"
    r"(?:\s*pw|\s*p/w)?",
)
# Employer or place after a preposition: "cleaner at Tesco", "nurse for the NHS", "worker in a
# factory", "driver with DHL". Not when the phrase is part of index titles ("in charge",
# "master at arms", "clerk in holy orders", "caster at machine", "communicator for the deaf").
_PLACE = re.compile(r"\s(?:at|@|for|in|with|within|on behalf of)\s+(?!(?:charge|training|holy|arms|machine|drill|the deaf|dyeing|learning|specific)\b)(.+)$")
# Answers that are not occupations at all; compared with the normalised remaining title.
NOT_OCCUPATIONS = frozenset({
    "mum", "mother", "mom", "dad", "father", "parent", "housewife", "house wife", "househusband",
    "house husband", "homemaker", "home maker", "stay at home mum", "stay at home mother",
    "stay at home parent", "full time mum", "full time mother", "carer for my mother",
    "student", "pupil", "school", "unemployed", "jobseeker", "job seeker", "not working",
    "retired", "pensioner", "none", "nothing", "no job", "n a", "na", "nil", "sick",
    "long term sick", "disabled", "maternity leave", "on maternity leave", "between jobs",
    "looking for work", "homeless",
})


@dataclass(frozen=True)
class Answer:
    """A read answer, normalised: what to match (title) and what to weigh (context).

    ``industry`` joins the industry answer with the employer or place found in the title;
    ``description`` is "what do you mainly do"; ``status`` lists the employment-status and
    hours words that were set aside (for display, never for coding).
    """

    title: str
    industry: str
    description: str
    status: tuple[str, ...] = ()
    not_occupation: bool = False


def _clean(text: str) -> str:
    return " ".join(text.split())


def read_title(text: str) -> tuple[str, str, tuple[str, ...]]:
    """Split a raw job-title answer into (occupation words, place/employer context, status words).

    The occupation part is raw text (not normalised). Nothing is dropped when it would leave
    no occupation word: "Agency" alone stays "Agency", "Temp" stays "Temp".

    Examples
    --------
    >>> read_title("I'm a retired Police Officer (Met)")
    ('Police Officer', 'Met', ('retired',))
    >>> read_title("cleaner at Tesco, 16 hrs a week")
    ('cleaner', 'Tesco', ('16 hrs a week',))
    """
    if not isinstance(text, str):
        return "", "", ()
    context: list[str] = []
    brackets = re.findall(r"[\(\[\{]([^\)\]\}]*)[\)\]\}]?", text)
    body = re.sub(r"[\(\[\{][^\)\]\}]*[\)\]\}]?", " ", text)
    folded = _clean(fold(body).replace("’", "'").replace("'", " ").replace("`", " "))
    status: list[str] = []
    hours = _HOURS.findall(folded)
    if hours:
        status.extend(h.strip() for h in hours)
        folded = _clean(_HOURS.sub(" ", folded))
    lead = _LEAD_IN.match(folded)
    if lead and lead.end() < len(folded):
        folded = folded[lead.end():]
    # Employer or place first, so status words inside it ("at a bank") stay context.
    place = _PLACE.search(" " + folded)
    if place and place.start() > 0:
        context.append(place.group(1).strip(" ,.;"))
        folded = (" " + folded)[: place.start()].strip()
    stripped = _STATUS.sub(" ", folded)
    found = [m.group(0) for m in _STATUS.finditer(folded)]
    stripped = _clean(re.sub(r"^[\s,;/.-]+|[\s,;/.-]+$", "", _clean(stripped)))
    if normalise(stripped):
        status.extend(found)
        folded = stripped
    folded = re.sub(r"^(?:an?|the)\s+", "", folded)
    context = [c for c in (*brackets, *context) if c.strip()]
    return folded.strip(" ,.;:-"), _clean(" ".join(context)), tuple(status)


def read_answer(title: object, industry: object = None, description: object = None) -> Answer:
    """Read one answer into normalised occupation words, industry context and description.

    ``None``, NaN and blank fields count as absent. The description is read for lead-ins too
    ("I am responsible for ...") but keeps every other word: it is evidence, not a title.
    """
    raw_title = title if isinstance(title, str) else ""
    occupation, place, status = read_title(raw_title)
    ind = industry if isinstance(industry, str) else ""
    desc = description if isinstance(description, str) else ""
    words = " ".join(re.findall(r"[a-z]+", occupation))
    return Answer(
        title=normalise(occupation),
        industry=normalise(" ".join(x for x in (place, ind) if x and x.strip())),
        description=normalise(desc),
        status=status,
        not_occupation=words in NOT_OCCUPATIONS,
    )
