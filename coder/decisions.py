"""A store of coders' decisions (SQLite), and what would decide a vague answer.

Clerical coding is half of a survey team's work: people pick codes for the answers the coder
referred. `DecisionStore` keeps every such decision so that none has to be made twice. Given
to `coder.engine.Coder` (``Coder.load(..., decisions=store)``), an answer decided before comes
back with the decided code (method ``learned``, the decision quoted as its matched entry), and
similar answers get the decisions as evidence through the learned stage. Learned data lives
only in the store: the shipped index and data files are never changed.

The store
---------
One SQLite file (the standard library's ``sqlite3``), by default ``decisions.sqlite`` next to
the model folder (`default_store_path`; ``$CODER_STORE`` or ``--store`` choose another). The
file and its tables are made on the first write; reading a store that does not exist yet
finds nothing. It is opened in WAL mode with a busy timeout, and every write is one
``BEGIN IMMEDIATE`` transaction, so several clerks, threads and processes can read and write
at once: writers queue for a moment, readers never wait. (WAL needs a local file system: keep
the store off network shares.)

Each decision keeps the answer as given (title, industry, description), the answer as the
coder reads it (the normalised *key*: `answer_key`), the code, the scheme, who made it, when
(UTC, ISO 8601), its source and, for imports and queues, where it came from:

* ``clerical``: a person chose the code (the clerical page, ``POST /decisions``);
* ``imported``: a row of a team's coded file (``coder learn FILE``);
* ``override``: a decision that settles the answer on its own: the latest override of an
  answer beats any number of other decisions.

Conflicts
---------
Decisions are never overwritten: when coders give one answer different codes, all are kept.
Without an override the majority decides: the code more than half of the answer's decisions
gave. Where no code has a majority (a tie, or a three-way split), the answer comes back as a
``refer`` with the reason "coders decided this answer differently" and the most frequent
codes first (`coder.results.Decided` carries the votes). `DecisionStore.conflicts` lists
them; ``coder learn`` reports those an import made.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .results import Decided
from .schemes import load_scheme

if TYPE_CHECKING:  # pragma: no cover
    from .results import Result

__all__ = [
    "DecisionStore", "DecisionSnapshot", "Decision", "Conflict", "ImportReport", "FollowUp", "FollowUpOption",
    "answer_key", "default_store_path", "follow_up", "SOURCES", "STORE_ENV",
]

Key = tuple[str, str, str]  # an answer as the coder reads it: (title, industry, description), normalised
SOURCES = ("clerical", "imported", "override")
STORE_ENV = "CODER_STORE"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another to finish before giving up
FEW_KEYS = 64  # lookups of up to this many answers query the file per answer (no table scan)
# Connections of one process are set up one at a time (see `DecisionStore._open`).
_SETUP_LOCK = threading.Lock()


def _contended(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection held the file (worth another try)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scheme TEXT NOT NULL,
    title TEXT NOT NULL,
    industry TEXT,
    description TEXT,
    key_title TEXT NOT NULL,
    key_industry TEXT NOT NULL,
    key_description TEXT NOT NULL,
    code TEXT NOT NULL,
    who TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('clerical', 'imported', 'override')),
    origin TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_by_key
    ON decisions (scheme, key_title, key_industry, key_description);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scheme TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    rows INTEGER NOT NULL,
    imported INTEGER NOT NULL,
    who TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    UNIQUE (scheme, sha256)
);
"""


def default_store_path(model_dir: str | os.PathLike | None = None) -> Path:
    """Where the decision store lives: ``$CODER_STORE``, else ``decisions.sqlite`` beside the
    model folder (``model_dir`` if given, else `coder._paths.model_dir`)."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    if model_dir is None:
        from ._paths import model_dir as default_model_dir

        base = default_model_dir()
    else:
        base = Path(model_dir).expanduser()
    return base.resolve().parent / "decisions.sqlite"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value.__class__.__name__ in {"NAType", "NaTType"}:
        return True
    return not str(value).strip()


def _given(value: object) -> str | None:
    """Text as given, None where absent."""
    return None if _blank(value) else str(value)


def answer_key(title: object, industry: object = None, description: object = None) -> Key | None:
    """The answer as `coder.engine.Coder` reads it (its lookup key), or None when the title
    cannot be coded at all (missing, no letters, not an occupation).

    Mirrors `Coder.learn`: industry and description that say nothing ("n/a", "same") count
    as absent, as `Coder` treats them.

    >>> answer_key("Snr Software Dev", "n/a")
    ('senior software developer', '', '')
    """
    from . import engine
    from .answer import read_answer
    from .engine import MISSING_MARKERS, screen

    context = getattr(engine, "context_text", None)
    if context is None:  # until the engine says it itself: what `Coder._context` does
        from .errors import Reason
        from .normalise import normalise

        def context(value: object) -> str | None:
            text = _given(value)
            if text is None or screen(text, MISSING_MARKERS) not in (None, Reason.NO_LETTERS):
                return None
            return None if normalise(text) in engine._EMPTY_CONTEXT else text

    text = None if title is None else str(title)
    if text is None or screen(title if isinstance(title, str) else text, MISSING_MARKERS) is not None:
        return None
    read = read_answer(text, context(industry), context(description))
    if read.not_occupation or not read.title:
        return None
    return (read.title, read.industry, read.description)


@dataclass(frozen=True)
class Decision:
    """One stored decision: the answer as given and as read (``key``), its code and provenance."""

    id: int
    scheme: str
    title: str
    industry: str | None
    description: str | None
    key: Key
    code: str
    who: str
    when: str
    source: str
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "scheme": self.scheme, "title": self.title, "industry": self.industry,
                "description": self.description, "key": list(self.key), "code": self.code,
                "who": self.who, "when": self.when, "source": self.source, "origin": self.origin}


@dataclass(frozen=True)
class Conflict:
    """An answer coders gave different codes: one example of it as given, the votes per code
    (most first) and the code that stands (None: no majority, the answer is referred)."""

    key: Key
    title: str
    industry: str | None
    description: str | None
    votes: tuple[tuple[str, int], ...]
    majority: str | None

    def describe(self) -> str:
        context = "".join(f" [{label}: {value}]" for label, value in
                          (("industry", self.industry), ("does", self.description)) if value)
        votes = ", ".join(f"{code} x{n}" for code, n in self.votes)
        verdict = f"{self.majority} stands" if self.majority else "no majority: referred"
        return f"{self.title!r}{context}: {votes} ({verdict})"


@dataclass
class ImportReport:
    """What `DecisionStore.import_answers` did.

    ``rows`` read; ``imported`` stored as decisions; ``duplicates`` of those repeated an answer
    already decided with the same code (in the store or earlier in the file: they add weight
    to that code, nothing else); ``skipped`` rows by reason (no title, no code, a code that is
    not a unit group of the scheme, ...); ``conflicts`` the answers the import touched that now
    have more than one code; ``already`` the earlier import of the very same file, when it
    was imported before (then nothing is stored again).
    """

    name: str
    scheme: str
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_skipped: dict[str, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    already: dict[str, Any] | None = None

    def lines(self, limit: int = 10) -> list[str]:
        """The report as lines for people."""
        if self.already is not None:
            return [f"{self.name}: nothing imported; this file was imported already for {self.scheme} "
                    f"(import {self.already['id']}, {self.already['at']}, {self.already['imported']:,} decisions)"]
        out = [f"{self.name}: {self.rows:,} rows read, {self.imported:,} imported as {self.scheme} decisions, "
               f"{self.duplicates:,} duplicates (same answer, same code as a decision already made), "
               f"{len(self.conflicts):,} conflicts (same answer, different codes; all kept, the majority decides)"]
        for reason, n in self.skipped.most_common():
            out.append(f"  skipped {n:,} rows: {reason} (first: {self.first_skipped[reason]})")
        no_majority = sum(c.majority is None for c in self.conflicts)
        if self.conflicts:
            out.append(f"  conflicts{f' ({no_majority:,} with no majority, referred)' if no_majority else ''}:")
            for conflict in self.conflicts[:limit]:
                out.append(f"    {conflict.describe()}")
            if len(self.conflicts) > limit:
                out.append(f"    ... and {len(self.conflicts) - limit:,} more (coder learn --list shows them all)")
        return out


_VOTES = """SELECT key_title, key_industry, key_description, code, COUNT(*), MAX(id), who, at, source
             FROM decisions WHERE scheme = ?{where} GROUP BY key_title, key_industry, key_description, code"""
_OVERRIDES = """SELECT key_title, key_industry, key_description, code, MAX(id), who, at
                FROM decisions WHERE scheme = ? AND source = 'override'{where}
                GROUP BY key_title, key_industry, key_description"""
_ONE_KEY = " AND key_title = ? AND key_industry = ? AND key_description = ?"
# With a single MAX() aggregate SQLite takes the bare columns (who, at, source) from the row
# holding the maximum: the latest decision of the group.


def _decided(votes: Sequence[tuple], override: tuple | None) -> Decided:
    """The decision that stands for one answer, from its votes per code (code, n, last id,
    who, at, source) and its latest override (code, id, who, at), if any."""
    if override is not None:
        code, _, who, at = override
        return Decided(code, 1, 1, who, at, "override")
    total = sum(v[1] for v in votes)
    best = max(votes, key=lambda v: (v[1], v[2]))  # most votes; among equals the latest
    return Decided(best[0], best[1], total, best[3], best[4], best[5])


class DecisionStore:
    """Coders' decisions in one SQLite file; implements `coder.engine.Decisions`.

    Parameters
    ----------
    path : path, optional
        The SQLite file (made on the first write). Default: `default_store_path`.

    Examples
    --------
    >>> store = DecisionStore("decisions.sqlite")                        # doctest: +SKIP
    >>> coder = Coder.load("soc2000", decisions=store)                   # doctest: +SKIP
    >>> coder.learn("sparky", code="5241", who="ann")                    # doctest: +SKIP
    >>> coder.code("sparky").method                                      # doctest: +SKIP
    'learned'

    Safe to share between threads (each gets its own connection) and to pickle (a copy
    opens the same file); several processes may use one file at once.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._local = threading.local()
        self._generation = 0  # bumped on every write made through this object
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DecisionStore({str(self.path)!r})"

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    # ---------------------------------------------------------------- connections
    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """This thread's connection (None when the file does not exist and ``create`` is off)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        if not create and not self.path.is_file():
            return None
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create the decision store's folder {self.path.parent}: "
                                 f"{exc.strerror or exc}") from None
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                conn = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL, or creating its tables, while another connection
                # does the same can fail at once with "locked" or "busy", without the busy
                # timeout: try again until the timeout has passed.
                if not _contended(exc) or time.monotonic() > deadline:
                    raise self._unusable(exc) from None
                time.sleep(0.02)
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from None
        local.conn, local.pid, local.cache = conn, os.getpid(), {}
        return conn

    def _open(self) -> sqlite3.Connection:
        """A new connection, in WAL mode with the busy timeout, the schema in place. One thread
        of this process at a time sets one up (other processes are waited for by `_connection`)."""
        with _SETUP_LOCK:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._ensure_schema(conn)
            except BaseException:
                conn.close()
                raise
            return conn

    def _unusable(self, exc: sqlite3.DatabaseError) -> InputError:
        return InputError(f"{self.path} is not a usable decision store ({exc}); give another "
                          "--store path or move this file away")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if exists:
            row = conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise InputError(f"{self.path} was written by a newer version of coder "
                                 f"(store version {version}); upgrade coder to use it")
            if version == SCHEMA_VERSION:
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: one writer at a time, others wait up to the
        busy timeout). Commits on success, rolls back on any error."""
        conn = self._connection(create=True)
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        with self._lock:
            self._generation += 1

    def read(self) -> sqlite3.Connection | None:
        """This thread's connection for reading (None while the store does not exist)."""
        return self._connection(create=False)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---------------------------------------------------------------- the Decisions protocol
    def _standing(self, scheme: str) -> dict[Key, Decided]:
        """Every answer of ``scheme`` with the decision that stands; cached per thread until
        the file changes (this process's writes, or another connection's: data_version)."""
        conn = self.read()
        if conn is None:
            return {}
        version = (conn.execute("PRAGMA data_version").fetchone()[0], self._generation)
        cache = self._local.cache
        hit = cache.get(scheme)
        if hit is not None and hit[0] == version:
            return hit[1]
        votes: dict[Key, list[tuple]] = {}
        for kt, ki, kd, code, n, last, who, at, source in conn.execute(_VOTES.format(where=""), (scheme,)):
            votes.setdefault((kt, ki, kd), []).append((code, n, last, who, at, source))
        overrides = {(kt, ki, kd): (code, last, who, at) for kt, ki, kd, code, last, who, at
                     in conn.execute(_OVERRIDES.format(where=""), (scheme,))}
        standing = {key: _decided(v, overrides.get(key)) for key, v in votes.items()}
        cache[scheme] = (version, standing)
        return standing

    def lookup(self, scheme: str, keys: Sequence[Key]) -> dict[Key, Decided]:
        """The decision that stands for each of ``keys`` that has one (see the module docstring)."""
        name = load_scheme(scheme).name
        conn = self.read()
        if conn is None or not keys:
            return {}
        if len(keys) <= FEW_KEYS:
            # A few answers (the service, one suggestion at a time): straight from the index
            # on the file, never the whole table; big batches read the table once (cached).
            out = {}
            for key in map(tuple, keys):
                decided = self._key_decision(conn, name, key)  # type: ignore[arg-type]
                if decided is not None:
                    out[key] = decided
            return out
        standing = self._standing(name)
        return {key: standing[key] for key in map(tuple, keys) if key in standing}

    def decided(self, scheme: str) -> list[tuple[Key, str]]:
        """Every decided answer of ``scheme`` with the code that stands; answers with no
        majority are left out (they are evidence of nothing)."""
        return _majorities(self._standing(load_scheme(scheme).name))

    def snapshot(self, scheme: str) -> DecisionSnapshot:
        """The decisions that stand for ``scheme`` now, in memory: for coders that cannot
        open this file (a Dask cluster's workers)."""
        name = load_scheme(scheme).name
        return DecisionSnapshot(name, dict(self._standing(name)))

    def record(self, scheme: str, answer: tuple[object, object, object], key: Key, code: str, *,
               who: str = "", source: str = "clerical", origin: str = "") -> Decided:
        """Store one decision: the raw ``answer`` (title, industry, description), read as
        ``key``, is ``code``. Returns the decision that now stands for the answer."""
        return self.record_decision(scheme, answer, key, code, who=who, source=source, origin=origin)[1]

    def record_decision(self, scheme: str, answer: tuple[object, object, object], key: Key, code: str, *,
                        who: str = "", source: str = "clerical", origin: str = "") -> tuple[Decision, Decided]:
        """`record`, also returning the stored `Decision` (with its id, for undo)."""
        sch = load_scheme(scheme)
        code = str(code).strip()
        if code not in sch:
            raise InputError(f"{code!r} is not a {sch.name} unit group")
        if source not in SOURCES:
            raise InputError(f"unknown decision source {source!r}; one of {', '.join(SOURCES)}")
        title, industry, description = (_given(v) for v in answer)
        key = tuple(str(k or "") for k in key)  # type: ignore[assignment]
        if title is None or not key[0]:
            raise InputError("a decision needs a job title")
        at = _now()
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO decisions (scheme, title, industry, description, key_title, key_industry, "
                "key_description, code, who, at, source, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (sch.name, title, industry, description, *key, code, who or "", at, source, origin or ""))
            decision = Decision(int(cur.lastrowid or 0), sch.name, title, industry, description, key, code,
                                who or "", at, source, origin or "")
            standing = self._key_decision(conn, sch.name, key)
        assert standing is not None
        self._local.last = decision
        return decision, standing

    def last_recorded(self) -> Decision | None:
        """The decision this thread stored last (`Coder.learn` returns only the standing one)."""
        return getattr(self._local, "last", None)

    def _key_decision(self, conn: sqlite3.Connection, scheme: str, key: Key) -> Decided | None:
        """The decision that stands for one answer, straight from the file (None: undecided)."""
        votes = [(code, n, last, who, at, source) for _, _, _, code, n, last, who, at, source
                 in conn.execute(_VOTES.format(where=_ONE_KEY), (scheme, *key))]
        if not votes:
            return None
        over = conn.execute(_OVERRIDES.format(where=_ONE_KEY), (scheme, *key)).fetchone()
        return _decided(votes, None if over is None else over[3:])

    # ---------------------------------------------------------------- the rest
    def get(self, decision_id: int) -> Decision | None:
        conn = self.read()
        if conn is None:
            return None
        row = conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE id = ?", (int(decision_id),)).fetchone()
        return _decision(row) if row else None

    def list(self, scheme: str | None = None, *, source: str | None = None, who: str | None = None,
             key: Key | None = None, limit: int | None = None, newest_first: bool = False) -> list[Decision]:
        """Stored decisions (oldest first unless ``newest_first``), optionally only one
        scheme's, source's, clerk's or answer's."""
        conn = self.read()
        if conn is None:
            return []
        where, args = [], []
        if scheme is not None:
            where.append("scheme = ?"), args.append(load_scheme(scheme).name)
        if source is not None:
            where.append("source = ?"), args.append(source)
        if who is not None:
            where.append("who = ?"), args.append(who)
        if key is not None:
            where.append("key_title = ? AND key_industry = ? AND key_description = ?"), args.extend(key)
        sql = f"SELECT {_COLUMNS} FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_decision(row) for row in conn.execute(sql, args)]

    def count(self, scheme: str | None = None) -> int:
        conn = self.read()
        if conn is None:
            return 0
        if scheme is None:
            return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM decisions WHERE scheme = ?",
                                (load_scheme(scheme).name,)).fetchone()[0])

    def forget(self, decision_id: int | None = None, *, scheme: str | None = None,
               answer: tuple[object, object, object] | None = None) -> list[Decision]:
        """Remove one decision (by ``decision_id``), or every decision of one ``answer``
        (title, industry, description as given; read as `answer_key` reads it) in ``scheme``.
        Returns what was removed (empty when nothing matched)."""
        if (decision_id is None) == (answer is None):
            raise InputError("forget needs a decision id or an answer, not both")
        if decision_id is not None:
            where, args = "id = ?", [int(decision_id)]
        else:
            key = answer_key(*answer)  # type: ignore[misc]
            if key is None:
                raise InputError(f"{answer[0]!r} is not a codable job title, so "  # type: ignore[index]
                                 "no decision has it")
            where = "scheme = ? AND key_title = ? AND key_industry = ? AND key_description = ?"
            args = [load_scheme(scheme or "soc2000").name, *key]
        if self.read() is None:
            return []
        with self.transaction() as conn:
            gone = [_decision(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM decisions WHERE {where}", args)]
            conn.execute(f"DELETE FROM decisions WHERE {where}", args)
        return gone

    def conflicts(self, scheme: str, keys: Iterable[Key] | None = None) -> list[Conflict]:
        """Answers of ``scheme`` (all, or those of ``keys``) that coders gave more than one code,
        in the order first decided."""
        conn = self.read()
        if conn is None:
            return []
        sch = load_scheme(scheme).name
        wanted = None if keys is None else {tuple(k) for k in keys}
        rows = conn.execute(
            """SELECT key_title, key_industry, key_description, code, COUNT(*), MIN(id)
               FROM decisions WHERE scheme = ? AND (key_title, key_industry, key_description) IN
                    (SELECT key_title, key_industry, key_description FROM decisions WHERE scheme = ?
                     GROUP BY key_title, key_industry, key_description HAVING COUNT(DISTINCT code) > 1)
               GROUP BY key_title, key_industry, key_description, code""", (sch, sch)).fetchall()
        votes: dict[Key, list[tuple[str, int]]] = {}
        first: dict[Key, int] = {}
        for kt, ki, kd, code, n, min_id in rows:
            key = (kt, ki, kd)
            if wanted is not None and key not in wanted:
                continue
            votes.setdefault(key, []).append((code, n))
            first[key] = min(first.get(key, min_id), min_id)
        standing = self._standing(sch)
        out = []
        for key in sorted(votes, key=first.__getitem__):
            example = conn.execute("SELECT title, industry, description FROM decisions WHERE id = ?",
                                   (first[key],)).fetchone()
            decided = standing.get(key)
            majority = decided.code if decided is not None and decided.share > 0.5 else None
            out.append(Conflict(key, example[0], example[1], example[2],
                                tuple(sorted(votes[key], key=lambda cv: (-cv[1], cv[0]))), majority))
        return out

    def export(self, path: str | os.PathLike, scheme: str | None = None) -> int:
        """Write every decision (of ``scheme``, or all) to a CSV file, atomically; returns rows.

        Columns: id, scheme, title, industry, description, code, who, when, source, origin,
        key_title, key_industry, key_description. ``coder learn`` reads such a file back
        (``--column title --code-column code --industry-column industry
        --description-column description``).
        """
        from ._atomic import atomic_write
        from .batch.formats import escape_formula

        decisions = self.list(scheme)
        header = ["id", "scheme", "title", "industry", "description", "code", "who", "when", "source",
                  "origin", "key_title", "key_industry", "key_description"]

        def write(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                out = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
                out.writerow(header)
                for d in decisions:
                    out.writerow([d.id, d.scheme, *(escape_formula(v or "") for v in
                                                   (d.title, d.industry, d.description)),
                                  d.code, escape_formula(d.who), d.when, d.source, escape_formula(d.origin),
                                  *d.key])

        if Path(path).suffix.lower() != ".csv":
            raise InputError(f"{path}: decisions are exported as CSV; give a file name ending in .csv")
        atomic_write(path, write)
        return len(decisions)

    # ---------------------------------------------------------------- imports
    def import_answers(self, scheme: str, titles: Sequence[object], codes: Sequence[object],
                       industries: Sequence[object] | None = None, descriptions: Sequence[object] | None = None,
                       *, who: str = "", source: str = "imported", name: str = "",
                       sha256: str | None = None, first_row: int = 1) -> ImportReport:
        """Store coded answers as decisions, one per row with a title and a unit-group code.

        Rows whose code is blank or the missing code (-9) are skipped (nothing was decided),
        as are rows whose title cannot be coded. ``sha256`` identifies the file: a file
        imported before (same scheme, same bytes) is not imported again (see
        `ImportReport.already`). ``first_row`` numbers the rows in messages.
        """
        sch = load_scheme(scheme)
        if source not in SOURCES:
            raise InputError(f"unknown decision source {source!r}; one of {', '.join(SOURCES)}")
        n = len(titles)
        industries = [None] * n if industries is None else list(industries)
        descriptions = [None] * n if descriptions is None else list(descriptions)
        codes = list(codes)
        if not len(codes) == len(industries) == len(descriptions) == n:
            raise ValueError("titles, codes, industries and descriptions differ in length")
        report = ImportReport(name or "answers", sch.name, rows=n)
        if sha256 is not None:
            previous = self._import_record(sch.name, sha256)
            if previous is not None:
                report.already = previous
                return report

        def skip(reason: str, row: int, shown: object) -> None:
            report.skipped[reason] += 1
            report.first_skipped.setdefault(reason, f"row {row + first_row}, {str(shown)[:60]!r}")

        rows = []
        keys_cache: dict[tuple, Key | None] = {}
        for i, (title, code, industry, description) in enumerate(zip(titles, codes, industries, descriptions)):
            code_text = "" if _blank(code) else _code_text(code)
            if not code_text or code_text == "-9":
                skip("no code", i, title)
                continue
            if code_text not in sch:
                skip(f"not a {sch.name} unit group", i, code_text)
                continue
            raw = (_given(title), _given(industry), _given(description))
            if raw[0] is None:
                skip("no title", i, title)
                continue
            if raw not in keys_cache:
                keys_cache[raw] = answer_key(*raw)
            key = keys_cache[raw]
            if key is None:
                skip("not a codable job title (missing marker, no letters, not an occupation)", i, title)
                continue
            rows.append((raw, key, code_text))
        at = _now()
        with self.transaction() as conn:
            before: dict[Key, set[str]] = {}
            touched = {key for _, key, _ in rows}
            for key in touched:
                before[key] = {c for (c,) in conn.execute(
                    "SELECT DISTINCT code FROM decisions WHERE scheme = ? AND key_title = ? AND "
                    "key_industry = ? AND key_description = ?", (sch.name, *key))}
            for _, key, code in rows:
                seen = before[key]
                if code in seen:
                    report.duplicates += 1
                seen.add(code)
            conn.executemany(
                "INSERT INTO decisions (scheme, title, industry, description, key_title, key_industry, "
                "key_description, code, who, at, source, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(sch.name, *raw, *key, code, who or "", at, source, name or "") for raw, key, code in rows])
            report.imported = len(rows)
            if sha256 is not None:
                conn.execute("INSERT INTO imports (scheme, sha256, name, rows, imported, who, at) "
                             "VALUES (?,?,?,?,?,?,?)", (sch.name, sha256, name or "", n, len(rows), who or "", at))
        report.conflicts = self.conflicts(sch.name, touched) if touched else []
        return report

    def import_file(self, path: str | os.PathLike, column: str, code_column: str, *,
                    industry_column: str | None = None, description_column: str | None = None,
                    scheme: str = "soc2000", who: str = "", encoding: str | None = None,
                    again: bool = False) -> ImportReport:
        """Import a team's coded file (CSV, TSV, Excel, Parquet, Stata, SPSS: read as
        ``coder code`` reads its input): the answer in ``column`` (with ``industry_column`` and
        ``description_column`` if given) was coded ``code_column``. A file imported before is
        skipped unless ``again``."""
        from .batch.formats import open_source
        from .batch.frame import check_columns

        source = open_source(path, encoding=encoding)
        named = {"title": column, "code": code_column, "industry": industry_column,
                 "description": description_column}
        check_columns(source.columns, named, [], str(path))
        titles: list[object] = []
        codes: list[object] = []
        industries: list[object] = []
        descriptions: list[object] = []
        for chunk in source.chunks(100_000):
            titles += chunk[column].tolist()
            codes += chunk[code_column].tolist()
            if industry_column:
                industries += chunk[industry_column].tolist()
            if description_column:
                descriptions += chunk[description_column].tolist()
        digest = None if again else _file_sha256(path)
        return self.import_answers(scheme, titles, codes, industries if industry_column else None,
                                   descriptions if description_column else None, who=who,
                                   name=Path(path).name, sha256=digest, first_row=1)

    def _import_record(self, scheme: str, sha256: str) -> dict[str, Any] | None:
        conn = self.read()
        if conn is None:
            return None
        row = conn.execute("SELECT id, name, rows, imported, who, at FROM imports WHERE scheme = ? AND sha256 = ?",
                           (scheme, sha256)).fetchone()
        return None if row is None else dict(zip(("id", "name", "rows", "imported", "who", "at"), row))


_COLUMNS = ("id, scheme, title, industry, description, key_title, key_industry, key_description, code, "
            "who, at, source, origin")


class DecisionSnapshot:
    """The decisions that stood for one scheme at one moment, read-only, in memory; implements
    the lookups of `coder.engine.Decisions` (`DecisionStore.snapshot`). Pickles with its
    decisions, so it travels to processes that cannot open the store's file. ``token`` names
    its content: equal snapshots have equal tokens."""

    def __init__(self, scheme: str, standing: dict[Key, Decided]):
        self.scheme = scheme
        self.standing = standing
        digest = hashlib.sha256("\n".join(sorted(map(repr, standing.items()))).encode("utf-8"))
        self.token = f"{scheme}:{len(standing)}:{digest.hexdigest()[:16]}"

    def __repr__(self) -> str:
        return f"DecisionSnapshot({self.scheme!r}, {len(self.standing):,} answers)"

    def _holds(self, scheme: str) -> bool:
        """Whether ``scheme`` (any of its names) is this snapshot's: others have no decisions."""
        return load_scheme(scheme).name == self.scheme

    def count(self, scheme: str | None = None) -> int:
        """Answers decided (for ``scheme``: this snapshot's, or none for another scheme)."""
        return len(self.standing) if scheme is None or self._holds(scheme) else 0

    def lookup(self, scheme: str, keys: Sequence[Key]) -> dict[Key, Decided]:
        """The decision that stood for each of ``keys`` that had one."""
        if not self._holds(scheme):
            return {}
        return {key: self.standing[key] for key in map(tuple, keys) if key in self.standing}

    def decided(self, scheme: str) -> list[tuple[Key, str]]:
        """As `DecisionStore.decided`, at the snapshot's moment."""
        return _majorities(self.standing) if self._holds(scheme) else []

    def record(self, *args: object, **kwargs: object) -> Decided:
        raise InputError("a decision snapshot is read-only: record decisions in the store it was taken from")


def _majorities(standing: dict[Key, Decided]) -> list[tuple[Key, str]]:
    """Each answer's code where a majority of its decisions gave it; answers with no majority
    are left out (they are evidence of nothing)."""
    return [(key, d.code) for key, d in standing.items() if d.share > 0.5]


def _decision(row: tuple) -> Decision:
    (id_, scheme, title, industry, description, kt, ki, kd, code, who, at, source, origin) = row
    return Decision(id_, scheme, title, industry, description, (kt, ki, kd), code, who, at, source, origin)


def _code_text(value: object) -> str:
    """A code cell as text: 3211.0 (a spreadsheet's number) is '3211'; leading zeros kept."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        return text[:-2]
    return text


def _file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- follow-up prompts
@dataclass(frozen=True)
class FollowUpOption:
    """One candidate and the qualifiers of its index entries that would choose it."""

    code: str
    title: str
    qualifiers: tuple[str, ...]


@dataclass(frozen=True)
class FollowUp:
    """What would decide between candidates whose index entries differ only by a qualifier.

    ``field`` is the part of the answer that would settle it: ``industry`` (the entries'
    industry qualifiers differ) or ``description`` (their other qualifiers, mostly what the
    person does, differ); ``missing`` says the answer did not give it; ``entry`` is the
    index title the candidates share ("Manager").
    """

    field: str
    question: str
    missing: bool
    entry: str
    options: tuple[FollowUpOption, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "question": self.question, "missing": self.missing, "entry": self.entry,
                "options": [{"code": o.code, "title": o.title, "qualifiers": list(o.qualifiers)}
                            for o in self.options]}


_QUESTIONS = {"industry": "Which industry or employer?", "description": "What do they mainly do?"}
MAX_QUALIFIERS = 4  # per option: the matched entry's first, then others of the same title and code


@lru_cache(maxsize=1)
def _index_entries() -> tuple[dict[str, list], dict[str, list]]:
    """The coding index by quoted entry ("Manager (hotel)") and by (natural title, scheme code)."""
    from .index import load_index

    entries, _ = load_index()
    by_text: dict[str, list] = {}
    by_title: dict[str, list] = {}
    for entry in entries:
        by_text.setdefault(entry.describe(), []).append(entry)
        by_title.setdefault(entry.natural.casefold(), []).append(entry)
    return by_text, by_title


def follow_up(result: "Result", *, limit: int = 5) -> list[FollowUp]:
    """What would decide between ``result``'s candidates, when they differ only by what the
    answer did not say.

    Looks at the candidates' matched index entries: where two or more candidates with
    different codes matched entries of the same index title ("Manager (hotel)", "Manager
    (banking)"), the qualifiers that tell those entries apart are what would decide. Industry
    qualifiers (the index's IND) give an ``industry`` prompt, the others (ADD: a specialism
    or what the person does) a ``description`` prompt. Each option lists the qualifiers of
    that code's entries with that title, the matched one first. Empty when the candidates do
    not share an index title (they differ by more than a qualifier).

    >>> [f.question for f in follow_up(coder.code("manager"))]    # doctest: +SKIP
    ['Which industry or employer?']
    """
    from .schemes import load_scheme as _scheme

    scheme = _scheme(result.scheme)
    by_text, by_title = _index_entries()
    matched: dict[str, list[tuple[Any, Any]]] = {}  # natural title -> [(candidate, entry)]
    for cand in result.candidates[:limit]:
        for entry in by_text.get(cand.matched_entry, ()):
            if entry.code(scheme.name) == cand.code:
                matched.setdefault(entry.natural.casefold(), []).append((cand, entry))
                break
    out: list[FollowUp] = []
    for title, pairs in matched.items():
        codes = list(dict.fromkeys(c.code for c, _ in pairs))
        if len(codes) < 2:
            continue
        siblings = [e for e in by_title.get(title, ()) if e.code(scheme.name) in codes]
        for fld, qualifier in (("industry", lambda e: e.ind), ("description", lambda e: e.add)):
            per_code: dict[str, list[str]] = {}
            for cand, entry in pairs:
                if qualifier(entry):
                    per_code.setdefault(cand.code, []).append(qualifier(entry))
            for entry in siblings:
                q = qualifier(entry)
                code = entry.code(scheme.name)
                if q and q not in per_code.get(code, []):
                    per_code.setdefault(code, []).append(q)
            if len([c for c in codes if per_code.get(c)]) < 2:
                continue  # this kind of qualifier does not separate them
            given = result.industry if fld == "industry" else result.description
            options = tuple(FollowUpOption(c, scheme.title(c) or "", tuple(per_code[c][:MAX_QUALIFIERS]))
                            for c in codes if per_code.get(c))
            out.append(FollowUp(fld, _QUESTIONS[fld], given is None, pairs[0][1].natural, options))
    out.sort(key=lambda f: (not f.missing, f.field != "industry"))
    return out
