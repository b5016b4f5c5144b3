"""The training loop of `hcdg train` (one process; DDP when `env.world > 1`).

Order of work: open the data and the store (checking they belong together), record
the run folder, build model + Adam (restored from the newest checkpoint on resume),
then step from the checkpoint's step to the run's total. Per step the data is a
function of (seed, step) only (`pipeline.train_data`), prompt ids are drawn from a
generator seeded by (seed, step), so a resumed run redoes exactly the same steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcdg.pipeline import objective
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.devices import resolve_device
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.objective import CON_STATS, VAL_KEYS, FeatureTables
from hcdg.stages.train_config import CONFIG_FILE, TrainConfig, identity, ids_sha256, to_toml
from hcdg.pipeline.precision import to_channels_last
from hcdg.stages.train_dist import DistEnv
from hcdg.store.atomic import atomic_write_text, finite_or_none
from hcdg.store.runs import DONE_FILE, RUN_FILE, read_done, run_lock, write_done

#: Test-only hook: raise SystemExit right after this step (simulates a kill mid-run).
STOP_ENV = "HCDG_TEST_STOP_AFTER_STEP"


# --- data + store -------------------------------------------------------------------------


@dataclass
class Data:
    """The reader, its store rows and the CLIP tables (on the device) of one run."""

    reader: Any
    ids_sha256: str
    feature_rows: np.ndarray | None  # (len(reader),) row in the store's image table
    img_table: torch.Tensor | None  # (N, D) raw image features, in the store's dtype (float16 or float32)
    txt_table: torch.Tensor | None  # (P, D) raw text features
    prompt_subset: list[int] | None  # rows of txt_table to draw from (None = all)
    fingerprint: dict[str, Any] | None
    skipped: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # reader indices
    # (len(reader), K, 7) stored augmented views (`hcdg embed --views K`), or None (whole-image features)
    views: np.ndarray | None = None

    @property
    def views_k(self) -> int:
        """Stored views per image (0: whole-image features)."""
        return 0 if self.views is None else int(self.views.shape[1])

    @property
    def tables(self) -> FeatureTables | None:
        """The CLIP tables the objective gathers from (None when the run mixes no CLIP feature)."""
        if self.img_table is None or self.txt_table is None:
            return None
        return FeatureTables(self.img_table, self.txt_table, self.prompt_subset)


def open_data(cfg: TrainConfig, device: torch.device, *, load_tables: bool = True, check_files: bool = True) -> Data:
    """Open the dataset and (when given) the store; refuse a store built from other data.

    The store's split must hold exactly the reader's sample ids, in any order, and
    (with `check_files`) its recorded dataset manifest digest (every file's relative
    path and size, `store.fingerprint`) must equal the data's. Rows the embed stage
    skipped as unreadable images (NaN features) are dropped from training.
    """
    import re

    from hcdg.pipeline.datasets import open_dataset

    reader = open_dataset(cfg.dataset, Path(cfg.root), cfg.split)
    ids = [reader.sample_id(i) for i in range(len(reader))]
    data = Data(reader, ids_sha256(ids), None, None, None, None, None)
    if cfg.store is None:
        return data
    from hcdg.store import features
    from hcdg.store.fingerprint import manifest_fingerprint

    store = Path(cfg.store)
    if not store.exists():
        raise HcdgError(f"--store {store}: no such feature store (build it with `hcdg embed`)")
    data.fingerprint = features.read_fingerprint(store)
    split_fp = data.fingerprint.get("splits", {}).get(cfg.split_key)
    if split_fp is None:
        have = ", ".join(data.fingerprint.get("splits", {})) or "none"
        raise HcdgError(f"--store {store}: holds no split {cfg.split_key!r} (splits: {have}); "
                        f"run `hcdg embed --dataset {cfg.dataset} --split {cfg.split}` on it")
    if check_files:
        stored = split_fp.get("manifest", {}).get("digest")
        here = manifest_fingerprint(reader.manifest())
        if stored != here["digest"]:
            raise HcdgError(
                f"--store {store}: split {cfg.split_key} was embedded from other files than those under "
                f"{cfg.root} (manifest digest {str(stored)[:12]}... vs {here['digest'][:12]}..., "
                f"{split_fp.get('manifest', {}).get('n_files')} vs {here['n_files']} files); rebuild it with `hcdg embed`"
            )
    if not cfg.uses_clip:
        return data
    # The image table stays in the store's dtype (float16: half the device memory); the step
    # converts the rows it gathers. Skipped rows are read from the store's validity array.
    store_ids, img, valid = features.load_split_table(store, cfg.split_key, device if load_tables else "cpu")
    views_fp = split_fp.get("views")
    k = 1
    if views_fp is not None:  # rows i*K + v: image i's views; check the augmentation first
        from hcdg.stages.train_views import check_views

        k = check_views(cfg, store, views_fp)
        store_ids, valid = store_ids[::k], valid.reshape(-1, k).all(axis=1)
    row_of = {sid: r for r, sid in enumerate(store_ids)}
    missing = [sid for sid in ids if sid not in row_of]
    if missing or len(store_ids) != len(ids):
        raise HcdgError(
            f"--store {store}: split {cfg.split_key} holds {len(store_ids)} sample ids, the data under "
            f"{cfg.root} has {len(ids)} ({len(missing)} missing from the store"
            + (f", first {missing[0]!r}" if missing else "")
            + "); the store was built from other data: rebuild it with `hcdg embed`"
        )
    prompts, txt = features.load_text(store, device if load_tables else "cpu")
    if img.shape[1] != txt.shape[1]:
        raise HcdgError(f"--store {store}: image features are {img.shape[1]}-d but text features {txt.shape[1]}-d")
    subset = None
    if cfg.prompt_filter:
        rx = re.compile(cfg.prompt_filter)
        subset = [i for i, t in enumerate(prompts) if rx.search(t)]
        if not subset:
            raise HcdgError(f"--prompt-filter {cfg.prompt_filter!r}: matches none of the store's {len(prompts)} prompts")
    base_rows = np.array([row_of[s] for s in ids], dtype=np.int64)
    data.feature_rows = base_rows * k  # view 0's row; a training item adds its view
    data.skipped = np.flatnonzero(~valid[base_rows])
    if views_fp is not None:
        from hcdg.store.views import load_params

        data.views = load_params(store, cfg.split_key, k)[base_rows]
    data.img_table, data.txt_table, data.prompt_subset = img, txt.float(), subset
    return data


def prepare_folder(cfg: TrainConfig, data: Data) -> str:
    """Record (or, with --resume, re-open) the run folder; returns the run's config hash."""
    from hcdg.store.checkpoints import config_hash
    from hcdg.store.runs import prepare_run

    ident = run_identity(cfg, data)
    runtime = {k: v for k, v in to_dict(cfg).items() if k not in ident}
    prepare_run(
        cfg.out, stage="train", config=ident, seed=cfg.seed, resume=cfg.resume,
        extra={"runtime": runtime, "store_fingerprint": data.fingerprint, "config_hash": config_hash(ident)},
    )  # fmt: skip
    # this session's resolved config, in the form `hcdg train --config` reads back (like timm's args.yaml)
    atomic_write_text(Path(cfg.out) / CONFIG_FILE, to_toml(cfg))
    return config_hash(ident)


def run_identity(cfg: TrainConfig, data: Data) -> dict[str, Any]:
    """What defines the run (`stages.train.identity`); on --resume of a folder recorded before
    some config keys existed, its recorded form (`store.runs.recorded_identity`)."""
    from hcdg.store.runs import recorded_identity

    ident = identity(cfg, data.fingerprint, data.ids_sha256)
    return recorded_identity(cfg.out, "train", ident) if cfg.resume else ident


def check_folder(cfg: TrainConfig, data: Data) -> None:
    """The run folder's refusals (another run there, --resume needed), without writing."""
    from hcdg.store.runs import check_run

    check_run(cfg.out, stage="train", config=run_identity(cfg, data), seed=cfg.seed, resume=cfg.resume)


def preflight(cfg: TrainConfig) -> None:
    """All checks a run makes before training, plus the run folder record (used before spawning).

    Call it holding the run folder's lock (`store.runs.run_lock`), as `stages.train.run` does.
    """
    from hcdg.store.checkpoints import config_hash, latest_checkpoint, load_checkpoint

    data = open_data(cfg, torch.device("cpu"), load_tables=False, check_files=True)
    plan(cfg, data, cfg.nproc)
    cfg.model_config(None)
    cfg.crop_config()
    check_folder(cfg, data)
    ckpt = latest_checkpoint(cfg.out) if cfg.resume else None
    if ckpt is not None:
        load_checkpoint(ckpt, expect_config_hash=config_hash(run_identity(cfg, data)))
    prepare_folder(cfg, data)


def plan(cfg: TrainConfig, data: Data, world: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(train indices, val indices, steps per epoch, total steps); HcdgError for sizes that cannot work."""
    from hcdg.pipeline.train_data import pose_groups, split_train_val, steps_per_epoch, total_steps

    if cfg.batch_size % world:
        raise HcdgError(f"--batch-size {cfg.batch_size}: the global batch must be divisible by the {world} processes")
    train_idx, val_idx = split_train_val(pose_groups(data.reader), cfg.val_fraction, cfg.seed)
    if len(data.skipped):  # images the embed stage could not read have no CLIP feature
        train_idx = np.setdiff1d(train_idx, data.skipped)
        val_idx = np.setdiff1d(val_idx, data.skipped)
    spe = steps_per_epoch(len(train_idx), cfg.batch_size)
    if spe < 1:
        raise HcdgError(f"--batch-size {cfg.batch_size}: larger than the {len(train_idx)} training samples of {cfg.root}")
    return train_idx, val_idx, spe, total_steps(len(train_idx), cfg.batch_size, cfg.total_steps_given, cfg.epochs)


# --- model, step, validation ---------------------------------------------------------------


def build_model(cfg: TrainConfig, clip_dim: int | None) -> torch.nn.Module:
    """The run's network (`TrainConfig.model_config`; ConfigError for sizes it cannot build)."""
    from hcdg.pipeline.model import HandPoseNet

    return HandPoseNet(cfg.model_config(clip_dim))


# --- the run ------------------------------------------------------------------------------


def _refuse_non_finite(loss: torch.Tensor, model: torch.nn.Module, step: int, out: Path,
                       check_grads: bool = True) -> None:
    """HcdgError at the first step whose loss or gradient is NaN/inf (checked before the optimizer step).

    Under DDP the gradients are already all-reduced, so every rank stops at the same step.
    `check_grads=False` (fp16 with loss scaling): an overflowed gradient is the scaler's to
    handle (it skips that update and lowers the scale); only the loss is checked.
    """
    from hcdg.store.checkpoints import latest_checkpoint

    grads = [p.grad for p in model.parameters() if p.grad is not None] if check_grads else []
    gnorm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
    bad = torch.stack([loss.detach().float(), gnorm.float().to(loss.device)])
    if bool(torch.isfinite(bad).all()):
        return
    what = f"loss is {float(bad[0])}" if not torch.isfinite(bad[0]) else "a gradient is NaN or inf"
    ckpt = latest_checkpoint(out)
    kept = f"the newest checkpoint {ckpt} is the last good state" if ckpt else "no checkpoint was written yet"
    raise HcdgError(f"step {step}: the {what}; stopped before the update ({kept}); "
                    "lower --lr, or check the data and the store for bad values")


def _rank0_warn(env: DistEnv) -> Any:
    """A one-line stderr writer on rank 0, silent on the other ranks."""
    return (lambda line: print(line, file=sys.stderr)) if env.rank == 0 else (lambda line: None)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """`batch` on `device` (non-blocking copies)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@dataclass
class PointRun:
    """One training run's state between steps: what `step_point` advances and `finish_point` closes.

    The solo loop (`train`) drives one; `stages.train_shared` drives several from one loader.
    """

    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    data: Data
    out: Path
    chash: str
    model: torch.nn.Module  # the module itself (checkpoints, validation)
    net: torch.nn.Module  # what the step calls: the model, or its DDP wrapper
    optim: torch.optim.Optimizer
    crop: Any
    train_idx: np.ndarray
    val_idx: np.ndarray
    spe: int
    total: int
    start: int
    t_start: float
    val_loader: Any = None
    mpose: torch.Tensor | None = None
    log: Any = None
    last_val: tuple[float, ...] = ()
    bar: Any = None
    t_log: float = 0.0
    n_log: int = 0
    done: dict[str, Any] | None = None  # set when the folder already holds this run, finished
    scaler: Any = None  # torch.amp.GradScaler: active for --precision fp16, a pass-through otherwise


def setup_point(cfg: TrainConfig, env: DistEnv, device: torch.device, data: Data, held: contextlib.ExitStack,
                t_start: float, bar_position: int | None = None) -> PointRun:
    """Everything before a run's first step: sizes, model + Adam (seeded by `cfg.seed`, restored on
    resume), the run folder's lock and record, validation loader, metrics log, progress bar.

    Every check that can refuse the run comes before the first byte lands in `cfg.out`. Sets
    the global torch RNG (`torch.manual_seed(cfg.seed)`, or the checkpoint's state on resume).
    `done` is set (and nothing else built) when the folder holds this run, finished.
    """
    from torch.utils.data import DataLoader

    from hcdg.pipeline.train_data import AugmentedSamples, mean_pose
    from hcdg.stages import train_dist
    from hcdg.store.checkpoints import config_hash, latest_checkpoint, load_checkpoint
    from hcdg.store.metrics_log import MetricsLog

    train_idx, val_idx, spe, total = plan(cfg, data, env.world)  # bad sizes: refused before any write
    chash = config_hash(run_identity(cfg, data))
    out = Path(cfg.out)

    from hcdg.pipeline import precision

    precision.check_supported(cfg.precision, device)  # e.g. fp16 on a torch without CPU fp16 autocast
    torch.manual_seed(cfg.seed)
    clip_dim = None if data.img_table is None else int(data.img_table.shape[1])
    model = build_model(cfg, clip_dim).to(device)  # --input-size / --width-mult refused here
    model = to_channels_last(model, cfg.channels_last)
    scaler = precision.grad_scaler(cfg.precision, device)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    crop = cfg.crop_config()
    writer = env.rank == 0 and not env.spawned
    if writer:
        held.enter_context(run_lock(out))  # a second writer is refused here, naming the holder
        check_folder(cfg, data)
    start = 0
    ckpt = latest_checkpoint(out) if cfg.resume else None
    if ckpt is not None:  # a damaged checkpoint is refused before run.json is touched
        ck = load_checkpoint(ckpt, expect_config_hash=chash)
        model.load_state_dict(ck.model_state)
        optim.load_state_dict(ck.optimizer_state)
        if scaler.is_enabled() and ck.extra.get("grad_scaler"):
            scaler.load_state_dict(ck.extra["grad_scaler"])
        ck.restore_rng()
        start = ck.step
        if start > total:
            raise HcdgError(f"{ckpt}: checkpoint is at step {start}, past the requested total of {total} steps")
    elif cfg.resume and writer and not (out / RUN_FILE).is_file():
        print(f"note: --resume: {out} holds no run yet; starting it from step 0", file=sys.stderr)
    if writer:
        prepare_folder(cfg, data)
    train_dist.barrier(env, device)
    pt = PointRun(cfg, env, device, data, out, chash, model, model, optim, crop, train_idx, val_idx, spe, total,
                  start, t_start, scaler=scaler)
    if start == total and (out / DONE_FILE).is_file():
        pt.done = read_done(out)
        return pt

    val_ds = AugmentedSamples(data.reader, crop, None, None, cfg.seed, data.feature_rows, target=cfg.target)
    # An explicit generator: iterating a loader then draws nothing from the global torch RNG,
    # which stays the model's alone (dropout), as in a shared-batch sweep (stages/train_shared).
    pt.val_loader = DataLoader(val_ds, sampler=[(0, int(i)) for i in val_idx], batch_size=cfg.batch_size,
                               num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed))
    mean_src = train_idx[:: max(1, len(train_idx) // 10000)]
    pt.mpose = torch.from_numpy(mean_pose(data.reader, mean_src))

    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        if device.type == "cuda":  # global BatchNorm statistics in Branch2's head (not available on CPU)
            pt.model = model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

        pt.net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile != "off":  # the step calls the compiled module; checkpoints and validation use the eager one
        pt.net = precision.compile_module(pt.net, cfg.compile, warn=_rank0_warn(env))
    pt.log = MetricsLog(out, resume_step=start, tensorboard=cfg.tensorboard) if env.rank == 0 else None
    pt.last_val = (float("nan"),) * len(VAL_KEYS)
    if pt.log is not None and pt.log.rows:
        vals = [r for r in pt.log.rows if r.get("kind") == "val"]
        if vals:  # rows of runs logged before the 2D columns existed lack them: NaN
            pt.last_val = tuple(float(vals[-1].get(k, float("nan"))) for k in VAL_KEYS)

    from hcdg.stages import progress

    # a bar on a terminal, a periodic status line (step, loss, samples/s, ETA) otherwise
    pt.bar = progress.bar(total, f"train {out.name}", "step", initial=start, enabled=env.rank == 0 and cfg.progress,
                          rate_unit="samples", rate_scale=cfg.batch_size, dynamic_ncols=True,
                          **({} if bar_position is None else {"position": bar_position}))  # fmt: skip
    model.train()
    pt.t_log, pt.n_log = time.perf_counter(), 0
    return pt


def train_loader(pt: PointRun, start: int, total: int) -> Any:
    """The DataLoader of the training batches of steps [start, total) of `pt`'s data (this rank's slice)."""
    from torch.utils.data import DataLoader

    from hcdg.pipeline.train_data import AugmentedSamples, GlobalBatchSampler

    cfg = pt.cfg
    geom = cfg.geom if cfg.augment else None
    color = cfg.color if cfg.augment else None
    train_ds = AugmentedSamples(pt.data.reader, pt.crop, geom, color, cfg.seed, pt.data.feature_rows,
                                target=cfg.target, augment_on=cfg.augment_on, views=pt.data.views)
    sampler = GlobalBatchSampler(pt.train_idx, cfg.batch_size, cfg.seed, start, total, pt.env.rank, pt.env.world)
    return DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=pt.device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed))


def step_point(pt: PointRun, batch: dict[str, torch.Tensor], step_idx: int) -> None:
    """One optimizer step of run `pt` on `batch` (on the device): loss, the non-finite guard, the
    update, and the metrics rows, validation and checkpoint due at this step."""
    from hcdg.stages import train_dist
    from hcdg.store.checkpoints import save_checkpoint

    cfg, env, device = pt.cfg, pt.env, pt.device
    step, epoch = step_idx + 1, step_idx // pt.spe
    if "image" not in batch:  # --augment-on device: warp, jitter, heatmaps here, once per batch
        from hcdg.pipeline.device_aug import render_batch

        batch.update(render_batch(batch, pt.crop, color=cfg.augment))
    loss, terms = objective.loss_terms(cfg, pt.net, batch, pt.data.tables, step_idx, env.rank, env.world)
    pt.optim.zero_grad(set_to_none=True)
    pt.scaler.scale(loss).backward()  # fp16: the scaled loss (no-op scaling otherwise)
    pt.scaler.unscale_(pt.optim)  # gradients back in true units before the guard
    # before the update: the newest checkpoint stays good
    _refuse_non_finite(loss, pt.model, step, pt.out, check_grads=not pt.scaler.is_enabled())
    for group in pt.optim.param_groups:
        group["lr"] = cfg.lr_at(step_idx)
    pt.scaler.step(pt.optim)  # fp16: skipped when a gradient overflowed
    pt.scaler.update()
    pt.n_log += cfg.batch_size
    pt.bar.update(1)
    if step % cfg.log_every == 0 or step == pt.total:
        terms = train_dist.all_mean(env, terms).tolist()
        now = time.perf_counter()
        if pt.log is not None:
            pt.log.append([{
                "kind": "train", "step": step, "epoch": epoch, "loss": terms[0], "loss_heat": terms[1],
                "loss_pose": terms[2], "loss_con": terms[3], **dict(zip(CON_STATS, terms[4:])),
                "lr": pt.optim.param_groups[0]["lr"],
                "samples_per_s": pt.n_log / max(now - pt.t_log, 1e-9), "wall_s": now - pt.t_start,
                "grad_scale": pt.scaler.get_scale() if pt.scaler.is_enabled() else float("nan"),
            }])  # fmt: skip
            pt.bar.set_postfix(loss=f"{terms[0]:.4f}")
        pt.t_log, pt.n_log = now, 0
    if step % pt.spe == 0 or step == pt.total or (cfg.val_every and step % cfg.val_every == 0):
        if env.rank == 0 and len(pt.val_idx):
            pt.last_val = objective.validation_errors(pt.model, pt.val_loader, pt.mpose, device, cfg.precision,
                                                      cfg.channels_last)
            pt.log.append([{"kind": "val", "step": step, "epoch": epoch, **dict(zip(VAL_KEYS, pt.last_val)),
                            "wall_s": time.perf_counter() - pt.t_start}])
        train_dist.barrier(env, device)
    if env.rank == 0 and (step % cfg.checkpoint_every == 0 or step == pt.total):
        save_checkpoint(pt.out, step=step, epoch=epoch, model_state=pt.model.state_dict(),
                        optimizer_state=pt.optim.state_dict(), cfg_hash=pt.chash,
                        extra={"grad_scaler": pt.scaler.state_dict()} if pt.scaler.is_enabled() else None)


def finish_point(pt: PointRun) -> dict[str, Any]:
    """Write the final model and `done.json` of a run that took its last step; returns the done record."""
    from hcdg.stages import train_dist
    from hcdg.store.checkpoints import save_model

    if pt.done is not None:
        return pt.done
    cfg, env = pt.cfg, pt.env
    pt.bar.close()
    done = {
        "step": pt.total, "total_steps": pt.total, "epochs": pt.total / pt.spe, "steps_per_epoch": pt.spe,
        "n_train": int(len(pt.train_idx)), "n_val": int(len(pt.val_idx)),
        **{k: finite_or_none(v) for k, v in zip(VAL_KEYS, pt.last_val)}, "config_hash": pt.chash,
        "world_size": env.world, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    if env.rank == 0:
        meta = {"model_config": to_dict(pt.model.cfg), "config_hash": pt.chash, "step": pt.total,
                "crop": to_dict(pt.crop), "train_config": to_dict(cfg)}
        save_model(pt.out, pt.model.state_dict(), meta)
        write_done(pt.out, done)
    train_dist.barrier(env, pt.device)
    pt.done = done if env.rank == 0 else read_done(pt.out)  # rank 0 holds the validation numbers
    return pt.done


def stop_after_step() -> int:
    """The test hook's step (`STOP_ENV`), 0 when unset."""
    return int(os.environ.get(STOP_ENV, "0") or 0)


def train(cfg: TrainConfig, env: DistEnv) -> dict[str, Any]:
    """Train this process's share of the run; returns the done record (rank 0 writes it)."""
    from hcdg.stages import train_dist

    t_start = time.perf_counter()
    device = resolve_device(cfg.device, env.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_dist.init(env, device)
    held = contextlib.ExitStack()  # the run folder's writer lock (rank 0 of a run not spawned by a locked parent)
    try:
        with held:  # the lock sees the error: a new run failing before its first checkpoint is removed
            data = open_data(cfg, device, check_files=env.rank == 0 and not env.spawned)
            pt = setup_point(cfg, env, device, data, held, t_start)
            if pt.done is not None:
                return pt.done
            stop_after = stop_after_step()
            for step_idx, batch in zip(range(pt.start, pt.total), train_loader(pt, pt.start, pt.total)):
                step_point(pt, to_device(batch, device), step_idx)
                if stop_after and step_idx + 1 == stop_after:
                    pt.bar.close()
                    raise SystemExit(f"{STOP_ENV}={stop_after}: stopped after step {step_idx + 1} (test hook)")
            return finish_point(pt)
    finally:
        train_dist.shutdown(env)
