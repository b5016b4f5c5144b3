"""The shared sample -> network-input transform: 2D/3D/image consistency, with and without
augmentation, and left-hand mirroring."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hcdg.pipeline import camera, hands, transforms
from hcdg.pipeline.config import from_dict, to_dict
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.transforms import CropConfig, GeomAug, prepare, uv_from_crop

H, W = 240, 320
MARKED = 6  # the joint whose position is painted into the image (index PIP: inside the crop)


def make_sample(side: str = "right", K: np.ndarray | None = None, seed: int = 0) -> Sample:
    """A template hand ~0.55 m in front of the camera, on a dark image with one bright
    3x3 square painted at joint `MARKED`'s pixel (to check image/keypoint agreement)."""
    rng = np.random.default_rng(seed)
    if K is None:
        K = np.array([[300.0, 0.0, 150.0], [0.0, 300.0, 125.0], [0.0, 0.0, 1.0]])
    xyz = hands.template_hand("right") + rng.normal(scale=0.003, size=(21, 3)) + [0.02, 0.05, 0.55]
    if side == "left":
        xyz = hands.mirror_xyz(xyz)
    uv = camera.project(xyz, K)
    img = rng.integers(0, 40, size=(H, W, 3), dtype=np.uint8)
    u, v = np.round(uv[MARKED]).astype(int)
    img[v - 1 : v + 2, u - 1 : u + 2] = 255
    return Sample(
        dataset="freihand",
        split="training",
        index=0,
        sample_id="00000000",
        image_path=Path("00000000.jpg"),
        K=K,
        xyz=xyz,
        uv=uv,
        visible=np.ones(21, bool),
        side=side,
        root="wrist",
        image=img,
    )


def bright_centroid(image_chw: np.ndarray) -> np.ndarray:
    """(u, v) centroid of the pixels brighter than 0.6 in all channels of a (3, S, S) image."""
    mask = np.all(image_chw > 0.6, axis=0)
    assert mask.sum() > 0
    v, u = np.nonzero(mask)
    w = image_chw.mean(0)[v, u]
    return np.array([np.sum(u * w) / w.sum(), np.sum(v * w) / w.sum()])


def test_config_defaults_and_round_trip():
    cfg = CropConfig()
    assert (cfg.input_size, cfg.heatmap_size) == (256, 32)
    assert cfg.sigma_heatmap_px == pytest.approx(1.25)
    assert CropConfig(input_size=128).heatmap_size == 16
    assert from_dict(CropConfig, to_dict(cfg)) == cfg
    aug = from_dict(GeomAug, {"scale_range": [0.9, 1.1], "rotation_deg": 10})
    assert aug.scale_range == (0.9, 1.1) and from_dict(GeomAug, to_dict(aug)) == aug
    with pytest.raises(HcdgError):
        from_dict(GeomAug, {"scale_range": [1.2, 0.9]})
    with pytest.raises(HcdgError):
        from_dict(CropConfig, {"crop_size": 3})


def test_no_augmentation_heatmaps_map_back_to_sample_uv():
    s = make_sample("right")
    cfg = CropConfig()
    out = prepare(s, cfg, None, None)
    assert out["image"].shape == (3, 256, 256) and out["image"].dtype == np.float32
    assert 0.0 <= out["image"].min() and out["image"].max() <= 1.0
    assert out["heatmaps"].shape == (21, 32, 32) and out["heatmaps"].dtype == np.float32
    assert out["mirrored"] is False and list(out["hand_side"]) == [0.0, 1.0]
    box = camera.crop_box(s.uv, s.visible, image_size=(H, W))
    np.testing.assert_allclose(out["crop_from_image"], camera.crop_from_box(box, 256))
    np.testing.assert_allclose(out["rot_aug"], np.eye(3))
    # heatmap argmax -> crop -> image lands within one heatmap pixel of the sample's uv
    hm_px = camera.heatmap_argmax(out["heatmaps"])
    uv_back = uv_from_crop(camera.heatmap_to_crop(hm_px, 256, 32), out["crop_from_image"])
    image_px_per_hm_px = box.side / 32
    assert np.abs(uv_back - s.uv).max() <= 0.5 * image_px_per_hm_px + 1e-9
    np.testing.assert_allclose(uv_from_crop(out["uv_crop"], out["crop_from_image"]), s.uv, atol=1e-9)
    assert out["in_crop"].all()  # hand3d's box holds every keypoint (farthest on the border)
    # the painted marker sits at the joint in the crop
    np.testing.assert_allclose(bright_centroid(out["image"]), out["uv_crop"][MARKED], atol=1.5)
    # 3D targets
    np.testing.assert_allclose(out["xyz_m"], s.xyz)
    np.testing.assert_allclose(out["root_xyz_m"], s.xyz[0])
    assert out["bone_scale_m"] == pytest.approx(hands.bone_scale(s.xyz))
    np.testing.assert_allclose(
        out["xyz_rel_norm"], (s.xyz - s.xyz[0]) / hands.bone_scale(s.xyz), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(camera.project(out["xyz_m"], out["K_crop"]), out["uv_crop"], atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_rotation_augmentation_keeps_2d_and_3d_consistent(seed):
    # fx != fy, so the camera roll is not a pure pixel rotation: the exact K Rz K^-1 map is needed
    K = np.array([[310.0, 0.0, 150.0], [0.0, 280.0, 125.0], [0.0, 0.0, 1.0]])
    s = make_sample("right", K=K, seed=seed)
    aug = GeomAug(scale_range=(0.8, 1.25), rotation_deg=180.0, translation_frac=0.05)
    out = prepare(s, CropConfig(), aug, np.random.default_rng(seed))
    R = out["rot_aug"]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert not np.allclose(R, np.eye(3))
    np.testing.assert_allclose(out["xyz_m"][:, 2], s.xyz[:, 2], atol=1e-12)  # a roll keeps depth
    np.testing.assert_allclose(camera.project(out["xyz_m"], out["K_crop"]), out["uv_crop"], atol=1e-3)
    assert out["bone_scale_m"] == pytest.approx(hands.bone_scale(s.xyz))
    # xyz_rel_norm is the rotated pose (relative geometry rotated with the camera)
    np.testing.assert_allclose(
        out["xyz_rel_norm"], (s.xyz - s.xyz[0]) @ R.T / hands.bone_scale(s.xyz), atol=1e-5
    )
    # the image was warped with the same map as the keypoints
    np.testing.assert_allclose(bright_centroid(out["image"]), out["uv_crop"][MARKED], atol=2.0)
    vis_in = out["in_crop"]
    hm_uv = camera.crop_to_heatmap(out["uv_crop"], 256, 32)
    inside = vis_in & np.all((hm_uv > 0.5) & (hm_uv < 30.5), axis=1)
    assert inside.sum() >= 10
    assert np.abs(camera.heatmap_argmax(out["heatmaps"])[inside] - hm_uv[inside]).max() <= 0.5 + 1e-6
    np.testing.assert_allclose(uv_from_crop(out["uv_crop"], out["crop_from_image"]), s.uv, atol=1e-6)


def test_same_rng_same_augmentation():
    s = make_sample("right")
    aug = GeomAug()
    a = prepare(s, CropConfig(), aug, np.random.default_rng(7))
    b = prepare(s, CropConfig(), aug, np.random.default_rng(7))
    c = prepare(s, CropConfig(), aug, np.random.default_rng(8))
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["crop_from_image"], b["crop_from_image"])
    assert not np.allclose(a["crop_from_image"], c["crop_from_image"])


def test_left_hand_is_mirrored_to_right():
    left = make_sample("left")
    out = prepare(left, CropConfig(), None, None)
    assert out["mirrored"] is True and list(out["hand_side"]) == [0.0, 1.0]
    np.testing.assert_allclose(out["xyz_m"][:, 0], -left.xyz[:, 0])
    np.testing.assert_allclose(out["xyz_m"][:, 1:], left.xyz[:, 1:])
    np.testing.assert_allclose(out["K"][0, 2], W - 1 - left.K[0, 2])
    # crop pixels map back to the mirrored image; image_from_original links it to the original
    uv_mirrored = uv_from_crop(out["uv_crop"], out["crop_from_image"])
    np.testing.assert_allclose(uv_mirrored, hands.mirror_uv(left.uv, W), atol=1e-9)
    np.testing.assert_allclose(camera.apply_affine(out["image_from_original"], left.uv), uv_mirrored, atol=1e-9)
    np.testing.assert_allclose(bright_centroid(out["image"]), out["uv_crop"][MARKED], atol=1.5)
    # the mirrored left hand gives the same input as the right hand it mirrors, up to the
    # principal point moving (cx -> W-1-cx): same relative pose
    right = prepare(make_sample("right"), CropConfig(), None, None)
    np.testing.assert_allclose(out["xyz_rel_norm"], right["xyz_rel_norm"], atol=1e-6)


def test_given_box_and_bad_input():
    s = make_sample("right")
    box = camera.CropBox.from_xywh([20.0, 10.0, 200.0, 200.0])
    out = prepare(s, CropConfig(input_size=64), None, None, box=box)
    assert out["image"].shape == (3, 64, 64) and out["heatmaps"].shape == (21, 8, 8)
    # [x, y, w, h]: (x, y) is the top-left *edge* of the box -> the crop's edge (-0.5, -0.5)
    np.testing.assert_allclose(camera.apply_affine(out["crop_from_image"], [[20.0, 10.0]]), [[-0.5, -0.5]])
    with pytest.raises(HcdgError, match="no image"):
        prepare(dataclasses.replace(s, image=None), CropConfig())
    with pytest.raises(HcdgError, match="rng"):
        prepare(s, CropConfig(), GeomAug(), None)


def test_roll_pixel_map_hand_worked():
    # fx = fy, principal point (50, 40): a 90 deg roll turns (60, 40) into (50, 50)
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    P = transforms.roll_pixel_map(K, np.pi / 2)
    np.testing.assert_allclose(camera.apply_affine(P, [[60.0, 40.0], [50.0, 40.0]]), [[50, 50], [50, 40]], atol=1e-12)
    xyz = np.array([[0.1, 0.0, 1.0]])
    rolled = xyz @ transforms.camera_roll(np.pi / 2).T
    np.testing.assert_allclose(rolled, [[0.0, 0.1, 1.0]], atol=1e-12)
