"""Pinhole projection, crop boxes, affine maps, crop warping and heatmaps, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hcdg.pipeline import camera
from hcdg.pipeline.camera import CropBox
from hcdg.pipeline.errors import HcdgError

K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])


def test_project_and_backproject_hand_worked():
    # u = 100 * 0.1 / 1 + 50 = 60, v = 100 * 0.2 / 1 + 40 = 60
    np.testing.assert_allclose(camera.project([0.1, 0.2, 1.0], K), [60.0, 60.0])
    # twice as far: half the offset from the principal point
    np.testing.assert_allclose(camera.project([0.1, 0.2, 2.0], K), [55.0, 50.0])
    np.testing.assert_allclose(camera.backproject([60.0, 60.0], 1.0, K), [0.1, 0.2, 1.0])
    np.testing.assert_allclose(camera.backproject([55.0, 50.0], 2.0, K), [0.1, 0.2, 2.0])


def test_project_backproject_batched_round_trip():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(4, 21, 3)) * 0.1 + [0, 0, 0.7]
    Ks = np.stack([K * [[1 + i, 1, 1], [1, 1 + i, 1], [1, 1, 1]] for i in range(4)])
    uv = camera.project(xyz, Ks)
    assert uv.shape == (4, 21, 2)
    np.testing.assert_allclose(uv[2], camera.project(xyz[2], Ks[2]))
    np.testing.assert_allclose(camera.backproject(uv, xyz[..., 2], Ks), xyz, atol=1e-12)
    # (B, 3) points with (B, 3, 3) intrinsics
    np.testing.assert_allclose(camera.project(xyz[:, 0], Ks)[3], camera.project(xyz[3, 0], Ks[3]))
    with pytest.raises(HcdgError):
        camera.project(np.zeros((21, 2)), K)


def _uv_square():
    uv = np.full((21, 2), 100.0)
    uv[0] = (100.0, 130.0)  # 30 px below the middle MCP (joint 9 at (100, 100))
    uv[4] = (80.0, 90.0)
    uv[12] = (105.0, 75.0)
    return uv


def test_crop_box_hand_worked():
    uv = _uv_square()
    box = camera.crop_box(uv)
    assert (box.cx, box.cy) == (100.0, 100.0)
    assert box.side == pytest.approx(60.0)  # 2 x 30
    assert camera.crop_box(uv, scale=2.0).side == pytest.approx(120.0)
    vis = np.ones(21, bool)
    vis[0] = False  # the far joint no longer counts: largest distance is 25 (joint 12)
    assert camera.crop_box(uv, vis).side == pytest.approx(50.0)
    assert camera.crop_box(uv * 0.1 + 90, vis).side == pytest.approx(camera.MIN_CROP_SIDE_PX)  # tiny hand
    # keypoints clipped to the image: an image 120 px high clips joint 0 to v = 119.5
    assert camera.crop_box(uv, image_size=(120, 200)).side == pytest.approx(50.0)
    box = camera.crop_box(uv, centre=(110.0, 100.0))  # joints 0 and 4 are both 30 px away (v resp. u)
    assert (box.cx, box.cy) == (110.0, 100.0) and box.side == pytest.approx(60.0)
    with pytest.raises(HcdgError):
        camera.crop_box(np.full((21, 2), np.nan))


def test_crop_box_xywh_round_trip():
    box = CropBox.from_xywh([-58.7, 16.5, 507.1, 507.1])
    assert box.cx == pytest.approx(-58.7 + 253.55) and box.side == pytest.approx(507.1)
    np.testing.assert_allclose(box.to_xywh(), [-58.7, 16.5, 507.1, 507.1])
    assert CropBox.from_xywh([0, 0, 10, 20]).side == 20
    with pytest.raises(HcdgError):
        CropBox.from_xywh([0, 0, 0, 10])


def test_crop_affine_corner_points():
    box = CropBox(cx=100.0, cy=80.0, side=50.0)
    A = camera.crop_from_box(box, 256)
    # box edges -> crop edges (-0.5 and 255.5 with integer pixel centres), centre -> 127.5
    pts = np.array([[75.0, 55.0], [125.0, 105.0], [100.0, 80.0], [75.0, 105.0]])
    np.testing.assert_allclose(
        camera.apply_affine(A, pts), [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5], [-0.5, 255.5]]
    )
    Ai = camera.affine_inverse(A)
    np.testing.assert_allclose(Ai @ A, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(camera.apply_affine(Ai, [[127.5, 127.5]]), [[100.0, 80.0]])
    # rotation about a point keeps the point, turns x into y
    R = camera.rotation_about(np.pi / 2, (10.0, 20.0))
    np.testing.assert_allclose(camera.apply_affine(R, [[10.0, 20.0], [11.0, 20.0]]), [[10, 20], [10, 21]], atol=1e-12)


def _ramp_image(h=120, w=160):
    v, u = np.mgrid[0:h, 0:w]
    return np.stack([u, v, np.full_like(u, 200)], -1).astype(np.uint8)


def test_warp_to_crop_samples_where_the_affine_says():
    img = _ramp_image()
    # pure translation, 1:1 scale: crop pixel (x, y) = image pixel (x + 30, y + 20) exactly
    box = CropBox(cx=30 + 31.5, cy=20 + 31.5, side=64.0)
    out = camera.warp_to_crop(img, camera.crop_from_box(box, 64), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img[20:84, 30:94])
    # zoom x2 plus a rotation: bilinear interpolation of a linear ramp is exact up to rounding
    A = camera.crop_from_box(CropBox(80.0, 60.0, 40.0), 80) @ camera.rotation_about(0.3, (80.0, 60.0))
    out = camera.warp_to_crop(img, A, 80).astype(float)
    y, x = np.mgrid[0:80, 0:80]
    src = camera.apply_affine(camera.affine_inverse(A), np.stack([x, y], -1).astype(float))
    assert np.all((src[..., 0] > 0) & (src[..., 0] < 159) & (src[..., 1] > 0) & (src[..., 1] < 119))
    assert np.abs(out[..., 0] - src[..., 0]).max() <= 1.0
    assert np.abs(out[..., 1] - src[..., 1]).max() <= 1.0
    # outside the image: black
    out = camera.warp_to_crop(img, camera.crop_from_box(CropBox(-100.0, -100.0, 50.0), 16), 16)
    assert out.max() == 0
    with pytest.raises(HcdgError):
        camera.warp_to_crop(img.astype(np.float32), A, 16)


def test_heatmap_coordinates_hand_worked():
    # 256 crop -> 32 heatmap: crop edges -0.5 / 255.5 -> -0.5 / 31.5, crop centre 127.5 -> 15.5
    np.testing.assert_allclose(
        camera.crop_to_heatmap([[-0.5, 255.5], [127.5, 3.5]], 256, 32), [[-0.5, 31.5], [15.5, 0.0]]
    )
    uv = np.array([[12.3, 200.7]])
    np.testing.assert_allclose(camera.heatmap_to_crop(camera.crop_to_heatmap(uv, 256, 32), 256, 32), uv)


def test_gaussian_heatmaps_peak_and_values():
    sigma = 1.25
    uv = np.array([[10.0, 5.0], [10.3, 5.0], [3.0, 20.0]])
    vis = np.array([True, True, False])
    hm = camera.gaussian_heatmaps(uv, 32, sigma, vis)
    assert hm.shape == (3, 32, 32) and hm.dtype == np.float32
    # exactly on a pixel centre: peak 1 there, indexed [v, u]
    assert hm[0, 5, 10] == pytest.approx(1.0)
    assert hm[0, 5, 11] == pytest.approx(np.exp(-1.0 / (2 * sigma**2)))
    assert hm[0, 7, 9] == pytest.approx(np.exp(-5.0 / (2 * sigma**2)))
    # off-centre by 0.3 px: the max is at the nearest pixel, value exp(-0.09 / 2 sigma^2)
    np.testing.assert_array_equal(camera.heatmap_argmax(hm[:2]), [[10, 5], [10, 5]])
    assert hm[1].max() == pytest.approx(np.exp(-0.09 / (2 * sigma**2)), rel=1e-6)
    assert hm[1, 5, 11] == pytest.approx(np.exp(-0.49 / (2 * sigma**2)), rel=1e-6)
    assert hm[2].max() == 0.0  # invisible joint: zero map
    assert camera.gaussian_heatmaps(np.array([[np.nan, 1.0]]), 8, 1.0).max() == 0.0
    with pytest.raises(HcdgError):
        camera.gaussian_heatmaps(uv, 32, 0.0)
