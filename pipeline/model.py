"""The hand pose network of the paper (§3.1, §3.3, Fig. 2): Branch1 + lifting + Branch2.

    image (B,3,S,S) in [0,1] --(-0.5)--> PoseNet trunk --> pool3 (B,C3,S/8,S/8)
        pool3 --> CPM stages --> heatmaps: 3 x (B,21,S/8,S/8)                 [Branch1]
        heatmaps[-1] + hand side --> PosePrior --> canon (B,21,3)
                                 --> ViewPoint --> rot (B,3,3)
        xyz_rel_norm = flip(canon) @ rot  (B,21,3), root-relative, bone-normalised
        pool3 (+ f_clip, or an augmented view) --> Branch2 --> e1p, e2p (B,128)  [training]

Pieces: `model_cpm.PoseNet`, `model_lifting.PosePrior/ViewPoint`,
`model_branch2.Branch2`. See docs/model.md for the shapes and interpretation choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.model_sizes import size_problems
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model_branch2 import Branch2
from hcdg.pipeline.model_cpm import N_KP, PoseNet
from hcdg.pipeline.canonical import axis_angle_to_matrix, flip_torch
from hcdg.pipeline.model_lifting import PosePrior, ViewPoint
from hcdg.pipeline.precision import float32_math

__all__ = ["ModelConfig", "HandPoseNet", "N_KP"]

# hand3d feeds images as RGB/255 - 0.5 (run.py, BinaryDbReader); our crops are in [0,1].
INPUT_MEAN = 0.5
HAND_SIDES = ("hcdg", "authors")
OUTPUTS = ("xyz", "uvd")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture knobs; the defaults are the paper's network."""

    # 1.0 = hand3d's channel counts (docs/sources.md#hand3d-network). Smaller values build a narrow
    # copy of the same architecture for tests and demos (channels >= 8, 21 maps kept).
    width_mult: float = 1.0
    # Paper §3 / Table 1: 256x256x3 crops; heatmaps at input/8 (21x32x32). Multiple of 8.
    input_size: int = 256
    # OpenAI ViT-B/32 embeddings are 512-d (paper §3.2, Table 1).
    clip_dim: int = 512
    # Table 4b: concatenation beats summation; the paper's setting is concat.
    combine: Literal["concat", "sum"] = "concat"
    # Branch2 exists only for training with L_con (paper §3.5); False = the "Baseline" rows.
    branch2: bool = True
    # Source of the positive e2: "clip" (paper §3.3) or "augment" (Table 6, normal augmentation).
    positive: Literal["clip", "augment"] = "clip"
    # e1/e2 are 512-d and the projection head outputs 128-d (paper §3.3, Table 1 E = R^128).
    embed_dim: int = 512
    proj_dim: int = 128
    # hand3d NetworkOps.neg_slope_of_relu = 0.01 (docs/sources.md#hand3d-network).
    leaky_slope: float = 0.01
    # hand3d declares PosePrior/ViewPoint dropout (keep 0.8 / 0.75) but never enables it
    # while training (training_lifting.py: `evaluation` defaults to True): off.
    prior_dropout: bool = False
    # --- options that make the network the paper authors' released one (docs/model.md,
    # "The authors' network"). Defaults are hcdg's network; `hcdg import authors` and the
    # `authors` training preset set the other values.
    # Padding of the lifting streams' convs: "torch" = symmetric 1 px; "tf-same" = TensorFlow's
    # SAME rule (authors' colorhandpose3d/model/TFConv2D.py:38-59, used by PosePrior.py:30-34,
    # ViewPoint.py:26-31).
    lifting_padding: Literal["torch", "tf-same"] = "torch"
    # Flatten order of the lifting streams' last conv output: "nchw" (PyTorch) or "nhwc"
    # (authors' PosePrior.py:63 and ViewPoint.py:65 permute to TF layout first).
    lifting_flatten: Literal["nchw", "nhwc"] = "nchw"
    # Bias of Branch2's projection-head output Linear (authors' PoseNet.py:137-141: bias=False).
    head_bias: bool = True
    # Subtracted from the [0,1] image before the trunk: 0.5 = hand3d; 0.0 = the authors, who
    # feed ToTensor()/255 (their data/Rhp/Rhp.py:128, data/STB/STB.py:122).
    input_offset: float = INPUT_MEAN
    # Hand-side convention. "hcdg": the given one-hot is used (crops are mirrored to right
    # hands, [0, 1]) and right hands get canonical z negated. "authors": every crop is fed
    # [1, 0] ("left"; their Rhp.py:144, STB.py:138), so no z flip, and the output's x is
    # negated (their ColorHandPose3D.py:98-104, `flip_left_hand`); the given hand side is ignored.
    hand_side: Literal["hcdg", "authors"] = "hcdg"
    # What `xyz_rel_norm` means (the training target): "xyz" = hand3d's root-relative,
    # bone-normalised camera coordinates; "uvd" = the authors' normalised (u/S, v/S,
    # ((z - z_root)/0.15 + 1)/2) in the crop (their Rhp.py:148-152, `fit_joint_img`).
    output: Literal["xyz", "uvd"] = "xyz"

    def __post_init__(self) -> None:
        for name, problem in size_problems(self.width_mult, self.input_size):
            raise ConfigError(f"model.{name}: {problem}")
        if self.combine not in ("concat", "sum"):
            raise ConfigError(f"model.combine: expected 'concat' or 'sum', got {self.combine!r}")
        if self.positive not in ("clip", "augment"):
            raise ConfigError(f"model.positive: expected 'clip' or 'augment', got {self.positive!r}")
        for name, allowed in (("lifting_padding", ("torch", "tf-same")), ("lifting_flatten", ("nchw", "nhwc")),
                              ("hand_side", HAND_SIDES), ("output", OUTPUTS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model.{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.head_bias, bool):
            raise ConfigError(f"model.head_bias: expected true or false, got {self.head_bias!r}")
        if not (isinstance(self.input_offset, (int, float)) and abs(float(self.input_offset)) <= 1.0):
            raise ConfigError(f"model.input_offset: expected a number in [-1, 1], got {self.input_offset!r}")
        for name in ("clip_dim", "embed_dim", "proj_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: expected >= 1, got {getattr(self, name)!r}")
        if self.branch2 and self.positive == "clip" and self.combine == "sum" and self.clip_dim != self.embed_dim:
            raise ConfigError(
                f"model.combine='sum' adds f_clip to e2, so clip_dim ({self.clip_dim}) must equal "
                f"embed_dim ({self.embed_dim})"
            )

    @property
    def heatmap_size(self) -> int:
        """Side of the score maps: input_size / 8 (32 at the paper's 256)."""
        return self.input_size // 8


class HandPoseNet(nn.Module):
    """CPM + PosePrior + ViewPoint (+ Branch2 when `cfg.branch2`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.posenet = PoseNet(cfg.width_mult, cfg.leaky_slope)
        s = cfg.heatmap_size
        lift = {"padding": cfg.lifting_padding, "flatten": cfg.lifting_flatten}
        self.prior = PosePrior(s, cfg.width_mult, cfg.leaky_slope, cfg.prior_dropout, **lift)
        self.viewpoint = ViewPoint(s, cfg.width_mult, cfg.leaky_slope, cfg.prior_dropout, **lift)
        self.branch2: Branch2 | None = None
        if cfg.branch2:
            self.branch2 = Branch2(
                self.posenet.pool3_channels, cfg.width_mult, cfg.clip_dim, cfg.embed_dim,
                cfg.proj_dim, cfg.combine, cfg.positive, cfg.head_bias,
            )  # fmt: skip

    # -- input checks ------------------------------------------------------------------
    def _check(self, image: torch.Tensor, hand_side: torch.Tensor, name: str = "image") -> None:
        s = self.cfg.input_size
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, s, s):
            raise HcdgError(f"HandPoseNet: {name} must be (B,3,{s},{s}) (model.input_size), got {tuple(image.shape)}")
        if tuple(hand_side.shape) != (image.shape[0], 2):
            raise HcdgError(f"HandPoseNet: hand_side must be (B,2) one-hot [left,right], got {tuple(hand_side.shape)}")

    # -- Branch1 -------------------------------------------------------------------------
    def _input(self, image: torch.Tensor) -> torch.Tensor:
        off = float(self.cfg.input_offset)
        return image - off if off else image

    def _branch1(self, pool3: torch.Tensor, hand_side: torch.Tensor, lifting_maps: torch.Tensor | None = None,
                 detach_lifting: bool = False) -> dict[str, torch.Tensor | list]:
        heatmaps = self.posenet.heatmaps_from(pool3)
        if self.cfg.hand_side == "authors":
            hand_side = torch.zeros_like(hand_side)
            hand_side[:, 0] = 1.0  # [1, 0] for every crop (their Rhp.py:144, STB.py:138)
        lift = heatmaps[-1] if lifting_maps is None else lifting_maps
        if detach_lifting:  # L_pose trains PosePrior/ViewPoint only, never the maps (pipeline/schedule.py)
            lift = lift.detach()
        canon = self.prior(lift, hand_side)
        rot = self.viewpoint(lift, hand_side)  # float32 (ViewPoint's Rodrigues runs in float32)
        with float32_math(canon):  # the canonical-frame maths stays float32 under autocast
            canon = canon.float()
            xyz = flip_torch(canon, hand_side) @ rot
        if self.cfg.hand_side == "authors":  # `flip_left_hand`: x negated for "left" inputs
            xyz = xyz * xyz.new_tensor([-1.0, 1.0, 1.0])
        return {"heatmaps": heatmaps, "canon": canon, "rot": rot, "xyz_rel_norm": xyz}

    def predict(self, image: torch.Tensor, hand_side: torch.Tensor) -> dict[str, torch.Tensor | list]:
        """Test-time path (paper §3.5): Branch1 + lifting only; Branch2 is never run.

        image (B,3,S,S) in [0,1]; hand_side (B,2) one-hot [left, right] (ignored under
        ``hand_side="authors"``, which feeds [1, 0]).
        Returns `heatmaps` (3 x (B,21,S/8,S/8), last = final stage), `canon` (B,21,3),
        `rot` (B,3,3) and `xyz_rel_norm` (B,21,3): root-relative bone-normalised xyz, or
        for ``output="uvd"`` the authors' normalised crop uvd. Grad mode and train/eval
        mode are the caller's.
        """
        self._check(image, hand_side)
        return self._branch1(self.posenet.features(self._input(image)), hand_side)

    def forward(
        self,
        image: torch.Tensor,
        hand_side: torch.Tensor,
        clip_feat: torch.Tensor | None = None,
        pos_image: torch.Tensor | None = None,
        lifting_maps: torch.Tensor | None = None,
        detach_lifting: bool = False,
    ) -> dict[str, torch.Tensor | list]:
        """Training forward.

        image (B,3,S,S) in [0,1]; hand_side (B,2) one-hot [left,right];
        clip_feat (B,clip_dim) the mixed CLIP feature (positive="clip");
        pos_image (B,3,S,S) an augmented view of `image` (positive="augment");
        lifting_maps (B,21,S/8,S/8): what PosePrior/ViewPoint read instead of the last CPM
        stage (the ground-truth maps of `pipeline.schedule`'s "gt" steps); detach_lifting:
        stop the gradient of L_pose at the maps the lifting reads (schedule "lifting-detached").
        Returns predict()'s keys, plus `e1p`, `e2p` (B,proj_dim) when Branch2 is on and
        its input is given. Giving Branch2 input to a model without Branch2, or the
        input of the other positive mode, is an error.
        """
        self._check(image, hand_side)
        s = self.cfg.heatmap_size
        if lifting_maps is not None and tuple(lifting_maps.shape) != (image.shape[0], N_KP, s, s):
            raise HcdgError(f"HandPoseNet: lifting_maps must be (B,{N_KP},{s},{s}), got {tuple(lifting_maps.shape)}")
        pool3 = self.posenet.features(self._input(image))
        out = self._branch1(pool3, hand_side, lifting_maps, detach_lifting)
        b2 = self.branch2
        if b2 is None:
            if clip_feat is not None or pos_image is not None:
                raise HcdgError(
                    "HandPoseNet: clip_feat/pos_image given but the model has no Branch2 (model.branch2=false)"
                )
            return out
        if self.cfg.positive == "clip":
            if pos_image is not None:
                raise HcdgError("HandPoseNet: pos_image given but model.positive='clip' (use positive='augment')")
            if clip_feat is not None:
                if tuple(clip_feat.shape) != (image.shape[0], self.cfg.clip_dim):
                    raise HcdgError(
                        f"HandPoseNet: clip_feat must be (B,{self.cfg.clip_dim}) (model.clip_dim), "
                        f"got {tuple(clip_feat.shape)}"
                    )
                out["e1p"], out["e2p"] = b2.forward_clip(pool3, clip_feat)
        else:
            if clip_feat is not None:
                raise HcdgError("HandPoseNet: clip_feat given but model.positive='augment' (use positive='clip')")
            if pos_image is not None:
                self._check(pos_image, hand_side, "pos_image")
                pool3_pos = self.posenet.features(self._input(pos_image))
                out["e1p"], out["e2p"] = b2.forward_views(pool3, pool3_pos)
        return out
