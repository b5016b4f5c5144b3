"""L_heat readings (pipeline.heatmap_loss): hand-worked reductions, stages, resolution, Gaussians."""

import math

import numpy as np
import pytest
import torch

from hcdg.pipeline import camera
from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.heatmap_loss import HeatLossConfig, argmax_uv, heatmap_loss, render_gaussians


def _cfg(reduction="mean", stages="all", resolution="grid"):
    return HeatLossConfig(reduction, stages, resolution)


def test_reductions_hand_worked():
    # B=1, J=2, 2x2 maps; error 1 on every pixel of map 0, 2 on one pixel of map 1
    gt = torch.zeros(1, 2, 2, 2)
    p = gt.clone()
    p[0, 0] = 1.0
    p[0, 1, 0, 0] = 2.0
    # squared errors: map0 = [1,1,1,1] (sum 4), map1 = [4,0,0,0] (sum 4)
    assert heatmap_loss([p], cfg=_cfg("mean"), gt_grid=gt).item() == pytest.approx(8 / 8)
    assert heatmap_loss([p], cfg=_cfg("sum"), gt_grid=gt).item() == pytest.approx(8.0)
    # rmse per map: sqrt(4/4)=1, sqrt(4/4)=1 -> mean 1; with visibility [1, 0]: 1 / (1 + 0.001)
    assert heatmap_loss([p], cfg=_cfg("rmse"), gt_grid=gt).item() == pytest.approx(1.0, rel=1e-6)
    vis = torch.tensor([[1.0, 0.0]])
    assert heatmap_loss([p], cfg=_cfg("rmse"), gt_grid=gt, visible=vis).item() == pytest.approx(1 / 1.001, rel=1e-6)
    assert heatmap_loss([p], cfg=_cfg("sum"), gt_grid=gt, visible=vis).item() == pytest.approx(4.0)
    assert heatmap_loss([p], cfg=_cfg("mean"), gt_grid=gt, visible=vis).item() == pytest.approx(1.0)


def test_sum_reduction_is_per_sample_and_averaged_over_the_batch():
    gt = torch.zeros(2, 1, 2, 2)
    p = torch.ones(2, 1, 2, 2)
    assert heatmap_loss([p], cfg=_cfg("sum"), gt_grid=gt).item() == pytest.approx(4.0)


def test_stages_all_sums_stages_and_last_takes_the_final_one():
    gt = torch.zeros(1, 1, 2, 2)
    s1, s2 = torch.full((1, 1, 2, 2), 1.0), torch.full((1, 1, 2, 2), 2.0)
    assert heatmap_loss([s1, s2], cfg=_cfg("mean", "all"), gt_grid=gt).item() == pytest.approx(5.0)
    assert heatmap_loss([s1, s2], cfg=_cfg("mean", "last"), gt_grid=gt).item() == pytest.approx(4.0)


def test_crop_resolution_upsamples_and_draws_targets_at_crop_pixels():
    # a prediction equal to the crop-resolution target, downsampled, is not exactly it, but a
    # constant map upsampled is still that constant: error = mean of (c - target)^2 at crop size
    uv = torch.tensor([[[10.0, 20.0]]])
    target = render_gaussians(uv, 32, 2.0, "exp-d2-2s2")
    c = torch.full((1, 1, 4, 4), 0.25)
    got = heatmap_loss([c], cfg=_cfg("mean", "all", "crop"), uv_crop_px=uv, crop_size=32, sigma_px=2.0)
    assert got.item() == pytest.approx(float(((0.25 - target) ** 2).mean()), rel=1e-6)
    with pytest.raises(Exception, match="crop"):
        heatmap_loss([c], cfg=_cfg("mean", "all", "crop"))


@pytest.mark.parametrize("gaussian,denom", [("exp-d2-2s2", 2.0), ("exp-d2-s2", 1.0)])
def test_gaussian_formulas_torch_and_numpy_agree(gaussian, denom):
    sigma = 1.25
    uv = np.array([[10.0, 5.0], [3.4, 20.2]])
    ref = camera.gaussian_heatmaps(uv, 32, sigma, None, gaussian)
    got = render_gaussians(torch.tensor(uv[None], dtype=torch.float32), 32, sigma, gaussian)[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert ref[0, 5, 11] == pytest.approx(math.exp(-1.0 / (denom * sigma**2)), rel=1e-6)
    # the authors' sigma is sqrt(2) x a standard deviation
    np.testing.assert_allclose(camera.gaussian_heatmaps(uv, 32, sigma * 2**0.5, None, "exp-d2-s2"),
                               camera.gaussian_heatmaps(uv, 32, sigma, None, "exp-d2-2s2"), atol=1e-6)


def test_render_gaussians_zeroes_invisible_and_non_finite_joints():
    uv = torch.tensor([[[1.0, 1.0], [float("nan"), 2.0], [2.0, 2.0]]])
    maps = render_gaussians(uv, 8, 1.0, "exp-d2-s2", torch.tensor([[True, True, False]]))
    assert maps[0, 0].max() == pytest.approx(1.0) and maps[0, 1].max() == 0 and maps[0, 2].max() == 0


def test_argmax_uv_finds_the_peak_in_crop_pixels():
    cells = torch.tensor([[[3.0, 5.0], [6.0, 1.0]]])  # peaks on 8x8 grid cells (u, v)
    maps = render_gaussians(cells, 8, 1.0, "exp-d2-s2")
    got = argmax_uv(maps, 64)
    assert got.shape == (1, 2, 2)
    # grid cell i is centred on crop pixel (i + 0.5) * 8 - 0.5 = 8 i + 3.5
    assert (got - (cells * 8 + 3.5)).abs().max() <= 0.5


def test_config_refuses_unknown_values():
    with pytest.raises(ConfigError, match="heat_reduction"):
        HeatLossConfig(reduction="l1")
