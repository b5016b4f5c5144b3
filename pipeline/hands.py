"""Hand helpers on top of `joints`: joint-order maps, bone scale, STB's palm root,
and mirroring a left hand to a right one (image, 3D and intrinsics together).

Conventions (docs/sources.md#joint-orders, docs/geometry.md):
* hcdg's internal order is FreiHAND's; a map ``MAP`` is applied as
  ``target = source[..., MAP, :]``.
* Pixel coordinates are continuous with pixel *centres* at integers: pixel column
  ``i`` covers ``[i - 0.5, i + 0.5)``. So a horizontal flip of a W-pixel image maps
  ``u -> W - 1 - u`` and the principal point ``cx -> W - 1 - cx``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import (
    MIDDLE_MCP,
    MIDDLE_PIP,
    N_JOINTS,
    RHD_TO_FREIHAND,
    STB_PALM_TO_WRIST,
    STB_TO_FREIHAND,
    WRIST,
)

#: FreiHAND -> STB order: the inverse permutation of `STB_TO_FREIHAND`.
FREIHAND_TO_STB = np.argsort(STB_TO_FREIHAND)


def _apply_map(arr: np.ndarray, index_map: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim < 2 or arr.shape[-2] != N_JOINTS:
        raise HcdgError(f"{name}: expected shape (..., {N_JOINTS}, k), got {arr.shape}")
    return arr[..., index_map, :]


def rhd_to_freihand(arr: np.ndarray) -> np.ndarray:
    """(..., 21, k) in RHD per-hand order (wrist, each finger TIP -> MCP) -> FreiHAND order."""
    return _apply_map(arr, RHD_TO_FREIHAND, "rhd_to_freihand")


def freihand_to_rhd(arr: np.ndarray) -> np.ndarray:
    """(..., 21, k) FreiHAND order -> RHD per-hand order (the map is its own inverse)."""
    return _apply_map(arr, RHD_TO_FREIHAND, "freihand_to_rhd")


def stb_to_freihand(arr: np.ndarray) -> np.ndarray:
    """(..., 21, k) STB order (palm, pinky..thumb, each MCP -> tip) -> FreiHAND order.

    Joint 0 stays STB's palm centre; see `stb_palm_to_wrist`.
    """
    return _apply_map(arr, STB_TO_FREIHAND, "stb_to_freihand")


def freihand_to_stb(arr: np.ndarray) -> np.ndarray:
    """(..., 21, k) FreiHAND order -> STB order (inverse of `stb_to_freihand`)."""
    return _apply_map(arr, FREIHAND_TO_STB, "freihand_to_stb")


def bone_scale_batched(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (...,) length of the middle MCP -> PIP bone (joints 9 -> 10), same unit as xyz."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim < 2 or xyz.shape[-2:] != (N_JOINTS, 3):
        raise HcdgError(f"xyz: expected shape (..., {N_JOINTS}, 3), got {xyz.shape}")
    return np.linalg.norm(xyz[..., MIDDLE_PIP, :] - xyz[..., MIDDLE_MCP, :], axis=-1)


def bone_scale(xyz: np.ndarray) -> float:
    """Length of the middle MCP -> PIP bone, ``||xyz[10] - xyz[9]||`` (FreiHAND order).

    Args:
        xyz: (21, 3) joints of one hand, metres (`bone_scale_batched` takes (..., 21, 3)).
    Returns:
        The length in the unit of `xyz` (metres). hand3d's normalising bone (docs/sources.md#canonical-frame).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape != (N_JOINTS, 3):
        raise HcdgError(f"bone_scale: expected shape ({N_JOINTS}, 3), got {xyz.shape}")
    return float(bone_scale_batched(xyz))


def stb_palm_to_wrist(xyz: np.ndarray, factor: float = STB_PALM_TO_WRIST) -> np.ndarray:
    """Replace joint 0 (STB's palm centre) by an extrapolated wrist.

    ``wrist = mid_mcp + factor * (palm - mid_mcp)``, factor 2.2 (one published
    convention, docs/sources.md#joint-orders). Works on (..., 21, 3) joints in FreiHAND order, and
    equally on (..., 21, 2) pixel coordinates (the map is affine, so it commutes with
    any affine camera; for a perspective camera convert in 3D, then project).
    Returns a float64 copy; joints 1..20 unchanged.
    """
    xyz = np.array(xyz, dtype=np.float64)
    if xyz.ndim < 2 or xyz.shape[-2] != N_JOINTS:
        raise HcdgError(f"stb_palm_to_wrist: expected shape (..., {N_JOINTS}, k), got {xyz.shape}")
    mid = xyz[..., MIDDLE_MCP, :]
    xyz[..., WRIST, :] = mid + factor * (xyz[..., WRIST, :] - mid)
    return xyz


def palm_from_wrist(xyz: np.ndarray) -> np.ndarray:
    """A palm point for a wrist-rooted hand: ``midpoint(wrist, middle MCP)``.

    hand3d's RHD palm (`BinaryDbReader`, use_wrist_coord=False). Use it to compare
    a wrist-rooted prediction with STB's palm-rooted ground truth without
    extrapolating the ground truth.

    Args:
        xyz: (..., 21, k) FreiHAND order.
    Returns:
        (..., k) the palm point.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim < 2 or xyz.shape[-2] != N_JOINTS:
        raise HcdgError(f"palm_from_wrist: expected shape (..., {N_JOINTS}, k), got {xyz.shape}")
    return 0.5 * (xyz[..., WRIST, :] + xyz[..., MIDDLE_MCP, :])


def with_palm_root(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, k) copy with joint 0 replaced by `palm_from_wrist` (wrist -> palm root)."""
    out = np.array(xyz, dtype=np.float64)
    out[..., WRIST, :] = palm_from_wrist(xyz)
    return out


# ---------------------------------------------------------------- mirroring (left -> right)


def mirror_xyz(xyz: np.ndarray) -> np.ndarray:
    """Mirror camera-frame points through the camera's y-z plane: ``x -> -x``. (..., 3) copy.

    The mirror image of a left hand is a right hand; joint order is unchanged.
    """
    out = np.array(xyz, dtype=np.float64)
    out[..., 0] *= -1.0
    return out


def mirror_K(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the horizontally flipped image: ``cx -> W - 1 - cx`` (and skew -> -skew).

    With `mirror_xyz`, ``project(mirror_xyz(X), mirror_K(K, W)) == mirror_uv(project(X, K), W)``.
    """
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise HcdgError(f"mirror_K: expected K of shape (3, 3), got {K.shape}")
    K[0, 1] = -K[0, 1]
    K[0, 2] = (width - 1) - K[0, 2]
    return K


def mirror_uv(uv: np.ndarray, width: int) -> np.ndarray:
    """Pixel coordinates in the horizontally flipped image: ``u -> W - 1 - u``. (..., 2) copy."""
    out = np.array(uv, dtype=np.float64)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def mirror_image(image: np.ndarray) -> np.ndarray:
    """(H, W, C) or (H, W) image flipped left-right (contiguous copy)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def mirror_affine(width: int) -> np.ndarray:
    """(3, 3) homogeneous pixel map original -> flipped image: ``u -> W - 1 - u``; its own inverse."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def mirror_sample(sample: Sample, width: int | None = None) -> Sample:
    """Mirror a sample left <-> right, keeping image, 3D and K consistent.

    Image flipped left-right, ``x -> -x``, ``cx -> W - 1 - cx``, uv recomputed as
    ``W - 1 - u`` (equal to projecting the mirrored xyz with the mirrored K);
    `side` becomes the other side; ``extra["mirrored"]`` toggles (True after one
    mirror of an unmirrored sample) and ``extra["mirror_width"] = W``.

    Args:
        sample: any Sample; its image may be None.
        width: image width in pixels; needed only when `sample.image` is None
            (else it must match the image).
    Raises:
        HcdgError: no width available, or a width that contradicts the image.
    """
    if sample.image is not None:
        w_img = int(np.asarray(sample.image).shape[1])
        if width is not None and int(width) != w_img:
            raise HcdgError(
                f"mirror_sample({sample.sample_id}): width={width} but the image is {w_img} pixels wide"
            )
        width = w_img
    if width is None:
        raise HcdgError(
            f"mirror_sample({sample.sample_id}): the image is not loaded; pass width= (image width in pixels)"
        )
    extra = dict(sample.extra)
    extra["mirrored"] = not bool(extra.get("mirrored", False))
    extra["mirror_width"] = int(width)
    return dataclasses.replace(
        sample,
        K=mirror_K(sample.K, width),
        xyz=mirror_xyz(sample.xyz),
        uv=mirror_uv(sample.uv, width),
        side="right" if sample.side == "left" else "left",
        image=None if sample.image is None else mirror_image(sample.image),
        extra=extra,
    )


def to_right_hand(sample: Sample, width: int | None = None) -> Sample:
    """`mirror_sample` for left hands; right hands are returned unchanged."""
    return mirror_sample(sample, width) if sample.side == "left" else sample


def stb_sample_to_wrist(sample: Sample) -> Sample:
    """A palm-rooted sample (STB) with joint 0 replaced by the extrapolated wrist.

    xyz via `stb_palm_to_wrist`; uv[0] re-projected with K; ``root = "wrist"``,
    ``extra["root_converted"] = "palm->wrist"``. Wrist-rooted samples are returned unchanged.
    """
    if sample.root == "wrist":
        return sample
    xyz = stb_palm_to_wrist(sample.xyz)
    K = np.asarray(sample.K, dtype=np.float64)
    uvw = xyz[WRIST] @ K.T
    uv = np.array(sample.uv, dtype=np.float64)
    uv[WRIST] = uvw[:2] / uvw[2]
    extra = dict(sample.extra)
    extra["root_converted"] = "palm->wrist"
    return dataclasses.replace(sample, xyz=xyz, uv=uv, root="wrist", extra=extra)


# ---------------------------------------------------------------- a fixed demo hand (tests, demos)


def template_hand(side: str = "right") -> np.ndarray:
    """A plausible open hand, (21, 3) metres, FreiHAND order, local frame with the wrist at
    the origin: fingers towards -y (image up), back of the hand towards -z (the camera),
    so a right hand has its thumb at x < 0 and its pinky at x > 0. Fingers curl slightly
    (z grows along each finger) so the joints are not coplanar. Left = `mirror_xyz(right)`.

    Bone lengths (MCP->PIP->DIP->tip): thumb 40/32/28 mm, others ~45/27/22 mm; middle
    MCP->PIP = 45 mm. For tests and demos, not a statistical model.
    """
    if side not in ("left", "right"):
        raise HcdgError(f"template_hand: side must be 'left' or 'right', got {side!r}")
    # (MCP position, unit direction in the x-y plane, phalanx lengths) per finger.
    fingers = [
        ((-0.030, -0.030), (-0.60, -0.80), (0.040, 0.032, 0.028)),  # thumb
        ((-0.022, -0.090), (-0.10, -1.00), (0.043, 0.025, 0.021)),  # index
        ((0.000, -0.095), (0.00, -1.00), (0.045, 0.028, 0.023)),  # middle
        ((0.020, -0.090), (0.12, -1.00), (0.042, 0.027, 0.022)),  # ring
        ((0.038, -0.080), (0.25, -1.00), (0.033, 0.020, 0.019)),  # pinky
    ]
    xyz = np.zeros((N_JOINTS, 3))
    for f, ((mx, my), (dx, dy), lengths) in enumerate(fingers):
        d = np.array([dx, dy, 0.0]) / np.hypot(dx, dy)
        p = np.array([mx, my, 0.004 * f])
        xyz[1 + 4 * f] = p
        for k, length in enumerate(lengths):
            step = d * np.cos(0.25 * (k + 1)) + np.array([0.0, 0.0, np.sin(0.25 * (k + 1))])
            p = p + length * step
            xyz[2 + 4 * f + k] = p
    return mirror_xyz(xyz) if side == "left" else xyz
