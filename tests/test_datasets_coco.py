"""COCO-style hand keypoint JSON (mmpose / I2L-MeshNet layouts): the real samples load in
`data check/show`, `eval` (with 3D) and `predict --boxes`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.camera import project
from hcdg.pipeline.datasets import open_dataset
from hcdg.pipeline.errors import HcdgError
from hcdg.store import results as rs
from tests.test_eval import make_run

REALDATA = Path(os.environ.get("HCDG_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
RHD_JSON, FH_JSON = REALDATA / "rhd" / "test_rhd.json", REALDATA / "freihand" / "test_freihand.json"
needs_real = pytest.mark.skipif(not RHD_JSON.is_file() or not FH_JSON.is_file(),
                                reason=f"COCO-style samples not found under {REALDATA}")


@needs_real
def test_rhd_json_with_3d_reads_metres_intrinsics_and_sides():
    ds = open_dataset("rhd", RHD_JSON)
    assert len(ds) == 3 and ds.has_3d and ds.note == ""
    s = ds.annotation(0)
    raw = json.loads(RHD_JSON.read_text())["annotations"][0]
    np.testing.assert_allclose(s.xyz, np.asarray(raw["joint_cam"]) / 1000.0)  # mm -> m
    # the 2D keypoints are the projection of joint_cam with cam_param (within annotation rounding)
    assert np.abs(project(s.xyz, s.K) - s.uv).max() < 1.0
    assert s.side == raw["hand_type"] and s.root == "wrist" and s.image_path.is_file()


@needs_real
def test_freihand_json_2d_only_loads_in_data_check_and_show_and_is_refused_by_eval(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["data", "check", "--dataset", "freihand", "--root", str(FH_JSON), "--decode", "all"])
    assert res.exit_code == 0, res.output
    assert "8 samples" in res.output and "2D keypoints only" in res.output
    res = runner.invoke(main, ["data", "show", "--dataset", "freihand", "--root", str(FH_JSON), "--index", "3",
                               "--png", str(tmp_path / "s.png")])  # fmt: skip
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output[res.output.index("{"):])
    assert np.isfinite(np.asarray(shown["uv"])).all() and (tmp_path / "s.png").is_file()
    run = make_run(tmp_path / "run")
    res = runner.invoke(main, ["eval", "--run", str(run), "--target", "freihand", "--root", str(FH_JSON), "--no-progress"])
    assert res.exit_code == 1 and "eval needs 3D ground truth" in res.output


@needs_real
def test_rhd_json_evaluates_and_gives_predict_its_boxes(tmp_path):
    run = make_run(tmp_path / "run")
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(RHD_JSON),
                                    "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    frame = rs.read_results(rs.results_path(run, "rhd"))
    assert frame["sample_id"].nunique() == 3 and np.isfinite(frame["epe_mm"]).all()
    images = sorted(str(p) for p in (REALDATA / "rhd").glob("*.png"))
    res = CliRunner().invoke(main, ["predict", *images, "--run", str(run), "--out", str(tmp_path / "p"),
                                    "--boxes", str(RHD_JSON), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    raw = json.loads(RHD_JSON.read_text())
    sides = {im["file_name"]: a["hand_type"] for im, a in zip(raw["images"], raw["annotations"])}
    assert dict(zip(pred["name"], pred["side"])) == sides and set(pred["box_source"]) == {"given"}


def test_other_keypoint_layouts_are_refused_in_one_line(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "keypoints": [0] * 63}],
           "categories": [{"keypoints": ["nose"] * 21}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(HcdgError, match="not mmpose's 21 hand joints"):
        open_dataset("rhd", path)
