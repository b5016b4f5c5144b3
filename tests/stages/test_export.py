"""`hcdg export`: ONNX and TorchScript files equal to `hcdg.load_model(...).predict` to 1e-4,
batch 1 and 5, with the input normalisation inside the graph and a JSON sidecar."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import hcdg
from hcdg.cli import main
from hcdg.pipeline.authors import ARCH_OPTIONS
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.transforms import CropConfig
from hcdg.store.checkpoints import config_hash, save_model
from hcdg.store.runs import prepare_run
from tests.helpers.runs import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny hcdg network (xyz) and a tiny network in the authors' layout (uvd, TF-SAME, [0,1] input)."""
    base = tmp_path_factory.mktemp("runs")
    out = {"xyz": make_run(base / "xyz")}
    folder = base / "authors-tiny"
    cfg = {"mode": "baseline", "width_mult": 0.125, "input_size": 32, "sigma_px": 10.0, "crop_scale": 1.0}
    chash = config_hash(cfg)
    prepare_run(folder, stage="train", config=cfg, seed=0, extra={"config_hash": chash})
    mcfg = ModelConfig(width_mult=0.125, input_size=32, branch2=False, output="uvd", **ARCH_OPTIONS)
    torch.manual_seed(1)
    save_model(folder, HandPoseNet(mcfg).state_dict(), {"model_config": to_dict(mcfg), "config_hash": chash, "step": 1,
                                                        "crop": to_dict(CropConfig(input_size=32))})
    out["uvd"] = folder
    return out


def _crops(b: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(b, size, size, 3), dtype=np.uint8)


def _eager(run: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """hcdg.load_model(...).predict on the same crops, fed as the docs say: float [0,1] NCHW, right hands."""
    net = hcdg.load_model(run)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    side = torch.tensor([[0.0, 1.0]]).expand(len(crops), 2)
    with torch.inference_mode():
        out = net.predict(x, side)
    return out["xyz_rel_norm"].numpy(), out["heatmaps"][-1].numpy()


def _export(run: Path, fmt: str, out: Path, *extra: str) -> dict:
    res = CliRunner().invoke(main, ["export", "--run", str(run), "--format", fmt, "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    assert "checked against the eager model" in res.output or "not checked" in res.output
    return json.loads(out.with_name(out.name + ".json").read_text())


@pytest.mark.parametrize("kind", ["xyz", "uvd"])
def test_onnx_round_trip_equals_eager_with_dynamic_batch(runs, kind, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'hcdg[export]')")
    out = tmp_path / "hand.onnx"
    side = _export(runs[kind], "onnx", out, "--dynamic-batch")
    names = ["xyz_rel_norm" if kind == "xyz" else "uvd", "heatmaps"]
    assert [o["name"] for o in side["outputs"]] == names and side["input"]["shape"] == ["batch", 32, 32, 3]
    assert side["input"]["dtype"] == "uint8" and side["joint_names"][0] == "wrist" and len(side["joint_names"]) == 21
    assert side["network"]["output"] == kind and max(side["check"]["max_abs_diff"]) <= 1e-4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"] and [o.name for o in sess.get_outputs()] == names
    for b in (1, 5):
        crops = _crops(b, 32, seed=b)
        got = sess.run(None, {"image": crops})
        ref = _eager(runs[kind], crops)
        assert got[0].shape == (b, 21, 3) and got[1].shape == (b, 21, 4, 4)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got[1], ref[1], atol=1e-4, rtol=0)


def test_torchscript_round_trip_equals_eager_for_batch_1_and_5(runs, tmp_path):
    out = tmp_path / "hand.pt"
    side = _export(runs["xyz"], "torchscript", out, "--dynamic-batch")
    assert side["file_format"] == "torchscript" and side["check"]["batches"] == [1, 5]
    ts = torch.jit.load(str(out))
    for b in (1, 5):
        crops = _crops(b, 32, seed=10 + b)
        with torch.inference_mode():
            got = [t.numpy() for t in ts(torch.from_numpy(crops))]
        ref = _eager(runs["xyz"], crops)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got[1], ref[1], atol=1e-4, rtol=0)


def test_input_size_adds_a_resize_inside_the_graph(runs, tmp_path):
    out = tmp_path / "hand48.pt"
    side = _export(runs["xyz"], "torchscript", out, "--input-size", "48")
    assert side["input"]["shape"] == [1, 48, 48, 3] and "resize 48 -> 32" in side["input"]["normalisation"]
    crops = _crops(1, 48, seed=3)
    with torch.inference_mode():
        got = torch.jit.load(str(out))(torch.from_numpy(crops))[0].numpy()
        x = torch.nn.functional.interpolate(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0, size=(32, 32),
                                            mode="bilinear", align_corners=False)
        ref = hcdg.load_model(runs["xyz"]).predict(x, torch.tensor([[0.0, 1.0]]))["xyz_rel_norm"].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_bad_export_requests_are_one_line_errors(runs, tmp_path):
    runner = CliRunner()
    for args, text in (
        (["--out", str(tmp_path / "nope" / "x.onnx")], "does not exist"),
        (["--out", str(tmp_path / "x.onnx"), "--input-size", "4"], "--input-size"),
    ):
        res = runner.invoke(main, ["export", "--run", str(runs["xyz"]), "--format", "onnx", *args])
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code != 0 and len(lines) == 1 and text in lines[0], res.output
    res = runner.invoke(main, ["export", "--run", str(tmp_path / "none"), "--format", "onnx", "--out", str(tmp_path / "y.onnx")])
    assert res.exit_code != 0 and not list(tmp_path.glob("*.onnx*"))
