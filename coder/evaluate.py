"""Measure a coder against titles whose true codes are known.

The pipeline is ``predict`` (code the titles) -> ``score`` (a JSON-ready report) ->
``write_report`` (``metrics.json``, ``predictions.csv`` and two PNG plots). Every metric is
also a small function of arrays, so other harnesses (``benchmarks/``) can reuse them.

Conventions
-----------
* A row whose gold code is empty or ``-9`` has no true code: it is reported apart (how many
  were sent to refer/uncodable) and never counted as right or wrong.
* Accuracy denominators are all rows with a gold code, including titles the coder called
  uncodable (those are wrong). Top-5 means "the gold code is among the first five candidates".
  At a higher level (minor, sub-major, major group) a row is right when the candidate's group
  contains the gold code.
* Accepted codes (optional, e.g. the codes two independent coders gave before adjudication):
  a code counts as right when it is the gold code or one of the row's accepted codes, for
  top-1, top-k, auto precision, the precision-coverage curve and calibration alike. The
  gold-only top-1/top-k are reported beside them under ``"gold_only"``. A row's accepted
  codes never give it a gold code: rows without one stay apart.
* Coverage of ``status="auto"`` is auto-coded rows / rows with a gold code; precision is the
  share of auto-coded rows whose code is right.
* The precision-coverage curve lowers the threshold through every observed top-1 confidence.
  A title can be auto-coded at some threshold only if the coder would auto-code it at
  threshold 0 ("eligible"): vague titles are referred whatever their confidence.
* Expected calibration error (ECE) uses the top-1 confidence of every gold-coded row that
  has a candidate, in ``bins`` equal-width bins over [0, 1] (the last bin includes 1.0):
  ``ECE = sum_b n_b / N * |accuracy_b - mean confidence_b|``. 10 bins is the usual choice;
  with the few thousand rows of a dev set, more bins leave the upper bins thin.
* A threshold proposed from fewer than `MIN_THRESHOLD_ROWS` rows with a gold code carries a
  note saying so: one title more or less then moves its precision by half a point or more.

matplotlib is imported only when a plot is drawn (``pip install 'coder[eval]'``), through
its object-oriented API, so the caller's pyplot backend is never changed.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import CoderError, InputError, Reason
from .rank import precision_curve
from .schemes import MISSING_CODE, Scheme, load_scheme

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Coder

__all__ = [
    "predict", "score", "evaluate_frame", "read_gold", "require_columns", "write_report", "format_report",
    "accuracy_by_level", "expected_calibration_error", "reliability_bins", "precision_coverage",
    "threshold_for_precision", "confusions", "plot_reliability", "plot_precision_coverage",
    "DEFAULT_BINS", "TARGET_PRECISION", "MIN_THRESHOLD_ROWS",
]

DEFAULT_BINS = 10
TARGET_PRECISION = 0.92
# Below this many rows with a gold code, a proposed threshold comes with a note on the sample size.
MIN_THRESHOLD_ROWS = 200
_LEVEL_ORDER = ("unit", "minor", "sub_major", "major")


# ---------------------------------------------------------------------------- predictions
def _as_list(values: Iterable | None) -> list | None:
    if values is None:
        return None
    return list(values.tolist() if hasattr(values, "tolist") else values)


def predict(coder: "Coder", titles: Iterable, industries: Iterable | None = None,
            descriptions: Iterable | None = None, *, k: int = 5) -> pd.DataFrame:
    """Code ``titles`` (with their industries and descriptions, if any) and return one row
    per title for `score`.

    Columns: ``status``, ``code`` (best code, ``-9`` when uncodable), ``confidence`` (top-1),
    ``candidates`` (tuple of codes, best first), ``eligible`` (auto-coded at threshold 0, i.e.
    not held back as vague), ``reason`` (its text).
    """
    results = coder.code_many(_as_list(titles), _as_list(industries), _as_list(descriptions), k=k)
    return pd.DataFrame({
        "status": [r.status for r in results],
        "code": [r.code for r in results],
        "confidence": np.array([r.confidence for r in results], dtype=float),
        "candidates": [tuple(c.code for c in r.candidates) if r.status != "uncodable" else ()
                       for r in results],
        # Auto-coded at threshold 0: everything but uncodable and vague titles.
        "eligible": np.array([r.status != "uncodable" and r.reason is not Reason.VAGUE for r in results],
                             dtype=bool),
        "reason": [str(r.reason) for r in results],
    })


# --------------------------------------------------------------------------- small metrics
def _level_of(scheme: Scheme, level: str):
    cache: dict[str, str | None] = {}

    def get(code: str) -> str | None:
        if code not in cache:
            try:
                cache[code] = scheme.level_code(code, level) if code and code != MISSING_CODE else None
            except ValueError:
                cache[code] = None
        return cache[code]

    return get


def accuracy_by_level(gold: Sequence[str], candidates: Sequence[Sequence[str]], scheme: Scheme | str, *,
                      k: int = 5, accepted: Sequence[Iterable[str]] | None = None) -> dict[str, dict[str, float]]:
    """Top-1 and top-``k`` accuracy at every level of ``scheme`` (unit first).

    ``candidates[i]`` are row i's codes, best first (empty when uncodable: wrong at every level).
    ``accepted[i]``, when given, are further codes that count as right for row i.

    Examples
    --------
    >>> accuracy_by_level(["4112"], [("4113", "4112")], "soc2000", k=2)["unit"]
    {'top1': 0.0, 'top2': 1.0}
    >>> accuracy_by_level(["4112"], [("4113",)], "soc2000", k=2, accepted=[("4113",)])["unit"]
    {'top1': 1.0, 'top2': 1.0}
    """
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    n = len(gold)
    others = accepted if accepted is not None else [()] * n
    out: dict[str, dict[str, float]] = {}
    for level in (lv for lv in _LEVEL_ORDER if lv in scheme.levels):
        get = _level_of(scheme, level)
        top1 = topk = 0
        for g, extra, cands in zip(gold, others, candidates):
            want = {get(c) for c in (g, *extra)} - {None}
            if not want:
                continue
            groups = [get(c) for c in list(cands)[:k]]
            top1 += bool(groups) and groups[0] in want
            topk += any(x in want for x in groups)
        out[level] = {"top1": top1 / n if n else float("nan"), f"top{k}": topk / n if n else float("nan")}
    return out


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, *, bins: int = DEFAULT_BINS) -> list[dict]:
    """Equal-width bins over [0, 1]: count, mean confidence and accuracy of each (None if empty)."""
    confidence = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    correct = np.asarray(correct, dtype=float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        out.append({
            "lo": b / bins, "hi": (b + 1) / bins, "n": n,
            "mean_confidence": float(confidence[mask].mean()) if n else None,
            "accuracy": float(correct[mask].mean()) if n else None,
        })
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *,
                               bins: int = DEFAULT_BINS) -> float:
    """ECE: the count-weighted mean gap between accuracy and mean confidence per bin.

    Examples
    --------
    >>> expected_calibration_error([0.9, 0.9, 0.2, 0.2], [1, 0, 0, 0], bins=10)
    0.3
    """
    table = reliability_bins(confidence, correct, bins=bins)
    total = sum(b["n"] for b in table)
    if not total:
        return float("nan")
    return round(sum(b["n"] * abs(b["accuracy"] - b["mean_confidence"]) for b in table if b["n"]) / total, 12)


def precision_coverage(confidence: np.ndarray, correct: np.ndarray, eligible: np.ndarray | None = None,
                       *, total: int | None = None) -> pd.DataFrame:
    """Precision and coverage of auto-coding ``{eligible and confidence >= t}`` for every observed t.

    ``total`` is the coverage denominator (default: all rows). Rows come highest threshold first.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    eligible = np.ones(len(confidence), bool) if eligible is None else np.asarray(eligible, bool)
    total = len(confidence) if total is None else total
    conf, ok = confidence[eligible], correct[eligible]
    if len(conf) == 0:
        return pd.DataFrame({"threshold": [], "n_auto": [], "coverage": [], "precision": []})
    levels, counts, hits = precision_curve(conf, ok)
    return pd.DataFrame({
        "threshold": levels,
        "n_auto": counts,
        "coverage": counts / max(total, 1),
        "precision": hits / counts,
    })


def threshold_for_precision(curve: pd.DataFrame, target: float = TARGET_PRECISION) -> dict[str, Any]:
    """Lowest threshold whose auto-coded set reaches ``target`` precision (the rule the build
    uses to pick its threshold), with the coverage it gives. ``threshold`` is None when no
    threshold reaches it."""
    ok = curve[curve["precision"] >= target - 1e-12]
    if ok.empty:
        return {"target_precision": target, "threshold": None, "coverage": 0.0, "precision": None, "n_auto": 0}
    row = ok.iloc[-1]
    return {"target_precision": target, "threshold": float(row["threshold"]), "coverage": float(row["coverage"]),
            "precision": float(row["precision"]), "n_auto": int(row["n_auto"])}


def confusions(gold: Sequence[str], predicted: Sequence[str], scheme: Scheme | str, *,
               titles: Sequence[str] | None = None, top: int = 15, examples: int = 3) -> list[dict]:
    """Most frequent (true -> predicted) unit-group errors with code titles, counts and example
    inputs. Rows predicted uncodable (``-9``) are not confusions."""
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    frame = pd.DataFrame({"true": list(gold), "predicted": list(predicted),
                          "text": list(titles) if titles is not None else [""] * len(gold)})
    wrong = frame[(frame["true"] != frame["predicted"]) & (frame["predicted"] != MISSING_CODE)
                  & (frame["true"] != "") & (frame["true"] != MISSING_CODE)]
    if wrong.empty:
        return []
    grouped = (wrong.groupby(["true", "predicted"], sort=False)["text"]
               .agg(count="size", examples=lambda s: list(dict.fromkeys(s))[:examples])
               .reset_index()
               .sort_values(["count", "true", "predicted"], ascending=[False, True, True], kind="stable")
               .head(top))
    return [{"true": r.true, "true_title": scheme.title(r.true) or "",
             "predicted": r.predicted, "predicted_title": scheme.title(r.predicted) or "",
             "count": int(r.count), "examples": [str(x) for x in r.examples]}
            for r in grouped.itertuples(index=False)]


# -------------------------------------------------------------------------------- report
def _clean_gold(values: Iterable) -> list[str]:
    out = []
    for v in values:
        s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
        out.append("" if s == MISSING_CODE else s)
    return out


_CODE_SEPARATORS = re.compile(r"[\s,;|/]+")


def _codes_in(value: Any) -> tuple[str, ...]:
    """Codes in one accepted-codes cell: a tuple/list of codes, or text with codes separated by
    spaces, commas, semicolons, bars or slashes. Empty cells and the missing code give none."""
    if isinstance(value, (tuple, list, set, frozenset)):
        parts = [str(v).strip() for v in value]
    else:
        parts = _CODE_SEPARATORS.split(_clean_gold([value])[0])
    return tuple(dict.fromkeys(c for c in parts if c and c != MISSING_CODE))


def accepted_codes(data: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Per row, the distinct codes in ``columns`` (see `_codes_in`), in column order."""
    rows: list[tuple[str, ...]] = [()] * len(data)
    for name in columns:
        rows = [tuple(dict.fromkeys((*a, *_codes_in(v)))) for a, v in zip(rows, data[name].tolist())]
    return rows


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, np.generic):
        return _nan_to_none(obj.item())
    return obj


def _shares(statuses: pd.Series) -> dict[str, float]:
    n = len(statuses)
    return {s: (float((statuses == s).sum()) / n if n else 0.0) for s in ("auto", "refer", "uncodable")}


def score(frame: pd.DataFrame, scheme: Scheme | str, *, threshold: float | None = None, k: int = 5,
          bins: int = DEFAULT_BINS, target_precision: float = TARGET_PRECISION, top_confusions: int = 15,
          groups: Mapping[str, Sequence[bool]] | None = None, title_column: str = "title") -> dict[str, Any]:
    """JSON-ready metrics for coded rows with known answers.

    Parameters
    ----------
    frame
        Columns ``gold`` (true code; empty or -9 = none), ``candidates`` (codes best first),
        ``confidence`` (top-1), ``status``; optional ``eligible`` (default: not uncodable),
        ``accepted`` (further codes that count as right, per row: a tuple or text, see the
        module notes) and ``title_column`` (used for confusion examples). `predict` returns
        the coder's columns.
    threshold
        The auto threshold the statuses were made with (reported only).
    groups
        Optional named boolean masks over the rows (e.g. "title unseen in training"): each
        gets its own accuracy and auto figures under ``"groups"``.
    """
    scheme = load_scheme(scheme) if isinstance(scheme, str) else scheme
    missing = [c for c in ("gold", "candidates", "confidence", "status") if c not in frame.columns]
    if missing:
        raise InputError(f"score() needs columns {missing}; build the frame with predict()")
    frame = frame.reset_index(drop=True)
    gold = pd.Series(_clean_gold(frame["gold"]), dtype=object)
    has_gold = (gold != "").to_numpy()
    with_accepted = "accepted" in frame.columns
    accepted = [_codes_in(a) for a in frame["accepted"]] if with_accepted else [()] * len(frame)
    status = frame["status"].astype(str)
    eligible = (frame["eligible"].to_numpy(bool) if "eligible" in frame.columns
                else (status != "uncodable").to_numpy())
    cands = [tuple(c) if isinstance(c, (tuple, list)) else () for c in frame["candidates"]]
    pred = np.array([c[0] if c and s != "uncodable" else MISSING_CODE for c, s in zip(cands, status)],
                    dtype=object)
    correct = np.array([p == g or p in a for p, g, a in zip(pred, gold, accepted)], dtype=bool)
    conf = frame["confidence"].to_numpy(float)
    texts = frame[title_column].astype(str).tolist() if title_column in frame.columns else None

    def block(mask: np.ndarray) -> dict[str, Any]:
        n = int(mask.sum())
        st = status[mask]
        auto = (st == "auto").to_numpy()
        ok = correct[mask]
        rows = np.flatnonzero(mask)
        out = {
            "rows": n,
            "accuracy": accuracy_by_level(gold[mask].tolist(), [cands[i] for i in rows], scheme, k=k,
                                          accepted=[accepted[i] for i in rows]),
            "status": _shares(st),
            "auto": {"n": int(auto.sum()), "coverage": auto.sum() / n if n else float("nan"),
                     "precision": float(ok[auto].mean()) if auto.any() else None},
        }
        if with_accepted:
            unit = accuracy_by_level(gold[mask].tolist(), [cands[i] for i in rows], scheme, k=k)["unit"]
            strict = np.array([p == g for p, g in zip(pred[mask], gold[mask])], dtype=bool)
            out["gold_only"] = {**unit, "auto_precision": float(strict[auto].mean()) if auto.any() else None}
        return out

    scored = block(has_gold)
    n_gold = int(has_gold.sum())
    curve = precision_coverage(conf[has_gold], correct[has_gold], eligible[has_gold], total=n_gold)
    with_cand = has_gold & np.array([bool(c) for c in cands])
    target = {**threshold_for_precision(curve, target_precision), "rows": n_gold}
    if target["threshold"] is not None and n_gold < MIN_THRESHOLD_ROWS:
        target["note"] = (f"proposed from only {n_gold:,} rows with a true code: below about "
                          f"{MIN_THRESHOLD_ROWS} one title more or less moves its precision by half a point or "
                          "more; check it on a larger sample before using it")
    report: dict[str, Any] = {
        "scheme": scheme.name,
        "rows": len(frame),
        "rows_with_gold": n_gold,
        "k": k,
        "threshold": threshold,
        **{key: scored[key] for key in ("accuracy", "status", "auto")},
        "target": target,
        "calibration": {
            "bins": bins,
            "rows": int(with_cand.sum()),
            "ece": expected_calibration_error(conf[with_cand], correct[with_cand], bins=bins),
            "brier": float(np.mean((conf[with_cand] - correct[with_cand]) ** 2)) if with_cand.any() else None,
            "mean_confidence": float(conf[with_cand].mean()) if with_cand.any() else None,
            "top1": float(correct[with_cand].mean()) if with_cand.any() else None,
            "reliability": reliability_bins(conf[with_cand], correct[with_cand], bins=bins),
        },
        "precision_coverage": curve.to_dict("records"),
        # Rows right by an accepted code are not confusions.
        "confusions": confusions(gold[has_gold & ~correct].tolist(), pred[has_gold & ~correct].tolist(), scheme,
                                 titles=[texts[i] for i in np.flatnonzero(has_gold & ~correct)] if texts else None,
                                 top=top_confusions),
        "gold_not_in_scheme": int(sum(g not in scheme for g in gold[has_gold])),
    }
    if with_accepted:
        report["gold_only"] = scored["gold_only"]
        report["accepted"] = {
            "rows_with_other_codes": int(sum(bool(set(a) - {g}) for a, g, h in zip(accepted, gold, has_gold) if h)),
            "right_only_by_accepted": int((has_gold & correct & (pred != gold.to_numpy(dtype=object))).sum()),
        }
    no_gold = ~has_gold
    st = status[no_gold]
    auto_rows = np.flatnonzero(no_gold & (status == "auto").to_numpy())
    report["no_gold"] = {
        "rows": int(no_gold.sum()),
        "status": _shares(st),
        "not_auto": float((st != "auto").mean()) if len(st) else None,
        "auto_examples": [{"text": texts[i] if texts else "", "code": str(pred[i]), "confidence": float(conf[i])}
                          for i in auto_rows[:10]],
    }
    if groups:
        report["groups"] = {}
        for name, mask in groups.items():
            mask = np.asarray(mask, bool)
            if len(mask) != len(frame):
                raise ValueError(f"group {name!r} has {len(mask)} flags for {len(frame)} rows")
            report["groups"][name] = block(mask & has_gold)
    return _nan_to_none(report)


# --------------------------------------------------------------------------------- files
def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _cell_text(value: Any) -> str:
    """A cell as text, as a CSV export would hold it (numbers without a spurious ``.0``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item())
    return str(value)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as text (Parquet, Stata and SPSS keep their own types when read)."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_object_dtype(col.dtype) and all(isinstance(v, str) for v in col):
            out[name] = col
        else:
            out[name] = pd.Series([_cell_text(v) for v in col.astype(object)], index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index)


def _leading_comments(path: Path) -> tuple[int, int, bytes]:
    """(lines, bytes) of the ``#`` comment lines at the top of a text file, after any UTF-8 BOM
    (returned third). UTF-16/32 files are not looked at."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    bom = codecs.BOM_UTF8 if head.startswith(codecs.BOM_UTF8) else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return 0, 0, b""
    lines, pos = 0, len(bom)
    while head.startswith(b"#", pos):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        lines, pos = lines + 1, end + 1
    return lines, pos, bom


def _read_source(path: Path, encoding: str | None) -> tuple[pd.DataFrame, Any]:
    from .batch.formats import open_source

    source = open_source(path, encoding=encoding)
    frames = list(source.chunks(_READ_CHUNK))
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), source


def read_gold(path: str | Path, *, encoding: str | None = None) -> pd.DataFrame:
    """Read a file of titles and true codes, every cell as text, with the batch reader
    (`coder.batch.formats.open_source`): CSV, TSV, TXT, Excel, Parquet, Stata or SPSS, chosen by
    extension; text files with the encoding sniffed as ``coder code`` does, unless ``encoding``.

    ``#`` comment lines at the top of a CSV/TSV/TXT file (such as the "never tune on it" line
    of a test set) are skipped; ``frame.attrs["notes"]`` says so, and says when cells needed
    the reader's encoding fallback. Answers such as "None" stay text and codes keep leading
    zeros (text formats); numbers from typed formats are written as a CSV export would.
    Raises `InputError` with a one-line message naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a file with titles and true codes")
    comments, offset, bom = ((0, 0, b"") if path.suffix.lower() not in (".csv", ".tsv", ".txt")
                             else _leading_comments(path))
    copy: Path | None = None

    def shown(exc: Exception) -> str:  # messages name the user's file, never the copy
        text = str(exc)
        return _one_line(text.replace(str(copy), str(path)) if copy is not None else text)

    try:
        with contextlib.ExitStack() as stack:
            target = path
            if comments:
                # The batch reader has no notion of comment lines: it reads a copy without them.
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="coder-gold-"))
                copy = target = Path(tmp) / path.name
                with open(path, "rb") as src, open(copy, "wb") as dst:
                    src.seek(offset)
                    dst.write(bom)
                    shutil.copyfileobj(src, dst)
            frame, source = _read_source(target, encoding)
    except CoderError as exc:
        raise InputError(shown(exc)) from None
    except Exception as exc:  # a corrupt file fails inside openpyxl, pyarrow, zipfile, ...
        first = shown(exc) or type(exc).__name__
        raise InputError(f"{path}: cannot read it as {path.suffix.lower().lstrip('.') or 'a table'} "
                         f"({first}); give a CSV with a header row") from None
    frame = _as_text(frame)
    notes = []
    if comments:
        notes.append(f"{path}: skipped {comments} comment line{'s' if comments > 1 else ''} (starting with #) "
                     "above the header")
    if getattr(source, "fallback_cells", 0):
        how = source.text.describe() if getattr(source, "text", None) is not None else "UTF-8 with a cp1252 fallback"
        notes.append(f"{path}: {source.fallback_cells:,} cells were not valid UTF-8 and were read as {how}; "
                     "pass --encoding if that is wrong")
    frame.attrs["notes"] = notes
    return frame


_READ_CHUNK = 100_000


def require_columns(frame: pd.DataFrame, path: str, **columns: str | None) -> None:
    """Raise `InputError` naming the file when a named column (role=name) is missing."""
    for role, name in columns.items():
        if name is not None and name not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:12])) + (" ..." if len(frame.columns) > 12 else "")
            raise InputError(f"{path}: no column {name!r} (the {role} column); columns are: {shown}")


def evaluate_frame(coder: "Coder", data: pd.DataFrame, *, column: str, gold: str,
                   industry_column: str | None = None, description_column: str | None = None,
                   accept_columns: Sequence[str] = (), source: str = "input", **score_options: Any,
                   ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Code ``data[column]`` (with its industry and description columns, if named) with
    ``coder`` and score it against ``data[gold]``.

    ``accept_columns`` name further columns whose codes also count as right (for example the
    codes two coders gave before adjudication; see the module notes). Returns
    ``(report, predictions)``; ``predictions`` keeps the input columns it used plus the
    coder's (the caller's frame is not changed). ``score_options`` go to `score`.
    """
    accept_columns = list(accept_columns)
    require_columns(data, source, title=column, gold=gold, industry=industry_column,
                    description=description_column,
                    **{f"accepted codes ({i + 1})": c for i, c in enumerate(accept_columns)})
    industries = data[industry_column] if industry_column else None
    descriptions = data[description_column] if description_column else None
    pred = predict(coder, data[column], industries, descriptions, k=score_options.get("k", 5))
    frame = pd.DataFrame({"title": data[column].astype(str).to_numpy(),
                          "industry": (industries.astype(str).to_numpy() if industries is not None
                                       else [""] * len(data)),
                          "gold": _clean_gold(data[gold])})
    if descriptions is not None:
        frame.insert(2, "description", descriptions.astype(str).to_numpy())
    if accept_columns:
        frame["accepted"] = accepted_codes(data, accept_columns)
    frame = pd.concat([frame, pred], axis=1)
    report = score(frame, coder.scheme, threshold=coder.threshold, **score_options)
    report["source"] = source
    report["columns"] = {"title": column, "gold": gold, "industry": industry_column,
                         "description": description_column, "accepted": accept_columns}
    report["model"] = {"threshold": coder.threshold, "calibration": coder.model.info.get("calibration")}
    accepted = frame["accepted"] if accept_columns else [()] * len(frame)
    frame["correct"] = [g != "" and (c == g or c in a) for g, c, a in zip(frame["gold"], frame["code"], accepted)]
    return report, frame


def write_report(report: Mapping[str, Any], predictions: pd.DataFrame | None, out_dir: str | Path, *,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``metrics.json`` (+ ``predictions.csv``, ``reliability.png``,
    ``precision_coverage.png``) into ``out_dir``; returns the paths written.

    ``predictions.csv`` is escaped against spreadsheet formulas as ``coder code`` output is
    (`coder.batch.formats.escape_formulas`): a title such as ``=HYPERLINK(...)`` is written
    ``'=HYPERLINK(...)``; plain numbers such as ``-9`` stay as they are.
    """
    from .batch.formats import escape_formulas

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json"}
    paths["metrics"].write_text(json.dumps(_nan_to_none(dict(report)), indent=2), encoding="utf-8")
    if predictions is not None:
        paths["predictions"] = out / "predictions.csv"
        frame = predictions.copy()
        for name in ("candidates", "accepted"):
            if name in frame.columns:
                frame[name] = [" ".join(c) for c in frame[name]]
        escape_formulas(frame).to_csv(paths["predictions"], index=False)
    if plots:
        paths["reliability"] = plot_reliability(report, out / "reliability.png")
        paths["precision_coverage"] = plot_precision_coverage(report, out / "precision_coverage.png")
    return paths


# --------------------------------------------------------------------------------- plots
def _figure(size: tuple[float, float]):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CoderError("plots need matplotlib: `pip install 'coder[eval]'` (or pass --no-plots)") from None
    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_reliability(report: Mapping[str, Any], path: str | Path) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, with row counts below."""
    cal = report["calibration"]
    table = [b for b in cal["reliability"]]
    fig = _figure((5.5, 6.0))
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    width = 1 / cal["bins"]
    filled = [b for b in table if b["n"]]
    ax.bar([b["lo"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
           alpha=0.6, edgecolor="black", label="accuracy in bin")
    ax.plot([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled], "o-", color="C3",
            label="(mean confidence, accuracy)")
    ece = cal["ece"]
    ax.set_title(f"Reliability of top-1 confidence ({report.get('source', '')})\n"
                 f"ECE {ece:.3f} over {cal['rows']:,} titles, {cal['bins']} bins" if ece is not None
                 else "Reliability of top-1 confidence (no rows)", fontsize=10)
    ax.set_ylabel("share right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    hist.bar([b["lo"] for b in table], [b["n"] for b in table], width=width, align="edge",
             color="grey", edgecolor="black")
    hist.set_xlabel("top-1 confidence")
    hist.set_ylabel("titles")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_precision_coverage(report: Mapping[str, Any], path: str | Path) -> Path:
    """Precision against coverage of ``status="auto"`` as the threshold falls, marking the
    coder's threshold and the lowest threshold that meets the target precision."""
    curve = report["precision_coverage"]
    fig = _figure((6.0, 4.5))
    ax = fig.subplots()
    if curve:
        ax.plot([p["coverage"] for p in curve], [p["precision"] for p in curve], "-", color="C0",
                label="threshold lowered through observed confidences")
    auto = report["auto"]
    if auto.get("precision") is not None:
        ax.plot([auto["coverage"]], [auto["precision"]], "o", color="C3",
                label=f"coder threshold {report['threshold']:.3f}" if report.get("threshold") is not None
                else "coder threshold")
    target = report["target"]
    ax.axhline(target["target_precision"], ls="--", color="grey", lw=1,
               label=f"target precision {target['target_precision']:.0%}")
    if target["threshold"] is not None:
        ax.plot([target["coverage"]], [target["precision"]], "s", color="C2",
                label=f"threshold {target['threshold']:.3f}: coverage {target['coverage']:.1%}")
    ax.set_xlabel("coverage (auto-coded / titles with a true code)")
    ax.set_ylabel("precision of auto-coded titles")
    ax.set_xlim(0, 1)
    ax.set_ylim(max(0.0, min([p["precision"] for p in curve] + [0.5]) - 0.05), 1.005)
    ax.set_title(f"Precision-coverage ({report.get('source', '')})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


# ---------------------------------------------------------------------------------- text
def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{x:6.1%}"


def format_report(report: Mapping[str, Any]) -> str:
    """A short plain-text rendering of `score`'s report."""
    k = report["k"]
    lines = [f"{report.get('source', 'evaluation')}: {report['rows']:,} rows, "
             f"{report['rows_with_gold']:,} with a true {report['scheme']} code"]
    accepted = (report.get("columns") or {}).get("accepted")
    if report.get("gold_only") is not None:
        lines.append("a code counts as right if it is the true code" +
                     (f" or one in {', '.join(accepted)}" if accepted else " or an accepted code") +
                     f" ({report['accepted']['rows_with_other_codes']:,} rows have other accepted codes)")
    lines.append(f"{'level':<10} {'top-1':>7} {'top-' + str(k):>7}")
    for level, acc in report["accuracy"].items():
        lines.append(f"{level:<10} {_pct(acc['top1']):>7} {_pct(acc[f'top{k}']):>7}")
    if report.get("gold_only") is not None:
        g = report["gold_only"]
        lines.append(f"{'true only':<10} {_pct(g['top1']):>7} {_pct(g[f'top{k}']):>7}  (unit, the true code alone)")
    auto, st = report["auto"], report["status"]
    thr = report.get("threshold")
    lines.append(f"auto (threshold {thr:.3f}): coverage {_pct(auto['coverage']).strip()}, "
                 f"precision {_pct(auto['precision']).strip()} ({auto['n']:,} titles); "
                 f"refer {_pct(st['refer']).strip()}, uncodable {_pct(st['uncodable']).strip()}"
                 if thr is not None else
                 f"auto: coverage {_pct(auto['coverage']).strip()}, precision {_pct(auto['precision']).strip()}")
    t = report["target"]
    lines.append(f"for precision >= {t['target_precision']:.0%}: " + (
        f"threshold {t['threshold']:.3f} auto-codes {t['coverage']:.1%} (precision {t['precision']:.1%})"
        if t["threshold"] is not None else "no threshold reaches it"))
    if t.get("note"):
        lines.append(f"  note: threshold {t['note']}")
    cal = report["calibration"]
    if cal["ece"] is not None:
        lines.append(f"calibration: ECE {cal['ece']:.3f} ({cal['bins']} equal-width bins), mean confidence "
                     f"{cal['mean_confidence']:.3f} vs top-1 accuracy {cal['top1']:.3f}, Brier {cal['brier']:.3f}")
        lines.append("  bin          n   conf   right")
        for b in cal["reliability"]:
            if b["n"]:
                lines.append(f"  {b['lo']:.2f}-{b['hi']:.2f} {b['n']:>6} {b['mean_confidence']:6.3f} {b['accuracy']:7.3f}")
    if report["confusions"]:
        lines.append("most frequent confusions (true -> predicted):")
        for c in report["confusions"]:
            ex = "; ".join(c["examples"])
            lines.append(f"  {c['count']:>4}  {c['true']} {c['true_title'][:38]} -> {c['predicted']} "
                         f"{c['predicted_title'][:38]}" + (f"  e.g. {ex[:60]}" if ex else ""))
    ng = report["no_gold"]
    if ng["rows"]:
        lines.append(f"rows without a true code: {ng['rows']:,}; sent to refer/uncodable {_pct(ng['not_auto']).strip()} "
                     f"(refer {_pct(ng['status']['refer']).strip()}, uncodable {_pct(ng['status']['uncodable']).strip()})")
        for ex in ng["auto_examples"][:5]:
            lines.append(f"  auto-coded anyway: {ex['text']!r} -> {ex['code']} ({ex['confidence']:.2f})")
    if report.get("gold_not_in_scheme"):
        lines.append(f"warning: {report['gold_not_in_scheme']:,} true codes are not {report['scheme']} unit groups")
    return "\n".join(lines)
