"""Pinhole camera, hand crop boxes, image <-> crop affine maps, crop warping, heatmaps.

Pixel convention (all of hcdg): continuous coordinates with pixel *centres* at
integers, pixel ``i`` covering ``[i - 0.5, i + 0.5)`` -- the convention in which
``uv = project(xyz, K)`` is read for FreiHAND/RHD/STB intrinsics. An image of
width W spans ``[-0.5, W - 0.5]``.

Affine maps are (3, 3) homogeneous matrices acting on column vectors ``[u, v, 1]``:
``crop_uv = apply_affine(crop_from_image, image_uv)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import MIDDLE_MCP

#: hand3d's smallest crop side in image pixels (`BinaryDbReader`: crop size clipped to >= 50 px).
MIN_CROP_SIDE_PX = 50.0


# ---------------------------------------------------------------- pinhole camera


def _align_K(K: np.ndarray, n_batch: int) -> np.ndarray:
    """Insert axes after K's batch dims so (B, 3, 3) broadcasts against points (B, N, 3)."""
    extra = n_batch - (K.ndim - 2)
    if K.ndim == 2 or extra <= 0:
        return K
    return K.reshape(K.shape[:-2] + (1,) * extra + (3, 3))


def project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project camera-frame points to pixels: ``uv = (K @ xyz)[:2] / z``.

    Args:
        xyz: (..., 3) points (any length unit), z > 0 in front of the camera.
        K: (3, 3) intrinsics, or (B, 3, 3) matching `xyz`'s leading dims
            (e.g. (B, 3, 3) for (B, 21, 3) or (B, 3) points).
    Returns:
        (..., 2) float64 pixel coordinates. Points with z = 0 give inf/nan.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if xyz.shape[-1] != 3 or K.shape[-2:] != (3, 3):
        raise HcdgError(f"project: expected xyz (..., 3) and K (..., 3, 3), got {xyz.shape} and {K.shape}")
    uvw = np.einsum("...ij,...j->...i", _align_K(K, xyz.ndim - 1), xyz)
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[..., :2] / uvw[..., 2:3]


def backproject(uv: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Inverse of `project` at known depth: ``xyz = z * K^-1 [u, v, 1]``.

    Args:
        uv: (..., 2) pixels; z: (...) depths (broadcastable); K: (3, 3) or (..., 3, 3).
    Returns:
        (..., 3) float64 camera-frame points, unit of `z`.
    """
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if uv.shape[-1] != 2 or K.shape[-2:] != (3, 3):
        raise HcdgError(f"backproject: expected uv (..., 2) and K (..., 3, 3), got {uv.shape} and {K.shape}")
    uv1 = np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1)
    rays = np.einsum("...ij,...j->...i", _align_K(np.linalg.inv(K), uv.ndim - 1), uv1)
    return rays * z[..., None]


# ---------------------------------------------------------------- crop boxes and affine maps


@dataclass(frozen=True)
class CropBox:
    """A square crop in image pixels: centre (cx, cy) and side length, all float."""

    cx: float
    cy: float
    side: float

    @classmethod
    def from_xywh(cls, xywh: np.ndarray | tuple[float, float, float, float]) -> "CropBox":
        """From [x, y, w, h] (top-left corner edge, size), e.g. the authors' released test boxes
        (`realdata/seed-bboxes/*.npy`, square). A non-square box becomes the square of side max(w, h)
        with the same centre."""
        x, y, w, h = (float(t) for t in np.asarray(xywh, dtype=np.float64).reshape(4))
        if not (w > 0 and h > 0):
            raise HcdgError(f"CropBox.from_xywh: width and height must be > 0, got w={w}, h={h}")
        return cls(cx=x + w / 2.0, cy=y + h / 2.0, side=max(w, h))

    def to_xywh(self) -> np.ndarray:
        """[x, y, w, h] with (x, y) the top-left edge."""
        return np.array([self.cx - self.side / 2, self.cy - self.side / 2, self.side, self.side])


def crop_box(
    uv: np.ndarray,
    visible: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    scale: float = 1.0,
    min_side: float = MIN_CROP_SIDE_PX,
    image_size: tuple[int, int] | None = None,
) -> CropBox:
    """hand3d's hand crop: a square centred on the middle MCP (or `centre`) whose side is
    ``scale * 2 * max(|u - cx|, |v - cy|)`` over the visible keypoints, at least `min_side`.

    With ``scale = 1`` the farthest visible keypoint lies on the crop border (hand3d's
    `BinaryDbReader`, hand_crop=True). Keypoints are clipped to the image first when
    `image_size` is given (as hand3d does), so off-image joints do not inflate the box.

    Args:
        uv: (21, 2) pixels. visible: (21,) bool (None = all); if none is visible all are used.
        centre: (2,) pixel centre; default uv[9] (middle MCP).
        scale: side multiplier (1 = hand3d; the paper authors' STB test boxes are ~2.5x this,
            see docs/geometry.md).
        min_side: smallest side in pixels (hand3d: 50).
        image_size: (height, width) to clip keypoints to, or None.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise HcdgError(f"crop_box: expected uv of shape (N, 2), got {uv.shape}")
    vis = np.ones(len(uv), bool) if visible is None else np.asarray(visible, bool).reshape(-1)
    if vis.shape[0] != uv.shape[0]:
        raise HcdgError(f"crop_box: visible has {vis.shape[0]} entries for {uv.shape[0]} keypoints")
    pts = uv[vis & np.all(np.isfinite(uv), axis=1)]
    if len(pts) == 0:
        pts = uv[np.all(np.isfinite(uv), axis=1)]
    if len(pts) == 0:
        raise HcdgError("crop_box: no finite keypoint to build a crop from")
    c = uv[MIDDLE_MCP] if centre is None else np.asarray(centre, dtype=np.float64).reshape(2)
    if not np.all(np.isfinite(c)):
        c = 0.5 * (pts.min(0) + pts.max(0))
    if image_size is not None:
        h, w = image_size
        pts = np.clip(pts, [-0.5, -0.5], [w - 0.5, h - 0.5])
    half = float(np.max(np.abs(pts - c))) if len(pts) else 0.0
    side = max(2.0 * half * float(scale), float(min_side))
    return CropBox(cx=float(c[0]), cy=float(c[1]), side=side)


def crop_from_box(box: CropBox, size: int) -> np.ndarray:
    """(3, 3) affine image -> crop of `size` x `size` pixels: the box's edges go to the crop's
    edges, ``u_crop = (u - cx) * size / side + (size - 1) / 2`` (same for v)."""
    if not box.side > 0:
        raise HcdgError(f"crop_from_box: crop side must be > 0, got {box.side}")
    s = size / box.side
    c = (size - 1) / 2.0
    return np.array([[s, 0.0, c - s * box.cx], [0.0, s, c - s * box.cy], [0.0, 0.0, 1.0]])


def rotation_about(angle_rad: float, centre: np.ndarray) -> np.ndarray:
    """(3, 3) pixel rotation by `angle_rad` about `centre` (2,): ``p' = Rot (p - c) + c``,
    ``Rot = [[cos, -sin], [sin, cos]]`` (counter-clockwise on screen is negative, as v points down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    cx, cy = np.asarray(centre, dtype=np.float64).reshape(2)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t_in = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    t_out = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    return t_out @ rot @ t_in


def affine_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of a (3, 3) affine map (last row [0, 0, 1])."""
    A = np.asarray(A, dtype=np.float64)
    if A.shape != (3, 3):
        raise HcdgError(f"affine_inverse: expected a (3, 3) matrix, got {A.shape}")
    L = A[:2, :2]
    if abs(np.linalg.det(L)) < 1e-12:
        raise HcdgError("affine_inverse: the affine map is singular")
    Li = np.linalg.inv(L)
    out = np.eye(3)
    out[:2, :2] = Li
    out[:2, 2] = -Li @ A[:2, 2]
    return out


def apply_affine(A: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) affine map to (..., 2) pixel coordinates."""
    A = np.asarray(A, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    return uv @ A[:2, :2].T + A[:2, 2]


def warp_to_crop(image: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """Resample `image` (H, W, 3) uint8 into a `size` x `size` crop: crop pixel p shows the
    image at ``A^-1 p`` (bilinear; outside the image -> 0, black, as hand3d's crop).

    Uses PIL's C affine transform: on a 640x480 image -> 256 crop it took ~2 ms against
    ~2.2 ms for torch `grid_sample` (float round trip) and ~8 ms for scipy `map_coordinates`
    on the dev machine, and it stays in uint8 (docs/geometry.md). PIL places pixel centres
    at +0.5, so the map is shifted by half a pixel on both sides. No anti-aliasing when
    shrinking (same for the alternatives).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise HcdgError(f"warp_to_crop: expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    B = affine_inverse(A)  # crop -> image, integer-centre convention
    a, b, c = B[0]
    d, e, f = B[1]
    data = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    out = Image.fromarray(img).transform(
        (int(size), int(size)), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=0
    )
    return np.asarray(out)


# ---------------------------------------------------------------- heatmaps


def crop_to_heatmap(uv_crop: np.ndarray, input_size: int, heatmap_size: int) -> np.ndarray:
    """Crop pixels -> heatmap pixels (both integer-centred, same field of view):
    ``uv_hm = (uv_crop + 0.5) * heatmap_size / input_size - 0.5``."""
    r = heatmap_size / input_size
    return (np.asarray(uv_crop, dtype=np.float64) + 0.5) * r - 0.5


def heatmap_to_crop(uv_hm: np.ndarray, input_size: int, heatmap_size: int) -> np.ndarray:
    """Inverse of `crop_to_heatmap`."""
    r = input_size / heatmap_size
    return (np.asarray(uv_hm, dtype=np.float64) + 0.5) * r - 0.5


#: Target Gaussian formulas: exp(-d^2 / (2 sigma^2)) (sigma a standard deviation) and
#: exp(-d^2 / sigma^2) (hand3d utils/general.py, the paper authors' preprocessing.py:88).
GAUSSIANS = ("exp-d2-2s2", "exp-d2-s2")


def gaussian_denominator(sigma_px: float, gaussian: str, where: str = "gaussian") -> float:
    """c in exp(-d^2 / c) for `gaussian` (one of `GAUSSIANS`): 2 sigma^2 or sigma^2."""
    if gaussian not in GAUSSIANS:
        raise HcdgError(f"{where}: gaussian must be 'exp-d2-2s2' or 'exp-d2-s2', got {gaussian!r}")
    return (2.0 if gaussian == "exp-d2-2s2" else 1.0) * float(sigma_px) ** 2


def gaussian_heatmaps(
    uv_hm: np.ndarray, size: int, sigma_px: float, visible: np.ndarray | None = None,
    gaussian: str = "exp-d2-2s2",
) -> np.ndarray:
    """One unnormalised Gaussian per keypoint at every heatmap pixel centre, d = distance
    to the keypoint (peak 1 at the keypoint itself): ``exp(-d^2 / (2 sigma^2))``
    (gaussian="exp-d2-2s2", sigma a standard deviation) or ``exp(-d^2 / sigma^2)``
    (gaussian="exp-d2-s2", hand3d utils/general.py and the paper authors' code).

    Args:
        uv_hm: (J, 2) keypoints in heatmap pixels (`crop_to_heatmap`).
        size: heatmap side in pixels (32 for a 256 crop, paper Table 1).
        sigma_px: sigma in *heatmap* pixels (the authors' 10 px on the 256 crop = 1.25
            heatmap px; hand3d used 25 px; both with "exp-d2-s2"; docs/sources.md#heatmaps-and-crop).
        visible: (J,) bool; invisible or non-finite keypoints get an all-zero map.
    Returns:
        (J, size, size) float32, indexed [joint, v, u].
    """
    uv_hm = np.asarray(uv_hm, dtype=np.float64)
    if uv_hm.ndim != 2 or uv_hm.shape[1] != 2:
        raise HcdgError(f"gaussian_heatmaps: expected uv_hm of shape (J, 2), got {uv_hm.shape}")
    if not sigma_px > 0:
        raise HcdgError(f"gaussian_heatmaps: sigma_px must be > 0, got {sigma_px}")
    denom = gaussian_denominator(sigma_px, gaussian, "gaussian_heatmaps")
    vis = np.ones(len(uv_hm), bool) if visible is None else np.asarray(visible, bool).reshape(-1)
    vis = vis & np.all(np.isfinite(uv_hm), axis=1)
    grid = np.arange(size, dtype=np.float64)
    uv = np.where(vis[:, None], uv_hm, 0.0)
    # separable: exp(-(du^2 + dv^2) / c) = exp(-dv^2 / c) exp(-du^2 / c)
    gu = np.exp(-((grid[None, :] - uv[:, :1]) ** 2) / denom)  # (J, size) over u
    gv = np.exp(-((grid[None, :] - uv[:, 1:2]) ** 2) / denom)  # (J, size) over v
    maps = gv[:, :, None] * gu[:, None, :]
    maps[~vis] = 0.0
    return maps.astype(np.float32)


def heatmap_argmax(heatmaps: np.ndarray) -> np.ndarray:
    """(J, H, W) -> (J, 2) integer (u, v) of each map's maximum, as float64 heatmap pixels."""
    hm = np.asarray(heatmaps)
    if hm.ndim != 3:
        raise HcdgError(f"heatmap_argmax: expected (J, H, W), got {hm.shape}")
    flat = hm.reshape(hm.shape[0], -1).argmax(axis=1)
    v, u = np.unravel_index(flat, hm.shape[1:])
    return np.stack([u, v], axis=1).astype(np.float64)
