"""HandPoseNet: shapes at the paper's and the test size, Branch2 wiring, rotation maths."""

import math

import pytest
import torch

from hcdg.pipeline.config import ConfigError, from_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.losses import contrastive_loss, select_negatives
from hcdg.pipeline.canonical import axis_angle_to_matrix, flip_torch
from hcdg.pipeline.model import HandPoseNet, ModelConfig

SMALL = dict(width_mult=0.25, input_size=128)


def _inputs(cfg: ModelConfig, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.input_size
    image = torch.rand(b, 3, s, s, generator=g)
    side = torch.zeros(b, 2)
    side[torch.arange(b), torch.arange(b) % 2] = 1.0  # alternate left/right
    clip = torch.randn(b, cfg.clip_dim, generator=g)
    return image, side, clip


def _check_rotations(rot: torch.Tensor) -> None:
    eye = torch.eye(3).expand_as(rot)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(rot.shape[0]), atol=1e-5)


def test_paper_size_forward_shapes_and_layer_sizes():
    torch.manual_seed(0)
    cfg = ModelConfig()  # width 1.0, input 256, concat, branch2 on
    model = HandPoseNet(cfg)
    image, side, clip = _inputs(cfg)
    with torch.no_grad():
        out = model(image, side, clip_feat=clip)
    assert [tuple(h.shape) for h in out["heatmaps"]] == [(2, 21, 32, 32)] * 3
    assert out["canon"].shape == (2, 21, 3)
    assert out["rot"].shape == (2, 3, 3)
    assert out["xyz_rel_norm"].shape == (2, 21, 3)
    assert out["e1p"].shape == (2, 128) and out["e2p"].shape == (2, 128)
    _check_rotations(out["rot"])
    assert torch.allclose(out["xyz_rel_norm"], flip_torch(out["canon"], side) @ out["rot"])
    # the layer sizes of docs/sources.md#branch2 and #hand3d-network at the paper's size
    assert model.posenet.pool3_channels == 256
    b2 = model.branch2
    assert b2.conv_block[0].weight.shape == (512, 256, 1, 1) and b2.conv_block[0].stride == (2, 2)
    assert b2.conv_block[1].weight.shape == (1024, 512, 1, 1) and b2.conv_block[1].stride == (2, 2)
    assert b2.fc_e1.weight.shape == (512, 1024)
    assert b2.fc_e2.weight.shape == (512, 1024 + 512)
    head = b2.head.net
    assert head[0].weight.shape == (512, 512) and isinstance(head[1], torch.nn.BatchNorm1d)
    assert head[3].weight.shape == (128, 512)
    assert model.prior.net.fcs[0].weight.shape == (512, 4 * 4 * 128 + 2)
    assert model.prior.net.out.weight.shape == (63, 512)
    assert model.viewpoint.net.fcs[0].weight.shape == (256, 4 * 4 * 256 + 2)
    assert model.viewpoint.net.out.weight.shape == (3, 128)
    convs = [m for m in model.posenet.refine[0] if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7)] * 5 + [(1, 1), (1, 1)]
    assert convs[0].in_channels == 21 + 128 and convs[-1].out_channels == 21


@pytest.mark.parametrize(
    "extra",
    [dict(), dict(combine="sum"), dict(positive="augment")],
    ids=["concat", "sum", "augment"],
)
def test_small_size_shapes_for_every_branch2_variant(extra):
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL, **extra)
    model = HandPoseNet(cfg)
    image, side, clip = _inputs(cfg, b=3)
    kw = {"pos_image": image.flip(-1)} if cfg.positive == "augment" else {"clip_feat": clip}
    out = model(image, side, **kw)
    assert [tuple(h.shape) for h in out["heatmaps"]] == [(3, 21, 16, 16)] * 3
    assert out["canon"].shape == (3, 21, 3) and out["xyz_rel_norm"].shape == (3, 21, 3)
    assert out["e1p"].shape == (3, 128) and out["e2p"].shape == (3, 128)
    _check_rotations(out["rot"])
    # 16x16 maps -> 2x2 after three stride-2 convs; channels scaled by 0.25
    assert model.prior.net.fcs[0].weight.shape == (128, 2 * 2 * 32 + 2)
    assert model.posenet.pool3_channels == 64
    if cfg.positive == "augment":
        assert model.branch2.fc_e2 is None
    elif cfg.combine == "sum":
        assert model.branch2.fc_e2.weight.shape == (512, 256)


def test_sum_adds_the_clip_feature_to_e2():
    """combine='sum': e2 = FC(x) + f_clip, so shifting f_clip by v shifts e2 by exactly v."""
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL, combine="sum")
    b2 = HandPoseNet(cfg).branch2
    b2.head = torch.nn.Identity()  # look at e2 itself
    b2._project = lambda e1, e2: (e1, e2)
    pool3 = torch.randn(2, 64, 16, 16)
    clip = torch.randn(2, 512)
    v = torch.randn(2, 512)
    _, e2a = b2.forward_clip(pool3, clip)
    _, e2b = b2.forward_clip(pool3, clip + v)
    assert torch.allclose(e2b - e2a, v, atol=1e-5)


def test_branch2_off_has_no_embeddings_and_fewer_parameters():
    torch.manual_seed(0)
    on = HandPoseNet(ModelConfig(**SMALL))
    off = HandPoseNet(ModelConfig(**SMALL, branch2=False))
    n_on = sum(p.numel() for p in on.parameters())
    n_off = sum(p.numel() for p in off.parameters())
    assert n_on - n_off == sum(p.numel() for p in on.branch2.parameters()) > 0
    image, side, clip = _inputs(off.cfg)
    out = off(image, side)
    assert "e1p" not in out and "e2p" not in out
    with pytest.raises(HcdgError, match="no Branch2"):
        off(image, side, clip_feat=clip)


def test_predict_never_runs_branch2_and_matches_forward():
    torch.manual_seed(0)
    model = HandPoseNet(ModelConfig(**SMALL)).eval()
    calls = []
    for m in model.branch2.modules():
        m.register_forward_hook(lambda *a: calls.append(1))
    image, side, clip = _inputs(model.cfg)
    with torch.no_grad():
        pred = model.predict(image, side)
        assert calls == []
        full = model(image, side, clip_feat=clip)
    assert len(calls) > 0
    assert set(pred) == {"heatmaps", "canon", "rot", "xyz_rel_norm"}
    assert torch.equal(pred["xyz_rel_norm"], full["xyz_rel_norm"])


@pytest.mark.parametrize("positive", ["clip", "augment"])
def test_contrastive_loss_gradient_reaches_the_trunk_only_through_branch2(positive):
    torch.manual_seed(0)
    model = HandPoseNet(ModelConfig(**SMALL, positive=positive))
    image, side, clip = _inputs(model.cfg, b=4)
    kw = {"pos_image": 1.0 - image} if positive == "augment" else {"clip_feat": clip}
    out = model(image, side, **kw)
    neg = select_negatives(out["heatmaps"][-1], torch.rand_like(out["heatmaps"][-1]))
    contrastive_loss(out["e1p"], out["e2p"], neg, form="hinge", margin=100.0).backward()
    first_conv = model.posenet.trunk[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    # heatmap stages and the lifting streams are not on L_con's path
    assert model.posenet.stage1[0].weight.grad is None
    assert model.prior.net.out.weight.grad is None


def test_batch_of_one_trains_through_branch2():
    """BatchNorm in the head sees cat([e1, e2]) = 2 rows, so B = 1 works in train mode."""
    model = HandPoseNet(ModelConfig(**SMALL)).train()
    image, side, clip = _inputs(model.cfg, b=1)
    out = model(image, side, clip_feat=clip)
    assert out["e1p"].shape == (1, 128)


def _hand3d_rot_mat(u: torch.Tensor) -> torch.Tensor:
    """hand3d PosePriorNetwork._get_rot_mat, written out entry by entry."""
    t = torch.sqrt((u * u).sum(-1) + 1e-8)
    ux, uy, uz = (u / t[:, None]).unbind(-1)
    s, c = torch.sin(t), torch.cos(t)
    oc = 1 - c
    m = [c + ux * ux * oc, ux * uy * oc - uz * s, ux * uz * oc + uy * s,
         uy * ux * oc + uz * s, c + uy * uy * oc, uy * uz * oc - ux * s,
         uz * ux * oc - uy * s, uz * uy * oc + ux * s, c + uz * uz * oc]  # fmt: skip
    return torch.stack(m, -1).reshape(-1, 3, 3)


def test_viewpoint_uses_hand3d_rotation_and_right_hands_are_flipped():
    torch.manual_seed(0)
    model = HandPoseNet(ModelConfig(**SMALL, branch2=False)).eval()
    image, side, _ = _inputs(model.cfg)  # sample 0 left, sample 1 right
    with torch.no_grad():
        out = model.predict(image, side)
        u = model.viewpoint.net(out["heatmaps"][-1], side)  # the three axis-angle numbers
    assert torch.allclose(out["rot"], _hand3d_rot_mat(u), atol=1e-6)
    # quarter turn about z, row vectors: [1,0,0] @ R = [0,-1,0]
    r = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    assert torch.allclose(torch.tensor([1.0, 0.0, 0.0]) @ r, torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    canon, rot = out["canon"], out["rot"]
    assert torch.allclose(out["xyz_rel_norm"][0], canon[0] @ rot[0], atol=1e-6)
    mirrored = canon[1] * torch.tensor([1.0, 1.0, -1.0])
    assert torch.allclose(out["xyz_rel_norm"][1], mirrored @ rot[1], atol=1e-6)


def test_config_errors_name_the_option():
    with pytest.raises(ConfigError, match="input_size"):
        ModelConfig(input_size=100)
    with pytest.raises(ConfigError, match="clip_dim"):
        ModelConfig(combine="sum", clip_dim=64)
    with pytest.raises(ConfigError, match="unknown key 'widht_mult'"):
        from_dict(ModelConfig, {"widht_mult": 0.5})
    assert from_dict(ModelConfig, {"combine": "sum", "width_mult": 1}).width_mult == 1.0


def test_bad_inputs_are_one_line_errors():
    model = HandPoseNet(ModelConfig(**SMALL))
    image, side, clip = _inputs(model.cfg)
    with pytest.raises(HcdgError, match=r"\(B,3,128,128\)"):
        model(torch.rand(2, 3, 64, 64), side)
    with pytest.raises(HcdgError, match="clip_feat must be"):
        model(image, side, clip_feat=clip[:, :10])
    with pytest.raises(HcdgError, match="positive='augment'"):
        model(image, side, pos_image=image)


def test_prior_dropout_is_off_by_default_and_hand3d_rates_when_on():
    torch.manual_seed(0)
    off = HandPoseNet(ModelConfig(**SMALL, branch2=False)).train()
    on = HandPoseNet(ModelConfig(**SMALL, branch2=False, prior_dropout=True)).train()
    assert not any(isinstance(m, torch.nn.Dropout) for m in off.modules())
    rates = [m.p for m in on.prior.modules() if isinstance(m, torch.nn.Dropout)]
    rates += [m.p for m in on.viewpoint.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.2, 0.2, 0.25, 0.25]
    image, side, _ = _inputs(on.cfg)
    with torch.no_grad():
        a, b = on(image, side)["canon"], on(image, side)["canon"]
        assert not torch.equal(a, b)  # dropout active in train mode
        on.eval()
        assert torch.equal(on(image, side)["canon"], on(image, side)["canon"])
