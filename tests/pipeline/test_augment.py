"""Table 6 augmentations: each transform's defining property on small batches."""

import math

import pytest
import torch

from hcdg.pipeline.augment import (
    AugConfig,
    blur_kernel_size,
    color_drop,
    color_jitter,
    cutout,
    cutout_boxes,
    gaussian_blur,
    gaussian_noise,
    normal_augment,
    sobel,
)
from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(b=4, s=32, seed=0):
    return torch.rand(b, 3, s, s, generator=_gen(seed))


def test_color_drop_gives_equal_channels_with_luma_weights():
    x = _images()
    y = color_drop(x)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert torch.allclose(color_drop(red), torch.full((1, 3, 2, 2), 0.299))


def test_cutout_sets_exactly_one_square_box_to_zero():
    x = 0.25 + 0.5 * _images()  # nothing is zero before
    y = cutout(x, _gen(3), 0.1, 0.5)
    boxes = cutout_boxes(_gen(3), 4, 32, 32, 0.1, 0.5)
    for i, (y0, x0, y1, x1) in enumerate(boxes.tolist()):
        assert y1 - y0 == x1 - x0 and 3 <= y1 - y0 <= 16 and 0 <= y0 and y1 <= 32 and 0 <= x0 and x1 <= 32
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert torch.all(y[i][:, inside] == 0)
        assert torch.equal(y[i][:, ~inside], x[i][:, ~inside])


def test_gaussian_noise_has_the_requested_spread_and_follows_the_seed():
    x = torch.full((2, 3, 64, 64), 0.5)
    y = gaussian_noise(x, _gen(1), std=0.1)
    assert (y - x).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(y, gaussian_noise(x, _gen(1), std=0.1))
    assert not torch.equal(y, gaussian_noise(x, _gen(2), std=0.1))
    assert y.min() >= 0 and y.max() <= 1


def test_sobel_of_a_constant_is_zero_and_a_step_edge_is_found():
    assert torch.equal(sobel(torch.full((2, 3, 8, 8), 0.7)), torch.zeros(2, 3, 8, 8))
    step = torch.zeros(1, 3, 6, 6)
    step[..., 3:] = 1.0  # vertical edge between columns 2 and 3
    y = sobel(step)[0, 0]
    # horizontal gradient (1+2+1)*(1-0) = 4 on both edge columns, / (4*sqrt 2)
    assert torch.allclose(y[:, 2:4], torch.full((6, 2), 1 / math.sqrt(2)))
    assert torch.equal(y[:, [0, 1, 4, 5]], torch.zeros(6, 4))


def test_gaussian_blur_keeps_constants_and_smooths_noise():
    const = torch.full((3, 3, 40, 40), 0.3)
    assert torch.allclose(gaussian_blur(const, _gen(), 1.0, 2.0), const, atol=1e-6)
    x = _images(s=40)
    y = gaussian_blur(x, _gen(), 1.0, 2.0)
    assert y.std() < 0.6 * x.std()
    assert y.mean().item() == pytest.approx(x.mean().item(), abs=0.01)
    assert blur_kernel_size(256) == 25 and blur_kernel_size(128) == 13 and blur_kernel_size(16) == 3


def test_color_jitter_stays_in_range_keeps_grey_grey_and_is_identity_at_zero_strength():
    x = _images()
    y = color_jitter(x, _gen(4))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)
    grey = color_drop(x)
    yg = color_jitter(grey, _gen(4))
    assert torch.allclose(yg[:, 0], yg[:, 1], atol=1e-5) and torch.allclose(yg[:, 1], yg[:, 2], atol=1e-5)
    assert torch.allclose(color_jitter(x, _gen(4), 0.0, 0.0, 0.0, 0.0), x, atol=1e-5)


def test_normal_augment_probabilities_and_seed():
    x = _images()
    off = AugConfig(p_sobel=0, p_cutout=0, p_blur=0, p_jitter=0, p_noise=0, p_drop=0)
    assert torch.equal(normal_augment(x, _gen(), off), x)
    drop_only = AugConfig(p_sobel=0, p_cutout=0, p_blur=0, p_jitter=0, p_noise=0, p_drop=1)
    assert torch.equal(normal_augment(x, _gen(), drop_only), color_drop(x))
    a = normal_augment(x, _gen(5))
    assert torch.equal(a, normal_augment(x, _gen(5))) and not torch.equal(a, normal_augment(x, _gen(6)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_bad_inputs():
    with pytest.raises(HcdgError, match=r"\(B,3,H,W\)"):
        sobel(torch.zeros(3, 8, 8))
    with pytest.raises(ConfigError, match="p_noise"):
        AugConfig(p_noise=1.5)
