"""The CLIP feature store: reading it (layout, loaders for stage two, completeness).

A store is a Zarr v3 directory, or one HDF5 file when its path ends in `.h5`,
with the same layout (docs/store.md):

    /                      attrs["hcdg"]: format, version, dim, fingerprint, created
    /text/feats            (P, D) float16|float32   raw text features, prompt order
    /text/norms            (P,)   float32           L2 norm of each raw float32 row
    /text/prompts          (P,)   str               the prompt strings
    /text/ids              (P,)   int64             the prompt ids (Table 2 ids)
    /text                  attrs["hcdg"]: source, n_distinct, crc32  (written last = complete)
    /splits/<dataset>/<split>/feats  (N, D)  chunked (chunk_rows, D) along N
                             /norms  (N,)    float32
                             /valid  (N,)    bool   False = image skipped as unreadable
                             /errors (N,)    str    why a row was skipped ("" otherwise)
                             /ids    (N,)    str    the reader's sample ids, reader order
                             /done   (C,)    uint8  1 once chunk c is written (one file each)
                             /sums   (C, 4)  uint32 CRC32 of chunk c of feats, norms, valid, errors
                             attrs["hcdg"]: n_rows, chunk_rows, fingerprint, provenance, checksums

Features are the encoder's raw output (not normalised: the consumer decides).
An HDF5 store is only ever written whole (temp file + rename); work in progress
lives in a Zarr staging folder beside it (`PATH.partial.zarr`), see
`hcdg.store.feature_writer`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hcdg.pipeline.errors import HcdgError
from hcdg.store import integrity

if TYPE_CHECKING:  # torch is imported where tensors are made: `hcdg store info` does not pay for it
    import torch

FORMAT = "hcdg-feature-store"
VERSION = 1
ATTR = "hcdg"
TEXT = "text"
SPLITS = "splits"
DTYPES = ("float16", "float32")
#: Rows per chunk: the unit of work, of resume and of sharding (about 1 MB of float16 at D=512).
DEFAULT_CHUNK_ROWS = 1024
_WARNED: set[str] = set()


def is_h5(path: str | Path) -> bool:
    """HDF5 when the path ends in `.h5`, else a Zarr directory."""
    return str(path).endswith(".h5")


def staging_path(path: str | Path) -> Path:
    """The Zarr folder holding an HDF5 store's work in progress."""
    return Path(str(path) + ".partial.zarr")


def split_node(key: str) -> str:
    return f"{SPLITS}/{key}"


def check_split_key(key: str) -> str:
    """Split keys are `<dataset>/<split>` (two non-empty parts, e.g. "freihand/training")."""
    parts = key.split("/")
    if len(parts) != 2 or not all(p and p.strip() == p and p not in (".", "..") for p in parts):
        raise HcdgError(f"split key {key!r}: expected '<dataset>/<split>', e.g. 'freihand/training'")
    return key


class StoreDamaged(HcdgError):
    """An array of the store cannot be read; `cause` is the underlying error in one line."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class StoreReader:
    """Read access to one store file/folder (Zarr or HDF5), nodes named by `/` paths."""

    def __init__(self, path: str | Path, *, zarr_dir: bool | None = None) -> None:
        self.path = Path(path)
        self.kind = "zarr" if (zarr_dir if zarr_dir is not None else not is_h5(path)) else "hdf5"
        if not self.path.exists():
            raise HcdgError(f"{self.path}: no feature store there (run `hcdg embed --store {self.path}`)")
        try:
            if self.kind == "zarr":
                import zarr

                self._root: Any = zarr.open_group(str(self.path), mode="r")
            else:
                import h5py

                self._root = h5py.File(self.path, "r")
            meta = self.attrs("")
        except HcdgError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable store is one clear line
            msg = " ".join(str(exc).split())  # one line: h5py's messages span several
            raise HcdgError(f"{self.path}: not a readable feature store ({type(exc).__name__}: {msg})") from None
        if not meta or meta.get("format") != FORMAT:
            raise HcdgError(f"{self.path}: not an hcdg feature store (no '{ATTR}' metadata of format {FORMAT})")
        if meta.get("version") != VERSION:
            raise HcdgError(f"{self.path}: store format version {meta.get('version')}, this hcdg reads {VERSION}")
        self.meta = meta

    def close(self) -> None:
        if self.kind == "hdf5":
            self._root.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, node: str) -> bool:
        try:
            self._root[node] if node else self._root
            return True
        except KeyError:
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. an array declaring a codec zarr cannot build
            raise HcdgError(f"{self.path}: {node or 'the root'} cannot be opened ({integrity._one_line(exc)}); "
                            f"the store is damaged or not written by hcdg: {integrity.REPAIR}") from None

    def attrs(self, node: str) -> dict[str, Any] | None:
        """The node's `hcdg` attributes (None when the node or its attributes are absent)."""
        if node and not self.has(node):
            return None
        obj = self._root[node] if node else self._root
        raw = obj.attrs.get(ATTR)
        if raw is None:
            return None
        return json.loads(raw) if isinstance(raw, (str, bytes)) else dict(raw)

    def read(self, node: str, sel: Any = slice(None)) -> np.ndarray:
        try:
            arr = self._root[node][sel]
        except KeyError:
            raise StoreDamaged(f"{self.path}: array {node} is missing; {integrity.REPAIR}", "missing") from None
        except Exception as exc:  # noqa: BLE001 - truncated chunk, foreign codec, ...: one line naming the array
            cause = integrity._one_line(exc)
            raise StoreDamaged(f"{self.path}: array {node} unreadable ({cause}); {integrity.REPAIR}", cause) from None
        if self.kind == "hdf5" and arr.dtype.kind == "O":
            arr = np.array([a.decode("utf-8") if isinstance(a, bytes) else a for a in arr], dtype=object)
        return np.asarray(arr)

    def split_keys(self) -> list[str]:
        """Keys `<dataset>/<split>` of the splits whose metadata is written."""
        if not self.has(SPLITS):
            return []
        keys = []
        for ds in sorted(self._root[SPLITS].keys()):
            for sp in sorted(self._root[f"{SPLITS}/{ds}"].keys()):
                if self.attrs(split_node(f"{ds}/{sp}")) is not None:
                    keys.append(f"{ds}/{sp}")
        return keys

    def text_complete(self) -> bool:
        return self.attrs(TEXT) is not None

    def split_progress(self, key: str, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Rows/chunks done for a split whose metadata exists (`arrays`: done/valid/ids already read)."""
        meta = self.attrs(split_node(key)) or {}
        n, r = int(meta["n_rows"]), int(meta["chunk_rows"])
        arrays = arrays or {}
        done, valid, ids = (arrays[a] if a in arrays else self.read(f"{split_node(key)}/{a}")
                            for a in ("done", "valid", "ids"))
        done = done.astype(bool)
        sizes = np.minimum(r, n - r * np.arange(done.size))
        if not (valid.shape == ids.shape == (n,) and done.size == max(1, -(-n // r))):
            raise StoreDamaged(f"{self.path}: split {key}: arrays done {done.shape}, valid {valid.shape}, ids {ids.shape} "
                               f"disagree with the split's {n} rows; {integrity.REPAIR}", "shape")
        row_done = np.repeat(done, sizes)
        skipped = [str(i) for i in ids[row_done & ~valid]]
        return {
            "key": key, "rows": n, "complete_rows": int(sizes[done].sum()), "chunk_rows": r,
            "chunks": int(done.size), "complete_chunks": int(done.sum()),
            "complete": bool(done.all()), "skipped": len(skipped), "skipped_ids": skipped[:20],
        }


def _open(path: str | Path) -> StoreReader:
    reader = StoreReader(path)
    _warn_if_random(reader)
    return reader


def _warn_if_random(reader: StoreReader) -> None:
    weights = reader.meta.get("fingerprint", {}).get("encoder", {}).get("weights", {})
    key = str(reader.path.resolve())
    if weights.get("kind") == "random" and key not in _WARNED:
        _WARNED.add(key)
        model = reader.meta["fingerprint"]["encoder"].get("model")
        print(f"warning: {reader.path} holds features of RANDOM {model} weights (seed {weights.get('seed')}): "
              "fine for tests and the demo, meaningless as CLIP features", file=sys.stderr)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The store's root metadata (format, version, dim, fingerprint, created)."""
    with StoreReader(path) as reader:
        return reader.meta


def read_fingerprint(path: str | Path) -> dict[str, Any]:
    """The store-level fingerprint plus `splits`: {key: split fingerprint}."""
    with StoreReader(path) as reader:
        fp = dict(reader.meta["fingerprint"])
        fp["splits"] = {k: reader.attrs(split_node(k))["fingerprint"] for k in reader.split_keys()}
        return fp


def _to_device(feats: np.ndarray, device: str | torch.device) -> torch.Tensor:
    # One host array -> one transfer (in the stored dtype: half the bytes for float16) -> float32.
    import torch

    return torch.from_numpy(np.ascontiguousarray(feats)).to(device).float()


def load_text(path: str | Path, device: str | torch.device = "cpu") -> tuple[list[str], torch.Tensor]:
    """(prompts: P strings in prompt-id order, feats: (P, D) float32 on `device`), raw text features.

    The table is checked against the CRC32s in its metadata (a one-line error when damaged).
    """
    with _open(path) as reader:
        meta = reader.attrs(TEXT)
        if meta is None:
            raise HcdgError(f"{path}: holds no complete text features (run `hcdg embed` on it first)")
        check = integrity.check_text(reader, TEXT, meta, ("feats", "prompts"))
        if not check.ok:
            raise HcdgError(integrity.refuse(check))
        if not check.verified:
            _warn_unverified(reader.path, "the text table")
        prompts = [str(t) for t in check.data["prompts"]]
        return prompts, _to_device(check.data["feats"], device)


def load_text_ids(path: str | Path) -> list[int]:
    """The prompt ids (Table 2 ids, or positions in a user prompt file), aligned with `load_text`."""
    with StoreReader(path) as reader:
        return [int(i) for i in reader.read(f"{TEXT}/ids")]


def load_split(path: str | Path, split_key: str, device: str | torch.device = "cpu",
               *, include_skipped: bool = False, verify: bool = True) -> tuple[list[str], torch.Tensor]:
    """(ids: N sample ids in reader order, feats: (N, D) float32 on `device`), raw image features.

    The split must be complete and (with `verify`, the default) intact: every chunk's
    features and validity flags match the CRC32s written with them (`store.integrity`),
    else a one-line `HcdgError` naming the array and chunk. Rows skipped as unreadable
    images (`--skip-corrupt`) are left out unless `include_skipped` (their features are NaN).
    """
    ids, feats, valid, n_skipped = _read_split(path, split_key, verify)
    if n_skipped and not include_skipped:
        print(f"warning: {path}: {split_key}: leaving out {n_skipped} skipped rows", file=sys.stderr)
        ids = [i for i, k in zip(ids, valid) if k]
        feats = feats[valid]
    return ids, _to_device(feats, device)


def load_split_table(path: str | Path, split_key: str, device: str | torch.device = "cpu",
                     *, verify: bool = True) -> tuple[list[str], torch.Tensor, np.ndarray]:
    """(ids: N sample ids, feats: (N, D) on `device` in the store's dtype (float16 or float32),
    valid: (N,) bool, False = skipped as unreadable) of a split, every row kept.

    What training loads: float16 halves the table's device memory; the step converts only
    the rows it gathers (`pipeline.mixing.gather_mixed`). Checks as `load_split`.
    """
    import torch

    ids, feats, valid, _ = _read_split(path, split_key, verify)
    return ids, torch.from_numpy(np.ascontiguousarray(feats)).to(device), valid


def _read_split(path: str | Path, split_key: str, verify: bool) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """(ids, feats (N, D) as stored, valid (N,) bool, number of skipped rows) of a complete, intact split."""
    check_split_key(split_key)
    with _open(path) as reader:
        node = split_node(split_key)
        meta = reader.attrs(node)
        check = None
        if verify and meta is not None:  # first: a damaged done/valid array must not pass for progress
            check = integrity.check_split(reader, split_key, node, meta, integrity.TRAINING)
            if not check.ok:
                raise HcdgError(integrity.refuse(check))
        if meta is None:
            staged = {s["key"]: s for s in store_info(path, check=False)["splits"]}  # an .h5's work in progress
            if split_key not in staged:
                raise HcdgError(f"{path}: holds no split {split_key!r} (splits: {', '.join(staged) or 'none'})")
            progress = staged[split_key]
        else:
            ids_arr = reader.read(f"{node}/ids")
            progress = reader.split_progress(split_key, {**(check.data if check else {}), "ids": ids_arr})
        if not progress["complete"]:
            raise HcdgError(
                f"{path}: split {split_key} is incomplete ({progress['complete_rows']}/{progress['rows']} rows); "
                "rerun the same `hcdg embed` command to finish it"
            )
        if meta is None:
            raise HcdgError(f"{path}: split {split_key} is complete in {staging_path(path)} but not yet written "
                            "into the .h5; rerun the same `hcdg embed` command")
        ids = [str(i) for i in ids_arr]
        if check is not None:
            if not check.verified:
                _warn_unverified(reader.path, split_key)
            feats, valid = check.data["feats"], check.data["valid"].astype(bool)
        else:
            feats, valid = reader.read(f"{node}/feats"), reader.read(f"{node}/valid").astype(bool)
        return ids, feats, valid, int(progress["skipped"])


def _warn_unverified(path: Path, what: str) -> None:
    key = f"unverified:{path.resolve()}:{what}"
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"warning: {path}: {what} has no chunk checksums (written by an hcdg before checksums): its integrity "
              "is unverified; `hcdg store verify` re-encodes sample rows", file=sys.stderr)


def store_info(path: str | Path, *, check: bool = True) -> dict[str, Any]:
    """Metadata, completeness and (with `check`) integrity of a store (for an HDF5 store, including
    work in progress). A split or text table with integrity problems is `damaged` (never `complete`)."""
    path = Path(path)
    readers: list[StoreReader] = []
    if not is_h5(path) or path.exists():
        readers.append(_open(path))
    if is_h5(path) and staging_path(path).exists():
        readers.append(StoreReader(staging_path(path), zarr_dir=True))
    if not readers:
        raise HcdgError(f"{path}: no feature store there (run `hcdg embed --store {path}`)")
    try:
        meta = readers[0].meta
        text: dict[str, Any] = {"count": 0, "complete": False, "damaged": False}
        splits: dict[str, dict[str, Any]] = {}
        for reader in readers:  # the finished file first; staging only adds what it lacks
            if not text["complete"] and reader.text_complete():
                tmeta = reader.attrs(TEXT)
                text = {"count": int(reader._root[f"{TEXT}/feats"].shape[0]), "complete": True, **tmeta}
                text.pop(integrity.ALGO, None)
                if check:
                    chk = integrity.check_text(reader, TEXT, tmeta)
                    text["integrity"] = {"verified": chk.verified, "problems": chk.problems}
                text["damaged"] = bool(check and chk.problems)
            for key in reader.split_keys():
                if key not in splits:
                    splits[key] = _split_info(reader, key, check)
        damaged = text["damaged"] or any(s["damaged"] for s in splits.values())
        return {
            "path": str(path), "format": "hdf5" if is_h5(path) else "zarr", "version": meta["version"],
            "dim": meta["dim"], "dtype": meta["fingerprint"]["dtype"],
            "random_weights": meta["fingerprint"]["encoder"]["weights"].get("kind") == "random",
            "fingerprint": meta["fingerprint"], "created": meta.get("created", {}),
            "text": text, "splits": list(splits.values()), "damaged": damaged,
            "complete": not damaged and text["complete"] and all(s["complete"] for s in splits.values()),
        }
    finally:
        for reader in readers:
            reader.close()


def _split_info(reader: StoreReader, key: str, check: bool) -> dict[str, Any]:
    node = split_node(key)
    smeta = reader.attrs(node)
    problems: list[str] = []
    verified = None
    if check:
        chk = integrity.check_split(reader, key, node, smeta)
        problems, verified = chk.problems + integrity.check_view_params(reader, key, node, smeta)[0], chk.verified
    try:
        progress = reader.split_progress(key)
    except StoreDamaged as exc:
        n, r = int(smeta["n_rows"]), int(smeta["chunk_rows"])
        progress = {"key": key, "rows": n, "complete_rows": 0, "chunk_rows": r, "chunks": max(1, -(-n // r)),
                    "complete_chunks": 0, "complete": False, "skipped": 0, "skipped_ids": []}
        problems = problems or [str(exc)]
    out = {**progress, "fingerprint": smeta["fingerprint"], "provenance": smeta.get("provenance", {}),
           "damaged": bool(problems)}
    if check:
        out["integrity"] = {"verified": verified, "problems": problems}
    if problems:
        out["complete"] = False
    return out


def array_digests(path: str | Path) -> dict[str, str]:
    """SHA-256 of every array's bytes, by node: two stores with equal digests hold identical data."""
    out = {}
    with StoreReader(path) as reader:
        nodes = [f"{TEXT}/{a}" for a in ("feats", "norms", "prompts", "ids")] if reader.text_complete() else []
        for key in reader.split_keys():
            nodes += [f"{split_node(key)}/{a}" for a in ("feats", "norms", "valid", "errors", "ids", "done")]
        for node in nodes:
            a = reader.read(node)
            raw = a.tobytes() if a.dtype.kind not in "OTU" else json.dumps([str(x) for x in a]).encode()
            out[node] = hashlib.sha256(raw).hexdigest()
    return out
