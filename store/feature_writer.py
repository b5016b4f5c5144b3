"""Writing the feature store: resumable, chunk-aligned, safe under concurrent shards.

* Creating the store, a split's arrays and the text table happens under an
  exclusive file lock (`fcntl.flock`), so shard processes started together
  create each thing once and check each other's fingerprints.
* Image features are written one whole chunk at a time (rows
  [c*R, min((c+1)*R, N)) of feats, norms, valid, errors); only then is chunk
  c's `done` flag (its own file) set. Shards write disjoint chunks, so no two
  processes ever touch the same chunk file. A process killed at any moment
  leaves at worst an unflagged chunk, which the next run writes again.
* Node metadata (`attrs["hcdg"]`) is written after the node's arrays: a node
  without metadata is unfinished and is recreated.
* HDF5 (`*.h5`): a killed HDF5 writer can corrupt the whole file, so all
  writing goes to the Zarr staging folder `PATH.partial.zarr`; whenever text or
  a split is complete, `export_h5` rebuilds the `.h5` (old content + the
  completed parts) into a temp file and renames it into place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hcdg.pipeline.errors import HcdgError
from hcdg.store import fingerprint as fpr
from hcdg.store import integrity
from hcdg.store.atomic import atomic_path
from hcdg.store.features import (
    ATTR, DTYPES, FORMAT, SPLITS, TEXT, VERSION, StoreReader, is_h5, split_node, staging_path,
)



@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the store (blocks until free).

    A Zarr store locks its own directory (flock on the folder's descriptor: no
    stray file inside the hierarchy); an HDF5 store locks `PATH.lock` beside it.
    """
    if is_h5(path):
        target = Path(str(path) + ".lock")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    else:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def shard_lock(path: str | Path, shard: tuple[int, int]) -> Iterator[None]:
    """The writer lock of one `hcdg embed` process: `STORE.writer-I-of-N.lock` beside the store.

    A second process embedding the same shard into the same store is refused with one
    line naming the first (`store.locks`); different shards write in parallel as before.
    A parent folder this call created is removed again when the block fails before using it.
    """
    from hcdg.store.locks import writer_lock

    path = Path(path)
    for p in path.parents:
        if p.exists():
            if not p.is_dir():
                raise HcdgError(f"--store {path}: {p} is a file, not a folder; give a path in a folder")
            break
    missing = [p for p in path.parents if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HcdgError(f"--store {path}: cannot create its folder {path.parent} ({exc.strerror or exc})") from None
    i, n = shard
    lock = Path(f"{path}.writer-{i}-of-{n}.lock")
    try:
        with writer_lock(lock, f"store {path}" + (f" (shard {i}/{n})" if n > 1 else "")):
            yield
    finally:
        for p in missing:  # innermost first; only empty ones go
            with contextlib.suppress(OSError):
                p.rmdir()


def _set_attrs(node: Any, meta: dict[str, Any]) -> None:
    node.attrs[ATTR] = json.loads(fpr.canonical_json(meta))


class SplitWriter:
    """Chunk writer of one split (Zarr group `splits/<key>`)."""

    def __init__(self, group: Any, n_rows: int, chunk_rows: int) -> None:
        self.group, self.n_rows, self.chunk_rows = group, n_rows, chunk_rows
        self.where = f"split {group.name.strip('/')}"  # for messages (StoreWriter.open_split names the store)
        self.n_chunks = max(1, -(-n_rows // chunk_rows))
        # A split created before checksums (hcdg <= 0.1 stores) is finished without them.
        self.checksums = integrity.SUMS in group

    def rows(self, chunk: int) -> range:
        """Row indices of chunk `chunk`."""
        return range(chunk * self.chunk_rows, min((chunk + 1) * self.chunk_rows, self.n_rows))

    def done(self) -> np.ndarray:
        """(C,) bool: chunk written."""
        return self.group["done"][:].astype(bool)

    def write_chunk(self, chunk: int, feats: np.ndarray, errors: list[str]) -> None:
        """Write chunk `chunk`: feats (n, D) float32 raw features (rows with an error are stored NaN)."""
        rows = self.rows(chunk)
        if feats.shape[0] != len(rows) or len(errors) != len(rows):
            raise ValueError(f"chunk {chunk}: expected {len(rows)} rows, got {feats.shape[0]}")
        valid = np.array([not e for e in errors], dtype=bool)
        feats = np.where(valid[:, None], feats, np.nan).astype(np.float32)
        sel = slice(rows.start, rows.stop)
        with np.errstate(over="ignore"):  # an overflow is refused just below
            stored = feats.astype(self.group["feats"].dtype)
        bad = valid & ~np.isfinite(stored).all(axis=1)
        if bad.any():  # NaN from the model, or a value beyond float16's +-65504 cast to inf: never store it
            row = rows.start + int(np.flatnonzero(bad)[0])
            raw = feats[bad]
            why = ("is not finite" if not np.isfinite(raw).all() else
                   f"overflows {stored.dtype} (max |x| = {np.abs(raw).max():.3g}; store with --dtype float32)")
            raise HcdgError(f"{self.where} row {row}: the image's feature {why}; chunk {chunk} not written")
        data = {
            "feats": stored,
            "norms": np.where(valid, np.linalg.norm(feats, axis=1), np.nan).astype(np.float32),
            "valid": valid,
            # Always written: a chunk rewritten on resume must not keep a killed run's error texts.
            "errors": np.array(errors, dtype=str),
        }
        for name in integrity.CHECKED:
            self.group[name][sel] = data[name]
        if self.checksums:  # after the data, before the flag: a flagged chunk always has its sums
            self.group[integrity.SUMS][chunk] = integrity.chunk_sums(data)
        self.group["done"][chunk] = 1  # last: the chunk counts only once its bytes are down


class StoreWriter:
    """Opens (creating when absent) a store for writing; refuses a different fingerprint.

    For an `.h5` path the Zarr staging folder is written; call `export_h5` when done.
    """

    def __init__(self, path: str | Path, fingerprint: dict[str, Any], dim: int,
                 created: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.created = dict(created or {})
        self.fingerprint = fingerprint
        self.dim = dim
        if fingerprint["dtype"] not in DTYPES:
            raise HcdgError(f"--dtype {fingerprint['dtype']}: expected one of {', '.join(DTYPES)}")
        self.zarr_path = staging_path(self.path) if is_h5(self.path) else self.path
        if not is_h5(self.path) and self.path.is_file():
            raise HcdgError(f"{self.path}: is a file; a Zarr store is a folder (end the path in .h5 for HDF5)")
        try:
            (self.path.parent if is_h5(self.path) else self.path).mkdir(parents=True, exist_ok=True)
            with store_lock(self.path):
                self.root = self._open_root()
        except PermissionError as exc:
            raise HcdgError(f"{self.path}: store path not writable ({exc.strerror})") from None
        except OSError as exc:
            raise HcdgError(f"{self.path}: cannot create the store ({exc.strerror or exc})") from None
        except HcdgError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a damaged zarr.json: one line naming the store
            msg = " ".join(str(exc).split())
            raise HcdgError(f"{self.zarr_path}: not a readable feature store ({type(exc).__name__}: {msg})") from None

    def _open_root(self) -> Any:
        import zarr

        reference = None
        if is_h5(self.path) and self.path.exists():
            with StoreReader(self.path) as reader:
                self._refuse_if_different(self.path, reader.meta)
                reference = reader.meta
        self.zarr_path.mkdir(exist_ok=True)
        entries = {p.name for p in self.zarr_path.iterdir()}
        if entries and "zarr.json" not in entries:
            raise HcdgError(f"{self.zarr_path}: folder exists and is not a feature store")
        root = zarr.open_group(str(self.zarr_path), mode="a")
        meta = root.attrs.get(ATTR)
        if meta is None:
            if list(root.keys()):
                raise HcdgError(f"{self.zarr_path}: Zarr group without hcdg metadata: not a feature store")
            _set_attrs(root, reference or self._root_meta())
        else:
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise HcdgError(f"{self.zarr_path}: not an hcdg feature store of version {VERSION}")
            self._refuse_if_different(self.zarr_path, meta)
        return root

    def _root_meta(self) -> dict[str, Any]:
        from hcdg import __version__

        return {"format": FORMAT, "version": VERSION, "dim": self.dim, "fingerprint": self.fingerprint,
                "created": {"hcdg": __version__, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **self.created}}

    def _refuse_if_different(self, where: Path, meta: dict[str, Any]) -> None:
        diffs = fpr.diff(meta.get("fingerprint", {}), self.fingerprint)
        if diffs:
            raise HcdgError(
                f"{where}: built with a different fingerprint, refusing to add to it ({'; '.join(diffs[:4])}"
                f"{'; ...' if len(diffs) > 4 else ''}); use another --store"
            )

    # -- text --------------------------------------------------------------------------------
    def text_complete(self) -> bool:
        if is_h5(self.path) and self.path.exists():
            with StoreReader(self.path) as reader:
                if reader.text_complete():
                    return True
        return TEXT in self.root and ATTR in self.root[TEXT].attrs

    def ensure_text(self, ids: list[int], texts: list[str], source: str,
                    compute: Callable[[], tuple[np.ndarray, int]]) -> bool:
        """Write the text table unless complete; `compute()` -> ((P, D) float32 feats, n_distinct).

        Returns True when it computed the features (False: already present).
        """
        with store_lock(self.path):
            if self.text_complete():
                return False
            feats, n_distinct = compute()
            g = self.root.require_group(TEXT)
            dtype = self.fingerprint["dtype"]
            arrays = {"feats": feats.astype(dtype),
                      "norms": np.linalg.norm(feats.astype(np.float32), axis=1).astype(np.float32),
                      "prompts": np.array(texts, dtype=str), "ids": np.asarray(ids, dtype=np.int64)}
            for name, data in arrays.items():
                arr = g.create_array(name, shape=data.shape, dtype=data.dtype if name != "prompts" else str,
                                     chunks=data.shape, compressors=None, overwrite=True)
                arr[...] = data
            _set_attrs(g, {"source": source, "n_distinct": n_distinct, integrity.ALGO: integrity.text_sums(arrays)})
            return True

    # -- splits ------------------------------------------------------------------------------
    def open_split(self, key: str, ids: list[str], chunk_rows: int, split_fp: dict[str, Any],
                   provenance: dict[str, Any]) -> SplitWriter | None:
        """The split's chunk writer (creating its arrays), or None when the split is already complete
        in the finished `.h5`. A split present with a different fingerprint is refused."""
        with store_lock(self.path):
            if is_h5(self.path) and self.path.exists():
                with StoreReader(self.path) as reader:
                    meta = reader.attrs(split_node(key))
                    if meta is not None:
                        self._refuse_split(key, self.path, meta, split_fp, len(ids))
                        return None
            node = split_node(key)
            meta = self.root[node].attrs.get(ATTR) if node in self.root else None
            if meta is not None:
                self._refuse_split(key, self.zarr_path, meta, split_fp, len(ids))
                group = self.root[node]
                self._repair(key, meta, group)
                writer = SplitWriter(group, int(meta["n_rows"]), int(meta["chunk_rows"]))
            else:
                writer = self._create_split(node, ids, chunk_rows, split_fp, provenance)
            writer.where = f"{self.path}: split {key}"
            return writer

    def _repair(self, key: str, meta: dict[str, Any], group: Any) -> None:
        """Unflag the split's damaged chunks (checksum, missing file, undecodable) so this run embeds them again."""
        with StoreReader(self.zarr_path, zarr_dir=True) as reader:
            check = integrity.check_split(reader, key, split_node(key), meta)
        if check.ok:
            return
        if check.structural:
            raise HcdgError(f"{check.problems[0]}; this cannot be repaired chunk by chunk: rebuild the split into a "
                            "new --store")
        for c in sorted(check.bad_chunks):
            group["done"][c] = 0
        print(f"note: {self.zarr_path}: split {key}: re-embedding {len(check.bad_chunks)} damaged chunk(s) "
              f"{sorted(check.bad_chunks)[:10]} ({check.problems[0].split(': ', 2)[-1]})", file=sys.stderr)

    def _refuse_split(self, key: str, where: Path, meta: dict[str, Any], split_fp: dict[str, Any],
                      n_rows: int) -> None:
        diffs = fpr.diff(meta["fingerprint"], split_fp)
        if int(meta["n_rows"]) != n_rows:
            diffs.append(f"n_rows: store has {meta['n_rows']}, this run has {n_rows}")
        if diffs:
            raise HcdgError(
                f"{where}: split {key} was embedded from different data, refusing to add to it "
                f"({'; '.join(diffs[:4])}); use another --store or --key"
            )

    def _create_split(self, node: str, ids: list[str], chunk_rows: int, split_fp: dict[str, Any],
                      provenance: dict[str, Any]) -> SplitWriter:
        n, r, d = len(ids), int(chunk_rows), self.dim
        if r < 1:
            raise HcdgError(f"--chunk-rows {chunk_rows}: expected a positive row count")
        g = self.root.require_group(node)
        writer = SplitWriter(g, n, r)
        spec = {
            "feats": ((n, d), (r, d), self.fingerprint["dtype"], np.nan),
            "norms": ((n,), (r,), "float32", np.nan),
            "valid": ((n,), (r,), "bool", False),
            "errors": ((n,), (r,), str, ""),
            "ids": ((n,), (r,), str, ""),
            "done": ((writer.n_chunks,), (1,), "uint8", 0),
            integrity.SUMS: ((writer.n_chunks, len(integrity.CHECKED)), (1, len(integrity.CHECKED)), "uint32", 0),
        }
        for name, (shape, chunks, dtype, fill) in spec.items():
            g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                           compressors=None, overwrite=True)
        g["ids"][:] = np.array(ids, dtype=str)
        _set_attrs(g, {"n_rows": n, "chunk_rows": r, "fingerprint": split_fp, "provenance": provenance,
                       "checksums": integrity.ALGO})
        return SplitWriter(g, n, r)

    # -- HDF5 export ---------------------------------------------------------------------------
    def export_h5(self) -> bool:
        """Fold the staging folder's complete text/splits into the `.h5` (atomically). True if rebuilt."""
        if not is_h5(self.path):
            return False
        with store_lock(self.path):
            if not (self.zarr_path / "zarr.json").exists():
                return False  # another process already folded everything in
            staged = StoreReader(self.zarr_path, zarr_dir=True)
            new_text = staged.text_complete()
            new_splits = [k for k in staged.split_keys() if staged.split_progress(k)["complete"]]
            if new_text or new_splits:
                _write_h5(self.path, staged, new_text, new_splits)
                for key in new_splits:
                    shutil.rmtree(self.zarr_path / SPLITS / key, ignore_errors=True)
                if new_text:
                    shutil.rmtree(self.zarr_path / TEXT, ignore_errors=True)
            if not (self.zarr_path / TEXT).exists() and not any((self.zarr_path / SPLITS).glob("*/*/zarr.json")):
                shutil.rmtree(self.zarr_path, ignore_errors=True)
            return bool(new_text or new_splits)


def _check_space(path: Path, staged: StoreReader, replaced: set[str]) -> None:
    """ENOSPC before writing the .h5 when its folder lacks the room (HDF5 can crash on a full disk)."""
    need = (path.stat().st_size if path.exists() else 0) + (1 << 20)
    for node in replaced:
        for _, arr in staged._root[node].arrays():
            need += int(np.prod(arr.shape)) * (arr.dtype.itemsize if arr.dtype.kind not in "OTU" else 64)
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(errno.ENOSPC, f"No space left on device (writing the .h5 needs about {need / 2**20:.1f} MiB, "
                      f"{free / 2**20:.1f} MiB free; the work so far is kept in {staging_path(path)})", str(path))


def _write_h5(path: Path, staged: StoreReader, new_text: bool, new_splits: list[str]) -> None:
    import h5py

    replaced = ({TEXT} if new_text else set()) | {split_node(k) for k in new_splits}
    for stale in path.parent.glob(f".tmp-{path.name}.*"):  # a killed export's temp file (we hold the store lock)
        with contextlib.suppress(OSError):
            stale.unlink()
    _check_space(path, staged, replaced)
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as dst:
        dst.attrs[ATTR] = fpr.canonical_json(staged.meta)
        if path.exists():
            with h5py.File(path, "r") as old:
                dst.attrs[ATTR] = old.attrs[ATTR]
                if TEXT in old and TEXT not in replaced:
                    old.copy(old[TEXT], dst, name=TEXT)
                for ds in old.get(SPLITS, {}):
                    for sp in old[f"{SPLITS}/{ds}"]:
                        node = f"{SPLITS}/{ds}/{sp}"
                        if node not in replaced:
                            dst.require_group(f"{SPLITS}/{ds}")
                            old.copy(old[node], dst, name=node)
        for node in sorted(replaced):
            src = staged._root[node]
            g = dst.create_group(node) if node not in dst else dst[node]
            for name, arr in src.arrays():
                data = arr[...]
                if data.dtype.kind in ("T", "U", "O"):
                    g.create_dataset(name, data=np.array([str(x) for x in data], dtype=object), dtype=str_dt)
                else:
                    chunks = tuple(min(c, n) for c, n in zip(arr.chunks, data.shape)) if data.size else None
                    g.create_dataset(name, data=data, chunks=chunks)
            g.attrs[ATTR] = fpr.canonical_json(staged.attrs(node))


def discard_unfinished(path: str | Path) -> bool:
    """Remove the store at `path` (its Zarr folder, or an .h5 store's staging folder) when no image
    chunk of it is finished: what a failed `hcdg embed` that created it leaves. Returns whether it did.

    Call only for a store the failing command created: a store with finished chunks is kept (the
    rerun completes it), an existing one is never touched.
    """
    import zarr

    path = Path(path)
    folder = staging_path(path) if is_h5(path) else path
    if not folder.is_dir() or (is_h5(path) and path.exists()):
        return False
    try:
        root = zarr.open_group(str(folder), mode="r")
        splits = root["splits"] if "splits" in root else None
        if splits is not None:
            for _, group in splits.groups():
                for _, split in group.groups():
                    if "done" in split and np.asarray(split["done"][:]).any():
                        return False
    except Exception:  # noqa: BLE001 - unreadable half-created metadata: nothing finished in it
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return True
