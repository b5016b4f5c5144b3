"""Prediction on a user's own images: crop plan, output decoding, metric 3D (pure numpy).

    image (H, W, 3) + optional box [x, y, w, h] + side
        --plan_crop--> one affine `crop_from_original` (original px -> S x S crop px; the
                       left-right flip of left hands folded in, as in training)
        --camera.warp_to_crop--> crop --HandPoseNet.predict--> heatmaps, xyz_rel_norm
        --decode_batch--> 2D joints in ORIGINAL image pixels (heatmap soft-argmax), per-joint
                          heatmap confidence, 3D un-mirrored into the image's own camera
                          orientation, and (given a bone length, and K) millimetres.

Boxes are [x, y, w, h] in hcdg's pixel convention (pixel centres at integers, so an image
of width W spans [-0.5, W - 0.5]; the convention of the authors' released test boxes,
`camera.CropBox.from_xywh`); a non-square box is cut as the square of side max(w, h) around
its centre (the network sees undistorted hands). Without a box the whole image is the crop:
padded to a square with black ("pad") or its central square ("center").

Metric 3D. ``xyz_rel_mm`` of an xyz network is its output times the given bone length
(middle MCP -> PIP, hand3d's normalising bone). ``xyz_cam_mm`` (camera frame, needs K as
well) takes each joint's ray through its 2D detection and its depth relative to the root
(xyz network: z * bone; uvd network: the authors' (2 d - 1) * 0.15 m), and chooses the root
depth that makes the middle MCP -> PIP bone the given length (the closed form of Iqbal et
al., ECCV 2018, "Hand pose estimation via latent 2.5D heatmap regression", §3.2, with
hcdg's normalising bone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdg.pipeline import camera, hands
from hcdg.pipeline.camera import CropBox
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import JOINT_NAMES, MIDDLE_MCP, MIDDLE_PIP, N_JOINTS, WRIST

SIDES = ("left", "right")
WHOLE_IMAGE = ("pad", "center")
#: DataFrame / parquet columns holding joints, flattened joint-major, and their per-joint width.
JOINT_COLUMNS = {"uv_px": 2, "confidence": 1, "xyz_rel_norm": 3, "uvd": 3, "xyz_rel_mm": 3, "xyz_cam_mm": 3}


@dataclass(frozen=True)
class CropPlan:
    """How one image becomes the network's crop.

    Attributes:
        crop_from_original: (3, 3) affine original-image px -> crop px (mirror included).
        box_xywh: (4,) the square actually cut, [x, y, w, h] in original image pixels.
        box_source: "given", "whole-image-pad" or "whole-image-center".
        side: "left" or "right"; mirrored: whether the crop was flipped (left hands).
        width, height: the original image's size in pixels.
    """

    crop_from_original: np.ndarray
    box_xywh: np.ndarray
    box_source: str
    side: str
    mirrored: bool
    width: int
    height: int


def check_box(box_xywh: object, where: str) -> np.ndarray:
    """(4,) float64 [x, y, w, h]; one-line HcdgError unless 4 finite numbers with w, h > 0."""
    try:
        box = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise HcdgError(f"{where}: expected a box [x, y, w, h] of 4 numbers, got {box_xywh!r}") from None
    if box.shape != (4,) or not np.all(np.isfinite(box)) or not (box[2] > 0 and box[3] > 0):
        raise HcdgError(f"{where}: expected a box [x, y, w, h] of 4 finite numbers with w, h > 0, got {box.tolist()}")
    return box


def check_K(K: object, where: str) -> np.ndarray:
    """(3, 3) float64 intrinsics from a 3x3 matrix or [fx, fy, cx, cy]; finite, fx, fy > 0."""
    try:
        arr = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise HcdgError(f"{where}: expected a 3x3 matrix or fx,fy,cx,cy, got {K!r}") from None
    if arr.shape == (4,):
        fx, fy, cx, cy = arr
        arr = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)) or not (arr[0, 0] > 0 and arr[1, 1] > 0):
        raise HcdgError(f"{where}: expected a finite 3x3 intrinsic matrix (or fx,fy,cx,cy) with fx, fy > 0, "
                        f"got shape {arr.shape}")
    if not np.allclose(arr[2], (0.0, 0.0, 1.0)):
        raise HcdgError(f"{where}: the last row of K must be [0, 0, 1], got {arr[2].tolist()}")
    return arr


#: Pixel frames a given box can be in: the image as it is, or the image flipped left-right
#: (u -> W - 1 - u; the authors' STB test boxes were made on the mirrored frames, docs/geometry.md).
BOX_FRAMES = ("image", "mirrored")


def box_to_image(box_xywh: np.ndarray, width: int, frame: str) -> np.ndarray:
    """[x, y, w, h] given in `frame` -> the same box in the image's own pixels.

    "mirrored": the box's centre is mapped back by the mirror (u -> W - 1 - u, `hands.mirror_affine`),
    so it lands on what it enclosed in the flipped image."""
    if frame not in BOX_FRAMES:
        raise HcdgError(f"--box-frame: expected one of {', '.join(BOX_FRAMES)}, got {frame!r}")
    box = np.asarray(box_xywh, dtype=np.float64).reshape(4)
    if frame == "image":
        return box
    x, y, w, h = box
    return np.array([width - 1.0 - x - w, y, w, h])


def outside_fraction(box_xywh: np.ndarray, width: int, height: int) -> float:
    """Share (0..1) of the square crop cut for `box_xywh` that lies outside the image
    (pixels span [-0.5, W - 0.5] x [-0.5, H - 0.5])."""
    sq = CropBox.from_xywh(box_xywh)
    x0, y0, s = sq.cx - sq.side / 2, sq.cy - sq.side / 2, sq.side
    ix = max(0.0, min(x0 + s, width - 0.5) - max(x0, -0.5))
    iy = max(0.0, min(y0 + s, height - 0.5) - max(y0, -0.5))
    return float(1.0 - ix * iy / (s * s))


def whole_image_box(width: int, height: int, mode: str) -> CropBox:
    """The square crop of a whole image: "pad" = side max(W, H) (black borders), "center" =
    side min(W, H) (the central square); centred on the image centre ((W-1)/2, (H-1)/2)."""
    if mode not in WHOLE_IMAGE:
        raise HcdgError(f"--whole-image: expected one of {', '.join(WHOLE_IMAGE)}, got {mode!r}")
    side = float(max(width, height) if mode == "pad" else min(width, height))
    return CropBox(cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, side=side)


def plan_crop(width: int, height: int, input_size: int, side: str, box_xywh: np.ndarray | None = None,
              whole_image: str = "pad") -> CropPlan:
    """The crop of one image of `width` x `height` px (see the module docstring).

    Left hands are mirrored to right hands (the network only ever saw right hands): the box
    is mirrored with the image (``u -> W - 1 - u``), so ``crop_from_original`` reads the
    original image directly and its inverse takes crop pixels straight back to it.
    """
    if side not in SIDES:
        raise HcdgError(f"side: expected left or right, got {side!r}")
    if box_xywh is None:
        box, source = whole_image_box(width, height, whole_image), f"whole-image-{whole_image}"
    else:
        box, source = CropBox.from_xywh(check_box(box_xywh, "box")), "given"
    mirrored = side == "left"
    image_from_original = hands.mirror_affine(width) if mirrored else np.eye(3)
    centre = camera.apply_affine(image_from_original, np.array([box.cx, box.cy]))
    crop_from_image = camera.crop_from_box(CropBox(float(centre[0]), float(centre[1]), box.side), input_size)
    return CropPlan(crop_from_original=crop_from_image @ image_from_original, box_xywh=box.to_xywh(),
                    box_source=source, side=side, mirrored=mirrored, width=int(width), height=int(height))


def cut_crop(image: np.ndarray, plan: CropPlan, input_size: int) -> np.ndarray:
    """(3, S, S) float32 in [0, 1]: the network input for `image` (H, W, 3) uint8 under `plan`."""
    crop = camera.warp_to_crop(image, plan.crop_from_original, input_size)
    return np.multiply(crop.transpose(2, 0, 1), np.float32(1.0 / 255.0), dtype=np.float32, order="C")


def heatmap_confidence(heatmaps: np.ndarray) -> np.ndarray:
    """(N, 21, h, w) final-stage maps -> (N, 21) each map's maximum (the raw score at the 2D
    detection's cell; targets peak at 1, so ~1 = confident, ~0 = nothing found)."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    return hm.reshape(hm.shape[0], hm.shape[1], -1).max(axis=-1)


def root_depth_from_bone(uv_px: np.ndarray, dz: np.ndarray, K: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Root depth making the middle MCP -> PIP bone `bone` long (Iqbal et al. 2018, §3.2).

    With rays ``a_j = K^-1 [u_j, v_j, 1]`` and joint depths ``z_root + dz_j``, the bone
    ``(z_root + dz_9) a_9 - (z_root + dz_10) a_10`` has length `bone` when
    ``|d|^2 z^2 + 2 (d.e) z + |e|^2 - bone^2 = 0``, d = a_9 - a_10, e = dz_9 a_9 - dz_10 a_10;
    the larger root is taken (the other lies behind or at the camera). Without a real root
    (2D and depth disagree) the depth of the closest approach, ``-(d.e) / |d|^2``, is used.

    Args:
        uv_px: (N, 21, 2) image pixels; dz: (N, 21) depth relative to the root, unit of `bone`;
        K: (N, 3, 3) or (3, 3); bone: (N,) or scalar bone length.
    Returns:
        (N,) root depths in the unit of `bone`; NaN where the result is not in front of the camera.
    """
    uv = np.asarray(uv_px, dtype=np.float64)
    n = uv.shape[0]
    Km = np.broadcast_to(np.asarray(K, dtype=np.float64), (n, 3, 3))
    rays = camera.backproject(uv, np.ones(uv.shape[:-1]), Km)  # (N, 21, 3) at unit depth
    dz = np.asarray(dz, dtype=np.float64)
    b = np.broadcast_to(np.asarray(bone, dtype=np.float64), (n,))
    a9, a10 = rays[:, MIDDLE_MCP], rays[:, MIDDLE_PIP]
    d = a9 - a10
    e = dz[:, MIDDLE_MCP, None] * a9 - dz[:, MIDDLE_PIP, None] * a10
    qa = np.sum(d * d, -1)
    qb = 2.0 * np.sum(d * e, -1)
    qc = np.sum(e * e, -1) - b**2
    disc = qb**2 - 4.0 * qa * qc
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(disc >= 0, (-qb + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * qa), -qb / (2.0 * qa))
        depth_min = z[:, None] + dz
    ok = np.isfinite(z) & np.all(depth_min > 0, axis=1)
    return np.where(ok, z, np.nan)


def camera_frame_mm(uv_px: np.ndarray, dz_mm: np.ndarray, K: np.ndarray, bone_mm: np.ndarray) -> np.ndarray:
    """(N, 21, 3) camera-frame joints in mm: back-projection of each 2D joint at depth
    ``z_root + dz`` with `root_depth_from_bone`'s root depth (NaN rows where it failed)."""
    z_root = root_depth_from_bone(uv_px, dz_mm, K, bone_mm)
    n = np.asarray(uv_px).shape[0]
    Km = np.broadcast_to(np.asarray(K, dtype=np.float64), (n, 3, 3))
    return camera.backproject(uv_px, z_root[:, None] + np.asarray(dz_mm, dtype=np.float64), Km)


def decode_batch(
    heatmaps: np.ndarray,
    out3d: np.ndarray,
    plans: list[CropPlan],
    input_size: int,
    output: str,
    decoder: str = "soft-argmax",
    bone_mm: np.ndarray | None = None,
    K: np.ndarray | None = None,
) -> dict[str, np.ndarray | None]:
    """Network outputs of one batch -> what `hcdg predict` reports, in each ORIGINAL image.

    Args:
        heatmaps: (N, 21, h, w) final CPM stage. out3d: (N, 21, 3) `xyz_rel_norm` of predict().
        plans: the N crop plans. output: the network's `ModelConfig.output` ("xyz" | "uvd").
        decoder: heatmap -> 2D decoder (`protocols.decode_heatmaps`).
        bone_mm: (N,) middle MCP -> PIP length in mm (NaN = unknown), or None.
        K: (N, 3, 3) intrinsics of the original images (NaN-filled = unknown), or None.
    Returns dict of (N, ...) float64 arrays (None when not computable for the batch):
        uv_px (N, 21, 2) original image pixels; confidence (N, 21);
        xyz_rel_norm (N, 21, 3) root-relative / bone, the image's own camera orientation (xyz nets);
        uvd (N, 21, 3) the authors' normalised crop uvd, as the network gave it, i.e. in the
            (mirrored, for left hands) crop (uvd nets);
        xyz_rel_mm (N, 21, 3) root-relative millimetres; xyz_cam_mm (N, 21, 3) camera frame, mm
        (rows NaN where the inputs for them are missing).
    """
    from hcdg.pipeline import protocols

    if output not in ("xyz", "uvd"):
        raise HcdgError(f"network output: expected 'xyz' or 'uvd', got {output!r}")
    hm = np.asarray(heatmaps, dtype=np.float64)
    o3 = np.asarray(out3d, dtype=np.float64)
    n = len(plans)
    if hm.ndim != 4 or hm.shape[:2] != (n, N_JOINTS) or o3.shape != (n, N_JOINTS, 3):
        raise HcdgError(f"decode_batch: expected heatmaps ({n}, 21, h, w) and 3D ({n}, 21, 3), "
                        f"got {hm.shape} and {o3.shape}")
    crop_from = np.stack([p.crop_from_original for p in plans])
    img_from_hm = protocols.image_from_heatmap(crop_from, input_size, hm.shape[-1])
    uv = protocols.heatmap_to_image(protocols.decode_heatmaps(hm, decoder), img_from_hm)
    mirrored = np.array([p.mirrored for p in plans], dtype=bool)
    res: dict[str, np.ndarray | None] = {"uv_px": uv, "confidence": heatmap_confidence(hm),
                                         "xyz_rel_norm": None, "uvd": None, "xyz_rel_mm": None, "xyz_cam_mm": None}
    bone = None if bone_mm is None else np.broadcast_to(np.asarray(bone_mm, dtype=np.float64), (n,))
    if output == "xyz":
        xyz = o3.copy()
        xyz[mirrored, :, 0] *= -1.0  # back from the mirrored crop's camera to the image's own
        xyz = xyz - xyz[:, WRIST : WRIST + 1]  # the PosePrior leaves the root only near 0 (protocols.rr_gtscale)
        res["xyz_rel_norm"] = xyz
        if bone is not None:
            res["xyz_rel_mm"] = xyz * bone[:, None, None]
            dz_mm = xyz[..., 2] * bone[:, None]
    else:
        from hcdg.pipeline.authors import UVD_DEPTH_HALF_RANGE_M  # here: authors imports torch (CLI start-up)

        res["uvd"] = o3
        dz_mm = (o3[..., 2] * 2.0 - 1.0) * UVD_DEPTH_HALF_RANGE_M * 1000.0
        dz_mm = dz_mm - dz_mm[:, WRIST : WRIST + 1]
    if bone is not None and K is not None:
        cam = camera_frame_mm(uv, dz_mm, K, bone)
        res["xyz_cam_mm"] = cam
        if output == "uvd":
            res["xyz_rel_mm"] = cam - cam[:, WRIST : WRIST + 1]
    return res


def joint_array(frame: object, column: str) -> np.ndarray:
    """(N, 21, k) float64 from a predictions DataFrame's flattened joint column (NaN rows where
    the column is empty), e.g. ``joint_array(df, "uv_px")`` -> (N, 21, 2)."""
    if column not in JOINT_COLUMNS:
        raise HcdgError(f"joint_array: {column!r} is not a joint column ({', '.join(JOINT_COLUMNS)})")
    k = JOINT_COLUMNS[column]
    values = frame[column]  # type: ignore[index]
    out = np.full((len(values), N_JOINTS, k), np.nan)
    for i, v in enumerate(values):
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            out[i] = np.asarray(v, dtype=np.float64).reshape(N_JOINTS, k)
    return out[..., 0] if k == 1 else out


__all__ = ["CropPlan", "JOINT_NAMES", "plan_crop", "cut_crop", "decode_batch", "joint_array",
           "root_depth_from_bone", "camera_frame_mm", "check_box", "check_K", "whole_image_box",
           "BOX_FRAMES", "box_to_image", "outside_fraction"]
