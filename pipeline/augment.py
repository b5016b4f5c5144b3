"""Table 6's "normal augmentation": six appearance transforms as batched torch ops.

The paper lists colour jitter, cut-out, Gaussian noise, Sobel filter, colour drop and
Gaussian blur and gives no parameters. The same six, in that order of mention, are
PeCLR's appearance transforms (Spurr et al. 2021, the paper's ref. [50]); we follow
PeCLR's public code for the order and the probabilities (each 0.5 except colour jitter,
always on) and SimCLR (ref. [12]) / PeCLR for the strengths. Every default is a choice
declared in `AugConfig`.

All functions take images (B,3,H,W) float in [0,1] and return a new tensor of the same
shape in [0,1]; random ones take a `torch.Generator` and draw per-sample parameters
from it (on the generator's device, then moved to the images' device), so a seeded
generator reproduces the augmentation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hcdg.pipeline.aug_configs import AugConfig  # noqa: F401  (defined there, torch-free)
from hcdg.pipeline.errors import HcdgError

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as torchvision's rgb_to_grayscale
SOBEL_MAX = 4.0 * math.sqrt(2.0)  # largest Sobel gradient magnitude of an image in [0,1]


def _check(img: torch.Tensor) -> None:
    if img.ndim != 4 or img.shape[1] != 3:
        raise HcdgError(f"augment: images must be (B,3,H,W), got {tuple(img.shape)}")


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(n, generator=gen, device=gen.device).to(device=like.device, dtype=like.dtype)
    return lo + (hi - lo) * u


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def to_gray(img: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (B,1,H,W) luma."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True)


def color_drop(img: torch.Tensor) -> torch.Tensor:
    """Grey image replicated on the 3 channels."""
    _check(img)
    return to_gray(img).expand(-1, 3, -1, -1).contiguous()


def _hue_rotate(img: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate chroma in YIQ space by `angle` (B,) radians (a hue shift that keeps luma)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=img.dtype, device=img.device
    )
    from_yiq = torch.linalg.inv(to_yiq)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(img.shape[0], 3, 3, dtype=img.dtype, device=img.device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    m = from_yiq @ rot @ to_yiq  # (B,3,3) acting on column RGB vectors
    return torch.einsum("bij,bjhw->bihw", m, img)


def color_jitter(
    img: torch.Tensor,
    gen: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation factors in [1-x, 1+x] and a hue shift
    of U(-hue, hue) turns (YIQ rotation), applied in that order, clamped to [0,1] each time."""
    _check(img)
    b = img.shape[0]
    fb = _uniform(gen, b, 1 - brightness, 1 + brightness, img)
    fc = _uniform(gen, b, 1 - contrast, 1 + contrast, img)
    fs = _uniform(gen, b, 1 - saturation, 1 + saturation, img)
    fh = _uniform(gen, b, -hue, hue, img) * 2 * math.pi
    x = (img * _bcast(fb)).clamp(0, 1)
    mean = to_gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * _bcast(fc) + mean).clamp(0, 1)
    g = to_gray(x)
    x = ((x - g) * _bcast(fs) + g).clamp(0, 1)
    return _hue_rotate(x, fh).clamp(0, 1)


def cutout_boxes(
    gen: torch.Generator, batch: int, height: int, width: int, min_frac: float = 0.1, max_frac: float = 0.5
) -> torch.Tensor:
    """(B,4) long boxes [y0, x0, y1, x1) of a square with side U(min,max)*min(H,W), inside the image."""
    side_max = min(height, width)
    frac = min_frac + (max_frac - min_frac) * torch.rand(batch, generator=gen, device=gen.device)
    side = (frac * side_max).round().long().clamp(1, side_max)
    y0 = (torch.rand(batch, generator=gen, device=gen.device) * (height - side + 1)).long()
    x0 = (torch.rand(batch, generator=gen, device=gen.device) * (width - side + 1)).long()
    return torch.stack([y0, x0, y0 + side, x0 + side], dim=1).cpu()


def cutout(
    img: torch.Tensor, gen: torch.Generator, min_frac: float = 0.1, max_frac: float = 0.5, fill: float = 0.0
) -> torch.Tensor:
    """Set one random square per image (see `cutout_boxes`) to `fill` on all channels."""
    _check(img)
    bsz, _, h, w = img.shape
    box = cutout_boxes(gen, bsz, h, w, min_frac, max_frac).to(img.device)
    ys = torch.arange(h, device=img.device).view(1, h, 1)
    xs = torch.arange(w, device=img.device).view(1, 1, w)
    inside = (
        (ys >= box[:, 0, None, None]) & (ys < box[:, 2, None, None])
        & (xs >= box[:, 1, None, None]) & (xs < box[:, 3, None, None])
    )  # fmt: skip
    return img.masked_fill(inside[:, None], fill)


def gaussian_noise(img: torch.Tensor, gen: torch.Generator, std: float = 0.1) -> torch.Tensor:
    """Add N(0, std^2) per pixel and channel, clamp to [0,1]."""
    _check(img)
    n = torch.randn(img.shape, generator=gen, device=gen.device).to(device=img.device, dtype=img.dtype)
    return (img + std * n).clamp(0, 1)


def sobel(img: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image (replicate padding), / 4*sqrt(2) so it
    stays in [0,1], replicated on 3 channels. A constant image gives zeros."""
    _check(img)
    # separable form (difference [-1,0,1] x smoothing [1,2,1]); differences first, so a
    # constant image gives exact zeros
    p = F.pad(to_gray(img), (1, 1, 1, 1), mode="replicate")
    dx = p[..., :, 2:] - p[..., :, :-2]  # (B,1,H+2,W)
    gx = dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]
    dy = p[..., 2:, :] - p[..., :-2, :]  # (B,1,H,W+2)
    gy = dy[..., :, :-2] + 2 * dy[..., :, 1:-1] + dy[..., :, 2:]
    mag = torch.hypot(gx, gy) / SOBEL_MAX
    return mag.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def blur_kernel_size(side: int) -> int:
    """10% of the image side, made odd, at least 3 (SimCLR)."""
    k = max(3, int(0.1 * side))
    return k if k % 2 else k + 1


def gaussian_blur(
    img: torch.Tensor, gen: torch.Generator, sigma_min: float = 0.1, sigma_max: float = 2.0
) -> torch.Tensor:
    """Separable Gaussian blur, per-sample sigma U(sigma_min, sigma_max) px, normalised
    kernel, replicate padding (a constant image stays exactly constant)."""
    _check(img)
    bsz, c, h, w = img.shape
    k = blur_kernel_size(min(h, w))
    sigma = _uniform(gen, bsz, sigma_min, sigma_max, img)
    x = torch.arange(k, dtype=img.dtype, device=img.device) - (k - 1) / 2
    ker = torch.exp(-(x[None] ** 2) / (2 * sigma[:, None] ** 2))
    ker = ker / ker.sum(dim=1, keepdim=True)  # (B,k)
    ker = ker.repeat_interleave(c, dim=0)  # (B*C,k)
    y = img.reshape(1, bsz * c, h, w)
    p = k // 2
    y = F.conv2d(F.pad(y, (p, p, 0, 0), mode="replicate"), ker.view(-1, 1, 1, k), groups=bsz * c)
    y = F.conv2d(F.pad(y, (0, 0, p, p), mode="replicate"), ker.view(-1, 1, k, 1), groups=bsz * c)
    return y.reshape(bsz, c, h, w)


def normal_augment(img: torch.Tensor, gen: torch.Generator, cfg: AugConfig = AugConfig()) -> torch.Tensor:
    """The six transforms in PeCLR's order (Sobel, cut-out, blur, colour jitter, noise,
    colour drop), each applied to a sample with its probability. The random draws do not
    depend on which samples were picked, so the stream of the generator is fixed per batch."""
    _check(img)
    bsz = img.shape[0]

    def pick(p: float, aug: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        m = torch.rand(bsz, generator=gen, device=gen.device).to(cur.device) < p
        return torch.where(_bcast(m), aug, cur)

    x = img
    x = pick(cfg.p_sobel, sobel(x), x)
    x = pick(cfg.p_cutout, cutout(x, gen, cfg.cutout_min, cfg.cutout_max), x)
    x = pick(cfg.p_blur, gaussian_blur(x, gen, cfg.blur_sigma_min, cfg.blur_sigma_max), x)
    x = pick(cfg.p_jitter, color_jitter(x, gen, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue), x)
    x = pick(cfg.p_noise, gaussian_noise(x, gen, cfg.noise_std), x)
    x = pick(cfg.p_drop, color_drop(x), x)
    return x
