"""The stored augmented views of a split (`hcdg embed --views K`; docs/store.md "Views").

A view split is an ordinary split of N*K rows (row i*K + v = view v of image i; `ids`
repeats each sample id K times) with two more arrays, chunked like its rows:

* `view_params` (N*K, 7) float32: each view's augmentation draw (`pipeline.views.VIEW_PARAMS`);
* `view_sums` (C,) uint32: the CRC32 of each chunk's `view_params` rows, written with the
  chunk's parameters and before its `done` flag (so a flagged chunk always has them).

The split fingerprint's `views` entry (`pipeline.views.views_fingerprint`) names K, the
view seed and the augmentation; `hcdg train` refuses a run whose augmentation differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.errors import HcdgError
from hcdg.store import integrity
from hcdg.store.features import StoreReader, split_node

PARAMS, SUMS = integrity.VIEW_PARAMS, integrity.VIEW_SUMS


def ensure_arrays(group: Any, n_rows: int, chunk_rows: int, n_chunks: int, n_params: int) -> None:
    """Create the split group's view arrays when absent (call under the store lock)."""
    if PARAMS not in group:
        group.create_array(PARAMS, shape=(n_rows, n_params), chunks=(chunk_rows, n_params), dtype="float32",
                           fill_value=np.nan, compressors=None, overwrite=True)
    if SUMS not in group:
        group.create_array(SUMS, shape=(n_chunks,), chunks=(1,), dtype="uint32", fill_value=0,
                           compressors=None, overwrite=True)


def write_chunk_params(group: Any, rows: range, chunk: int, params: np.ndarray) -> None:
    """Write chunk `chunk`'s view parameters (len(rows), P) float32 and their CRC32 (before its done flag)."""
    params = np.ascontiguousarray(params, dtype=np.float32)
    if params.shape[0] != len(rows):
        raise ValueError(f"chunk {chunk}: expected {len(rows)} view rows, got {params.shape[0]}")
    group[PARAMS][rows.start:rows.stop] = params
    group[SUMS][chunk] = integrity.crc32(params)


def load_params(path: str | Path, split_key: str, k: int) -> np.ndarray:
    """(N, K, P) float32 view parameters of a complete view split, every chunk checked against its CRC32."""
    with StoreReader(path) as reader:
        node = split_node(split_key)
        meta = reader.attrs(node) or {}
        problems, params = integrity.check_view_params(reader, split_key, node, meta)
    if problems or params is None:
        raise HcdgError((problems[0] if problems else f"{path}: split {split_key} records no views")
                        + f"; {integrity.REPAIR}")
    if params.shape[0] % k:
        raise HcdgError(f"{path}: split {split_key}: {PARAMS} holds {params.shape[0]} rows, not a multiple of K = {k}")
    return params.reshape(params.shape[0] // k, k, params.shape[1])
