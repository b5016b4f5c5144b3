"""Feature mixing f = r*f_img + (1-r)*f_txt, prompt draws, gathering from device tables."""

import pytest
import torch
import torch.nn.functional as F

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.mixing import draw_prompt_ids, gather_mixed, mix_features


def _feats(seed=0, b=4, d=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g) * 5, torch.randn(b, d, generator=g) * 0.3


@pytest.mark.parametrize("normalize", [True, False])
def test_ratio_one_is_exactly_the_image_feature_and_zero_the_text(normalize):
    img, txt = _feats()
    want_img = F.normalize(img, dim=-1) if normalize else img
    want_txt = F.normalize(txt, dim=-1) if normalize else txt
    assert torch.equal(mix_features(img, txt, 1.0, normalize), want_img)
    assert torch.equal(mix_features(img, txt, 0.0, normalize), want_txt)


def test_mix_hand_worked():
    img = torch.tensor([[3.0, 4.0]])  # unit: [0.6, 0.8]
    txt = torch.tensor([[0.0, 2.0]])  # unit: [0, 1]
    assert torch.allclose(mix_features(img, txt, 0.6), torch.tensor([[0.36, 0.88]]))
    assert torch.allclose(mix_features(img, txt, 0.6, normalize=False), torch.tensor([[1.8, 3.2]]))


def test_ratio_outside_unit_interval_and_shape_mismatch_are_errors():
    img, txt = _feats()
    with pytest.raises(HcdgError, match=r"--ratio: expected a value in \[0, 1\]"):
        mix_features(img, txt, 1.5)
    with pytest.raises(HcdgError, match="differ"):
        mix_features(img, txt[:, :4], 0.5)


def test_modes_map_to_ratios():
    from hcdg.stages.train_config import TrainConfig

    assert TrainConfig(mode="baseline").effective_ratio is None
    assert TrainConfig(mode="ie", ratio=0.3).effective_ratio == 1.0
    assert TrainConfig(mode="te", ratio=0.3).effective_ratio == 0.0
    assert TrainConfig(mode="ie+te", ratio=0.9).effective_ratio == 0.9
    assert TrainConfig().effective_ratio == 0.6  # paper's STB setting
    assert TrainConfig(aug="normal").effective_ratio is None  # Table 6: no CLIP feature
    with pytest.raises(HcdgError, match="--mode"):
        TrainConfig(mode="clip")
    with pytest.raises(HcdgError, match="--ratio"):
        TrainConfig(ratio=-0.1)


def test_prompt_ids_follow_the_seed():
    a = draw_prompt_ids(torch.Generator().manual_seed(7), 64, n_prompts=3920)
    b = draw_prompt_ids(torch.Generator().manual_seed(7), 64, n_prompts=3920)
    c = draw_prompt_ids(torch.Generator().manual_seed(8), 64, n_prompts=3920)
    assert a.dtype == torch.long and a.shape == (64,)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 3920
    # a restored generator state continues the same stream (exact resume)
    g = torch.Generator().manual_seed(7)
    draw_prompt_ids(g, 5, n_prompts=10)
    state = g.get_state()
    nxt = draw_prompt_ids(g, 5, n_prompts=10)
    g2 = torch.Generator()
    g2.set_state(state)
    assert torch.equal(draw_prompt_ids(g2, 5, n_prompts=10), nxt)


def test_prompt_subset_draws_only_from_the_subset():
    subset = [3, 17, 42]
    ids = draw_prompt_ids(torch.Generator().manual_seed(0), 200, subset=subset)
    assert set(ids.tolist()) == set(subset)  # 200 uniform draws hit all three
    with pytest.raises(HcdgError, match="exactly one"):
        draw_prompt_ids(torch.Generator(), 2)
    with pytest.raises(HcdgError, match="empty"):
        draw_prompt_ids(torch.Generator(), 2, subset=[])


def test_gather_mixed_indexes_the_tables():
    g = torch.Generator().manual_seed(1)
    img_table = torch.randn(10, 8, generator=g)
    txt_table = torch.randn(6, 8, generator=g)
    sample_idx = torch.tensor([9, 0, 4])
    prompt_idx = torch.tensor([5, 5, 1])
    got = gather_mixed(img_table, txt_table, sample_idx, prompt_idx, 0.9)
    want = mix_features(img_table[sample_idx], txt_table[prompt_idx], 0.9)
    assert torch.equal(got, want)
    # ie needs no text table, te no image table
    assert torch.equal(gather_mixed(img_table, None, sample_idx, None, 1.0), F.normalize(img_table[sample_idx], dim=-1))
    assert torch.equal(gather_mixed(None, txt_table, sample_idx, prompt_idx, 0.0, normalize=False), txt_table[prompt_idx])
    with pytest.raises(HcdgError, match="text table"):
        gather_mixed(img_table, None, sample_idx, None, 0.5)
