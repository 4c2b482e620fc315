"""Typo'd copies of training queries, so the ranker learns how match signals look when a
respondent mistypes (the index itself is spelled correctly)."""

from __future__ import annotations

import random

__all__ = ["typo"]

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(
        _ROWS[r2][c2]
        for r2 in (r - 1, r, r + 1) if 0 <= r2 < 3
        for c2 in (c - 1, c, c + 1) if 0 <= c2 < len(_ROWS[r2]) and (r2, c2) != (r, c)
    )
    for r, row in enumerate(_ROWS) for c, ch in enumerate(row)
}


def typo(title: str, rng: random.Random) -> str:
    """One keyboard slip (substitute a neighbour, drop, double or swap letters) in one word of
    four or more letters, never the first letter; titles without such a word come back as is."""
    words = title.split()
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return title
    i = rng.choice(long)
    w = words[i]
    p = rng.randrange(1, len(w))
    kind = rng.randrange(4)
    if kind == 0 and w[p] in _NEIGHBOURS:
        w = w[:p] + rng.choice(_NEIGHBOURS[w[p]]) + w[p + 1 :]
    elif kind == 1:
        w = w[:p] + w[p + 1 :]
    elif kind == 2:
        w = w[:p] + w[p] + w[p:]
    elif p < len(w) - 1:
        w = w[:p] + w[p + 1] + w[p] + w[p + 2 :]
    else:
        w = w[:p]
    words[i] = w
    return " ".join(words)
