"""Evaluation protocols: how a network prediction becomes metric 3D joints to compare.

Cross-dataset numbers are only comparable under the same protocol (docs/sources.md#evaluation-protocols),
so every number hcdg reports carries a protocol name and a root name:

* ``rr-gtscale`` (hand3d, Zimmermann & Brox 2017): the root-relative, bone-normalised
  prediction ``xyz_rel_norm`` is scaled by the ground-truth bone length (middle
  MCP -> PIP, joints 9 -> 10) and placed at the ground-truth root. Only the
  articulation and its orientation are measured. The prediction is re-rooted first
  (its joint 0 moved to the origin): hand3d's `eval_full.py` adds the GT root to the
  raw output, so there a residual offset of the predicted root also counts; the
  PosePrior's FC output leaves joint 0 only approximately at 0, so the two readings
  can differ slightly.
* ``pa`` (FreiHAND toolbox, eval.py `align_w_scale`): the prediction is Procrustes-aligned
  to the ground truth with scale (centre on the mean, scale, rotate), reflections
  admitted as the toolbox's `scipy.linalg.orthogonal_procrustes` admits them
  (`metrics.toolbox_align`, equal to the toolbox to float precision). Only the
  articulation is measured.
* ``pa-proper``: the same alignment restricted to proper rotations (det R = +1,
  `metrics.procrustes_align`), so a depth-flipped (mirror-image) prediction is not
  forgiven. Result files written before this split hold it under the name ``pa``;
  `store.schema` relabels them on reading.
* ``2.5d-gtroot-gtbone`` (hcdg's 2.5D reading; called ``gtroot-2.5d`` before, and wrongly
  documented then as the paper authors' test code): 2D joints from the heatmaps mapped
  back to the image, relative depth from the network (``xyz_rel_norm`` z times the
  ground-truth bone length), ground-truth root depth and intrinsics to back-project.
  EPE in the camera frame, no scale or Procrustes alignment: the root's x/y error
  (from the 2D detection) is included. Result files with the old name are read as this
  one (`store.schema`).
* ``authors`` (the paper authors' test code, which produced the paper's Table 3; their
  data/Rhp/Rhp.py:186-224, data/STB/STB.py:178-213): for networks whose output is their
  normalised uvd (``ModelConfig.output == "uvd"``), see `authors_uvd`, on THEIR released
  boxes, cut as their code cuts them (`crop_cv2`). The four protocols
  above read ``xyz_rel_norm`` as root-relative bone-normalised xyz and apply to
  ``output == "xyz"`` networks only; ``authors`` to ``"uvd"`` networks only
  (`protocols_for_output`).
* ``authors-gtcrops``: the same computation on hcdg's ground-truth boxes (``--crops gt``), so
  that an ``authors`` number always means their boxes (`default_protocols`).

Roots. The network predicts a wrist at joint 0 (it is trained on FreiHAND), while STB's
ground-truth joint 0 is the palm centre. For STB both are reported:

* ``wrist``: the ground-truth palm is converted to a wrist,
  ``wrist = mid_mcp + 2.2 * (palm - mid_mcp)``; the prediction is left as it is.
* ``palm``: a palm point derived from the prediction, ``(wrist + middle MCP) / 2``,
  replaces prediction joint 0 and is compared with the ground-truth palm. Under
  ``rr-gtscale`` this palm point is what sits at the ground-truth root; under
  ``2.5d-gtroot-gtbone`` its depth is anchored to the ground-truth palm depth.

For wrist-rooted ground truth (FreiHAND, RHD) every protocol has ``wrist``; ``rr-gtscale``
also has ``palm``: hand3d evaluates RHD with the palm ``(wrist + middle MCP) / 2`` as
joint 0 and root (its `BinaryDbReader`, ``use_wrist_coord=False``, read by `eval3d.py` and
`eval_full.py`), so both the ground truth's and the prediction's joint 0 become that
midpoint (its visibility: wrist or middle MCP visible, as hand3d's).

Frames. Prediction, ground truth, ``K`` and the heatmap->image map must all describe
the same image (for mirrored left hands: the mirrored image and mirrored ground
truth, as `transforms.prepare` returns them). All functions are pure numpy, batched
over N samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdg.pipeline import camera, hands, metrics
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.joints import MIDDLE_MCP, N_JOINTS, WRIST

#: Protocol names, in the order reports list them.
PROTOCOLS: tuple[str, ...] = ("authors", "authors-gtcrops", "2.5d-gtroot-gtbone", "rr-gtscale", "pa", "pa-proper")
#: The protocol of the paper's own numbers (its authors' test code; docs/sources.md#authors-test-code).
PAPER_PROTOCOL = "authors"
#: Which protocols read which network output (`ModelConfig.output`).
OUTPUT_PROTOCOLS = {"xyz": ("2.5d-gtroot-gtbone", "rr-gtscale", "pa", "pa-proper"),
                    "uvd": ("authors", "authors-gtcrops")}
#: The protocols that run the authors' test computation (`authors_uvd`), by the boxes they crop with:
#: their released boxes (``--crops seed-boxes``) or hcdg's ground-truth boxes (``--crops gt``).
AUTHORS_PROTOCOLS: dict[str, str] = {"authors": "seed-boxes", "authors-gtcrops": "gt"}
ROOTS: tuple[str, ...] = ("wrist", "palm")
#: Heatmap decoders accepted by `decode_heatmaps`.
DECODERS: tuple[str, ...] = ("argmax", "soft-argmax")


@dataclass(frozen=True)
class ProtocolResult:
    """One protocol's outcome for a batch.

    Attributes:
        protocol, root: names from PROTOCOLS / ROOTS.
        pred_xyz_m: (N, 21, 3) prediction after the protocol's alignment, metres, camera frame.
        gt_xyz_m: (N, 21, 3) ground truth as compared (root converted if asked), metres.
        errors_mm: (N, 21) per-joint Euclidean errors, millimetres.
        visible: optional (N, 21) bool visibility of the joints as compared, when it
            differs from the sample's (palm joint 0 of wrist-rooted data: `palm_visible`).
    """

    protocol: str
    root: str
    pred_xyz_m: np.ndarray
    gt_xyz_m: np.ndarray
    errors_mm: np.ndarray
    visible: np.ndarray | None = None


def protocols_for_output(output: str) -> tuple[str, ...]:
    """The protocols that apply to a network whose `xyz_rel_norm` means `output` ("xyz" | "uvd")."""
    if output not in OUTPUT_PROTOCOLS:
        raise HcdgError(f"network output: expected 'xyz' or 'uvd', got {output!r}")
    return OUTPUT_PROTOCOLS[output]


def default_protocols(output: str, crops: str) -> tuple[str, ...]:
    """The protocols computed when none is asked for: every one that applies to `output`,
    and of the authors' two only the one named for `crops` ("gt" | "seed-boxes")."""
    return tuple(p for p in protocols_for_output(output) if AUTHORS_PROTOCOLS.get(p, crops) == crops)


def check_crops(protocols: tuple[str, ...], crops: str) -> None:
    """One-line HcdgError when an authors protocol is asked for with the other kind of boxes."""
    for p in protocols:
        want = AUTHORS_PROTOCOLS.get(p)
        if want is not None and want != crops:
            if p == "authors":
                raise HcdgError("--protocol authors: means the authors' released boxes; add --crops seed-boxes "
                                "--boxes FILE.npy, or ask for --protocol authors-gtcrops (their computation on "
                                "hcdg's ground-truth boxes)")
            raise HcdgError(f"--protocol {p}: is their computation on hcdg's ground-truth boxes (--crops gt); "
                            "with --crops seed-boxes ask for --protocol authors")


def uses_authors(protocols: tuple[str, ...]) -> bool:
    """Whether any of `protocols` runs the authors' test computation (and so their crops)."""
    return any(p in AUTHORS_PROTOCOLS for p in protocols)


def check_applies(protocols: tuple[str, ...], output: str, what: str) -> None:
    """One-line HcdgError when a requested protocol does not read `output` networks."""
    ok = protocols_for_output(output)
    for p in protocols:
        if p not in ok:
            if p in AUTHORS_PROTOCOLS:
                why = ("it reads the network output as the authors' normalised uvd (their fit_joint_img); "
                       f"{what} outputs hand3d's root-relative xyz. Train with --target uvd, or import "
                       "their checkpoint with `hcdg import authors`")
            else:
                why = (f"it reads the output as root-relative bone-normalised xyz; {what} outputs the "
                       "authors' normalised uvd: use --protocol authors")
            raise HcdgError(f"--protocol {p}: does not apply to this run: {why}")


#: Protocols that also report a palm root for wrist-rooted ground truth (hand3d's RHD reading).
PALM_FROM_WRIST_PROTOCOLS: tuple[str, ...] = ("rr-gtscale",)


def roots_for(gt_root: str, protocol: str | None = None) -> tuple[str, ...]:
    """The root handlings to report under `protocol` for ground truth whose joint 0 is `gt_root`.

    Palm-rooted ground truth (STB): wrist and palm under every protocol. Wrist-rooted
    (FreiHAND, RHD): wrist; also palm under `PALM_FROM_WRIST_PROTOCOLS` (and when
    `protocol` is None, which asks what any protocol may take).
    """
    if gt_root == "palm":
        return ("wrist", "palm")
    if gt_root == "wrist":
        return ("wrist", "palm") if protocol is None or protocol in PALM_FROM_WRIST_PROTOCOLS else ("wrist",)
    raise HcdgError(f"gt_root: expected 'wrist' or 'palm', got {gt_root!r}")


def _joints(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (N_JOINTS, 3):
        raise HcdgError(f"{name}: expected shape (N, {N_JOINTS}, 3), got {arr.shape}")
    return arr


def _check_root(gt_root: str, root: str) -> None:
    if root not in roots_for(gt_root):
        raise HcdgError(
            f"root {root!r} does not apply to ground truth rooted at the {gt_root} "
            f"(choose from {', '.join(roots_for(gt_root))})"
        )


def palm_visible(visible: np.ndarray) -> np.ndarray:
    """(N, 21) visibility with joint 0 = wrist or middle MCP visible (hand3d's palm of RHD)."""
    vis = np.array(visible, dtype=bool)
    vis[..., WRIST] = vis[..., WRIST] | vis[..., MIDDLE_MCP]
    return vis


def image_from_heatmap(
    crop_from_image: np.ndarray, input_size: int, heatmap_size: int
) -> np.ndarray:
    """The (N, 3, 3) map heatmap pixels -> image pixels for `gtroot_25d` (2.5d-gtroot-gtbone).

    Composes `camera.heatmap_to_crop` (integer-centred pixels, same field of view) with
    the inverse of each sample's `crop_from_image` (from `transforms.prepare`; for
    mirrored hands it ends in the mirrored image, the frame of `K` and `xyz_m` there).
    """
    A = np.asarray(crop_from_image, dtype=np.float64)
    if A.ndim == 2:
        A = A[None]
    r = input_size / heatmap_size
    crop_from_hm = np.array([[r, 0.0, 0.5 * r - 0.5], [0.0, r, 0.5 * r - 0.5], [0.0, 0.0, 1.0]])
    return np.stack([camera.affine_inverse(a) @ crop_from_hm for a in A])


# --- ground truth and prediction under a root handling --------------------------------


def gt_for_root(gt_xyz_m: np.ndarray, gt_root: str, root: str) -> np.ndarray:
    """The ground truth to compare with under `root` (STB palm converted for `wrist`;
    a wrist-rooted hand's joint 0 replaced by hand3d's palm midpoint for `palm`)."""
    gt = _joints(gt_xyz_m, "gt_xyz_m")
    _check_root(gt_root, root)
    if gt_root == "palm" and root == "wrist":
        return hands.stb_palm_to_wrist(gt)
    if gt_root == "wrist" and root == "palm":
        return hands.with_palm_root(gt)
    return gt.copy()


def _pred_for_root(pred: np.ndarray, root: str) -> np.ndarray:
    """The prediction (joint 0 = wrist) with joint 0 replaced by its palm point for `palm`."""
    return hands.with_palm_root(pred) if root == "palm" else pred.copy()


def rr_gtscale(
    xyz_rel_norm: np.ndarray, gt_xyz_m: np.ndarray, *, gt_root: str = "wrist", root: str = "wrist"
) -> ProtocolResult:
    """hand3d: prediction * GT bone length + GT root.

    Args:
        xyz_rel_norm: (N, 21, 3) network output, root-relative (joint 0 = wrist = 0),
            divided by the middle MCP -> PIP length, camera orientation.
        gt_xyz_m: (N, 21, 3) ground truth, metres, camera frame; joint 0 is `gt_root`.
    """
    rel = _joints(xyz_rel_norm, "xyz_rel_norm")
    gt = gt_for_root(gt_xyz_m, gt_root, root)
    rel = _pred_for_root(rel, root)
    rel = rel - rel[:, WRIST : WRIST + 1]
    pred = rel * hands.bone_scale_batched(gt)[:, None, None] + gt[:, WRIST : WRIST + 1]
    return ProtocolResult("rr-gtscale", root, pred, gt, metrics.joint_errors_mm(pred, gt))


def pa(
    pred_xyz: np.ndarray,
    gt_xyz_m: np.ndarray,
    *,
    gt_root: str = "wrist",
    root: str = "wrist",
    allow_reflection: bool = True,
) -> ProtocolResult:
    """FreiHAND toolbox: Procrustes alignment with scale onto the ground truth.

    Args:
        pred_xyz: (N, 21, 3) prediction in any scale and placement (e.g. `xyz_rel_norm`),
            camera orientation; joint 0 is a wrist.
        allow_reflection: True (default, protocol ``pa``): the toolbox's own alignment,
            reflections admitted (`metrics.toolbox_align`); False (protocol ``pa-proper``):
            proper rotations only (`metrics.procrustes_align`).
    """
    pred = _pred_for_root(_joints(pred_xyz, "pred_xyz"), root)
    gt = gt_for_root(gt_xyz_m, gt_root, root)
    if allow_reflection:
        aligned, name = metrics.toolbox_align(pred, gt), "pa"
    else:
        aligned, name = metrics.procrustes_align(pred, gt, allow_reflection=False), "pa-proper"
    return ProtocolResult(name, root, aligned, gt, metrics.joint_errors_mm(aligned, gt))


def decode_heatmaps(
    heatmaps: np.ndarray, method: str = "soft-argmax", window_px: int | None = 3
) -> np.ndarray:
    """Joint positions from heatmaps, in heatmap pixel coordinates.

    Coordinates are (x = column, y = row) with pixel centres at integers, so a
    peak in cell (row 5, column 7) decodes to (7, 5).

    Args:
        heatmaps: (N, J, H, W) scores (e.g. the last CPM stage).
        method: "argmax" (the best cell; quantised to whole heatmap pixels) or
            "soft-argmax" (the centroid of the non-negative scores, sub-pixel).
        window_px: soft-argmax only: use the (2w+1)^2 cells around the argmax
            (robust to clutter elsewhere in the map); None uses the whole map.
            Default 3 cells = 24 px on the 256 crop, covering the authors' 10 px
            and most of hand3d's 25 px target sigma (docs/sources.md#heatmaps-and-crop).
    Returns:
        (N, J, 2) float64.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim != 4:
        raise HcdgError(f"heatmaps: expected shape (N, J, H, W), got {hm.shape}")
    if method not in DECODERS:
        raise HcdgError(f"heatmap decoder: expected one of {', '.join(DECODERS)}, got {method!r}")
    n, j, h, w = hm.shape
    flat = hm.reshape(n, j, h * w)
    idx = flat.argmax(axis=-1)
    x0 = (idx % w).astype(np.float64)
    y0 = (idx // w).astype(np.float64)
    if method == "argmax":
        return np.stack([x0, y0], axis=-1)
    weights = np.clip(hm, 0.0, None)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    if window_px is not None:
        in_x = np.abs(xs[None, None, :] - x0[..., None]) <= window_px  # (N, J, W)
        in_y = np.abs(ys[None, None, :] - y0[..., None]) <= window_px  # (N, J, H)
        weights = weights * (in_y[..., :, None] & in_x[..., None, :])
    total = weights.sum(axis=(-1, -2))
    safe = np.where(total > 0, total, 1.0)
    x = (weights.sum(axis=-2) * xs).sum(axis=-1) / safe
    y = (weights.sum(axis=-1) * ys).sum(axis=-1) / safe
    x = np.where(total > 0, x, x0)
    y = np.where(total > 0, y, y0)
    return np.stack([x, y], axis=-1)


def heatmap_to_image(uv_hm: np.ndarray, image_from_heatmap: np.ndarray) -> np.ndarray:
    """Apply (N, 3, 3) homogeneous maps (heatmap pixels -> image pixels) to (N, J, 2) points."""
    uv = np.asarray(uv_hm, dtype=np.float64)
    A = np.asarray(image_from_heatmap, dtype=np.float64)
    if A.ndim == 2:
        A = np.broadcast_to(A, (uv.shape[0], 3, 3))
    if A.shape != (uv.shape[0], 3, 3):
        raise HcdgError(f"image_from_heatmap: expected (N, 3, 3) or (3, 3), got {A.shape}")
    hom = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1) @ np.swapaxes(A, -1, -2)
    return hom[..., :2] / hom[..., 2:3]


def gtroot_25d(
    xyz_rel_norm: np.ndarray,
    uv_hm: np.ndarray,
    image_from_heatmap: np.ndarray,
    gt_xyz_m: np.ndarray,
    K: np.ndarray,
    *,
    gt_root: str = "wrist",
    root: str = "wrist",
) -> ProtocolResult:
    """``2.5d-gtroot-gtbone``: heatmap 2D + network relative depth x GT bone + GT root depth.

    Args:
        xyz_rel_norm: (N, 21, 3) network output; only its z (relative depth) is used.
        uv_hm: (N, 21, 2) joint positions in heatmap pixels (`decode_heatmaps`).
        image_from_heatmap: (N, 3, 3) or (3, 3) map heatmap pixels -> image pixels
            (the caller composes crop<-heatmap scaling with the inverse crop affine).
        gt_xyz_m: (N, 21, 3) ground truth, metres, camera frame; joint 0 is `gt_root`.
        K: (N, 3, 3) or (3, 3) ground-truth intrinsics of the image.
    Depth of each joint = GT root depth + (z_rel - z_rel of the root) * GT bone length;
    the root is the wrist, or for `palm` the predicted palm point.
    """
    rel = _joints(xyz_rel_norm, "xyz_rel_norm")
    gt = gt_for_root(gt_xyz_m, gt_root, root)
    uv_img = heatmap_to_image(uv_hm, image_from_heatmap)
    if uv_img.shape != rel.shape[:2] + (2,):
        raise HcdgError(f"uv_hm: expected shape {rel.shape[:2] + (2,)}, got {np.shape(uv_hm)}")
    Km = np.asarray(K, dtype=np.float64)
    if Km.ndim == 2:
        Km = np.broadcast_to(Km, (rel.shape[0], 3, 3))
    if Km.shape != (rel.shape[0], 3, 3):
        raise HcdgError(f"K: expected (N, 3, 3) or (3, 3), got {Km.shape}")
    z_rel = rel[..., 2]
    z_root_rel = 0.5 * (z_rel[:, WRIST] + z_rel[:, MIDDLE_MCP]) if root == "palm" else z_rel[:, WRIST]
    z_m = gt[:, WRIST, 2:3] + (z_rel - z_root_rel[:, None]) * hands.bone_scale_batched(gt)[:, None]
    pred = camera.backproject(uv_img, z_m, Km)
    pred = _pred_for_root(pred, root)
    return ProtocolResult("2.5d-gtroot-gtbone", root, pred, gt, metrics.joint_errors_mm(pred, gt))


@dataclass(frozen=True)
class AuthorsInputs:
    """What `authors_uvd` needs beyond the network output and the ground truth.

    Attributes:
        variant: "rhd" or "stb": which of their two test scripts (RHD: regressed uv, depth
            decoded with 0.15 m; STB: heatmap-argmax uv, 0.065 m; see `authors_uvd`).
        uv_argmax_crop: (N, 21, 2) crop pixels of the argmax of the last-stage maps
            upsampled to the crop (`authors.heatmap_argmax_upsampled`); used by "stb".
        crop_from_image: (N, 3, 3) image -> crop affine of each sample (in the mirrored
            image for mirrored samples).
        K_image: (N, 3, 3) the dataset's own intrinsics, NOT mirrored: their code
            back-projects mirrored crops with the original principal point.
        input_size: crop side S (their 256).
        image_from_crop: (N, 3, 3) crop -> image maps to decode with (their separately solved
            float32 ``bb2img_trans``, `crop_cv2.patch_affines`); None = the inverse of
            `crop_from_image`.
    """

    variant: str
    uv_argmax_crop: np.ndarray
    crop_from_image: np.ndarray
    K_image: np.ndarray
    input_size: int
    image_from_crop: np.ndarray | None = None


def authors_uvd(
    uvd: np.ndarray, gt_xyz_m: np.ndarray, inputs: AuthorsInputs, *, gt_root: str = "wrist", root: str = "wrist",
    protocol: str = "authors",
) -> ProtocolResult:
    """The paper authors' test computation (their Rhp.py:197-217, STB.py:186-205).

    Args:
        uvd: (N, 21, 3) network output read as (u/S, v/S, ((z - z_root)/0.15 + 1)/2).
        gt_xyz_m: (N, 21, 3) ground truth, metres, in the frame of the (mirrored) crop's
            image, joint 0 = `gt_root`. Under root "wrist" an STB palm is converted to a
            wrist first; under "palm" it is used as it is and (as in their code) the
            prediction's joint 0 is compared with it unchanged.
    Per sample, with z0 = the ground truth's joint-0 depth:
      RHD: uv = uvd[:, :2] * S; dz = (2 d - 1) * 0.15; z = z0 + dz; back to image pixels by
           the inverse crop affine; back-projected with K_image; then z -= dz[0] (the
           prediction's root moved to z0 in depth only, after the back-projection).
      STB: uv = argmax of the upsampled maps; dz = (2 d - 1) * 0.065; z = z0 + dz - dz[0];
           then the same back-projection.
    EPE is the Euclidean distance per joint in mm; no scale or Procrustes alignment.
    `protocol` is the name the result carries (`AUTHORS_PROTOCOLS`: which boxes were cut).
    """
    from hcdg.pipeline.authors import DECODE_DEPTH_HALF_RANGE_M

    d = _joints(uvd, "uvd")
    gt = gt_for_root(gt_xyz_m, gt_root, root)
    n = d.shape[0]
    if inputs.variant not in DECODE_DEPTH_HALF_RANGE_M:
        raise HcdgError(f"authors protocol: variant must be 'rhd' or 'stb', got {inputs.variant!r}")
    A = np.asarray(inputs.crop_from_image, dtype=np.float64).reshape(-1, 3, 3)
    Km = np.asarray(inputs.K_image, dtype=np.float64).reshape(-1, 3, 3)
    if A.shape[0] != n or Km.shape[0] != n:
        raise HcdgError(f"authors protocol: expected {n} crop affines and intrinsics, got {A.shape[0]}, {Km.shape[0]}")
    half = DECODE_DEPTH_HALF_RANGE_M[inputs.variant]
    dz = (d[..., 2] * 2.0 - 1.0) * half
    z0 = gt[:, 0, 2:3]
    if inputs.variant == "stb":
        uv = np.asarray(inputs.uv_argmax_crop, dtype=np.float64)
        if uv.shape != (n, N_JOINTS, 2):
            raise HcdgError(f"authors protocol: uv_argmax_crop must be ({n}, {N_JOINTS}, 2), got {uv.shape}")
        z = z0 + dz - dz[:, :1]
    else:
        uv = d[..., :2] * float(inputs.input_size)
        z = z0 + dz
    if protocol not in AUTHORS_PROTOCOLS:
        raise HcdgError(f"authors protocol: name must be one of {', '.join(AUTHORS_PROTOCOLS)}, got {protocol!r}")
    if inputs.image_from_crop is None:
        inv = np.stack([camera.affine_inverse(a) for a in A])
    else:
        inv = np.asarray(inputs.image_from_crop, dtype=np.float64).reshape(-1, 3, 3)
        if inv.shape[0] != n:
            raise HcdgError(f"authors protocol: expected {n} crop -> image maps, got {inv.shape[0]}")
    uv_img = np.einsum("nij,nkj->nki", inv[:, :2, :2], uv) + inv[:, None, :2, 2]
    pred = camera.backproject(uv_img, z, Km)
    pred[..., 2] += gt[:, :1, 2] - pred[:, :1, 2]
    return ProtocolResult(protocol, root, pred, gt, metrics.joint_errors_mm(pred, gt))


def run_protocols(
    xyz_rel_norm: np.ndarray,
    gt_xyz_m: np.ndarray,
    *,
    gt_root: str = "wrist",
    K: np.ndarray | None = None,
    uv_hm: np.ndarray | None = None,
    image_from_heatmap: np.ndarray | None = None,
    protocols: tuple[str, ...] = OUTPUT_PROTOCOLS["xyz"],
    authors_inputs: AuthorsInputs | None = None,
) -> list[ProtocolResult]:
    """Every requested protocol under every root that applies to `gt_root`.

    `2.5d-gtroot-gtbone` needs `K`, `uv_hm` and `image_from_heatmap`, `authors` needs
    `authors_inputs` (and reads `xyz_rel_norm` as uvd); asking for them without is an error.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise HcdgError(f"protocol: unknown {unknown[0]!r} (choose from {', '.join(PROTOCOLS)})")
    out: list[ProtocolResult] = []
    for protocol in protocols:
        for root in roots_for(gt_root, protocol):
            if protocol == "rr-gtscale":
                out.append(rr_gtscale(xyz_rel_norm, gt_xyz_m, gt_root=gt_root, root=root))
            elif protocol in ("pa", "pa-proper"):
                reflect = protocol == "pa"
                out.append(pa(xyz_rel_norm, gt_xyz_m, gt_root=gt_root, root=root, allow_reflection=reflect))
            elif protocol in AUTHORS_PROTOCOLS:
                if authors_inputs is None:
                    raise HcdgError(f"protocol {protocol} needs the crop affines, original intrinsics and "
                                    "heatmap argmax")
                out.append(authors_uvd(xyz_rel_norm, gt_xyz_m, authors_inputs, gt_root=gt_root, root=root,
                                       protocol=protocol))
            else:
                if K is None or uv_hm is None or image_from_heatmap is None:
                    raise HcdgError("protocol 2.5d-gtroot-gtbone needs K, uv_hm and image_from_heatmap")
                out.append(
                    gtroot_25d(
                        xyz_rel_norm, uv_hm, image_from_heatmap, gt_xyz_m, K, gt_root=gt_root, root=root
                    )
                )
    return out
