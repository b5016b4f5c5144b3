"""Render a hand as shaded capsules and flat palm triangles (numpy, z-buffered).

Each finger bone is a tapered capsule (a sphere swept along the bone); the palm
is four flat triangles fanned from the wrist plus metacarpal capsules; the
forearm is a thick capsule leaving the wrist away from the fingers. Each
primitive is evaluated per pixel inside its own bounding box only: distance of
the pixel to the projected bone (in 2D), the front surface's depth from the
bone's depth and radius, and a Lambert shade from the surface normal. A
z-buffer keeps the nearest surface, so fingers occlude each other, the palm and
the arm. This is an impostor renderer, not a ray tracer: silhouettes of bones
seen end-on are approximate, depth ordering is exact to a few millimetres.

A joint is *visible* when it projects inside the image and the nearest
surface at its pixel lies no further in front of it than its own radius plus
`VISIBLE_TOL_M` (so a finger crossing in front hides it).

Pixel convention: pixel (row i, column j) has its centre at uv = (j, i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdg.pipeline import joints as J

#: Slack when deciding whether the surface at a joint's pixel is that joint's own (metres).
VISIBLE_TOL_M = 0.004
#: A hand with fewer visible pixels than this behind its own forearm is rendered without the arm.
MIN_HAND_PIXELS = 50
#: Part labels in `RenderLayer.part`: 0 nothing, 1 forearm, 2 palm, 3.. finger segments.
PART_NONE, PART_FOREARM, PART_PALM = 0, 1, 2
#: Number of hand part labels (palm + 15 finger segments), as in RHD's masks (16 per hand).
N_HAND_PARTS = 16

# Metric radii at hand size 1 (metres).
_FINGER_R = np.array(
    [  # radius at MCP, PIP, DIP, tip (thumb: at joints 1, 2, 3, tip)
        [0.0120, 0.0108, 0.0098, 0.0088],
        [0.0095, 0.0085, 0.0077, 0.0068],
        [0.0098, 0.0088, 0.0079, 0.0070],
        [0.0092, 0.0083, 0.0075, 0.0067],
        [0.0080, 0.0072, 0.0066, 0.0060],
    ]
)
_PALM_HALF_THICK = 0.0115
_METACARPAL_R = 0.0095
_WRIST_HALF_WIDTH = 0.022
_PALM_CORE_R = 0.0092
_FOREARM_R = (0.0240, 0.0300)  # at the wrist, at the far end
_FOREARM_LEN = 0.20


@dataclass(frozen=True)
class Lighting:
    """Lambert lighting: shade = ambient + diffuse * max(0, n . direction).

    `direction` points from the surface towards the light, camera frame (x right, y down,
    z forward); the default lights from the upper left, in front of the hand.
    """

    direction: tuple[float, float, float] = (-0.35, -0.55, -0.76)
    ambient: float = 0.38
    diffuse: float = 0.70


@dataclass(frozen=True)
class RenderLayer:
    """One rendered hand, before colouring.

    Attributes:
        shade: (H, W) float32 Lambert factor, 0 where no hand.
        part: (H, W) uint8 part label (0 nothing, 1 forearm, 2 palm, 3 + 3*finger + segment).
        depth: (H, W) float32 metres of the nearest surface, inf where no hand.
        visible: (21,) bool, joint inside the image and not occluded.
        uv: (21, 2) float64 projected joints.
    """

    shade: np.ndarray
    part: np.ndarray
    depth: np.ndarray
    visible: np.ndarray
    uv: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: hand or forearm pixels."""
        return self.part > 0


def joint_radii(size: float) -> np.ndarray:
    """(21,) metric radius of the surface around each joint (FreiHAND order) for a hand of `size`."""
    r = np.zeros(21)
    r[0] = _FOREARM_R[0]
    for fi in range(5):
        base = 1 + 4 * fi
        r[base : base + 4] = _FINGER_R[fi]
        if fi > 0:  # MCPs sit inside the palm slab
            r[base] = max(r[base], _PALM_HALF_THICK)
    return r * size


class _Canvas:
    """Z-buffer, shade and part buffers plus the camera, for drawing primitives."""

    def __init__(self, h: int, w: int, K: np.ndarray, light: Lighting):
        self.h, self.w = h, w
        self.fx, self.fy = float(K[0, 0]), float(K[1, 1])
        self.cx, self.cy = float(K[0, 2]), float(K[1, 2])
        self.K = K
        self.depth = np.full((h, w), np.inf, dtype=np.float32)
        self.shade = np.zeros((h, w), dtype=np.float32)
        self.part = np.zeros((h, w), dtype=np.uint8)
        self._xs = np.arange(w, dtype=np.float32)[None, :]
        self._ys = np.arange(h, dtype=np.float32)[:, None]
        ld = np.asarray(light.direction, dtype=np.float64)
        ld = ld / np.linalg.norm(ld)
        self.L = ld.astype(np.float32)
        self.lx, self.ly, self.lz = (float(v) for v in ld)
        self.ambient, self.diffuse = float(light.ambient), float(light.diffuse)

    def _box(self, lo0: float, lo1: float, hi0: float, hi1: float):
        x0, y0 = max(int(np.floor(lo0)), 0), max(int(np.floor(lo1)), 0)
        x1, y1 = min(int(np.ceil(hi0)) + 1, self.w), min(int(np.ceil(hi1)) + 1, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        return (slice(y0, y1), slice(x0, x1)), self._xs[:, x0:x1], self._ys[y0:y1]

    def _commit(self, win, z, inside, shade, label: int) -> None:
        sub = self.depth[win]
        upd = z < sub
        upd &= inside
        np.copyto(sub, z, where=upd)
        np.copyto(self.shade[win], shade, where=upd)
        np.copyto(self.part[win], np.uint8(label), where=upd)

    def capsule(self, a: np.ndarray, b: np.ndarray, ra: float, rb: float, label: int) -> None:
        """Tapered capsule between camera-frame points a, b (metres) with metric radii ra, rb."""
        za, zb = float(a[2]), float(b[2])
        if za <= 0.02 or zb <= 0.02:
            return
        ua0, ua1 = self.fx * float(a[0]) / za + self.cx, self.fy * float(a[1]) / za + self.cy
        ub0, ub1 = self.fx * float(b[0]) / zb + self.cx, self.fy * float(b[1]) / zb + self.cy
        pa, pb = self.fx * ra / za, self.fx * rb / zb  # pixel radii
        rmax = max(pa, pb)
        box = self._box(min(ua0, ub0) - rmax, min(ua1, ub1) - rmax, max(ua0, ub0) + rmax, max(ua1, ub1) + rmax)
        if box is None:
            return
        win, xs, ys = box
        d0, d1 = ub0 - ua0, ub1 - ua1
        inv = 1.0 / max(d0 * d0 + d1 * d1, 1e-9)
        dx, dy = xs - ua0, ys - ua1  # (1, nx), (ny, 1)
        t = dx * (d0 * inv) + dy * (d1 * inv)  # position of the closest point along the bone
        np.maximum(t, 0.0, out=t)
        np.minimum(t, 1.0, out=t)
        ex = dx - t * d0  # pixel minus its closest point on the bone
        ey = dy - t * d1
        r = t * (pb - pa)
        r += pa
        s2 = ex * ex
        s2 += ey * ey
        s2 /= r * r
        inside = s2 < 1.0
        if not inside.any():
            return
        nz = 1.0 - s2  # the normal's component towards the camera, squared
        np.maximum(nz, 0.0, out=nz)
        np.sqrt(nz, out=nz)
        z = t * (zb - za)
        z += za
        rad = t * (rb - ra)
        rad += ra
        rad *= nz
        z -= rad
        ndl = ex * self.lx
        ndl += ey * self.ly
        ndl /= r
        ndl -= nz * self.lz
        np.maximum(ndl, 0.0, out=ndl)
        ndl *= self.diffuse
        ndl += self.ambient
        self._commit(win, z, inside, ndl, label)

    def vertex_shade(self, normal: np.ndarray) -> np.ndarray:
        """Lambert shade of unit normals (..., 3) (camera frame)."""
        return self.ambient + self.diffuse * np.maximum(normal @ self.L.astype(np.float64), 0.0)

    def triangle(self, p: np.ndarray, shade: np.ndarray, offset: float, label: int) -> None:
        """Triangle through camera-frame points p (3, 3), moved `offset` metres towards the camera,
        with per-vertex shades (3,) interpolated across it (Gouraud)."""
        if (p[:, 2] <= 0.02).any():
            return
        uv = (p @ self.K.T)[:, :2] / p[:, 2:3]
        lo, hi = uv.min(0), uv.max(0)
        box = self._box(lo[0], lo[1], hi[0], hi[1])
        if box is None:
            return
        win, xs, ys = box
        (x0, y0), (x1, y1), (x2, y2) = uv
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-6:
            return
        w0 = ((y1 - y2) * (xs - x2) + (x2 - x1) * (ys - y2)) / np.float32(den)
        w1 = ((y2 - y0) * (xs - x2) + (x0 - x2) * (ys - y2)) / np.float32(den)
        w2 = 1.0 - w0 - w1
        # Grow the triangle by ~0.75 px so that neighbours sharing an edge leave no crack.
        eps = np.float32(0.75 / max(float(np.abs(uv[:, None] - uv[None]).max()), 1.0))
        inside = (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
        if not inside.any():
            return
        iz = 1.0 / p[:, 2]  # perspective-correct depth: 1/z is linear in screen space
        z = (1.0 / (w0 * np.float32(iz[0]) + w1 * np.float32(iz[1]) + w2 * np.float32(iz[2]))
             - np.float32(offset)).astype(np.float32)
        sh = (w0 * shade[0] + w1 * shade[1] + w2 * shade[2]).astype(np.float32)
        self._commit(win, z, inside, sh, label)


def _palm_polygon(xyz: np.ndarray, size: float) -> np.ndarray:
    """(7, 3) palm outline: radial wrist edge, thumb base, index..pinky MCPs, ulnar wrist edge."""
    lateral = xyz[J.MCP["index"]] - xyz[J.MCP["pinky"]]
    lateral /= max(np.linalg.norm(lateral), 1e-9)
    w = xyz[J.WRIST]
    mcps = [xyz[J.MCP[f]] for f in J.FINGERS]
    return np.stack([w + _WRIST_HALF_WIDTH * size * lateral, *mcps, w - _WRIST_HALF_WIDTH * size * lateral])


def render_hand(
    xyz_cam: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    size: float = 1.0,
    light: Lighting = Lighting(),
    forearm: bool = True,
) -> RenderLayer:
    """Render one hand (either side).

    Args:
        xyz_cam: (21, 3) joints, metres, camera frame, FreiHAND order.
        K: (3, 3) intrinsics, pixels.
        height, width: image size, pixels.
        size: the hand's size factor (scales the radii; `HandBatch.size`).
        light: Lambert lighting.
        forearm: draw the forearm (part label 1); it is dropped when it would leave fewer than
            `MIN_HAND_PIXELS` hand pixels in view.

    Returns:
        A `RenderLayer` (shade, part, depth buffers and the joints' visibility).
    """
    xyz = np.asarray(xyz_cam, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    cv = _Canvas(height, width, K, light)
    fr = _FINGER_R * size
    wrist = xyz[J.WRIST]
    if forearm:
        away = wrist - xyz[J.MIDDLE_MCP]
        away /= max(np.linalg.norm(away), 1e-9)
        length = _FOREARM_LEN * size
        if away[2] < 0:  # an arm reaching towards the camera stops at 60% of the wrist's depth
            length = min(length, 0.4 * wrist[2] / -away[2])
        if length > 0.01:
            cv.capsule(wrist, wrist + length * away, _FOREARM_R[0] * size, _FOREARM_R[1] * size, PART_FOREARM)
    # Palm: a fan of triangles from the wrist over the palm outline, the slab's half-thickness
    # towards the camera, smooth-shaded with vertex normals facing the camera; plus metacarpals.
    mcps = [J.MCP[f] for f in J.FINGERS]  # thumb joint 1, index..pinky MCPs
    outline = _palm_polygon(xyz, size)
    tri_n = np.cross(outline[:-1] - wrist, outline[1:] - wrist)
    tri_n /= np.maximum(np.linalg.norm(tri_n, axis=1, keepdims=True), 1e-12)
    tri_n *= np.where(tri_n[:, 2:3] > 0, -1.0, 1.0)  # the side facing the camera
    vert_n = np.zeros((len(outline), 3))
    vert_n[:-1] += tri_n
    vert_n[1:] += tri_n
    centre_n = tri_n.sum(0)
    vert_n /= np.maximum(np.linalg.norm(vert_n, axis=1, keepdims=True), 1e-12)
    centre_n /= max(np.linalg.norm(centre_n), 1e-12)
    vshade, cshade = cv.vertex_shade(vert_n), float(cv.vertex_shade(centre_n))
    for k in range(len(outline) - 1):
        cv.triangle(np.stack([wrist, outline[k], outline[k + 1]]),
                    np.array([cshade, vshade[k], vshade[k + 1]]), _PALM_HALF_THICK * size, PART_PALM)
    # Rounded palm edges (behind the slab's surface inside the outline, so only its rim shows):
    # thenar (wrist -> thumb base), ulnar edge (-> pinky MCP), knuckles (index -> pinky MCP).
    cv.capsule(outline[0], xyz[1], _METACARPAL_R * size, fr[0, 0], PART_PALM)
    cv.capsule(outline[-1], xyz[mcps[4]], _METACARPAL_R * size, _METACARPAL_R * size, PART_PALM)
    cv.capsule(xyz[mcps[1]], xyz[mcps[4]], _METACARPAL_R * size, _METACARPAL_R * size * 0.9, PART_PALM)
    # The slab's thickness when seen edge-on: metacarpals just behind its surface.
    for m in mcps[1:4]:
        cv.capsule(wrist, xyz[m], _PALM_CORE_R * size, _PALM_CORE_R * size, PART_PALM)
    # Fingers: three tapered segments each.
    for fi in range(5):
        base = 1 + 4 * fi
        for s in range(3):
            cv.capsule(xyz[base + s], xyz[base + s + 1], fr[fi, s], fr[fi, s + 1], 3 + 3 * fi + s)

    if forearm and np.count_nonzero(cv.part >= PART_PALM) < MIN_HAND_PIXELS:
        # The arm hides (nearly) the whole hand: drop the arm rather than lose the sample.
        return render_hand(xyz, K, height, width, size=size, light=light, forearm=False)
    uv = (xyz @ K.T)[:, :2] / xyz[:, 2:3]
    col, row = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (xyz[:, 2] > 0)
    surf = np.full(21, -np.inf)
    surf[inside] = cv.depth[row[inside], col[inside]]
    visible = inside & (surf >= xyz[:, 2] - joint_radii(size) - VISIBLE_TOL_M)
    return RenderLayer(shade=cv.shade, part=cv.part, depth=cv.depth, visible=visible, uv=uv)
