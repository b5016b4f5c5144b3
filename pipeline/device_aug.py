"""The training input's crop warp, colour jitter and heatmaps as batched torch operations.

`hcdg train --augment-on device` (issue 13, "lean input path"): the loader workers only
decode the image and draw the sample's random augmentation from the same numpy stream as
the worker path (`train_data.AugmentedSamples` with ``augment_on="device"``); they pass
the uint8 image, the crop affine and the colour factors, and `render_batch` turns a batch
of those into the network input and target heatmaps on whatever device the tensors are on.

Equal to the worker path up to resampling: the warp is bilinear `grid_sample` in the same
integer-pixel-centre convention as `camera.warp_to_crop` (PIL), but stays in float (PIL
rounds the crop to uint8); colour jitter is `train_data.color_jitter`'s formula; heatmaps
are `heatmap_loss.render_gaussians` (same values as `camera.gaussian_heatmaps`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hcdg.pipeline.heatmap_loss import render_gaussians

#: Keys a device-mode item carries instead of "image" and "heatmaps".
DEVICE_KEYS = ("image_u8", "image_from_crop", "color_bcs")


def warp_crops(images_u8: torch.Tensor, image_from_crop: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops of a batch of images.

    images_u8: (B, H, W, 3) uint8 RGB; image_from_crop: (B, 3, 3) affine, crop pixel ->
    image pixel (integer-centred pixels, `camera.warp_to_crop`'s ``A^-1``). Returns
    (B, 3, size, size) float32 in [0, 1]; outside the image -> 0 (black).
    """
    n, h, w, _ = images_u8.shape
    dev = images_u8.device
    m = image_from_crop.to(device=dev, dtype=torch.float32)
    # normalised (align_corners=False) <-> integer-centred pixels: x_n = (2 x + 1) / W - 1
    to_norm_in = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
                              device=dev)
    s = float(size)
    from_norm_out = torch.tensor([[s / 2, 0.0, (s - 1) / 2], [0.0, s / 2, (s - 1) / 2], [0.0, 0.0, 1.0]], device=dev)
    theta = (to_norm_in @ m @ from_norm_out)[:, :2]
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    img = images_u8.permute(0, 3, 1, 2).to(torch.float32)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out * (1.0 / 255.0)


def color_jitter_batched(images: torch.Tensor, bcs: torch.Tensor) -> torch.Tensor:
    """`train_data.color_jitter` on a batch: images (B, 3, H, W) in [0, 1], bcs (B, 3) the drawn
    brightness, contrast and saturation factors. Returns (B, 3, H, W) clipped to [0, 1]."""
    f = bcs.to(device=images.device, dtype=images.dtype)[:, :, None, None, None]
    b, c, s = f[:, 0], f[:, 1], f[:, 2]  # each (B, 1, 1, 1)

    def luma(x: torch.Tensor) -> torch.Tensor:  # ITU-R 601, (B, 1, H, W)
        return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]

    img = images * b
    mean = luma(img).mean(dim=(2, 3), keepdim=True)
    img = (img - mean) * c + mean
    gray = luma(img)
    img = (img - gray) * s + gray
    return img.clamp(0.0, 1.0)


def heatmaps_from_uv(uv_crop: torch.Tensor, visible: torch.Tensor, crop: Any) -> torch.Tensor:
    """(B, 21, hm, hm) target heatmaps from uv_crop (B, 21, 2) crop pixels, as `transforms.prepare`
    draws them (`camera.crop_to_heatmap` then the Gaussian of `crop.gaussian` / `crop.sigma_heatmap_px`)."""
    r = crop.heatmap_size / crop.input_size
    uv_hm = (uv_crop.to(torch.float32) + 0.5) * r - 0.5
    return render_gaussians(uv_hm, crop.heatmap_size, crop.sigma_heatmap_px, crop.gaussian, visible)


def render_batch(batch: dict[str, torch.Tensor], crop: Any, color: bool) -> dict[str, torch.Tensor]:
    """A device-mode batch (`DEVICE_KEYS` + uv_crop, visible) -> its "image" (B, 3, S, S) and
    "heatmaps" (B, 21, S/8, S/8), computed where the tensors are. `color`: apply the jitter."""
    image = warp_crops(batch["image_u8"], batch["image_from_crop"], crop.input_size)
    if color:
        image = color_jitter_batched(image, batch["color_bcs"])
    return {"image": image, "heatmaps": heatmaps_from_uv(batch["uv_crop"], batch["visible"], crop)}
