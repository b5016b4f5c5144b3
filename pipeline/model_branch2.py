"""Branch2: the training-only contrastive branch (paper §3.3, Fig. 2; docs/sources.md#branch2).

Shapes at the paper's size (width_mult 1.0, input 256), from the authors' code as
recorded in docs/sources.md#branch2:

    pool3 (B,256,32,32)
    ConvBlock: conv1x1 256->512 stride 2 (B,512,16,16) -> conv1x1 512->1024 stride 2
               (B,1024,8,8) -> max-pool 8 (B,1024,1,1) -> flatten x (B,1024)
               (no nonlinearity in between, as in the authors' code)
    e1 = FC(1024 -> 512)(x)                               image-only intermediate feature
    e2 = FC(1024 + 512 -> 512)(cat[x, f_clip])            combine="concat" (default, Table 4b)
    e2 = FC(1024 -> 512)(x) + f_clip                       combine="sum" (our reading of Table 4b)
    head (shared): Linear 512->512, BatchNorm1d, ReLU, Linear 512->128 -> e1p, e2p (B,128)

The max-pool is adaptive (global max), which is exactly "max-pool 8" at input 256 and
keeps a 1x1 output at any input size. The conv channels scale with width_mult; the
embedding sizes (512, 128) do not, so the outputs keep the contract's (B,128).

"Summation" (Table 4b): the paper only says the CLIP feature is added instead of
concatenated. The ConvBlock output is 1024-d and the CLIP feature 512-d, while e2 is
512-d like f_clip, so we add f_clip to the e2 FC output: no invented projection layer,
and the join happens at the one place where the sizes already agree. This needs
clip_dim == embed_dim (checked by ModelConfig).

Positive from augmentation (Table 6, "normal augmentation"): e2 is the image-only path
(ConvBlock + the e1 FC) applied to the pool3 feature of an augmented view of the same
image; the concat/sum FC is not built.

The head runs once on cat([e1, e2]) (2B rows), so BatchNorm sees both views in one
batch, as SimCLR-style implementations do, and a batch of one still has 2 rows.
"""

from __future__ import annotations

import torch
from torch import nn

from hcdg.pipeline.model_cpm import scaled

CONV_CHANNELS = (512, 1024)  # authors' code: 1x1 convs 256->512->1024, stride 2 each


class ProjectionHead(nn.Module):
    """Linear embed->embed, BatchNorm1d, ReLU, Linear embed->proj (paper §3.3).

    `out_bias=False` drops the last Linear's bias, as the authors' head does (their
    `colorhandpose3d/model/PoseNet.py:137-141`, ``bias=False``).
    """

    def __init__(self, embed_dim: int, proj_dim: int, out_bias: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, embed_dim),
            nn.BatchNorm1d(embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, proj_dim, bias=out_bias),
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


class Branch2(nn.Module):
    """pool3 feature (+ CLIP feature or an augmented view's pool3) -> e1p, e2p (B, proj_dim)."""

    def __init__(
        self,
        in_channels: int,
        width_mult: float,
        clip_dim: int,
        embed_dim: int,
        proj_dim: int,
        combine: str,
        positive: str,
        head_bias: bool = True,
    ) -> None:
        super().__init__()
        c1, c2 = (scaled(c, width_mult) for c in CONV_CHANNELS)
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, c1, 1, stride=2),
            nn.Conv2d(c1, c2, 1, stride=2),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(1),
        )
        self.combine = combine
        self.positive = positive
        self.fc_e1 = nn.Linear(c2, embed_dim)
        self.fc_e2: nn.Linear | None = None
        if positive == "clip":
            fan_in = c2 + clip_dim if combine == "concat" else c2
            self.fc_e2 = nn.Linear(fan_in, embed_dim)
        self.head = ProjectionHead(embed_dim, proj_dim, head_bias)

    def _project(self, e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.head(torch.cat([e1, e2], dim=0))
        return z[: e1.shape[0]], z[e1.shape[0] :]

    def forward_clip(self, pool3: torch.Tensor, clip_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pool3 (B,C3,s,s), clip_feat (B,clip_dim) -> (e1p, e2p)."""
        assert self.fc_e2 is not None
        x = self.conv_block(pool3)
        e1 = self.fc_e1(x)
        clip_feat = clip_feat.to(x.dtype)
        if self.combine == "concat":
            e2 = self.fc_e2(torch.cat([x, clip_feat], dim=1))
        else:
            e2 = self.fc_e2(x) + clip_feat
        return self._project(e1, e2)

    def forward_views(self, pool3: torch.Tensor, pool3_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pool3 of the image and of its augmented view -> (e1p, e2p), both image-only."""
        b = pool3.shape[0]
        e = self.fc_e1(self.conv_block(torch.cat([pool3, pool3_pos], dim=0)))
        return self._project(e[:b], e[b:])
