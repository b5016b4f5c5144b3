"""hand3d canonical frame: hand-worked case, an independent port of hand3d's three-angle
construction, round trips and invariances (hypothesis), and the torch helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from hcdg.pipeline import canonical, hands
from hcdg.pipeline.errors import HcdgError

SETTINGS = settings(max_examples=60, deadline=None)


def random_hand(seed: int) -> np.ndarray:
    """The template hand, perturbed, randomly rotated, scaled and placed."""
    rng = np.random.default_rng(seed)
    xyz = hands.template_hand("right") + rng.normal(scale=0.01, size=(21, 3))
    xyz = xyz @ Rotation.random(random_state=rng.integers(2**31)).as_matrix().T
    return xyz * rng.uniform(0.5, 2.0) + rng.uniform(-1, 1, size=3) + np.array([0, 0, 2.0])


def hand3d_three_angles(xyz: np.ndarray) -> np.ndarray:
    """Independent numpy port of hand3d's `canonical_trafo` (atan2 angles, row vectors):
    returns the canonical coordinates of the root-relative, bone-normalised joints."""
    rel = xyz - xyz[0]
    rel = rel / np.linalg.norm(rel[10] - rel[9])

    def rot_x(a):
        return np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])

    def rot_y(a):
        return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])

    def rot_z(a):
        return np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])

    p = rel[9]
    r1 = rel @ rot_z(np.arctan2(p[0], p[1]))
    p = r1[9]
    r2 = r1 @ rot_x(-np.arctan2(p[2], p[1]) + np.pi)
    p = r2[17]
    return r2 @ rot_y(np.arctan2(p[2], p[0]))


def test_hand_worked_frame():
    # middle MCP along +z, pinky MCP at (1, 0, 1), bone 9->10 of length 1:
    # e_y = (0, 0, -1), e_x = (1, 0, 0), e_z = e_x x e_y = (0, 1, 0) => canon(a, b, c) = (a, -c, b).
    xyz = np.zeros((21, 3))
    xyz[9] = (0, 0, 2)
    xyz[10] = (0, 0, 3)
    xyz[17] = (1, 0, 1)
    xyz[5] = (0, 1, 0)
    canon, R, scale, root = canonical.to_canonical(xyz, is_right=False)
    assert scale == pytest.approx(1.0)
    np.testing.assert_allclose(root, 0)
    np.testing.assert_allclose(canon[9], (0, -2, 0), atol=1e-12)
    np.testing.assert_allclose(canon[10], (0, -3, 0), atol=1e-12)
    np.testing.assert_allclose(canon[17], (1, -1, 0), atol=1e-12)
    np.testing.assert_allclose(canon[5], (0, 0, 1), atol=1e-12)
    # the same hand as a right hand: z negated
    canon_r, R_r, _, _ = canonical.to_canonical(xyz, is_right=True)
    np.testing.assert_allclose(canon_r[5], (0, 0, -1), atol=1e-12)
    np.testing.assert_allclose(R_r, R)
    # R = M.T: its rows are the canonical axes e_x, e_y, e_z in camera coordinates
    np.testing.assert_allclose(R, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_matches_hand3d_three_angle_construction(seed):
    xyz = random_hand(seed)
    canon, _, _, _ = canonical.to_canonical(xyz, is_right=False)
    np.testing.assert_allclose(canon, hand3d_three_angles(xyz), atol=1e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_round_trip_and_defining_axes(seed, is_right):
    xyz = random_hand(seed)
    canon_f, R, scale, root = canonical.to_canonical(xyz, is_right)
    np.testing.assert_allclose(canonical.from_canonical(canon_f, R, is_right, scale, root), xyz, atol=1e-6)
    # rel_norm = flip(canon_flipped) @ R
    rel_norm = (xyz - xyz[0]) / hands.bone_scale(xyz)
    np.testing.assert_allclose(canonical.from_canonical(canon_f, R, is_right), rel_norm, atol=1e-6)
    assert abs(canon_f[9, 0]) < 1e-9 and abs(canon_f[9, 2]) < 1e-9 and canon_f[9, 1] < 0
    assert abs(canon_f[17, 2]) < 1e-9 and canon_f[17, 0] > 0
    assert canon_f[0] == pytest.approx(np.zeros(3), abs=1e-12)
    # R is a proper rotation
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-9)
    # the flip mirrors: the right-hand result is the left-hand one with z negated
    canon_l, _, _, _ = canonical.to_canonical(xyz, not is_right)
    np.testing.assert_allclose(canon_f * [1, 1, -1], canon_l, atol=1e-12)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 100.0), st.integers(0, 2**31 - 1))
def test_scale_translation_rotation_invariance(seed, factor, rot_seed):
    xyz = random_hand(seed)
    canon, R, scale, _ = canonical.to_canonical(xyz, True)
    t = np.array([0.3, -0.2, 1.0])
    canon2, R2, scale2, root2 = canonical.to_canonical(xyz * factor + t, True)
    np.testing.assert_allclose(canon2, canon, atol=1e-7)
    np.testing.assert_allclose(R2, R, atol=1e-7)
    assert scale2 == pytest.approx(scale * factor)
    np.testing.assert_allclose(root2, xyz[0] * factor + t)
    Q = Rotation.random(random_state=rot_seed).as_matrix()
    canon3, R3, scale3, _ = canonical.to_canonical(xyz @ Q.T, True)
    np.testing.assert_allclose(canon3, canon, atol=1e-7)  # the canonical pose ignores the viewpoint
    np.testing.assert_allclose(R3, R @ Q.T, atol=1e-7)  # ... which lives in R
    assert scale3 == pytest.approx(scale)


def test_batched_equals_loop():
    xyz = np.stack([random_hand(s) for s in range(6)]).reshape(2, 3, 21, 3)
    right = np.array([[True, False, True], [False, False, True]])
    canon, R, scale, root = canonical.to_canonical(xyz, right)
    assert canon.shape == (2, 3, 21, 3) and R.shape == (2, 3, 3, 3) and scale.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            c1, r1, s1, o1 = canonical.to_canonical(xyz[i, j], right[i, j])
            np.testing.assert_allclose(canon[i, j], c1, atol=1e-12)
            np.testing.assert_allclose(R[i, j], r1, atol=1e-12)
            assert scale[i, j] == pytest.approx(s1)
            np.testing.assert_allclose(root[i, j], o1)
    back = canonical.from_canonical(canon, R, right, scale, root)
    np.testing.assert_allclose(back, xyz, atol=1e-9)


def test_degenerate_and_bad_shapes_raise():
    xyz = hands.template_hand()
    bad = xyz.copy()
    bad[10] = bad[9]
    with pytest.raises(HcdgError, match="9->10"):
        canonical.to_canonical(bad, True)
    bad = xyz.copy()
    bad[17] = 2 * bad[9]  # collinear with root and middle MCP
    with pytest.raises(HcdgError, match="collinear"):
        canonical.to_canonical(bad, True)
    with pytest.raises(HcdgError, match=r"\(\.\.\., 21, 3\)"):
        canonical.to_canonical(xyz[:20], True)
    with pytest.raises(HcdgError, match="is_right"):
        canonical.to_canonical(np.stack([xyz, xyz]), [True, False, True])


def test_axis_angle_to_matrix_matches_scipy_and_is_smooth_at_zero():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(size=(8, 3)) * 2.0, [[0, 0, 0], [1e-6, -2e-6, 1e-6], [np.pi, 0, 0]]])
    R = canonical.axis_angle_to_matrix(torch.tensor(v, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(R, Rotation.from_rotvec(v).as_matrix(), atol=1e-12)
    # hand-worked: 90 deg about z maps x to y (column convention)
    Rz = canonical.axis_angle_to_matrix(torch.tensor([[0.0, 0.0, np.pi / 2]], dtype=torch.float64))[0]
    np.testing.assert_allclose(Rz.numpy() @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # gradients finite and correct near and at zero (dR/dv at 0 = the skew generators)
    for x in ([0.0, 0.0, 0.0], [1e-5, 0.0, -1e-5], [0.3, -0.2, 0.9]):
        inp = torch.tensor([x], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(canonical.axis_angle_to_matrix, (inp,), eps=1e-7, atol=1e-6)
    with pytest.raises(HcdgError):
        canonical.axis_angle_to_matrix(torch.zeros(3))


def test_flip_torch_matches_numpy_and_accepts_one_hot():
    xyz = np.stack([random_hand(s) for s in range(4)])
    right = np.array([True, False, False, True])
    expected = canonical.flip(xyz, right)
    t = torch.tensor(xyz)
    np.testing.assert_allclose(canonical.flip_torch(t, torch.tensor(right)).numpy(), expected)
    one_hot = torch.tensor(np.stack([~right, right], 1).astype(np.float32))
    np.testing.assert_allclose(canonical.flip_torch(t, one_hot).numpy(), expected)
    np.testing.assert_allclose(canonical.flip_torch(canonical.flip_torch(t, one_hot), one_hot).numpy(), xyz)
