"""`hcdg train --tensorboard`: the run folder opens in TensorBoard with the metrics.parquet numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main

pytest.importorskip("tensorboard")


def test_run_folder_holds_event_files_equal_to_metrics_parquet(synth_freihand, synth_freihand_store, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    res = CliRunner().invoke(main, [
        "train", "--root", str(synth_freihand), "--store", str(synth_freihand_store), "--out", str(out),
        "--mode", "ie+te", "--width-mult", "0.25", "--input-size", "64", "--batch-size", "4", "--workers", "0",
        "--no-progress", "--val-fraction", "0.2", "--steps", "3", "--log-every", "1", "--val-every", "3",
        "--tensorboard"])  # fmt: skip
    assert res.exit_code == 0, res.output
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/loss_heat", "train/loss_pose", "train/loss_con", "train/lr", "train/d_pos",
            "val/val_epe_mm", "val/val_2d_px", "val/val_mean_2d_px"} <= tags
    df = pd.read_parquet(out / "metrics.parquet")
    train = df[df["kind"] == "train"]
    got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in got] == train["step"].tolist()
    assert [v for _, v in got] == pytest.approx(train["loss"].tolist(), rel=1e-6)
    val = df[df["kind"] == "val"]
    assert acc.Scalars("val/val_epe_mm")[-1].value == pytest.approx(float(val["val_epe_mm"].iloc[-1]), rel=1e-6)
