"""The one sample -> network-input transform shared by training and evaluation.

`prepare(sample, cfg, aug, rng)`:

1. left hands are mirrored to right hands (`hands.mirror_sample`: image, x -> -x, K);
2. a square crop box around the hand from the ground-truth keypoints (hand3d's rule,
   `camera.crop_box`), or a given box (e.g. the authors' released test boxes);
3. optional random scale / in-plane rotation / translation, folded into the one
   affine map image -> crop;
4. the image is warped once (`camera.warp_to_crop`), heatmaps are drawn at the
   transformed keypoints, and the 3D targets are expressed in the camera that "took"
   the crop.

In-plane rotation and 3D. Rotating the crop is rotating the camera about its optical
axis: a camera rolled by angle t sees the points ``xyz_rot = xyz @ Rz(t).T`` (z
unchanged), whose pixels are ``P(uv)`` with the affine pixel map
``P = K Rz(t) K^-1`` (exact for any K; a pure rotation about the principal point
when fx = fy and there is no skew). So the image is warped with ``C @ P`` (C = scale
and translate into the crop) and the 3D targets are rotated by ``Rz(t)``: then
``project(xyz_m, K_crop) == uv_crop`` with ``K_crop = C @ K`` -- 2D and 3D agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from hcdg.pipeline import camera, hands
from hcdg.pipeline.camera import CropBox
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError


@dataclass(frozen=True)
class CropConfig:
    """How a hand becomes a network input.

    Attributes:
        input_size: crop side in pixels; 256 (paper §3: "256 x 256 x 3-sized single RGB image").
        heatmap_size: heatmap side; None -> input_size // 8 = 32 (paper Table 1: 21 x 32 x 32;
            hand3d's PoseNet pools three times).
        sigma_px: sigma of the target heatmaps in *input-crop* pixels. 10 px = the paper
            authors' code (docs/sources.md#heatmaps-and-crop); hand3d used 25 px. On the 32 heatmap: 10 * 32/256 = 1.25 px.
        gaussian: the formula sigma enters: "exp-d2-2s2" = exp(-d^2/(2 sigma^2)) (sigma a standard
            deviation; hcdg before 2026-12 and the default, docs/model.md) or "exp-d2-s2" =
            exp(-d^2/sigma^2) (hand3d and the authors: their 10 px is a std of 10/sqrt(2) = 7.1 px).
        crop_scale: multiplier on hand3d's crop side (2 x the largest distance of a visible
            keypoint from the middle MCP). 1.0 = hand3d (farthest keypoint on the border). The
            authors' STB test boxes are ~2.5x this (median; docs/geometry.md), so a run evaluated
            on those boxes may want a larger value.
        min_side_px: smallest crop side in image pixels; 50 = hand3d's clip.
    """

    input_size: int = 256
    heatmap_size: int | None = None
    sigma_px: float = 10.0
    gaussian: str = "exp-d2-2s2"
    crop_scale: float = 1.0
    min_side_px: float = camera.MIN_CROP_SIDE_PX

    def __post_init__(self) -> None:
        if self.heatmap_size is None:
            object.__setattr__(self, "heatmap_size", self.input_size // 8)
        if self.input_size <= 0 or self.heatmap_size <= 0:
            raise ValueError(f"input_size and heatmap_size must be > 0, got {self.input_size}, {self.heatmap_size}")
        if not (self.sigma_px > 0 and self.crop_scale > 0 and self.min_side_px > 0):
            raise ValueError("sigma_px, crop_scale and min_side_px must be > 0")
        if self.gaussian not in camera.GAUSSIANS:
            raise ValueError(f"gaussian must be 'exp-d2-2s2' or 'exp-d2-s2', got {self.gaussian!r}")

    @property
    def sigma_heatmap_px(self) -> float:
        """`sigma_px` in heatmap pixels (1.25 with the defaults)."""
        return self.sigma_px * self.heatmap_size / self.input_size


@dataclass(frozen=True)
class GeomAug:
    """Random geometric augmentation of the crop, each drawn uniformly.

    hand3d's PoseNet training (`training_posenet.py`) only jittered the crop centre
    (N(0, 20 px), box grown to keep every keypoint) and the 2D labels (N(0, 2.5 px)); no
    scale or rotation. The paper does not state its training augmentation. The defaults follow the common hand/body-mesh practice of Moon et al.
    (I2L-MeshNet/Pose2Pose `get_aug_config`: scale 1 +- 0.25, rotation with a 30 deg scale),
    drawn uniformly here so the range is explicit.

    Attributes:
        scale_range: (lo, hi) multiplier of the crop side (>1 zooms out).
        rotation_deg: in-plane rotation drawn in [-rotation_deg, +rotation_deg] degrees
            (a camera roll: the 3D targets rotate with it, see module docs).
        translation_frac: box centre shift drawn in [-f, f] x crop side, per axis
            (f = 0.1: ~ hand3d's centre noise, 20 px on crops of ~100-256 px).
    """

    scale_range: tuple[float, float] = (0.75, 1.25)
    rotation_deg: float = 30.0
    translation_frac: float = 0.1

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not (0 < lo <= hi):
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {self.scale_range}")
        if self.rotation_deg < 0 or self.translation_frac < 0:
            raise ValueError("rotation_deg and translation_frac must be >= 0")


class GeomParams(NamedTuple):
    """One draw of `GeomAug`: crop side multiplier, roll in degrees, centre shift in crop sides (x, y).

    `draw_geom` draws it; a stored augmented view (`hcdg embed --views K`) replays it.
    """

    scale: float
    rotation_deg: float
    shift_x_frac: float
    shift_y_frac: float


def draw_geom(aug: GeomAug, rng: np.random.Generator) -> GeomParams:
    """One random `GeomParams` from `aug`, drawn from `rng` in the order scale, rotation, shift (x, y)."""
    scale_f = rng.uniform(*aug.scale_range)
    angle_deg = rng.uniform(-aug.rotation_deg, aug.rotation_deg)
    shift = rng.uniform(-aug.translation_frac, aug.translation_frac, size=2)
    return GeomParams(scale_f, angle_deg, shift[0], shift[1])


def camera_roll(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation about the optical axis z (column convention): ``xyz_rot = xyz @ Rz.T``."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def roll_pixel_map(K: np.ndarray, angle_rad: float) -> np.ndarray:
    """(3, 3) affine pixel map of a camera roll: ``P = K Rz K^-1`` (``project(xyz @ Rz.T, K) = P uv``)."""
    K = np.asarray(K, dtype=np.float64)
    P = K @ camera_roll(angle_rad) @ np.linalg.inv(K)
    P[2] = (0.0, 0.0, 1.0)  # exact affine (removes round-off in the last row)
    return P


def _keypoint_box(uv: np.ndarray, visible: np.ndarray, cfg: CropConfig, image_hw: tuple[int, int]) -> CropBox:
    return camera.crop_box(uv, visible, scale=cfg.crop_scale, min_side=cfg.min_side_px, image_size=image_hw)


def hand_box(sample: Sample, cfg: CropConfig, image_hw: tuple[int, int]) -> CropBox:
    """The box `prepare` crops when given none: hand3d's keypoint box (`camera.crop_box`, with
    `cfg.crop_scale` and `cfg.min_side_px`) in the frame of the image after mirroring a left hand.

    Args:
        sample: an annotated sample (its image is not read). image_hw: (H, W) of its image.
    """
    H, W = image_hw
    s = hands.mirror_sample(dataclasses.replace(sample, image=None), width=W) if sample.side == "left" else sample
    return _keypoint_box(np.asarray(s.uv, dtype=np.float64), np.asarray(s.visible, bool).reshape(-1), cfg, (H, W))


def prepare(
    sample: Sample,
    cfg: CropConfig,
    aug: GeomAug | None = None,
    rng: np.random.Generator | None = None,
    box: CropBox | None = None,
    crop_from_image: np.ndarray | None = None,
    render: bool = True,
    roll_rad: float = 0.0,
    params: GeomParams | None = None,
) -> dict[str, Any]:
    """One sample -> the network's input and targets (docs/geometry.md).

    Args:
        sample: a Sample with its image loaded (uint8 RGB), any side.
        cfg: crop geometry. aug: random geometric augmentation, or None (evaluation).
        rng: the random stream for `aug` (unused when aug is None).
        box: a fixed crop box in the pixel frame of the image *after mirroring* (the frame
            the authors' released STB boxes use), instead of hand3d's keypoint box.
        crop_from_image: a fixed (3, 3) image -> crop affine in that frame (e.g. the authors'
            exact test crop, `authors.crop_from_xywh`), instead of a box; no augmentation.
        render: False = skip the warp and the heatmaps ("image" and "heatmaps" are None; the
            caller warps with ``crop_from_image @ image_from_original``, e.g. `pipeline.device_aug`).
        roll_rad: a fixed camera roll (radians; no augmentation), e.g. a test-time rotation: the
            crop turns about the box centre (for `crop_from_image`, the image point at the crop
            centre stays there) and the 3D targets rotate with it, as under `aug`.
        params: a given draw of the augmentation (`GeomParams`, e.g. a stored view) instead of
            drawing one from `aug` and `rng`.
    Returns:
        dict of numpy arrays:
        image (3, S, S) float32 in [0, 1]; heatmaps (21, S/8, S/8) float32;
        xyz_rel_norm (21, 3) float32 ((xyz_m - root) / bone); bone_scale_m float;
        root_xyz_m (3,); xyz_m (21, 3) camera frame after mirroring (and after the
        augmentation's camera roll, if any); K (3, 3) the full image's intrinsics after
        mirroring; K_crop (3, 3) with ``project(xyz_m, K_crop) == uv_crop``;
        crop_from_image (3, 3) mirrored full image -> crop pixels (includes the roll);
        image_from_original (3, 3) original -> mirrored image pixels (identity if not
        mirrored); rot_aug (3, 3) the roll (``xyz_m = xyz @ rot_aug.T``); uv_crop (21, 2);
        visible (21,) bool; in_crop (21,) bool (uv_crop inside the crop); hand_side (2,)
        float32 one-hot [left, right] = [0, 1]; mirrored bool; sample_id str.
    """
    if sample.image is None:
        raise HcdgError(f"prepare({sample.dataset}/{sample.sample_id}): the sample has no image loaded")
    image = np.asarray(sample.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise HcdgError(
            f"prepare({sample.dataset}/{sample.sample_id}): expected an (H, W, 3) uint8 image, "
            f"got {image.shape} {image.dtype}"
        )
    H, W = image.shape[:2]
    mirrored = sample.side == "left"
    # mirror the annotation only; the image flip is folded into the warp (one resampling, no copy)
    s = hands.mirror_sample(dataclasses.replace(sample, image=None), width=W) if mirrored else sample
    image_from_original = hands.mirror_affine(W) if mirrored else np.eye(3)

    K = np.asarray(s.K, dtype=np.float64)
    uv = np.asarray(s.uv, dtype=np.float64)
    xyz = np.asarray(s.xyz, dtype=np.float64)
    visible = np.asarray(s.visible, dtype=bool).reshape(-1)

    if crop_from_image is not None and (aug is not None or box is not None or params is not None):
        raise HcdgError("prepare: a fixed crop_from_image excludes a box and augmentation")
    if roll_rad and (aug is not None or params is not None):
        raise HcdgError("prepare: a fixed roll excludes augmentation")
    if box is None:
        box = _keypoint_box(uv, visible, cfg, (H, W))
    cx, cy, side = box.cx, box.cy, box.side
    roll = np.eye(3)
    P = np.eye(3)
    if aug is not None and params is None:
        if rng is None:
            raise HcdgError("prepare: an augmentation was given without a random generator (rng)")
        params = draw_geom(aug, rng)
    if params is not None:
        angle = np.deg2rad(params.rotation_deg)
        shift = np.array([params.shift_x_frac, params.shift_y_frac], dtype=np.float64) * side
        cx, cy, side = cx + shift[0], cy + shift[1], side * params.scale
        roll = camera_roll(angle)
        P = roll_pixel_map(K, angle)
    elif roll_rad:
        roll = camera_roll(roll_rad)
        P = roll_pixel_map(K, roll_rad)
    if crop_from_image is None:
        centre_rolled = camera.apply_affine(P, np.array([cx, cy]))
        C = camera.crop_from_box(CropBox(float(centre_rolled[0]), float(centre_rolled[1]), side), cfg.input_size)
        crop_from_image = C @ P
    else:
        C = crop_from_image = np.asarray(crop_from_image, dtype=np.float64)
        if roll_rad:  # keep the image point at the crop centre in place: C moves to the rolled centre
            mid = (cfg.input_size - 1) / 2.0
            c = camera.apply_affine(camera.affine_inverse(C), np.array([mid, mid]))
            shift = np.eye(3)
            shift[:2, 2] = c - camera.apply_affine(P, c)
            C = C @ shift
            crop_from_image = C @ P
    K_crop = C @ K

    warp = crop_from_image @ image_from_original
    crop = camera.warp_to_crop(image, warp, cfg.input_size) if render else None
    uv_crop = camera.apply_affine(crop_from_image, uv)
    uv_hm = camera.crop_to_heatmap(uv_crop, cfg.input_size, cfg.heatmap_size)
    heatmaps = (camera.gaussian_heatmaps(uv_hm, cfg.heatmap_size, cfg.sigma_heatmap_px, visible, cfg.gaussian)
                if render else None)
    tol = 1e-6  # hand3d's box puts the farthest keypoint exactly on the border: count it in
    in_crop = np.all((uv_crop >= -0.5 - tol) & (uv_crop <= cfg.input_size - 0.5 + tol), axis=1)

    xyz_m = xyz @ roll.T
    bone = hands.bone_scale(xyz_m)
    if not bone > 0:
        raise HcdgError(f"prepare({sample.dataset}/{sample.sample_id}): middle MCP->PIP bone has zero length")
    root = xyz_m[0].copy()
    return {
        "image": None if crop is None else np.multiply(crop.transpose(2, 0, 1), np.float32(1.0 / 255.0),
                                                       dtype=np.float32, order="C"),
        "heatmaps": heatmaps,
        "xyz_rel_norm": ((xyz_m - root) / bone).astype(np.float32),
        "bone_scale_m": bone,
        "root_xyz_m": root,
        "xyz_m": xyz_m,
        "K": K,
        "K_crop": K_crop,
        "crop_from_image": crop_from_image,
        "image_from_original": image_from_original,
        "rot_aug": roll,
        "uv_crop": uv_crop,
        "visible": visible.copy(),
        "in_crop": in_crop,
        "hand_side": np.array([0.0, 1.0], dtype=np.float32),
        "mirrored": mirrored,
        "sample_id": sample.sample_id,
    }


def uv_from_crop(uv_crop: np.ndarray, crop_from_image: np.ndarray) -> np.ndarray:
    """Map crop pixels (..., 2) (e.g. predictions) back to the full image the crop was cut
    from (the mirrored image for mirrored samples; compose with `image_from_original`,
    its own inverse, to reach the original image)."""
    return camera.apply_affine(camera.affine_inverse(crop_from_image), uv_crop)
