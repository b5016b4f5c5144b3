"""The paper authors' test-time crop, cut with OpenCV as their code cuts it.

Facts from their repository (swanilee/Image-free-domain-generalization-via-clip-for-3d-hand-
pose-estimation, HEAD), cited as file:line:

1. The image is read as float32 RGB (main/preprocessing.py:19-28, ``load_img``).
2. A left hand's image is mirrored first, whole, with ``cv2.flip(img, 1)`` (data/Rhp/Rhp.py:119-120,
   data/STB/STB.py:111-113): pixel column i -> W - 1 - i. The released boxes live in that frame.
3. The box is truncated to integers, ``int(bbox[i])`` towards 0 (Rhp.py:124, STB.py:116).
4. The crop affine (main/preprocessing.py:149-209, ``generate_patch_image`` /
   ``gen_trans_from_patch_cv``): box centre ``c = (x + w/2, y + h/2)``; the source half-axes
   ``(w s / 2, 0)`` and ``(0, h s / 2)`` (s = test ``--scale``) rotated by ``--rot`` degrees;
   three float32 points (centre, centre + down, centre + right) mapped to the crop's
   ``(S/2, S/2)``, ``(S/2, S)``, ``(S, S/2)`` by ``cv2.getAffineTransform``, cast to float32. The
   inverse (crop -> image, used to decode) is the same call with the points swapped.
5. ``cv2.warpAffine(img, trans, (S, S), flags=INTER_LINEAR)``: bilinear, default border
   BORDER_CONSTANT with 0, so a crop pixel whose 2x2 neighbourhood crosses the image edge is
   blended with black; sample positions are quantised to 1/32 pixel (OpenCV's INTER_BITS = 5).
6. The float32 patch is truncated to uint8 (``img.astype(np.uint8)``, preprocessing.py:142),
   then fed as ``uint8 / 255`` (Rhp.py:128).

hcdg's own protocols keep one PIL warp with the mirror folded in (`camera.warp_to_crop`). Near
the image border the two differ (PIL does not blend the edge pixel with black), which moves
an STB sample under the authors' protocol by up to ~3 mm (issue 18); so the authors'
protocol cuts its crops here. Pure functions: no files, no globals beyond constants.
"""

from __future__ import annotations

import numpy as np

from hcdg.pipeline.errors import HcdgError

#: How a crop image is resampled: "pil" = hcdg's one PIL bilinear warp (`camera.warp_to_crop`),
#: "cv2" = the authors' cv2.flip + cv2.warpAffine + uint8 truncation (this module).
CROP_BACKENDS: tuple[str, ...] = ("pil", "cv2")


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a declared dependency
        raise HcdgError(
            "the authors' crop needs OpenCV: pip install opencv-python-headless (an hcdg dependency)"
        ) from None
    return cv2


def _as3x3(m2x3: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = np.asarray(m2x3, dtype=np.float64)
    return out


def patch_affines(cx: float, cy: float, w: float, h: float, size: int, scale: float = 1.0,
                  rot_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Their ``gen_trans_from_patch_cv`` for a box centred at (cx, cy), w x h image pixels.

    Args:
        cx, cy: box centre, image pixels (integer-centred). w, h: box size, pixels (> 0).
        size: crop side S. scale: box size multiplier (their test ``--scale``; > 1 zooms out).
        rot_deg: their test ``--rot``: the box's axes turned by this angle in the image
            (image rotated by -rot in the crop about the box centre).
    Returns:
        (crop_from_image, image_from_crop): (3, 3) float64 matrices holding their float32
        2x3 matrices exactly (last row [0, 0, 1]); the second is their ``inv_trans``,
        a separate float32 solve, not the float64 inverse of the first.
    """
    if not (w > 0 and h > 0 and scale > 0 and np.isfinite([cx, cy, w, h, scale, rot_deg]).all()):
        raise HcdgError(f"authors crop: box size and scale must be finite and > 0, got w={w}, h={h}, scale={scale}")
    cv2 = _cv2()
    f32 = np.float32
    centre = np.array([cx, cy], dtype=f32)
    a = np.pi * float(rot_deg) / 180.0
    sn, cs = np.sin(a), np.cos(a)
    half_w, half_h = f32(w * scale * 0.5), f32(h * scale * 0.5)
    # (0, h/2) and (w/2, 0) rotated by a: [x cos - y sin, x sin + y cos], rounded to float32
    down = np.array([-(half_h * sn), half_h * cs], dtype=f32)
    right = np.array([half_w * cs, half_w * sn], dtype=f32)
    src = np.stack([centre, centre + down, centre + right]).astype(f32)
    c = f32(size * 0.5)
    dst = np.array([[c, c], [c, c + c], [c + c, c]], dtype=f32)
    fwd = cv2.getAffineTransform(src, dst).astype(f32)
    inv = cv2.getAffineTransform(dst, src).astype(f32)
    return _as3x3(fwd), _as3x3(inv)


def box_affines(xywh: np.ndarray, size: int, scale: float = 1.0,
                rot_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`patch_affines` of one released [x, y, w, h] box after their int() truncation
    (towards 0; Rhp.py:124, STB.py:116)."""
    x, y, w, h = (float(np.trunc(t)) for t in np.asarray(xywh, dtype=np.float64).reshape(4))
    if not (w > 0 and h > 0):
        raise HcdgError(f"authors crop: box width and height must be >= 1 after truncation, got {w}, {h}")
    return patch_affines(x + 0.5 * w, y + 0.5 * h, w, h, size, scale, rot_deg)


def cut_crop(image: np.ndarray, crop_from_image: np.ndarray, size: int, flip: bool) -> np.ndarray:
    """Their crop of `image`: (flip) -> bilinear warp with black border -> uint8 truncation.

    Args:
        image: (H, W, 3) uint8 RGB, the image as stored (NOT mirrored).
        crop_from_image: (3, 3) or (2, 3) affine from the (mirrored, when `flip`) image to
            the crop; pass `patch_affines`' first matrix to reproduce their numbers.
        size: crop side S.
        flip: mirror the image left-right first (their left hands).
    Returns:
        (S, S, 3) uint8.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise HcdgError(f"cut_crop: expected an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    M = np.asarray(crop_from_image, dtype=np.float64)
    if M.shape not in ((3, 3), (2, 3)) or not np.isfinite(M).all():
        raise HcdgError(f"cut_crop: expected a finite (3, 3) or (2, 3) affine, got shape {M.shape}")
    cv2 = _cv2()
    src = img.astype(np.float32)  # their load_img: float32 pixels
    if flip:
        src = cv2.flip(src, 1)
    patch = cv2.warpAffine(src, M[:2], (int(size), int(size)), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return patch.astype(np.uint8)  # truncation, as their img.astype(np.uint8)
