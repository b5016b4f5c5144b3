"""Pose-error metrics: arrays in, numbers out (pure numpy, no I/O).

Conventions (docs/sources.md#evaluation-protocols):
* Coordinates go in as metres, errors come out as millimetres (`*_mm`); the
  conversion happens once, in `joint_errors_mm`.
* Errors are `(N, J)` arrays (N samples, J joints, J = 21 for hands); an optional
  boolean mask of the same shape selects the joints that count (e.g. visible ones).
* Summary statistics follow the `EvalUtil` class shared by hand3d (Zimmermann &
  Brox 2017) and the FreiHAND toolbox: every statistic is computed per joint over
  the samples where that joint counts, then averaged over the joints that have
  at least one measurement. Without a mask the mean EPE is the plain mean of all
  errors; the median EPE is the mean of the 21 per-joint medians (not the median
  of all errors), as those tools report it.
* PCK(t) = fraction of errors <= t; AUC = trapezoidal area under the PCK curve
  divided by the threshold range, so a perfect curve has AUC 1.
  - hand3d: 20 thresholds `linspace(0, 50 mm, 20)`; its "AUC 20-50" keeps the
    curve from index 8 on, i.e. thresholds 21.05 ... 50 mm (hand3d
    `eval_full.py`: `pck_curve_all[8:], threshs[8:]`).
  - FreiHAND toolbox: 100 thresholds `linspace(0, 50 mm, 100)`.
"""

from __future__ import annotations

import numpy as np

from hcdg.pipeline.errors import HcdgError

#: hand3d's PCK thresholds: 20 steps over 0-50 mm (eval3d.py / eval_full.py, get_measures(0.0, 0.050, 20)).
THRESHOLDS_20_MM: np.ndarray = np.linspace(0.0, 50.0, 20)
#: FreiHAND toolbox's PCK thresholds: 100 steps over 0-50 mm (eval.py, get_measures(0.0, 0.05, 100)).
THRESHOLDS_100_MM: np.ndarray = np.linspace(0.0, 50.0, 100)
#: hand3d's "AUC 20-50 mm" uses THRESHOLDS_20_MM[8:] = 21.05 ... 50 mm (12 thresholds).
HAND3D_AUC_20_50_START = 8


def joint_errors_mm(pred_xyz_m: np.ndarray, gt_xyz_m: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean distance in millimetres.

    Args:
        pred_xyz_m, gt_xyz_m: (..., J, 3) metres, same frame.
    Returns:
        (..., J) float64 millimetres.
    """
    pred = np.asarray(pred_xyz_m, dtype=np.float64)
    gt = np.asarray(gt_xyz_m, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise HcdgError(f"joint_errors_mm: shapes {pred.shape} and {gt.shape} must match and end in 3")
    return np.linalg.norm(pred - gt, axis=-1) * 1000.0


def axis_errors_mm(pred_xyz_m: np.ndarray, gt_xyz_m: np.ndarray) -> np.ndarray:
    """Per-joint absolute error along each camera axis, millimetres: ``|pred - gt| * 1000``.

    Averaged over joints and samples these are the x / y / z errors the paper authors' test
    script prints beside the EPE (their main/metrics.py:58-76, ``epe_detailed``).

    Args:
        pred_xyz_m, gt_xyz_m: (..., J, 3) metres, same frame.
    Returns:
        (..., J, 3) float64 millimetres.
    """
    pred = np.asarray(pred_xyz_m, dtype=np.float64)
    gt = np.asarray(gt_xyz_m, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise HcdgError(f"axis_errors_mm: shapes {pred.shape} and {gt.shape} must match and end in 3")
    return np.abs(pred - gt) * 1000.0


def visible_mask(
    shape: tuple[int, ...],
    visible: np.ndarray | None = None,
    uv_px: np.ndarray | None = None,
    image_size_px: tuple[int, int] | None = None,
) -> np.ndarray:
    """Boolean (N, J) mask of joints that count.

    Args:
        shape: (N, J) of the error array.
        visible: optional (N, J) annotation visibility flags (RHD `uv_vis`, a
            reader's `Sample.visible`); None means all visible.
        uv_px: optional (N, J, 2) ground-truth pixel coordinates; with
            `image_size_px` = (width, height) joints outside the image are dropped.
    """
    mask = np.ones(shape, dtype=bool)
    if visible is not None:
        vis = np.asarray(visible).astype(bool)
        if vis.shape != tuple(shape):
            raise HcdgError(f"visible_mask: visible has shape {vis.shape}, expected {tuple(shape)}")
        mask &= vis
    if uv_px is not None:
        if image_size_px is None:
            raise HcdgError("visible_mask: uv_px needs image_size_px=(width, height)")
        uv = np.asarray(uv_px, dtype=np.float64)
        w, h = image_size_px
        inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
        mask &= inside
    return mask


def _as_2d(errors_mm: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    err = np.asarray(errors_mm, dtype=np.float64)
    if err.ndim == 1:
        err = err[None, :]
    if err.ndim != 2:
        raise HcdgError(f"errors must be (N, J), got shape {err.shape}")
    if mask is None:
        m = np.ones(err.shape, dtype=bool)
    else:
        m = np.asarray(mask).astype(bool).reshape(err.shape)
    return err, m & np.isfinite(err)


def _per_joint(errors_mm: np.ndarray, mask: np.ndarray | None, fn) -> np.ndarray:
    """`fn` applied to each joint's counted errors; joints with none are dropped."""
    err, m = _as_2d(errors_mm, mask)
    vals = [fn(err[m[:, j], j]) for j in range(err.shape[1]) if m[:, j].any()]
    return np.asarray(vals, dtype=np.float64)


def epe_mean_mm(errors_mm: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error (mm): per-joint means averaged over joints (EvalUtil convention).

    NaN when no joint counts.
    """
    vals = _per_joint(errors_mm, mask, np.mean)
    return float(vals.mean()) if vals.size else float("nan")


def epe_median_mm(errors_mm: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Median end-point error (mm): per-joint medians averaged over joints (EvalUtil convention)."""
    vals = _per_joint(errors_mm, mask, np.median)
    return float(vals.mean()) if vals.size else float("nan")


def sample_epe_mm(errors_mm: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-sample EPE (mm): mean over the joints that count in each sample; (N,), NaN if none."""
    err, m = _as_2d(errors_mm, mask)
    n = m.sum(axis=1)
    total = np.where(m, err, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def pck_curve(
    errors_mm: np.ndarray, thresholds_mm: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """PCK at each threshold: per joint the fraction of errors <= t, averaged over joints.

    Returns (T,) in [0, 1]; NaN where no joint counts.
    """
    err, m = _as_2d(errors_mm, mask)
    t = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    counts = m.sum(axis=0)  # (J,)
    keep = counts > 0
    if not keep.any():
        return np.full(t.shape, np.nan)
    hits = ((err[None, :, :] <= t[:, None, None]) & m[None, :, :]).sum(axis=1)  # (T, J)
    return (hits[:, keep] / counts[keep]).mean(axis=1)


def auc(pck: np.ndarray, thresholds_mm: np.ndarray) -> float:
    """Area under a PCK curve, normalised by the threshold range (trapezoid rule, as hand3d)."""
    y = np.asarray(pck, dtype=np.float64)
    x = np.asarray(thresholds_mm, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise HcdgError("auc: need matching pck and thresholds with at least 2 points")
    return float(np.trapezoid(y, x) / np.trapezoid(np.ones_like(y), x))


def auc_0_50(errors_mm: np.ndarray, mask: np.ndarray | None = None, steps: int = 20) -> float:
    """AUC of PCK over `steps` thresholds 0-50 mm (20: hand3d, 100: FreiHAND toolbox)."""
    thr = np.linspace(0.0, 50.0, steps)
    return auc(pck_curve(errors_mm, thr, mask), thr)


def auc_20_50_hand3d(errors_mm: np.ndarray, mask: np.ndarray | None = None) -> float:
    """hand3d's "AUC 20-50 mm": the 20-threshold curve from index 8 (21.05 mm) to 50 mm."""
    thr = THRESHOLDS_20_MM[HAND3D_AUC_20_50_START:]
    return auc(pck_curve(errors_mm, thr, mask), thr)


def summarise(errors_mm: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """All headline numbers of one error set.

    Returns a dict: n_samples, epe_mean_mm, epe_median_mm, auc_0_50_20, auc_0_50_100,
    auc_20_50_hand3d, pck_thresholds_mm (100, list), pck (100, list).
    """
    err, m = _as_2d(errors_mm, mask)
    curve = pck_curve(err, THRESHOLDS_100_MM, m)
    return {
        "n_samples": int(err.shape[0]),
        "epe_mean_mm": epe_mean_mm(err, m),
        "epe_median_mm": epe_median_mm(err, m),
        "auc_0_50_20": auc_0_50(err, m, 20),
        "auc_0_50_100": auc(curve, THRESHOLDS_100_MM),
        "auc_20_50_hand3d": auc_20_50_hand3d(err, m),
        "pck_thresholds_mm": THRESHOLDS_100_MM.tolist(),
        "pck": curve.tolist(),
    }


def similarity_transform(
    source: np.ndarray, target: np.ndarray, allow_reflection: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale, rotation, translation) mapping source onto target.

    Umeyama (1991) via SVD, batched; `target ~= scale * source @ R.T + t` (row vectors).

    Args:
        source, target: (..., J, 3) point sets (any unit, the same for both).
        allow_reflection: False (default) forces det(R) = +1, a proper rotation;
            True admits a reflection when it fits better, as the FreiHAND toolbox
            does (it calls scipy.linalg.orthogonal_procrustes, which does not
            exclude reflections).
    Returns:
        scale (...,), R (..., 3, 3), t (..., 3).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise HcdgError(f"similarity_transform: shapes {src.shape} and {dst.shape} must match, (..., J, 3)")
    mu_s = src.mean(axis=-2, keepdims=True)
    mu_d = dst.mean(axis=-2, keepdims=True)
    a = src - mu_s
    b = dst - mu_d
    cov = np.swapaxes(b, -1, -2) @ a  # (..., 3, 3) = sum_j b_j a_j^T
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(sig.shape)
    if not allow_reflection:
        d[..., -1] = np.sign(np.linalg.det(u @ vt))
        d[..., -1] = np.where(d[..., -1] == 0, 1.0, d[..., -1])
    rot = u @ (d[..., :, None] * vt)
    var_s = (a**2).sum(axis=(-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(var_s > 0, (sig * d).sum(axis=-1) / np.where(var_s > 0, var_s, 1.0), 1.0)
    t = mu_d[..., 0, :] - scale[..., None] * np.einsum("...ij,...j->...i", rot, mu_s[..., 0, :])
    return scale, rot, t


def procrustes_align(
    pred: np.ndarray, gt: np.ndarray, allow_reflection: bool = False
) -> np.ndarray:
    """`pred` moved onto `gt` by the best similarity transform (centre, scale, rotate).

    pred, gt: (..., J, 3); returns the aligned prediction, same shape, in gt's unit and frame.
    """
    scale, rot, t = similarity_transform(pred, gt, allow_reflection=allow_reflection)
    p = np.asarray(pred, dtype=np.float64)
    return scale[..., None, None] * (p @ np.swapaxes(rot, -1, -2)) + t[..., None, :]


#: The FreiHAND toolbox adds this to each centred point set's Frobenius norm before
#: dividing by it (eval.py `align_w_scale`: ``np.linalg.norm(mtx_t) + 1e-8``), in the
#: unit of the arrays it is given. Kept so `toolbox_align` matches it to float precision.
TOOLBOX_NORM_EPS = 1e-8


def toolbox_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """`pred` aligned onto `gt` exactly as the FreiHAND toolbox does it (reflections admitted).

    The toolbox's `align_w_scale(gt, pred)` (eval.py): centre both sets on their means,
    divide each by its Frobenius norm + `TOOLBOX_NORM_EPS`, find the orthogonal matrix
    (rotation or reflection: `scipy.linalg.orthogonal_procrustes` does not exclude
    det = -1) and scale best mapping the normalised gt onto the normalised pred, apply
    its inverse to pred, undo gt's normalisation. Batched; equals the toolbox to float
    precision on the same arrays (tests/test_metrics.py checks against scipy).

    Args:
        pred, gt: (..., J, 3), any unit (the same for both; gt's is the result's).
    Returns:
        (..., J, 3) aligned prediction, float64.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.shape[-1] != 3:
        raise HcdgError(f"toolbox_align: shapes {p.shape} and {g.shape} must match, (..., J, 3)")
    t_g = g.mean(axis=-2, keepdims=True)
    g_c = g - t_g
    p_c = p - p.mean(axis=-2, keepdims=True)
    s_g = np.linalg.norm(g_c, axis=(-2, -1))[..., None, None] + TOOLBOX_NORM_EPS
    s_p = np.linalg.norm(p_c, axis=(-2, -1))[..., None, None] + TOOLBOX_NORM_EPS
    a, b = g_c / s_g, p_c / s_p
    u, sig, vt = np.linalg.svd(np.swapaxes(a, -1, -2) @ b)  # a^T b, as orthogonal_procrustes(a, b)
    r = u @ vt  # argmin_R ||a R - b||, R orthogonal (det may be -1)
    scale = sig.sum(axis=-1)[..., None, None]
    return (b @ np.swapaxes(r, -1, -2)) * scale * s_g + t_g
