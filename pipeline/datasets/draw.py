"""Draw a 2D hand skeleton (FreiHAND order) onto an image, for checking annotations by eye."""

from __future__ import annotations

import numpy as np

from hcdg.pipeline import joints

#: One RGB colour per finger (thumb, index, middle, ring, pinky), FINGERS order.
FINGER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64), (255, 200, 0), (64, 220, 64), (0, 160, 255), (200, 80, 255),
)
WRIST_COLOUR = (255, 255, 255)


def joint_colour(j: int) -> tuple[int, int, int]:
    """Colour of joint `j` (FreiHAND order): white wrist/root, else its finger's colour."""
    return WRIST_COLOUR if j == joints.WRIST else FINGER_COLOURS[(j - 1) // 4]


def draw_skeleton(image: np.ndarray, uv: np.ndarray, visible: np.ndarray | None = None,
                  radius: float | None = None) -> np.ndarray:
    """`image` (H, W, 3) uint8 with the skeleton of `uv` (21, 2) px drawn on a copy.

    Bones (`joints.BONES`) are coloured by finger; joints are filled dots, hollow
    when `visible` says the joint is hidden. Points outside the image are clipped by PIL.
    """
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    h, w = img.height, img.width
    r = radius if radius is not None else max(2.0, min(h, w) / 120.0)
    width = max(1, int(round(r * 0.7)))
    uv = np.asarray(uv, dtype=np.float64)
    vis = np.ones(len(uv), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    finite = np.isfinite(uv).all(axis=1)
    for parent, child in joints.BONES:
        if finite[parent] and finite[child]:
            draw.line([tuple(uv[parent]), tuple(uv[child])], fill=joint_colour(child), width=width)
    for j, (x, y) in enumerate(uv):
        if not finite[j]:
            continue
        box = [x - r, y - r, x + r, y + r]
        if vis[j]:
            draw.ellipse(box, fill=joint_colour(j), outline=(0, 0, 0))
        else:
            draw.ellipse(box, outline=joint_colour(j), width=width)
    return np.asarray(img)
