"""hand3d's lifting streams: PosePrior (canonical 21x3) and ViewPoint (rotation).

Both read the last CPM stage's score maps (B,21,s,s), s = input/8 (32 at the paper's
size) and the hand side one-hot (B,2) = [left, right] (hand3d `_inference_pose3d_can`,
`_rotation_estimation`; docs/sources.md#hand3d-network):

    PosePrior: 3 x (conv3x3 stride 1, conv3x3 stride 2) with [32,64,128] channels
               -> (B,128,4,4) -> flatten 2048 ++ hand side -> FC512 -> FC512 -> FC63
    ViewPoint: 3 x (conv3x3 stride 1, conv3x3 stride 2) with [64,128,256] channels
               -> (B,256,4,4) -> flatten 4096 ++ hand side -> FC256 -> FC128 -> FC3
               (axis-angle) -> rotation matrix (Rodrigues)

Leaky ReLU after every conv and hidden FC. The flatten size follows the map size
(ceil(s/8) squared). Dropout: hand3d declares dropout after the hidden FCs (keep 0.8
PosePrior, 0.75 ViewPoint) but its training script never switches it on (`evaluation`
defaults to True, training_lifting.py), so it is off unless `dropout=True`.

Two layout options exist so the network can be exactly the paper authors' released one
(their `colorhandpose3d/model/PosePrior.py`, `ViewPoint.py`, `TFConv2D.py`):

* ``padding="tf-same"``: TensorFlow's "SAME" rule (`tf_same_padding`): for a stride-2 3x3
  conv on an even map the one padding pixel goes to the bottom/right, where PyTorch's
  ``padding=1`` pads both sides and drops the last row/column. Same output size, a
  one-pixel shift of what each output sees (TFConv2D.py:38-59 pads this way).
* ``flatten="nhwc"``: the (B,C,h,w) conv output is flattened in (h, w, c) order before the
  FCs, as TensorFlow lays tensors out (PosePrior.py:63, ViewPoint.py:65 permute first).

Defaults (``"torch"``, ``"nchw"``) are hcdg's network as trained since the start.

Row-vector convention (docs/geometry.md): xyz_rel_norm = flip(canon) @ R; the
Rodrigues map and `flip` are `hcdg.pipeline.canonical`'s torch versions (same matrix as
hand3d's `_get_rot_mat`).
"""

from __future__ import annotations

import torch
from torch import nn

from hcdg.pipeline.canonical import axis_angle_to_matrix
from hcdg.pipeline.model_cpm import N_KP, init_hidden, init_output, scaled
from hcdg.pipeline.precision import float32_math

PRIOR_CONVS = (32, 64, 128)
PRIOR_FCS = (512, 512)
PRIOR_DROPOUT = 0.2  # hand3d keep_prob 0.8
VIEW_CONVS = (64, 128, 256)
VIEW_FCS = (256, 128)
VIEW_DROPOUT = 0.25  # hand3d keep_prob 0.75
HAND_SIDE_DIM = 2  # one-hot [left, right]
PADDINGS = ("torch", "tf-same")
FLATTENS = ("nchw", "nhwc")


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: (before, after) pixels.

    Output size ``ceil(size / stride)``; total padding
    ``max((out - 1) * stride + kernel - size, 0)``, the odd pixel after (bottom/right).
    E.g. size 32, kernel 3, stride 2 -> (0, 1); size 5, kernel 3, stride 2 -> (1, 1).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d that pads its input by TensorFlow's "SAME" rule (`tf_same_padding`) itself.

    Same parameters (and state-dict keys) as `nn.Conv2d`; built with ``padding=0``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        # plain ints: the padding depends only on the (fixed) map size, so a traced or exported
        # graph (`hcdg export`) gets constant pads (traced shape arithmetic broke onnxruntime)
        top, bottom = tf_same_padding(int(x.shape[-2]), kh, sh)
        left, right = tf_same_padding(int(x.shape[-1]), kw, sw)
        return super().forward(nn.functional.pad(x, (left, right, top, bottom)))


def _conv(cin: int, cout: int, stride: int, padding: str) -> nn.Conv2d:
    if padding == "tf-same":
        return SameConv2d(cin, cout, 3, stride, 0)
    return nn.Conv2d(cin, cout, 3, stride, 1)  # symmetric 1 px: ceil(s/2) outputs


def _conv_pairs(cin: int, channels: tuple[int, ...], slope: float, padding: str) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for c in channels:
        layers += [_conv(cin, c, 1, padding), nn.LeakyReLU(slope)]
        layers += [_conv(c, c, 2, padding), nn.LeakyReLU(slope)]
        cin = c
    return nn.Sequential(*layers), cin


def _fcs(cin: int, widths: tuple[int, ...], slope: float, p_drop: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Linear(cin, w), nn.LeakyReLU(slope)]
        if p_drop > 0:
            layers.append(nn.Dropout(p_drop))
        cin = w
    return nn.Sequential(*layers), cin


def flat_side(map_size: int) -> int:
    """Spatial side after the three stride-2 'same' convs: ceil(map_size / 8)."""
    for _ in range(3):
        map_size = (map_size + 1) // 2
    return map_size


class _Stream(nn.Module):
    def __init__(self, convs, fcs, n_out, map_size, width_mult, slope, p_drop, padding, flatten) -> None:
        super().__init__()
        if padding not in PADDINGS or flatten not in FLATTENS:
            raise ValueError(f"lifting padding/flatten: expected {PADDINGS}/{FLATTENS}, got {padding!r}/{flatten!r}")
        self.nhwc = flatten == "nhwc"
        convs = tuple(scaled(c, width_mult) for c in convs)
        fcs = tuple(scaled(c, width_mult) for c in fcs)
        self.convs, c = _conv_pairs(N_KP, convs, slope, padding)
        side = flat_side(map_size)
        self.fcs, w = _fcs(c * side * side + HAND_SIDE_DIM, fcs, slope, p_drop)
        self.out = nn.Linear(w, n_out)
        init_hidden(self, slope)
        init_output(self.out)

    def forward(self, heatmaps: torch.Tensor, hand_side: torch.Tensor) -> torch.Tensor:
        x = self.convs(heatmaps)
        x = (x.permute(0, 2, 3, 1) if self.nhwc else x).flatten(1)
        x = torch.cat([x, hand_side.to(x.dtype)], dim=1)
        return self.out(self.fcs(x))


class PosePrior(nn.Module):
    """(B,21,s,s) maps + (B,2) hand side -> (B,21,3) canonical coordinates (z-flipped for right)."""

    def __init__(self, map_size: int, width_mult: float, leaky_slope: float, dropout: bool,
                 padding: str = "torch", flatten: str = "nchw") -> None:
        super().__init__()
        p = PRIOR_DROPOUT if dropout else 0.0
        self.net = _Stream(PRIOR_CONVS, PRIOR_FCS, N_KP * 3, map_size, width_mult, leaky_slope, p, padding, flatten)

    def forward(self, heatmaps: torch.Tensor, hand_side: torch.Tensor) -> torch.Tensor:
        return self.net(heatmaps, hand_side).reshape(-1, N_KP, 3)


class ViewPoint(nn.Module):
    """(B,21,s,s) maps + (B,2) hand side -> (B,3,3) rotation R (canonical -> camera, row vectors)."""

    def __init__(self, map_size: int, width_mult: float, leaky_slope: float, dropout: bool,
                 padding: str = "torch", flatten: str = "nchw") -> None:
        super().__init__()
        p = VIEW_DROPOUT if dropout else 0.0
        self.net = _Stream(VIEW_CONVS, VIEW_FCS, 3, map_size, width_mult, leaky_slope, p, padding, flatten)

    def forward(self, heatmaps: torch.Tensor, hand_side: torch.Tensor) -> torch.Tensor:
        axis_angle = self.net(heatmaps, hand_side)
        with float32_math(axis_angle):  # Rodrigues in float32 under autocast (pipeline.precision)
            return axis_angle_to_matrix(axis_angle.float())
