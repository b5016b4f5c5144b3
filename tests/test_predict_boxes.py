"""`hcdg predict --boxes`: boxes in the frame they were made in (the authors' STB boxes: mirrored),
and a warning for a box that lies mostly outside its image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import predict as pp
from hcdg.pipeline.datasets import open_dataset
from tests.test_eval import make_run

REALDATA = Path(os.environ.get("HCDG_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
STB, BOXES = REALDATA / "stb", REALDATA / "seed-bboxes" / "STB_bbox.npy"
needs_real = pytest.mark.skipif(not (STB / "B1Counting" / "BB_left_0.png").is_file() or not BOXES.is_file(),
                                reason=f"real STB frame / authors' boxes not found under {REALDATA}")


def test_mirrored_box_maps_back_by_the_image_mirror():
    box = np.array([10.0, 20.0, 100.0, 100.0])
    back = pp.box_to_image(box, 640, "mirrored")
    np.testing.assert_allclose(back, [529.0, 20.0, 100.0, 100.0])  # centre 60 -> 639 - 60 = 579
    np.testing.assert_allclose(pp.box_to_image(back, 640, "mirrored"), box)
    assert pp.outside_fraction(np.array([0.0, 0.0, 50.0, 50.0]), 100, 100) == pytest.approx(0.0, abs=0.02)
    assert pp.outside_fraction(np.array([-500.0, 0.0, 100.0, 100.0]), 100, 100) == 1.0


@needs_real
def test_authors_stb_box_lands_on_the_hand(tmp_path):
    run = make_run(tmp_path / "run")
    frame_dir = tmp_path / "B1Counting"
    frame_dir.mkdir()
    shutil.copy(STB / "B1Counting" / "BB_left_0.png", frame_dir / "BB_left_0.png")
    uv = open_dataset("stb", STB, "B1Counting").annotation(0).uv  # (21, 2) GT joints, original pixels
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(frame_dir / "BB_left_0.png"), "--run", str(run), "--out",
                               str(tmp_path / "p"), "--boxes", str(BOXES), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    row = pd.read_parquet(tmp_path / "p" / "predictions.parquet").iloc[0]
    x, y, w, h = row["box"]
    assert row["side"] == "left" and row["box_source"] == "given"
    inside = (uv[:, 0] > x) & (uv[:, 0] < x + w) & (uv[:, 1] > y) & (uv[:, 1] < y + h)
    assert inside.all()  # every GT joint inside the box that was cut
    # read in the wrong frame the same row misses the hand
    res = runner.invoke(main, ["predict", str(frame_dir / "BB_left_0.png"), "--run", str(run), "--out",
                               str(tmp_path / "q"), "--boxes", str(BOXES), "--box-frame", "image", "--no-progress"])
    assert res.exit_code == 0, res.output
    x, y, w, h = pd.read_parquet(tmp_path / "q" / "predictions.parquet").iloc[0]["box"]
    assert not ((uv[:, 0] > x) & (uv[:, 0] < x + w)).all()
    # an input not named as an authors' test frame is refused in one line
    odd = tmp_path / "odd.png"
    shutil.copy(STB / "B1Counting" / "BB_left_0.png", odd)
    res = runner.invoke(main, ["predict", str(odd), "--run", str(run), "--out", str(tmp_path / "r"),
                               "--boxes", str(BOXES), "--no-progress"])  # fmt: skip
    assert res.exit_code == 1 and "not named as one" in res.output and len(res.output.strip().splitlines()) == 1


def test_box_mostly_outside_the_image_is_warned(tmp_path):
    from PIL import Image

    run = make_run(tmp_path / "run")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.array([[-200.0, 0.0, 60.0, 60.0]]))
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "a.png"), "--run", str(run), "--out", str(tmp_path / "p"),
                                    "--boxes", str(tmp_path / "b.npy"), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "contains none of the image" in res.output and "--box-frame" in res.output
