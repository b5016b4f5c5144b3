"""L_heat (paper Eq. 2) and the readings of it that the sources use, plus 2D read-out.

The paper prints ``L_heat = ||f_H2D(x) - h_GT||_2^2`` and nothing else. Its baseline
(hand3d, training_posenet.py l.44-59) and the authors' code differ from that and from
each other; `HeatLossConfig` names each choice so a run records which it used:

* reduction: "mean" = mean of the squared error over every element (MSE over maps and
  pixels); "sum" = per-sample squared L2 norm summed over joints and pixels, averaged over
  the batch (Eq. 2 as printed); "rmse" = hand3d: per keypoint map sqrt(mean over pixels of
  the squared error), visibility-weighted mean over the maps.
* stages: "all" = every CPM stage (intermediate supervision, hand3d / CPM); "last" = the
  final stage only (the authors' PoseNet returns only it).
* resolution: "grid" = on the S/8 heatmap grid; "crop" = the predicted maps bilinearly
  upsampled to the S crop (hand3d l.46-47 `resize_images` to the 256 scoremap; the
  authors' ColorHandPose3D upsamples to 256 too) against targets drawn at crop pixels.
* gaussian (of the target, `render_gaussians`): "exp-d2-2s2" = exp(-d^2 / (2 sigma^2))
  (sigma is a standard deviation); "exp-d2-s2" = exp(-d^2 / sigma^2) (hand3d
  utils/general.py and the authors' code: their sigma is sqrt(2) x a standard deviation).

All of it is pure torch: the crop-resolution targets are drawn on the training device
from the keypoints, so no 21 x S x S array ever passes through the data loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from hcdg.pipeline.camera import gaussian_denominator
from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError

Reduction = Literal["mean", "sum", "rmse"]
Stages = Literal["all", "last"]
Resolution = Literal["grid", "crop"]
Gaussian = Literal["exp-d2-2s2", "exp-d2-s2"]
REDUCTIONS = ("mean", "sum", "rmse")
STAGES = ("all", "last")
RESOLUTIONS = ("grid", "crop")
#: hand3d adds 0.001 to the visible count (training_posenet.py l.58).
RMSE_EPS_VIS = 1e-3


@dataclass(frozen=True)
class HeatLossConfig:
    """How L_heat is computed (module docstring). Defaults are hcdg's, chosen in docs/model.md."""

    reduction: Reduction = "sum"
    stages: Stages = "all"
    resolution: Resolution = "grid"

    def __post_init__(self) -> None:
        for name, allowed in (("reduction", REDUCTIONS), ("stages", STAGES), ("resolution", RESOLUTIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"heat_{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")


def render_gaussians(
    uv_px: torch.Tensor, size: int, sigma_px: float, gaussian: Gaussian, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """Target maps on a `size` x `size` grid of integer-centred pixels.

    uv_px: (B, J, 2) keypoints in the grid's pixels (u right, v down); sigma_px in the same
    pixels; visible (B, J) bool or None. Returns (B, J, size, size), peak 1 at the keypoint,
    all-zero maps for invisible or non-finite keypoints. Same values as
    `camera.gaussian_heatmaps` (numpy, per sample) for the same arguments.
    """
    if uv_px.ndim != 3 or uv_px.shape[-1] != 2:
        raise HcdgError(f"render_gaussians: expected uv_px (B,J,2), got {tuple(uv_px.shape)}")
    denom = gaussian_denominator(sigma_px, gaussian, "render_gaussians")
    ok = torch.isfinite(uv_px).all(dim=-1)
    if visible is not None:
        ok = ok & visible.bool()
    uv = torch.where(ok[..., None], uv_px, torch.zeros_like(uv_px)).to(torch.float32)
    grid = torch.arange(size, dtype=torch.float32, device=uv_px.device)
    gu = torch.exp(-((grid - uv[..., :1]) ** 2) / denom)  # (B,J,size) over u
    gv = torch.exp(-((grid - uv[..., 1:2]) ** 2) / denom)  # (B,J,size) over v
    maps = gv[..., :, None] * gu[..., None, :]
    return maps * ok[..., None, None].to(maps.dtype)


def _reduce(sq: torch.Tensor, vis: torch.Tensor | None, reduction: Reduction) -> torch.Tensor:
    """sq (B,J,h,w) squared errors -> one scalar by `reduction`; vis (B,J) float or None."""
    if reduction == "rmse":
        per_map = (sq.mean(dim=(2, 3)) + 1e-12).sqrt()  # eps: finite gradient at a perfect map
        if vis is None:
            return per_map.mean()
        return (per_map * vis).sum() / (vis.sum() + RMSE_EPS_VIS)
    if reduction == "sum":
        per_map = sq.sum(dim=(2, 3))
        if vis is not None:
            per_map = per_map * vis
        return per_map.sum() / sq.shape[0]
    per_map = sq.mean(dim=(2, 3))
    if vis is None:
        return per_map.mean()
    return (per_map * vis).sum() / vis.sum().clamp(min=1.0)


def heatmap_loss(
    pred: Sequence[torch.Tensor],
    *,
    cfg: HeatLossConfig,
    gt_grid: torch.Tensor | None = None,
    uv_crop_px: torch.Tensor | None = None,
    crop_size: int | None = None,
    sigma_px: float | None = None,
    gaussian: Gaussian = "exp-d2-2s2",
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_heat summed over the supervised CPM stages.

    pred: the stages' (B,21,h,w) maps. resolution "grid" compares them with `gt_grid`
    (B,21,h,w); "crop" upsamples them (bilinear, half-pixel centres) to `crop_size` and
    compares with Gaussians drawn at `uv_crop_px` (B,21,2) crop pixels with `sigma_px`
    crop pixels and `gaussian`. visible (B,21) 0/1 weights each map (None = all count).
    """
    maps = list(pred) if cfg.stages == "all" else [pred[-1]]
    vis = None if visible is None else visible.to(torch.float32)
    if cfg.resolution == "grid":
        if gt_grid is None:
            raise HcdgError("heatmap_loss: resolution 'grid' needs gt_grid")
        target = gt_grid
    else:
        if uv_crop_px is None or crop_size is None or sigma_px is None:
            raise HcdgError("heatmap_loss: resolution 'crop' needs uv_crop_px, crop_size and sigma_px")
        target = render_gaussians(uv_crop_px, crop_size, sigma_px, gaussian, visible)
    total = target.new_zeros(())
    for p in maps:
        if cfg.resolution == "crop":
            p = F.interpolate(p, size=(crop_size, crop_size), mode="bilinear", align_corners=False)
        if p.shape != target.shape:
            raise HcdgError(f"heatmap_loss: stage map {tuple(p.shape)} != ground truth {tuple(target.shape)}")
        total = total + _reduce((p - target) ** 2, vis, cfg.reduction)
    return total


def argmax_uv(maps: torch.Tensor, crop_size: int) -> torch.Tensor:
    """(B,J,h,w) maps -> (B,J,2) crop-pixel (u, v) of the maximum of each map upsampled to the crop.

    Bilinear upsampling with half-pixel centres, as the authors read 2D on STB
    (their ColorHandPose3D upsamples the last stage to 256 and takes the argmax).
    """
    up = F.interpolate(maps.float(), size=(crop_size, crop_size), mode="bilinear", align_corners=False)
    flat = up.flatten(2).argmax(dim=-1)
    return torch.stack([flat % crop_size, flat // crop_size], dim=-1).to(torch.float32)
