"""DDP: two CPU processes on gloo train like one process with the same global batch."""

import pandas as pd
import pytest

from hcdg.stages import train
from hcdg.store.checkpoints import load_model_state


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(synth_freihand, tmp_path):
    # Baseline mode: every loss term is a per-sample mean, so averaging the two ranks'
    # gradients (DDP) equals the gradient of the global batch. (With Branch2, BatchNorm
    # statistics and L_con negatives are per rank: see docs/training.md, "DDP".)
    common = dict(root=str(synth_freihand), mode="baseline", steps=3, batch_size=4, width_mult=0.25,
                  input_size=64, workers=0, progress=False, log_every=1, val_fraction=0.2)
    one = train.run(train.TrainConfig(out=str(tmp_path / "one"), **common))
    two = train.run(train.TrainConfig(out=str(tmp_path / "two"), nproc=2, **common))
    assert two["world_size"] == 2 and one["world_size"] == 1

    cols = ["loss", "loss_heat", "loss_pose", "val_epe_mm"]
    a = pd.read_parquet(tmp_path / "one" / "metrics.parquet")
    b = pd.read_parquet(tmp_path / "two" / "metrics.parquet")
    assert a["step"].tolist() == b["step"].tolist() == [1, 2, 3, 3]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-4, atol=1e-6)
    wa, _ = load_model_state(tmp_path / "one")
    wb, _ = load_model_state(tmp_path / "two")
    worst = max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)
    moved = max(float((wa[k].double()).abs().max()) for k in wa)
    assert worst < 1e-5 * max(1.0, moved), f"weights differ by up to {worst:g}"
