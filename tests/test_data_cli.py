"""`hcdg data check` / `hcdg data show` in-process (CliRunner): exit codes, output, JSON keys, PNG."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from hcdg.cli import main
from hcdg.pipeline.datasets.draw import FINGER_COLOURS, joint_colour

N_FRAMES = 5


@pytest.fixture()
def stb_root(tmp_path: Path) -> Path:
    """A small STB-format root: one sequence of N_FRAMES frames, hands ~0.6 m in front of the camera."""
    root = tmp_path / "stb"
    (root / "labels").mkdir(parents=True)
    (root / "B1Counting").mkdir()
    # joints on a 20 mm grid (27 px apart at 0.6 m, so drawn dots do not overlap), moving per frame
    grid = np.array([[(j % 5) * 20.0 - 40, (j // 5) * 20.0 - 40, 600.0] for j in range(21)]).T
    para = np.stack([grid + [[5.0 * f], [0], [0]] for f in range(N_FRAMES)], axis=2)
    scipy.io.savemat(root / "labels" / "B1Counting_BB.mat", {"handPara": para})
    for f in range(N_FRAMES):
        for cam in ("BB_left", "BB_right"):
            Image.new("RGB", (640, 480), (40, 40, 40)).save(root / "B1Counting" / f"{cam}_{f}.png")
    return root


def test_check_prints_counts(stb_root):
    r = CliRunner().invoke(main, ["data", "check", "--dataset", "stb", "--root", str(stb_root),
                                  "--split", "B1Counting", "--camera", "BB_left", "--camera", "BB_right"])
    assert r.exit_code == 0, r.output
    assert f"OK, {2 * N_FRAMES} samples" in r.output and "BB_left, BB_right" in r.output
    assert "images decoded: 2 (sizes 640x480)" in r.output
    r = CliRunner().invoke(main, ["data", "check", "--dataset", "stb", "--root", str(stb_root),
                                  "--split", "B1Counting", "--decode", "all", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report["samples"] == N_FRAMES and report["decoded"] == N_FRAMES
    assert report["files"] == 1 + N_FRAMES and report["image_sizes"] == [[640, 480]]


def test_check_failures_exit_1_with_one_line(stb_root, tmp_path):
    (stb_root / "B1Counting" / "BB_left_3.png").unlink()
    # a partial copy is read with the frames present, and says how many
    r = CliRunner().invoke(main, ["data", "check", "--dataset", "stb", "--root", str(stb_root), "--split", "B1Counting"])
    assert r.exit_code == 0 and "note: partial STB folder" in r.output and "4 of 5 frames" in r.output, r.output
    cases = [
        (["--dataset", "stb", "--root", str(stb_root)], "B1Random_BB.mat: missing"),
        (["--dataset", "freihand", "--root", str(tmp_path / "nowhere")], "does not exist"),
        (["--dataset", "freihand", "--root", str(stb_root), "--camera", "SK"], "stb only"),
        (["--dataset", "rhd", "--root", str(stb_root)], "anno_evaluation.pickle"),
    ]
    for args, expected in cases:
        r = CliRunner().invoke(main, ["data", "check", *args])
        assert r.exit_code == 1, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (args, r.output)


def test_corrupt_image_found_by_check(stb_root):
    bad = stb_root / "B1Counting" / f"BB_left_{N_FRAMES - 1}.png"
    bad.write_bytes(bad.read_bytes()[:100])
    r = CliRunner().invoke(main, ["data", "check", "--dataset", "stb", "--root", str(stb_root), "--split", "B1Counting"])
    assert r.exit_code == 1 and str(bad) in r.output and "cannot decode image" in r.output


def test_show_prints_sample_json_and_draws_png(stb_root, tmp_path):
    png = tmp_path / "out" / "sample.png"
    r = CliRunner().invoke(main, ["data", "show", "--dataset", "stb", "--root", str(stb_root), "--split", "B1Counting",
                                  "--camera", "BB_right", "--index", "2", "--png", str(png)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    for key in ("xyz", "uv", "K", "side", "root", "image", "sample_id", "visible"):
        assert key in out
    assert out["sample_id"] == "B1Counting/BB_right_2" and out["image"].endswith("BB_right_2.png")
    assert (out["side"], out["root"]) == ("left", "palm")
    assert joint_colour(4) == FINGER_COLOURS[0] and joint_colour(20) == FINGER_COLOURS[4]
    xyz, uv, K = np.array(out["xyz"]), np.array(out["uv"]), np.array(out["K"])
    assert xyz.shape == (21, 3) and uv.shape == (21, 2) and K.shape == (3, 3)
    assert 0.4 < xyz[:, 2].mean() < 0.8  # metres
    proj = xyz @ K.T
    np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], uv, atol=1e-6)
    # the PNG: written atomically (no temp files left), same size, skeleton drawn in finger colours
    assert sorted(p.name for p in png.parent.iterdir()) == ["sample.png"]
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (480, 640, 3)
    assert ((uv >= 0) & (uv < [640, 480])).all()
    for j in range(21):  # each joint's dot centre has its finger's colour (white root)
        x, y = int(round(uv[j, 0])), int(round(uv[j, 1]))
        assert tuple(img[y, x]) == joint_colour(j), j
    assert tuple(img[0, 0]) == (40, 40, 40)  # the image itself is untouched elsewhere


def test_show_index_out_of_range(stb_root):
    r = CliRunner().invoke(main, ["data", "show", "--dataset", "stb", "--root", str(stb_root), "--split", "B1Counting",
                                  "--index", str(N_FRAMES)])
    assert r.exit_code == 1 and f"--index {N_FRAMES}: out of range" in r.output
