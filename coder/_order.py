"""Integer keys that sort as float32 values do: several sort keys then pack into one uint64,
sorted (or searched) in one NumPy call instead of a `lexsort` over each."""

from __future__ import annotations

import numpy as np

__all__ = ["float32_order"]


def float32_order(x: np.ndarray) -> np.ndarray:
    """uint64 values below 2**32, in the order of the float32 values of ``x`` (-0.0 equal to
    0.0, as float comparison has it; NaN has no place)."""
    bits = (np.asarray(x, np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    return np.where(bits >> np.uint64(31), ~bits & np.uint64(0xFFFFFFFF), bits | np.uint64(0x80000000))
