"""ModelConfig options that make hcdg's network the paper authors' one (TF-SAME, NHWC, ...)."""

import json

import pytest
import torch

from hcdg.pipeline.config import ConfigError, from_dict, to_dict
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.model_lifting import SameConv2d, tf_same_padding

SMALL = dict(width_mult=0.25, input_size=64)


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (32, 3, 2, (0, 1)),  # even size, stride 2: the extra pixel goes bottom/right
        (16, 3, 2, (0, 1)),
        (4, 3, 2, (0, 1)),  # out 2: (2-1)*2 + 3 - 4 = 1
        (5, 3, 2, (1, 1)),  # odd size: out 3, total (3-1)*2 + 3 - 5 = 2
        (32, 3, 1, (1, 1)),  # stride 1 = PyTorch's padding=1
        (6, 5, 2, (1, 2)),  # out 3, total 4 + 5 - 6 = 3
        (8, 1, 2, (0, 0)),  # 1x1 kernel never pads
    ],
)
def test_tf_same_padding_hand_worked(size, kernel, stride, expected):
    assert tf_same_padding(size, kernel, stride) == expected


def test_same_conv_pads_bottom_right_and_differs_from_symmetric_padding():
    # 1-channel 4x4 input 1..16, a 3x3 kernel with a single 1 at the top-left tap:
    # output[i, j] = padded_input[2i, 2j]. TF-SAME pads (0, 1) so it reads input[2i, 2j];
    # PyTorch's symmetric padding=1 reads input[2i-1, 2j-1] (0 on the border).
    x = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    conv = SameConv2d(1, 1, 3, 2, 0, bias=False)
    ref = torch.nn.Conv2d(1, 1, 3, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
        ref.weight.copy_(conv.weight)
    assert conv(x)[0, 0].tolist() == [[1.0, 3.0], [9.0, 11.0]]
    assert ref(x)[0, 0].tolist() == [[0.0, 0.0], [0.0, 6.0]]


def test_nhwc_flatten_order_on_a_hand_built_tensor():
    # A stream whose convs are replaced by identity-like layers is hard to build, so check the
    # flatten directly: with flatten="nhwc" the FC sees feature (h, w, c) at h*W*C + w*C + c.
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL, branch2=False, lifting_flatten="nhwc")
    net = HandPoseNet(cfg).prior.net
    c, h, w = 2, 2, 3
    t = torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w)  # value = c*6 + h*3 + w
    flat = (t.permute(0, 2, 3, 1) if net.nhwc else t).flatten(1)[0].tolist()
    assert flat[:4] == [0.0, 6.0, 1.0, 7.0]  # (h0,w0,c0), (h0,w0,c1), (h0,w1,c0), (h0,w1,c1)
    # and the stream really uses it: an NHWC stream equals an NCHW stream whose first FC
    # columns are permuted accordingly
    cfg_n = ModelConfig(**SMALL, branch2=False)
    a, b = HandPoseNet(cfg).prior.net, HandPoseNet(cfg_n).prior.net
    b.load_state_dict(a.state_dict())
    maps = torch.rand(2, 21, 8, 8)
    side = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    feat = a.convs(maps)  # (2, C, 1, 1) at map 8 -> flat_side 1: both orders coincide
    assert feat.shape[-1] == 1
    assert torch.allclose(a(maps, side), b(maps, side))
    # at a map where the side is > 1 the orders differ, and a column permutation reconciles them
    cfg16 = ModelConfig(width_mult=0.25, input_size=128, branch2=False, lifting_flatten="nhwc")
    a = HandPoseNet(cfg16).prior.net
    b = HandPoseNet(ModelConfig(width_mult=0.25, input_size=128, branch2=False)).prior.net
    state = a.state_dict()
    C, S = a.convs[-2].out_channels, 2
    w0 = state["fcs.0.weight"]
    idx = torch.arange(C * S * S).reshape(S, S, C).permute(2, 0, 1).reshape(-1)  # nchw pos -> nhwc col
    perm = torch.cat([idx, torch.arange(C * S * S, w0.shape[1])])
    b.load_state_dict({**state, "fcs.0.weight": w0[:, perm]})
    maps = torch.rand(2, 21, 16, 16)
    assert torch.allclose(a(maps, side), b(maps, side), atol=1e-5)
    b.load_state_dict(state)
    assert not torch.allclose(a(maps, side), b(maps, side), atol=1e-4)


def test_tf_same_stream_differs_from_torch_padding_with_the_same_weights():
    torch.manual_seed(0)
    a = HandPoseNet(ModelConfig(**SMALL, branch2=False, lifting_padding="tf-same"))
    b = HandPoseNet(ModelConfig(**SMALL, branch2=False))
    b.load_state_dict(a.state_dict())  # same keys and shapes
    img, side = torch.rand(2, 3, 64, 64), torch.tensor([[0.0, 1.0]] * 2)
    with torch.no_grad():
        ya, yb = a.predict(img, side), b.predict(img, side)
    assert torch.allclose(ya["heatmaps"][-1], yb["heatmaps"][-1])
    assert not torch.allclose(ya["canon"], yb["canon"], atol=1e-6)


def test_input_offset_head_bias_and_authors_hand_side():
    torch.manual_seed(0)
    base = ModelConfig(**SMALL)
    assert base.input_offset == 0.5 and base.head_bias and base.hand_side == "hcdg" and base.output == "xyz"
    a = HandPoseNet(ModelConfig(**SMALL, input_offset=0.0, head_bias=False, hand_side="authors"))
    assert a.branch2.head.net[-1].bias is None
    b = HandPoseNet(ModelConfig(**SMALL))
    b.load_state_dict({k: v for k, v in a.state_dict().items()}, strict=False)
    img = torch.rand(2, 3, 64, 64)
    right, left = torch.tensor([[0.0, 1.0]] * 2), torch.tensor([[1.0, 0.0]] * 2)
    with torch.no_grad():
        ya = a.predict(img, right)
        assert torch.equal(ya["xyz_rel_norm"], a.predict(img, left)["xyz_rel_norm"])  # side ignored
        yb = b.predict(img + 0.5, left)  # offset 0.5 of b undone; b fed the authors' [1, 0]
    assert torch.allclose(ya["heatmaps"][-1], yb["heatmaps"][-1], atol=1e-5)
    expect = yb["xyz_rel_norm"] * torch.tensor([-1.0, 1.0, 1.0])  # their flip_left_hand
    assert torch.allclose(ya["xyz_rel_norm"], expect, atol=1e-5)


def test_old_model_json_without_new_keys_loads_with_todays_behaviour():
    old = {"width_mult": 0.25, "input_size": 64, "clip_dim": 512, "combine": "concat", "branch2": False}
    cfg = from_dict(ModelConfig, json.loads(json.dumps(old)), where="model.json")
    assert cfg == ModelConfig(**old)
    d = to_dict(ModelConfig(**SMALL, lifting_padding="tf-same"))
    for key in ("lifting_padding", "lifting_flatten", "head_bias", "input_offset", "hand_side", "output"):
        assert key in d


@pytest.mark.parametrize(
    "field, value", [("lifting_padding", "valid"), ("lifting_flatten", "chw"), ("hand_side", "left"),
                     ("output", "uv"), ("input_offset", 3.0), ("head_bias", "no")]
)
def test_bad_option_values_name_the_option(field, value):
    with pytest.raises(ConfigError, match=f"model.{field}"):
        ModelConfig(**{field: value})
