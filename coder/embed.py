"""Static "semantic" text embeddings: NumPy only at run time.

The vectors in ``data/word_vectors.npz`` were distilled from the sentence model
all-MiniLM-L6-v2 by ``scripts/distil_embeddings.py`` (the model2vec approach): every
WordPiece token, and every index/description word that the model would split into
pieces, has one fixed vector. A text's embedding is the weighted sum of its tokens'
vectors, L2-normalised. There is no network and no torch at run time, and embedding
is a dictionary look-up plus a gather, so it is fast enough for whole survey files.

The tokenizer here re-implements BERT-uncased (the model's own): clean control
characters, split CJK characters, strip accents, lowercase, split on whitespace and
punctuation, then greedy longest-match WordPiece. Words the distillation embedded
whole are looked up whole first (better than averaging their pieces).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

__all__ = ["DEFAULT_FILE", "StaticEmbedder", "basic_tokenize"]

DEFAULT_FILE = "word_vectors.npz"

# BERT removes control characters (category Cc) except the whitespace ones \t \n \r.
_ASCII_CONTROL = {c: None for c in [*range(9), 11, 12, *range(14, 32), 127]}
# After control removal and lowercasing, every ASCII char that is not [a-z0-9] or
# whitespace is BERT punctuation (ASCII 33-47, 58-64, 91-96, 123-126): its own token.
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
# Characters the model's normaliser drops: control, format, private use, surrogate.
# Unassigned code points (Cn) are kept, as it keeps them.
_REMOVED = frozenset({"Cc", "Cf", "Co", "Cs"})
_MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word: longer words become [UNK]
_CHUNK = 8192  # distinct texts tokenized per batch
_GATHER_ROWS = 1 << 16  # token rows per gather, to bound the temporary float32 array


def _is_cjk(cp: int) -> bool:
    """CJK ideographs, which BERT splits into one token per character.

    0x2B920, not Google BERT's 0x2B820: the ranges of the model's own (Rust) normaliser.
    """
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punct(ch: str) -> bool:
    """BERT punctuation: ASCII non-alphanumeric symbols, or any Unicode P* category."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _basic_tokenize_unicode(text: str) -> list[str]:
    """The general (non-ASCII) path, in the order the model's BertNormalizer uses."""
    chars: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        if ch in "\t\n\r":
            chars.append(" ")
        elif unicodedata.category(ch) in _REMOVED:  # before isspace: \x1c-\x1f, \x85
            continue
        elif ch.isspace():
            chars.append(" ")
        elif _is_cjk(cp):
            chars.append(f" {ch} ")
        else:
            chars.append(ch)
    text = unicodedata.normalize("NFD", "".join(chars))
    # Sigma first: str.lower() turns a word-final capital sigma into "ς", the model's
    # per-character lowercasing does not.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = text.replace("\u03a3", "\u03c3").lower()
    words: list[str] = []
    for chunk in text.split():
        start = 0
        for i, ch in enumerate(chunk):
            if _is_punct(ch):
                if start < i:
                    words.append(chunk[start:i])
                words.append(ch)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


def basic_tokenize(text: str) -> list[str]:
    """Split text into words as BERT-uncased does before WordPiece.

    ASCII text (nearly every job title) takes a regular-expression fast path that gives
    the same words as the general path.
    """
    if text.isascii():
        return _ASCII_WORDS.findall(text.translate(_ASCII_CONTROL).lower())
    return _basic_tokenize_unicode(text)


class StaticEmbedder:
    """Weighted bag of static token vectors; see the module docstring for why."""

    def __init__(
        self,
        tokens: Sequence[str],
        vectors: np.ndarray,
        weights: np.ndarray,
        metadata: dict | None = None,
        cache_size: int = 1 << 17,
    ) -> None:
        if len(tokens) != len(vectors) or len(tokens) != len(weights):
            raise ValueError("tokens, vectors and weights must have the same length")
        self.tokens = list(tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.vectors = np.asarray(vectors)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.metadata = dict(metadata or {})
        self.dim = int(self.vectors.shape[1])
        self.cache_size = cache_size
        # Per-instance cache (an lru_cache on the method would keep every instance alive).
        self.word_ids = lru_cache(maxsize=cache_size)(self._word_ids)

    def __getstate__(self) -> dict:
        """The vectors travel in a model file: tokens, arrays and settings, not the caches."""
        return {"tokens": self.tokens, "vectors": self.vectors, "weights": self.weights,
                "metadata": self.metadata, "cache_size": self.cache_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @classmethod
    def load(cls, path: str | Path | None = None) -> StaticEmbedder:
        """Load vectors from ``path``, by default the shipped ``data/word_vectors.npz``."""
        if path is None:
            from ._paths import data_path

            path = data_path(DEFAULT_FILE)
        with np.load(path, allow_pickle=False) as npz:
            tokens = npz["tokens"].tolist()
            vectors = npz["vectors"]
            weights = npz["weights"]
            metadata = json.loads(str(npz["metadata"])) if "metadata" in npz.files else {}
        return cls(tokens, vectors, weights, metadata)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """Token rows for one basic-tokenized word: whole if known, else WordPiece.

        A word that WordPiece cannot cover is [UNK] in BERT; here it contributes nothing.
        """
        index = self.index
        whole = index.get(word)
        if whole is not None:
            return (whole,)
        if len(word) > _MAX_WORD_CHARS:
            return ()
        ids: list[int] = []
        start, n = 0, len(word)
        while start < n:
            end = n
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = index.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return ()
            ids.append(found)
            start = end
        return tuple(ids)

    def wordpiece(self, text: str) -> list[str]:
        """The tokens that ``embed`` uses for ``text`` (for inspection and tests)."""
        return [self.tokens[i] for w in basic_tokenize(text) for i in self.word_ids(w)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts: float32 rows of unit length, or zero rows for texts with no known token.

        Repeated texts are embedded once (survey answers repeat a lot); anything that is
        not a string gives a zero row.
        """
        rows: dict[str, int] = {}
        inverse = np.full(len(texts), -1, dtype=np.intp)
        for i, text in enumerate(texts):
            if isinstance(text, str):
                inverse[i] = rows.setdefault(text, len(rows))
        unique = np.zeros((len(rows) + 1, self.dim), dtype=np.float32)  # last row: non-strings
        distinct = list(rows)
        for lo in range(0, len(distinct), _CHUNK):
            self._embed_chunk(distinct[lo:lo + _CHUNK], unique[lo:lo + _CHUNK])
        norms = np.sqrt(np.einsum("ij,ij->i", unique, unique))[:, None]
        np.divide(unique, norms, out=unique, where=norms > 0)
        return unique[inverse]

    def bag(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Token counts, float32 (texts x tokens), the tokens ``embed`` sums: a text's vector
        before normalising is its row times ``weighted(all tokens)``, up to float32 rounding.
        Anything that is not a string gives an empty row."""
        import scipy.sparse as sp  # for fitting only: embedding itself needs NumPy alone

        word_ids = self.word_ids
        indptr, ids = [0], []
        for text in texts:
            if isinstance(text, str):
                for word in basic_tokenize(text):
                    ids.extend(word_ids(word))
            indptr.append(len(ids))
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        counts = sp.csr_matrix((np.ones(len(ids), np.float32), (rows, np.asarray(ids, np.int64))),
                               shape=(len(texts), len(self.tokens)))
        counts.sum_duplicates()
        return counts

    def weighted(self, ids: np.ndarray) -> np.ndarray:
        """Float32 rows ``vectors[ids] * weights[ids]``: the terms ``embed`` sums."""
        return self.vectors[ids].astype(np.float32) * self.weights[ids][:, None]

    def _embed_chunk(self, texts: list[str], out: np.ndarray) -> None:
        """Unnormalised weighted token sums for ``texts`` into ``out``.

        Texts are grouped by token count so each group is one (texts, count, dim) gather
        and a sum; np.add.reduceat over rows is far slower.
        """
        word_ids = self.word_ids
        flat: list[int] = []
        counts = np.zeros(len(texts), dtype=np.intp)
        for i, text in enumerate(texts):
            before = len(flat)
            for word in basic_tokenize(text):
                flat.extend(word_ids(word))
            counts[i] = len(flat) - before
        if not flat:
            return
        ids = np.asarray(flat, dtype=np.intp)
        if len(texts) == 1:  # one type-ahead title: its tokens are the one group below
            out[0] = (self.vectors[ids].astype(np.float32) * self.weights[ids][:, None]).sum(axis=0)
            return
        starts = np.cumsum(counts) - counts
        for count in np.unique(counts[counts > 0]):
            members = np.flatnonzero(counts == count)
            step = max(1, _GATHER_ROWS // int(count))  # bound the temporary for long texts
            for lo in range(0, len(members), step):
                part = members[lo:lo + step]
                # Weighted per gathered token (the same float32 products as weighting the
                # whole table up front, without a 35 MB float32 copy of it in every process).
                rows = ids[starts[part][:, None] + np.arange(count)]
                block = self.vectors[rows].astype(np.float32) * self.weights[rows][..., None]
                out[part] = block.sum(axis=1)
