"""The procedural hand, its camera, the renderer's visibility and the styles."""

import numpy as np
import pytest

from hcdg.pipeline import joints as J
from hcdg.pipeline.camera import project
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.synth import hand as H
from hcdg.pipeline.synth import render as R
from hcdg.pipeline.synth import styles as S
from hcdg.pipeline.synth import writers as W


def _chirality(xyz: np.ndarray) -> np.ndarray:
    """Sign of (up x across) . curl: +1 for left hands, -1 for right (FreiHAND order, (N, 21, 3)).

    up = wrist/palm -> middle MCP, across = pinky MCP -> index MCP, curl = the side the
    fingertips bend towards (the palm side).
    """
    up = xyz[:, J.MIDDLE_MCP] - xyz[:, 0]
    across = xyz[:, J.MCP["index"]] - xyz[:, J.MCP["pinky"]]
    un = up / np.linalg.norm(up, axis=1, keepdims=True)
    tips = xyz[:, [8, 12, 16, 20]] - xyz[:, [5, 9, 13, 17]]
    curl = (tips - (tips * un[:, None]).sum(-1, keepdims=True) * un[:, None]).sum(1)
    return np.sign((np.cross(up, across) * curl).sum(1))


def test_bone_lengths_and_joint_limits_are_anatomical():
    rng = np.random.default_rng(0)
    params = H.sample_params(rng, 500)
    xyz = H.forward_kinematics(params)
    palm = np.linalg.norm(xyz[:, J.MIDDLE_MCP] - xyz[:, J.WRIST], axis=1)
    assert palm.min() >= 0.080 and palm.max() <= 0.100  # wrist -> middle MCP 8-10 cm
    bones = H.bone_lengths(xyz)  # (N, 20), J.BONES order
    phalanges = [k for k, (p, c) in enumerate(J.BONES) if p != J.WRIST]
    assert bones[:, phalanges].min() >= 0.017 and bones[:, phalanges].max() <= 0.055
    # per-hand variation, not one template
    assert np.std(palm) > 0.003 and np.std(bones[:, phalanges], axis=0).min() > 0.0007
    # joint limits hold
    (lo, hi), = [H.FINGER_FLEX_LIMITS_DEG[0]]
    assert params.flex[:, 1:, 0].min() >= lo and params.flex[:, 1:, 0].max() <= hi
    assert params.flex[:, 1:, 1].max() <= 110.0 and params.flex[:, 1:, 2].max() <= 80.0
    dev = params.abduction[:, 1:] - H.SPLAY_DEG
    assert np.abs(dev).max() <= H.ABDUCTION_LIMIT_DEG + 1e-9
    # the angle between consecutive finger bones is the joint's flexion (forward kinematics)
    v1 = xyz[:, 10] - xyz[:, 9]
    v2 = xyz[:, 11] - xyz[:, 10]
    cos = (v1 * v2).sum(1) / np.linalg.norm(v1, axis=1) / np.linalg.norm(v2, axis=1)
    np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), params.flex[:, 2, 1], atol=1e-4)
    # poses vary: open hands and fists both occur
    tip_dist = np.linalg.norm(xyz[:, 12] - xyz[:, 0], axis=1)
    assert tip_dist.min() < 0.10 < 0.16 < tip_dist.max()


def test_generated_hands_are_right_hands_and_mirror_to_left_hands():
    rng = np.random.default_rng(1)
    xyz = H.sample_hands(rng, 300).xyz
    sel = np.linalg.norm(xyz[:, [8, 12, 16, 20]] - xyz[:, [5, 9, 13, 17]], axis=-1).mean(1) < 0.085  # some curl
    right = _chirality(xyz[sel])
    assert (right == -1).mean() > 0.95
    assert (_chirality(H.mirror_x(xyz[sel])) == 1).mean() > 0.95


def test_real_stb_hands_have_the_mirrored_hands_sign(realdata):
    """Real STB hands are left hands: the same chirality sign as our mirrored generated ones."""
    import scipy.io

    real = scipy.io.loadmat(realdata / "stb" / "labels" / "B1Counting_BB.mat")["handPara"]
    real = real.transpose(2, 1, 0)[:, J.STB_TO_FREIHAND]
    assert (_chirality(real) == 1).mean() > 0.95


@pytest.mark.parametrize("policy", [W.FREIHAND_CAMERA, W.RHD_CAMERA, W.STB_CAMERA], ids=["freihand", "rhd", "stb"])
def test_cameras_see_the_whole_hand(policy):
    rng = np.random.default_rng(2)
    n = 200
    xyz, K = H.place_hands(rng, H.sample_hands(rng, n).xyz, policy)
    uv = project(xyz, K[:, None])
    m = policy.margin_px
    assert uv[..., 0].min() >= m and uv[..., 0].max() <= policy.width - 1 - m
    assert uv[..., 1].min() >= m and uv[..., 1].max() <= policy.height - 1 - m
    centre = 0.5 * (xyz.min(1) + xyz.max(1))
    assert centre[:, 2].min() >= policy.depth_m[0] - 1e-9 and centre[:, 2].max() <= policy.depth_m[1] + 1e-9
    np.testing.assert_array_equal(K[:, 0, 0], K[:, 1, 1])
    if policy.fixed_K is not None:
        np.testing.assert_array_equal(K, np.broadcast_to(np.array(policy.fixed_K), K.shape))
        right = project(xyz - np.array([policy.stereo_baseline_m, 0, 0]), K[:, None])
        assert right[..., 0].min() >= m and right[..., 0].max() <= policy.width - 1 - m
    else:
        assert K[:, 0, 0].min() >= policy.fx_px[0] and K[:, 0, 0].max() <= policy.fx_px[1]
        assert np.abs(K[:, 0, 2] - (policy.width - 1) / 2).max() <= 0.03 * policy.width + 0.5
        assert np.abs(K[:, 1, 2] - (policy.height - 1) / 2).max() <= 0.03 * policy.height + 0.5
    # rotations are not all alike: the palm normal points all over the sphere
    normal = np.cross(xyz[:, 5] - xyz[:, 0], xyz[:, 17] - xyz[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    assert normal[:, 2].min() < -0.8 and normal[:, 2].max() > 0.8


def _pose(kind: str) -> np.ndarray:
    """The mean hand (hand frame): "flat", "fist" (curled into the palm) or "hook" (PIP at 90 deg)."""
    p = H.default_params(1)
    if kind == "fist":
        p.flex[:, 1:] = [85.0, 105.0, 70.0]
        p.flex[:, 0] = [20.0, 40.0, 40.0]
    elif kind == "hook":
        p.flex[:, 1:] = [0.0, 90.0, 10.0]
    return H.forward_kinematics(p)[0]


def _look(xyz_hand: np.ndarray, rot: np.ndarray, depth: float = 0.5):
    """Put a hand-frame hand `depth` metres in front of a 224 px camera (f = 350 px)."""
    centre = 0.5 * (xyz_hand.min(0) + xyz_hand.max(0))
    xyz = (xyz_hand - centre) @ rot.T + np.array([0.0, 0.0, depth])
    K = np.array([[350.0, 0, 111.5], [0, 350.0, 111.5], [0, 0, 1]])
    return xyz, K


def test_visibility_hand_worked_cases():
    palm_to_camera = np.diag([-1.0, 1.0, -1.0])  # hand +z (palm side) -> camera -z (towards it)
    back_to_camera = np.eye(3)  # palm faces away; the back of the hand faces the camera
    # A flat open hand hides nothing, whichever side faces the camera.
    for rot in (palm_to_camera, back_to_camera):
        xyz, K = _look(_pose("flat"), rot)
        layer = R.render_hand(xyz, K, 224, 224, forearm=False)
        assert layer.visible.all()
    # A fist seen from the back: fingertips curl under the knuckles, out of sight.
    xyz, K = _look(_pose("fist"), back_to_camera)
    layer = R.render_hand(xyz, K, 224, 224, forearm=False)
    assert not layer.visible[[8, 12, 16, 20]].any()
    assert layer.visible[[0, 5, 9, 13, 17]].all()
    # Fingers hooked at the PIP: from the palm side the middle phalanges point at the camera,
    # so the tips are in front (visible) and hide their own PIP joints; from the back the
    # tips hide behind the proximal phalanges.
    xyz, K = _look(_pose("hook"), palm_to_camera)
    layer = R.render_hand(xyz, K, 224, 224, forearm=False)
    assert layer.visible[[8, 12, 16, 20]].all() and not layer.visible[[6, 10, 14, 18]].any()
    xyz, K = _look(_pose("hook"), back_to_camera)
    layer = R.render_hand(xyz, K, 224, 224, forearm=False)
    assert not layer.visible[[8, 12, 16, 20]].any() and layer.visible[[5, 6, 9, 10, 13, 14, 17, 18]].all()
    # A joint outside the image is never visible.
    xyz, K = _look(_pose("flat"), palm_to_camera, depth=0.5)
    xyz = xyz + np.array([0.19, 0.0, 0.0])  # slide right until the thumb side leaves the frame
    layer = R.render_hand(xyz, K, 224, 224, forearm=False)
    uv = project(xyz, K)
    out = (uv[:, 0] > 223.5) | (uv[:, 0] < -0.5)
    assert out.any() and not layer.visible[out].any() and layer.visible[~out].any()


def test_rendered_visibility_matches_pixels():
    """Over random hands: a visible joint has hand pixels at its uv, an occluded one has a surface in front."""
    rng = np.random.default_rng(4)
    n = 40
    hands = H.sample_hands(rng, n)
    xyz, K = H.place_hands(rng, hands.xyz, W.FREIHAND_CAMERA)
    n_hidden = 0
    for i in range(n):
        layer = R.render_hand(xyz[i], K[i], 224, 224, size=float(hands.size[i]))
        col, row = np.rint(layer.uv).astype(int).T
        assert (layer.part[row, col] > 0).all()  # joints sit inside the rendered body
        radii = R.joint_radii(float(hands.size[i]))
        surface = layer.depth[row, col]
        hidden = ~layer.visible
        n_hidden += hidden.sum()
        assert (surface[hidden] < xyz[i, hidden, 2] - radii[hidden] - R.VISIBLE_TOL_M).all()
        assert (surface[~hidden] >= xyz[i, ~hidden, 2] - radii[~hidden] - R.VISIBLE_TOL_M).all()
    assert 0.05 < n_hidden / (21 * n) < 0.6  # random views occlude some joints, not most


def test_style_specs():
    assert S.parse_style("source").source
    spec = S.parse_style("peach:*")
    rng = np.random.default_rng(0)
    drawn = [S.draw_style(spec, rng) for _ in range(40)]
    assert {d.hand_colour for d in drawn} == {"peach"} and len({d.colour for d in drawn}) > 5
    st = S.draw_style(S.parse_style("black:dark:room"), rng)
    assert (st.hand_colour, st.colour, st.background, st.lighting) == ("black", "dark", "room", "dark")
    assert st.prompt == "black hand with dark room"
    mixed = [S.draw_style(S.parse_style("mixed-target"), rng) for _ in range(300)]
    assert {m.hand_colour for m in mixed} == set(S.HAND_RGB)
    assert {m.colour for m in mixed} == set(S.COLOUR_WORDS) and {m.background for m in mixed} == {"room", "background"}
    for bad in ("blue:dotted", "peach", "peach:plaid", "peach:dotted:garden"):
        with pytest.raises(HcdgError, match="--style"):
            S.parse_style(bad)


def _mean_rgb(style: S.Style, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return S.background(style, 64, 64, rng).reshape(-1, 3).mean(0) / 255.0


def test_backgrounds_differ_by_style():
    green = _mean_rgb(S.SOURCE, 0)
    assert green[1] > green[0] + 0.2 and green[1] > green[2] + 0.2  # a green screen
    sky = _mean_rgb(S.Style("target", "peach", "sky blue"), 0)
    assert sky[2] > sky[0] + 0.2
    red = _mean_rgb(S.Style("target", "peach", "red"), 0)
    assert red[0] > red[1] + 0.4
    for kind in S.SOURCE_BACKGROUNDS:  # source replacement backgrounds are muted
        c = np.stack([_mean_rgb(S.Style("source", S.SOURCE_SKIN, kind), s) for s in range(5)])
        assert (c.max(1) - c.min(1)).max() < 0.2


def test_dorsal_views_show_the_back_of_the_hand_and_any_views_both_sides():
    from hcdg.pipeline.synth.writers import plan_poses

    def palm_normal_z(xyz):  # right hands: (index MCP - wrist) x (pinky MCP - wrist) is the palm side
        n = np.cross(xyz[:, 5] - xyz[:, 0], xyz[:, 17] - xyz[:, 0])
        return n[:, 2] / np.linalg.norm(n, axis=1)

    dorsal = palm_normal_z(plan_poses(0, "freihand", "training", 64, views="dorsal").xyz)
    uniform = palm_normal_z(plan_poses(0, "freihand", "training", 64, views="any").xyz)
    # The palm faces away from the camera (+z) within the +-25 deg tilts (plus palm shape).
    assert dorsal.min() > 0.7, dorsal.min()
    assert (uniform < 0).mean() > 0.25 and (uniform > 0).mean() > 0.25
    with pytest.raises(ValueError, match="views"):
        plan_poses(0, "freihand", "training", 4, views="sideways")
