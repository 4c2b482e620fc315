"""Batch coding of files: streaming readers/writers, parallel runner, codebook, referral, Dask.

>>> from coder.batch import code_frame, code_file                      # doctest: +SKIP
>>> coded = code_frame(df, "job_title", "industry", "what_they_do")     # a new DataFrame
>>> code_file("answers.csv", "coded.parquet", "job_title", industry_column="industry",
...           description_column="what_they_do", codebook="codebook.csv", refer="refer.xlsx")

Importing this package is cheap: the names below load their modules (and pandas) on first
use, so ``coder --help`` stays quick; the model, Dask, pyarrow, openpyxl and pyreadstat load
only when a run needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "code_frame", "code_file", "code_dask_dataframe", "RunSummary", "output_columns",
    "count_codes", "format_codebook", "write_codebook",
]

_HOME = {
    "code_frame": "frame", "output_columns": "frame",
    "code_file": "runner", "RunSummary": "runner",
    "code_dask_dataframe": "cluster",
    "count_codes": "codebook", "format_codebook": "codebook", "write_codebook": "codebook",
}

if TYPE_CHECKING:
    from .cluster import code_dask_dataframe
    from .codebook import count_codes, format_codebook, write_codebook
    from .frame import code_frame, output_columns
    from .runner import RunSummary, code_file


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
