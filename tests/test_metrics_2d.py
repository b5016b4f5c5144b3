"""mmpose-convention 2D metrics: PCK@0.2 of the bbox, AUC over 0-30 px (20 thresholds), EPE px."""

from __future__ import annotations

import numpy as np
import pytest

from hcdg.pipeline.metrics_2d import mmpose_2d, pck_accuracy


def _hand(n: int = 5, size_px: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, size_px, (n, 21, 2))
    gt[:, 0] = 0.0
    gt[:, 1] = size_px  # every box is size_px on a side
    return gt


def test_constant_offset_gives_known_values():
    gt = _hand()
    pred = gt + [4.0, 0.0]  # every joint 4 px off
    m = mmpose_2d(pred, gt, np.ones(gt.shape[:2], bool))
    assert m["EPE"] == pytest.approx(4.0)
    assert m["PCK"] == 1.0  # 4 px < 0.2 * 100 px
    # thresholds 0, 1.5, 3, 4.5, ... 28.5 px: 4 px is within 17 of the 20
    assert m["AUC"] == pytest.approx(17 / 20)
    far = mmpose_2d(gt + [25.0, 0.0], gt, np.ones(gt.shape[:2], bool))
    assert far["PCK"] == 0.0 and far["AUC"] == pytest.approx(3 / 20)  # 25 < 25.5, 27, 28.5


def test_mask_and_per_joint_averaging_follow_mmpose():
    gt = _hand(n=4)
    pred = gt.copy()
    pred[0, 5] += [50.0, 0.0]  # one wrong joint in sample 0
    mask = np.ones(gt.shape[:2], bool)
    mask[1:, 5] = False  # joint 5 annotated only in sample 0: its accuracy is 0/1
    # mmpose averages per joint: 20 joints at 1.0 and joint 5 at 0.0
    assert pck_accuracy(pred, gt, mask, 0.2, np.full(4, 100.0)) == pytest.approx(20 / 21)
    m = mmpose_2d(pred, gt, mask)
    assert m["EPE"] == pytest.approx(50.0 / mask.sum())  # mean over annotated joints
    mask[:] = False
    assert np.isnan(mmpose_2d(pred, gt, mask)["EPE"])
