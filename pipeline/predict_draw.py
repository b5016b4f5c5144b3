"""What `hcdg predict` draws: the 2D skeleton over the photo, and an optional 3D view.

The skeleton is `datasets.draw.draw_skeleton`'s (the one `hcdg data show` draws: FreiHAND
joint order, one colour per finger, white wrist), so predictions and annotations look alike.
The crop box is outlined in grey; the label names the side and how the crop was chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcdg.pipeline import joints
from hcdg.pipeline.datasets.draw import FINGER_COLOURS, WRIST_COLOUR, draw_skeleton

BOX_COLOUR = (160, 160, 160)


def overlay(image: np.ndarray, uv_px: np.ndarray, box_xywh: np.ndarray, label: str) -> np.ndarray:
    """(H, W, 3) uint8 copy of `image` with the box, the skeleton of `uv_px` (21, 2) and `label`."""
    from PIL import Image, ImageDraw

    drawn = Image.fromarray(draw_skeleton(image, uv_px))
    draw = ImageDraw.Draw(drawn)
    x, y, w, h = (float(t) for t in box_xywh)
    width = max(1, int(round(min(drawn.width, drawn.height) / 300)))
    draw.rectangle([x, y, x + w, y + h], outline=BOX_COLOUR, width=width)
    tx, ty = 4, 4
    draw.rectangle([tx - 2, ty - 2, tx + 6 * len(label) + 2, ty + 12], fill=(0, 0, 0))
    draw.text((tx, ty), label, fill=(255, 255, 255))
    return np.asarray(drawn)


def plot3d(xyz: np.ndarray, title: str, unit: str) -> Any:
    """A matplotlib Figure of one hand's (21, 3) joints in camera orientation (x right, y down,
    z away from the camera), bones coloured as the overlay's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    p = np.asarray(xyz, dtype=np.float64)
    for parent, child in joints.BONES:
        c = np.array(FINGER_COLOURS[(child - 1) // 4]) / 255.0
        ax.plot(p[[parent, child], 0], p[[parent, child], 2], -p[[parent, child], 1], color=c, lw=2)
    colours = [np.array(WRIST_COLOUR if j == 0 else FINGER_COLOURS[(j - 1) // 4]) / 255.0 for j in range(len(p))]
    ax.scatter(p[:, 0], p[:, 2], -p[:, 1], c=colours, edgecolors="k", s=18, depthshade=False)
    centre, half = p.mean(0), max(float(np.ptp(p, axis=0).max()) / 2, 1e-6)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(-centre[1] - half, -centre[1] + half)
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"z ({unit})")
    ax.set_zlabel(f"-y ({unit})")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
