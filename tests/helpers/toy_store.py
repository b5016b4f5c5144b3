"""A small feature store written directly with the store writer (no CLIP, no images).

Used by the reliability catalogues to damage a store the way a disk, a copy or a hand edit
could: D-dimensional rows, N images in chunks of R rows (3 chunks: rows 0-3, 4-7, 8-9), one
split KEY, 3 prompts, and the HDF5 export beside the Zarr folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcdg.store import fingerprint as fpr
from hcdg.store.feature_writer import StoreWriter

D, N, R = 8, 10, 4
KEY = "toy/train"
ENC = {"model": "m", "weights": {"kind": "random", "seed": 0}, "precision": "fp32", "quick_gelu": False,
       "open_clip": "x", "preprocess": {"size": 8, "interpolation": "bicubic", "resize_mode": "shortest",
                                        "mean": [0.5], "std": [0.5]}}


def toy_store(path: Path, rows: np.ndarray | None = None, errors: list[str] | None = None):
    """Write the toy store at `path`; `rows`: (N, D) float32 image features (default seeded
    normal), `errors`: per-row error strings (default none). Returns the split writer."""
    w = StoreWriter(path, fpr.store_fingerprint(ENC, "abc", 3, "float16"), D)
    w.ensure_text([0, 1, 2], ["a", "b", "c"], "test",
                  lambda: (np.random.default_rng(1).normal(size=(3, D)).astype(np.float32), 3))
    sfp = fpr.split_fingerprint([("x.jpg", 1)], dataset="toy", split="train", options={}, limit=None)
    split = w.open_split(KEY, [f"{i:03d}" for i in range(N)], R, sfp, {"root": "/x"})
    rows = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32) if rows is None else rows
    errors = errors or [""] * N
    for c in range(split.n_chunks):
        r = split.rows(c)
        split.write_chunk(c, rows[r.start:r.stop], errors[r.start:r.stop])
    w.export_h5()
    return split
