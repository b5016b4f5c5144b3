"""Joint-order maps, bone scale, STB palm root, and left->right mirroring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hcdg.pipeline import hands
from hcdg.pipeline.camera import project
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import JOINT_NAMES

FINGERS = ("thumb", "index", "middle", "ring", "pinky")

# Orders written out independently from docs/sources.md#joint-orders.
RHD_NAMES = ["wrist"] + [f"{f}_{p}" for f in FINGERS for p in ("tip", "dip", "pip", "mcp")]
STB_NAMES = ["palm"] + [f"{f}_{p}" for f in reversed(FINGERS) for p in ("mcp", "pip", "dip", "tip")]


def _names(arr):
    return [str(x) for x in np.asarray(arr)[:, 0]]


def test_rhd_and_stb_maps_reorder_named_joints():
    rhd = np.array(RHD_NAMES, dtype=object)[:, None]
    assert _names(hands.rhd_to_freihand(rhd)) == list(JOINT_NAMES)
    frei = np.array(JOINT_NAMES, dtype=object)[:, None]
    assert _names(hands.freihand_to_rhd(frei)) == RHD_NAMES
    stb = np.array(STB_NAMES, dtype=object)[:, None]
    assert _names(hands.stb_to_freihand(stb)) == ["palm"] + list(JOINT_NAMES[1:])
    assert _names(hands.freihand_to_stb(hands.stb_to_freihand(stb))) == STB_NAMES


def test_maps_apply_to_batched_arrays_of_any_width():
    rng = np.random.default_rng(1)
    for k in (1, 2, 3):
        a = rng.normal(size=(4, 5, 21, k))
        np.testing.assert_array_equal(hands.freihand_to_rhd(hands.rhd_to_freihand(a)), a)
        np.testing.assert_array_equal(hands.freihand_to_stb(hands.stb_to_freihand(a)), a)
        # joint 1 of FreiHAND (thumb MCP) is RHD joint 4 and STB joint 17
        np.testing.assert_array_equal(hands.rhd_to_freihand(a)[..., 1, :], a[..., 4, :])
        np.testing.assert_array_equal(hands.stb_to_freihand(a)[..., 1, :], a[..., 17, :])
    with pytest.raises(HcdgError, match="21"):
        hands.rhd_to_freihand(np.zeros((20, 3)))


def test_bone_scale_hand_worked():
    xyz = np.zeros((21, 3))
    xyz[9] = (1.0, 2.0, 3.0)
    xyz[10] = (1.03, 2.04, 3.0)  # a 3-4-5 triangle: 0.05 m
    assert hands.bone_scale(xyz) == pytest.approx(0.05)
    assert hands.bone_scale(hands.template_hand()) == pytest.approx(0.045)
    with pytest.raises(HcdgError):
        hands.bone_scale(np.zeros((2, 21, 3)))


def test_stb_palm_to_wrist_and_palm_from_wrist_hand_worked():
    xyz = np.zeros((21, 3))
    xyz[9] = (0.0, -0.10, 0.5)  # middle MCP
    xyz[0] = (0.0, -0.05, 0.5)  # palm centre
    out = hands.stb_palm_to_wrist(xyz)
    # wrist = mcp + 2.2 (palm - mcp) = (0, -0.10 + 2.2 * 0.05, 0.5) = (0, 0.01, 0.5)
    np.testing.assert_allclose(out[0], (0.0, 0.01, 0.5), atol=1e-12)
    np.testing.assert_array_equal(out[1:], xyz[1:])
    assert xyz[0, 1] == -0.05  # input untouched
    # palm point of the extrapolated wrist: mcp + 1.1 (palm - mcp)
    np.testing.assert_allclose(hands.palm_from_wrist(out), (0.0, -0.045, 0.5), atol=1e-12)
    # with factor 2 the two conventions are exact inverses
    np.testing.assert_allclose(hands.palm_from_wrist(hands.stb_palm_to_wrist(xyz, factor=2.0)), xyz[0])
    np.testing.assert_allclose(hands.with_palm_root(hands.stb_palm_to_wrist(xyz, 2.0)), xyz, atol=1e-12)
    # batched
    b = np.stack([xyz, xyz * 2])
    np.testing.assert_allclose(hands.stb_palm_to_wrist(b)[1, 0], (0.0, 0.02, 1.0), atol=1e-12)


def _chirality(xyz: np.ndarray) -> float:
    """Sign of the triple product (index MCP, pinky MCP, middle tip) about the wrist."""
    v = xyz - xyz[0]
    return float(np.sign(np.linalg.det(np.stack([v[5], v[17], v[12]]))))


def _sample(side: str, with_image: bool = True) -> Sample:
    K = np.array([[300.0, 0.0, 100.0], [0.0, 310.0, 90.0], [0.0, 0.0, 1.0]])
    xyz = hands.template_hand(side) + np.array([0.01, 0.02, 0.6])
    img = np.random.default_rng(0).integers(0, 256, size=(180, 320, 3), dtype=np.uint8)
    return Sample(
        dataset="stb",
        split="test",
        index=0,
        sample_id="B1Counting/BB_left_0",
        image_path=Path("x.png"),
        K=K,
        xyz=xyz,
        uv=project(xyz, K),
        visible=np.ones(21, bool),
        side=side,
        root="palm",
        image=img if with_image else None,
        extra={"camera": "BB_left"},
    )


def test_mirror_parts_are_consistent():
    K = np.array([[300.0, 0.5, 100.0], [0.0, 310.0, 90.0], [0.0, 0.0, 1.0]])
    W = 320
    Km = hands.mirror_K(K, W)
    assert Km[0, 2] == pytest.approx(219.0)  # 320 - 1 - 100
    assert Km[0, 1] == pytest.approx(-0.5)
    xyz = hands.template_hand() + [0, 0, 0.5]
    np.testing.assert_allclose(
        project(hands.mirror_xyz(xyz), Km), hands.mirror_uv(project(xyz, K), W), atol=1e-9
    )
    np.testing.assert_allclose(hands.mirror_uv([[0.0, 5.0], [319.0, 7.0]], W), [[319.0, 5.0], [0.0, 7.0]])
    A = hands.mirror_affine(W)
    np.testing.assert_allclose(A @ A, np.eye(3))
    # mirroring flips chirality: a left template is the mirror of the right one
    assert _chirality(hands.template_hand("right")) == -_chirality(hands.template_hand("left"))


def test_mirror_sample_image_3d_and_K_together():
    s = _sample("left")
    m = hands.mirror_sample(s)
    assert m.side == "right" and m.extra["mirrored"] is True and m.extra["camera"] == "BB_left"
    assert "mirrored" not in s.extra  # the input is not modified
    np.testing.assert_allclose(m.xyz[:, 0], -s.xyz[:, 0])
    np.testing.assert_allclose(m.xyz[:, 1:], s.xyz[:, 1:])
    np.testing.assert_allclose(m.K[0, 2], 319 - s.K[0, 2])
    np.testing.assert_allclose(m.uv, project(m.xyz, m.K), atol=1e-9)
    np.testing.assert_allclose(m.uv[:, 0], 319 - s.uv[:, 0], atol=1e-9)
    # pixel (v, u) of the mirrored image is pixel (v, W-1-u) of the original
    assert np.array_equal(m.image[17, 5], s.image[17, 314])
    assert np.array_equal(m.image[:, ::-1], s.image)
    assert _chirality(m.xyz) == _chirality(hands.template_hand("right"))
    # twice = identity
    mm = hands.mirror_sample(m)
    np.testing.assert_allclose(mm.xyz, s.xyz)
    np.testing.assert_allclose(mm.K, s.K)
    assert mm.side == "left" and mm.extra["mirrored"] is False
    assert hands.to_right_hand(m) is m


def test_mirror_sample_without_image_needs_width():
    s = _sample("left", with_image=False)
    with pytest.raises(HcdgError, match="width"):
        hands.mirror_sample(s)
    m = hands.mirror_sample(s, width=320)
    assert m.image is None and m.K[0, 2] == pytest.approx(219.0)
    with pytest.raises(HcdgError, match="320 pixels wide"):
        hands.mirror_sample(_sample("left"), width=640)


def test_stb_sample_to_wrist_reprojects_joint_0():
    s = _sample("left")
    w = hands.stb_sample_to_wrist(s)
    assert w.root == "wrist" and w.extra["root_converted"] == "palm->wrist"
    np.testing.assert_allclose(w.xyz, hands.stb_palm_to_wrist(s.xyz))
    np.testing.assert_allclose(w.uv, project(w.xyz, w.K), atol=1e-9)
    assert hands.stb_sample_to_wrist(w) is w
