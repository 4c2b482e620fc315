"""Helpers for sorted arrays: integer keys that sort as float32 values do (several sort keys
then pack into one uint64, sorted or searched in one NumPy call instead of a `lexsort` over
each), and where runs of equal values start."""

from __future__ import annotations

import numpy as np

__all__ = ["float32_order", "run_starts", "offsets"]


def float32_order(x: np.ndarray) -> np.ndarray:
    """uint64 values below 2**32, in the order of the float32 values of ``x`` (-0.0 equal to
    0.0, as float comparison has it; NaN has no place)."""
    bits = (np.asarray(x, np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    return np.where(bits >> np.uint64(31), ~bits & np.uint64(0xFFFFFFFF), bits | np.uint64(0x80000000))


def run_starts(values: np.ndarray) -> np.ndarray:
    """True where a run of equal values starts (always at 0): ``np.r_[True, v[1:] != v[:-1]]``
    without `np.r_`, whose parsing costs more than the comparison on a title's few rows."""
    values = np.asarray(values)
    out = np.empty(len(values), bool)
    if len(values):
        out[0] = True
        np.not_equal(values[1:], values[:-1], out=out[1:])
    return out


def offsets(lengths: np.ndarray) -> np.ndarray:
    """``np.r_[0, np.cumsum(lengths)]``: where each of consecutive pieces starts, and the end."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out
