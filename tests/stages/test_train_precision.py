"""`--precision bf16|fp16`, `--compile`, `--channels-last`: each trains, resumes exactly, and keeps
losses, contrastive distances, canonical-frame maths and metrics in float32 (pipeline/precision.py).

Compiled runs here use the "aot_eager" backend (dynamo graph capture + AOTAutograd, eager
kernels): it exercises everything of `--compile` but the code generation, whose C++ build
takes minutes per graph on a 2-core CPU. The inductor rows are measured in
benchmarks/bench_step.py (docs/benchmarks.md), with their loss difference to eager.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import heatmap_loss, losses, precision
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.stages import train
from hcdg.stages.train_loop import STOP_ENV
from hcdg.store.checkpoints import latest_checkpoint, load_checkpoint, load_model_state

#: The smallest network the data allows (32 px crops, 4x4 maps), ie+te so L_con runs too.
#: lr 1e-3: the loss visibly falls within 20 steps at this size.
SMALL = dict(width_mult=0.125, input_size=32, batch_size=4, workers=0, progress=False, val_fraction=0.2,
             mode="ie+te", steps=20, log_every=1, checkpoint_every=5, lr=1e-3)
#: The execution settings under test (fp32 eager is the reference). 20 steps where compiled and
#: eager are compared, 12 elsewhere (bf16/fp16 autocast is emulated on this CPU: 2-3x slower).
SETTINGS = {
    "fp32": {},
    "compiled": {"compile": "aot_eager"},
    "bf16": {"precision": "bf16", "steps": 12},
    "fp16": {"precision": "fp16", "steps": 12},
    "bf16+channels-last": {"precision": "bf16", "channels_last": True, "steps": 12},
}


def _cfg(root, store, out, **kw):
    return train.TrainConfig(root=str(root), store=str(store), out=str(out), **{**SMALL, **kw})


def _losses(run_dir) -> pd.DataFrame:
    df = pd.read_parquet(run_dir / "metrics.parquet")
    cols = ["step", "loss", "loss_heat", "loss_pose", "loss_con", "d_pos", "d_neg", "grad_scale"]
    return df[df.kind == "train"][cols].reset_index(drop=True)


def _cpu_has_amx_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return "amx_bf16" in fh.read()
    except OSError:
        return False


#: On CPUs with AMX-BF16 (found 2026-12-02: Xeon with amx_bf16), torch 2.14.1's bf16 autocast
#: gives NaN in one conv's weight gradient at step 1 of this tiny run (`prior.net.convs.10.weight`,
#: 144 of 2,304 entries; loss finite; fp32 and emulated bf16 fine). hcdg refuses that step with
#: its one-line error (what a user gets); these tests then xfail instead of erroring, naming why.
AMX_BF16_NAN = "bf16 autocast on an AMX-BF16 CPU: NaN conv weight gradient at step 1 (kernel issue, refused by hcdg)"


class _Runs(dict):
    def __getitem__(self, name):
        value = super().__getitem__(name)
        if value is None:
            pytest.xfail(AMX_BF16_NAN)
        return value


@pytest.fixture(scope="module")
def runs(synth_freihand, synth_freihand_store, tmp_path_factory):
    """name -> run folder of the 20-step run with that setting (trained once per module)."""
    base = tmp_path_factory.mktemp("precision")
    out = _Runs()
    for name, kw in SETTINGS.items():
        try:
            train.run(_cfg(synth_freihand, synth_freihand_store, base / name, **kw))
        except HcdgError as err:
            if not (kw.get("precision") == "bf16" and _cpu_has_amx_bf16() and "gradient is NaN" in str(err)):
                raise
            out[name] = None
            continue
        out[name] = base / name
    return out


@pytest.mark.parametrize("name", [n for n in SETTINGS if n != "fp32"])
def test_each_setting_trains_like_fp32(runs, name):
    got = _losses(runs[name])
    n = SETTINGS[name].get("steps", SMALL["steps"])
    ref = _losses(runs["fp32"]).iloc[:n]
    assert got["step"].tolist() == list(range(1, n + 1))
    assert np.isfinite(got[["loss", "loss_heat", "loss_pose", "loss_con"]].to_numpy()).all()
    first, last = got["loss"].iloc[:3].mean(), got["loss"].iloc[-3:].mean()
    assert last < 0.9 * first, f"{name}: loss {first:.4f} -> {last:.4f} did not fall"
    # Same data, prompts and initialisation: the curve follows fp32's to within the rounding
    # of the setting (bf16: 8 mantissa bits, fp16: 11) -- fp16 only while no step was skipped.
    rel = float(np.abs((got["loss"].to_numpy() - ref["loss"].to_numpy()) / ref["loss"].to_numpy()).max())
    tol = {"bf16": 0.05, "bf16+channels-last": 0.05, "fp16": 0.01, "compiled": 1e-4}[name]
    assert rel < tol, f"{name}: loss differs from fp32 eager by up to {rel:.2e} (tolerance {tol})"
    if name == "fp16":  # the scale is logged; from FP16_INIT_SCALE no step overflowed here
        assert (got["grad_scale"] == precision.FP16_INIT_SCALE).all(), got["grad_scale"].tolist()
    else:
        assert got["grad_scale"].isna().all()
    done = json.loads((runs[name] / "done.json").read_text())
    assert np.isfinite(done["val_epe_mm"]) and np.isfinite(done["val_2d_px"])
    recorded = json.loads((runs[name] / "run.json").read_text())["config"]
    for key, value in SETTINGS[name].items():
        assert key == "steps" or recorded[key] == value


def test_compiled_and_eager_give_the_same_losses_over_20_steps(runs):
    # Stated tolerance (docs/training.md): relative 1e-5 per step over 20 Adam steps (the graph
    # is the same maths; AOTAutograd's decompositions may round differently in the last bits).
    a, b = _losses(runs["fp32"]), _losses(runs["compiled"])
    np.testing.assert_allclose(b["loss"].to_numpy(), a["loss"].to_numpy(), rtol=1e-5)
    wa, _ = load_model_state(runs["fp32"])
    wb, _ = load_model_state(runs["compiled"])
    assert wa.keys() == wb.keys()  # the compiled wrapper never reaches the saved weights' names


def test_fp16_checkpoints_hold_the_loss_scale(runs):
    ck = load_checkpoint(latest_checkpoint(runs["fp16"]))
    assert ck.extra["grad_scaler"]["scale"] > 0
    assert "grad_scaler" not in load_checkpoint(latest_checkpoint(runs["bf16"])).extra


@pytest.mark.slow  # kill + resume + full run per setting: 23-43 s each (i21's measurement, shared core)
@pytest.mark.parametrize("name", ["fp16", "compiled", "bf16+channels-last"])
def test_killed_and_resumed_run_equals_the_full_run(runs, synth_freihand, synth_freihand_store, tmp_path,
                                                    monkeypatch, name):
    full = runs[name]  # xfails first where the setting cannot train here (AMX_BF16_NAN)
    cfg = _cfg(synth_freihand, synth_freihand_store, tmp_path / "cut", **SETTINGS[name])
    monkeypatch.setenv(STOP_ENV, "7")  # newest checkpoint: step 5 (fp16: with its loss scale)
    with pytest.raises(SystemExit):
        train.run(cfg)
    monkeypatch.delenv(STOP_ENV)
    train.run(train.replace(cfg, resume=True))
    pd.testing.assert_frame_equal(_losses(tmp_path / "cut"), _losses(full), check_exact=True)


def test_resume_refuses_another_precision_in_one_line(runs, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs["bf16"], folder)
    root, store = (json.loads((folder / "run.json").read_text())["runtime"][k] for k in ("root", "store"))
    for flag, value in (("--precision", "fp32"), ("--compile", "aot_eager"), ("--channels-last", None)):
        args = ["train", "--root", root, "--store", store, "--out", str(folder), "--resume", "--precision", "bf16",
                "--width-mult", "0.125", "--input-size", "32", "--batch-size", "4", "--workers", "0",
                "--val-fraction", "0.2", "--steps", "20", "--lr", "0.001", "--no-progress"]
        args += [flag] if value is None else [flag, value]
        res = CliRunner().invoke(main, args)
        assert res.exit_code != 0
        line = [ln for ln in res.output.strip().splitlines() if ln]
        assert len(line) == 1 and "holds a different run" in line[0], res.output
        assert flag.lstrip("-").replace("-", "_") in line[0], line[0]


def test_losses_canonical_maths_and_metrics_stay_float32_under_autocast(synth_freihand, synth_freihand_store,
                                                                        tmp_path, monkeypatch):
    seen: dict[str, set] = {}

    def spy(module, name):
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            res = real(*args, **kwargs)
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            tensors += [t for a in args if isinstance(a, list) for t in a]
            seen.setdefault(name, set()).update(t.dtype for t in tensors if t.is_floating_point())
            seen.setdefault(name + " ->", set()).add(res.dtype)
            if kwargs.get("stats"):
                seen.setdefault("contrastive stats", set()).update(v.dtype for v in kwargs["stats"].values())
            return res

        monkeypatch.setattr(module, name, wrapped)

    spy(losses, "pose_loss")
    spy(losses, "contrastive_loss")
    spy(heatmap_loss, "heatmap_loss")
    spy(heatmap_loss, "argmax_uv")  # the 2D validation metric's input
    train.run(_cfg(synth_freihand, synth_freihand_store, tmp_path / "run", precision="fp16", steps=2,
                   compile="off"))
    assert seen and all(dtypes == {torch.float32} for dtypes in seen.values()), seen

    # the network itself: convolutions in fp16/bf16, the canonical frame in float32
    model = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32))
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            out = model(torch.rand(2, 3, 32, 32), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        assert out["heatmaps"][-1].dtype == dtype  # autocast is on
        assert out["canon"].dtype == out["rot"].dtype == out["xyz_rel_norm"].dtype == torch.float32


def test_compile_falls_back_to_eager_with_one_line():
    lines = []
    model = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32))
    wrapped = precision.compile_module(model, "aot_eager", warn=lines.append)

    import torch._dynamo.exc as dynamo_exc

    def broken(*args, **kwargs):
        raise dynamo_exc.BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler found"), None)

    wrapped.fn = broken  # what a missing toolchain looks like at the first call
    out = wrapped(torch.rand(2, 3, 32, 32), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert out["xyz_rel_norm"].shape == (2, 21, 3) and wrapped.compiled is False
    assert len(lines) == 1 and "--compile aot_eager" in lines[0] and "training eagerly" in lines[0]
    with pytest.raises(HcdgError, match="must be"):  # errors that are not compile failures pass through
        precision.compile_module(model, "aot_eager", warn=lines.append)(torch.rand(2, 3, 16, 16), torch.zeros(2, 2))


@pytest.mark.slow  # two spawned processes: ~20 s of imports and process-group set-up
def test_two_gloo_processes_train_in_bf16(synth_freihand, synth_freihand_store, tmp_path):
    # Baseline mode: DDP's averaged gradient equals the global batch's (test_train_ddp.py), so the
    # two-process bf16 curve follows the one-process bf16 curve to within bf16 rounding.
    kw = dict(mode="baseline", steps=3, precision="bf16")
    try:
        one = train.run(_cfg(synth_freihand, synth_freihand_store, tmp_path / "one", **kw))
    except HcdgError as err:
        if _cpu_has_amx_bf16() and "gradient is NaN" in str(err):
            pytest.xfail(AMX_BF16_NAN)
        raise
    two = train.run(_cfg(synth_freihand, synth_freihand_store, tmp_path / "two", nproc=2, **kw))
    assert one["world_size"] == 1 and two["world_size"] == 2
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert np.isfinite(b["loss"]).all()
    np.testing.assert_allclose(b["loss"].to_numpy(), a["loss"].to_numpy(), rtol=0.05)


def test_embed_store_records_the_precision_of_its_features(synth_freihand_store):
    from hcdg.store import features

    assert features.read_fingerprint(synth_freihand_store)["encoder"]["precision"] == "fp32"
