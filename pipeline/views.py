"""Augmented views: K stored draws of the training augmentation per source image (`hcdg embed --views K`).

The paper's authors run CLIP every step on the augmented 256 crop the pose network gets
(their `main/model_no_render.py` l.66-69: `clip.load`'s preprocessing with transforms 1-3
popped, i.e. CenterCrop, RGB conversion and ToTensor gone, leaving Resize(224, bicubic) and
Normalize on the crop tensor). hcdg keeps CLIP out of training: `hcdg embed --views K`
draws K augmentations per image, renders each crop exactly as training renders it
(`transforms.prepare` with the drawn `GeomParams`, then `train_data.apply_color`), and
stores one CLIP feature and one parameter row per view. Training replays one stored view
per sample and step (`train_data.AugmentedSamples(views=...)`), so the crop CLIP saw and the
crop the network sees are the same pixels.

A view's parameters, one float32 row of `VIEW_PARAMS`: crop side multiplier, roll (deg),
centre shift (x, y, in crop sides), brightness, contrast, saturation factors. Pure: no files.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hcdg.pipeline.train_data import apply_color, jitter_factors, view_bcs, view_geom
from hcdg.pipeline.transforms import CropConfig, GeomAug, draw_geom, prepare

__all__ = ["VIEW_PARAMS", "ViewRows", "clip_pixels", "draw_view", "draw_views", "from_spec", "render_view", "view_bcs",
           "view_geom", "views_fingerprint"]

#: Columns of a stored view's parameter row (float32).
VIEW_PARAMS = ("scale", "rotation_deg", "shift_x_frac", "shift_y_frac", "brightness", "contrast", "saturation")
#: `numpy.random.default_rng` stream tag of the view draws (apart from training's own streams).
VIEW_TAG = 0x51E3
#: How a view becomes CLIP's input: the authors' Resize(S, bicubic) on the crop tensor, then
#: Normalize (`model_no_render.py` l.66-69). Antialiased as torchvision >= 0.17 resizes tensors.
CLIP_RESIZE = "bicubic-antialias"


def draw_views(geom: GeomAug, color: Any | None, seed: int, index: int, k: int) -> np.ndarray:
    """(k, 7) float32 parameter rows of image `index`'s K views: view v is drawn from
    `default_rng([seed, VIEW_TAG, index, v])` in training's order (geometry, then colour),
    so a view depends on nothing but (seed, index, v)."""
    return np.stack([draw_view(geom, color, seed, index, v) for v in range(k)]) if k else \
        np.empty((0, len(VIEW_PARAMS)), dtype=np.float32)


def draw_view(geom: GeomAug, color: Any | None, seed: int, index: int, view: int) -> np.ndarray:
    """(7,) float32 parameter row of view `view` of image `index` (see `draw_views`)."""
    rng = np.random.default_rng([int(seed), VIEW_TAG, int(index), int(view)])
    g = draw_geom(geom, rng)
    bcs = jitter_factors(color, rng) if color is not None else (1.0, 1.0, 1.0)
    return np.array((*g, *bcs), dtype=np.float32)


class ViewRows(torch.utils.data.Dataset):
    """Row r = i*K + v -> (r, CLIP input (3, H, W) float32 of view v of image i, error text or "").

    Runs in `hcdg embed`'s DataLoader workers: decode, `draw_view`, `render_view`, `clip_pixels`.
    """

    def __init__(self, reader: Any, crop: CropConfig, geom: GeomAug, color: Any | None, seed: int, k: int,
                 size: tuple[int, int], mean: Any, std: Any) -> None:
        self.reader, self.crop, self.geom, self.color, self.seed, self.k = reader, crop, geom, color, seed, k
        self.size, self.mean, self.std = tuple(size), tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.reader) * self.k

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor, str]:
        index, view = divmod(int(row), self.k)
        try:
            sample = self.reader[index]
            crop = render_view(sample, self.crop, draw_view(self.geom, self.color, self.seed, index, view))
        except Exception as exc:  # noqa: BLE001 - one unreadable image is one skipped row (--skip-corrupt)
            return row, torch.zeros(3, *self.size), f"{type(exc).__name__}: {exc}".splitlines()[0]
        return row, clip_pixels(torch.from_numpy(crop)[None], self.size, self.mean, self.std)[0], ""


def render_view(sample: Any, crop: CropConfig, row: np.ndarray) -> np.ndarray:
    """(3, S, S) float32 in [0, 1]: the training input of `sample` under stored view `row`, rendered
    by the worker path of `train_data.AugmentedSamples` (the same calls, so the same bytes)."""
    out = prepare(sample, crop, None, None, params=view_geom(row))
    return apply_color(np.asarray(out["image"], dtype=np.float32), view_bcs(row))


def clip_pixels(crops: torch.Tensor, size: tuple[int, int], mean: Any, std: Any) -> torch.Tensor:
    """CLIP's input from crops (B, 3, S, S) in [0, 1]: bicubic resize to `size` (antialiased),
    then per-channel (x - mean) / std, as the authors' popped `clip.load` preprocessing."""
    x = F.interpolate(crops.float(), size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
    m = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def views_fingerprint(k: int, seed: int, crop: CropConfig, geom: GeomAug, color: Any | None) -> dict[str, Any]:
    """What produced a view split's pixels (joins its split fingerprint; training compares `augmentation`)."""
    return {"k": int(k), "seed": int(seed), "clip_resize": CLIP_RESIZE, "params": list(VIEW_PARAMS),
            "augmentation": augmentation_spec(crop, geom, color)}


def augmentation_spec(crop: CropConfig, geom: GeomAug, color: Any | None) -> dict[str, Any]:
    """The settings a view's crop depends on: crop side, crop scale, smallest side, geometry, colour."""
    return {"input_size": crop.input_size, "crop_scale": crop.crop_scale, "min_side_px": crop.min_side_px,
            "geom": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(geom).items()},
            "color": None if color is None else dataclasses.asdict(color)}


def from_spec(spec: dict[str, Any]) -> tuple[CropConfig, GeomAug, Any | None]:
    """(crop, geom, color) back from an `augmentation_spec` (a store's recorded views)."""
    from hcdg.pipeline.aug_configs import ColorJitter

    crop = CropConfig(input_size=int(spec["input_size"]), crop_scale=float(spec["crop_scale"]),
                      min_side_px=float(spec["min_side_px"]))
    g = dict(spec["geom"])
    geom = GeomAug(**{**g, "scale_range": tuple(g["scale_range"])})
    return crop, geom, None if spec["color"] is None else ColorJitter(**spec["color"])
