"""Structural equality of built models: every array, matrix and value equal, whatever the
objects' sharing (which a pickle's bytes record: a ranker read from a file shares NumPy's
dtype objects, one returned by a build worker does not)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def differences(a: object, b: object, path: str = "model", *, limit: int = 10, _seen: set | None = None) -> list[str]:
    """Where ``a`` and ``b`` differ (at most ``limit`` places), as attribute paths."""
    seen = set() if _seen is None else _seen
    out: list[str] = []

    def add(msg: str) -> None:
        if len(out) < limit:
            out.append(f"{path}: {msg}")

    if (id(a), id(b)) in seen:
        return out
    seen.add((id(a), id(b)))
    if type(a) is not type(b):
        add(f"type {type(a).__name__} != {type(b).__name__}")
    elif isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            add(f"array {a.dtype}{a.shape} != {b.dtype}{b.shape}")
        elif a.dtype.kind == "O":
            if not all(x == y for x, y in zip(a.ravel(), b.ravel())):
                add("object arrays differ")
        elif not np.array_equal(a.view(np.uint8) if a.ndim else a, b.view(np.uint8) if b.ndim else b):
            add("array values differ")
    elif sp.issparse(a):
        for part in ("data", "indices", "indptr"):
            out += differences(getattr(a, part), getattr(b, part), f"{path}.{part}", limit=limit - len(out), _seen=seen)
        if a.shape != b.shape:
            add(f"shape {a.shape} != {b.shape}")
    elif isinstance(a, dict):  # the order of keys is left aside: caches made on first use come in any order
        if set(a) != set(b):
            add(f"keys differ: {sorted(set(a) ^ set(b), key=str)}")
        else:
            for k in a:
                out += differences(a[k], b[k], f"{path}[{k!r}]", limit=limit - len(out), _seen=seen)
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            add(f"length {len(a)} != {len(b)}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                out += differences(x, y, f"{path}[{i}]", limit=limit - len(out), _seen=seen)
    elif isinstance(a, float) and np.isnan(a):
        if not np.isnan(b):
            add(f"{a!r} != {b!r}")
    elif isinstance(a, (str, bytes, int, float, complex, bool, type(None), np.generic, type)):
        if a != b:
            add(f"{a!r} != {b!r}")
    elif hasattr(a, "__dict__") or hasattr(a, "__getstate__"):
        sa, sb = _state(a), _state(b)
        out += differences(sa, sb, path, limit=limit - len(out), _seen=seen)
    elif a != b:
        add(f"{a!r} != {b!r}")
    return out[:limit]


def _state(obj: object) -> object:
    if isinstance(obj, np.dtype):
        return str(obj)
    state = obj.__reduce_ex__(5)
    return state[2] if len(state) > 2 and state[2] is not None else state[1]
