"""hand3d's canonical hand frame and its inverse (Zimmermann & Brox 2017; docs/sources.md#canonical-frame).

Row-vector convention throughout: points are rows, a rotation acts as ``x @ M``.

Forward (`to_canonical`), for joints ``xyz: (..., 21, 3)`` in FreiHAND order:

1. ``root = xyz[..., 0, :]`` (joint 0: the wrist, or STB's palm if not converted);
2. ``scale = ||xyz[10] - xyz[9]||`` (middle MCP -> PIP, hand3d's "index root bone"
   = RHD joints 12 -> 11), ``rel_norm = (xyz - root) / scale``;
3. ``canon = rel_norm @ M`` with M the one rotation that puts the middle MCP (9) on
   the -y axis and the pinky MCP (17) in the z = 0 plane with x > 0 (hand3d's
   `canonical_trafo`: ALIGN_NODE = middle MCP at (0, -D, 0), ROT_NODE = pinky MCP
   at z = 0, x > 0);
4. right hands get z negated (`flip`, hand3d's `flip_right_hand`), so every hand looks
   like a left hand in this frame: ``canon_flipped``.

The rotation the ViewPoint stream predicts is the inverse of M, ``R = M.T``, so

    rel_norm = flip(canon_flipped) @ R,    xyz = rel_norm * scale + root.

Also here, for the model: `flip_torch` and `axis_angle_to_matrix` (Rodrigues, torch).
"""

from __future__ import annotations

import numpy as np
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.hands import bone_scale_batched
from hcdg.pipeline.joints import MIDDLE_MCP, N_JOINTS, PINKY_MCP, WRIST

#: Lengths/areas below this (metres, or units of `rel_norm`) are treated as degenerate.
_EPS = 1e-9


def _check_joints(xyz: np.ndarray, name: str = "xyz") -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim < 2 or xyz.shape[-2:] != (N_JOINTS, 3):
        raise HcdgError(f"{name}: expected shape (..., {N_JOINTS}, 3), got {xyz.shape}")
    return xyz


def _right_mask(is_right: bool | np.ndarray, batch_shape: tuple[int, ...]) -> np.ndarray:
    """`is_right` broadcast to `batch_shape` (bool)."""
    mask = np.asarray(is_right, dtype=bool)
    try:
        return np.broadcast_to(mask, batch_shape)
    except ValueError:
        raise HcdgError(
            f"is_right: expected a bool or an array broadcastable to {batch_shape}, got shape {mask.shape}"
        ) from None


def flip(xyz: np.ndarray, is_right: bool | np.ndarray) -> np.ndarray:
    """Negate z of right hands (hand3d's `flip_right_hand`); its own inverse.

    Args:
        xyz: (..., 21, 3) canonical coordinates.
        is_right: bool, or (...,) bool array: which hands are right hands.
    Returns:
        (..., 21, 3) float64 copy with z negated where `is_right`.
    """
    xyz = _check_joints(xyz)
    mask = _right_mask(is_right, xyz.shape[:-2])
    sign = np.where(mask, -1.0, 1.0)[..., None]
    out = xyz.copy()
    out[..., 2] *= sign
    return out


def canonical_rotation(rel: np.ndarray) -> np.ndarray:
    """The rotation M (..., 3, 3) with ``(rel @ M)[9] = (0, -|rel[9]|, 0)`` and
    ``(rel @ M)[17] = (x > 0, y, 0)``, for root-relative joints `rel` (..., 21, 3).

    Built from an orthonormal basis: the columns of M are the canonical axes
    expressed in the input frame: ``e_y = -rel[9] / |rel[9]|``, ``e_x`` = the part
    of ``rel[17]`` orthogonal to ``e_y``, normalised, ``e_z = e_x x e_y``; so
    det(M) = +1 and the result equals hand3d's three-angle construction.
    """
    rel = _check_joints(rel, "rel")
    p_mid = rel[..., MIDDLE_MCP, :]
    p_pinky = rel[..., PINKY_MCP, :]
    n_mid = np.linalg.norm(p_mid, axis=-1, keepdims=True)
    if np.any(n_mid < _EPS):
        raise HcdgError("canonical frame: the middle MCP (joint 9) coincides with the root (joint 0)")
    e_y = -p_mid / n_mid
    e_x = p_pinky - np.sum(p_pinky * e_y, axis=-1, keepdims=True) * e_y
    n_x = np.linalg.norm(e_x, axis=-1, keepdims=True)
    if np.any(n_x < _EPS * np.maximum(1.0, n_mid)):
        raise HcdgError("canonical frame: the pinky MCP (joint 17) is collinear with root and middle MCP")
    e_x = e_x / n_x
    e_z = np.cross(e_x, e_y)
    return np.stack([e_x, e_y, e_z], axis=-1)


def to_canonical(
    xyz: np.ndarray, is_right: bool | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame joints -> hand3d's flipped canonical frame.

    Args:
        xyz: (..., 21, 3) joints, FreiHAND order, any length unit (metres in hcdg).
        is_right: bool or (...,) bool: right hands get z negated after the rotation.
    Returns:
        canon_flipped: (..., 21, 3) canonical coordinates (unit: middle MCP->PIP lengths).
        R: (..., 3, 3) rotation, ``R = M.T``, with ``rel_norm = flip(canon_flipped) @ R``.
        scale: (...,) middle MCP->PIP bone length, unit of `xyz`.
        root: (..., 3) joint 0.
    Raises:
        HcdgError: wrong shape or a degenerate hand (zero bone, collinear reference joints).
    """
    xyz = _check_joints(xyz)
    root = xyz[..., WRIST, :]
    scale = bone_scale_batched(xyz)
    if np.any(scale < _EPS):
        raise HcdgError("canonical frame: the middle MCP->PIP bone (joints 9->10) has zero length")
    rel_norm = (xyz - root[..., None, :]) / scale[..., None, None]
    M = canonical_rotation(rel_norm)
    canon = rel_norm @ M
    canon_flipped = flip(canon, is_right)
    return canon_flipped, np.swapaxes(M, -1, -2), scale, root


def from_canonical(
    canon_flipped: np.ndarray,
    R: np.ndarray,
    is_right: bool | np.ndarray,
    scale: float | np.ndarray = 1.0,
    root: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Inverse of `to_canonical`: ``(flip(canon_flipped) @ R) * scale + root``.

    Args:
        canon_flipped: (..., 21, 3); R: (..., 3, 3); is_right: bool or (...,);
        scale: scalar or (...,) bone length; root: scalar or (..., 3) (or (3,)) root position.
    Returns:
        (..., 21, 3) float64 joints in the camera frame (root-relative and normalised
        with the defaults scale=1, root=0, i.e. `rel_norm`).
    """
    canon_flipped = _check_joints(canon_flipped, "canon_flipped")
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise HcdgError(f"R: expected shape (..., 3, 3), got {R.shape}")
    rel_norm = flip(canon_flipped, is_right) @ R
    scale = np.asarray(scale, dtype=np.float64)
    root = np.asarray(root, dtype=np.float64)
    if root.ndim >= 1:
        root = root[..., None, :]
    return rel_norm * scale[..., None, None] + root


# ---------------------------------------------------------------- torch versions (for the model)


def flip_torch(xyz: torch.Tensor, is_right: torch.Tensor) -> torch.Tensor:
    """Torch `flip`: negate z where `is_right`; differentiable, its own inverse.

    Args:
        xyz: (B, 21, 3) (any (B, N, 3)).
        is_right: (B,) bool / {0,1} float, or the (B, 2) one-hot hand side [left, right]
            (column 1 is used).
    Returns:
        (B, N, 3) tensor, same dtype/device.
    """
    if is_right.ndim == 2 and is_right.shape[-1] == 2:
        is_right = is_right[:, 1]
    right = is_right.to(device=xyz.device).reshape(-1).bool()
    if right.shape[0] != xyz.shape[0]:
        raise HcdgError(f"flip_torch: is_right has {right.shape[0]} entries for a batch of {xyz.shape[0]}")
    sign = torch.ones(xyz.shape[0], 1, 3, dtype=xyz.dtype, device=xyz.device)
    sign[:, 0, 2] = torch.where(right, -1.0, 1.0).to(xyz.dtype)
    return xyz * sign


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle vectors (B, 3) -> rotation matrices (B, 3, 3).

    ``R = I + sin(t)/t [v]x + (1 - cos(t))/t^2 [v]x^2`` with ``t = |v|``; ``R @ p``
    rotates the column vector p by t radians, right-handed, about v (so
    ``p_row @ R`` rotates by -t). Small angles use the Taylor series, so the value
    and its gradient are finite at v = 0 (where R = I).
    """
    if axis_angle.ndim != 2 or axis_angle.shape[-1] != 3:
        raise HcdgError(f"axis_angle_to_matrix: expected shape (B, 3), got {tuple(axis_angle.shape)}")
    v = axis_angle
    t2 = (v * v).sum(-1)  # (B,)
    small = t2 < 1e-8
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t_safe = torch.sqrt(t2_safe)
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t_safe) / t_safe)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t_safe)) / t2_safe)
    zero = torch.zeros_like(v[:, 0])
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(K)
    return eye + a[:, None, None] * K + b[:, None, None] * (K @ K)
