"""`--protocol authors`: the paper authors' test computation on hand-worked samples."""

import numpy as np
import pytest
import torch

from hcdg.pipeline import authors, camera, protocols
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.hands import template_hand

S = 256
K_STB = np.array([[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0.0, 0.0, 1.0]])
W_STB = 640


def _scene(z0: float = 0.9, K: np.ndarray = K_STB):
    """One right hand in front of the camera, its (hand-made) box, crop affine and target."""
    gt = template_hand("right") + np.array([0.02, -0.01, z0])  # metres
    uv = camera.project(gt[None], K)[0]
    c = uv.mean(0)
    box = np.array([c[0] - 100.3, c[1] - 100.6, 200.9, 200.9])  # fractions: truncated by their code
    A = authors.crop_from_xywh(box, S)
    uv_crop = camera.apply_affine(A, uv)
    return gt, A, uv_crop


def _inputs(variant, A, K, uv_argmax=None, n=1):
    return protocols.AuthorsInputs(
        variant=variant, uv_argmax_crop=np.zeros((n, 21, 2)) if uv_argmax is None else uv_argmax,
        crop_from_image=np.broadcast_to(A, (n, 3, 3)), K_image=np.broadcast_to(K, (n, 3, 3)), input_size=S,
    )  # fmt: skip


def test_their_crop_affine_by_hand():
    A = authors.crop_from_xywh(np.array([-58.7, 16.5, 507.1, 507.1]), 256)
    # int() truncates towards 0: x=-58, y=16, w=h=507; centre (195.5, 269.5) -> (128, 128)
    np.testing.assert_allclose(camera.apply_affine(A, np.array([195.5, 269.5])), [128.0, 128.0])
    np.testing.assert_allclose(camera.apply_affine(A, np.array([-58.0, 16.0])), [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(camera.apply_affine(A, np.array([449.0, 523.0])), [256.0, 256.0])


def test_uvd_target_is_their_fit_joint_img():
    gt, A, uv_crop = _scene()
    t = authors.uvd_target(uv_crop, gt[:, 2], S)
    np.testing.assert_allclose(t[:, :2], uv_crop / 256.0, atol=1e-6)
    np.testing.assert_allclose(t[0, 2], 0.5)
    np.testing.assert_allclose(t[:, 2], ((gt[:, 2] - gt[0, 2]) / 0.15 + 1) / 2, atol=1e-6)


def test_rhd_prediction_equal_to_their_target_scores_zero():
    gt, A, uv_crop = _scene(K=K_STB)
    uvd = authors.uvd_target(uv_crop, gt[:, 2], S)[None].astype(np.float64)
    res = protocols.authors_uvd(uvd, gt[None], _inputs("rhd", A, K_STB))
    assert res.protocol == "authors"
    assert res.errors_mm.max() < 1e-3  # float32 target round-off only
    # RHD reads the REGRESSED uv: heatmaps (the argmax input) are ignored
    other = protocols.authors_uvd(uvd, gt[None], _inputs("rhd", A, K_STB, uv_argmax=np.full((1, 21, 2), 7.0)))
    np.testing.assert_allclose(other.errors_mm, res.errors_mm)


def test_rhd_known_depth_offset_gives_the_expected_error():
    gt, A, uv_crop = _scene()
    uvd = authors.uvd_target(uv_crop, gt[:, 2], S)[None].astype(np.float64)
    delta = 0.02  # in normalised depth: dz = 2 * 0.02 * 0.15 = 6 mm on joint 5 only
    uvd[0, 5, 2] += delta
    res = protocols.authors_uvd(uvd, gt[None], _inputs("rhd", A, K_STB))
    ray = np.linalg.inv(K_STB) @ np.array([*camera.project(gt[None], K_STB)[0, 5], 1.0])
    expect = 2 * delta * 0.15 * np.linalg.norm(ray) * 1000  # moved along its viewing ray
    np.testing.assert_allclose(res.errors_mm[0, 5], expect, rtol=1e-4)
    assert np.delete(res.errors_mm[0], 5).max() < 1e-3
    # the same offset on every joint: depth is re-anchored at the root AFTER back-projection,
    # so z is right but x, y were scaled by (z + 6 mm) / z
    uvd2 = authors.uvd_target(uv_crop, gt[:, 2], S)[None].astype(np.float64)
    uvd2[..., 2] += delta
    res2 = protocols.authors_uvd(uvd2, gt[None], _inputs("rhd", A, K_STB))
    np.testing.assert_allclose(res2.pred_xyz_m[0, :, 2], gt[:, 2], atol=1e-6)
    np.testing.assert_allclose(res2.errors_mm[0], np.linalg.norm(gt[:, :2] / gt[:, 2:], axis=1) * 6.0, rtol=1e-3)


def test_stb_uses_the_heatmap_argmax_and_decodes_depth_with_0065():
    gt, A, uv_crop = _scene()
    uvd = authors.uvd_target(uv_crop, gt[:, 2], S)[None].astype(np.float64)
    uvd[..., :2] = 0.0  # STB ignores the regressed uv ...
    res = protocols.authors_uvd(uvd, gt[None], _inputs("stb", A, K_STB, uv_argmax=uv_crop[None]))
    # ... and decodes the 0.15-scaled target with 0.13/2 (their STB.py:192): relative depths shrink
    rel_pred = res.pred_xyz_m[0, :, 2] - res.pred_xyz_m[0, 0, 2]
    np.testing.assert_allclose(rel_pred, (gt[:, 2] - gt[0, 2]) * 0.065 / 0.15, atol=1e-6)
    np.testing.assert_allclose(res.pred_xyz_m[0, 0], gt[0], atol=1e-7)  # the root is exact
    # a target built with their decode constant gives zero error
    d = ((gt[:, 2] - gt[0, 2]) / 0.065 + 1) / 2
    uvd[0, :, 2] = d
    res = protocols.authors_uvd(uvd, gt[None], _inputs("stb", A, K_STB, uv_argmax=uv_crop[None]))
    assert res.errors_mm.max() < 1e-6


def test_stb_mirrored_frame_with_the_unmirrored_principal_point_biases_x():
    """Their STB script mirrors the image but back-projects with the original cx: every joint's
    x is off by (W - 1 - 2 cx) z / f (about +2.5 mm at 1 m for STB's cx = 318.47)."""
    gt_orig = template_hand("left") + np.array([0.01, 0.0, 1.0])  # STB hands are left hands
    uv_orig = camera.project(gt_orig[None], K_STB)[0]
    uv_m = uv_orig.copy()
    uv_m[:, 0] = W_STB - 1 - uv_m[:, 0]  # cv2.flip
    gt_m = gt_orig * np.array([-1.0, 1.0, 1.0])  # their gt[:, 0] *= -1 (STB.py:202)
    c = uv_m.mean(0)
    A = authors.crop_from_xywh(np.array([c[0] - 100, c[1] - 100, 200, 200]), S)
    uv_crop = camera.apply_affine(A, uv_m)
    d = ((gt_m[:, 2] - gt_m[0, 2]) / 0.065 + 1) / 2
    uvd = np.concatenate([uv_crop / S, d[:, None]], 1)[None]
    res = protocols.authors_uvd(uvd, gt_m[None], _inputs("stb", A, K_STB, uv_argmax=uv_crop[None]))
    bias_mm = (W_STB - 1 - 2 * K_STB[0, 2]) * gt_m[:, 2] / K_STB[0, 0] * 1000
    np.testing.assert_allclose(res.pred_xyz_m[0, :, 0] - gt_m[:, 0], bias_mm / 1000, atol=1e-9)
    np.testing.assert_allclose(res.errors_mm[0], bias_mm, rtol=1e-6)
    assert 2.4 < bias_mm.mean() < 2.6
    # with the mirrored principal point the bias is gone (what hcdg's other protocols use)
    Km = K_STB.copy()
    Km[0, 2] = W_STB - 1 - K_STB[0, 2]
    res = protocols.authors_uvd(uvd, gt_m[None], _inputs("stb", A, Km, uv_argmax=uv_crop[None]))
    assert res.errors_mm.max() < 1e-6


def test_heatmap_argmax_upsampled_by_hand():
    maps = torch.zeros(1, 21, 32, 32)
    maps[0, :, 5, 7] = 1.0  # one hot cell: row 5, column 7
    maps[0, 3, 20, 2] = 2.0  # joint 3 peaks elsewhere
    uv = authors.heatmap_argmax_upsampled(maps, 256)
    # bilinear x8 (align_corners=False): crop pixels 8c+3 and 8c+4 tie at 15/16 of the peak;
    # the first in row-major order wins -> (x, y) = (8*7+3, 8*5+3)
    np.testing.assert_array_equal(uv[0, 0], [59.0, 43.0])
    np.testing.assert_array_equal(uv[0, 3], [19.0, 163.0])


def test_palm_root_is_verbatim_and_wrist_converts_the_gt():
    gt, A, uv_crop = _scene()
    gt_palm = gt.copy()
    gt_palm[0] = 0.5 * (gt[0] + gt[9])  # a palm-rooted ground truth
    uvd = authors.uvd_target(uv_crop, gt[:, 2], S)[None].astype(np.float64)
    a = protocols.authors_uvd(uvd, gt_palm[None], _inputs("rhd", A, K_STB), gt_root="palm", root="palm")
    np.testing.assert_allclose(a.gt_xyz_m[0], gt_palm)  # compared as it is
    b = protocols.authors_uvd(uvd, gt_palm[None], _inputs("rhd", A, K_STB), gt_root="palm", root="wrist")
    assert not np.allclose(b.gt_xyz_m[0, 0], gt_palm[0])


def test_applicability_is_refused_in_one_line():
    with pytest.raises(HcdgError, match="--protocol authors: does not apply.*--target uvd"):
        protocols.check_applies(("authors",), "xyz", "run r")
    with pytest.raises(HcdgError, match="--protocol pa: does not apply.*--protocol authors"):
        protocols.check_applies(("pa",), "uvd", "run r")
    from hcdg.store.schema import current_protocol_name

    assert current_protocol_name("gtroot-2.5d") == "2.5d-gtroot-gtbone"  # the old name, still typed by users
