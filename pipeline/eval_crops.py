"""Evaluation crops: which box, which affine and which resampling a test sample gets.

Two backends (`crop_cv2.CROP_BACKENDS`):

* ``cv2`` -- the paper authors' test crop, used whenever their computation is scored
  (`protocols.AUTHORS_PROTOCOLS`): their box -> crop affine (`crop_cv2.patch_affines`, their
  float32 matrices, box centre -> (S/2, S/2)), ``cv2.flip`` of a left hand's whole image,
  ``cv2.warpAffine`` with a black border, uint8 truncation, then ``/ 255``.
* ``pil`` -- hcdg's crop for its own protocols: one PIL bilinear warp with the mirror folded
  in (`transforms.prepare`, `camera.warp_to_crop`); the released boxes map as
  `authors.crop_from_xywh` (float64), hand3d's keypoint boxes as `camera.crop_from_box`.

Boxes are the authors' released [x, y, w, h] rows (truncated to integers, as their code does) or,
when none is given, hand3d's keypoint box from the ground truth (`transforms.hand_box`), both in
the frame of the image after mirroring a left hand. The test-time ``scale`` multiplies the box
side about its centre and ``rot_deg`` turns the box's axes in the image (their main/test.py
``--scale`` / ``--rot``, main/preprocessing.py:176-209). Under ``cv2`` that is their 2D turn of
the crop about the box centre (their uvd output is decoded through the inverse crop affine, so
the turn is undone exactly). Under ``pil`` it is a camera roll about the optical axis by
``-rot_deg`` (`transforms.prepare`'s ``roll_rad``; the crop looks turned the same way, by
``-rot_deg`` on screen), and the returned 3D (``xyz_m``) is in the rolled camera: an xyz
network's prediction is un-rolled with ``rot_aug`` (``xyz = xyz_rolled @ rot_aug``) before it
is compared with the ground truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcdg.pipeline import camera, crop_cv2, transforms
from hcdg.pipeline.camera import CropBox
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError


def check_options(backend: str, scale: float, rot_deg: float) -> None:
    """One-line HcdgError for a backend, scale or rotation the evaluation crop cannot use."""
    if backend not in crop_cv2.CROP_BACKENDS:
        raise HcdgError(f"crop backend: expected one of {', '.join(crop_cv2.CROP_BACKENDS)}, got {backend!r}")
    if not (np.isfinite(scale) and scale > 0):
        raise HcdgError(f"--scale: expected a finite number > 0, got {scale!r}")
    if not np.isfinite(rot_deg):
        raise HcdgError(f"--rot: expected a finite number of degrees, got {rot_deg!r}")


def eval_crop(sample: Sample, crop_cfg: transforms.CropConfig, *, backend: str, scale: float, rot_deg: float,
              box_xywh: np.ndarray | None = None) -> dict[str, Any]:
    """One test sample -> `transforms.prepare`'s dict (no augmentation) plus ``image_from_crop``.

    Args:
        sample: a Sample with its image loaded (uint8 RGB).
        crop_cfg: the run's crop geometry (input size; crop_scale / min side of hand3d's box).
        backend: "cv2" (the authors' crop) or "pil" (hcdg's).
        scale: test-time box multiplier (> 0). rot_deg: test-time rotation, degrees (module docs).
        box_xywh: (4,) the authors' released box in the mirrored image's pixels, or None
            (hand3d's keypoint box from the ground truth).
    Returns:
        prepare's keys (``image`` (3, S, S) float32 in [0, 1], ``crop_from_image``, ``K``, ``xyz_m``,
        ``rot_aug`` the camera roll (identity for "cv2"), ...; ``heatmaps`` None under "cv2") and
        ``image_from_crop`` (3, 3): the crop -> (mirrored) image map to decode with (their
        separately solved float32 inverse for "cv2").
    """
    check_options(backend, scale, rot_deg)
    if sample.image is None:
        raise HcdgError(f"eval_crop({sample.dataset}/{sample.sample_id}): the sample has no image loaded")
    image = np.asarray(sample.image)
    hw = image.shape[:2]
    size = crop_cfg.input_size
    if backend == "cv2":
        if box_xywh is not None:
            fwd, inv = crop_cv2.box_affines(box_xywh, size, scale, rot_deg)
        else:
            b = transforms.hand_box(sample, crop_cfg, hw)
            fwd, inv = crop_cv2.patch_affines(b.cx, b.cy, b.side, b.side, size, scale, rot_deg)
        out = transforms.prepare(sample, crop_cfg, crop_from_image=fwd, render=False)
        crop = crop_cv2.cut_crop(image, fwd, size, flip=bool(out["mirrored"]))
        # their input: torch float32 of the uint8 values, divided by 255 (Rhp.py:128)
        out["image"] = np.divide(crop.transpose(2, 0, 1), np.float32(255.0), dtype=np.float32)
        out["image_from_crop"] = inv
        return out
    roll = -np.deg2rad(float(rot_deg))  # the crop turns by -rot on screen, as theirs
    if box_xywh is not None:
        from hcdg.pipeline.authors import crop_from_xywh

        A = crop_from_xywh(box_xywh, size, scale)
        out = transforms.prepare(sample, crop_cfg, crop_from_image=A, roll_rad=roll)
    else:
        b = transforms.hand_box(sample, crop_cfg, hw)
        out = transforms.prepare(sample, crop_cfg, box=CropBox(b.cx, b.cy, b.side * float(scale)), roll_rad=roll)
    out["image_from_crop"] = camera.affine_inverse(out["crop_from_image"])
    return out


def unroll(xyz: np.ndarray, rot_aug: np.ndarray) -> np.ndarray:
    """(N, J, 3) points in each sample's rolled camera -> its unrolled camera: ``xyz_rolled @ rot_aug``
    (`transforms.prepare`: ``xyz_rolled = xyz @ rot_aug.T``; rot_aug (N, 3, 3) rotations)."""
    return np.einsum("nkj,nji->nki", np.asarray(xyz, dtype=np.float64), np.asarray(rot_aug, dtype=np.float64))
