"""Training data plumbing: held-out split by pose, global batch order, colour jitter."""

import numpy as np
import pytest

from hcdg.pipeline.train_data import (
    ColorJitter,
    GlobalBatchSampler,
    color_jitter,
    epoch_order,
    pose_groups,
    split_train_val,
    total_steps,
)


class _FakeFreihand:
    dataset, split, n_poses = "freihand", "training", 50

    def __len__(self):
        return 4 * self.n_poses


def test_freihand_versions_of_a_pose_never_straddle_train_and_val():
    groups = pose_groups(_FakeFreihand())
    assert groups[7] == groups[57] == groups[107] == groups[157] == 7
    train, val = split_train_val(groups, 0.1, seed=3)
    assert len(val) == 4 * 5 and len(train) == 4 * 45  # 10 % of 50 poses, all 4 versions each
    assert not set(groups[train]) & set(groups[val])
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(200))
    again, val_again = split_train_val(groups, 0.1, seed=3)
    other = split_train_val(groups, 0.1, seed=4)[1]
    assert np.array_equal(val, val_again) and not np.array_equal(val, other)
    assert len(split_train_val(groups, 0.0, seed=3)[1]) == 0


def test_rank_slices_make_the_global_batch_and_resume_continues_the_sequence():
    train = np.arange(100, 137)  # 37 samples, batch 8: 4 steps per epoch (5 left over)
    full = [b for b in GlobalBatchSampler(train, 8, seed=1, start_step=0, total_steps=10)]
    assert len(full) == 10 and all(len(b) == 8 for b in full)
    # Epoch e's steps are consecutive slices of epoch_order(seed, e); a new order each epoch.
    e0, e1 = epoch_order(train, 1, 0), epoch_order(train, 1, 1)
    assert [i for _, i in full[1]] == list(e0[8:16]) and [i for _, i in full[4]] == list(e1[:8])
    assert {e for e, _ in full[4]} == {1} and not np.array_equal(e0, e1)
    ranks = [list(GlobalBatchSampler(train, 8, 1, 0, 10, rank=r, world=2)) for r in range(2)]
    assert all(ranks[0][k] + ranks[1][k] == full[k] for k in range(10))
    assert list(GlobalBatchSampler(train, 8, 1, start_step=6, total_steps=10)) == full[6:]
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(train, 8, 1, 0, 10, rank=0, world=3)
    assert total_steps(37, 8, None, 3) == 12 and total_steps(37, 8, 5, 3) == 5


def test_color_jitter_is_the_identity_at_zero_and_scales_brightness():
    rng = np.random.default_rng(0)
    img = rng.uniform(0.1, 0.6, size=(3, 4, 4)).astype(np.float32)
    assert np.allclose(color_jitter(img, ColorJitter(0, 0, 0), rng), img)
    # Brightness only: every pixel times one factor b in [0.5, 1.5], drawn first from the stream.
    out = color_jitter(img, ColorJitter(0.5, 0, 0), np.random.default_rng(9))
    b = 1.0 + np.random.default_rng(9).uniform(-0.5, 0.5)
    assert np.allclose(out, np.clip(img * b, 0, 1), atol=1e-6)
    # Saturation 0 -> factor 1 - 1 = 0 would be grey; here s in [0, 2]: grey pixels stay grey.
    grey = np.full((3, 2, 2), 0.4, np.float32)
    assert np.allclose(color_jitter(grey, ColorJitter(0, 0, 1.0), rng), grey, atol=1e-6)
