"""Metrics against hand-worked cases (hcdg.pipeline.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hcdg.pipeline import metrics
from hcdg.pipeline.errors import HcdgError


def test_joint_errors_are_euclidean_in_mm():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[0.003, 0.0, 0.0], [0.0, 0.0024, 0.0032]]])  # 3 mm; 3-4-5 triangle: 4 mm
    np.testing.assert_allclose(metrics.joint_errors_mm(pred, gt), [[3.0, 4.0]])


def test_errors_3_and_4_give_epe_3_5_and_pck_half_at_3_5():
    err = np.array([[3.0, 4.0]])
    assert metrics.epe_mean_mm(err) == pytest.approx(3.5)
    assert metrics.epe_median_mm(err) == pytest.approx(3.5)
    np.testing.assert_allclose(metrics.pck_curve(err, [2.9, 3.0, 3.5, 4.0]), [0.0, 0.5, 0.5, 1.0])


def test_median_is_mean_of_per_joint_medians_as_evalutil():
    # joint 0 errors {1, 2, 10}: median 2; joint 1 errors {0, 0, 30}: median 0 -> 1.0
    err = np.array([[1.0, 0.0], [2.0, 0.0], [10.0, 30.0]])
    assert metrics.epe_median_mm(err) == pytest.approx(1.0)
    assert metrics.epe_mean_mm(err) == pytest.approx((13 / 3 + 10) / 2)


def test_mask_drops_joints_and_averages_per_joint():
    err = np.array([[1.0, 100.0], [3.0, 7.0]])
    mask = np.array([[True, False], [True, True]])
    # joint 0 mean 2, joint 1 mean 7 (the 100 is masked out) -> 4.5
    assert metrics.epe_mean_mm(err, mask) == pytest.approx(4.5)
    np.testing.assert_allclose(metrics.sample_epe_mm(err, mask), [1.0, 5.0])
    # PCK at 5 mm: joint 0 2/2, joint 1 0/1 -> 0.5
    assert metrics.pck_curve(err, [5.0], mask)[0] == pytest.approx(0.5)
    assert np.isnan(metrics.epe_mean_mm(err, np.zeros_like(mask)))


def test_visible_mask_combines_flags_and_image_bounds():
    vis = np.array([[True, False, True]])
    uv = np.array([[[5.0, 5.0], [1.0, 1.0], [12.0, 3.0]]])
    m = metrics.visible_mask((1, 3), visible=vis, uv_px=uv, image_size_px=(10, 10))
    np.testing.assert_array_equal(m, [[True, False, False]])


def test_auc_of_a_step_and_of_a_ramp():
    thr = np.linspace(0.0, 50.0, 11)  # 5 mm steps
    step = (thr >= 25.0).astype(float)  # 0 up to 20, 1 from 25: trapezoid area 2.5 + 25 = 27.5
    assert metrics.auc(step, thr) == pytest.approx(27.5 / 50.0)
    assert metrics.auc(thr / 50.0, thr) == pytest.approx(0.5)
    # every error 10 mm -> PCK is a step at 10 mm on hand3d's 20 thresholds
    err = np.full((4, 21), 10.0)
    t20 = metrics.THRESHOLDS_20_MM
    curve = (t20 >= 10.0).astype(float)
    assert metrics.auc_0_50(err, steps=20) == pytest.approx(np.trapezoid(curve, t20) / 50.0)
    assert metrics.auc_20_50_hand3d(err) == pytest.approx(1.0)  # all under 21.05 mm


def test_hand3d_thresholds_for_auc_20_50():
    thr = metrics.THRESHOLDS_20_MM[metrics.HAND3D_AUC_20_50_START :]
    assert len(metrics.THRESHOLDS_20_MM) == 20 and thr.size == 12
    assert thr[0] == pytest.approx(8 * 50.0 / 19)  # 21.05 mm
    assert thr[-1] == pytest.approx(50.0)
    # errors of 30 mm: PCK 0 below 30, 1 from 31.58 mm on; 20-50 reading differs from 0-50
    err = np.full((2, 21), 30.0)
    a2050 = metrics.auc_20_50_hand3d(err)
    expected = np.trapezoid((thr >= 30.0).astype(float), thr) / (50.0 - thr[0])
    assert a2050 == pytest.approx(expected)
    assert metrics.auc_0_50(err, steps=100) < a2050


def test_summarise_reports_all_numbers():
    err = np.array([[3.0, 4.0], [3.0, 4.0]])
    s = metrics.summarise(err)
    assert s["n_samples"] == 2 and s["epe_mean_mm"] == pytest.approx(3.5)
    assert len(s["pck"]) == len(s["pck_thresholds_mm"]) == 100
    assert s["pck"][-1] == 1.0 and s["pck"][0] == 0.0


def _points(rng, n=21):
    return rng.normal(scale=0.04, size=(n, 3)) + np.array([0.0, 0.0, 0.5])


def test_procrustes_recovers_a_known_similarity_transform_exactly():
    rng = np.random.default_rng(0)
    src = _points(rng)
    R = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    s, t = 1.7, np.array([0.1, -0.2, 0.3])
    dst = s * src @ R.T + t
    scale, rot, trans = metrics.similarity_transform(src, dst)
    assert scale == pytest.approx(s, rel=1e-10)
    np.testing.assert_allclose(rot, R, atol=1e-10)
    np.testing.assert_allclose(trans, t, atol=1e-10)
    np.testing.assert_allclose(metrics.procrustes_align(src, dst), dst, atol=1e-12)


def test_procrustes_batched_matches_single():
    rng = np.random.default_rng(1)
    src = np.stack([_points(rng) for _ in range(3)])
    dst = np.stack([_points(rng) for _ in range(3)])
    batched = metrics.procrustes_align(src, dst)
    for i in range(3):
        np.testing.assert_allclose(batched[i], metrics.procrustes_align(src[i], dst[i]), atol=1e-12)


def test_procrustes_refuses_reflections_unless_asked():
    rng = np.random.default_rng(2)
    src = _points(rng)
    mirrored = src * np.array([-1.0, 1.0, 1.0])  # a reflection: no rotation maps src onto it
    _, rot, _ = metrics.similarity_transform(src, mirrored)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    assert metrics.joint_errors_mm(metrics.procrustes_align(src, mirrored), mirrored).mean() > 1.0
    _, rot_r, _ = metrics.similarity_transform(src, mirrored, allow_reflection=True)
    assert np.linalg.det(rot_r) == pytest.approx(-1.0)
    aligned = metrics.procrustes_align(src, mirrored, allow_reflection=True)
    np.testing.assert_allclose(aligned, mirrored, atol=1e-12)


def test_procrustes_aligned_error_never_exceeds_centred_error():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = _points(rng), _points(rng)
        centred = a - a.mean(0) + b.mean(0)
        e_pa = metrics.joint_errors_mm(metrics.procrustes_align(a, b), b).mean()
        assert e_pa <= metrics.joint_errors_mm(centred, b).mean() + 1e-9


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(HcdgError, match="shapes"):
        metrics.joint_errors_mm(np.zeros((2, 21, 3)), np.zeros((2, 20, 3)))


def _toolbox_reference(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The FreiHAND toolbox's `align_w_scale(gt, pred)` (eval.py), one sample, via scipy as it does."""
    from scipy.linalg import orthogonal_procrustes

    g_c, p_c = gt - gt.mean(0), pred - pred.mean(0)
    s_g, s_p = np.linalg.norm(g_c) + 1e-8, np.linalg.norm(p_c) + 1e-8
    rot, scale = orthogonal_procrustes(g_c / s_g, p_c / s_p)
    return (p_c / s_p) @ rot.T * scale * s_g + gt.mean(0)


def _hand_like(rng, n):
    return rng.normal(scale=0.04, size=(n, 21, 3)) + np.array([0.0, 0.0, 0.5])


def test_toolbox_align_equals_the_freihand_toolbox_to_1e6_mm():
    rng = np.random.default_rng(7)
    gt = _hand_like(rng, 40)
    pred = np.concatenate([
        gt[:10] + rng.normal(scale=0.01, size=(10, 21, 3)),  # near
        _hand_like(rng, 10),  # unrelated: reflections often fit better
        gt[20:30] * np.array([1.0, 1.0, -1.0]) + rng.normal(scale=0.005, size=(10, 21, 3)),  # depth-flipped
        3.7 * (gt[30:] - gt[30:, :1]) + rng.normal(scale=0.02, size=(10, 21, 3)),  # other scale, root-relative
    ])  # fmt: skip
    ours = metrics.toolbox_align(pred, gt)
    ref = np.stack([_toolbox_reference(gt[i], pred[i]) for i in range(len(gt))])
    e_ours, e_ref = metrics.joint_errors_mm(ours, gt), metrics.joint_errors_mm(ref, gt)
    assert np.abs(e_ours - e_ref).max() < 1e-6
    assert abs(e_ours.mean() - e_ref.mean()) < 1e-6
    # the toolbox admits reflections: it beats (or ties) proper rotations, by a lot on flipped depth
    proper = metrics.joint_errors_mm(metrics.procrustes_align(pred, gt), gt)
    # (least squares: compare squared errors; the toolbox's +1e-8 on the norms costs ~1e-6 mm)
    assert ((e_ours**2).sum(1) <= (proper**2).sum(1) + 1e-4).all()
    assert e_ours[20:30].mean() < 0.5 * proper[20:30].mean()


def test_toolbox_align_of_a_mirror_image_is_exact():
    rng = np.random.default_rng(8)
    gt = _hand_like(rng, 1)[0]
    mirrored = 2.0 * gt * np.array([-1.0, 1.0, 1.0]) + 0.3
    np.testing.assert_allclose(metrics.toolbox_align(mirrored, gt), gt, atol=1e-9)
    assert metrics.joint_errors_mm(metrics.procrustes_align(mirrored, gt), gt).mean() > 1.0
