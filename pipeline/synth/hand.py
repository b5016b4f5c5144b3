"""A procedural articulated hand and a camera that sees it (numpy, vectorised).

Hands are built in a *hand frame* (metres, right hand): wrist at the origin,
fingers along +y, the palm facing +z, the thumb on the +x side. Joints come out
in FreiHAND order (`hcdg.pipeline.joints`). A left hand is the mirror image
(x -> -x in the hand frame, `mirror_x`).

Anatomy (per hand, all drawn with one size factor `size` ~ U(0.93, 1.07) and a
small per-bone jitter):
* palm: wrist -> middle MCP 9.0 cm x size x U(0.97, 1.03)  (8.1 - 9.9 cm);
* phalanges (MCP->PIP, PIP->DIP, DIP->tip) 4.6/2.8/2.4 cm (middle finger)
  down to 3.4/2.1/2.1 cm (pinky), x size x U(0.96, 1.04)  (1.9 - 5.2 cm);
* the thumb's first joint (FreiHAND "thumb MCP", anatomically near the CMC)
  sits ~3.8 cm from the wrist; its three bones are 3.8/3.2/2.7 cm.

Articulation stays within joint limits: MCP flexion -15..90 deg, PIP 0..110,
DIP 0..80 (coupled ~2/3 of PIP), abduction +-20 deg around each finger's rest
splay; thumb: palmar abduction -10..35, flexion -10..35 / 0..60 / -10..80.
One "grip" value per hand couples the fingers (open hands, fists, pointing,
pinches all occur).

The camera: `place_hands` rotates each hand uniformly at random (SO(3)), puts the
centre of its bounding box 0.3-0.7 m in front of the camera (per-format range) and draws an intrinsic
matrix K (fx within a realistic range for the image size, principal point near
the centre, or a fixed K) such that every joint projects inside the image with a
margin. Convention: pixel centres at integer coordinates, `uv = (K @ xyz)[:2] / z`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdg.pipeline import joints as J
from hcdg.pipeline.camera import project

# --- anatomy (hand frame, metres, size factor 1) ------------------------------------

#: Wrist -> middle MCP length at size 1 (palm length), metres.
PALM_LENGTH_M = 0.090
#: MCP positions of index, middle, ring, pinky (x, y, z) at size 1 (before the palm-length scale).
_MCP_BASE = np.array(
    [[0.024, 0.086, 0.0], [0.0, 0.090, 0.0], [-0.020, 0.083, 0.0], [-0.038, 0.072, 0.0]]
)
#: The thumb's first FreiHAND joint (near the CMC joint), hand frame.
_THUMB_BASE = np.array([0.024, 0.030, 0.008])
#: Bone lengths (proximal, middle, distal) per finger, thumb first; metres at size 1.
BONE_BASE_M = np.array(
    [
        [0.038, 0.032, 0.027],  # thumb: joint1->2, 2->3, 3->tip
        [0.042, 0.025, 0.022],  # index
        [0.046, 0.028, 0.024],  # middle
        [0.043, 0.027, 0.023],  # ring
        [0.034, 0.021, 0.021],  # pinky
    ]
)
#: Rest splay of index, middle, ring, pinky (degrees, positive towards the thumb).
SPLAY_DEG = np.array([7.0, 0.0, -8.0, -17.0])
#: Range of the per-hand size factor.
SIZE_RANGE = (0.93, 1.07)


#: Joint limits (degrees). Fingers index..pinky: MCP, PIP, DIP flexion (towards the palm);
#: the thumb: flexion of its three joints. Abduction is relative to each finger's rest splay.
FINGER_FLEX_LIMITS_DEG = ((-15.0, 90.0), (0.0, 110.0), (0.0, 80.0))
THUMB_FLEX_LIMITS_DEG = ((-10.0, 35.0), (0.0, 60.0), (-10.0, 80.0))
ABDUCTION_LIMIT_DEG = 20.0
THUMB_ABDUCTION_LIMITS_DEG = (-10.0, 35.0)


@dataclass(frozen=True)
class HandParams:
    """Shape and articulation of N right hands (hand frame, metres, degrees).

    Attributes:
        mcp: (N, 4, 3) MCP positions of index, middle, ring, pinky.
        thumb_base: (N, 3) the thumb's first joint (FreiHAND joint 1).
        bones: (N, 5, 3) bone lengths (proximal, middle, distal), thumb first.
        size: (N,) size factor.
        flex: (N, 5, 3) flexion per joint (thumb row: its joints 1, 2, 3; fingers: MCP, PIP, DIP).
        abduction: (N, 5) thumb: palmar abduction; fingers: splay towards the thumb, absolute
            (the rest splay `SPLAY_DEG` included).
    """

    mcp: np.ndarray
    thumb_base: np.ndarray
    bones: np.ndarray
    size: np.ndarray
    flex: np.ndarray
    abduction: np.ndarray


@dataclass(frozen=True)
class HandBatch:
    """N hands in the hand frame.

    Attributes:
        xyz: (N, 21, 3) float64 joints, metres, FreiHAND order, hand frame, right hands.
        size: (N,) per-hand size factor (~1); the renderer scales finger radii with it.
    """

    xyz: np.ndarray
    size: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rodrigues(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about unit `axis` (N, 3) by `angle` (N,) radians."""
    k = _unit(axis)
    kx = np.zeros(axis.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def default_params(n: int = 1) -> HandParams:
    """`n` copies of the mean hand (size 1), open and flat: no flexion, rest splay, thumb abducted 10 deg."""
    return HandParams(
        mcp=np.repeat(_MCP_BASE[None] * (PALM_LENGTH_M / 0.090), n, 0),
        thumb_base=np.repeat(_THUMB_BASE[None], n, 0),
        bones=np.repeat(BONE_BASE_M[None], n, 0),
        size=np.ones(n),
        flex=np.zeros((n, 5, 3)),
        abduction=np.repeat(np.concatenate([[10.0], SPLAY_DEG])[None], n, 0),
    )


def sample_params(rng: np.random.Generator, n: int) -> HandParams:
    """`n` random hand shapes and articulations within the joint limits."""
    size = rng.uniform(*SIZE_RANGE, n)
    palm = size * rng.uniform(0.97, 1.03, n)  # palm-length factor
    width = rng.uniform(0.92, 1.08, n)  # palm width factor
    cup = rng.uniform(0.0, 1.0, n)  # palm arch
    # MCPs of index..pinky: base layout, width scaled in x, jittered 2 mm, arched towards +z.
    mcp = _MCP_BASE[None] * np.stack([width, np.ones(n), np.ones(n)], -1)[:, None]
    mcp = mcp + rng.normal(0.0, 0.002, (n, 4, 3)) * np.array([1.0, 1.0, 0.5])
    mcp[:, :, 2] += cup[:, None] * np.array([0.0, 0.0, 0.004, 0.010])
    mcp[:, 1] = _MCP_BASE[1]  # middle MCP fixes the palm length exactly
    mcp = mcp * palm[:, None, None] * (PALM_LENGTH_M / 0.090)
    thumb_base = (_THUMB_BASE + rng.normal(0.0, 0.002, (n, 3))) * size[:, None]
    bones = BONE_BASE_M[None] * size[:, None, None] * rng.uniform(0.96, 1.04, (n, 5, 3))

    # One grip value per hand couples the fingers; some fingers break away (pointing, pinching).
    grip = rng.beta(0.8, 0.8, n)
    curl = np.clip(grip[:, None] + rng.normal(0.0, 0.22, (n, 5)), 0.0, 1.0)
    free = rng.random((n, 5)) < 0.15
    curl = np.where(free, rng.random((n, 5)) * 0.3, curl)
    spread = rng.uniform(-0.4, 1.0, n)  # fingers together .. spread

    flex = np.zeros((n, 5, 3))
    c = curl[:, 1:]
    (m0, m1), (p0, p1), (d0, d1) = FINGER_FLEX_LIMITS_DEG
    flex[:, 1:, 0] = np.clip(-10.0 + 100.0 * c + rng.normal(0, 6, (n, 4)), m0, m1)
    flex[:, 1:, 1] = np.clip(105.0 * c + rng.normal(0, 8, (n, 4)), p0, p1)
    flex[:, 1:, 2] = np.clip(flex[:, 1:, 1] * 2.0 / 3.0 + rng.normal(0, 5, (n, 4)), d0, d1)  # DIP ~ 2/3 PIP
    ct = curl[:, 0]
    (a0, a1), (b0, b1), (e0, e1) = THUMB_FLEX_LIMITS_DEG
    flex[:, 0, 0] = np.clip(-5.0 + 35.0 * ct + rng.normal(0, 6, n), a0, a1)
    flex[:, 0, 1] = np.clip(55.0 * ct + rng.normal(0, 8, n), b0, b1)
    flex[:, 0, 2] = np.clip(-5.0 + 75.0 * ct + rng.normal(0, 8, n), e0, e1)

    abd = np.zeros((n, 5))
    splay = SPLAY_DEG * (1.0 + spread[:, None] * (1.0 - c)) + rng.normal(0, 3, (n, 4))
    abd[:, 1:] = np.clip(splay, SPLAY_DEG - ABDUCTION_LIMIT_DEG, SPLAY_DEG + ABDUCTION_LIMIT_DEG)
    abd[:, 0] = np.clip(rng.normal(10.0, 12.0, n) + 15.0 * ct, *THUMB_ABDUCTION_LIMITS_DEG)
    return HandParams(mcp=mcp, thumb_base=thumb_base, bones=bones, size=size, flex=flex, abduction=abd)


def forward_kinematics(p: HandParams) -> np.ndarray:
    """(N, 21, 3) joints (hand frame, metres, FreiHAND order) of hands `p`.

    Each finger bends in the plane spanned by its splay direction (in the palm plane) and
    the palm normal +z; the thumb bends from its (abducted) rest direction across the palm.
    """
    deg = np.pi / 180.0
    n = len(p.size)
    xyz = np.zeros((n, 21, 3))
    abd = p.abduction[:, 1:] * deg
    f_dir = np.stack([np.sin(abd), np.cos(abd), np.zeros_like(abd)], -1)  # (n,4,3) in the palm plane
    normal = np.array([0.0, 0.0, 1.0])
    cum = np.cumsum(p.flex[:, 1:] * deg, -1)  # (n,4,3)
    seg = np.cos(cum)[..., None] * f_dir[:, :, None] + np.sin(cum)[..., None] * normal
    chain = p.mcp[:, :, None] + np.cumsum(seg * p.bones[:, 1:, :, None], axis=2)  # (n,4,3,3)
    for fi in range(4):
        base = J.MCP[J.FINGERS[fi + 1]]
        xyz[:, base] = p.mcp[:, fi]
        xyz[:, base + 1 : base + 4] = chain[:, fi]
    # Thumb: rest direction out, up and slightly palmar, abducted towards the palm normal.
    t_rest = _unit(np.array([0.75, 0.60, 0.28]))
    r_abd = _rodrigues(np.broadcast_to(np.cross(t_rest, normal), (n, 3)), p.abduction[:, 0] * deg)
    t_dir = r_abd @ t_rest
    across = np.array([-0.6, 0.1, 0.8])
    t_bend = _unit(across - (t_dir @ across)[:, None] * t_dir)
    tcum = np.cumsum(p.flex[:, 0] * deg, -1)  # (n,3)
    tseg = np.cos(tcum)[..., None] * t_dir[:, None] + np.sin(tcum)[..., None] * t_bend[:, None]
    xyz[:, 1] = p.thumb_base
    xyz[:, 2:5] = p.thumb_base[:, None] + np.cumsum(tseg * p.bones[:, 0, :, None], axis=1)
    return xyz


def sample_hands(rng: np.random.Generator, n: int) -> HandBatch:
    """`n` random right hands (shape and articulation) in the hand frame."""
    params = sample_params(rng, n)
    return HandBatch(xyz=forward_kinematics(params), size=params.size)


def mirror_x(xyz: np.ndarray) -> np.ndarray:
    """Mirror hands across the x = 0 plane (right <-> left); (..., 3) in, same shape out."""
    return xyz * np.array([-1.0, 1.0, 1.0])


def bone_lengths(xyz: np.ndarray) -> np.ndarray:
    """(..., 20) lengths of `joints.BONES` (parent -> child), same unit as `xyz` (..., 21, 3)."""
    parents = np.array([p for p, _ in J.BONES])
    children = np.array([c for _, c in J.BONES])
    return np.linalg.norm(xyz[..., children, :] - xyz[..., parents, :], axis=-1)


#: Camera views `place_hands` draws: "any" = uniform on SO(3); "dorsal" = the back of the
#: hand towards the camera (the hand frame's palm faces +z, away from it) with a uniform
#: in-plane roll and +-DORSAL_TILT_DEG tilts about the two image axes. "dorsal" keeps the
#: sign of depth readable from a uniformly coloured hand, so short training runs can learn.
VIEWS = ("any", "dorsal")
DORSAL_TILT_DEG = 25.0


def _about(axis: int, angle: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations by `angle` (radians) about coordinate axis `axis`."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    r = np.zeros((len(angle), 3, 3))
    r[:, axis, axis] = 1.0
    r[:, i, i], r[:, j, j], r[:, i, j], r[:, j, i] = c, c, -s, s
    return r


def dorsal_rotations(rng: np.random.Generator, n: int, tilt_deg: float = DORSAL_TILT_DEG) -> np.ndarray:
    """(n, 3, 3) rotations: uniform roll about the optical axis, tilts within +-tilt_deg."""
    roll = rng.uniform(-np.pi, np.pi, n)
    tilt = np.deg2rad(rng.uniform(-tilt_deg, tilt_deg, (n, 2)))
    return _about(2, roll) @ _about(0, tilt[:, 0]) @ _about(1, tilt[:, 1])


def camera_rotations(rng: np.random.Generator, n: int, views: str = "any") -> np.ndarray:
    """(n, 3, 3) hand-to-camera rotations for `views` (one of `VIEWS`)."""
    if views == "any":
        return random_rotations(rng, n)
    if views == "dorsal":
        return dorsal_rotations(rng, n)
    raise ValueError(f"views {views!r}: expected one of {', '.join(VIEWS)}")


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3, 3) rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


@dataclass(frozen=True)
class CameraPolicy:
    """How a dataset's camera sees its hands.

    Attributes:
        width, height: image size, pixels.
        depth_m: range of the hand centre's distance to the camera, metres.
        fx_px: range of the focal length (fx = fy), pixels; ignored when `fixed_K` is set.
        fill: when set, the fraction of min(width, height) the hand's extent should span:
            fx is then derived from depth and fill (clipped to `fx_px`).
        principal_jitter: principal point = centre + U(-j, j) * size (0 = exact centre).
        principal_px: when set, this exact principal point (cx, cy) (RHD: (160, 160)).
        fixed_K: one intrinsic matrix for all images (STB), row-major 3x3.
        margin_px: every joint stays this far inside the image border.
        stereo_baseline_m: when set, joints must also project inside a second camera shifted
            by this much along +x (STB's right camera sees `xyz - [b, 0, 0]`).
    """

    width: int
    height: int
    depth_m: tuple[float, float] = (0.3, 0.7)
    fx_px: tuple[float, float] = (250.0, 1000.0)
    fill: tuple[float, float] | None = None
    principal_jitter: float = 0.03
    principal_px: tuple[float, float] | None = None
    fixed_K: tuple[tuple[float, ...], ...] | None = None
    margin_px: float = 4.0
    stereo_baseline_m: float | None = None


def _fits(uv: np.ndarray, pol: CameraPolicy) -> np.ndarray:
    m = pol.margin_px
    return (
        (uv[..., 0] >= m).all(-1)
        & (uv[..., 0] <= pol.width - 1 - m).all(-1)
        & (uv[..., 1] >= m).all(-1)
        & (uv[..., 1] <= pol.height - 1 - m).all(-1)
    )


def place_hands(
    rng: np.random.Generator, xyz_hand: np.ndarray, policy: CameraPolicy, max_tries: int = 50,
    views: str = "any",
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, place and photograph hands.

    Args:
        rng: the random source.
        xyz_hand: (N, 21, 3) joints in the hand frame, metres.
        policy: the camera to use.
        max_tries: redraws (rotation, depth, K, position) for hands that do not fit.
        views: which hand orientations to draw (`VIEWS`).

    Returns:
        xyz_cam (N, 21, 3) metres in the camera frame, K (N, 3, 3) float64, every joint
        projecting inside the image (and the stereo partner's image, when set).
    """
    n = len(xyz_hand)
    xyz_cam = np.zeros_like(xyz_hand, dtype=np.float64)
    K_all = np.zeros((n, 3, 3))
    todo = np.arange(n)
    w, h = policy.width, policy.height
    for _ in range(max_tries):
        m = len(todo)
        if m == 0:
            break
        rel = xyz_hand[todo] @ np.swapaxes(camera_rotations(rng, m, views), 1, 2)
        rel -= 0.5 * (rel.min(1) + rel.max(1))[:, None]  # the box around the hand: centred on the axis
        depth = rng.uniform(*policy.depth_m, m)
        K = np.zeros((m, 3, 3))
        K[:, 2, 2] = 1.0
        if policy.fixed_K is not None:
            K[:] = np.asarray(policy.fixed_K, dtype=np.float64)
        else:
            if policy.fill is not None:
                ext = np.maximum(np.ptp(rel[..., 0], 1), np.ptp(rel[..., 1], 1))
                fill = rng.uniform(*policy.fill, m)
                fx = np.clip(fill * min(w, h) * depth / ext, *policy.fx_px)
            else:
                fx = rng.uniform(*policy.fx_px, m)
            K[:, 0, 0] = K[:, 1, 1] = fx
            if policy.principal_px is not None:
                K[:, 0, 2], K[:, 1, 2] = policy.principal_px
            else:
                jit = policy.principal_jitter
                K[:, 0, 2] = (w - 1) / 2.0 + rng.uniform(-jit, jit, m) * w
                K[:, 1, 2] = (h - 1) / 2.0 + rng.uniform(-jit, jit, m) * h
        cam = rel + np.stack([np.zeros(m), np.zeros(m), depth], -1)[:, None]
        uv = project(cam, K)
        lo, hi = uv.min(1), uv.max(1)
        if policy.stereo_baseline_m is not None:
            uv_r = project(cam - np.array([policy.stereo_baseline_m, 0.0, 0.0]), K)
            lo, hi = np.minimum(lo, uv_r.min(1)), np.maximum(hi, uv_r.max(1))
        # Shift the projected box to a random spot where it fits; convert the shift to metres
        # at the hand's depth (exact for points at that depth, re-checked below for the rest).
        room_lo = policy.margin_px + 1.0 - lo
        room_hi = np.array([w, h]) - 2.0 - policy.margin_px - hi
        shift = room_lo + rng.random((m, 2)) * np.maximum(room_hi - room_lo, 0.0)
        fxy = np.stack([K[:, 0, 0], K[:, 1, 1]], -1)
        cam[..., :2] += (shift * depth[:, None] / fxy)[:, None]
        ok = (room_hi >= room_lo).all(1) & (cam[..., 2] > 0.05).all(1)
        ok &= _fits(project(cam, K), policy)
        if policy.stereo_baseline_m is not None:
            ok &= _fits(project(cam - np.array([policy.stereo_baseline_m, 0, 0]), K), policy)
        xyz_cam[todo[ok]] = cam[ok]
        K_all[todo[ok]] = K[ok]
        todo = todo[~ok]
    if len(todo):
        raise RuntimeError(f"could not fit {len(todo)} hand(s) into a {w}x{h} image: camera policy too tight")
    return xyz_cam, K_all
