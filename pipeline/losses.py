"""The paper's losses (§3.4, Eq. 1-4) as `pipeline.objective` combines them.

    L = l1 * L_heat + l2 * L_pose + l3 * L_con         (Eq. 1; l1 = l2 = 1, l3 = 0.1)
    L_heat = Eq. 2, in the reading a run chooses (`pipeline.heatmap_loss`)
    L_pose = MSE(xyz_rel_norm, xyz_rel_norm_gt)        (Eq. 3)
    L_con  = |e1'-e2'|_1 - max(0.5, |e1'-e_neg|_1)     (Eq. 4 as printed, form="paper-literal";
                                                        UNBOUNDED below: measured to diverge)
           or max(0, |e1'-e2'|_1 - |e1'-e_neg|_1 + m)  (form="hinge", triplet margin loss)
           or |e1'-e2'|_1 + max(0, m - |e1'-e_neg|_1)  (form="contrastive", Hadsell et al. 2006:
                                                        Eq. 4's 0.5 read as the negative's margin)

L1 distances are sums over the 128 dimensions; L_con is averaged over the anchors of
the batch that have a negative. `e_neg` is, by default, the other sample's image-only
encoding e1' (see `contrastive_loss` and docs/model.md for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError

# Eq. 4 prints max(0.5, ...): the floor under the negative distance.
PAPER_NEG_FLOOR = 0.5
# Margin of the bounded forms: we reuse the paper's 0.5 constant (no source gives a margin).
DEFAULT_MARGIN = 0.5
#: L_con forms (run folders recorded before 2026-12 call paper-literal "paper": `store.schema`).
CON_FORMS = ("paper-literal", "hinge", "contrastive")


@dataclass(frozen=True)
class LossWeights:
    """Eq. 1 balance weights; paper §3.4 (10-fold cross-validation): l1 = l2 = 1, l3 = 0.1."""

    heat: float = 1.0
    pose: float = 1.0
    con: float = 0.1  # Table 5 sweeps {1, 0.1, 0.01, 0.001}

    def __post_init__(self) -> None:
        for name in ("heat", "pose", "con"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name}: expected >= 0, got {getattr(self, name)!r}")


def pose_loss(pred: torch.Tensor, gt: torch.Tensor, reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """Eq. 3 over (B,21,3) root-relative, bone-normalised coordinates.

    reduction "mean": mean squared error over every element; "sum": per-sample squared L2
    norm ||c - c_gt||_2^2 (sum over the 63 values, Eq. 3 as printed), averaged over the batch.
    """
    if pred.shape != gt.shape:
        raise HcdgError(f"pose_loss: prediction {tuple(pred.shape)} != ground truth {tuple(gt.shape)}")
    if reduction == "sum":
        return ((pred - gt) ** 2).flatten(1).sum(dim=1).mean()
    if reduction != "mean":
        raise HcdgError(f"pose_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    return ((pred - gt) ** 2).mean()


@torch.no_grad()
def select_negatives(pred_heat: torch.Tensor, gt_heat: torch.Tensor) -> torch.Tensor:
    """Index of each anchor's negative: the other sample whose GT heatmap is farthest.

    pred_heat, gt_heat: (B,21,h,w) (use the last CPM stage). For anchor i,
    neg[i] = argmax_{j != i} || pred_heat[i] - gt_heat[j] ||^2 (squared L2 over all maps
    and pixels; paper §3.4). Ties go to the lowest index. Returns (B,) long; a batch of
    one has no other sample and gets -1 ("no negative").
    """
    if pred_heat.shape != gt_heat.shape or pred_heat.ndim != 4:
        raise HcdgError(
            f"select_negatives: expected two (B,21,h,w) maps of one shape, got {tuple(pred_heat.shape)} "
            f"and {tuple(gt_heat.shape)}"
        )
    b = pred_heat.shape[0]
    if b < 2:
        return torch.full((b,), -1, dtype=torch.long, device=pred_heat.device)
    p = pred_heat.reshape(b, -1).double()
    g = gt_heat.reshape(b, -1).double()
    dist = torch.cdist(p[None], g[None], compute_mode="donot_use_mm_for_euclid_dist")[0] ** 2
    dist.fill_diagonal_(float("-inf"))
    return dist.argmax(dim=1)


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().sum(dim=-1)


def contrastive_loss(
    e1p: torch.Tensor,
    e2p: torch.Tensor,
    neg_idx: torch.Tensor,
    form: str = "contrastive",
    margin: float = DEFAULT_MARGIN,
    negative: Literal["e1", "e2"] = "e1",
    stats: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Eq. 4 with anchor e1' (B,D), positive e2' (B,D), negatives by index (B,) long.

    d_pos = |e1'_i - e2'_i|_1, d_neg = |e1'_i - e_neg|_1 with e_neg = e1'[neg_idx[i]]
    (negative="e1", default) or e2'[neg_idx[i]] (negative="e2").
      form="paper-literal": d_pos - max(0.5, d_neg), exactly as printed
          (unbounded below: inflating the embeddings lowers it without limit).
      form="hinge": max(0, d_pos - d_neg + margin)  (triplet margin loss).
      form="contrastive": d_pos + max(0, margin - d_neg)  (Hadsell et al. 2006).
    Averaged over anchors with neg_idx >= 0; if there are none (batch of one) the loss
    is 0 (still attached to the graph, so every parameter receives a zero gradient).
    With `stats` (a dict), the detached batch means d_pos, d_neg, |e1'|_2 and |e2'|_2 are
    stored under "d_pos", "d_neg", "e1_norm", "e2_norm".

    Default negative e1': Fig. 2 defines e1 as the encoding "from the original sample"
    and e2 as the CLIP-augmented one, and the negative is "among the samples in the same
    batch", i.e. another original sample (SimCLR's "other data samples as negative", §2.2).
    """
    if e1p.shape != e2p.shape or e1p.ndim != 2:
        raise HcdgError(f"contrastive_loss: e1p {tuple(e1p.shape)} and e2p {tuple(e2p.shape)} must be one (B,D) shape")
    if tuple(neg_idx.shape) != (e1p.shape[0],):
        raise HcdgError(f"contrastive_loss: neg_idx must be ({e1p.shape[0]},), got {tuple(neg_idx.shape)}")
    if form not in CON_FORMS:
        raise HcdgError(f"contrastive_loss: form must be one of {', '.join(CON_FORMS)}, got {form!r}")
    if negative not in ("e1", "e2"):
        raise HcdgError(f"contrastive_loss: negative must be 'e1' or 'e2', got {negative!r}")
    valid = neg_idx >= 0
    zero = (e1p.sum() + e2p.sum()) * 0.0
    if stats is not None:
        with torch.no_grad():
            stats["e1_norm"] = e1p.norm(dim=-1).mean()
            stats["e2_norm"] = e2p.norm(dim=-1).mean()
    if not bool(valid.any()):
        return zero
    pool = e1p if negative == "e1" else e2p
    e_neg = pool[neg_idx.clamp(min=0)]
    d_pos = _l1(e1p, e2p)
    d_neg = _l1(e1p, e_neg)
    if stats is not None:
        stats["d_pos"] = d_pos[valid].detach().mean()
        stats["d_neg"] = d_neg[valid].detach().mean()
    if form == "paper-literal":
        per = d_pos - d_neg.clamp(min=PAPER_NEG_FLOOR)
    elif form == "hinge":
        per = (d_pos - d_neg + margin).clamp(min=0.0)
    else:
        per = d_pos + (margin - d_neg).clamp(min=0.0)
    return per[valid].mean() + zero


def total_loss(
    heat: torch.Tensor, pose: torch.Tensor, con: torch.Tensor | None, weights: LossWeights
) -> torch.Tensor:
    """Eq. 1: heat*L_heat + pose*L_pose (+ con*L_con when Branch2 ran)."""
    loss = weights.heat * heat + weights.pose * pose
    if con is not None:
        loss = loss + weights.con * con
    return loss
