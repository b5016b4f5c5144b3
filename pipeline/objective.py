"""The training objective of `hcdg train`: one step's loss terms and the validation errors.

    f_clip = mix(f_img[rows], f_txt[prompt ids], r)        (paper §3.3; prompt ids drawn per step)
    L = l1 L_heat + l2 L_pose + l3 L_con                   (paper §3.4, Eq. 1)

`loss_terms` is the one place this is computed: the solo training loop, shared-batch
sweeps, DDP ranks (`stages.train_loop.step_point`) and the benchmarks
(`benchmarks/bench_step.py`, `benchmarks/gpu_figures.py`) all call it, so a benchmark
measures the objective users train. `validation_errors` is the held-out maths of a run.

The settings are read from any object with the attributes of `ObjectiveSettings`
(`stages.train_config.TrainConfig` is one); nothing here reads files or globals.
Prompt ids are a function of (seed, step) only, drawn for the global batch and sliced
per rank, so a resumed or distributed run draws what a single process would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from hcdg.pipeline import heatmap_loss, losses
from hcdg.pipeline.schedule import step_plan
from hcdg.pipeline.precision import autocast, to_channels_last

#: Generator tags: prompt ids (global batch) and Table 6's normal augmentation (per rank).
PROMPT_TAG = 0x9F0
NORMAL_AUG_TAG = 0xA09
#: The detached terms `loss_terms` returns, in order (metrics.parquet columns `loss`, `loss_heat`, ...):
#: the Branch2 diagnostics (`losses.contrastive_loss` `stats`) are NaN without Branch2.
TERM_KEYS = ("loss", "loss_heat", "loss_pose", "loss_con")
CON_STATS = ("d_pos", "d_neg", "e1_norm", "e2_norm")
#: The validation numbers, in the order `validation_errors` returns them (metrics.parquet / done.json keys).
VAL_KEYS = ("val_epe_mm", "val_mean_pose_epe_mm", "val_2d_px", "val_mean_2d_px")


class ObjectiveSettings(Protocol):
    """The config attributes the objective reads (`TrainConfig` has them all)."""

    seed: int
    batch_size: int  # the global batch (prompt ids are drawn for all of it)
    mode: str
    normalize_features: bool
    normal_aug: Any
    precision: str  # autocast of the forward (pipeline.precision): fp32 | bf16 | fp16
    channels_last: bool  # NHWC input (the model's weights are the caller's to convert)
    input_size: int
    sigma_px: float
    gaussian: str
    pose_reduction: str
    con_loss: str
    margin: float
    con_negative: str
    lambda_heat: float
    lambda_pose: float
    lambda_con: float
    schedule: str  # pipeline.schedule: joint | staged | lifting-detached
    lifting_input: str  # pred | gt-then-pred
    staged_steps: int

    @property
    def uses_clip(self) -> bool: ...

    @property
    def effective_ratio(self) -> float | None: ...

    @property
    def heat_loss(self) -> heatmap_loss.HeatLossConfig: ...


@dataclass(frozen=True)
class FeatureTables:
    """The CLIP tables a step gathers from, on the training device."""

    img_table: torch.Tensor  # (N, D) image features, the store's dtype (rows are converted when gathered)
    txt_table: torch.Tensor  # (P, D) text features
    prompt_subset: Sequence[int] | None = None  # rows of txt_table to draw from (None = all)


def step_seed(seed: int, tag: int, step: int, rank: int = 0) -> int:
    """A 63-bit generator seed that is a function of (seed, tag, step, rank) only."""
    return int(np.random.SeedSequence([int(seed), tag, int(step), int(rank)]).generate_state(1, np.uint64)[0] >> 1)


def prompt_ids(cfg: ObjectiveSettings, step: int, *, n_prompts: int | None = None,
               subset: Sequence[int] | None = None, rank: int = 0, world: int = 1) -> torch.Tensor:
    """(batch_size // world,) prompt ids of this rank's slice of step `step` (0-based), uniform over
    range(n_prompts) or over `subset` (give one)."""
    from hcdg.pipeline import mixing

    gen = torch.Generator().manual_seed(step_seed(cfg.seed, PROMPT_TAG, step))
    pids = mixing.draw_prompt_ids(gen, cfg.batch_size, n_prompts, subset)  # the global batch's ids
    local = cfg.batch_size // world
    return pids[rank * local : (rank + 1) * local]


def positive_inputs(cfg: ObjectiveSettings, batch: dict[str, torch.Tensor], tables: FeatureTables | None,
                    step: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    """The model's Branch2 inputs of a step: {"clip_feat": (B, D)} (CLIP positive), {"pos_image": ...}
    (Table 6's augmented view) or {} (baseline)."""
    from hcdg.pipeline import augment, mixing

    if cfg.uses_clip:
        if tables is None:
            raise ValueError("positive_inputs: this objective mixes CLIP features; give the feature tables")
        pids = prompt_ids(cfg, step, rank=rank, world=world, **(
            {"subset": tables.prompt_subset} if tables.prompt_subset else {"n_prompts": tables.txt_table.shape[0]}))
        return {"clip_feat": mixing.gather_mixed(tables.img_table, tables.txt_table, batch["feat_row"], pids,
                                                 cfg.effective_ratio, cfg.normalize_features)}
    if cfg.mode != "baseline":  # aug == "normal": an augmented view is the positive
        gen = torch.Generator().manual_seed(step_seed(cfg.seed, NORMAL_AUG_TAG, step, rank))
        return {"pos_image": augment.normal_augment(batch["image"], gen, cfg.normal_aug)}
    return {}


def loss_terms(cfg: ObjectiveSettings, model: torch.nn.Module, batch: dict[str, torch.Tensor],
               tables: FeatureTables | None, step: int, rank: int = 0, world: int = 1,
               positives: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, detached [loss, heat, pose, con, *CON_STATS]) of step `step` (0-based) on `batch`.

    `batch` is this rank's slice on the model's device: image (B, 3, S, S), hand_side (B, 2),
    heatmaps (B, 21, S/8, S/8), uv_crop (B, 21, 2) crop px, visible (B, 21), pose_target
    (B, 21, 3) and, with CLIP, feat_row (B,) store rows. `positives` replaces the Branch2
    inputs drawn from the tables (a benchmark encoding CLIP online passes its own clip_feat).
    """
    image, side = batch["image"], batch["hand_side"]
    kwargs = positive_inputs(cfg, batch, tables, step, rank, world) if positives is None else positives
    plan = step_plan(cfg.schedule, cfg.lifting_input, cfg.staged_steps, step)  # which losses train what, now
    if "pos_image" in kwargs:
        kwargs = {**kwargs, "pos_image": to_channels_last(kwargs["pos_image"], cfg.channels_last)}
    heat_gt = batch["heatmaps"]
    if plan.lifting == "gt":  # the lifting reads the ground-truth maps (hand3d training_lifting.py)
        kwargs = {**kwargs, "lifting_maps": heat_gt}
    with autocast(image.device, cfg.precision):  # the losses below stay float32 (inputs .float())
        out = model(to_channels_last(image, cfg.channels_last), side, detach_lifting=plan.lifting == "detached",
                    **kwargs)
    l_heat = heatmap_loss.heatmap_loss(
        [h.float() for h in out["heatmaps"]], cfg=cfg.heat_loss, gt_grid=heat_gt, uv_crop_px=batch["uv_crop"],
        crop_size=cfg.input_size, sigma_px=cfg.sigma_px, gaussian=cfg.gaussian, visible=batch["visible"])
    l_pose = losses.pose_loss(out["xyz_rel_norm"].float(), batch["pose_target"], cfg.pose_reduction)  # xyz or uvd
    l_con = None
    stats: dict[str, torch.Tensor] = {}
    if "e1p" in out:
        neg = losses.select_negatives(out["heatmaps"][-1].float(), heat_gt)
        l_con = losses.contrastive_loss(
            out["e1p"].float(), out["e2p"].float(), neg, cfg.con_loss, cfg.margin, cfg.con_negative, stats=stats)
    w = losses.LossWeights(cfg.lambda_heat, cfg.lambda_pose * plan.pose_on, cfg.lambda_con * plan.con_on)
    total = losses.total_loss(l_heat, l_pose, l_con, w)
    con = l_con.detach() if l_con is not None else torch.zeros((), device=total.device)
    nan = torch.full((), float("nan"), device=total.device)
    extra = [stats.get(k, nan) for k in CON_STATS]
    return total, torch.stack([total.detach(), l_heat.detach(), l_pose.detach(), con, *extra])


@torch.no_grad()
def validation_errors(model: torch.nn.Module, loader: Any, mean_pose: torch.Tensor, device: torch.device,
                      precision: str, channels_last: bool = False) -> tuple[float, float, float, float]:
    """Held-out errors (`VAL_KEYS`): (EPE mm of the model, EPE mm of predicting `mean_pose`, 2D error
    px of the last-stage heatmap argmax, 2D error px of the mean 2D layout).

    3D: root-relative, GT bone scale, mean over joints and samples. 2D: crop pixels, the
    argmax of the last-stage map upsampled to the crop (`heatmap_loss.argmax_uv`) against
    the ground-truth uv of joints that are visible and inside the crop; the reference is
    the mean ground-truth layout of the validation crops (crops are centred on the hand).
    """
    was_training = model.training
    model.eval()
    err_sum, mean_sum, count = 0.0, 0.0, 0
    uv_pred, uv_gt, ok = [], [], []
    for batch in loader:
        image = batch["image"].to(device)
        with autocast(device, precision):
            out = model.predict(to_channels_last(image, channels_last), batch["hand_side"].to(device))
        pred = out["xyz_rel_norm"].float()
        gt = batch["xyz_rel_norm"].to(device)
        if model.cfg.output == "uvd":  # metric, root-relative: back-projected with the GT root depth
            from hcdg.pipeline.authors import uvd_to_rel_norm

            pred = uvd_to_rel_norm(pred, batch["K_crop"].to(device), batch["root_xyz_m"].to(device),
                                   batch["bone_scale_m"].to(device), image.shape[-1])
        bone_mm = batch["bone_scale_m"].to(device)[:, None] * 1000.0
        err_sum += float(((pred - gt).norm(dim=-1) * bone_mm).sum())
        mean_sum += float(((mean_pose.to(device)[None] - gt).norm(dim=-1) * bone_mm).sum())
        count += gt.shape[0] * gt.shape[1]
        size = image.shape[-1]
        uv = batch["uv_crop"].to(device)
        uv_pred.append(heatmap_loss.argmax_uv(out["heatmaps"][-1].float(), size))  # metrics in float32
        uv_gt.append(uv)
        ok.append(batch["visible"].to(device) & ((uv >= -0.5) & (uv <= size - 0.5)).all(dim=-1))
    model.train(was_training)
    if count == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    uv_pred_t, uv_gt_t, ok_t = torch.cat(uv_pred), torch.cat(uv_gt), torch.cat(ok).float()
    n2d = ok_t.sum().clamp(min=1.0)
    layout = (uv_gt_t * ok_t[..., None]).sum(0) / ok_t.sum(0).clamp(min=1.0)[:, None]  # (21, 2)
    err2d = float(((uv_pred_t - uv_gt_t).norm(dim=-1) * ok_t).sum() / n2d)
    mean2d = float(((layout[None] - uv_gt_t).norm(dim=-1) * ok_t).sum() / n2d)
    return err_sum / count, mean_sum / count, err2d, mean2d
