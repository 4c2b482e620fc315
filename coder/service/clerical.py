"""The clerical loop over HTTP: decisions, a search of the codes by words, queues of referred
answers, and the clerical page at ``/clerical``.

Every engine call (`Coder.code`, `Coder.learn`) runs on the service's engine thread, as the
coding endpoints' do; store and queue work (SQLite, which may wait for another writer) runs
in worker threads, never on the event loop. A decision is saved to the store and learned by
the serving coder before the response goes out, so the next request for that answer comes
back ``learned``.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse, Response

from ..decisions import Decision, DecisionStore
from ..engine import Coder
from ..errors import InputError, UnknownSchemeError
from ..schemes import SCHEMES, load_scheme
from .errors import ApiError
from .queue import EXPORT_FORMATS, LeaseError, QueueStore, public
from .schemas import (
    MAX_TEXT_CHARS,
    SCHEME_DOC,
    SCHEME_OR_DEFAULT,
    ClerkIn,
    CodeSearchOut,
    DecisionIn,
    DecisionResponse,
    DecisionsOut,
    ErrorOut,
    ForgetOut,
    NextIn,
    NextOut,
    QueueOut,
    QueuesOut,
    SettleIn,
    SettleOut,
    has_text,
)

__all__ = ["add_clerical_routes", "search_codes", "unlearn", "QUEUE_K", "MAX_UPLOAD_BYTES"]

QUEUE_K = 6  # candidates shown for a queued answer
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # a referral file; a coded file of ~400k rows
_MEDIA = {"csv": "text/csv", "tsv": "text/tab-separated-values", "txt": "text/plain",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "parquet": "application/vnd.apache.parquet", "dta": "application/x-stata-dta",
          "sav": "application/x-spss-sav"}
_FILE_NAME = r"^[^/\\]{1,200}\.(?:csv|tsv|txt|xlsx|parquet|dta|sav)$"


def _err(*codes: int, extra: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed JSON.",
        404: "Unknown queue, item or decision.",
        415: "The body is not JSON.",
        409: "Someone else holds or decided this answer (or there is nothing to undo).",
        413: "Body too large.",
        422: "Invalid input (a code the scheme does not have, a blank or uncodable title, ...).",
        503: "No decision store, or the scheme's model is not loaded.",
        **(extra or {}),
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


# ------------------------------------------------------------------------------ engine-side helpers
def learn(coder: Coder, title: str, industry: str | None, description: str | None, code: str, who: str,
          source: str, k: int | None) -> tuple[Decision | None, Any, Any]:
    """On the engine thread: store and learn one decision; the stored `Decision` (from the
    store's thread-local record), the standing `Decided`, and the answer re-coded (k given)."""
    decided = coder.learn(title, industry, description, code=code, who=who, source=source)
    store = coder.decisions
    decision = store.last_recorded() if isinstance(store, DecisionStore) else None
    result = coder.code(title, industry, description, k=k) if k else None
    return decision, decided, result


def unlearn(coder: Coder, decision: Decision) -> bool:
    """Take a forgotten decision back out of what ``coder`` learned (the store lookup stops at
    once by itself: the decision is gone from the store)."""
    forget = getattr(coder, "forget", None)
    if forget is not None:
        return bool(forget(decision.title, decision.industry, decision.description, code=decision.code))
    # Until `Coder.forget` exists: one learned copy of (key, code) out of the learned stage.
    key, code = decision.key, decision.code
    stage = next((s for s in coder.generator.stages_ if getattr(s, "name", "") == "learned"), None)
    keys, codes = getattr(stage, "keys_", None), getattr(stage, "codes_", None)
    pos = getattr(stage, "code_pos_", {}).get(code)
    removed = False
    if isinstance(keys, list) and isinstance(codes, list) and pos is not None:
        for i in range(len(keys) - 1, -1, -1):
            if tuple(keys[i]) == tuple(key) and codes[i] == pos:
                del keys[i], codes[i]
                stage._index = None  # type: ignore[union-attr]
                removed = True
                break
    cache = getattr(coder, "_cache", None)
    if cache is not None:
        cache.clear()
    return removed


# ------------------------------------------------------------------------------ code search
@dataclass(frozen=True)
class _Docs:
    """A scheme's unit groups as searchable text: per code its title's words and its index
    entries with their words; and every word with the codes it appears under (sorted, so a
    word typed half way finds its completions by bisection)."""

    codes: tuple[tuple[str, str, frozenset[str], tuple[tuple[str, frozenset[str]], ...]], ...]
    vocabulary: tuple[str, ...]
    owners: dict[str, frozenset[int]]


@lru_cache(maxsize=8)
def _code_docs(scheme: str) -> _Docs:
    from ..decisions import _index_entries
    from ..normalise import normalise

    sch = load_scheme(scheme)
    by_text, _ = _index_entries()
    entries: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for text, found in by_text.items():
        for entry in found:
            code = entry.code(sch.name)
            if code:
                entries.setdefault(code, []).append((text, frozenset(normalise(text).split())))
    codes = tuple((code, title, frozenset(normalise(title).split()), tuple(entries.get(code, ())))
                  for code, title in sch.units.items())
    owners: dict[str, set[int]] = {}
    for i, (_, _, title_words, code_entries) in enumerate(codes):
        for word in title_words.union(*(ew for _, ew in code_entries)):
            owners.setdefault(word, set()).add(i)
    return _Docs(codes, tuple(sorted(owners)), {w: frozenset(c) for w, c in owners.items()})


def _completions(docs: _Docs, word: str, prefix: bool) -> set[str]:
    if not prefix or len(word) < 2:
        return {word} if word in docs.owners else set()
    start = bisect.bisect_left(docs.vocabulary, word)
    out = set()
    for w in docs.vocabulary[start:]:
        if not w.startswith(word):
            break
        out.add(w)
    return out


def search_codes(scheme: str, q: str, limit: int = 10) -> list[dict[str, Any]]:
    """Unit groups of ``scheme`` whose title or index entries hold every word of ``q`` (the
    last word may be the start of one, as typed); or whose code starts with ``q`` (digits).
    Best first: words of the title count most, then entries that hold all the words."""
    from ..normalise import normalise

    sch = load_scheme(scheme)
    text = q.strip()
    if re.fullmatch(r"\d{1,4}", text):
        return [{"code": c, "title": t, "entries": []} for c, t in sch.units.items() if c.startswith(text)][:limit]
    words = normalise(text).split()
    if not words:
        return []
    docs = _code_docs(sch.name)
    forms = [_completions(docs, w, i == len(words) - 1) for i, w in enumerate(words)]
    candidates: set[int] | None = None
    for found in forms:
        codes = set().union(*(docs.owners[w] for w in found)) if found else set()
        candidates = codes if candidates is None else candidates & codes
    query = frozenset(words)
    scored = []
    for i in candidates or ():
        code, title, title_words, entries = docs.codes[i]
        in_title = [bool(f & title_words) for f in forms]
        hits = [(e, ew) for e, ew in entries
                if all(f & ew or in_title[k] for k, f in enumerate(forms)) and any(f & ew for f in forms)]
        if not hits and not all(in_title):
            continue
        own = [(e, ew) for e, ew in hits if all(f & ew for f in forms)]
        exact_title = sum(w in title_words for w in words)
        same = any(ew == query for _, ew in own)  # an entry that is just these words
        score = 2 * exact_title + (sum(in_title) - exact_title) + 3 * same + min(len(own), 20) / 10
        shown = [e for e, ew in sorted(own, key=lambda x: len(x[1]))] or [e for e, _ in hits]
        scored.append((-score, code, title, shown[:3]))
    scored.sort()
    return [{"code": c, "title": t, "entries": e} for _, c, t, e in scored[:limit]]


# ------------------------------------------------------------------------------ routes
def add_clerical_routes(app: FastAPI, *, coding: Callable[[Any, Coder, bool], dict],
                        upload_max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Add the decision, code-search and queue endpoints and the /clerical page to ``app``
    (whose ``state`` holds ``registry``, ``engine``, ``store`` and ``queues``)."""
    registry = app.state.registry
    engine = app.state.engine
    majors: dict[str, dict | None] = {}

    def need_store() -> tuple[DecisionStore, QueueStore]:
        store, queues = app.state.store, app.state.queues
        if store is None or queues is None:
            raise ApiError(503, "no_store", "this service has no decision store; start it with "
                                            "`coder serve --store PATH` (or give create_app a store)")
        return store, queues

    async def queue_or_404(queues: QueueStore, queue_id: str, session: str | None = None) -> dict:
        info = await asyncio.to_thread(queues.get, queue_id)
        if info is None:
            raise ApiError(404, "unknown_queue", f"no queue {queue_id!r}; GET /queues lists them")
        out = info.to_dict()
        if session is not None:
            out["progress"] = (await asyncio.to_thread(queues.progress, queue_id, session)).to_dict()
        return out

    def unit_code(coder: Coder, code: str) -> str:
        code = code.strip()
        if code not in coder.scheme:
            raise ApiError(422, "unknown_code", f"{code!r} is not a {coder.scheme_name} unit group; "
                                                f"find one with GET /codes/{coder.scheme_name}?q=words")
        return code

    async def item_json(item: dict, coder: Coder | None) -> dict:
        out = public(item)
        out["coding"] = None
        if coder is not None and item["state"] == "open":
            result = await engine.run(coder.code, item["title"], item["industry"], item["description"], k=QUEUE_K)
            out["coding"] = coding(result, coder, True)
        return out

    # -------------------------------------------------------------- decisions
    @app.post("/decisions", status_code=201, response_model=DecisionResponse, tags=["decisions"],
              summary="Save a coder's decision", responses=_err(400, 413, 415, 422, 503))
    async def post_decision(body: DecisionIn) -> JSONResponse:
        """Save that this answer is this code (in the decision store) and use it at once: the
        answer comes back with method `learned`, and similar answers weigh it."""
        store, _ = need_store()
        if not has_text(body.title):
            raise ApiError(422, "invalid_request", "title: must contain some text, not only spaces")
        coder = await registry.get(body.scheme)
        code = unit_code(coder, body.code)
        industry = body.industry if body.industry and has_text(body.industry) else None
        description = body.description if body.description and has_text(body.description) else None
        try:
            decision, decided, result = await engine.run(learn, coder, body.title, industry, description, code,
                                                         body.who.strip(), body.source, 5)
        except InputError as exc:
            raise ApiError(422, "uncodable_answer", f"{exc}: {body.title!r} cannot be coded, so it "
                                                    "cannot be decided") from None
        if decision is None:  # pragma: no cover - coders are always given this store
            raise ApiError(503, "no_store", "the coder has no decision store")
        return JSONResponse(status_code=201, content={
            "decision": decision.to_dict(),
            "standing": {"code": decided.code, "votes": decided.votes, "total": decided.total,
                         "share": round(decided.share, 4), "majority": decided.share > 0.5},
            "coding": coding(result, coder, False)})

    @app.get("/decisions", response_model=DecisionsOut, tags=["decisions"], summary="Recent decisions",
             responses=_err(422, 503))
    async def list_decisions(
        scheme: Annotated[str | None, Query(description=SCHEME_DOC + "; the default if omitted.",
                                            json_schema_extra=SCHEME_OR_DEFAULT)] = None,
        who: Annotated[str | None, Query(max_length=100, description="Only this clerk's.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 50,
    ) -> dict:
        """The newest decisions in the store."""
        store, _ = need_store()
        name = registry.canonical(scheme)
        found = await asyncio.to_thread(store.list, name, who=who or None, limit=limit, newest_first=True)
        count = await asyncio.to_thread(store.count, name)
        return {"count": count, "decisions": [d.to_dict() for d in found]}

    @app.delete("/decisions/{decision_id}", response_model=ForgetOut, tags=["decisions"],
                summary="Forget a decision", responses=_err(404, 422, 503))
    async def forget_decision(
        decision_id: Annotated[int, PathParam(ge=1, le=2**62, description="The decision's id.")],
    ) -> dict:
        """Remove one decision from the store (and from what the serving coder learned)."""
        store, _ = need_store()
        gone = await asyncio.to_thread(store.forget, decision_id)
        if not gone:
            raise ApiError(404, "unknown_decision", f"no decision with id {decision_id}")
        for decision in gone:
            if decision.scheme in registry.loaded:
                coder = await registry.get(decision.scheme)
                await engine.run(unlearn, coder, decision)
        return {"forgotten": [d.to_dict() for d in gone]}

    # -------------------------------------------------------------- code search
    @app.get("/codes/{scheme}", response_model=CodeSearchOut, tags=["classifications"],
             summary="Search codes by words", responses=_err(404, 422, extra={404: "Unknown scheme."}))
    async def code_search(
        scheme: Annotated[str, PathParam(description=SCHEME_DOC + ".", json_schema_extra={"enum": list(SCHEMES)})],
        q: Annotated[str, Query(min_length=1, max_length=MAX_TEXT_CHARS, description="Words of a unit group's "
                                "title or index entries (the last may be cut short), or the start of a code.",
                                examples=["electrician"])],
        limit: Annotated[int, Query(ge=1, le=50, description="How many codes.")] = 10,
    ) -> dict:
        """Unit groups whose title or index entries hold every word, best first."""
        try:
            sch = load_scheme(scheme)
        except UnknownSchemeError as exc:
            raise ApiError(404, "unknown_scheme", str(exc)) from None
        found = await asyncio.to_thread(search_codes, sch.name, q, limit)
        from .schemas import _major

        cache = majors.setdefault(sch.name, {})
        return {"scheme": sch.name, "q": q,
                "results": [{**r, "major_group": _major(sch, r["code"], cache)} for r in found]}

    # -------------------------------------------------------------- queues
    @app.get("/queues", response_model=QueuesOut, tags=["queues"], summary="Queues of referred answers",
             responses=_err(503))
    async def list_queues() -> dict:
        """Every queue in the store, with its progress."""
        _, queues = need_store()
        return {"queues": [q.to_dict() for q in await asyncio.to_thread(queues.list)]}

    @app.post("/queues", status_code=201, response_model=QueueOut, tags=["queues"],
              summary="Open a file as a queue", responses=_err(413, 422, 503),
              openapi_extra={"requestBody": {"required": True, "description": (
                  "The file's bytes: a referral file (coder code --refer) or a coded file (its "
                  "refer rows are queued)."), "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                  "text/csv": {"schema": {"type": "string"}}}}})
    async def open_queue(
        request: Request,
        name: Annotated[str, Query(description="The file's name; its extension gives the format.",
                                   examples=["refer.csv"], max_length=204,
                                   json_schema_extra={"pattern": _FILE_NAME})],
        column: Annotated[str | None, Query(max_length=200, description="Column of job titles "
                                            "(default: guessed from the names).")] = None,
        industry_column: Annotated[str | None, Query(max_length=200)] = None,
        description_column: Annotated[str | None, Query(max_length=200)] = None,
        scheme: Annotated[str | None, Query(description=SCHEME_DOC + "; default: the file's code column.",
                                            json_schema_extra=SCHEME_OR_DEFAULT)] = None,
    ) -> JSONResponse:
        """Queue the referred answers of an uploaded file (the same file again: the same queue)."""
        _, queues = need_store()
        if not re.match(_FILE_NAME, name):
            raise ApiError(422, "invalid_request", "name: give the file's name with its extension "
                                                   f"({', '.join(EXPORT_FORMATS)}), without folders")
        content = await request.body()
        try:
            info = await asyncio.to_thread(
                queues.open_bytes, name, content, column=column or None, industry_column=industry_column or None,
                description_column=description_column or None, scheme=scheme, default_scheme=registry.default)
        except InputError as exc:
            raise ApiError(422, "unreadable_queue", str(exc)) from None
        return JSONResponse(status_code=201, content=info.to_dict())

    @app.get("/queues/{queue_id}", response_model=QueueOut, tags=["queues"], summary="A queue's progress",
             responses=_err(404, 422, 503))
    async def get_queue(queue_id: Annotated[str, PathParam(max_length=64)]) -> dict:
        _, queues = need_store()
        return await queue_or_404(queues, queue_id)

    @app.post("/queues/{queue_id}/next", response_model=NextOut, tags=["queues"],
              summary="Take the next answer", responses=_err(400, 404, 413, 415, 422, 503))
    async def next_item(queue_id: Annotated[str, PathParam(max_length=64)], body: NextIn) -> dict:
        """Lease the next free answer to this session (the one it holds already, if any), coded
        now, with its candidates and follow-up prompts; `item` is null when none is free."""
        _, queues = need_store()
        info = await queue_or_404(queues, queue_id)
        try:
            claimed = await asyncio.to_thread(queues.claim, queue_id, body.session, body.who.strip(),
                                              skip=body.skip, item=body.item)
        except KeyError:
            raise ApiError(404, "unknown_queue", f"no queue {queue_id!r}") from None
        item = None
        if claimed is not None:
            item = await item_json(claimed, await registry.get(info["scheme"]))
        return {"queue": await queue_or_404(queues, queue_id, body.session), "item": item}

    async def settle(queue_id: str, item: int, body: SettleIn) -> dict:
        store, queues = need_store()
        info = await queue_or_404(queues, queue_id)
        if body.uncodable == (body.code is not None):
            raise ApiError(422, "invalid_request", "give a code, or uncodable: true (one of them)")
        coder = await registry.get(info["scheme"])
        code = unit_code(coder, body.code) if body.code is not None else None
        who = body.who.strip()
        try:
            settled = await asyncio.to_thread(queues.settle, queue_id, item, body.session, who, code=code)
        except KeyError:
            raise ApiError(404, "unknown_item", f"queue {queue_id} has no answer {item}") from None
        except LeaseError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        decision = None
        if code is not None:
            try:
                decision, _, _ = await engine.run(learn, coder, settled["title"], settled["industry"],
                                                  settled["description"], code, who, "clerical", None)
            except InputError as exc:
                await asyncio.to_thread(queues.reopen, queue_id, item, body.session, who)
                raise ApiError(422, "uncodable_answer", f"{exc}; mark it uncodable instead") from None
            if decision is not None:
                await asyncio.to_thread(queues.set_decision, queue_id, item, decision.id)
                settled["decision_id"] = decision.id
        return {"queue": await queue_or_404(queues, queue_id, body.session),
                "item": {**public(settled), "coding": None},
                "decision": decision.to_dict() if decision is not None else None}

    @app.post("/queues/{queue_id}/items/{item}/decide", response_model=SettleOut, tags=["queues"],
              summary="Decide an answer", responses=_err(400, 404, 409, 413, 415, 422, 503))
    async def decide(queue_id: Annotated[str, PathParam(max_length=64)],
                     item: Annotated[int, PathParam(ge=1, le=2**62)], body: SettleIn) -> dict:
        """Code the answer (`code`), or mark it uncodable (`uncodable: true`). The code is saved
        to the decision store and learned at once. 409 when someone else decided or holds it."""
        return await settle(queue_id, item, body)

    @app.post("/queues/{queue_id}/items/{item}/skip", response_model=QueueOut, tags=["queues"],
              summary="Skip an answer", responses=_err(400, 404, 413, 415, 422, 503))
    async def skip(queue_id: Annotated[str, PathParam(max_length=64)],
                   item: Annotated[int, PathParam(ge=1, le=2**62)], body: ClerkIn) -> dict:
        """Give the answer back undecided (the page then asks for the next one, with this one
        in its skip list)."""
        _, queues = need_store()
        await queue_or_404(queues, queue_id)
        await asyncio.to_thread(queues.release, queue_id, item, body.session)
        return await queue_or_404(queues, queue_id, body.session)

    @app.post("/queues/{queue_id}/items/{item}/undo", response_model=NextOut, tags=["queues"],
              summary="Undo a decision", responses=_err(400, 404, 409, 413, 415, 422, 503))
    async def undo(queue_id: Annotated[str, PathParam(max_length=64)],
                   item: Annotated[int, PathParam(ge=1, le=2**62)], body: ClerkIn) -> dict:
        """Take back this clerk's decision on the answer (it leaves the store and what the
        coder learned) and lease the answer to them again."""
        store, queues = need_store()
        info = await queue_or_404(queues, queue_id)
        try:
            before = await asyncio.to_thread(queues.reopen, queue_id, item, body.session, body.who.strip())
        except KeyError:
            raise ApiError(404, "unknown_item", f"queue {queue_id} has no answer {item}") from None
        except LeaseError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        coder = await registry.get(info["scheme"])
        if before["decision_id"] is not None:
            for gone in await asyncio.to_thread(store.forget, before["decision_id"]):
                await engine.run(unlearn, coder, gone)
        now = await asyncio.to_thread(queues.item, queue_id, item)
        assert now is not None
        return {"queue": await queue_or_404(queues, queue_id, body.session), "item": await item_json(now, coder)}

    export_responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "The file with every row, in order, and the decisions merged in.",
              "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in _MEDIA.values()}},
        **_err(404, 422, 503)}

    @app.get("/queues/{queue_id}/export", tags=["queues"], summary="Export the coded file",
             response_class=Response, responses=export_responses)
    async def export(queue_id: Annotated[str, PathParam(max_length=64)],
                     format: Annotated[Literal["csv", "tsv", "txt", "xlsx", "parquet", "dta", "sav"] | None, Query(
                         description="File format (default: the queue file's own).")] = None) -> Response:
        """The queue's file with the decisions so far merged in (decided rows: the code,
        status auto, method learned; uncodable rows: the missing code), every row in order."""
        _, queues = need_store()
        info = await queue_or_404(queues, queue_id)
        stem, _, ext = info["name"].rpartition(".")
        fmt = format or ext.lower()
        if fmt not in _MEDIA:
            fmt = "csv"
        filename = f"{stem or 'queue'}-clerical.{fmt}"

        def write() -> bytes:
            with tempfile.TemporaryDirectory(prefix="coder-export-") as tmp:
                target = Path(tmp) / filename
                queues.export(queue_id, target)
                return target.read_bytes()

        try:
            content = await asyncio.to_thread(write)
        except InputError as exc:
            raise ApiError(422, "cannot_export", str(exc)) from None
        ascii_name = re.sub(r'[^A-Za-z0-9._-]', "_", filename)
        return Response(content, media_type=_MEDIA[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{ascii_name}"'})
