"""The paper authors' released network as an hcdg `HandPoseNet`: config, key map, uvd target.

Facts from their repository (swanilee/Image-free-domain-generalization-via-clip-for-3d-hand-
pose-estimation, HEAD), cited as file:line:

* Their checkpoint `snapshot_45.pth.tar` is ``{'network': state_dict, ...}`` of
  ``DistributedDataParallel(Model)`` (main/base.py:91-100), so keys read
  ``module.pose_model.<posenet|poseprior|viewpoint|handsegnet>.<layer>.<weight|bias>`` and
  ``module.clip_model.*`` (main/model_no_render.py:19-27: ``Model.pose_model`` is the
  ``ColorHandPose3D`` of colorhandpose3d/model/ColorHandPose3D.py:16-21).
* PoseNet (colorhandpose3d/model/PoseNet.py:60-101): hand3d's layers conv1_1 ... conv7_7;
  conv4_1 takes 256 channels in the contrastive build (l.70-71). Unused at test time and
  not imported: HandSegNet, the ADAIN blocks norm1-3 (l.117-119), the transposed-conv path
  dconv1-5 / bn1-5 / cconv6 (l.104-114), proj_linear1-3 (l.124-126, 21504 -> 10752 -> ...,
  most of the 1.4 GB) and ablation_add_fc1 (l.152, the summation ablation).
* Branch2 (PoseNet.py:129-150): cat_cnn1/2 (1x1, stride 2), cat_fc1 (1024 -> 512),
  cat_fc2 (1536 -> 512), projection_head = Linear(512, 512), BatchNorm1d, ReLU,
  Linear(512, 128, bias=False).
* PosePrior (PosePrior.py:29-38): conv_pose_{0,1,2}_{1,2}, fc_rel0 (2050), fc_rel1, fc_xyz (63);
  ViewPoint (ViewPoint.py:26-38): conv_vp_{0,1,2}_{1,2}, fc_vp0 (4098), fc_vp1, and three
  1-output heads fc_vp_ux/uy/uz (hcdg has one 3-output Linear: rows stacked ux, uy, uz).
* Layout: TF-"SAME" padding in the lifting streams and NHWC flatten, [0, 1] input, hand side
  [1, 0] for every crop and ``flip_left_hand`` (see `ModelConfig`'s fields).
* Target (data/Rhp/Rhp.py:148-152, data/STB/STB.py:141-146): u/256, v/256 in the crop and
  ``((z - z_root) / 0.15 + 1) / 2`` (``0.3 / 2`` in their code), regressed by the same
  flip(canonical) @ R output hand3d uses for xyz.

Nothing here reads files: `map_state_dict` takes the loaded mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model import ModelConfig

#: Half range of the normalised depth target, metres: ``0.3 / 2`` (their Rhp.py:152, STB.py:146).
UVD_DEPTH_HALF_RANGE_M = 0.15

#: Prefix of the pose network's keys in their DDP-wrapped checkpoint (main/base.py:91-100).
PREFIX = "module.pose_model."

#: Their key families that are not part of hcdg's network (see the module docstring).
IGNORED = re.compile(
    r"^(module\.)?(clip_model\.|pose_model\.handsegnet\.|pose_model\.posenet\.(norm[123]\.|dconv\d|bn\d\.|"
    r"cconv6\.|proj_linear\d|ablation_add_fc1\.))"
)


#: The `ModelConfig` fields that make hcdg's layout theirs (at any width / input size).
ARCH_OPTIONS: dict[str, Any] = {
    "lifting_padding": "tf-same", "lifting_flatten": "nhwc", "head_bias": False, "input_offset": 0.0,
    "hand_side": "authors",
}  # fmt: skip


def model_config() -> ModelConfig:
    """hcdg's `ModelConfig` of their released network (input 256, full width, Branch2 with a
    bias-free head, TF-SAME + NHWC lifting, [0, 1] input, their hand side, uvd output)."""
    return ModelConfig(
        width_mult=1.0, input_size=256, clip_dim=512, combine="concat", branch2=True, positive="clip",
        output="uvd", **ARCH_OPTIONS,
    )  # fmt: skip


def _layer_map() -> dict[str, str]:
    """hcdg module path -> their module path (without PREFIX), for every weight-bearing layer."""
    m: dict[str, str] = {}
    trunk = ["conv1_1", "conv1_2", None, "conv2_1", "conv2_2", None, "conv3_1", "conv3_2", "conv3_3", "conv3_4"]
    pos = 0
    for name in trunk:  # conv + LeakyReLU pairs, a MaxPool after each block
        if name is None:
            pos += 1
            continue
        m[f"posenet.trunk.{pos}"] = f"posenet.{name}"
        pos += 2
    for i, name in enumerate(["conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv4_5", "conv4_6", "conv4_7"]):
        m[f"posenet.encoder.{2 * i}"] = f"posenet.{name}"
    m["posenet.stage1.0"], m["posenet.stage1.2"] = "posenet.conv5_1", "posenet.conv5_2"
    for r, stage in enumerate((6, 7)):
        for i in range(7):
            m[f"posenet.refine.{r}.{2 * i}"] = f"posenet.conv{stage}_{i + 1}"
    for i, (a, b) in enumerate([(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]):
        m[f"prior.net.convs.{2 * i}"] = f"poseprior.conv_pose_{a}_{b}"
        m[f"viewpoint.net.convs.{2 * i}"] = f"viewpoint.conv_vp_{a}_{b}"
    m["prior.net.fcs.0"], m["prior.net.fcs.2"], m["prior.net.out"] = (
        "poseprior.fc_rel0", "poseprior.fc_rel1", "poseprior.fc_xyz")
    m["viewpoint.net.fcs.0"], m["viewpoint.net.fcs.2"] = "viewpoint.fc_vp0", "viewpoint.fc_vp1"
    m["branch2.conv_block.0"], m["branch2.conv_block.1"] = "posenet.cat_cnn1", "posenet.cat_cnn2"
    m["branch2.fc_e1"], m["branch2.fc_e2"] = "posenet.cat_fc1", "posenet.cat_fc2"
    m["branch2.head.net.0"] = "posenet.projection_head.0"
    m["branch2.head.net.1"] = "posenet.projection_head.1"
    m["branch2.head.net.3"] = "posenet.projection_head.3"
    return m


_VP_OUT = "viewpoint.net.out"
_VP_HEADS = ("viewpoint.fc_vp_ux", "viewpoint.fc_vp_uy", "viewpoint.fc_vp_uz")


def source_keys(hcdg_key: str) -> list[str]:
    """Their key(s) (without PREFIX) that hcdg's state-dict key is made of (3 for the
    ViewPoint output, stacked; 1 otherwise)."""
    module, _, leaf = hcdg_key.rpartition(".")
    if module == _VP_OUT:
        return [f"{h}.{leaf}" for h in _VP_HEADS]
    their = _layer_map().get(module)
    if their is None:
        raise HcdgError(f"authors key map: no source for hcdg key {hcdg_key!r}")
    return [f"{their}.{leaf}"]


def _strip(state: Mapping[str, Any]) -> dict[str, Any]:
    """Their state dict with 'module.pose_model.' (or 'pose_model.') removed from pose keys."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if not isinstance(k, str):
            raise HcdgError(f"checkpoint: state dict keys must be strings, got {k!r}")
        for p in (PREFIX, "pose_model."):
            if k.startswith(p):
                out[k[len(p):]] = v
                break
    return out


def map_state_dict(
    state: Mapping[str, Any], target: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Their state dict -> hcdg's (keys and shapes of `target`, e.g. ``HandPoseNet(cfg).state_dict()``).

    `target` without ``branch2.*`` keys imports Branch1 only. Tensors are not copied
    (memory-mapped inputs stay mapped) except the stacked ViewPoint head and dtype casts.
    Returns (state, info) with info = {"n_tensors", "ignored": {family: count}, "unused": [...]}.
    Raises HcdgError naming the first missing, mis-shaped, non-tensor or non-finite key.
    """
    pose = _strip(state)
    if not pose:
        raise HcdgError(
            f"checkpoint: no '{PREFIX}*' keys; not the authors' ColorHandPose3D checkpoint "
            "(expected keys such as 'module.pose_model.posenet.conv1_1.weight')"
        )
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, want in target.items():
        parts = []
        for src in source_keys(key):
            full = PREFIX + src
            if src not in pose:
                raise HcdgError(f"checkpoint: missing key {full!r} (needed for hcdg's {key})")
            t = pose[src]
            if not isinstance(t, torch.Tensor):
                raise HcdgError(f"checkpoint: {full!r} is a {type(t).__name__}, expected a tensor")
            used.add(src)
            parts.append(t)
        t = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
        if tuple(t.shape) != tuple(want.shape):
            shown = source_keys(key)[0]
            raise HcdgError(
                f"checkpoint: {PREFIX + shown!r} has shape {tuple(parts[0].shape)}, expected "
                f"{tuple(want.shape) if len(parts) == 1 else (1,) + tuple(want.shape[1:])} (hcdg's {key})"
            )
        if t.dtype != want.dtype:
            if want.dtype.is_floating_point != t.dtype.is_floating_point:
                raise HcdgError(f"checkpoint: {PREFIX + source_keys(key)[0]!r} is {t.dtype}, expected {want.dtype}")
            t = t.to(want.dtype)
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise HcdgError(f"checkpoint: {PREFIX + source_keys(key)[0]!r} holds NaN or infinite values")
        out[key] = t
    ignored: dict[str, int] = {}
    unused = []
    used_full = {PREFIX + u for u in used} | {"pose_model." + u for u in used}
    for k in state:
        m = IGNORED.match(k)
        if m:
            fam = re.sub(r"\d+$", "*", m.group(2).rstrip("."))
            ignored[fam] = ignored.get(fam, 0) + 1
        elif k not in used_full:
            unused.append(k)
    return out, {"n_tensors": len(out), "ignored": ignored, "unused": unused}


def has_branch2(state: Mapping[str, Any]) -> bool:
    """Whether their checkpoint holds the contrastive branch (built when cfg.Contrastive)."""
    return "posenet.projection_head.0.weight" in _strip(state)


# --- the uvd target -------------------------------------------------------------------


def uvd_target(uv_crop: np.ndarray, z_m: np.ndarray, input_size: int) -> np.ndarray:
    """Their normalised target (Rhp.py:148-152): (u/S, v/S, ((z - z_root)/0.15 + 1)/2).

    Args:
        uv_crop: (..., 21, 2) joint pixels in the S x S crop (integer-centred).
        z_m: (..., 21) camera depth, metres; joint 0 is the root.
    Returns (..., 21, 3) float32.
    """
    uv = np.asarray(uv_crop, dtype=np.float64) / float(input_size)
    z = np.asarray(z_m, dtype=np.float64)
    d = ((z - z[..., :1]) / UVD_DEPTH_HALF_RANGE_M + 1.0) / 2.0
    return np.concatenate([uv, d[..., None]], axis=-1).astype(np.float32)


# --- their test-time geometry -----------------------------------------------------------

#: Half range used to DECODE the normalised depth at test time, metres, per test set. RHD
#: decodes with the training value (Rhp.py:204, ``0.3 / 2``); STB with ``0.13 / 2``
#: (STB.py:192) although the target was built with ``0.3 / 2`` (STB.py:146): reproduced.
DECODE_DEPTH_HALF_RANGE_M = {"rhd": 0.15, "stb": 0.065}


def crop_from_xywh(xywh: np.ndarray, size: int, scale: float = 1.0) -> np.ndarray:
    """(3, 3) image -> crop affine of their test code for one [x, y, w, h] box, in float64
    (the float32 matrices their cv2 crop uses, rotation included: `crop_cv2.box_affines`).

    The box is truncated to integers (Rhp.py:124, STB.py:116: ``int(bbox[i])``, towards 0),
    then their patch transform at scale 1, no rotation (main/preprocessing.py:149-209): the
    box centre ``(x + w/2, y + h/2)`` goes to ``(S/2, S/2)``, the box's half width / height
    to S/2, with integer pixel centres on both sides (cv2.warpAffine). So
    ``u_crop = S/2 + (u - x - w/2) * S / w`` (and v with y, h). hcdg's own box crop puts
    the centre at ``(S - 1)/2`` instead (`camera.crop_from_box`). `scale` (their test
    ``--scale``, main/test.py:18) multiplies the box's width and height about its centre.
    """
    x, y, w, h = (float(np.trunc(t)) for t in np.asarray(xywh, dtype=np.float64).reshape(4))
    if not (w > 0 and h > 0):
        raise HcdgError(f"authors crop: box width and height must be >= 1 after truncation, got {w}, {h}")
    if not scale > 0:
        raise HcdgError(f"authors crop: scale must be > 0, got {scale}")
    sx, sy = size / (w * scale), size / (h * scale)
    return np.array([[sx, 0.0, size / 2 - sx * (x + w / 2)], [0.0, sy, size / 2 - sy * (y + h / 2)], [0.0, 0.0, 1.0]])


def heatmap_argmax_upsampled(heatmaps: torch.Tensor, size: int, chunk: int = 8) -> np.ndarray:
    """Their STB 2D: argmax of each map bilinearly upsampled to `size` (ColorHandPose3D.py:107-110,
    align_corners=False; main/preprocessing.py:30-38), as (x = column, y = row) crop pixels.

    heatmaps (N, J, h, w) -> (N, J, 2) float64; ties go to the first cell in row-major order
    (numpy's argmax, which their code uses). Upsampled in chunks of `chunk` samples.
    """
    out = []
    for i in range(0, heatmaps.shape[0], chunk):
        up = torch.nn.functional.interpolate(heatmaps[i : i + chunk].float(), size=(size, size),
                                             mode="bilinear", align_corners=False)  # fmt: skip
        idx = up.flatten(2).cpu().numpy().argmax(-1)
        out.append(np.stack([idx % size, idx // size], -1).astype(np.float64))
    if not out:
        return np.zeros((0, heatmaps.shape[1], 2))
    return np.concatenate(out)


def uvd_to_rel_norm(uvd: torch.Tensor, K_crop: torch.Tensor, root_xyz_m: torch.Tensor, bone_m: torch.Tensor,
                    input_size: int) -> torch.Tensor:
    """The authors' uvd read back into hcdg's root-relative, bone-normalised xyz (for validation).

    uvd (B,21,3) -> uv = uvd[..., :2] * S crop pixels, depth z = z_root + (2 d - 1) * 0.15 m;
    back-projected with K_crop (B,3,3) (the crop's intrinsics), minus the GT root
    root_xyz_m (B,3), divided by bone_m (B,). Differentiable; any float dtype.
    """
    uv = uvd[..., :2] * float(input_size)
    z = root_xyz_m[:, None, 2] + (uvd[..., 2] * 2.0 - 1.0) * UVD_DEPTH_HALF_RANGE_M
    ones = torch.ones_like(uv[..., :1])
    rays = torch.cat([uv, ones], -1) @ torch.linalg.inv(K_crop.to(uv.dtype)).transpose(1, 2)
    xyz = rays * z[..., None]
    return (xyz - root_xyz_m[:, None, :].to(xyz.dtype)) / bone_m[:, None, None].to(xyz.dtype)
