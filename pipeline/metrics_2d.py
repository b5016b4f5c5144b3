"""2D keypoint metrics in mmpose's conventions, for comparison with mmpose-trained hand models.

Names are those mmpose logs (`PCKAccuracy` -> "PCK", `AUC` -> "AUC", `EPE` -> "EPE";
mmpose/evaluation/functional/keypoint_eval.py: keypoint_pck_accuracy, keypoint_auc,
keypoint_epe):

* PCK: fraction of keypoints within thr x (bbox size) of the truth, thr = 0.2, the bbox size
  being max(w, h) of each sample's box (mmpose's `norm_item="bbox"`); per joint over the
  samples where it is annotated, then averaged over joints that have any.
* AUC: the PCK curve at thresholds i/20 x 30 px, i = 0..19 (mmpose's `norm_factor=30`,
  `num_thresholds=20`), averaged: (1/20) sum_i PCK_i.
* EPE: mean pixel distance over every annotated keypoint of every sample.

All in image pixels, on (N, 21, 2) arrays with an (N, 21) bool mask of annotated joints.
"""

from __future__ import annotations

import numpy as np

from hcdg.pipeline.errors import HcdgError

#: mmpose's defaults for hand datasets (configs/hand_2d_keypoint/*: PCKAccuracy(thr=0.2), AUC, EPE).
PCK_THR = 0.2
AUC_NORM_PX = 30.0
AUC_THRESHOLDS = 20


def _check(pred_px: np.ndarray, gt_px: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, gt, m = np.asarray(pred_px, np.float64), np.asarray(gt_px, np.float64), np.asarray(mask, bool)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2 or m.shape != pred.shape[:2]:
        raise HcdgError(f"metrics_2d: expected (N, J, 2) pred/gt and (N, J) mask, got {pred.shape}, {gt.shape}, {m.shape}")
    m = m & np.isfinite(gt).all(-1) & np.isfinite(pred).all(-1)
    return pred, gt, m


def pck_accuracy(pred_px: np.ndarray, gt_px: np.ndarray, mask: np.ndarray, thr: float,
                 norm_px: np.ndarray) -> float:
    """mmpose keypoint_pck_accuracy's avg_acc: `norm_px` (N,) per-sample normaliser in pixels."""
    pred, gt, m = _check(pred_px, gt_px, mask)
    norm = np.asarray(norm_px, np.float64).reshape(-1, 1)
    ok = m & (norm > 0)
    dist = np.linalg.norm(pred - gt, axis=-1) / np.where(norm > 0, norm, 1.0)
    per_joint = [float((dist[ok[:, j], j] < thr).mean()) for j in range(dist.shape[1]) if ok[:, j].any()]
    return float(np.mean(per_joint)) if per_joint else float("nan")


def bbox_size_px(gt_px: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) max(w, h) of each sample's box around its annotated keypoints (the box hcdg uses for
    mmpose's `norm_item="bbox"`; mmpose's own annotation boxes are often padded a little)."""
    gt, m = np.asarray(gt_px, np.float64), np.asarray(mask, bool)
    out = np.zeros(len(gt))
    for i in range(len(gt)):
        if m[i].any():
            pts = gt[i, m[i]]
            out[i] = float((pts.max(0) - pts.min(0)).max())
    return out


def mmpose_2d(pred_px: np.ndarray, gt_px: np.ndarray, mask: np.ndarray,
              bbox_px: np.ndarray | None = None) -> dict[str, float]:
    """{"PCK": PCK@0.2 of the bbox size, "AUC": AUC over 0-30 px (20 thresholds), "EPE": px}.

    `bbox_px`: (N,) box sizes max(w, h); None = `bbox_size_px` of the ground truth."""
    pred, gt, m = _check(pred_px, gt_px, mask)
    size = bbox_size_px(gt, m) if bbox_px is None else np.asarray(bbox_px, np.float64)
    auc_norm = np.full(len(gt), AUC_NORM_PX)
    auc = sum(pck_accuracy(pred, gt, m, i / AUC_THRESHOLDS, auc_norm) for i in range(AUC_THRESHOLDS)) / AUC_THRESHOLDS
    dist = np.linalg.norm(pred - gt, axis=-1)[m]
    return {"PCK": pck_accuracy(pred, gt, m, PCK_THR, size), "AUC": float(auc),
            "EPE": float(dist.mean()) if dist.size else float("nan")}
