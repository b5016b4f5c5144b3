"""Integrity of a feature store: one CRC32 per chunk and array, written with the chunk, checked on load.

* Every split has `sums` (C, 4) uint32: the CRC32 of chunk c's stored bytes of
  `feats`, `norms`, `valid` and `errors` (`CHECKED` order), written by
  `SplitWriter.write_chunk` after the chunk's data and before its `done` flag. Each
  row is its own chunk file, so shards writing disjoint chunks never share a file.
  The split's metadata records `"checksums": "crc32"`.
* The text table's CRC32s live in its metadata (`crc32`: {array: value}).
* Checked: by `load_split` / `load_text` (what `hcdg train` loads: feats + valid, or
  the whole text table), by `hcdg store info` and `hcdg store verify` (every array).
  A chunk whose file is absent and whose checksum does not match is *missing*; one
  whose bytes differ is *damaged*; one zarr/h5py cannot decode (truncated, foreign
  codec, edited shape) is *unreadable*. Any of these refuses the store with one line
  naming the array and chunk.
* Stores written before checksums (no `sums`, no `"checksums"` in the split metadata)
  still load, with a one-line warning that their integrity is unverified; the checks
  that need no checksum still apply (array shapes; a row marked valid must hold finite
  features; a row marked skipped must say why).

CRC32 (`zlib.crc32`, ~4 GB/s) detects every burst error up to 32 bits and any other
change with probability 1 - 2^-32; it is a guard against disk and copy damage, not
against an adversary.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Arrays of a split with one checksum per chunk, in the column order of `sums`.
CHECKED = ("feats", "norms", "valid", "errors")
SUMS = "sums"
ALGO = "crc32"
#: Arrays `hcdg train` reads from a split (checked at load time).
TRAINING = ("feats", "valid")
TEXT_ARRAYS = ("feats", "norms", "prompts", "ids")
REPAIR = ("rerun the `hcdg embed` command that wrote it (a Zarr store re-embeds its damaged chunks), or rebuild it "
          "into a new --store")


def crc32(a: np.ndarray) -> int:
    """CRC32 of an array's stored bytes (strings: of their JSON list, so zarr and HDF5 agree)."""
    if a.dtype.kind in "OTUS":
        return zlib.crc32(json.dumps([x.decode() if isinstance(x, bytes) else str(x) for x in a.tolist()]).encode())
    return zlib.crc32(np.ascontiguousarray(a))


def chunk_sums(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(4,) uint32: the CRC32 of one chunk's rows of each `CHECKED` array."""
    return np.array([crc32(arrays[name]) for name in CHECKED], dtype=np.uint32)


@dataclass
class Check:
    """What a check found: `problems` (one line each), `verified` (checksums were there), arrays read."""

    verified: bool
    problems: list[str] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    chunks: int = 0
    #: Chunks found damaged one by one (re-embedding them repairs the split); `structural` problems
    #: (a missing or reshaped array, a foreign codec) cannot be repaired chunk by chunk.
    bad_chunks: set[int] = field(default_factory=set)
    structural: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def _one_line(exc: BaseException) -> str:
    if hasattr(exc, "cause"):  # features.StoreDamaged: already one line
        return str(exc.cause)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _chunk_file(reader: Any, array: str, chunk: int, ndim: int) -> Path | None:
    """The file holding chunk `chunk` of a Zarr array (None for HDF5 or when unknown)."""
    if reader.kind != "zarr":
        return None
    try:
        arr = reader._root[array]
        key = arr.metadata.encode_chunk_key((chunk,) + (0,) * (ndim - 1))
    except Exception:  # noqa: BLE001 - only used to word the message
        return None
    return reader.path / array / key


def _rows(c: int, r: int, n: int) -> str:
    return f"rows {c * r}-{min((c + 1) * r, n) - 1}"


def read_array(reader: Any, node: str, shape: tuple[int, ...], chunk_rows: int, where: str,
               problems: list[str], bad_chunks: set[int] | None = None) -> np.ndarray | None:
    """Read a whole array, checking its shape; on a decode error, find and name the bad chunks."""
    name = node.rsplit("/", 1)[-1]
    try:
        arr = reader._root[node]
        have = tuple(int(s) for s in arr.shape)
    except KeyError:
        problems.append(f"{where}: array {name} is missing ({node})")
        return None
    except Exception as exc:  # noqa: BLE001 - foreign codec, damaged zarr.json
        problems.append(f"{where}: array {name} cannot be opened ({_one_line(exc)})")
        return None
    if have != shape:
        problems.append(f"{where}: array {name} has shape {have}, the split's metadata says {shape}")
        return None
    try:
        return reader.read(node)
    except Exception:  # noqa: BLE001 - locate the chunk(s) below
        pass
    n = shape[0]
    bad = []
    for c in range(max(1, -(-n // chunk_rows))):
        try:
            reader.read(node, slice(c * chunk_rows, min((c + 1) * chunk_rows, n)))
        except Exception as exc:  # noqa: BLE001
            bad.append(f"chunk {c} ({_rows(c, chunk_rows, n)}) unreadable ({_one_line(exc)})")
            if bad_chunks is not None:
                bad_chunks.add(c)
    problems.append(f"{where}: array {name} " + ("; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3
                                                  else "") if bad else "unreadable"))
    return None


def check_split(reader: Any, key: str, node: str, meta: dict[str, Any], arrays: tuple[str, ...] = CHECKED) -> Check:
    """Check a split's `arrays` (shapes, decodability, per-chunk CRC32, valid rows finite)."""
    n, r = int(meta["n_rows"]), int(meta["chunk_rows"])
    n_chunks = max(1, -(-n // r))
    dim = int(reader.meta["dim"])
    where = f"{reader.path}: split {key}"
    has_sums = reader.has(f"{node}/{SUMS}")
    promised = meta.get("checksums") == ALGO
    check = Check(verified=has_sums, chunks=n_chunks)
    if promised and not has_sums:
        check.problems.append(f"{where}: array {SUMS} (the chunk checksums) is missing")
        check.structural = True
    shapes = {"feats": (n, dim), "norms": (n,), "valid": (n,), "errors": (n,), "done": (n_chunks,),
              SUMS: (n_chunks, len(CHECKED))}
    shapes["ids"] = (n,)
    wanted = ["done", *arrays] + ([SUMS] if has_sums else []) + (["ids"] if arrays == CHECKED else [])
    if not has_sums and "valid" in arrays and "errors" not in arrays:
        wanted.append("errors")  # unverified store: a row marked skipped must say why
    for name in wanted:
        before = len(check.problems)
        per_row = name not in ("done", SUMS, "ids")  # chunks of rows a re-embed rewrites
        got = read_array(reader, f"{node}/{name}", shapes[name], r if name not in ("done", SUMS) else 1, where,
                         check.problems, check.bad_chunks if per_row else None)
        if got is not None:
            check.data[name] = got
        elif len(check.problems) > before and not (per_row and check.bad_chunks):
            check.structural = True
    if check.problems:
        check.structural = check.structural or not check.bad_chunks
        return check
    done = check.data["done"].astype(bool)
    sums = check.data.get(SUMS)
    for c in np.flatnonzero(done):
        sel = slice(c * r, min((c + 1) * r, n))
        before = len(check.problems)
        if sums is not None:
            for j, name in enumerate(CHECKED):
                if name in arrays and crc32(check.data[name][sel]) != int(sums[c, j]):
                    path = _chunk_file(reader, f"{node}/{name}", int(c), len(shapes[name]))
                    if not sums[c].any():
                        what = "has no checksum (its row of sums is missing)"
                    elif path is not None and not path.exists():
                        what = f"is missing (no file {path})"
                    else:
                        what = "is damaged (CRC32 differs from the one written with it)"
                    check.problems.append(f"{where}: array {name} chunk {c} ({_rows(c, r, n)}) {what}")
                    check.bad_chunks.add(int(c))
        # Without checksums: a row marked valid must hold finite features. (With them this follows:
        # the writer stores NaN only in rows it marks skipped.)
        if sums is None and "feats" in arrays and "valid" in arrays and len(check.problems) == before:
            valid = check.data["valid"][sel].astype(bool)
            finite = np.isfinite(check.data["feats"][sel]).all(axis=1)
            if (valid & ~finite).any():
                path = _chunk_file(reader, f"{node}/feats", int(c), 2)
                what = (f"is missing (no file {path})" if path is not None and not path.exists()
                        else f"holds non-finite features in {int((valid & ~finite).sum())} rows marked valid")
                check.problems.append(f"{where}: array feats chunk {c} ({_rows(c, r, n)}) {what}")
                check.bad_chunks.add(int(c))
            if "errors" in check.data:
                unexplained = ~valid & (check.data["errors"][sel] == "")
                if unexplained.any():
                    path = _chunk_file(reader, f"{node}/valid", int(c), 1)
                    what = (f"is missing (no file {path})" if path is not None and not path.exists()
                            else f"marks {int(unexplained.sum())} rows skipped without an error")
                    check.problems.append(f"{where}: array valid chunk {c} ({_rows(c, r, n)}) {what}")
                    check.bad_chunks.add(int(c))
    return check


#: A view split's (`hcdg embed --views K`) parameter rows and their per-chunk CRC32s (store/views.py).
VIEW_PARAMS, VIEW_SUMS = "view_params", "view_sums"


def check_view_params(reader: Any, key: str, node: str, meta: dict[str, Any]) -> tuple[list[str], np.ndarray | None]:
    """(problems, the parameter rows) of a view split: every written chunk of `view_params` must match its CRC32
    in `view_sums` and hold finite values. ([], None) for a split without views."""
    if "views" not in (meta.get("fingerprint") or {}):
        return [], None
    where = f"{reader.path}: split {key}"
    if not (reader.has(f"{node}/{VIEW_PARAMS}") and reader.has(f"{node}/{VIEW_SUMS}")):
        return [f"{where} records views but holds no {VIEW_PARAMS}/{VIEW_SUMS} arrays"], None
    try:
        params = reader.read(f"{node}/{VIEW_PARAMS}")
        sums = reader.read(f"{node}/{VIEW_SUMS}")
        done = reader.read(f"{node}/done").astype(bool)
    except Exception as exc:  # noqa: BLE001 - an undecodable array is a problem to report, not a crash
        return [f"{where}: {VIEW_PARAMS} unreadable ({_one_line(exc)})"], None
    n, r = int(meta["n_rows"]), int(meta["chunk_rows"])
    if params.shape[0] != n or len(sums) != len(done):
        return [f"{where}: {VIEW_PARAMS} has {params.shape[0]} rows / {len(sums)} sums, expected {n} / {len(done)}"], None
    problems = []
    for c in np.flatnonzero(done):
        part = np.ascontiguousarray(params[c * r:(c + 1) * r], dtype=np.float32)
        if crc32(part) != int(sums[c]) or not np.isfinite(part).all():
            problems.append(f"{where}: {VIEW_PARAMS} chunk {c} ({_rows(int(c), r, n)}) does not match its "
                            "checksum (damaged)")
    return problems, params


def text_sums(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """{array: CRC32} of the text table (stored in its metadata)."""
    return {name: crc32(arrays[name]) for name in TEXT_ARRAYS}


def check_text(reader: Any, node: str, meta: dict[str, Any], arrays: tuple[str, ...] = TEXT_ARRAYS) -> Check:
    """Check the text table's `arrays` against the CRC32s in its metadata (when it has them)."""
    sums = meta.get(ALGO)
    check = Check(verified=isinstance(sums, dict), chunks=1)
    where = f"{reader.path}: text table"
    try:
        p = int(reader._root[f"{node}/prompts"].shape[0])
    except Exception as exc:  # noqa: BLE001
        check.problems.append(f"{where}: array prompts cannot be opened ({_one_line(exc)})")
        return check
    shapes = {"feats": (p, int(reader.meta["dim"])), "norms": (p,), "prompts": (p,), "ids": (p,)}
    for name in arrays:
        got = read_array(reader, f"{node}/{name}", shapes[name], max(p, 1), where, check.problems)
        if got is None:
            continue
        check.data[name] = got
        if check.verified and crc32(got) != int(sums.get(name, -1)):
            check.problems.append(f"{where}: array {name} chunk 0 is damaged (CRC32 differs from the one written "
                                  "with it)")
    return check


def refuse(check: Check) -> str:
    """The one-line refusal for a failed check."""
    more = f" (and {len(check.problems) - 1} more problems)" if len(check.problems) > 1 else ""
    return f"{check.problems[0]}{more}; {REPAIR}"
