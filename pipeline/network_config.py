"""The one mapping from a training config to the network (`ModelConfig`) and its crops (`CropConfig`).

Training (`stages.train_loop`) builds the network with it; evaluation, prediction and export
rebuild a run's network from its recorded config (run.json `config`) with the same function.
The input is the plain-dict form of a `TrainConfig` (`pipeline.config.to_dict`); keys a run
recorded before they existed are left out, so the dataclass default (what such a run used)
applies: hcdg's layout, xyz output, the default crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hcdg.pipeline.config import from_dict
from hcdg.pipeline.model import ModelConfig
from hcdg.pipeline.transforms import CropConfig


def model_config(train: Mapping[str, Any], clip_dim: int | None = None, *, branch2: bool | None = None,
                 where: str = "config") -> ModelConfig:
    """The `ModelConfig` of a run whose training config (dict form) is `train`.

    clip_dim: width of the store's CLIP features (None: the ModelConfig default, ViT-B/32's 512).
    branch2: None = as training builds it (Branch2 unless mode is baseline); False = the test-time
    network (Branch1 + lifting, paper §3.5). ConfigError (naming `where`) for sizes it cannot build.
    """
    from hcdg.pipeline.authors import ARCH_OPTIONS

    kw: dict[str, Any] = {k: train[k] for k in ("width_mult", "input_size", "combine") if k in train}
    if "target" in train:
        kw["output"] = train["target"]
    if train.get("arch") == "authors":  # their layout at this run's size
        kw.update(ARCH_OPTIONS)
    kw["branch2"] = train.get("mode") != "baseline" if branch2 is None else branch2
    if "aug" in train:
        kw["positive"] = "clip" if train["aug"] == "clip" else "augment"
    if clip_dim:
        kw["clip_dim"] = int(clip_dim)
    return from_dict(ModelConfig, kw, where=where)


def crop_config(train: Mapping[str, Any], where: str = "config") -> CropConfig:
    """The `CropConfig` (crop side, heatmap sigma and formula, crop scale) of a run's training config."""
    kw = {k: train[k] for k in ("input_size", "sigma_px", "gaussian", "crop_scale") if train.get(k) is not None}
    return from_dict(CropConfig, kw, where=where)
