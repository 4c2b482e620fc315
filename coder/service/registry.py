"""The coders a running service holds, and loading or building the others on demand.

The default scheme (soc2000 unless told otherwise) is loaded at start-up. Another scheme is
handled on its first request:

* its model is built and current on disk (``available``): it is loaded in a background
  thread (a few seconds) while that request, and any others for it, wait;
* it is not built, or only a stale build is there (``not_built``: the store keeps each build
  in a folder named by a hash of its data, code and library versions, and never loads one
  made from others): the request gets 503 with the reason and the command that builds it,
  unless the service was started with ``build_missing=True`` (``coder serve
  --build-missing``), in which case a background build starts (about half a minute) and
  requests get 503 with ``Retry-After`` until it is done. Building never runs on the event loop;
* its files are there but do not load (a checksum that does not match, a truncated file):
  ``failed``, 503 with the store's message; the next request tries again.

All state here is touched only from the event loop (async methods); threads only run
`Coder.load` and hand back a new `Coder`, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..engine import Coder
from ..store import stale_reason
from ..schemes import SCHEMES, load_scheme

__all__ = ["Registry", "ModelUnavailable", "check_model"]

log = logging.getLogger("coder.service")
T = TypeVar("T")

# Seconds a client is told to wait while a model is being built: a build from the shipped
# ranker takes about half a minute on 2 cores (a full build, without one, a few minutes).
BUILD_RETRY_AFTER = 15


class ModelUnavailable(Exception):
    """A known scheme whose model cannot answer now (HTTP 503)."""

    def __init__(self, scheme: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.scheme = scheme
        self.retry_after = retry_after


@dataclass
class _Slot:
    coder: Coder | None = None
    state: str = "unknown"  # loaded | loading | building | failed | unknown (look on disk)
    detail: str = ""
    future: asyncio.Future | None = None
    since: float = 0.0


def check_model(scheme: str, model_dir: str | Path | None = None, *, build: bool = True,
                progress: Callable[[str], None] | None = None) -> None:
    """Build the model for ``scheme`` if it is missing or stale; with ``build`` False, raise
    `ModelError` instead (the message `Coder.load` gives). Loads nothing: ``coder serve
    --workers N`` calls this once in its parent process, so that the workers, which load
    with ``build=False``, find the model there and never build it N times."""
    from ..errors import ModelError
    from ..store import ensure_built, model_files

    scheme = load_scheme(scheme).name
    if build:
        ensure_built(scheme, model_dir, progress=progress)
    elif (reason := stale_reason(scheme, model_dir)) is not None:
        where = model_files(scheme, model_dir)[0].parent.parent
        raise ModelError(f"{scheme} model in {where}: {reason}; run `coder build --scheme {scheme}`")


def in_daemon_thread(fn: Callable[[], T], name: str) -> asyncio.Future:
    """Run ``fn`` in a new daemon thread; an asyncio future for its result.

    Daemon, so a model build still running when the server stops does not hold the process.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(method: str, value: Any) -> None:
        if not future.done():
            getattr(future, method)(value)

    def run() -> None:
        try:
            result: Any = fn()
        except BaseException as exc:  # handed to the awaiting request, not lost in the thread
            method, result = "set_exception", exc
        else:
            method = "set_result"
        try:
            loop.call_soon_threadsafe(settle, method, result)
        except RuntimeError:  # the loop closed while we worked (server stopped)
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class Registry:
    """Coders by scheme name; see the module docstring for the lazy-loading rules."""

    def __init__(self, default: str, *, model_dir: str | Path | None = None,
                 build_missing: bool = False, decisions: Any = None) -> None:
        self.default = load_scheme(default).name
        self.model_dir = model_dir
        self.build_missing = build_missing
        self.decisions = decisions  # the decision store every coder loaded here uses
        self._slots: dict[str, _Slot] = {name: _Slot() for name in SCHEMES}

    # ------------------------------------------------------------------ set-up
    def add(self, coder: Coder) -> None:
        """Register an already loaded coder under its scheme."""
        self._slots[coder.scheme_name] = _Slot(coder=coder, state="loaded", since=time.time())

    async def preload(self, names: list[str], *, build: bool) -> None:
        """Load (building if ``build``) each scheme now; errors propagate (start-up fails)."""
        for name in names:
            name = load_scheme(name).name
            if self._slots[name].coder is None:
                coder = await asyncio.to_thread(Coder.load, name, model_dir=self.model_dir, build=build,
                                                decisions=self.decisions)
                self.add(coder)

    # ----------------------------------------------------------------- lookups
    @property
    def loaded(self) -> list[str]:
        return [name for name, slot in self._slots.items() if slot.coder is not None]

    def ready(self, name: str | None) -> Coder | None:
        """The loaded coder for ``name`` given exactly as its canonical name (None: the
        default), or None: not loaded, or a name `get` must first resolve."""
        slot = self._slots.get(self.default if name is None else name)
        return None if slot is None else slot.coder

    def canonical(self, name: str | None) -> str:
        """Canonical scheme name (the default for None); raises UnknownSchemeError."""
        return self.default if name is None else load_scheme(name).name

    async def get(self, name: str | None) -> Coder:
        """The coder for ``name``, loading it first if it is built; raises `ModelUnavailable`."""
        name = self.canonical(name)
        slot = self._slots[name]
        if slot.coder is not None:
            return slot.coder
        if slot.future is None:
            reason = await asyncio.to_thread(stale_reason, name, self.model_dir)
            if slot.coder is not None:  # another request finished it while we looked
                return slot.coder
            if slot.future is None:
                if reason is None:
                    self._start(name, "loading", build=False)
                elif self.build_missing:
                    self._start(name, "building", build=True, why=reason)
                else:
                    where = ("" if self.model_dir is None
                             else f" --model-dir {shlex.quote(str(self.model_dir))}")
                    raise ModelUnavailable(name, (
                        f"no current {name} model ({reason}); run `coder build --scheme {name}{where}` "
                        f"and retry, or start the service with `coder serve --schemes {name}` "
                        f"(or --build-missing)"))
        assert slot.future is not None
        if slot.state == "building":
            minutes = (time.time() - slot.since) / 60
            raise ModelUnavailable(name, (
                f"the {name} model is being built (started {minutes:.0f} min ago; a build takes about "
                f"half a minute from the shipped ranker, a few minutes in full); retry later"),
                retry_after=BUILD_RETRY_AFTER)
        try:
            return await asyncio.shield(slot.future)
        except Exception as exc:
            raise ModelUnavailable(name, f"the {name} model could not be loaded: {exc}") from exc

    def _start(self, name: str, state: str, *, build: bool, why: str = "") -> None:
        slot = self._slots[name]
        log.info("%s the %s model%s", state, name, f" ({why})" if why else "")
        slot.state, slot.detail, slot.since = state, why, time.time()
        slot.future = in_daemon_thread(
            lambda: Coder.load(name, model_dir=self.model_dir, build=build, decisions=self.decisions),
            name=f"coder-{state}-{name}")

        def done(future: asyncio.Future) -> None:
            slot.future = None
            if future.cancelled():
                slot.state, slot.detail = "failed", "cancelled"
            elif future.exception() is not None:
                slot.state, slot.detail = "failed", str(future.exception())
                log.error("%s the %s model failed: %s", state, name, slot.detail)
            else:
                slot.coder, slot.state, slot.detail = future.result(), "loaded", ""
                log.info("the %s model is loaded (%.1f s)", name, time.time() - slot.since)

        slot.future.add_done_callback(done)

    async def describe(self) -> list[dict]:
        """One dict per scheme (the shape of `SchemeInfo`)."""
        out = []
        for name, slot in self._slots.items():
            scheme = load_scheme(name)
            state, detail = slot.state, slot.detail
            if slot.coder is None and slot.future is None and state != "failed":
                reason = await asyncio.to_thread(stale_reason, name, self.model_dir)
                state, detail = ("available", "") if reason is None else ("not_built", reason)
            out.append({
                "name": name, "default": name == self.default, "loaded": slot.coder is not None,
                "state": "loaded" if slot.coder is not None else state, "detail": detail,
                "units": len(scheme), "levels": list(scheme.levels),
                "threshold": slot.coder.threshold if slot.coder is not None else None,
            })
        return out
