"""Run folders built directly (a fresh narrow network saved with the checkpoint writer), no training."""

from __future__ import annotations

from pathlib import Path

import torch

from hcdg.pipeline.config import to_dict
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.transforms import CropConfig
from hcdg.store.checkpoints import config_hash, save_checkpoint, save_model
from hcdg.store.runs import prepare_run


def make_run(folder: Path, *, width: float = 0.125, input_size: int = 32, crop_scale: float = 1.0,
             final: bool = True, checkpoint: bool = False, weights_width: float | None = None,
             weights_hash: str | None = None) -> Path:
    """A training run folder holding a fresh (untrained) network, as `hcdg train` lays it out."""
    cfg = {"mode": "baseline", "width_mult": width, "input_size": input_size, "sigma_px": 10.0,
           "crop_scale": crop_scale, "combine": "concat", "ratio": 0.6}
    chash = config_hash(cfg)
    prepare_run(folder, stage="train", config=cfg, seed=0, extra={"config_hash": chash})
    torch.manual_seed(0)
    net = HandPoseNet(ModelConfig(width_mult=weights_width or width, input_size=input_size, branch2=False))
    crop = CropConfig(input_size=input_size, crop_scale=crop_scale)
    if final:
        save_model(folder, net.state_dict(), {"model_config": to_dict(ModelConfig(width_mult=width, input_size=input_size)),
                                              "config_hash": weights_hash or chash, "step": 3, "crop": to_dict(crop)})
    if checkpoint:
        opt = torch.optim.Adam(net.parameters())
        save_checkpoint(folder, step=2, epoch=0, model_state=net.state_dict(), optimizer_state=opt.state_dict(),
                        cfg_hash=weights_hash or chash)
    return folder
