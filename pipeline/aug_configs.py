"""The augmentation settings of a training run, torch-free.

`TrainConfig` holds them, and the CLI reads their defaults for its help strings when it is
imported, so they live apart from the torch code that applies them (`pipeline.augment`,
`pipeline.train_data`): `hcdg store info` and `hcdg --help` do not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcdg.pipeline.config import ConfigError


@dataclass(frozen=True)
class ColorJitter:
    """Photometric jitter of the crop, factors drawn uniformly in [1 - x, 1 + x].

    Magnitudes 0.2 are the common torchvision-style choice; the paper does not state its
    training augmentation (hand3d used none beyond cropping), so these are ours.
    """

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


@dataclass(frozen=True)
class AugConfig:
    """Parameters of `normal_augment` (none are given by the paper; sources per field)."""

    # PeCLR sample_augmenter.py: sobel, cut-out, blur, noise, colour drop each with p = 0.5
    # (random.getrandbits(1)); colour jitter always when enabled.
    p_sobel: float = 0.5
    p_cutout: float = 0.5
    p_blur: float = 0.5
    p_jitter: float = 1.0
    p_noise: float = 0.5
    p_drop: float = 0.5
    # SimCLR colour jitter at strength s = 0.5: (0.8s, 0.8s, 0.8s, 0.2s).
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    # Cut-out square side as a fraction of the image side; PeCLR: "largest dimension ... 50%".
    cutout_min: float = 0.1
    cutout_max: float = 0.5
    # PeCLR noise_std = 25 on 0-255 images.
    noise_std: float = 0.1
    # SimCLR / PeCLR: sigma uniform in [0.1, 2.0] px, kernel side 10% of the image side.
    blur_sigma_min: float = 0.1
    blur_sigma_max: float = 2.0

    def __post_init__(self) -> None:
        for name in ("p_sobel", "p_cutout", "p_blur", "p_jitter", "p_noise", "p_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"aug.{name}: expected a probability in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.cutout_min <= self.cutout_max <= 1.0:
            raise ConfigError("aug.cutout_min/cutout_max: expected 0 < min <= max <= 1")
        if not 0.0 < self.blur_sigma_min <= self.blur_sigma_max:
            raise ConfigError("aug.blur_sigma_min/blur_sigma_max: expected 0 < min <= max")
