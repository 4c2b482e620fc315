"""Coding on a Dask cluster: partitions of a Dask DataFrame, or batches of distinct titles.

Each worker process loads a model once and keeps it in a module-level cache keyed by
(scheme, model directory, threshold), so every task after the first on a worker reuses it.
Coders' decisions travel with the tasks as a snapshot (`coder.decisions.DecisionSnapshot`):
workers need not reach the store's file.
Workers load with ``build=False``: build the model first (``coder build``, or any local run)
in a ``model_dir`` the workers can read.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..schemes import MISSING_CODE, load_scheme
from .frame import ChunkCoder, Coded, Key, check_columns, code_frame, coded_rows, output_columns

if TYPE_CHECKING:
    from ..decisions import DecisionSnapshot
    from ..engine import Coder

__all__ = ["code_dask_dataframe", "worker_coder", "code_keys_on_worker"]

_CODERS: dict[tuple[str, str | None, float | None], "Coder"] = {}
_LOCK = threading.Lock()  # a worker may run several tasks in threads; load once
# -> (snapshot token, a Coder on _CODERS[key]'s model applying that snapshot's decisions)
_DECIDING: dict[tuple[str, str | None, float | None], tuple[str, "Coder"]] = {}


def worker_coder(scheme: str = "soc2000", model_dir: str | None = None,
                 threshold: float | None = None, decisions: "DecisionSnapshot | None" = None) -> "Coder":
    """The `Coder` for these settings in this process, loaded on first use. With
    ``decisions`` (a `coder.decisions.DecisionSnapshot`), one that applies them, on the same
    loaded model; the latest snapshot's is kept, as a run sends one."""
    from ..engine import Coder

    key = (load_scheme(scheme).name, str(model_dir) if model_dir is not None else None, threshold)
    with _LOCK:
        coder = _CODERS.get(key)
        if coder is None:
            coder = _CODERS[key] = Coder.load(key[0], model_dir=key[1], threshold=threshold, build=False)
        if decisions is None:
            return coder
        held = _DECIDING.get(key)
        if held is None or held[0] != decisions.token:
            held = _DECIDING[key] = (decisions.token, Coder(coder.model, threshold=threshold, decisions=decisions))
    return held[1]


def code_keys_on_worker(keys: list[Key], *, k: int, scheme: str, model_dir: str | None = None,
                        threshold: float | None = None, decisions: "DecisionSnapshot | None" = None) -> list[Coded]:
    """Code distinct (title, industry, description) keys with this worker's cached model (and
    the coders' ``decisions``, when given)."""
    return coded_rows(worker_coder(scheme, model_dir, threshold, decisions), keys, k)


def _code_partition(part: pd.DataFrame, column: str, industry_column: str | None,
                    description_column: str | None, scheme: str, k: int, model_dir: str | None,
                    missing_code: str, threshold: float | None,
                    decisions: "DecisionSnapshot | None" = None) -> pd.DataFrame:
    if not len(part):
        return _meta(part, scheme, k)
    coder = worker_coder(scheme, model_dir, threshold, decisions)
    return code_frame(part, column, industry_column, description_column, coder=coder, k=k,
                      missing_code=missing_code)


def _meta(empty: pd.DataFrame, scheme: str, k: int) -> pd.DataFrame:
    chunker = ChunkCoder(lambda keys: [], scheme=scheme, k=k)
    added = chunker.frame([], np.zeros(0, dtype=np.intp), empty.index[:0])
    return empty.iloc[:0].assign(**{name: added[name] for name in added.columns})


def code_dask_dataframe(ddf: Any, column: str, industry_column: str | None = None,
                        description_column: str | None = None, *, scheme: str = "soc2000", k: int = 5,
                        model_dir: str | None = None, missing_code: str = MISSING_CODE,
                        threshold: float | None = None, decisions: Any = None) -> Any:
    """Code a Dask DataFrame partition by partition on the cluster it belongs to (lazy).

    Returns a Dask DataFrame with ``ddf``'s columns plus the coding columns, exactly as
    `code_frame` adds them. Each worker loads the model from ``model_dir`` once; the model
    must already be built there (``coder build``). Each distinct (title, industry,
    description) is coded once within a partition (and the worker's engine cache spans
    partitions). ``decisions`` (a `coder.decisions.DecisionStore`, or a snapshot of one):
    the decisions that stand now travel with the tasks, and decided answers get their code.

    Examples
    --------
    >>> import dask.dataframe as dd                                       # doctest: +SKIP
    >>> from distributed import Client
    >>> client = Client("tcp://scheduler:8786")
    >>> ddf = dd.read_csv("answers-*.csv", dtype=str, keep_default_na=False)
    >>> code_dask_dataframe(ddf, "job_title", "industry", "job_description").to_parquet("coded/")
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    name = load_scheme(scheme).name
    named = {"title": column, "industry": industry_column, "description": description_column}
    check_columns(list(ddf.columns), named, output_columns(name, k), "the Dask DataFrame")
    meta = _meta(ddf._meta, name, k)
    snapshot = decisions.snapshot(name) if hasattr(decisions, "snapshot") else decisions
    return ddf.map_partitions(
        _code_partition, column, industry_column, description_column, name, k,
        str(model_dir) if model_dir is not None else None, missing_code, threshold, snapshot,
        meta=meta, align_dataframes=False,
    )
