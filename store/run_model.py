"""A training run's network rebuilt from its run folder: what `hcdg eval`, `hcdg predict`,
`hcdg export` and `hcdg.load_model` load.

Reads ``run.json`` (the recorded config), then ``model.json`` + ``model.safetensors`` (the
finished model, `store.checkpoints.load_model_state`) or a checkpoint folder; only Branch1
is built (paper §3.5: test time uses Branch1 only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcdg.pipeline.devices import resolve_device
from hcdg.pipeline.errors import HcdgError


@dataclass(frozen=True)
class LoadedModel:
    """A Branch1-only network with the crop geometry it was trained with."""

    model: Any  # HandPoseNet with branch2=False, eval mode, on the device
    crop: Any  # transforms.CropConfig
    source: str  # the weights file / checkpoint folder read
    step: int | None


def resolve_checkpoint(run_dir: str | Path, checkpoint: str) -> Path:
    """A checkpoint given as a folder path, its folder name (``step-00000500``, what `ls` shows)
    or a step number (``500``) -> the checkpoint folder of `run_dir`; HcdgError when absent."""
    from hcdg.store import checkpoints as ck

    text = str(checkpoint).strip()
    if text.isdigit():
        path = Path(run_dir) / ck.CHECKPOINT_DIR / f"step-{int(text):08d}"
    elif Path(text).is_dir():
        path = Path(text)
    else:
        path = Path(run_dir) / ck.CHECKPOINT_DIR / Path(text).name
    if not path.is_dir():
        have = sorted(p.name for p in (Path(run_dir) / ck.CHECKPOINT_DIR).glob("step-*") if p.is_dir())
        raise HcdgError(
            f"checkpoint {checkpoint}: no such checkpoint of {run_dir} (expected a step number, a folder "
            f"name step-N or a folder path; present: {', '.join(have[-5:]) or 'none'})"
        )
    return path


def load_run_model(run_dir: str | Path, checkpoint: str | None = None, device: str = "cpu") -> LoadedModel:
    """Rebuild the network of a training run from its recorded config and load its weights.

    Only Branch1 (CPM + PosePrior + ViewPoint) is built; Branch2's weights in the file are
    ignored (paper §3.5: test time uses Branch1 only). Raises HcdgError for a folder that is
    not a training run, a run with no weights yet, a checkpoint of another config (its
    recorded config hash differs from run.json's) or weights that do not fit the model
    the config describes.
    """
    from hcdg.pipeline.config import from_dict
    from hcdg.pipeline.model import HandPoseNet, ModelConfig
    from hcdg.pipeline.transforms import CropConfig
    from hcdg.store import checkpoints as ck
    from hcdg.store.runs import read_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HcdgError(f"--run {run_dir}: no such folder (expected a training run folder)")
    record = read_run(run_dir)
    if record.get("stage") not in ("train", "import"):
        raise HcdgError(f"--run {run_dir}: holds a {record.get('stage')!r} run, not a training (or imported) run")
    cfg = record.get("config", {})
    run_hash = record.get("config_hash")
    dev = resolve_device(device)

    # the finished model records its ModelConfig / CropConfig (model.json); a checkpoint's are
    # rebuilt from run.json by the one mapping training uses (`pipeline.network_config`)
    model_cfg: dict[str, Any] | None = None
    crop_cfg: dict[str, Any] | None = None
    step: int | None = None
    final = run_dir / ck.MODEL_WEIGHTS
    use_final = checkpoint in (None, "final") and (run_dir / ck.MODEL_META).is_file()
    if checkpoint == "final" and not use_final:
        raise HcdgError(f"--checkpoint final: {run_dir} has no {ck.MODEL_META}; the training run has not finished")
    if use_final:
        state, meta = ck.load_model_state(run_dir, device="cpu")
        if run_hash and meta.get("config_hash") and meta["config_hash"] != run_hash:
            raise HcdgError(
                f"{final}: written by a different training config than {run_dir / 'run.json'} "
                f"(config hash {str(meta['config_hash'])[:12]}..., run has {run_hash[:12]}...)"
            )
        model_cfg, crop_cfg = meta.get("model_config"), meta.get("crop")
        step = meta.get("step")
        source = str(final)
    else:
        if checkpoint in (None, "latest"):
            path = ck.latest_checkpoint(run_dir)
            if path is None:
                raise HcdgError(
                    f"--run {run_dir}: no trained weights ({ck.MODEL_WEIGHTS}) and no checkpoint under "
                    f"{ck.CHECKPOINT_DIR}/; train the run first (`hcdg train --out {run_dir} ...`)"
                )
        else:
            path = resolve_checkpoint(run_dir, checkpoint)
        loaded = ck.load_checkpoint(path, expect_config_hash=run_hash, device="cpu")
        state, step, source = loaded.model_state, loaded.step, str(path)

    from hcdg.pipeline import network_config

    try:
        where = f"{run_dir}/run.json model"
        mcfg = (from_dict(ModelConfig, {**model_cfg, "branch2": False}, where=where) if model_cfg is not None
                else network_config.model_config(cfg, branch2=False, where=where))
        crop = (from_dict(CropConfig, {k: v for k, v in crop_cfg.items() if v is not None}, where=f"{run_dir} crop")
                if crop_cfg is not None else network_config.crop_config(cfg, where=f"{run_dir} crop"))
    except HcdgError as exc:
        raise HcdgError(f"--run {run_dir}: cannot rebuild the model from its recorded config ({exc})") from None
    model = HandPoseNet(mcfg)
    branch1 = {k: v for k, v in state.items() if not k.startswith("branch2.")}
    try:
        model.load_state_dict(branch1, strict=True)
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
        raise HcdgError(
            f"{source}: the weights do not fit the network described by {run_dir}/run.json "
            f"(width_mult={mcfg.width_mult}, input_size={mcfg.input_size}): {first[:200]}"
        ) from None
    model.to(dev).eval()
    if crop.input_size != mcfg.input_size:
        raise HcdgError(f"--run {run_dir}: crop input_size {crop.input_size} != model input_size {mcfg.input_size}")
    return LoadedModel(model=model, crop=crop, source=source, step=step)
