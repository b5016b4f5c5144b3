"""`hcdg import authors CHECKPOINT --out RUN_DIR`: the paper authors' released network as an hcdg run.

    snapshot_45.pth.tar --torch.load(weights_only, mmap)--> {'network': state_dict}
        --pipeline.authors.map_state_dict--> HandPoseNet(authors.model_config()) state
        --> RUN_DIR/run.json (stage "import", source path + sha256) + model.safetensors + model.json

Their checkpoint is a pickle; it is read with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers (a crafted pickle is refused with one
line, nothing is written), and memory-mapped (``mmap=True``), so the ~1.4 GB file (mostly
CLIP and the unused proj_linear layers) is not read into memory; only the ~100 MB hcdg
keeps is copied. Everything is checked before the first byte is written; the run folder is
assembled beside RUN_DIR and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError

#: Crop geometry their test code uses: 256 crops (main/config.py:15), Gaussian sigma 10 px
#: (main/preprocessing.py:44); their boxes come from the released .npy (`--crops seed-boxes`).
CROP = {"input_size": 256, "sigma_px": 10.0, "crop_scale": 1.0}


@dataclass(frozen=True)
class ImportConfig:
    """Attributes: checkpoint: their `snapshot_*.pth.tar`; out: the run folder to create."""

    checkpoint: str = ""
    out: str = ""


def load_authors_checkpoint(path: Path) -> dict[str, Any]:
    """Their state dict from a checkpoint file, unpickled with ``weights_only=True`` and mmap."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise HcdgError(f"{path}: no such checkpoint file (expected the authors' snapshot_*.pth.tar)")

    def _load(mmap: bool) -> Any:
        import warnings

        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for the user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            obj = _load(True)
        except RuntimeError as exc:  # files from torch < 1.6 (not zip) cannot be memory-mapped
            if "mmap" not in str(exc) and "zipfile" not in str(exc):
                raise
            obj = _load(False)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = [ln for ln in lines if ln.startswith("Unsupported")]
        first = (why or lines or [type(exc).__name__])[0]
        raise HcdgError(
            f"{path}: refused: the pickle holds more than tensors and plain containers "
            f"(torch.load weights_only=True: {first[:160]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError,
            TypeError) as exc:  # fmt: skip
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HcdgError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {first[:160]}") from None
    state = obj.get("network", None) if isinstance(obj, dict) else None
    if state is None and isinstance(obj, dict) and any(str(k).startswith("module.pose_model.") for k in obj):
        state = obj  # a bare state dict
    if not isinstance(state, dict):
        kind = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
        raise HcdgError(f"{path}: expected a dict with a 'network' state dict (the authors' format), got {kind}")
    return state


def run(cfg: ImportConfig, echo: Any = None) -> dict[str, Any]:
    """Import; returns {"out", "sha256", "n_tensors", "ignored", "unused", "branch2", "epoch"}."""
    import torch

    from hcdg.pipeline import authors
    from hcdg.pipeline.config import to_dict
    from hcdg.pipeline.model import HandPoseNet
    from hcdg.pipeline.transforms import CropConfig
    from hcdg.store import checkpoints as ck
    from hcdg.store.runs import prepare_run

    if not cfg.checkpoint:
        raise HcdgError("CHECKPOINT: the authors' checkpoint file is required")
    if not cfg.out:
        raise HcdgError("--out: the run folder to create is required")
    src, out = Path(cfg.checkpoint), Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HcdgError(f"--out {out}: exists and is not empty; give a new run folder")
    state = load_authors_checkpoint(src)
    branch2 = authors.has_branch2(state)
    mcfg = authors.model_config()
    if not branch2:
        from dataclasses import replace

        mcfg = replace(mcfg, branch2=False)
    with torch.device("meta"):  # shapes only: nothing allocated
        target = HandPoseNet(mcfg).state_dict()
    mapped, info = authors.map_state_dict(state, target)
    if echo:
        echo(f"mapped {info['n_tensors']} tensors; ignored {sum(info['ignored'].values())} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(info['ignored'].items()))})")
    t0 = time.perf_counter()
    sha = ck.sha256_file(src)
    meta_src = {"path": str(src.resolve()), "sha256": sha, "size_bytes": src.stat().st_size,
                "format": "authors ColorHandPose3D DDP state dict {'network': ...}",
                "ignored_key_families": info["ignored"], "unused_keys": info["unused"][:50],
                "n_unused_keys": len(info["unused"])}  # fmt: skip
    crop = CropConfig(**CROP)
    config = {"imported": "authors", "model": to_dict(mcfg), "crop": to_dict(crop), "target": "uvd",
              "input_size": 256, "width_mult": 1.0, "combine": "concat", "sigma_px": CROP["sigma_px"],
              "crop_scale": CROP["crop_scale"], "source_sha256": sha}  # fmt: skip
    chash = ck.config_hash(config)

    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        # its only protocol is theirs, whose crops are cut as their code cuts them (pipeline/crop_cv2.py)
        prepare_run(tmp, stage="import", config=config, seed=0,
                    extra={"source": meta_src, "config_hash": chash, "eval_crop_backend": "cv2"})  # fmt: skip
        meta = {"model_config": to_dict(mcfg), "config_hash": chash, "step": None, "crop": to_dict(crop),
                "source_sha256": sha}  # fmt: skip
        ck.save_model(tmp, mapped, meta)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HcdgError(f"--out {out}: cannot write the run folder ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": out, "sha256": sha, "n_tensors": info["n_tensors"], "ignored": info["ignored"],
            "unused": info["unused"], "branch2": branch2, "seconds": time.perf_counter() - t0}  # fmt: skip
