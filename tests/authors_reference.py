"""Test helper: a checkpoint in the paper authors' format, and their forward written out.

Both are written from the facts of their repository (swanilee/Image-free-domain-
generalization-via-clip-for-3d-hand-pose-estimation, HEAD), independently of hcdg's key
map, so a test comparing hcdg's import against them checks the map and the architecture
options, not hcdg against itself:

* key names and shapes: colorhandpose3d/model/PoseNet.py:60-150 (contrastive build:
  conv4_1 takes 256 channels, l.70-71), PosePrior.py:29-38, ViewPoint.py:26-38;
  DDP + Model wrapping -> 'module.pose_model.' (main/base.py:91-100, main/model_no_render.py:26).
* forward: PoseNet.py:177-306 (leaky ReLU 0.01, 2x2 max-pools, stages 2-3 on
  cat(maps, encoding)), PosePrior.py:53-72 / ViewPoint.py:53-75 (TFConv2D "SAME" padding,
  NHWC flatten, hand side appended), transforms.py:9-93 (Rodrigues, flip_right_hand z,
  flip_left_hand x), ColorHandPose3D.py:92-110 (coords = flip(can) @ R, maps upsampled to
  256 bilinear, align_corners=False).

Families the import ignores (CLIP, HandSegNet, ADAIN, dconv/bn/cconv6, proj_linear,
ablation_add_fc1) are present with their names but small stand-in shapes: proj_linear1 alone
is 21504 x 10752 floats (~0.9 GB) in the real file.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

P = "module.pose_model."


def _conv(out, cin, k):
    return {"weight": (out, cin, k, k), "bias": (out,)}


def _lin(out, cin, bias=True):
    return {"weight": (out, cin), **({"bias": (out,)} if bias else {})}


def _bn(n):
    return {"weight": (n,), "bias": (n,), "running_mean": (n,), "running_var": (n,), "num_batches_tracked": ()}


def authors_layers() -> dict[str, dict[str, tuple]]:
    """Their module name (under pose_model.) -> {param: shape}, for the layers hcdg imports."""
    L: dict[str, dict[str, tuple]] = {}
    pn = {
        "conv1_1": (64, 3, 3), "conv1_2": (64, 64, 3), "conv2_1": (128, 64, 3), "conv2_2": (128, 128, 3),
        "conv3_1": (256, 128, 3), "conv3_2": (256, 256, 3), "conv3_3": (256, 256, 3), "conv3_4": (256, 256, 3),
        "conv4_1": (512, 256, 3), "conv4_2": (512, 512, 3), "conv4_3": (256, 512, 3), "conv4_4": (256, 256, 3),
        "conv4_5": (256, 256, 3), "conv4_6": (256, 256, 3), "conv4_7": (128, 256, 3),
        "conv5_1": (512, 128, 1), "conv5_2": (21, 512, 1),
    }  # fmt: skip
    for s in (6, 7):
        pn[f"conv{s}_1"] = (128, 149, 7)
        for i in (2, 3, 4, 5):
            pn[f"conv{s}_{i}"] = (128, 128, 7)
        pn[f"conv{s}_6"] = (128, 128, 1)
        pn[f"conv{s}_7"] = (21, 128, 1)
    for n, (o, c, k) in pn.items():
        L[f"posenet.{n}"] = _conv(o, c, k)
    L["posenet.cat_cnn1"] = _conv(512, 256, 1)
    L["posenet.cat_cnn2"] = _conv(1024, 512, 1)
    L["posenet.cat_fc1"] = _lin(512, 1024)
    L["posenet.cat_fc2"] = _lin(512, 1536)
    L["posenet.projection_head.0"] = _lin(512, 512)
    L["posenet.projection_head.1"] = _bn(512)
    L["posenet.projection_head.3"] = _lin(128, 512, bias=False)
    for i, (o, c) in enumerate([(32, 21), (32, 32), (64, 32), (64, 64), (128, 64), (128, 128)]):
        L[f"poseprior.conv_pose_{i // 2}_{i % 2 + 1}"] = _conv(o, c, 3)
    L["poseprior.fc_rel0"] = _lin(512, 2050)
    L["poseprior.fc_rel1"] = _lin(512, 512)
    L["poseprior.fc_xyz"] = _lin(63, 512)
    for i, (o, c) in enumerate([(64, 21), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256)]):
        L[f"viewpoint.conv_vp_{i // 2}_{i % 2 + 1}"] = _conv(o, c, 3)
    L["viewpoint.fc_vp0"] = _lin(256, 4098)
    L["viewpoint.fc_vp1"] = _lin(128, 256)
    for a in ("ux", "uy", "uz"):
        L[f"viewpoint.fc_vp_{a}"] = _lin(1, 128)
    return L


IGNORED_STANDINS = {
    "module.clip_model.visual.conv1.weight": (8, 3, 4, 4),
    "module.clip_model.positional_embedding": (4, 8),
    "module.pose_model.handsegnet.conv1_1.weight": (64, 3, 3, 3),
    "module.pose_model.handsegnet.conv6_2.bias": (2,),
    "module.pose_model.posenet.dconv1.weight": (8, 8, 4, 4),
    "module.pose_model.posenet.bn1.running_var": (8,),
    "module.pose_model.posenet.cconv6.weight": (4, 8, 1, 1),
    "module.pose_model.posenet.norm2.mlp_gamma.weight": (256, 128),
    "module.pose_model.posenet.proj_linear1.weight": (16, 32),
    "module.pose_model.posenet.ablation_add_fc1.weight": (8, 16),
}


def make_authors_state(seed: int = 0, branch2: bool = True) -> dict[str, torch.Tensor]:
    """A random-valued state dict with their keys and shapes (He-scaled weights)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for mod, params in authors_layers().items():
        if not branch2 and (".cat_" in f".{mod}" or "projection_head" in mod):
            continue
        for p, shape in params.items():
            key = f"{P}{mod}.{p}"
            if p == "num_batches_tracked":
                sd[key] = torch.tensor(1234, dtype=torch.int64)
            elif p == "running_var":
                sd[key] = torch.rand(shape, generator=g) + 0.5
            elif p == "weight" and len(shape) > 1:
                fan_in = math.prod(shape[1:])
                sd[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
            else:
                sd[key] = torch.randn(shape, generator=g) * 0.05
    for k, shape in IGNORED_STANDINS.items():
        sd[k] = torch.randn(shape, generator=g)
    return sd


# ------------------------------------------------------------------ their forward


def _tf_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TF "SAME" by hand: out = ceil(n/s), total = (out-1)*s + k - n, odd pixel after."""
    n = x.shape[-1]
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


def authors_forward(sd: dict[str, torch.Tensor], img: torch.Tensor, hand_side: torch.Tensor):
    """Their ColorHandPose3D forward at test time -> (coords_xyz_rel_normed (B,21,3),
    last-stage maps (B,21,32,32), maps upsampled to 256 (B,21,256,256))."""

    def w(n):
        return sd[f"{P}{n}.weight"], sd.get(f"{P}{n}.bias")

    def conv(x, n, pad=0, stride=1):
        return F.conv2d(x, *w(n), stride=stride, padding=pad)

    lr = F.leaky_relu
    x = img
    for block in (["conv1_1", "conv1_2"], ["conv2_1", "conv2_2"], ["conv3_1", "conv3_2", "conv3_3", "conv3_4"]):
        for n in block:
            x = lr(conv(x, f"posenet.{n}", 1))
        x = F.max_pool2d(x, 2, 2)
    for n in ("conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv4_5", "conv4_6"):
        x = lr(conv(x, f"posenet.{n}", 1))
    enc = lr(conv(x, "posenet.conv4_7", 1))
    maps = conv(lr(conv(enc, "posenet.conv5_1")), "posenet.conv5_2")
    for s in (6, 7):
        x = torch.cat([maps, enc], 1)
        for i in range(1, 6):
            x = lr(conv(x, f"posenet.conv{s}_{i}", 3))
        maps = conv(lr(conv(x, f"posenet.conv{s}_6")), f"posenet.conv{s}_7")

    def stream(prefix, names, first_tf):
        y = maps
        for j, n in enumerate(names):
            stride = 2 if j % 2 else 1
            if j == 0 and not first_tf:
                y = lr(conv(y, f"{prefix}.{n}", 1))  # nn.Conv2d(padding=1) (PosePrior.py:29)
            else:
                y = lr(conv(_tf_pad(y, 3, stride), f"{prefix}.{n}", 0, stride))
        y = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)
        return torch.cat([y, hand_side], 1)

    names = ["0_1", "0_2", "1_1", "1_2", "2_1", "2_2"]
    y = stream("poseprior", [f"conv_pose_{n}" for n in names], first_tf=False)
    y = lr(F.linear(y, *w("poseprior.fc_rel0")))
    y = lr(F.linear(y, *w("poseprior.fc_rel1")))
    can = F.linear(y, *w("poseprior.fc_xyz")).reshape(-1, 21, 3)
    y = stream("viewpoint", [f"conv_vp_{n}" for n in names], first_tf=True)
    y = lr(F.linear(y, *w("viewpoint.fc_vp0")))
    y = lr(F.linear(y, *w("viewpoint.fc_vp1")))
    r = torch.cat([F.linear(y, *w(f"viewpoint.fc_vp_{a}")) for a in ("ux", "uy", "uz")], 1)
    # Rodrigues: R = cos t I + sin t [u]x + (1 - cos t) u u^T
    t = r.norm(dim=1)
    u = r / t[:, None]
    ux, uy, uz = u.unbind(1)
    zero = torch.zeros_like(ux)
    cross = torch.stack([zero, -uz, uy, uz, zero, -ux, -uy, ux, zero], 1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=r.dtype).expand(r.shape[0], 3, 3)
    R = (torch.cos(t)[:, None, None] * eye + torch.sin(t)[:, None, None] * cross
         + (1 - torch.cos(t))[:, None, None] * (u[:, :, None] * u[:, None, :]))
    right = hand_side.argmax(1) == 1
    can = torch.where(right[:, None, None], can * torch.tensor([1.0, 1.0, -1.0]), can)
    xyz = can @ R
    xyz = torch.where(right[:, None, None], xyz, xyz * torch.tensor([-1.0, 1.0, 1.0]))
    up = F.interpolate(maps, 256, mode="bilinear", align_corners=False)
    return xyz, maps, up


# ------------------------------------------------------------------ their test-time crop


def their_test_crop(image_rgb_uint8, bbox, left: bool, scale: float = 1.0, rot: float = 0.0, size: int = 256):
    """Their test crop, step by step as data/STB/STB.py:108-122 / data/Rhp/Rhp.py:116-128 and
    main/preprocessing.py:19-28, 134-209 run it -> (network input (3, S, S) float32,
    img2bb_trans (2, 3) float32, bb2img_trans (2, 3) float32)."""
    import cv2
    import numpy as np

    img = np.asarray(image_rgb_uint8).astype(np.float32)  # load_img: float32 RGB
    if left:
        img = cv2.flip(img, 1)
    bbox = np.array(bbox, dtype=np.float64)
    for i in range(4):
        bbox[i] = int(bbox[i])
    c_x, c_y = float(bbox[0] + 0.5 * bbox[2]), float(bbox[1] + 0.5 * bbox[3])
    src_w, src_h = bbox[2] * scale, bbox[3] * scale
    rad = np.pi * rot / 180

    def rotate(p):
        x, y = p[0], p[1]
        sn, cs = np.sin(rad), np.cos(rad)
        return np.array([x * cs - y * sn, x * sn + y * cs], dtype=np.float32)

    centre = np.array([c_x, c_y], dtype=np.float32)
    down = rotate(np.array([0, src_h * 0.5], dtype=np.float32))
    right = rotate(np.array([src_w * 0.5, 0], dtype=np.float32))
    dcen = np.array([size * 0.5, size * 0.5], dtype=np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    src[0], src[1], src[2] = centre, centre + down, centre + right
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = dcen
    dst[1] = dcen + np.array([0, size * 0.5], dtype=np.float32)
    dst[2] = dcen + np.array([size * 0.5, 0], dtype=np.float32)
    trans = cv2.getAffineTransform(np.float32(src), np.float32(dst)).astype(np.float32)
    inv = cv2.getAffineTransform(np.float32(dst), np.float32(src)).astype(np.float32)
    patch = cv2.warpAffine(img, trans, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)
    patch = patch.astype(np.uint8)  # opencv2pil(img.astype(np.uint8)) ... pil2opencv
    patch = np.clip(patch * np.array([1, 1, 1])[None, None, :], 0, 255)
    net_in = torch.from_numpy(patch.astype(np.float32)).permute(2, 0, 1) / 255.0  # ToTensor()(float32) / 255
    return net_in.numpy(), trans, inv
