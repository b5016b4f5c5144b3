"""hand3d's PoseNet: a VGG trunk and a three-stage convolutional pose machine ("Branch1").

Shapes at the paper's size (input 256, width_mult 1.0), docs/sources.md#hand3d-network and hand3d
`ColorHandPose3DNetwork.inference_pose2d`:

    image (B,3,256,256)
    block1: 2 x conv3x3 64  -> pool -> (B,64,128,128)
    block2: 2 x conv3x3 128 -> pool -> (B,128,64,64)
    block3: 4 x conv3x3 256 -> pool -> (B,256,32,32)   <- "pool3": Branch2 taps this
    block4: 2 x conv3x3 512, 4 x conv3x3 256, conv3x3 128 -> encoding (B,128,32,32)
    stage 1: conv1x1 512 -> conv1x1 21                -> heatmaps[0] (B,21,32,32)
    stage 2, 3: cat(previous 21 maps, encoding) -> 5 x conv7x7 128 -> conv1x1 128
             -> conv1x1 21                            -> heatmaps[1], heatmaps[2]

Every conv is followed by a leaky ReLU (slope 0.01) except the three 1x1 -> 21
score layers (linear), as in hand3d. 'same' padding, 2x2 max-pools. All channel
counts except the 21 score maps are scaled by `width_mult` (at least 8).
"""

from __future__ import annotations

import torch
from torch import nn

N_KP = 21  # 21 hand keypoints (paper Table 1, H = 21x32x32)

# hand3d PoseNet2D: layers_per_block [2,2,4,2], out_chan_list [64,128,256,512]
VGG_LAYERS = (2, 2, 4, 2)
VGG_CHANNELS = (64, 128, 256, 512)
ENCODING_CONVS = (256, 256, 256, 256, 128)  # conv4_3..conv4_7
STAGE1_HIDDEN = 512  # conv5_1
STAGE_HIDDEN = 128  # conv6_x / conv7_x
STAGE_CONV7 = 5  # layers_per_recurrent_unit
N_STAGES = 3  # stage 1 + num_recurrent_units = 2


def scaled(channels: int, width_mult: float) -> int:
    """`channels * width_mult` rounded, never below 8 (width_mult 1.0 gives hand3d's counts)."""
    return max(8, int(round(channels * width_mult)))


def init_hidden(module: nn.Module, slope: float) -> None:
    """He-normal weights for layers followed by a leaky ReLU, bias 1e-4 (hand3d's bias init).

    hand3d used Xavier init plus a CPM-MPII pretrained trunk; without those weights a
    19-layer plain conv stack trains more reliably from He init (our choice).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 1e-4)


def init_output(layer: nn.Module) -> None:
    """Xavier-uniform weights, bias 1e-4, for linear output layers (hand3d's init)."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.constant_(layer.bias, 1e-4)


def _conv(cin: int, cout: int, k: int, slope: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.LeakyReLU(slope)]


class PoseNet(nn.Module):
    """VGG trunk + 3-stage CPM. `features` -> pool3, `heatmaps_from` -> list of 3 maps."""

    def __init__(self, width_mult: float, leaky_slope: float) -> None:
        super().__init__()
        slope = leaky_slope
        # blocks 1-3 (each followed by a 2x2 max-pool) up to the "pool3" tap
        layers: list[nn.Module] = []
        cin = 3
        for n, c in zip(VGG_LAYERS[:3], VGG_CHANNELS[:3]):
            c = scaled(c, width_mult)
            for _ in range(n):
                layers += _conv(cin, c, 3, slope)
                cin = c
            layers.append(nn.MaxPool2d(2, 2))
        self.trunk = nn.Sequential(*layers)
        self.pool3_channels = cin

        # block 4 (no pool) + the encoding convs
        layers = []
        c4 = scaled(VGG_CHANNELS[3], width_mult)
        for _ in range(VGG_LAYERS[3]):
            layers += _conv(cin, c4, 3, slope)
            cin = c4
        for c in ENCODING_CONVS:
            c = scaled(c, width_mult)
            layers += _conv(cin, c, 3, slope)
            cin = c
        self.encoder = nn.Sequential(*layers)
        enc = cin

        h1 = scaled(STAGE1_HIDDEN, width_mult)
        self.stage1 = nn.Sequential(*_conv(enc, h1, 1, slope), nn.Conv2d(h1, N_KP, 1))
        h = scaled(STAGE_HIDDEN, width_mult)
        self.refine = nn.ModuleList()
        for _ in range(N_STAGES - 1):
            layers = []
            c = N_KP + enc
            for _ in range(STAGE_CONV7):
                layers += _conv(c, h, 7, slope)
                c = h
            layers += _conv(h, h, 1, slope)
            layers.append(nn.Conv2d(h, N_KP, 1))
            self.refine.append(nn.Sequential(*layers))

        init_hidden(self, slope)
        for head in [self.stage1, *self.refine]:
            init_output(head[-1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,S,S) network input -> pool3 feature (B, C3, S/8, S/8); C3 = 256 at width 1."""
        return self.trunk(x)

    def heatmaps_from(self, pool3: torch.Tensor) -> list[torch.Tensor]:
        """pool3 feature -> the 3 stages' score maps, each (B, 21, S/8, S/8)."""
        encoding = self.encoder(pool3)
        maps = [self.stage1(encoding)]
        for stage in self.refine:
            maps.append(stage(torch.cat([maps[-1], encoding], dim=1)))
        return maps
