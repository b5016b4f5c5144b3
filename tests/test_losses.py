"""Eq. 1-4 on small tensors worked out by hand."""

import pytest
import torch

from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.losses import (
    LossWeights,
    contrastive_loss,
    pose_loss,
    select_negatives,
    total_loss,
)

D64 = torch.float64


def heatmap_loss(pred, gt, visible=None):
    """Eq. 2 read as the element-mean MSE on the grid, summed over CPM stages."""
    from hcdg.pipeline.heatmap_loss import HeatLossConfig
    from hcdg.pipeline.heatmap_loss import heatmap_loss as heat

    return heat(pred, cfg=HeatLossConfig("mean", "all", "grid"), gt_grid=gt, visible=visible)


def test_heatmap_loss_sums_the_stage_mses():
    gt = torch.zeros(1, 2, 1, 2)
    s1 = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])  # squared errors 1,1,0,0 -> mean 0.5
    s2 = torch.full((1, 2, 1, 2), 2.0)  # all 4 -> mean 4
    assert heatmap_loss([s1, s2], gt).item() == pytest.approx(4.5)
    # visibility: only map 0 counts -> stage1 1.0, stage2 4.0
    vis = torch.tensor([[1.0, 0.0]])
    assert heatmap_loss([s1, s2], gt, vis).item() == pytest.approx(5.0)
    assert heatmap_loss([s1], gt, torch.zeros(1, 2)).item() == 0.0
    with pytest.raises(HcdgError, match="stage map"):
        heatmap_loss([torch.zeros(1, 2, 2, 2)], gt)


def test_pose_loss_reductions():
    gt = torch.zeros(1, 21, 3)
    pred = gt.clone()
    pred[0, 3] = torch.tensor([1.0, 2.0, 2.0])  # squared error 9 over 63 elements
    assert pose_loss(pred, gt).item() == pytest.approx(9 / 63)
    assert pose_loss(pred, gt, "sum").item() == pytest.approx(9.0)  # per-sample ||.||^2, Eq. 3 as printed


def test_select_negatives_takes_the_farthest_other_ground_truth():
    # maps (B=3, 1 joint, 1x2 pixels) = 2-vectors
    pred = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]).view(3, 1, 1, 2)
    gt = torch.tensor([[10.0, 10.0], [3.0, 0.0], [0.0, 4.0]]).view(3, 1, 1, 2)
    # squared distances pred_i -> gt_j:
    #  i=0: [200 (self, excluded), 9, 16]   -> 2
    #  i=1: [181, 4 (self), 17]             -> 0
    #  i=2: [50, 29, 26 (self)]             -> 0
    assert select_negatives(pred, gt).tolist() == [2, 0, 0]


def test_select_negatives_ties_and_batch_of_one():
    pred = torch.zeros(3, 1, 1, 1)
    gt = torch.ones(3, 1, 1, 1)  # every distance equal -> lowest other index
    assert select_negatives(pred, gt).tolist() == [1, 0, 0]
    assert select_negatives(torch.zeros(1, 21, 4, 4), torch.ones(1, 21, 4, 4)).tolist() == [-1]


# e1' = anchors, e2' = positives (B=2, D=2)
E1 = torch.tensor([[0.0, 0.0], [0.1, 0.1]], dtype=D64)
E2 = torch.tensor([[0.1, 0.2], [1.0, 1.5]], dtype=D64)
NEG = torch.tensor([1, 0])
# d_pos = [0.3, 2.3]; d_neg with e_neg = e1'[neg]: [0.2, 0.2]; with e2'[neg]: [2.5, 0.1]


@pytest.mark.parametrize(
    "form,negative,expected",
    [
        # paper-literal: d_pos - max(0.5, d_neg)
        ("paper-literal", "e1", ((0.3 - 0.5) + (2.3 - 0.5)) / 2),  # = 0.8, both negatives floored
        ("paper-literal", "e2", ((0.3 - 2.5) + (2.3 - 0.5)) / 2),  # = -0.2
        # hinge: max(0, d_pos - d_neg + 0.5)
        ("hinge", "e1", ((0.3 - 0.2 + 0.5) + (2.3 - 0.2 + 0.5)) / 2),  # = 1.6
        ("hinge", "e2", (0.0 + (2.3 - 0.1 + 0.5)) / 2),  # = 1.35, first anchor satisfied
        # contrastive (Hadsell 2006): d_pos + max(0, 0.5 - d_neg)
        ("contrastive", "e1", ((0.3 + 0.3) + (2.3 + 0.3)) / 2),  # = 1.6
        ("contrastive", "e2", ((0.3 + 0.0) + (2.3 + 0.4)) / 2),  # = 1.5, first negative beyond the margin
    ],
)
def test_contrastive_loss_hand_worked(form, negative, expected):
    loss = contrastive_loss(E1, E2, NEG, form=form, margin=0.5, negative=negative)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_paper_form_is_unbounded_below_and_the_bounded_forms_are_not():
    e1 = torch.tensor([[0.0], [1.0]], dtype=D64)
    far = torch.tensor([[0.0], [1e6]], dtype=D64)  # anchors pushed apart, positives equal anchors
    neg = torch.tensor([1, 0])
    assert contrastive_loss(far, far.clone(), neg, "paper-literal").item() == pytest.approx(-1e6)
    assert contrastive_loss(far, far.clone(), neg, "hinge").item() == 0.0
    assert contrastive_loss(far, far.clone(), neg, "contrastive").item() == 0.0
    assert contrastive_loss(e1, e1.clone(), neg, "paper-literal").item() == pytest.approx(-1.0)
    # the bounded forms are >= 0 for any embeddings
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a, b = torch.randn(8, 16, generator=g) * 100, torch.randn(8, 16, generator=g) * 100
        idx = torch.randperm(8, generator=g)
        for form in ("hinge", "contrastive"):
            assert contrastive_loss(a, b, idx, form).item() >= 0.0


def test_contrastive_loss_reports_distances_and_norms():
    stats = {}
    contrastive_loss(E1, E2, NEG, form="contrastive", stats=stats)
    assert stats["d_pos"].item() == pytest.approx((0.3 + 2.3) / 2)
    assert stats["d_neg"].item() == pytest.approx(0.2)
    assert stats["e1_norm"].item() == pytest.approx((0.0 + 0.1 * 2**0.5) / 2)
    assert stats["e2_norm"].item() == pytest.approx(((0.05) ** 0.5 + (3.25) ** 0.5) / 2)


def test_contrastive_loss_without_negatives_is_zero_but_attached():
    e1 = torch.randn(1, 128, requires_grad=True)
    e2 = torch.randn(1, 128, requires_grad=True)
    loss = contrastive_loss(e1, e2, torch.tensor([-1]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(e1.grad, torch.zeros_like(e1)) and torch.equal(e2.grad, torch.zeros_like(e2))


def test_anchors_without_a_negative_are_left_out_of_the_mean():
    only_first = contrastive_loss(E1, E2, torch.tensor([1, -1]), form="hinge", margin=0.5)
    assert only_first.item() == pytest.approx(0.3 - 0.2 + 0.5)


def test_contrastive_loss_bad_arguments():
    with pytest.raises(HcdgError, match="form"):
        contrastive_loss(E1, E2, NEG, form="infonce")
    with pytest.raises(HcdgError, match="neg_idx"):
        contrastive_loss(E1, E2, torch.tensor([1]))


def test_total_loss_uses_the_paper_weights():
    w = LossWeights()
    assert (w.heat, w.pose, w.con) == (1.0, 1.0, 0.1)
    heat, pose, con = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(10.0)
    assert total_loss(heat, pose, con, w).item() == pytest.approx(6.0)
    assert total_loss(heat, pose, None, w).item() == pytest.approx(5.0)
    assert total_loss(heat, pose, con, LossWeights(con=0.001)).item() == pytest.approx(5.01)
    with pytest.raises(ConfigError, match="loss.con"):
        LossWeights(con=-1.0)
