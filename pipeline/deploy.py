"""The graph `hcdg export` writes: Branch1 + lifting with the input normalisation inside.

    image (B, S_in, S_in, 3) uint8 RGB crop, NHWC (what image libraries hand out)
        --> float, / 255, NCHW --> [bilinear resize to the network's S, when S_in != S]
        --> HandPoseNet: - input_offset, PoseNet trunk + CPM, PosePrior + ViewPoint
            with the right-hand one-hot [0, 1] (hcdg mirrors left hands to right hands)
        --> xyz_rel_norm (or uvd) (B, 21, 3), heatmaps (B, 21, S/8, S/8) of the final stage

Branch2 is not part of it (paper §3.5: test time runs Branch1 only). Left hands: mirror
the crop left-right before, then negate x of the 3D (xyz networks) and map heatmap columns
u -> w - 1 - u after, as `hcdg predict` does.
"""

from __future__ import annotations

import torch
from torch import nn

#: Graph input / output names (the JSON sidecar repeats them with shapes and units).
INPUT_NAME = "image"
HEATMAP_NAME = "heatmaps"


def output_names(output: str) -> tuple[str, str]:
    """(3D output name, heatmap output name) for a network whose 3D output means `output`."""
    return ("xyz_rel_norm" if output == "xyz" else "uvd"), HEATMAP_NAME


class DeployNet(nn.Module):
    """uint8 NHWC crops -> (3D joints, final-stage heatmaps) of a Branch1-only `HandPoseNet`."""

    def __init__(self, net: nn.Module, input_size: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.net_size = int(net.cfg.input_size)
        self.input_size = int(input_size or self.net_size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        if self.input_size != self.net_size:
            x = nn.functional.interpolate(x, size=(self.net_size, self.net_size), mode="bilinear",
                                          align_corners=False, antialias=False)  # fmt: skip
        side = torch.zeros_like(x[:, 0, 0, :2])
        side[:, 1] = 1.0  # right hands; an authors' network swaps in its own [1, 0] itself
        out = self.net._branch1(self.net.posenet.features(self.net._input(x)), side)
        return out["xyz_rel_norm"], out["heatmaps"][-1]
