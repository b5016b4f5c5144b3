"""Training checkpoints: safetensors for every tensor, JSON for the rest, never a pickle.

Layout inside a run folder::

    checkpoints/step-00001000/weights.safetensors   model + optimizer tensors + torch RNG states
    checkpoints/step-00001000/state.json            step, epoch, python/numpy RNG states,
                                                    optimizer scalars, config hash,
                                                    sha256 of weights.safetensors

A checkpoint is written into a hidden temp folder (`checkpoints/.tmp-...`), both files
fsynced, and the folder renamed into place in one step, so a killed process leaves
either a complete checkpoint or none (a stale temp folder is ignored and later
cleared). Loading reads the JSON, checks the recorded sha256 of the weights file and
the config hash the caller expects, and only then reads the tensors with
`safetensors` (no unpickling anywhere: a tampered or mismatched file is refused with
a one-line `HcdgError`).

Tensor key prefixes in `weights.safetensors`: `model/<name>` (the model's
`state_dict()`), `optim/state/<param index>/<key>` (Adam moments and step counters),
`rng/torch` (uint8 CPU generator state), `rng/cuda/<device>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hcdg.pipeline.errors import HcdgError
from hcdg.store import schema
from hcdg.store.atomic import dir_mode, file_mode, read_json_object
from hcdg.store.fingerprint import digest

FORMAT = "hcdg-checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(identity: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a run's identity config (what must match on resume)."""
    return digest(identity)


# --- RNG states ------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON part, tensor part) of the python, numpy (legacy global) and torch RNG states."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    js = {
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss},
        "numpy": {
            "name": np_name,
            "keys": np.asarray(np_keys, dtype=np.uint32).tolist(),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
    }
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = st
    return js, tensors


def restore_rng(js: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Put back the RNG states `capture_rng` recorded."""
    py = js["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    nps = js["numpy"]
    np.random.set_state(
        (nps["name"], np.asarray(nps["keys"], dtype=np.uint32), nps["pos"], nps["has_gauss"], nps["cached_gaussian"])
    )
    torch.set_rng_state(tensors["rng/torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])


# --- optimizer state <-> (tensors, JSON) ------------------------------------------------


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/state/{pid}/{key}"] = value
            elif isinstance(value, (int, float, bool)) or value is None:
                scalars.setdefault(str(pid), {})[key] = value
            else:
                raise TypeError(f"optimizer state {pid}/{key}: cannot store a {type(value).__name__}")
    groups = []
    for group in state["param_groups"]:
        g = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer param group key {key!r} is a tensor; not supported")
            g[key] = list(value) if isinstance(value, tuple) else value
        groups.append(g)
    json.dumps(groups)  # fail early (TypeError) on anything JSON cannot hold
    return tensors, {"scalars": scalars, "param_groups": groups}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, _, pid, key = name.split("/", 3)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# --- save / find / load -------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: model and optimizer state dicts, counters, RNG states."""

    path: Path
    step: int
    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng_json: dict[str, Any]
    rng_tensors: dict[str, torch.Tensor]
    extra: dict[str, Any]

    def restore_rng(self) -> None:
        restore_rng(self.rng_json, self.rng_tensors)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(
    run_dir: str | Path,
    *,
    step: int,
    epoch: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    cfg_hash: str,
    extra: dict[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically (temp folder + rename); keep the newest `keep_last`.

    `model_state` / `optimizer_state` are `state_dict()`s; the current RNG states are
    captured here. Returns the checkpoint folder.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    rng_js, rng_t = capture_rng()
    opt_t, opt_meta = _split_optimizer(optimizer_state)
    tensors: dict[str, torch.Tensor] = {}
    for name, t in model_state.items():
        tensors[f"model/{name}"] = t
    tensors.update(opt_t)
    tensors.update(rng_t)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}.", dir=root))
    os.chmod(tmp, dir_mode())  # mkdtemp makes it 0700; the umask decides
    try:
        weights = tmp / WEIGHTS_FILE
        _save_tensors(tensors, weights, {"format": FORMAT})
        state = {
            "format": FORMAT,
            "step": int(step),
            "epoch": int(epoch),
            "config_hash": cfg_hash,
            "weights_sha256": sha256_file(weights),
            "rng": rng_js,
            "optimizer": opt_meta,
            "extra": extra or {},
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, sort_keys=True, allow_nan=False) + "\n")
        for f in (weights, tmp / STATE_FILE):
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # same step written again (e.g. a resumed run's final save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written: the newest complete checkpoint stays
        if isinstance(exc, OSError) and exc.filename is None and exc.errno:  # e.g. ENOSPC: name the checkpoint
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(final)) from exc
        raise
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors' `save_file` with the umask's file mode, its I/O errors (a Rust error type) raised as
    the OSError they are."""
    try:
        save_file(tensors, str(path), metadata=metadata)
        os.chmod(path, file_mode())  # safetensors creates 0600 files; the umask decides
    except Exception as exc:  # noqa: BLE001 - SafetensorError("... (os error 28)")
        m = re.search(r"os error (\d+)", str(exc))
        if m:
            raise OSError(int(m.group(1)), os.strerror(int(m.group(1))), str(path)) from None
        raise


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temp folders are not listed)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_state(ckpt: str | Path) -> dict[str, Any]:
    """The checkpoint's `state.json`, validated for format (no tensors read)."""
    path = Path(ckpt) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise HcdgError(f"{path}: missing; not a checkpoint folder") from None
    except json.JSONDecodeError as exc:
        raise HcdgError(f"{path}: not valid JSON ({exc.msg}); the checkpoint is corrupt") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise HcdgError(f"{path}: not an {FORMAT} checkpoint state")
    missing = [k for k in ("step", "epoch", "weights_sha256", "rng", "optimizer") if k not in state]
    if missing:
        raise HcdgError(f"{path}: checkpoint state lacks {', '.join(missing)}; the checkpoint is corrupt")
    return state


def load_tensors_verified(path: Path, expected_sha256: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its sha256 (refuses tampered/corrupt files)."""
    if not path.is_file():
        raise HcdgError(f"{path}: missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise HcdgError(
            f"{path}: sha256 {actual[:12]}... does not match the recorded {expected_sha256[:12]}...; "
            "the file was modified or is corrupt, refusing to load it"
        )
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise HcdgError(f"{path}: not a readable safetensors file ({exc})") from None


def load_checkpoint(
    ckpt: str | Path, *, expect_config_hash: str | None = None, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Load a checkpoint folder, refusing a tampered file or a checkpoint of another config."""
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    if expect_config_hash is not None and state.get("config_hash") != expect_config_hash:
        raise HcdgError(
            f"{ckpt}: checkpoint was written by a different training config "
            f"(hash {str(state.get('config_hash'))[:12]}..., expected {expect_config_hash[:12]}...)"
        )
    tensors = load_tensors_verified(ckpt / WEIGHTS_FILE, state["weights_sha256"], device="cpu")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    opt_tensors = {k: v for k, v in tensors.items() if k.startswith("optim/")}
    rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng/")}
    if "rng/torch" not in rng_tensors:
        raise HcdgError(f"{ckpt / WEIGHTS_FILE}: no rng/torch tensor; not an hcdg checkpoint")
    if device is not None and str(device) != "cpu":
        model_state = {k: v.to(device) for k, v in model_state.items()}
    return Checkpoint(
        path=ckpt,
        step=int(state["step"]),
        epoch=int(state["epoch"]),
        model_state=model_state,
        optimizer_state=_join_optimizer(opt_tensors, state["optimizer"]),
        rng_json=state["rng"],
        rng_tensors=rng_tensors,
        extra=state.get("extra", {}),
    )


# --- final model (what evaluation loads) -----------------------------------------------

MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"


def save_model(run_dir: str | Path, model_state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write the trained weights `model.safetensors` and `model.json` (meta + sha256, written last)."""
    run_dir = Path(run_dir)
    from hcdg.store.atomic import atomic_path, atomic_write_json

    weights = run_dir / MODEL_WEIGHTS
    with atomic_path(weights) as tmp:
        _save_tensors({k: v.detach().to("cpu").contiguous().clone() for k, v in model_state.items()}, tmp)
    atomic_write_json(run_dir / MODEL_META, {**meta, schema.SCHEMA_KEY: schema.MODEL_SCHEMA, "format": FORMAT,
                                             "weights_sha256": sha256_file(weights)})
    return weights


def load_model_state(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a finished run's `model.safetensors`, sha256-verified against `model.json`;
    `meta` in today's form (`store.schema.upgrade_model_meta`)."""
    run_dir = Path(run_dir)
    meta_path = run_dir / MODEL_META
    if not meta_path.is_file():
        raise HcdgError(f"{run_dir}: no {MODEL_META}; the training run has not finished")
    meta = schema.upgrade_model_meta(read_json_object(meta_path, "format, weights_sha256, ..."), str(meta_path))
    return load_tensors_verified(run_dir / MODEL_WEIGHTS, meta.get("weights_sha256", ""), device=device), meta
