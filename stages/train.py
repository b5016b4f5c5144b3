"""Stage two, `hcdg train`: the hand pose network trained from cached CLIP features.

    store (hcdg embed) --load once--> image table (N,D), text table (P,D) on the device
    reader --AugmentedSamples--> crops + heatmaps + targets + store row
    per step: f_clip = mix(f_img[rows], f_txt[prompt ids], r)  (paper §3.3, no CLIP run)
              L = l1 L_heat + l2 L_pose + l3 L_con             (paper §3.4, Eq. 1)
    every N steps: checkpoint (safetensors + JSON); per epoch: validation EPE

`run(config)` is the whole stage. With `nproc > 1` (or under `torchrun`) it trains with
DistributedDataParallel; see `stages/train_dist.py`. The run folder layout, resume and
DDP semantics are described in docs/training.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hcdg.pipeline.errors import HcdgError
from hcdg.stages import train_dist, train_loop
# The config lives in its own module (stages/train_config.py); re-exported for callers of this stage.
from hcdg.stages.train_config import (  # noqa: F401
    DEFAULT_STEPS, PRESETS, RUNTIME_KEYS, Mode, TrainConfig, identity, ids_sha256, preset_values,
)  # fmt: skip


def check_args(cfg: TrainConfig) -> None:
    """The paths a run cannot do without (HcdgError naming the option)."""
    if not cfg.out:
        raise HcdgError("--out: a run folder is required")
    if cfg.tensorboard:  # before any write
        from hcdg.store.tensorboard_log import require_tensorboard

        require_tensorboard()
    if not cfg.root:
        raise HcdgError("--root: the dataset root folder is required")
    if cfg.uses_clip and not cfg.store:
        raise HcdgError(f"--store: mode {cfg.mode!r} mixes cached CLIP features; give the store from `hcdg embed`")


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the run in `cfg.out`; returns `done.json`'s record.

    With `cfg.nproc > 1` outside torchrun, spawns that many local processes.
    """
    from hcdg.stages import train_dist, train_loop  # torch: imported when a run starts, not for --help

    check_args(cfg)
    env = train_dist.torchrun_env()
    if env is not None:
        return train_loop.train(cfg, env)
    if cfg.nproc > 1:
        from hcdg.store.runs import run_lock

        with run_lock(cfg.out):  # held by this process for its DDP workers' whole run
            train_loop.preflight(cfg)  # errors surface here, once, before any process starts
            train_dist.spawn(train_loop.train, cfg)
            return train_loop.read_done(cfg.out)
    return train_loop.train(cfg, train_dist.DistEnv(rank=0, world=1, local_rank=0, spawned=False))


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """`cfg` with some fields changed (validated again)."""
    return dataclasses.replace(cfg, **changes)
