"""Heatmaps that carry no location: `hcdg train` warns once, `hcdg report` flags the run in its tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.localisation import maps_localise
from hcdg.pipeline.protocols import ProtocolResult
from hcdg.stages import train
from hcdg.store import results
from hcdg.store.runs import prepare_run


@pytest.mark.parametrize(("err", "ref", "want"), [
    (10.0, 12.9, True), (12.9, 12.9, False), (14.8, 12.9, False),
    (None, 12.9, None), (math.nan, 12.9, None), (10.0, math.inf, None), ("x", 1.0, None),
])  # fmt: skip
def test_maps_localise_only_strictly_below_the_mean_layout(err, ref, want):
    assert maps_localise(err, ref) is want


def test_train_warns_once_naming_the_run_and_both_errors(capsys):
    assert train.warn_no_location({"val_2d_px": 14.8, "val_mean_2d_px": 12.9}, "runs/a") is True
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: runs/a: the heatmaps carry no joint location")
    assert "14.80 px" in err[0] and "12.90 px" in err[0]
    assert train.warn_no_location({"val_2d_px": 9.0, "val_mean_2d_px": 12.9}, "runs/b") is False
    assert train.warn_no_location({"val_2d_px": None, "val_mean_2d_px": None}, "runs/c") is False
    assert capsys.readouterr().err == ""


def _run(parent, name: str, mode: str, err2d: float) -> None:
    cfg = {"combine": "concat", "lambda_con": 0.1, "con_loss": "contrastive", "aug": "clip", "mode": mode,
           "ratio": 0.6}
    run = prepare_run(parent / name, stage="train", config=cfg, seed=0)
    gt = np.zeros((3, 21, 3)) + [0.0, 0.0, 0.5]
    for target in ("stb", "rhd"):
        err = np.full((3, 21), 30.0)
        frame = results.results_frame(run=name, target=target, split="test", sample_ids=["0", "1", "2"],
                                      results=[ProtocolResult("2.5d-gtroot-gtbone", "wrist", gt + [0.03, 0, 0], gt, err)],
                                      config=cfg)  # fmt: skip
        results.write_results(run, target, frame)
    pd.DataFrame({"kind": ["train", "val"], "step": [2, 2], "loss": [1.0, np.nan], "val_epe_mm": [np.nan, 30.0],
                  "val_2d_px": [np.nan, err2d], "val_mean_2d_px": [np.nan, 12.9]}).to_parquet(run / "metrics.parquet")
    (run / "done.json").write_text(json.dumps({"total_steps": 2, "val_epe_mm": 30.0, "val_mean_pose_epe_mm": 45.0,
                                               "val_2d_px": err2d, "val_mean_2d_px": 12.9}))


def test_report_flags_runs_whose_maps_do_not_beat_the_mean_layout(tmp_path):
    _run(tmp_path / "runs", "flat-maps", "baseline", 14.8)
    _run(tmp_path / "runs", "peaked-maps", "ie+te", 6.0)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(tmp_path / "runs"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    runs = pd.read_csv(out / "tables" / "runs.csv").set_index("run")
    assert runs.loc["flat-maps", "maps_localise"] == False  # noqa: E712 (read back from CSV)
    assert runs.loc["peaked-maps", "maps_localise"] == True  # noqa: E712
    assert runs.loc["flat-maps", "val_2d_px"] == pytest.approx(14.8)
    t3 = pd.read_csv(out / "tables" / "table3.csv")
    t3["note"] = t3["note"].fillna("")
    flagged = t3[t3["note"].str.contains("heatmaps carry no location")]
    assert len(flagged) >= 1 and all("flat-maps" in n and "peaked-maps" not in n for n in flagged["note"])
    assert not t3[t3["runs"] == "peaked-maps"]["note"].str.contains("no location").any()
    md = (out / "report.md").read_text()
    assert "heatmaps carry no location (val 2D ≥ mean layout): flat-maps" in md
    assert "flat-maps: the heatmaps carry no joint location" in md  # the warning banner
    html = (out / "report.html").read_text()
    assert "heatmaps carry no location" in html
