"""`hcdg predict` / `hcdg.predict`: own images -> overlays + a table, the same crops and
numbers as `hcdg eval`, left hands mirrored in and out, bad images skipped in one line."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import hcdg
from hcdg.cli import main
from hcdg.pipeline import camera, hands
from hcdg.pipeline import predict as pp
from hcdg.pipeline.datasets import open_dataset
from tests.test_eval import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The tiny test network (x0.125 channels, 32 px crops), untrained."""
    return make_run(tmp_path_factory.mktemp("runs") / "tiny")


def _eval_boxes(reader, crop_scale: float = 1.0) -> dict:
    """{file name: {box, side}}: hcdg eval's ground-truth crop of each sample, in the ORIGINAL image."""
    out = {}
    for i in range(len(reader)):
        s = reader.annotation(i)
        w = Image.open(reader.image_path(i)).width
        r = hands.to_right_hand(s, width=w)
        b = camera.crop_box(r.uv, r.visible, scale=crop_scale, image_size=(w, w))
        if s.side == "left":  # the box centre back into the original (unmirrored) image
            b = camera.CropBox(w - 1 - b.cx, b.cy, b.side)
        out[reader.image_path(i).name] = {"box": b.to_xywh().tolist(), "side": s.side}
    return out


def _eval_predictions(run, reader):
    """(uv (N,21,2) original px, xyz_rel_norm (N,21,3) un-mirrored, re-rooted) as `hcdg eval` computes them."""
    from hcdg.stages import eval as ev

    loaded = ev.load_run_model(run, None, "cpu")
    cfg = ev.EvalConfig(run=str(run), target="rhd", root=str(reader.root), progress=False)
    idx, boxes, _ = ev.select_samples(reader, cfg)
    pred = ev.predict_split(loaded, ev._Prepared(reader, idx, boxes, loaded.crop), cfg, "eval")
    _, uv = ev.evaluate_predictions(pred, loaded.crop, ("rr-gtscale",), "rhd")
    xyz = ev._unmirror(pred["xyz_rel_norm"], pred["mirrored"])
    return uv, xyz - xyz[:, :1], pred["mirrored"]


def test_predict_on_known_boxes_matches_eval_end_to_end(run_dir, synth_rhd, tmp_path):
    reader = open_dataset("rhd", synth_rhd)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(_eval_boxes(reader)))
    out = tmp_path / "pred"
    res = CliRunner().invoke(main, ["predict", str(reader.image_path(0).parent), "--run", str(run_dir),
                                    "--out", str(out), "--boxes", str(boxes), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output  # ~1 s for the tiny network (docs/predict.md; no timed assert)
    frame = pd.read_parquet(out / "predictions.parquet")
    assert len(frame) == len(reader) == 8 and list(frame["name"]) == [reader.image_path(i).name for i in range(8)]
    uv, xyz = pp.joint_array(frame, "uv_px"), pp.joint_array(frame, "xyz_rel_norm")
    assert np.isfinite(uv).all() and np.isfinite(xyz).all() and np.isfinite(pp.joint_array(frame, "confidence")).all()
    uv_ev, xyz_ev, mirrored = _eval_predictions(run_dir, reader)
    assert mirrored.any() and (~mirrored).any()  # both sides exercised
    assert list(frame["mirrored"]) == mirrored.tolist()
    np.testing.assert_allclose(uv, uv_ev, atol=1e-4)  # the same crop, decoder and way back as hcdg eval
    np.testing.assert_allclose(xyz, xyz_ev, atol=1e-5)
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["joint_names"][0] == "wrist" and len(doc["predictions"]) == 8 and doc["skipped"] == []
    np.testing.assert_allclose(np.array(doc["predictions"][3]["uv_px"]), uv[3])
    pngs = sorted(p.name for p in (out / "overlays").iterdir())
    assert pngs == sorted(f"{Path(n).stem}.png" for n in frame["name"])  # no doubled extension
    assert Image.open(out / "overlays" / pngs[0]).size == (320, 320)
    assert not list(tmp_path.glob(".pred.*"))  # no temp folder left


def test_left_hand_mirrored_in_gives_the_mirrored_right_hand_prediction(run_dir, synth_rhd):
    reader = open_dataset("rhd", synth_rhd)
    img = np.asarray(Image.open(reader.image_path(0)).convert("RGB"))
    W = img.shape[1]
    box = np.array([60.0, 40.0, 180.0, 150.0])
    mbox = box.copy()
    mbox[0] = W - 1 - box[0] - box[2]  # the centre x + w/2 -> W - 1 - (x + w/2), as the image flips
    right = hcdg.predict(run_dir, [img], [box], side="right")
    left = hcdg.predict(run_dir, [np.ascontiguousarray(img[:, ::-1])], [mbox], side="left")
    uv_r, uv_l = pp.joint_array(right, "uv_px")[0], pp.joint_array(left, "uv_px")[0]
    # the two crops agree up to PIL's uint8 rounding (1 grey level in ~0.1% of the pixels)
    np.testing.assert_allclose(uv_l[:, 0], W - 1 - uv_r[:, 0], atol=0.05)
    np.testing.assert_allclose(uv_l[:, 1], uv_r[:, 1], atol=0.05)
    xr, xl = pp.joint_array(right, "xyz_rel_norm")[0], pp.joint_array(left, "xyz_rel_norm")[0]
    np.testing.assert_allclose(xl, xr * [-1.0, 1.0, 1.0], atol=2e-3)
    assert bool(left["mirrored"][0]) and not bool(right["mirrored"][0])
    # and a left hand is not simply the right-hand answer: without mirroring it would differ
    unmirrored = hcdg.predict(run_dir, [np.ascontiguousarray(img[:, ::-1])], [mbox], side="right")
    assert np.abs(pp.joint_array(unmirrored, "uv_px")[0] - uv_l).max() > 0.5


def test_corrupt_image_is_skipped_with_one_line(run_dir, synth_rhd, tmp_path):
    reader = open_dataset("rhd", synth_rhd)
    src = tmp_path / "photos"
    src.mkdir()
    for i in (0, 1):
        (src / reader.image_path(i).name).write_bytes(reader.image_path(i).read_bytes())
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["predict", str(src), "--run", str(run_dir), "--out", str(out), "--no-progress",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "broken.jpg" in ln]
    assert len(lines) == 2 and lines[0].startswith("skipped ") and "not a readable JPEG/PNG image" in lines[0]
    assert "skipped 1: " in lines[1]  # the summary line lists it at the end
    assert "Traceback" not in res.output and "note: no --boxes: the whole image is the crop" in res.output
    frame = pd.read_parquet(out / "predictions.parquet")
    assert len(frame) == 2 and set(frame["box_source"]) == {"whole-image-pad"}
    assert len(json.loads((out / "predictions.json").read_text())["skipped"]) == 1
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(f"{Path(n).stem}.png" for n in frame["name"])


def _one_line_error(res) -> str:
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_bad_inputs_are_one_line_errors_and_nothing_is_written(run_dir, synth_rhd, tmp_path):
    img = open_dataset("rhd", synth_rhd).image_path(0)
    runner = CliRunner()
    base = ["predict", str(img), "--run", str(run_dir), "--no-progress"]
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"other.png": [0, 0, 10, 10]}))
    line = _one_line_error(runner.invoke(main, [*base, "--out", str(tmp_path / "o1"), "--boxes", str(boxes)]))
    assert str(boxes) in line and img.name in line
    boxes.write_text(json.dumps({img.name: [0, 0, -3, 10]}))
    assert "w, h > 0" in _one_line_error(runner.invoke(main, [*base, "--out", str(tmp_path / "o1"), "--boxes", str(boxes)]))
    boxes.write_text(json.dumps({img.name: {"box": [0, 0, 30, 30], "side": "up"}}))
    assert "side must be left or right" in _one_line_error(
        runner.invoke(main, [*base, "--out", str(tmp_path / "o1"), "--boxes", str(boxes)]))
    assert "--K 1,2,3" in _one_line_error(runner.invoke(main, [*base, "--out", str(tmp_path / "o1"), "--K", "1,2,3"]))
    assert "--bone-length-mm" in _one_line_error(
        runner.invoke(main, [*base, "--out", str(tmp_path / "o1"), "--bone-length-mm", "nan"]))
    assert not (tmp_path / "o1").exists()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    res = runner.invoke(main, ["predict", str(bad), "--run", str(run_dir), "--no-progress", "--out", str(tmp_path / "o2")])
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert lines[-1] == "Error: no image could be read (1 skipped); nothing written"
    assert sum(ln.startswith("skipped ") for ln in lines) == 1
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".o2.*"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("mine")
    assert "not empty" in _one_line_error(runner.invoke(main, [*base, "--out", str(full)]))
    assert (full / "x.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_output_and_plot3d(run_dir, synth_rhd, tmp_path):
    img = open_dataset("rhd", synth_rhd).image_path(1)
    out = tmp_path / "o"
    runner = CliRunner()
    args = ["predict", str(img), "--run", str(run_dir), "--out", str(out), "--no-progress"]
    assert runner.invoke(main, args).exit_code == 0
    assert "not empty" in _one_line_error(runner.invoke(main, args))
    res = runner.invoke(main, [*args, "--overwrite", "--plot3d", "--bone-length-mm", "30"])
    assert res.exit_code == 0, res.output
    assert (out / "overlays" / f"{img.stem}.3d.png").is_file()
    frame = pd.read_parquet(out / "predictions.parquet")
    np.testing.assert_allclose(pp.joint_array(frame, "xyz_rel_mm"), pp.joint_array(frame, "xyz_rel_norm") * 30.0)


def test_root_depth_from_bone_recovers_a_known_hand():
    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 0.03, size=(3, 21, 3)) + np.array([0.02, -0.01, 0.45])
    K = np.array([[600.0, 0, 320], [0, 610.0, 240], [0, 0, 1]])
    uv = camera.project(xyz, K)
    mm = xyz * 1000.0
    dz = mm[..., 2] - mm[:, :1, 2]
    bone = np.linalg.norm(mm[:, 10] - mm[:, 9], axis=-1)
    z = pp.root_depth_from_bone(uv, dz, K, bone)
    np.testing.assert_allclose(z, mm[:, 0, 2], rtol=1e-9)
    np.testing.assert_allclose(pp.camera_frame_mm(uv, dz, K, bone), mm, atol=1e-6)


def test_crop_plans_whole_image_and_mirror():
    p = pp.plan_crop(300, 200, 64, "right")
    assert p.box_source == "whole-image-pad" and np.allclose(p.box_xywh, [-0.5, -50.5, 300, 300])
    c = pp.plan_crop(300, 200, 64, "right", whole_image="center")
    assert np.allclose(c.box_xywh, [49.5, -0.5, 200, 200])
    # the box's corners land on the crop's corners, mirrored for a left hand
    b = np.array([10.0, 20.0, 100.0, 100.0])
    corners = np.array([[b[0], b[1]], [b[0] + b[2], b[1] + b[3]]])
    r = camera.apply_affine(pp.plan_crop(300, 200, 64, "right", b).crop_from_original, corners)
    l_ = camera.apply_affine(pp.plan_crop(300, 200, 64, "left", b).crop_from_original, corners)
    np.testing.assert_allclose(r, [[-0.5, -0.5], [63.5, 63.5]], atol=1e-9)
    np.testing.assert_allclose(l_, [[63.5, -0.5], [-0.5, 63.5]], atol=1e-9)


def test_python_api_takes_arrays_dict_boxes_and_K(run_dir, synth_rhd):
    reader = open_dataset("rhd", synth_rhd)
    img = np.asarray(Image.open(reader.image_path(2)).convert("RGB"))
    K = [[299.0, 0, 160], [0, 299.0, 160], [0, 0, 1]]
    frame = hcdg.predict(run_dir, [img, img[:100]], {"image-0000": [50, 50, 150, 150], "image-0001": [0, 0, 90, 90]},
                         bone_length_mm=28.0, K=K)
    assert list(frame["name"]) == ["image-0000", "image-0001"] and list(frame["height"]) == [320, 100]
    assert pp.joint_array(frame, "uv_px").shape == (2, 21, 2)
    assert frame["K"][0] == [299.0, 0.0, 160.0, 0.0, 299.0, 160.0, 0.0, 0.0, 1.0]
    cam = pp.joint_array(frame, "xyz_cam_mm")
    ok = np.isfinite(cam[:, 0, 0])
    # where the bone constraint has a solution, the middle MCP->PIP bone has the given length
    if ok.any():
        np.testing.assert_allclose(np.linalg.norm(cam[ok, 10] - cam[ok, 9], axis=-1), 28.0, rtol=1e-6)
    with pytest.raises(hcdg.pipeline.errors.HcdgError, match="uint8"):
        hcdg.predict(run_dir, [img.astype(np.float32)])


def test_an_imported_authors_run_predicts_uvd_and_camera_millimetres(tmp_path):
    import torch

    from tests.authors_reference import make_authors_state

    ckpt = tmp_path / "snapshot.pth.tar"
    torch.save({"epoch": 1, "network": make_authors_state(seed=0)}, ckpt)
    run = tmp_path / "authors"
    assert CliRunner().invoke(main, ["import", "authors", str(ckpt), "--out", str(run)]).exit_code == 0
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    frame = hcdg.predict(run, [img], [[40, 30, 160, 160]], side="left", bone_length_mm=30.0,
                         K=[500.0, 500.0, 160.0, 120.0])
    assert set(frame["output"]) == {"uvd"} and frame["xyz_rel_norm"].isna().all()
    uvd = pp.joint_array(frame, "uvd")
    assert uvd.shape == (1, 21, 3) and np.isfinite(uvd).all() and np.isfinite(pp.joint_array(frame, "uv_px")).all()
    assert frame["mirrored"].all()


def test_overlay_stems_drop_the_image_suffix_unless_two_inputs_would_share_one():
    from hcdg.stages.predict import overlay_stems

    assert overlay_stems(["00111.png", "b.JPG", "image-0003"]) == {"00111.png": "00111", "b.JPG": "b",
                                                                   "image-0003": "image-0003"}
    assert overlay_stems(["a.jpg", "a.png", "c.jpeg"]) == {"a.jpg": "a.jpg", "a.png": "a.png", "c.jpeg": "c"}


def test_python_api_errors_name_arguments_not_flags(tmp_path):
    with pytest.raises(hcdg.pipeline.errors.HcdgError, match=r"^run_dir=.*: no such folder") as exc:
        hcdg.load_model(tmp_path / "missing")
    assert "--" not in str(exc.value)
    with pytest.raises(hcdg.pipeline.errors.HcdgError, match=r"^whole_image: expected one of"):
        hcdg.predict(tmp_path, [], whole_image="stretch")
