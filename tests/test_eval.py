"""`hcdg eval`: rows, file replacement, the mirror -> crop -> un-mirror chain, seed boxes, errors.

Runs are built directly (a fresh narrow network saved with the checkpoint writer), so
no training is needed; the datasets are small synthetic sets in the real formats.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import camera, hands
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.datasets import open_dataset
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.transforms import CropConfig, prepare
from hcdg.stages import eval as ev
from hcdg.store import results as rs
from hcdg.store.checkpoints import config_hash, save_checkpoint, save_model
from hcdg.store.runs import prepare_run


def make_run(folder: Path, *, width: float = 0.125, input_size: int = 32, crop_scale: float = 1.0,
             final: bool = True, checkpoint: bool = False, weights_width: float | None = None,
             weights_hash: str | None = None) -> Path:
    """A training run folder holding a fresh (untrained) network, as `hcdg train` lays it out."""
    cfg = {"mode": "baseline", "width_mult": width, "input_size": input_size, "sigma_px": 10.0,
           "crop_scale": crop_scale, "combine": "concat", "ratio": 0.6}
    chash = config_hash(cfg)
    prepare_run(folder, stage="train", config=cfg, seed=0, extra={"config_hash": chash})
    torch.manual_seed(0)
    net = HandPoseNet(ModelConfig(width_mult=weights_width or width, input_size=input_size, branch2=False))
    crop = CropConfig(input_size=input_size, crop_scale=crop_scale)
    if final:
        save_model(folder, net.state_dict(), {"model_config": to_dict(ModelConfig(width_mult=width, input_size=input_size)),
                                              "config_hash": weights_hash or chash, "step": 3, "crop": to_dict(crop)})
    if checkpoint:
        opt = torch.optim.Adam(net.parameters())
        save_checkpoint(folder, step=2, epoch=0, model_state=net.state_dict(), optimizer_state=opt.state_dict(),
                        cfg_hash=weights_hash or chash)
    return folder


@pytest.fixture(scope="module")
def data(synth_stb, synth_rhd, synth_freihand) -> dict[str, Path]:
    """The shared synthetic sets (tests/conftest.py): STB 2 x 8 left hands, RHD 8 of either side,
    FreiHAND 4 evaluation images."""
    return {"stb": synth_stb, "rhd": synth_rhd, "freihand": synth_freihand}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "fresh")


def _cfg(run: Path, target: str, root: Path, **kw) -> ev.EvalConfig:
    return ev.EvalConfig(run=str(run), target=target, root=str(root), progress=False, **kw)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_per_sample_and_protocol_and_rerun_replaces_only_that_target(data, run_dir):
    runner = CliRunner()
    res = runner.invoke(main, ["eval", "--run", str(run_dir), "--target", "stb", "--root", str(data["stb"]),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "rr-gtscale" in res.output and "palm" in res.output  # the printed summary table
    ev.run(_cfg(run_dir, "rhd", data["rhd"]))

    stb = rs.read_results(rs.results_path(run_dir, "stb"))
    n_stb = len(open_dataset("stb", data["stb"]))
    # STB: 4 protocols x 2 roots (wrist, palm); every sample once per (protocol, root)
    assert len(stb) == n_stb * 4 * 2
    assert stb.groupby(["protocol", "root"]).size().eq(n_stb).all()
    assert set(stb["protocol"]) == {"rr-gtscale", "pa", "pa-proper", "2.5d-gtroot-gtbone"}
    assert stb["mirrored"].all()  # STB hands are left hands
    rhd = rs.read_results(rs.results_path(run_dir, "rhd"))
    # RHD (wrist-rooted): 4 protocols at the wrist + hand3d's palm root under rr-gtscale
    n_rhd = len(open_dataset("rhd", data["rhd"]))
    assert len(rhd) == n_rhd * 5 and set(rhd[rhd.root == "palm"]["protocol"]) == {"rr-gtscale"}
    palm = rhd[rhd.root == "palm"]
    vis_w, vis_p = rs.visible_array(rhd[(rhd.root == "wrist") & (rhd.protocol == "rr-gtscale")]), rs.visible_array(palm)
    np.testing.assert_array_equal(vis_p[:, 0], vis_w[:, 0] | vis_w[:, 9])  # hand3d: palm seen if wrist or MCP is
    assert rhd["cfg.width_mult"].eq(0.125).all()  # the run's config columns

    fh = rs.read_results(ev.run(_cfg(run_dir, "freihand", data["freihand"]))["results"])
    assert set(fh["split"]) == {"evaluation"} and len(fh) == len(open_dataset("freihand", data["freihand"], "evaluation")) * 5
    assert not fh["mirrored"].any()

    rhd_files = {p: _sha(p) for p in (rs.results_path(run_dir, "rhd"), rs.summary_path(run_dir, "rhd"),
                                      rs.results_path(run_dir, "stb"))}
    ev.run(_cfg(run_dir, "stb", data["stb"], protocols=("pa",), limit=4))
    stb2 = rs.read_results(rs.results_path(run_dir, "stb--limit-4"))  # beside the reference results
    assert len(stb2) == 4 * 2 and set(stb2["protocol"]) == {"pa"}
    summ = rs.read_summary(rs.summary_path(run_dir, "stb--limit-4"))
    assert set(summ["protocol"]) == {"pa"} and summ["n_samples"].eq(4).all()
    assert {"PCK", "AUC", "EPE"} <= set(summ.columns) and summ["EPE"].gt(0).all()  # mmpose's 2D metrics
    assert {p: _sha(p) for p in rhd_files} == rhd_files  # the other target and the reference untouched
    assert not list((run_dir / "eval").glob(".tmp-*"))


def _gt_prediction(prep: dict, gt_root: str, hm_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (21, h, h) and xyz_rel_norm (21, 3) a perfect network would output for `prep`
    (a wrist-rooted hand: STB's palm is converted to its wrist)."""
    xyz = prep["xyz_m"]
    if gt_root == "palm":
        xyz = hands.stb_palm_to_wrist(xyz)
    uv_crop = camera.project(xyz, prep["K_crop"])
    size = prep["image"].shape[-1]
    heat = camera.gaussian_heatmaps(camera.crop_to_heatmap(uv_crop, size, hm_size), hm_size, 1.25 * hm_size / 32)
    return heat, (xyz - xyz[0]) / hands.bone_scale(xyz)


def _patch_perfect(monkeypatch, reader, crop: CropConfig, boxes=None) -> None:
    table = {}
    for i in range(len(reader)):
        sample = reader[i]
        box = None if boxes is None else camera.CropBox.from_xywh(boxes[i])
        prep = prepare(sample, crop, box=box)
        key = hashlib.sha1(np.ascontiguousarray(prep["image"]).tobytes()).hexdigest()
        table[key] = _gt_prediction(prep, sample.root, crop.heatmap_size)

    def predict(self, image, hand_side):
        rows = [table[hashlib.sha1(np.ascontiguousarray(im.numpy()).tobytes()).hexdigest()] for im in image.cpu()]
        heat = torch.from_numpy(np.stack([r[0] for r in rows]))
        xyz = torch.from_numpy(np.stack([r[1] for r in rows])).float()
        return {"heatmaps": [heat, heat, heat], "xyz_rel_norm": xyz}

    monkeypatch.setattr(HandPoseNet, "predict", predict)


@pytest.mark.parametrize("target", ["stb", "rhd"])
def test_perfect_predictions_survive_mirror_crop_unmirror(tmp_path, monkeypatch, data, target):
    """A network that outputs the ground truth of its (mirrored) crop scores ~0, and the written
    predictions equal the reader's joints in the dataset's own camera frame (not mirrored)."""
    run = make_run(tmp_path / "run", input_size=128, crop_scale=1.5)
    reader = open_dataset(target, data[target])
    crop = CropConfig(input_size=128, crop_scale=1.5)
    _patch_perfect(monkeypatch, reader, crop)
    out = ev.run(_cfg(run, target, data[target], batch_size=4))
    frame = rs.read_results(out["results"])

    samples = {reader[i].sample_id: reader[i] for i in range(len(reader))}
    if target == "rhd":
        sides = {s.side for s in samples.values()}
        assert frame["mirrored"].tolist()[: len(samples)] == [s.side == "left" for s in samples.values()]
        assert sides == {"left", "right"}, "the fixture should hold both hand sides"
    wrist = frame[frame["root"] == "wrist"]
    for proto in ("rr-gtscale", "pa"):
        rows = wrist[wrist["protocol"] == proto]
        assert rows["epe_mm"].max() < 1e-3, proto
    rows = wrist[wrist["protocol"] == "2.5d-gtroot-gtbone"]
    assert rows["epe_mm"].max() < 0.2  # only the heatmap decoding's sub-pixel error remains

    for _, row in wrist[wrist["protocol"] == "rr-gtscale"].iterrows():
        s = samples[row["sample_id"]]
        want = hands.stb_palm_to_wrist(s.xyz) if s.root == "palm" else s.xyz
        np.testing.assert_allclose(np.reshape(row["pred_xyz_m"], (21, 3)), want, atol=2e-6)
        np.testing.assert_allclose(np.reshape(row["gt_xyz_m"], (21, 3)), want, atol=2e-6)
        uv_want = camera.project(want, s.K)  # 2D from the heatmaps, in the original image
        np.testing.assert_allclose(np.reshape(row["pred_uv_px"], (21, 2)), uv_want, atol=1.0)
    if target == "stb":  # palm root: prediction's palm point (wrist + middle MCP)/2 put on the GT palm
        palm = frame[(frame["root"] == "palm") & (frame["protocol"] == "rr-gtscale")]
        errs = rs.errors_array(palm)
        for (_, row), err in zip(palm.iterrows(), errs):
            s = samples[row["sample_id"]]
            wrist_xyz = hands.stb_palm_to_wrist(s.xyz)
            shift_mm = 1000 * np.linalg.norm(hands.palm_from_wrist(wrist_xyz) - s.xyz[0])
            assert err[0] < 1e-3 and shift_mm > 0.1
            np.testing.assert_allclose(err[1:], shift_mm, atol=1e-3)  # a pure translation of the fingers


def _gt_boxes_mirrored(reader, crop: CropConfig) -> np.ndarray:
    """hand3d's keypoint boxes, in the frame of the image *after* mirroring, as [x, y, w, h]."""
    rows = []
    for i in range(len(reader)):
        s = hands.to_right_hand(reader.annotation(i), width=640)
        rows.append(camera.crop_box(s.uv, s.visible, scale=crop.crop_scale, min_side=crop.min_side_px,
                                    image_size=(480, 640)).to_xywh())
    return np.array(rows)


def test_seed_boxes_are_read_in_the_mirrored_frame(tmp_path, data, run_dir):
    """Seed boxes are cut as the authors' test code cuts them (box truncated to int, centre ->
    crop centre S/2) in the mirrored frame; the same boxes un-mirrored give other predictions;
    a wrong count is a clear error."""
    from hcdg.pipeline.authors import crop_from_xywh

    reader = open_dataset("stb", data["stb"])
    boxes = _gt_boxes_mirrored(reader, CropConfig(input_size=32)) + 0.7  # fractions are truncated
    path = tmp_path / "STB_bbox.npy"
    np.save(path, boxes)
    run = make_run(tmp_path / "run")
    gt = rs.read_results(ev.run(_cfg(run, "stb", data["stb"]))["results"])
    sb = rs.read_results(ev.run(_cfg(run, "stb", data["stb"], crops="seed-boxes", boxes=str(path)))["results"])
    assert sb["crops"].eq("seed-boxes").all()
    item = ev._Prepared(reader, [0], boxes[:1], CropConfig(input_size=32))[0]
    x, y, w, h = np.trunc(boxes[0])
    s = 32 / w
    expect = np.array([[s, 0, 16 - s * (x + w / 2)], [0, s, 16 - s * (y + h / 2)], [0, 0, 1]])
    np.testing.assert_allclose(item["crop_from_image"], expect, atol=1e-9)
    np.testing.assert_allclose(crop_from_xywh(boxes[0], 32), expect, atol=1e-9)
    # the hand lies where the box says: gt-box crops and seed-box crops see nearly the same view
    np.testing.assert_allclose(rs.xyz_array(sb["gt_xyz_m"]), rs.xyz_array(gt["gt_xyz_m"]), atol=1e-9)
    flipped = boxes.copy()
    flipped[:, 0] = 640 - boxes[:, 0] - boxes[:, 2]  # the same boxes in the un-mirrored frame
    np.save(path, flipped)
    other = rs.read_results(ev.run(_cfg(run, "stb", data["stb"], crops="seed-boxes", boxes=str(path)))["results"])
    assert not np.allclose(rs.xyz_array(other["pred_xyz_m"]), rs.xyz_array(gt["pred_xyz_m"]), atol=1e-3)

    np.save(path, boxes[:-1])
    with pytest.raises(HcdgError, match=rf"{len(boxes) - 1} boxes for {len(boxes)} samples"):
        ev.run(_cfg(run_dir, "stb", data["stb"], crops="seed-boxes", boxes=str(path)))


class _FakeRhd:
    dataset, split = "rhd", "evaluation"

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def sample_id(self, i: int) -> str:
        return f"{i:05d}"


def test_rhd_seed_boxes_skip_the_three_images_the_authors_drop(tmp_path):
    path = tmp_path / "Rhp_bbox.npy"
    np.save(path, np.tile([10.0, 20.0, 100.0, 100.0], (2725, 1)))
    cfg = ev.EvalConfig(run="r", target="rhd", root="x", crops="seed-boxes", boxes=str(path))
    idx, boxes, note = ev.select_samples(_FakeRhd(2728), cfg)
    assert len(idx) == len(boxes) == 2725
    assert {162, 359, 1488}.isdisjoint(idx) and idx[162] == 163 and "00162" in note
    with pytest.raises(HcdgError, match="2725 boxes for 2727 samples"):
        ev.select_samples(_FakeRhd(2727), cfg)


def test_clear_errors(tmp_path, data, run_dir):
    runner = CliRunner()
    # a run folder without weights
    bare = make_run(tmp_path / "bare", final=False)
    res = runner.invoke(main, ["eval", "--run", str(bare), "--target", "stb", "--root", str(data["stb"])])
    assert res.exit_code == 1 and "no trained weights" in res.output
    # a bad target root
    res = runner.invoke(main, ["eval", "--run", str(run_dir), "--target", "rhd", "--root", str(data["stb"])])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["eval", "--run", str(run_dir), "--target", "stb", "--root", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "does not exist" in res.output
    # weights written under another config (hash) than run.json records
    other = make_run(tmp_path / "other", weights_hash="0" * 64)
    with pytest.raises(HcdgError, match="different training config"):
        ev.run(_cfg(other, "stb", data["stb"]))
    ck_other = make_run(tmp_path / "ckother", final=False, checkpoint=True, weights_hash="1" * 64)
    with pytest.raises(HcdgError, match="different training config"):
        ev.run(_cfg(ck_other, "stb", data["stb"]))
    # weights of a wider network than the config describes
    wide = make_run(tmp_path / "wide", weights_width=0.25)
    with pytest.raises(HcdgError, match="do not fit the network"):
        ev.run(_cfg(wide, "stb", data["stb"]))
    # seed boxes without a file
    res = runner.invoke(main, ["eval", "--run", str(run_dir), "--target", "stb", "--root", str(data["stb"]),
                               "--crops", "seed-boxes"])
    assert res.exit_code == 1 and "--boxes" in res.output


def test_checkpoint_folder_is_evaluated_when_there_is_no_final_model(tmp_path, data):
    run = make_run(tmp_path / "ck", final=False, checkpoint=True)
    out = ev.run(_cfg(run, "stb", data["stb"], limit=2, protocols=("rr-gtscale",)))
    frame = rs.read_results(out["results"])
    assert frame["checkpoint_step"].eq(2).all() and len(frame) == 2 * 2
    assert pd.notna(frame["epe_mm"]).all()


def test_cli_protocol_pa_proper_alone(data, tmp_path):
    run = make_run(tmp_path / "run")
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(data["rhd"]),
                                    "--protocol", "pa-proper", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(rs.read_results(rs.results_path(run, "rhd"))["protocol"]) == {"pa-proper"}
