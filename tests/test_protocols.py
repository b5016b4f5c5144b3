"""Every evaluation protocol on constructed predictions with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hcdg.pipeline import protocols
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import MIDDLE_MCP, MIDDLE_PIP, PARENTS

K = np.array([[600.0, 0.0, 160.0], [0.0, 610.0, 150.0], [0.0, 0.0, 1.0]])
HM = 32  # heatmap side (256 crop / 8)


def _hands(n: int, seed: int = 0) -> np.ndarray:
    """(n, 21, 3) metres: random bone chains in FreiHAND order, 0.4-0.6 m in front of the camera."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 21, 3))
    for i in range(n):
        out[i, 0] = [rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.4, 0.6)]
        for j in range(1, 21):
            d = rng.normal(size=3)
            out[i, j] = out[i, PARENTS[j]] + 0.03 * d / np.linalg.norm(d)
    return out


def _bone(xyz):
    return np.linalg.norm(xyz[:, MIDDLE_PIP] - xyz[:, MIDDLE_MCP], axis=-1)


def _project(xyz):
    uvw = xyz @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


def _crop_maps(uv_img):
    """Per-sample heatmap->image maps that put each hand inside the heatmap, 10 cells from its border."""
    lo, hi = uv_img.min(axis=1), uv_img.max(axis=1)
    centre = 0.5 * (lo + hi)
    side = (hi - lo).max(axis=1) * HM / (HM - 21)  # image px spanned by the heatmap
    s = side / HM
    A = np.zeros((len(uv_img), 3, 3))
    A[:, 0, 0] = A[:, 1, 1] = s
    A[:, :2, 2] = centre - s[:, None] * (HM - 1) / 2
    A[:, 2, 2] = 1.0
    return A


def _gaussian_heatmaps(uv_hm, sigma=1.2):
    g = np.arange(HM, dtype=np.float64)
    dx = g[None, None, None, :] - uv_hm[..., 0, None, None]
    dy = g[None, None, :, None] - uv_hm[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma**2))


def _network_outputs(pred_m, gt_m, A):
    """What a network predicting metric joints `pred_m` would output: rel-norm (GT bone) + heatmap uv."""
    rel = (pred_m - pred_m[:, :1]) / _bone(gt_m)[:, None, None]
    uv_hm = protocols.heatmap_to_image(_project(pred_m), np.linalg.inv(A))
    return rel, uv_hm


@pytest.fixture
def scene():
    gt = _hands(6)
    A = _crop_maps(_project(gt))
    return gt, A


def _all(rel, gt, A, uv_hm, gt_root="wrist"):
    res = protocols.run_protocols(rel, gt, gt_root=gt_root, K=K, uv_hm=uv_hm, image_from_heatmap=A)
    return {(r.protocol, r.root): r for r in res}


def test_perfect_prediction_scores_zero_under_every_protocol(scene):
    gt, A = scene
    rel, uv_hm = _network_outputs(gt, gt, A)
    res = _all(rel, gt, A, uv_hm)
    assert set(res) == {(p, "wrist") for p in protocols.OUTPUT_PROTOCOLS["xyz"]} | {("rr-gtscale", "palm")}
    for r in res.values():
        assert r.errors_mm.shape == (6, 21) and r.pred_xyz_m.shape == r.gt_xyz_m.shape == (6, 21, 3)
        assert r.errors_mm.max() < 1e-6, r.protocol
        np.testing.assert_allclose(r.gt_xyz_m[:, 1:], gt[:, 1:])


def test_translation_scores_zero_only_under_rr_gtscale_and_pa(scene):
    gt, A = scene
    moved = gt + np.array([0.02, -0.01, 0.03])
    rel, uv_hm = _network_outputs(moved, gt, A)
    rel = rel + np.array([0.5, 0.2, -0.1])  # not even root-relative: rr-gtscale re-roots it
    res = _all(rel, gt, A, uv_hm)
    assert res["rr-gtscale", "wrist"].errors_mm.max() < 1e-9
    assert res["pa", "wrist"].errors_mm.max() < 1e-6
    # 2.5D: the 2D detections moved, so even with the GT root depth the joints are off
    assert res["2.5d-gtroot-gtbone", "wrist"].errors_mm.mean() > 5.0


def test_scaled_prediction_scores_zero_only_under_pa(scene):
    gt, A = scene
    root = gt[:, :1]
    scaled = root + 1.3 * (gt - root)
    rel, uv_hm = _network_outputs(scaled, gt, A)
    res = _all(rel, gt, A, uv_hm)
    assert res["pa", "wrist"].errors_mm.max() < 1e-6
    rr = res["rr-gtscale", "wrist"].errors_mm
    np.testing.assert_allclose(rr, 0.3 * np.linalg.norm(gt - root, axis=-1) * 1000, rtol=1e-9)
    assert res["2.5d-gtroot-gtbone", "wrist"].errors_mm.mean() > 5.0


def test_rotated_prediction_is_fixed_by_pa_only(scene):
    gt, A = scene
    R = Rotation.from_rotvec([0.0, 0.0, 0.4]).as_matrix()
    root = gt[:, :1]
    rel = ((gt - root) @ R.T) / _bone(gt)[:, None, None]
    assert protocols.pa(rel, gt).errors_mm.max() < 1e-6
    assert protocols.rr_gtscale(rel, gt).errors_mm.mean() > 5.0


def test_gtroot_25d_exact_with_soft_argmax_on_synthetic_peaks(scene):
    gt, A = scene
    rel, uv_hm = _network_outputs(gt, gt, A)
    heat = _gaussian_heatmaps(uv_hm)
    uv_soft = protocols.decode_heatmaps(heat, "soft-argmax", window_px=None)
    np.testing.assert_allclose(uv_soft, uv_hm, atol=1e-8)
    exact = protocols.gtroot_25d(rel, uv_soft, A, gt, K)
    assert exact.errors_mm.max() < 1e-4
    # argmax: within heatmap quantisation (half a heatmap cell, in image px back-projected)
    uv_arg = protocols.decode_heatmaps(heat, "argmax")
    assert np.abs(uv_arg - uv_hm).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(uv_arg, np.round(uv_hm))
    quant = protocols.gtroot_25d(rel, uv_arg, A, gt, K)
    cell_mm = A[:, 0, 0] / K[0, 0] * gt[..., 2].max(axis=1) * 1000  # one heatmap cell at the hand, mm
    assert quant.errors_mm.max() <= (np.sqrt(0.5) * cell_mm).max() + 1e-6
    assert quant.errors_mm.max() > 0.0
    # windowed soft-argmax: sub-cell accuracy, better than argmax
    uv_win = protocols.decode_heatmaps(heat, "soft-argmax", window_px=3)
    assert np.abs(uv_win - uv_hm).max() < np.abs(uv_arg - uv_hm).max()


def test_decode_heatmaps_reads_column_then_row():
    hm = np.zeros((1, 2, 8, 8))
    hm[0, 0, 5, 7] = 1.0  # row 5, column 7
    hm[0, 1, 2, 3] = 2.0
    hm[0, 1, 2, 4] = 2.0  # two equal cells: soft-argmax lands between them
    np.testing.assert_array_equal(protocols.decode_heatmaps(hm, "argmax")[0, 0], [7.0, 5.0])
    np.testing.assert_allclose(protocols.decode_heatmaps(hm, "soft-argmax")[0], [[7.0, 5.0], [3.5, 2.0]])
    with pytest.raises(HcdgError, match="decoder"):
        protocols.decode_heatmaps(hm, "mean")


def test_stb_palm_root_both_handlings(scene):
    gt_wrist, A = scene
    mcp = gt_wrist[:, MIDDLE_MCP]
    gt_palm = gt_wrist.copy()
    gt_palm[:, 0] = mcp + (gt_wrist[:, 0] - mcp) / 2.2  # the palm that converts back to this wrist
    rel, uv_hm = _network_outputs(gt_wrist, gt_wrist, A)
    res = _all(rel, gt_palm, A, uv_hm, gt_root="palm")
    assert set(res) == {(p, r) for p in protocols.OUTPUT_PROTOCOLS["xyz"] for r in ("wrist", "palm")}
    # wrist: GT palm converted to the wrist -> a perfect prediction scores 0
    for p in protocols.OUTPUT_PROTOCOLS["xyz"]:
        assert res[p, "wrist"].errors_mm.max() < 1e-6, p
        np.testing.assert_allclose(res[p, "wrist"].gt_xyz_m, gt_wrist, atol=1e-12)
    # palm, rr-gtscale: the predicted palm point (wrist+MCP)/2 is placed on the GT palm, so joint 0
    # is exact and every other joint is shifted by palm_gt - palm_pred; hand-worked:
    # |wrist - mcp| * (1/2 - 1/2.2)
    shift = np.linalg.norm(gt_wrist[:, 0] - mcp, axis=-1) * (0.5 - 1 / 2.2) * 1000
    rr = res["rr-gtscale", "palm"].errors_mm
    np.testing.assert_allclose(rr[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(rr[:, 1:], np.repeat(shift[:, None], 20, axis=1), rtol=1e-9)
    np.testing.assert_allclose(res["rr-gtscale", "palm"].gt_xyz_m, gt_palm)


def test_palm_root_scores_zero_when_gt_palm_is_the_midpoint(scene):
    gt_wrist, A = scene
    gt_palm = gt_wrist.copy()
    gt_palm[:, 0] = 0.5 * (gt_wrist[:, 0] + gt_wrist[:, MIDDLE_MCP])
    rel, uv_hm = _network_outputs(gt_wrist, gt_wrist, A)
    for p in protocols.OUTPUT_PROTOCOLS["xyz"]:
        r = _all(rel, gt_palm, A, uv_hm, gt_root="palm")[p, "palm"]
        assert r.errors_mm.max() < 1e-6, p


def test_wrist_rooted_data_gets_hand3d_palm_root_under_rr_gtscale(scene):
    """hand3d's RHD reading: GT and prediction joint 0 = (wrist + middle MCP) / 2, the root."""
    gt, A = scene
    rel, uv_hm = _network_outputs(gt, gt, A)
    res = _all(rel, gt, A, uv_hm)
    assert protocols.roots_for("wrist", "rr-gtscale") == ("wrist", "palm")
    assert protocols.roots_for("wrist", "gtroot-2.5d") == ("wrist",) == protocols.roots_for("wrist", "pa")
    palm = res["rr-gtscale", "palm"]
    mid = 0.5 * (gt[:, 0] + gt[:, MIDDLE_MCP])
    np.testing.assert_allclose(palm.gt_xyz_m[:, 0], mid)
    assert palm.errors_mm.max() < 1e-9
    # a prediction whose wrist alone is off by 2 cm: the wrist root moves every joint by it,
    # the palm root (midpoint) by half of it; joint 0, the root, sits on the GT root in both
    bad = rel.copy()
    bad[:, 0] += np.array([0.02, 0.0, 0.0]) / _bone(gt)[:, None]
    w = protocols.rr_gtscale(bad, gt, root="wrist").errors_mm
    p = protocols.rr_gtscale(bad, gt, root="palm").errors_mm
    np.testing.assert_allclose(w[:, 1:], 20.0, rtol=1e-9)
    np.testing.assert_allclose(p[:, 1:], 10.0, rtol=1e-9)
    np.testing.assert_allclose(p[:, 0], 0.0, atol=1e-9)
    vis = np.ones((2, 21), bool)
    vis[0, 0] = False
    vis[1, [0, MIDDLE_MCP]] = False
    np.testing.assert_array_equal(protocols.palm_visible(vis)[:, 0], [True, False])


def test_pa_admits_reflections_pa_proper_does_not(scene):
    gt, A = scene
    root = gt[:, :1]
    flipped = (gt - root) * np.array([1.0, 1.0, -1.0]) / _bone(gt)[:, None, None]  # depth flipped
    res = {r.protocol: r for r in protocols.run_protocols(flipped, gt, protocols=("pa", "pa-proper"))}
    assert res["pa"].errors_mm.max() < 1e-6
    assert res["pa-proper"].errors_mm.mean() > 5.0
    np.testing.assert_allclose(res["pa"].pred_xyz_m, protocols.pa(flipped, gt).pred_xyz_m)


def test_unknown_names_and_missing_inputs_are_errors(scene):
    gt, A = scene
    rel, uv_hm = _network_outputs(gt, gt, A)
    with pytest.raises(HcdgError, match="unknown 'mpjpe'"):
        protocols.run_protocols(rel, gt, protocols=("mpjpe",))
    with pytest.raises(HcdgError, match="needs K"):
        protocols.run_protocols(rel, gt, protocols=("2.5d-gtroot-gtbone",))


def test_image_from_heatmap_inverts_the_crop_and_heatmap_maps():
    from hcdg.pipeline import camera

    C = np.array([[1.7, 0.3, -40.0], [-0.3, 1.7, 12.0], [0.0, 0.0, 1.0]])  # rotated, scaled crop
    uv = np.array([[[100.0, 80.0], [150.5, 120.25]]])
    uv_hm = camera.crop_to_heatmap(camera.apply_affine(C, uv), 256, 32)
    back = protocols.heatmap_to_image(uv_hm, protocols.image_from_heatmap(C, 256, 32))
    np.testing.assert_allclose(back, uv, atol=1e-9)


@pytest.mark.parametrize("side", ["right", "left"])
def test_gtroot_25d_near_zero_through_the_real_transform(side):
    """prepare() targets fed back as a 'perfect network': heatmaps + rel depth -> ~0 mm."""
    from hcdg.pipeline.datasets.base import Sample
    from hcdg.pipeline.transforms import CropConfig, prepare

    xyz = _hands(1, seed=4)[0]
    Kf = np.array([[500.0, 0.0, 159.5], [0.0, 500.0, 159.5], [0.0, 0.0, 1.0]])
    uvw = xyz @ Kf.T
    sample = Sample(
        dataset="rhd", split="evaluation", index=0, sample_id="00000", image_path=None, K=Kf, xyz=xyz,
        uv=uvw[:, :2] / uvw[:, 2:], visible=np.ones(21, bool), side=side, root="wrist",
        image=np.zeros((320, 320, 3), np.uint8),
    )
    cfg = CropConfig(input_size=256, sigma_px=10.0, crop_scale=1.6)  # 32x32 heatmaps, margin
    d = prepare(sample, cfg)
    uv_hm = protocols.decode_heatmaps(d["heatmaps"][None], "soft-argmax", window_px=None)
    A = protocols.image_from_heatmap(d["crop_from_image"], cfg.input_size, cfg.heatmap_size)
    res = protocols.gtroot_25d(d["xyz_rel_norm"][None], uv_hm, A, d["xyz_m"][None], d["K"])
    assert res.errors_mm.max() < 0.05  # float32 heatmaps / rel-norm targets
    np.testing.assert_allclose(res.gt_xyz_m[0], d["xyz_m"])
