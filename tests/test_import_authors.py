"""`hcdg import authors`: their checkpoint format -> an hcdg run; their forward reproduced."""

import json
import os
import pickle
import zipfile

import pytest
import torch
from click.testing import CliRunner

import hcdg
from hcdg.cli import main
from hcdg.pipeline import authors
from hcdg.pipeline.model import HandPoseNet
from tests.authors_reference import P, authors_forward, make_authors_state


@pytest.fixture(scope="module")
def their_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("authors")
    state = make_authors_state(seed=0)
    path = d / "snapshot_45.pth.tar"
    torch.save({"epoch": 45, "network": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path, state


@pytest.fixture(scope="module")
def imported(their_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "authors"
    res = CliRunner().invoke(main, ["import", "authors", str(their_ckpt[0]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_import_writes_a_normal_run_folder_with_the_source_sha256(imported, their_ckpt):
    import hashlib

    files = sorted(p.name for p in imported.iterdir())
    assert files == ["model.json", "model.safetensors", "run.json"]
    run = json.loads((imported / "run.json").read_text())
    sha = hashlib.sha256(their_ckpt[0].read_bytes()).hexdigest()
    assert run["stage"] == "import" and run["source"]["sha256"] == sha and run["eval_crop_backend"] == "cv2"
    assert run["config"]["model"]["lifting_padding"] == "tf-same"
    assert run["config"]["model"]["output"] == "uvd" and run["config"]["model"]["hand_side"] == "authors"
    assert set(run["source"]["ignored_key_families"]) >= {"clip_model", "pose_model.handsegnet",
                                                          "pose_model.posenet.proj_linear*"}
    meta = json.loads((imported / "model.json").read_text())
    assert meta["model_config"]["input_offset"] == 0.0 and meta["model_config"]["head_bias"] is False


def test_load_model_predict_reproduces_their_forward(imported, their_ckpt):
    torch.manual_seed(1)
    net = hcdg.load_model(imported)
    assert not net.training and net.branch2 is None and net.cfg.output == "uvd"
    img = torch.rand(2, 3, 256, 256)
    side = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # what their test code feeds (Rhp.py:144)
    with torch.no_grad():
        out = net.predict(img, side)
        xyz_ref, maps_ref, up_ref = authors_forward(their_ckpt[1], img, side)
    assert out["xyz_rel_norm"].shape == (2, 21, 3) and out["heatmaps"][-1].shape == (2, 21, 32, 32)
    assert float(xyz_ref.abs().max()) > 1e-2  # not a trivially zero output
    torch.testing.assert_close(out["xyz_rel_norm"], xyz_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["heatmaps"][-1], maps_ref, atol=1e-4, rtol=1e-4)
    up = torch.nn.functional.interpolate(out["heatmaps"][-1], 256, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, up_ref, atol=1e-4, rtol=1e-4)


def test_the_architecture_options_matter_for_the_match(imported, their_ckpt):
    """With hcdg's default padding / flatten the same weights do NOT reproduce their output."""
    from dataclasses import replace

    net = hcdg.load_model(imported)
    img, side = torch.rand(1, 3, 256, 256), torch.tensor([[1.0, 0.0]])
    with torch.no_grad():
        ref = authors_forward(their_ckpt[1], img, side)[0]
        for change in ({"lifting_padding": "torch"}, {"lifting_flatten": "nchw"}, {"input_offset": 0.5}):
            other = HandPoseNet(replace(net.cfg, **change))
            other.load_state_dict(net.state_dict())
            assert not torch.allclose(other.eval().predict(img, side)["xyz_rel_norm"], ref, atol=1e-3), change


def test_branch2_weights_are_imported_with_a_bias_free_head(their_ckpt, tmp_path):
    from hcdg.pipeline.model import HandPoseNet as Net
    from hcdg.store.checkpoints import load_model_state

    out = tmp_path / "run"
    CliRunner().invoke(main, ["import", "authors", str(their_ckpt[0]), "--out", str(out)])
    state, meta = load_model_state(out)
    sd = their_ckpt[1]
    assert torch.equal(state["branch2.head.net.3.weight"], sd[P + "posenet.projection_head.3.weight"])
    assert torch.equal(state["branch2.fc_e2.weight"], sd[P + "posenet.cat_fc2.weight"])
    assert torch.equal(state["viewpoint.net.out.bias"],
                       torch.cat([sd[P + f"viewpoint.fc_vp_{a}.bias"] for a in ("ux", "uy", "uz")]))
    net = Net(authors.model_config())
    net.load_state_dict(state, strict=True)  # the whole network, Branch2 included


def test_a_checkpoint_without_branch2_imports_branch1(tmp_path):
    path = tmp_path / "baseline.pth.tar"
    torch.save({"network": make_authors_state(seed=3, branch2=False)}, path)
    res = CliRunner().invoke(main, ["import", "authors", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "Branch2: no" in res.output
    assert hcdg.load_model(tmp_path / "run").cfg.output == "uvd"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/hcdg_pwned_marker",))


def _refused(path, out):
    res = CliRunner().invoke(main, ["import", "authors", str(path), "--out", str(out)])
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return lines[0]


def test_malicious_truncated_and_wrong_structure_checkpoints_are_one_line_errors(their_ckpt, tmp_path):
    marker = "/tmp/hcdg_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    evil = tmp_path / "evil.pth.tar"
    torch.save({"network": {"x": _Evil()}}, evil)
    assert "refused" in _refused(evil, tmp_path / "o1")
    assert not os.path.exists(marker)

    raw = tmp_path / "raw.pkl"  # a plain (non-zip) pickle with a code-running object
    raw.write_bytes(pickle.dumps(_Evil()))
    line = _refused(raw, tmp_path / "o2")
    assert "refused" in line and "Unsupported" in line
    assert not os.path.exists(marker)

    data = their_ckpt[0].read_bytes()
    trunc = tmp_path / "trunc.pth.tar"
    trunc.write_bytes(data[: len(data) // 3])
    assert "not a readable PyTorch checkpoint" in _refused(trunc, tmp_path / "o3")

    wrong = tmp_path / "wrong.pth.tar"
    torch.save({"model": {"a": torch.zeros(1)}}, wrong)
    assert "'network'" in _refused(wrong, tmp_path / "o4")

    other = tmp_path / "other.pth.tar"
    torch.save({"network": {"module.backbone.weight": torch.zeros(1)}}, other)
    assert "module.pose_model." in _refused(other, tmp_path / "o5")


def test_missing_mis_shaped_and_non_finite_keys_are_named(tmp_path):
    state = make_authors_state(seed=1)
    missing = {k: v for k, v in state.items() if k != P + "poseprior.fc_rel1.bias"}
    p = tmp_path / "missing.pth.tar"
    torch.save({"network": missing}, p)
    assert "missing key 'module.pose_model.poseprior.fc_rel1.bias'" in _refused(p, tmp_path / "o1")

    bad = dict(state)
    bad[P + "viewpoint.fc_vp0.weight"] = torch.zeros(256, 4096)  # NCHW-sized without the hand side
    p = tmp_path / "shape.pth.tar"
    torch.save({"network": bad}, p)
    line = _refused(p, tmp_path / "o2")
    assert "viewpoint.fc_vp0.weight" in line and "(256, 4096)" in line and "(256, 4098)" in line

    nan = dict(state)
    nan[P + "posenet.conv1_1.bias"] = torch.full((64,), float("nan"))
    p = tmp_path / "nan.pth.tar"
    torch.save({"network": nan}, p)
    assert "NaN" in _refused(p, tmp_path / "o3")


def test_out_must_be_new_or_empty(their_ckpt, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "x").write_text("keep")
    res = CliRunner().invoke(main, ["import", "authors", str(their_ckpt[0]), "--out", str(out)])
    assert res.exit_code != 0 and "not empty" in res.output
    assert (out / "x").read_text() == "keep"


def test_key_map_is_one_to_one():
    target = HandPoseNet(authors.model_config()).state_dict()
    sources = [s for k in target for s in authors.source_keys(k)]
    assert len(sources) == len(set(sources))
    assert zipfile  # (imported for the truncated-file case's error types)


def _boxes(reader, width):
    from hcdg.pipeline import camera, hands

    rows = []
    for i in range(len(reader)):
        s = hands.to_right_hand(reader.annotation(i), width=width)
        rows.append(camera.crop_box(s.uv, s.visible, scale=1.5, image_size=None).to_xywh())
    return rows


def test_imported_run_evaluates_under_authors_and_reports(imported, synth_stb, synth_rhd, tmp_path):
    import numpy as np

    from hcdg.pipeline.datasets import open_dataset
    from hcdg.store import results as rs

    run = tmp_path / "run"
    import shutil

    shutil.copytree(imported, run)
    runner = CliRunner()
    for target, root, width in (("stb", synth_stb, 640), ("rhd", synth_rhd, 320)):
        reader = open_dataset(target, root)
        boxes = tmp_path / f"{target}.npy"
        np.save(boxes, np.array(_boxes(reader, width)))
        res = runner.invoke(main, ["eval", "--run", str(run), "--target", target, "--root", str(root),
                                   "--crops", "seed-boxes", "--boxes", str(boxes), "--no-progress", "--device", "cpu",
                                   *(["--limit", "2"] if target == "stb" else [])])  # RHD whole: the report reads it
        assert res.exit_code == 0, res.output
        stem = "stb--seed-boxes--limit-2" if target == "stb" else "rhd--seed-boxes"  # beside the reference names
        frame = rs.read_results(rs.results_path(run, stem))
        n = 2 if target == "stb" else len(reader)
        assert set(frame["protocol"]) == {"authors"} and len(frame) == n * (2 if target == "stb" else 1)
        assert np.isfinite(rs.errors_array(frame)).all()
        # a uvd network is refused the xyz protocols, in one line
        bad = runner.invoke(main, ["eval", "--run", str(run), "--target", target, "--root", str(root),
                                   "--protocol", "pa", "--limit", "1", "--no-progress"])
        assert bad.exit_code != 0 and "--protocol pa: does not apply" in bad.output
        assert len([ln for ln in bad.output.splitlines() if ln.strip()]) == 1
    rep = runner.invoke(main, ["report", str(run), "--out", str(tmp_path / "report")])
    assert rep.exit_code == 0, rep.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "`authors`" in html or "authors" in html
    full = __import__("pandas").read_csv(tmp_path / "report" / "tables" / "full_results.csv")
    assert set(full["protocol"]) == {"authors"} and set(full["target"]) == {"rhd"}  # the --limit STB check set aside
    assert "stb--seed-boxes--limit-2.parquet" in html


def test_an_xyz_run_is_refused_the_authors_protocol(synth_stb, tmp_path):
    from tests.test_eval import make_run

    run = make_run(tmp_path / "xyz")
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "stb", "--root", str(synth_stb),
                                    "--protocol", "authors-gtcrops", "--no-progress"])
    assert res.exit_code != 0
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--protocol authors-gtcrops: does not apply" in lines[0] and "uvd" in lines[0]
    assert not (run / "eval").exists()


def test_authors_means_their_boxes(imported, synth_stb, tmp_path):
    """`--protocol authors` with hcdg's GT boxes is refused in one line; without --protocol a uvd run on
    GT boxes is labelled authors-gtcrops, never authors."""
    from hcdg.store import results as rs

    runner = CliRunner()
    base = ["eval", "--run", str(imported), "--target", "stb", "--root", str(synth_stb), "--no-progress", "--limit", "1"]
    for extra, needle in ((["--protocol", "authors"], "--protocol authors: means the authors' released boxes"),
                          (["--protocol", "authors-gtcrops", "--crops", "seed-boxes", "--boxes", "x.npy"],
                           "--protocol authors-gtcrops: is their computation on hcdg's ground-truth boxes")):
        res = runner.invoke(main, base + extra)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code != 0 and len(lines) == 1 and needle in lines[0], res.output
    assert not (imported / "eval").exists()
    import shutil

    run = tmp_path / "run"
    shutil.copytree(imported, run)
    res = runner.invoke(main, ["eval", "--run", str(run), *base[3:], "--device", "cpu"])
    assert res.exit_code == 0, res.output
    frame = rs.read_results(rs.results_path(run, "stb--limit-1"))  # a --limit check: beside the reference
    assert set(frame["protocol"]) == {"authors-gtcrops"} and set(frame["crop_backend"]) == {"cv2"}


def _their_epe_mm(target, sample, box, state, scale=1.0, rot=0.0):
    """One sample through their test code as written out in tests/authors_reference.py: their crop,
    their forward, then Rhp.py:197-217 (regressed uv, 0.3/2) or STB.py:186-205 (argmax of the maps
    upsampled to 256, 0.13/2), their float32 bb2img_trans, pixel2cam with the original K, root depth
    re-anchored, EPE in mm. Ground truth as hcdg's `authors` rows compare it: mirrored x for left
    hands (STB.py:202); STB's palm root kept."""
    import numpy as np

    from tests.authors_reference import their_test_crop

    left = sample.side == "left"
    net_in, _, inv = their_test_crop(sample.image, box, left, scale, rot)
    with torch.no_grad():
        xyz, _, up = authors_forward(state, torch.from_numpy(net_in)[None], torch.tensor([[1.0, 0.0]]))
    gt = np.array(sample.xyz, dtype=np.float64) * 1000.0
    if left:
        gt[:, 0] *= -1
    out = xyz[0].numpy().astype(np.float64)
    if target == "rhd":
        out[:, :2] *= 256
        out[:, 2] = (out[:, 2] * 2 - 1) * (0.3 / 2) * 1000 + gt[0, 2]
    else:
        flat = up[0].reshape(21, -1).numpy().argmax(-1)
        out[:, 0], out[:, 1] = flat % 256, flat // 256
        out[:, 2] = (out[:, 2] * 2 - 1) * (0.13 / 2) * 1000
        out[:, 2] += gt[0, 2] - out[0, 2]
    out[:, :2] = (inv.astype(np.float64) @ np.column_stack([out[:, :2], np.ones(21)]).T).T
    K = np.asarray(sample.K, dtype=np.float64)
    out[:, 0] = (out[:, 0] - K[0, 2]) / K[0, 0] * out[:, 2]
    out[:, 1] = (out[:, 1] - K[1, 2]) / K[1, 1] * out[:, 2]
    out[:, 2] += gt[0, 2] - out[0, 2]
    return float(np.mean(np.linalg.norm(gt - out, axis=1)))


@pytest.mark.parametrize("target, scale, rot", [("stb", 1.0, 0.0), ("rhd", 1.2, 15.0)])
def test_per_sample_epe_equals_their_test_code(imported, their_ckpt, synth_stb, synth_rhd, tmp_path,
                                               target, scale, rot):
    """`hcdg eval --protocol authors` on released-style boxes that cross the image border == their whole
    test path (crop, network, decode, EPE) per sample. The crops are bit-identical (tests/test_crop_cv2.py);
    what is left is float32 round-off between two implementations of the network (outputs agree to
    ~2e-7 of values ~2), i.e. a relative 3e-7 of this random network's ~400 mm errors: hence 1e-4 mm
    plus 1e-6 relative."""
    import shutil

    import numpy as np

    from hcdg.pipeline import camera, hands
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.store import results as rs

    root, width, height = (synth_stb, 640, 480) if target == "stb" else (synth_rhd, 320, 320)
    reader = open_dataset(target, root)
    rows = []
    for i in range(len(reader)):  # their boxes are ~2.5x hand3d's: most cross the image border
        s = hands.to_right_hand(reader.annotation(i), width=width)
        rows.append(camera.crop_box(s.uv, s.visible, scale=2.6, image_size=None).to_xywh() + 0.37)
    boxes = np.array(rows)
    n = 2
    x, y, w, h = boxes[:n].T
    crosses = (x < 0) | (y < 0) | (x + w > width) | (y + h > height)
    assert crosses.any()
    path = tmp_path / "boxes.npy"
    np.save(path, boxes)
    run = tmp_path / "run"
    shutil.copytree(imported, run)
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", target, "--root", str(root),
                                    "--crops", "seed-boxes", "--boxes", str(path), "--limit", str(n),
                                    "--scale", str(scale), "--rot", str(rot), "--no-progress", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "epe_x_mean_mm" in res.output
    (path,) = rs.result_files(run)  # named by the evaluation's identity (seed boxes, scale, rot, limit)
    frame = rs.read_results(path)
    frame = frame[frame["root"] == ("palm" if target == "stb" else "wrist")]
    assert set(frame["crop_backend"]) == {"cv2"} and set(frame["test_rot_deg"]) == {rot}
    theirs = [_their_epe_mm(target, reader[i], boxes[i], their_ckpt[1], scale, rot) for i in range(n)]
    assert min(theirs) > 1.0  # a real error to compare, not a trivial zero
    np.testing.assert_allclose(frame["epe_mm"].to_numpy(), theirs, atol=1e-4, rtol=1e-6)
