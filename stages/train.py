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
        done = train_loop.train(cfg, env)
        if env.rank == 0:
            warn_no_location(done, cfg.out)
        return done
    if cfg.nproc > 1:
        from hcdg.store.runs import read_done, run_lock

        with run_lock(cfg.out):  # held by this process for its DDP workers' whole run
            train_loop.preflight(cfg)  # errors surface here, once, before any process starts
            train_dist.spawn(train_loop.train, cfg)
            done = read_done(cfg.out)
    else:
        done = train_loop.train(cfg, train_dist.DistEnv(rank=0, world=1, local_rank=0, spawned=False))
    warn_no_location(done, cfg.out)
    return done


def warn_no_location(done: dict[str, Any], out: str) -> bool:
    """One `warning:` line on stderr when the run's final validation 2D error is not below the
    mean 2D layout's (`pipeline.localisation`); returns whether it warned."""
    import sys

    from hcdg.pipeline.localisation import maps_localise, no_location_message

    err, ref = done.get("val_2d_px"), done.get("val_mean_2d_px")
    if maps_localise(err, ref) is not False:
        return False
    print(f"warning: {no_location_message(err, ref, out)}", file=sys.stderr)
    return True


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """`cfg` with some fields changed (validated again)."""
    return dataclasses.replace(cfg, **changes)
