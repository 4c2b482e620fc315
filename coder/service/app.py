"""The HTTP API and the type-ahead page: `create_app` builds a FastAPI application.

Concurrency
-----------
`Coder` keeps an unsynchronised result cache, so the engine must never run in two threads at
once. By default (``executor="thread"``) every engine call runs on one dedicated worker
thread, in arrival order: the engine is serialised, while the event loop stays free to accept
connections, parse requests and write responses during the (milliseconds-long) coding, and
`/health` answers even while a large batch is being coded. ``executor="inline"`` instead
calls the engine on the event-loop thread (no thread hop; the loop is blocked while it codes).
`benchmarks/service_bench.py` measures both (benchmarks/results/service.md): uncached
suggestions cost the same either way (the engine dominates), with slightly better throughput
and tails for the thread executor at 50 clients; a cached suggestion costs ~0.1 ms less CPU
inline. The thread executor is the default because it keeps the loop responsive while the
engine works, which matters once a batch or a slow query is in progress. Batches
(``POST /code``) are coded in chunks of `BATCH_CHUNK` titles, so suggestions interleave with
a large batch. Models load and build in background threads (see `registry`), never on the
event loop.

Suggestions that arrive while the engine is busy wait together and are then coded in one
`Coder.code_many` call (`_Suggestions`, at most `SUGGEST_BATCH` at a time): per title, a batch
of 32 costs about a fifth of the CPU of one-by-one calls and a batch of 100 a sixth, so under
load (many type-ahead users) the engine keeps up instead of falling behind; an idle engine
codes a suggestion at once, alone, so nothing waits for a batch to fill. Each answer in a
batch is coded on its own (a batch only shares the work), but, as between ``POST /code`` and
``GET /suggest``, a feature computed for many titles at once can differ from one computed
alone in its last float32 bits, which now and then moves a confidence a little. To use more
than one core, run several processes (``coder serve --workers N``, see
`coder.service.commands`): each has its own engine, engine thread and result cache.

Errors
------
Every error is JSON ``{"error": kind, "detail": sentence[, "errors": [...]]}``, never a bare
500: 400 malformed JSON, 404 unknown route/scheme/code, 405 wrong method, 413 body over
`MAX_BODY_BYTES`, 415 a body that is not JSON, 422 invalid parameters (blank or over-long
title, over-long industry or description, k outside 1..20, unknown scheme, too many items),
503 a scheme whose model is not loaded yet (with ``Retry-After`` while it is being built).
A blank industry or description is not an error: it counts as absent. The OpenAPI document
describes every response, errors included (tests/test_service_openapi.py holds the API to it).

Decisions and the clerical page
-------------------------------
With a decision store (`coder.decisions.DecisionStore`; ``coder serve`` opens one by default)
the service also takes coders' decisions (``POST /decisions``), searches codes by words
(``GET /codes/{scheme}?q=``) and serves queues of referred answers to the clerical page at
``/clerical`` (``/queues/...``); see `coder.service.clerical`. Each coder it serves uses that
store: an answer decided before comes back with method ``learned``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..decisions import DecisionStore
from ..engine import Coder
from ..errors import UnknownSchemeError
from ..results import STATUSES
from ..schemes import SCHEMES, load_scheme
from .clerical import MAX_UPLOAD_BYTES, add_clerical_routes
from .errors import ApiError
from .queue import QueueStore
from .registry import ModelUnavailable, Registry
from .schemas import (
    HAS_TEXT,
    MAX_DESCRIPTION_CHARS,
    MAX_INDUSTRY_CHARS,
    MAX_ITEMS,
    MAX_K,
    MAX_TEXT_CHARS,
    SCHEME_DOC,
    SCHEME_OR_DEFAULT,
    CodeInfo,
    CodeRequest,
    CodeResponse,
    Coding,
    ErrorOut,
    HealthOut,
    SchemesOut,
    coding_json,
    has_text,
)

__all__ = ["create_app", "MAX_BODY_BYTES", "BATCH_CHUNK", "ApiError"]

log = logging.getLogger("coder.service")
T = TypeVar("T")

# 1,000 items with every field at its longest (title, industry, description) is ~1.8 MB of
# ASCII JSON; real answers are a tenth of that. 4 MiB leaves room for non-ASCII text while
# keeping a hostile body from filling memory.
MAX_BODY_BYTES = 4 * 1024 * 1024
BATCH_CHUNK = 200  # titles per engine call in POST /code (~0.1-0.3 s on the full model)
# Waiting suggestions coded in one engine call (~0.045 s for 100 on the full model). As many as
# 200 type-ahead clients keep waiting on one of two workers: with 32 a call, each waited for
# about three calls, and p99 was ~136 ms (benchmarks/results/service.md); with 100, ~104 ms.
SUGGEST_BATCH = 100
# Coded once at start-up with ``warm_up``: the engine's first call prepares what it derives on
# first use (~1 s on the full model), which would otherwise fall on the first users.
WARM_UP_TITLES = ("nurse", "software engineer", "bus driver", "care assistant", "accounts clerk",
                  "shop manager", "teacher", "chef", "warehouse operative", "cleaner", "hairdresser",
                  "electrician", "sales assistant", "lorry driver", "civil servant", "nursery nurse", "sof")
# Coded alone first: a title of the index, and a prefix that is not one (its typo search
# prepares the index's character bound, `coder.stages.fuzzy`).
WARM_UP_ALONE = ("nurse", "sof")


def _warm_up_batch(titles: Sequence[str]) -> list[str]:
    """What warm-up codes together: the titles, and their first four characters as type-ahead
    sends them. The prefixes miss the index, so they go through the searches for many queries
    at once: the first such search makes a float32 copy of the title vectors
    (`coder.stages.semantic`), 60 ms that fell on the first burst of users when only whole
    titles warmed up."""
    return [*titles, *dict.fromkeys(title[:4] for title in titles)]


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in {
        422: "Invalid parameters (blank or over-long title, over-long industry or description, "
             "k out of range, unknown scheme).",
        503: "The scheme's model is not loaded (not built, or being built: see Retry-After).",
    }.items()
}


def _error(status: int, kind: str, detail: str, errors: list | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": kind, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit:,} bytes; send at most {MAX_ITEMS:,} "
                              "items per request, in several requests if need be")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (by Content-Length, or as they stream in);
    file uploads (``POST /queues``) may be up to ``upload_bytes``.

    Raises an HTTPException from ``receive`` so FastAPI's handler turns it into JSON; a body
    read outside FastAPI's request handling gets the same JSON from here.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int | None = None) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.upload_bytes = max_bytes if upload_bytes is None else upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope.get("path") == "/queues" else self.max_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        try:
            too_big = declared is not None and int(declared) > limit
        except ValueError:
            too_big = False  # the server rejects a malformed Content-Length itself
        started = False
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if too_big:
                raise _BodyTooLarge(limit)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge(limit)
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except _BodyTooLarge as exc:
            if started:
                raise
            await _error(413, "payload_too_large", str(exc.detail))(scope, receive, send)


def _page(name: str = "index.html") -> tuple[str, str]:
    """A page's HTML and a Content-Security-Policy allowing only its own inline code."""
    html = (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", html, flags=re.S)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return html, csp


def _given(text: str | None) -> str | None:
    """Industry or description as sent, None when blank (blank means absent, not an error)."""
    return text if text is not None and has_text(text) else None


def _swagger_assets() -> Path | None:
    """Folder of a local Swagger UI 5 (package swagger-ui-bundle-v2), if installed.

    Without it /docs falls back to FastAPI's default page, which loads Swagger UI from a CDN.
    Swagger UI 4 cannot render FastAPI's OpenAPI 3.1 document, so it is not used.
    """
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    major = re.search(r"swagger-ui-(\d+)", path.name)
    if not (path / "swagger-ui-bundle.js").is_file() or not major or int(major.group(1)) < 5:
        return None
    return path


class _Engine:
    """Where engine calls run: inline on the event loop, or on one dedicated thread."""

    def __init__(self, mode: Literal["inline", "thread"]) -> None:
        if mode not in ("inline", "thread"):
            raise ValueError(f"executor must be 'inline' or 'thread', not {mode!r}")
        self.mode = mode
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.mode == "inline":
            return fn(*args, **kwargs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coder-engine")
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class _Suggestions:
    """`GET /suggest` codings: those waiting for the engine are coded together (see the module
    docstring). Only touched from the event loop."""

    def __init__(self, engine: _Engine, limit: int = SUGGEST_BATCH) -> None:
        self.engine, self.limit = engine, limit
        self._waiting: dict[tuple[int, int], tuple[Coder, list[tuple]]] = {}  # by (coder, k)
        self._task: asyncio.Task | None = None

    async def code(self, coder: Coder, title: str, industry: str | None, description: str | None,
                   k: int) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((id(coder), k), (coder, []))[1].append((title, industry, description, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            key = next(iter(self._waiting))
            coder, items = self._waiting.pop(key)
            batch = [item for item in items[: self.limit] if not item[3].done()]  # done: cancelled
            if len(items) > self.limit:  # the rest go after the other kinds' (round robin)
                self._waiting[key] = (coder, items[self.limit:])
            if not batch:
                continue
            try:
                results = await self.engine.run(coder.code_many, [b[0] for b in batch], [b[1] for b in batch],
                                                [b[2] for b in batch], k=key[1])
            except Exception:  # one answer the engine fails on must not fail the others
                for title, industry, description, future in batch:
                    try:
                        result = await self.engine.run(coder.code, title, industry, description, k=key[1])
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            for (_, _, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
            if self.engine.mode == "inline":
                await asyncio.sleep(0)  # let the event loop take in new requests


_SUGGEST_ONCE = frozenset({"q", "industry", "description", "k", "scheme"})  # `also` may repeat
_PLAIN_K = re.compile(r"[0-9]{1,2}")
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


def _plain_suggest(query: bytes) -> tuple[str, str | None, str | None, int, str | None, list[str]] | None:
    """(q, industry, description, k, scheme, also) from a `GET /suggest` query string that the
    route's declared parameters take as they stand, or None for FastAPI to decide: a missing,
    blank or over-long field, a ``k`` that is not 1-20 in plain digits, a parameter given
    twice, an ``also`` that is not a scheme's name. Parsed as Starlette parses it; other
    parameters are ignored, as FastAPI ignores them."""
    values: dict[str, str] = {}
    also: list[str] = []
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "also":
            also.append(value)
        elif key in _SUGGEST_ONCE:
            if key in values:
                return None
            values[key] = value
    q, industry, description = values.get("q"), values.get("industry"), values.get("description")
    if q is None or len(q) > MAX_TEXT_CHARS or not has_text(q):
        return None
    if (industry is not None and len(industry) > MAX_INDUSTRY_CHARS) or (
            description is not None and len(description) > MAX_DESCRIPTION_CHARS):
        return None
    k = values.get("k", "5")
    if not _PLAIN_K.fullmatch(k) or not 1 <= int(k) <= MAX_K:
        return None
    if len(also) > len(SCHEMES) or not all(name in SCHEMES for name in also):
        return None
    return q, industry, description, int(k), values.get("scheme"), also


class _Service(FastAPI):
    """The FastAPI application, with a short way for `GET /suggest`, which the type-ahead page
    sends at every pause in typing: a plainly valid query (`_plain_suggest`) for a loaded
    scheme is answered before FastAPI's middleware and parameter machinery, which cost a
    cached suggestion more CPU than the rest of its answer. Anything else, every error
    included, takes FastAPI's way. Both ways give the same response (tests/test_service.py
    holds them to it); the route and its OpenAPI description are FastAPI's."""

    short_suggest: Callable[[Scope, Receive, Send], Awaitable[bool]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == "/suggest" and scope["method"] == "GET"
                and self.short_suggest is not None and await self.short_suggest(scope, receive, send)):
            return
        await super().__call__(scope, receive, send)


def create_app(
    coder_or_model_dir: Coder | Sequence[Coder] | str | PathLike | None = None,
    *,
    scheme: str = "soc2000",
    model_dir: str | PathLike | None = None,
    build: bool = True,
    build_missing: bool = False,
    executor: Literal["inline", "thread"] = "thread",
    max_body_bytes: int = MAX_BODY_BYTES,
    decisions: DecisionStore | str | PathLike | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    preload: Sequence[str] = (),
    warm_up: bool = False,
) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    coder_or_model_dir : Coder, sequence of Coder, path or None
        Loaded coder(s) to serve (the first one's scheme is the default), or the directory to
        load models from at start-up (None: the usual model directory).
    scheme : str
        Default scheme when a directory is given; loaded at start-up (built first if missing
        or stale, unless ``build`` is False).
    model_dir : path, optional
        Where to look for other schemes' models when coders are given (default: the usual
        model directory).
    build_missing : bool
        Build a scheme that is not built on its first request, in the background (requests
        get 503 with Retry-After until it is ready). Off: such requests get 503 naming the
        ``coder build`` command.
    executor : {"inline", "thread"}
        Where engine calls run; see the module docstring.
    max_body_bytes : int
        Larger request bodies get 413.
    decisions : DecisionStore or path, optional
        The decision store: decisions are saved there, queues of referred answers kept
        there, and every coder served uses it. Default: the first coder's store, if it has
        one; without a store the decision and queue endpoints answer 503.
    max_upload_bytes : int
        Largest file accepted by ``POST /queues``.
    preload : sequence of str
        More schemes to load at start-up beside the default one (built first if missing or
        stale, unless ``build`` is False: then a missing one fails the start-up).
    warm_up : bool
        Before serving, code a few titles with each coder loaded at start-up, alone and
        together with their first letters (`_warm_up_batch`), and read the index entries
        behind follow-up prompts, so the first users do not wait for what the engine prepares on its first calls; then
        move everything loaded out of the garbage collector's sight (`gc.freeze`: the whole
        process's objects, so for a process that serves and nothing else). ``coder serve``
        does.

    Examples
    --------
    >>> from fastapi.testclient import TestClient          # doctest: +SKIP
    >>> with TestClient(create_app(Coder.load())) as client:  # doctest: +SKIP
    ...     client.get("/suggest", params={"q": "nurse"}).json()["code"]
    '3211'
    """
    given: list[Coder] = []
    if isinstance(coder_or_model_dir, Coder):
        given = [coder_or_model_dir]
    elif isinstance(coder_or_model_dir, Sequence) and not isinstance(coder_or_model_dir, str):
        given = list(coder_or_model_dir)
        if not given:
            raise ValueError("create_app needs at least one Coder, or a model directory")
    else:
        model_dir = coder_or_model_dir if coder_or_model_dir is not None else model_dir
    if decisions is not None and not isinstance(decisions, DecisionStore):
        decisions = DecisionStore(decisions)
    if decisions is None and given and isinstance(given[0].decisions, DecisionStore):
        decisions = given[0].decisions
    if decisions is not None:
        # Every coder served uses the one store (a coder given without it gets a twin that
        # does: same model, same settings).
        given = [c if c.decisions is decisions else
                 Coder(c.model, threshold=getattr(c, "_threshold", None), missing_markers=c.missing_markers,
                       decisions=decisions) for c in given]
    registry = Registry(given[0].scheme_name if given else scheme, model_dir=model_dir,
                        build_missing=build_missing, decisions=decisions)
    for coder in given:
        registry.add(coder)
    engine = _Engine(executor)
    suggestions = _Suggestions(engine)
    majors: dict[str, dict[str, dict | None]] = {}  # per scheme: code -> major group JSON
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await registry.preload(list(dict.fromkeys([registry.default, *preload])), build=build)
        if warm_up:
            for name in registry.loaded:
                coder = await registry.get(name)
                for title in WARM_UP_ALONE:
                    await engine.run(coder.code, title)
                await engine.run(coder.code_many, _warm_up_batch(WARM_UP_TITLES))
        # The index entries behind follow-up prompts and code search (~0.5 s), read now
        # rather than on the first referred answer; with warm_up, before serving (read
        # beside the first requests, they slowed them down several times over).
        from ..decisions import _index_entries

        reading = asyncio.get_running_loop().run_in_executor(None, _index_entries)
        if warm_up:
            await reading
            # The models are ~140,000 Python objects that live as long as the process: out of
            # the garbage collector's sight, a full collection no longer walks them (~0.1 s,
            # a pause for every request waiting, each time allocations trigger one).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            engine.close()

    app = _Service(
        title="coder",
        version=__version__,
        summary="Code free-text job titles to UK SOC2000 (and SOC90, SOC2010, SOC2020, ISCO-08).",
        description=(
            "Ranked, calibrated candidate codes for survey answers: a job title, and optionally "
            "the industry and what the person mainly does (`description`). `GET /suggest` codes "
            "one answer (for type-ahead), `POST /code` up to 1,000. Each result has a status: `auto` (safe to "
            "code automatically), `refer` (a person should choose) or `uncodable`, with a reason. "
            "Referred answers whose candidates differ only by what the answer did not say come with "
            "`follow_up` prompts saying what would decide. `POST /decisions` saves a person's code for an "
            "answer (used at once: it comes back `learned`); `/queues` serve files of referred answers "
            "to several clerks at once. Errors are JSON `{error, detail}`. The page at `/` is a "
            "type-ahead coder, `/clerical` the clerical coding page."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.registry = registry
    app.state.engine = engine
    app.state.store = decisions
    app.state.queues = QueueStore(decisions) if decisions is not None else None
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, upload_bytes=max_upload_bytes)

    # ------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.kind, exc.detail, headers=exc.headers)

    @app.exception_handler(ModelUnavailable)
    async def unavailable(request: Request, exc: ModelUnavailable) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _error(503, "model_unavailable", str(exc), headers=headers)

    @app.exception_handler(UnknownSchemeError)
    async def unknown_scheme(request: Request, exc: UnknownSchemeError) -> JSONResponse:
        return _error(422, "unknown_scheme", str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 413:
            return _error(413, "payload_too_large", str(exc.detail))
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return _error(400, "malformed_json", "request body is not valid JSON text (UTF-8 expected)")
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:
            phrase = "error"
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.url.path}; see /docs"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, re.sub(r"\W+", "_", phrase.lower()).strip("_"), detail,
                      headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if request.method == "POST" and request.url.path != "/queues":  # that one takes a file
            ctype = request.headers.get("content-type", "")
            if not re.match(r"application/([\w.+-]*\+)?json\b", ctype.strip().lower()):
                return _error(415, "unsupported_media_type",
                              f"send the body as JSON with Content-Type: application/json "
                              f"(got {ctype or 'no Content-Type'})")
        for problem in problems:
            if problem.get("type") == "json_invalid":
                why = (problem.get("ctx") or {}).get("error", "invalid JSON")
                return _error(400, "malformed_json", f"request body is not valid JSON: {why} "
                                                     f"(at character {problem['loc'][-1]})")
        errors = [{"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                   "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in problems]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"][1:] or first["loc"])
        return _error(422, "invalid_request", f"{where}: {first['msg']}" if where else first["msg"],
                      errors=errors)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal server error; the server log has details")

    # ------------------------------------------------------------ API
    def _coding(result: Any, coder: Coder, follow: bool | None = None, also: Sequence[str] = ()) -> dict:
        return coding_json(result, coder.scheme, majors.setdefault(coder.scheme_name, {}), follow=follow,
                           also=also)

    @app.get("/suggest", response_model=Coding, responses=_ERRORS, tags=["coding"],
             summary="Suggest codes for one title")
    async def suggest(
        q: Annotated[str, Query(min_length=1, max_length=MAX_TEXT_CHARS,
                                description="The job title as typed (not blank).",
                                examples=["snr software dev"], json_schema_extra={"pattern": HAS_TEXT})],
        industry: Annotated[str | None, Query(max_length=MAX_INDUSTRY_CHARS,
                                              description="Employer or industry, if known; blank: "
                                                          "absent.", examples=["supermarket"])] = None,
        description: Annotated[str | None, Query(
            max_length=MAX_DESCRIPTION_CHARS, description="What the person mainly does in the job, "
                                                          "if known; blank: absent.",
            examples=["fills shelves and takes out dated stock"])] = None,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many candidates.")] = 5,
        scheme: Annotated[str | None, Query(
            description=SCHEME_DOC + "; the service's default (soc2000 unless started otherwise) "
                                     "if omitted.",
            json_schema_extra=SCHEME_OR_DEFAULT,
        )] = None,
        also: Annotated[list[Literal[SCHEMES]], Query(  # type: ignore[valid-type]
            max_length=len(SCHEMES),
            description="Further schemes: each candidate's code in them (`in_schemes`) and the "
                        "result derived in them (`derived`), from this one coding.")] = [],  # noqa: B006
    ) -> JSONResponse:
        """Code one job title: candidates best first, with a status and reason."""
        if not has_text(q):
            raise ApiError(422, "invalid_request", "q: must contain some text, not only spaces")
        return await suggestion(await registry.get(scheme), q, industry, description, k, also)

    async def suggestion(coder: Coder, q: str, industry: str | None, description: str | None, k: int,
                         also: Sequence[str]) -> JSONResponse:
        """`GET /suggest`'s answer, whichever way the request came (`suggest`, `short_suggest`)."""
        result = await suggestions.code(coder, q, _given(industry), _given(description), k)
        return JSONResponse(_coding(result, coder, also=also))

    async def short_suggest(scope: Scope, receive: Receive, send: Send) -> bool:
        """`suggest`'s answer to a plainly valid query, sent; False: FastAPI's way answers."""
        params = _plain_suggest(scope["query_string"])
        if params is None or any(name in _BODY_HEADERS for name, _ in scope["headers"]):
            return False
        q, industry, description, k, scheme, also = params
        coder = registry.ready(scheme)
        if coder is None:  # not loaded yet, or a name to resolve
            return False
        try:
            response = await suggestion(coder, q, industry, description, k, also)
        except Exception:  # FastAPI's way codes it again and answers the error as it does (JSON)
            return False
        await response(scope, receive, send)
        return True

    app.short_suggest = short_suggest

    @app.post("/code", response_model=CodeResponse, tags=["coding"], summary="Code many titles",
              responses={
        400: {"model": ErrorOut, "description": "Malformed JSON."},
        413: {"model": ErrorOut, "description": f"Body over {max_body_bytes:,} bytes."},
        415: {"model": ErrorOut, "description": "Body is not JSON."}, **_ERRORS})
    async def code(body: CodeRequest) -> JSONResponse:
        """Code up to 1,000 titles (with optional industries and descriptions); results in input order.

        Blank or null titles are not errors: they come back `uncodable` with a reason.
        """
        coder = await registry.get(body.scheme)
        titles = [item.title for item in body.items]
        industries = [_given(item.industry) for item in body.items]
        descriptions = [_given(item.description) for item in body.items]
        results = []
        for start in range(0, len(titles), BATCH_CHUNK):
            stop = start + BATCH_CHUNK
            results += await engine.run(coder.code_many, titles[start:stop], industries[start:stop],
                                        descriptions[start:stop], k=body.k)
            if stop < len(titles) and engine.mode == "inline":
                await asyncio.sleep(0)  # let waiting suggestions in between chunks
        summary = dict.fromkeys(STATUSES, 0)
        for result in results:
            summary[result.status] += 1
        return JSONResponse({"scheme": coder.scheme_name, "k": body.k, "count": len(results),
                             "summary": summary, "results": [_coding(r, coder, also=body.also) for r in results]})

    @app.get("/schemes", response_model=SchemesOut, tags=["classifications"],
             summary="Classifications and their models")
    async def schemes() -> dict:
        """Every classification, and whether its model is loaded, built, or being built."""
        return {"default": registry.default, "schemes": await registry.describe()}

    @app.get("/codes/{scheme}/{code}", response_model=CodeInfo, tags=["classifications"],
             summary="Title and hierarchy of a code",
             responses={404: {"model": ErrorOut, "description": "Unknown scheme or code."},
                        422: _ERRORS[422]})
    async def code_info(
        scheme: Annotated[str, PathParam(description=SCHEME_DOC + ".",
                                         json_schema_extra={"enum": list(SCHEMES)})],
        code: Annotated[str, PathParam(description="A unit-group code or a group code above it "
                                                   "(digits: 3211, 321, 32, 3).", examples=["3211"],
                                       json_schema_extra={"pattern": "^[0-9]{1,4}$"})],
    ) -> dict:
        """Title and hierarchy (major group down) of a code at any level."""
        try:
            sch = load_scheme(scheme)
        except UnknownSchemeError as exc:
            raise ApiError(404, "unknown_scheme", str(exc)) from None
        title = sch.title(code)
        if code in sch.units:
            groups, level = sch.hierarchy(code), "unit"
        elif title is None:
            raise ApiError(404, "unknown_code", f"{sch.name} has no code {code!r}; "
                                                f"see /codes/{sch.name}/<code> for unit or group codes")
        else:
            groups, level = [], ""
            for lvl in sch.levels:  # a group code: walk down until its own level
                try:
                    prefix = sch.level_code(code, lvl)
                except ValueError:
                    break
                groups.append({"code": prefix, "title": sch.title(prefix) or "", "level": lvl})
                if prefix == code:
                    level = lvl
                    break
        hierarchy = [g if isinstance(g, dict) else {"code": g.code, "title": g.title, "level": g.level}
                     for g in groups]
        return {"scheme": sch.name, "code": code, "title": title or "", "level": level or "group",
                "is_unit": code in sch.units, "hierarchy": hierarchy}

    @app.get("/health", response_model=HealthOut, tags=["service"], summary="Liveness")
    async def health() -> dict:
        """Liveness: answers once the default model is loaded."""
        return {"status": "ok", "version": __version__, "default_scheme": registry.default,
                "loaded": registry.loaded, "uptime_seconds": round(time.time() - started, 1)}

    add_clerical_routes(app, coding=_coding, upload_max_bytes=max_upload_bytes)

    # ------------------------------------------------------------ pages and docs
    def headers(csp: str) -> dict[str, str]:
        return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    page, csp = _page()
    clerical_page, clerical_csp = _page("clerical.html")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=headers(csp))

    @app.get("/clerical", include_in_schema=False)
    async def clerical() -> HTMLResponse:
        return HTMLResponse(clerical_page, headers=headers(clerical_csp))

    assets = _swagger_assets()
    if assets is not None:
        from starlette.staticfiles import StaticFiles

        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        local = {} if assets is None else {
            "swagger_js_url": f"{root}/docs/assets/swagger-ui-bundle.js",
            "swagger_css_url": f"{root}/docs/assets/swagger-ui.css",
            "swagger_favicon_url": f"{root}/docs/assets/favicon-32x32.png",
        }
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="coder API", **local)

    return app
