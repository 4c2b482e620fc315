"""Clerical queues: the referred answers of a file, worked through by several clerks at once.

A queue is made from a referral file (``coder code --refer``) or from a coded file (its rows
with status ``refer``), uploaded to the service or named with ``coder serve --queue FILE``.
Its rows are grouped into *items*, one per distinct answer as the coder reads it (survey
answers repeat: "sparky" decided once is decided for all its rows). Queues live in the
decision store's SQLite file, beside the decisions, so they survive a restart and several
service processes can share them.

Two clerks never get the same item at once: `QueueStore.claim` hands each clerk's session
the first free item and *leases* it (for `LEASE_SECONDS`, renewed by the clerk's activity);
an item another session holds is skipped until its lease runs out. Every change is one
``BEGIN IMMEDIATE`` transaction, so two clerks (or processes) deciding at the same moment
are serialised, and a decision is never overwritten: deciding an item someone else decided
or holds is refused (HTTP 409), and only the clerk who decided an item can undo it.

`QueueStore.export` writes the file back with every row, in order, and the decisions merged
in: a decided row gets its code, status ``auto``, method ``learned`` and the decision quoted
as its matched entry (what ``coder code`` writes for a learned answer); a row marked
uncodable gets the missing code and status ``uncodable``; undecided rows are as they were.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..decisions import DecisionStore, _file_sha256, answer_key
from ..errors import InputError
from ..schemes import MISSING_CODE, SCHEMES, load_scheme

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["QueueStore", "QueueInfo", "Progress", "LeaseError", "LEASE_SECONDS", "guess_columns",
           "EXPORT_FORMATS"]

LEASE_SECONDS = 300  # an item is a clerk's for this long after they last touched it
EXPORT_FORMATS = ("csv", "tsv", "txt", "xlsx", "parquet", "dta", "sav")
_NAME = re.compile(r"^[^/\\\x00]{1,200}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scheme TEXT NOT NULL,
    kind TEXT NOT NULL,
    title_column TEXT NOT NULL,
    industry_column TEXT,
    description_column TEXT,
    path TEXT,
    content BLOB,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_items (
    queue_id TEXT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    item INTEGER NOT NULL,
    rows TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    first_row INTEGER NOT NULL,
    title TEXT NOT NULL,
    industry TEXT,
    description TEXT,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'decided', 'uncodable')),
    code TEXT,
    decision_id INTEGER,
    who TEXT,
    session TEXT,
    at TEXT,
    lease_session TEXT,
    lease_who TEXT,
    lease_until REAL,
    PRIMARY KEY (queue_id, item)
);
CREATE INDEX IF NOT EXISTS queue_items_open ON queue_items (queue_id, state, item);
"""

# Columns people give job titles, industries and descriptions, for guessing (lower case).
_TITLE_NAMES = ("job_title", "jobtitle", "title", "job", "occupation", "occupation_title", "answer",
                "job title", "soc_text", "occ")
_INDUSTRY_WORDS = ("industry", "employer", "sector", "business")
_DESCRIPTION_WORDS = ("description", "describe", "what_they_do", "whattheydo", "duties", "tasks", "main_job",
                      "what they do", "jobdesc")


class LeaseError(Exception):
    """An item the clerk may not change now (someone else holds or decided it): HTTP 409."""


@dataclass(frozen=True)
class Progress:
    items: int
    open: int
    decided: int
    uncodable: int
    leased: int  # open items other sessions hold now
    rows: int
    rows_done: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueueInfo:
    id: str
    name: str
    scheme: str
    kind: str  # "refer" (a referral file) or "coded" (a coded file's refer rows)
    title_column: str
    industry_column: str | None
    description_column: str | None
    rows: int
    created: str
    progress: Progress

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "progress"}
        out["progress"] = self.progress.to_dict()
        return out


def guess_columns(columns: Sequence[str], scheme: str) -> dict[str, str | None]:
    """Which columns hold the title, industry and description, by their names; the title
    is None when no column name says so."""
    from ..batch.frame import output_columns

    added = set(output_columns(scheme, 2)) | {"input_row", "candidate_titles"}
    own = [c for c in columns if c not in added]
    lower = {c: c.lower().strip() for c in own}

    def first(test) -> str | None:
        return next((c for c in own if test(lower[c])), None)

    title = (first(lambda n: n in _TITLE_NAMES)
             or first(lambda n: "title" in n or "occupation" in n or n.startswith("job")))
    industry = first(lambda n: any(w in n for w in _INDUSTRY_WORDS))
    description = first(lambda n: any(w in n.replace(" ", "_") for w in _DESCRIPTION_WORDS) and n != title)
    return {"title": title, "industry": industry, "description": description}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if value.__class__.__name__ in {"NAType", "NaTType"}:
        return None
    text = str(value)
    return text if text.strip() else None


class QueueStore:
    """Queues and their items in the decision store's file (see the module docstring)."""

    def __init__(self, store: DecisionStore, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self._ready = False

    def _tx(self):
        if not self._ready:
            with self.store.transaction() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            self._ready = True
        return self.store.transaction()

    def _read(self):
        conn = self.store.read()
        if conn is None:
            return None
        if not self._ready:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'queue_items'").fetchone()
            if not exists:
                return None
        return conn

    # ------------------------------------------------------------------ opening
    def open_file(self, path: str | Path, *, column: str | None = None, industry_column: str | None = None,
                  description_column: str | None = None, scheme: str | None = None,
                  default_scheme: str = "soc2000", encoding: str | None = None) -> QueueInfo:
        """A queue of the referred answers in the file at ``path`` (kept where it is: the
        export reads it again, and refuses if it changed)."""
        path = Path(path).resolve()
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        digest = _file_sha256(path)
        return self._open(path, path.name, None, digest, column=column, industry_column=industry_column,
                          description_column=description_column, scheme=scheme,
                          default_scheme=default_scheme, encoding=encoding)

    def open_bytes(self, name: str, content: bytes, *, column: str | None = None,
                   industry_column: str | None = None, description_column: str | None = None,
                   scheme: str | None = None, default_scheme: str = "soc2000") -> QueueInfo:
        """A queue of the referred answers in an uploaded file (``name`` gives its format);
        the bytes are kept in the store for the export."""
        if not _NAME.match(name or ""):
            raise InputError("give the file's name (with its extension, e.g. refer.csv), without folders")
        if not content:
            raise InputError(f"{name}: the file is empty")
        digest = hashlib.sha256(content).hexdigest()
        with tempfile.TemporaryDirectory(prefix="coder-queue-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(content)
            return self._open(path, name, content, digest, column=column, industry_column=industry_column,
                              description_column=description_column, scheme=scheme,
                              default_scheme=default_scheme, encoding=None)

    def _open(self, path: Path, name: str, content: bytes | None, digest: str, *, column: str | None,
              industry_column: str | None, description_column: str | None, scheme: str | None,
              default_scheme: str, encoding: str | None) -> QueueInfo:
        from ..batch.formats import open_source

        try:
            source = open_source(path, encoding=encoding)
            columns = [str(c) for c in source.columns]
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), name)) from None
        except Exception as exc:  # a damaged file of a known format
            raise InputError(f"{name}: cannot read the file ({exc})") from None
        if scheme is None:
            scheme = next((s for s in SCHEMES if s in columns), default_scheme)
        scheme = load_scheme(scheme).name
        if "status" not in columns:
            raise InputError(f"{name} has no 'status' column: open a referral file (coder code --refer) "
                             "or a file coded by coder code")
        guessed = guess_columns(columns, scheme)
        title_col = column or guessed["title"]
        if title_col is None:
            raise InputError(f"{name}: which column holds the job titles? Name it (column); the columns "
                             f"are: {', '.join(repr(c) for c in columns[:20])}")
        # Each column is guessed from the names unless given ("" says the file has none), also when
        # the title column is named: dropping a guessed industry would merge different answers.
        industry_col = (industry_column or None) if industry_column is not None else guessed["industry"]
        description_col = ((description_column or None) if description_column is not None
                           else guessed["description"])
        for role, col in (("title", title_col), ("industry", industry_col), ("description", description_col)):
            if col and col not in columns:
                raise InputError(f"{name} has no column {col!r} ({role} column); its columns are: "
                                 f"{', '.join(repr(c) for c in columns[:20])}")
        kind = "refer" if "input_row" in columns and "candidate_titles" in columns else "coded"
        identity = json.dumps([digest, scheme, title_col, industry_col, description_col])
        queue_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
        existing = self.get(queue_id)
        if existing is not None:
            return existing
        items: dict[tuple, dict[str, Any]] = {}
        total = 0
        try:
            for chunk in source.chunks(50_000):
                status = chunk["status"].astype(str).str.strip()
                mask = (status == "refer").to_numpy()
                titles = chunk[title_col].tolist()
                inds = chunk[industry_col].tolist() if industry_col else [None] * len(chunk)
                descs = chunk[description_col].tolist() if description_col else [None] * len(chunk)
                input_rows = chunk["input_row"].tolist() if kind == "refer" else None
                for j in range(len(chunk)):
                    if not mask[j]:
                        continue
                    raw = (_text(titles[j]) or "", _text(inds[j]), _text(descs[j]))
                    key = answer_key(*raw)
                    group = ("key", *key) if key is not None else ("raw", *raw)
                    shown_row = total + j + 1
                    if input_rows is not None:
                        try:
                            shown_row = int(float(input_rows[j]))
                        except (TypeError, ValueError):
                            pass
                    item = items.get(group)
                    if item is None:
                        items[group] = {"rows": [total + j], "raw": raw, "first_row": shown_row}
                    else:
                        item["rows"].append(total + j)
                total += len(chunk)
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), name)) from None
        except Exception as exc:
            raise InputError(f"{name}: cannot read the file ({exc})") from None
        if not items:
            raise InputError(f"{name}: no rows with status 'refer'; nothing to code clerically")
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO queues (id, name, scheme, kind, title_column, industry_column, "
                "description_column, path, content, sha256, rows, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (queue_id, name, scheme, kind, title_col, industry_col, description_col,
                 None if content is not None else str(path), content, digest, total, _now()))
            if conn.execute("SELECT COUNT(*) FROM queue_items WHERE queue_id = ?", (queue_id,)).fetchone()[0] == 0:
                conn.executemany(
                    "INSERT INTO queue_items (queue_id, item, rows, n_rows, first_row, title, industry, description) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [(queue_id, n, json.dumps(item["rows"]), len(item["rows"]), item["first_row"], *item["raw"])
                     for n, item in enumerate(items.values(), start=1)])
        info = self.get(queue_id)
        assert info is not None
        return info

    # ------------------------------------------------------------------ reading
    def get(self, queue_id: str) -> QueueInfo | None:
        conn = self._read()
        if conn is None:
            return None
        row = conn.execute("SELECT id, name, scheme, kind, title_column, industry_column, description_column, "
                           "rows, created FROM queues WHERE id = ?", (queue_id,)).fetchone()
        if row is None:
            return None
        return QueueInfo(*row, progress=self.progress(queue_id))

    def list(self) -> list[QueueInfo]:
        conn = self._read()
        if conn is None:
            return []
        ids = [r[0] for r in conn.execute("SELECT id FROM queues ORDER BY created, id")]
        return [q for q in (self.get(i) for i in ids) if q is not None]

    def progress(self, queue_id: str, session: str | None = None) -> Progress:
        conn = self._read()
        now = time.time()
        row = conn.execute(
            """SELECT COUNT(*), SUM(state = 'open'), SUM(state = 'decided'), SUM(state = 'uncodable'),
                      SUM(state = 'open' AND lease_until > ? AND lease_session IS NOT ? ),
                      SUM(n_rows), SUM(CASE WHEN state != 'open' THEN n_rows ELSE 0 END)
               FROM queue_items WHERE queue_id = ?""", (now, session, queue_id)).fetchone() if conn else None
        values = [int(v or 0) for v in row] if row else [0] * 7
        return Progress(*values)

    def item(self, queue_id: str, item: int) -> dict[str, Any] | None:
        conn = self._read()
        if conn is None:
            return None
        row = conn.execute(f"SELECT {_ITEM} FROM queue_items WHERE queue_id = ? AND item = ?",
                           (queue_id, int(item))).fetchone()
        return _item(row) if row else None

    # ------------------------------------------------------------------ working
    def claim(self, queue_id: str, session: str, who: str, *, skip: Sequence[int] = (),
              item: int | None = None) -> dict[str, Any] | None:
        """Lease the next item to ``session`` (the one it holds already, else the first free
        one not in ``skip``, else the first free one; ``item`` asks for that one) and return it;
        None when every open item is decided or held by others."""
        now = time.time()
        until = now + self.lease_seconds
        skip = sorted({int(s) for s in skip})
        with self._tx() as conn:
            self._queue_exists(conn, queue_id)
            free = "state = 'open' AND (lease_session IS NULL OR lease_session = ? OR lease_until <= ?)"
            chosen = None
            if item is not None:
                row = conn.execute(f"SELECT item FROM queue_items WHERE queue_id = ? AND item = ? AND {free}",
                                   (queue_id, int(item), session, now)).fetchone()
                chosen = row[0] if row else None
            if chosen is None:
                row = conn.execute("SELECT item FROM queue_items WHERE queue_id = ? AND state = 'open' AND "
                                   "lease_session = ? AND lease_until > ? ORDER BY item LIMIT 1",
                                   (queue_id, session, now)).fetchone()
                chosen = row[0] if row and row[0] not in skip else None
            if chosen is None:
                marks = ",".join("?" * len(skip))
                not_skipped = f" AND item NOT IN ({marks})" if skip else ""
                row = conn.execute(f"SELECT item FROM queue_items WHERE queue_id = ? AND {free}{not_skipped} "
                                   "ORDER BY item LIMIT 1", (queue_id, session, now, *skip)).fetchone()
                if row is None and skip:  # only skipped ones are left: round again
                    row = conn.execute(f"SELECT item FROM queue_items WHERE queue_id = ? AND {free} "
                                       "ORDER BY item LIMIT 1", (queue_id, session, now)).fetchone()
                chosen = row[0] if row else None
            # One item per session: let go of any other.
            conn.execute("UPDATE queue_items SET lease_session = NULL, lease_who = NULL, lease_until = NULL "
                         "WHERE queue_id = ? AND lease_session = ? AND item IS NOT ?", (queue_id, session, chosen))
            if chosen is None:
                return None
            conn.execute("UPDATE queue_items SET lease_session = ?, lease_who = ?, lease_until = ? "
                         "WHERE queue_id = ? AND item = ?", (session, who, until, queue_id, chosen))
            row = conn.execute(f"SELECT {_ITEM} FROM queue_items WHERE queue_id = ? AND item = ?",
                               (queue_id, chosen)).fetchone()
        return _item(row)

    def release(self, queue_id: str, item: int, session: str) -> None:
        """Give the item back (a skip); a no-op when the session does not hold it."""
        with self._tx() as conn:
            self._queue_exists(conn, queue_id)
            conn.execute("UPDATE queue_items SET lease_session = NULL, lease_who = NULL, lease_until = NULL "
                         "WHERE queue_id = ? AND item = ? AND lease_session = ?", (queue_id, int(item), session))

    def settle(self, queue_id: str, item: int, session: str, who: str, *, code: str | None) -> dict[str, Any]:
        """Mark the item decided (``code``) or uncodable (None) by this clerk, if nobody else
        decided or holds it; returns the item. Raises LeaseError (409) otherwise."""
        now = time.time()
        with self._tx() as conn:
            self._queue_exists(conn, queue_id)
            row = conn.execute("SELECT state, who, lease_session, lease_who, lease_until FROM queue_items "
                               "WHERE queue_id = ? AND item = ?", (queue_id, int(item))).fetchone()
            if row is None:
                raise KeyError(item)
            state, decided_by, lease_session, lease_who, lease_until = row
            if state != "open":
                done = "marked uncodable" if state == "uncodable" else "decided"
                raise LeaseError(f"answer {item} was already {done} by {decided_by or 'another clerk'}")
            if lease_session not in (None, session) and (lease_until or 0) > now:
                raise LeaseError(f"answer {item} is being coded by {lease_who or 'another clerk'}")
            conn.execute("UPDATE queue_items SET state = ?, code = ?, who = ?, session = ?, at = ?, "
                         "lease_session = NULL, lease_who = NULL, lease_until = NULL WHERE queue_id = ? AND item = ?",
                         ("decided" if code is not None else "uncodable", code, who, session, _now(),
                          queue_id, int(item)))
            row = conn.execute(f"SELECT {_ITEM} FROM queue_items WHERE queue_id = ? AND item = ?",
                               (queue_id, int(item))).fetchone()
        return _item(row)

    def set_decision(self, queue_id: str, item: int, decision_id: int | None) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE queue_items SET decision_id = ? WHERE queue_id = ? AND item = ?",
                         (decision_id, queue_id, int(item)))

    def reopen(self, queue_id: str, item: int, session: str, who: str, *, lease: bool = True,
               only_if_decided_by_me: bool = True) -> dict[str, Any]:
        """Undo a decision on the item: open again (leased to this session). Only the clerk who
        decided it (same session or same name) may; returns the item as it was decided."""
        with self._tx() as conn:
            self._queue_exists(conn, queue_id)
            row = conn.execute(f"SELECT {_ITEM} FROM queue_items WHERE queue_id = ? AND item = ?",
                               (queue_id, int(item))).fetchone()
            if row is None:
                raise KeyError(item)
            before = _item(row)
            if before["state"] == "open":
                raise LeaseError(f"answer {item} is not decided: nothing to undo")
            if only_if_decided_by_me and before["_session"] != session and (not who or before["who"] != who):
                raise LeaseError(f"answer {item} was decided by {before['who'] or 'another clerk'}; "
                                 "only they can undo it")
            conn.execute("UPDATE queue_items SET lease_session = NULL, lease_who = NULL, lease_until = NULL "
                         "WHERE queue_id = ? AND lease_session = ?", (queue_id, session))
            conn.execute("UPDATE queue_items SET state = 'open', code = NULL, decision_id = NULL, who = NULL, "
                         "session = NULL, at = NULL, lease_session = ?, lease_who = ?, lease_until = ? "
                         "WHERE queue_id = ? AND item = ?",
                         (session if lease else None, who if lease else None,
                          time.time() + self.lease_seconds if lease else None, queue_id, int(item)))
        return before

    def _queue_exists(self, conn, queue_id: str) -> None:
        if conn.execute("SELECT 1 FROM queues WHERE id = ?", (queue_id,)).fetchone() is None:
            raise KeyError(queue_id)

    # ------------------------------------------------------------------ export
    def export(self, queue_id: str, target: str | Path, *, describe=None) -> int:
        """Write the queue's file with the decisions merged in to ``target`` (format by its
        extension); returns the rows written. ``describe(item)`` gives the matched-entry text
        of a decided item (default: "decided by WHO on DATE (clerical)")."""
        from ..batch.formats import OutputLabels, file_format, open_sink, open_source
        from ..batch.runner import _variable_labels

        conn = self._read()
        row = conn.execute("SELECT name, scheme, path, content, sha256 FROM queues WHERE id = ?",
                           (queue_id,)).fetchone() if conn else None
        if row is None:
            raise KeyError(queue_id)
        name, scheme, path, content, digest = row
        sch = load_scheme(scheme)
        outcome: dict[int, dict[str, Any]] = {}
        for r in conn.execute(f"SELECT {_ITEM} FROM queue_items WHERE queue_id = ? AND state != 'open'", (queue_id,)):
            item = _item(r)
            for position in item["_rows"]:
                outcome[position] = item
        target = Path(target)
        with tempfile.TemporaryDirectory(prefix="coder-export-") as tmp:
            if content is not None:
                src_path = Path(tmp) / name
                src_path.write_bytes(content)
            else:
                src_path = Path(path)
                if not src_path.is_file() or _file_sha256(src_path) != digest:
                    raise InputError(f"{src_path} changed or disappeared since the queue was opened; "
                                     "open it again as a new queue")
            source = open_source(src_path)
            labels = OutputLabels(scheme, dict(sch.units), MISSING_CODE, _variable_labels(scheme, MISSING_CODE),
                                  source.labels if source.format == file_format(target) else {})
            sink = open_sink(target, bom=source.bom, labels=labels)
            start = 0
            try:
                for chunk in source.chunks(50_000):
                    mine = [(p - start, outcome[p]) for p in range(start, start + len(chunk)) if p in outcome]
                    if mine:
                        chunk = _merge(chunk, mine, scheme, sch, describe)
                    sink.append(chunk)
                    start += len(chunk)
                written = sink.commit()
            except BaseException:
                sink.close()
                raise
        return written


_ITEM = ("item, rows, n_rows, first_row, title, industry, description, state, code, decision_id, who, session, at, "
         "lease_session, lease_who, lease_until")


def _item(row: tuple) -> dict[str, Any]:
    (item, rows, n_rows, first_row, title, industry, description, state, code, decision_id, who, session, at,
     lease_session, lease_who, lease_until) = row
    return {"item": item, "rows": n_rows, "first_row": first_row, "title": title, "industry": industry,
            "description": description, "state": state, "code": code, "decision_id": decision_id, "who": who,
            "at": at, "lease_who": lease_who, "lease_until": lease_until,
            "_rows": json.loads(rows), "_session": session, "_lease_session": lease_session}


def public(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the API shows it (no session ids, no row list)."""
    out = {k: v for k, v in item.items() if not k.startswith("_")}
    if out.get("lease_until") is not None:
        out["lease_until"] = datetime.fromtimestamp(out["lease_until"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def _merge(chunk: "pd.DataFrame", mine: list[tuple[int, dict[str, Any]]], scheme: str, sch,
           describe) -> "pd.DataFrame":
    """The decided items' coding columns written over their rows of ``chunk`` (a copy)."""
    import pandas as pd

    chunk = chunk.copy()
    values: dict[str, list[tuple[int, object]]] = {}
    for pos, item in mine:
        if item["state"] == "decided":
            who = f" by {item['who']}" if item["who"] else ""
            when = f" on {item['at'][:10]}" if item["at"] else ""
            entry = describe(item) if describe else f"decided{who}{when} (clerical)"
            cells = {scheme: item["code"], f"{scheme}_title": sch.title(item["code"]) or "", "confidence": 1.0,
                     "status": "auto", "method": "learned", "matched_entry": entry, "reason": ""}
        else:
            who = f" by {item['who']}" if item["who"] else ""
            cells = {scheme: MISSING_CODE, f"{scheme}_title": "", "confidence": 0.0, "status": "uncodable",
                     "method": "", "matched_entry": "", "reason": f"marked uncodable{who} (clerical)"}
        for col, value in cells.items():
            if col in chunk.columns:
                values.setdefault(col, []).append((pos, value))
    for col, cells in values.items():
        series = chunk[col]
        numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
        if numeric:
            try:
                converted = [(p, float(v)) for p, v in cells]
            except (TypeError, ValueError):
                numeric = False
            else:
                if pd.api.types.is_integer_dtype(series.dtype) and all(v.is_integer() for _, v in converted):
                    cells = [(p, int(v)) for p, v in converted]
                else:
                    chunk[col] = series.astype("float64")
                    cells = converted
        if not numeric:
            cells = [(p, f"{v:.3f}" if isinstance(v, float) else str(v)) for p, v in cells]
            if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
                chunk[col] = series.astype(object)
        col_pos = chunk.columns.get_loc(col)
        for pos, value in cells:
            chunk.iat[pos, col_pos] = value
    return chunk
