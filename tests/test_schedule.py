"""Training schedules (`--schedule`, `--lifting-input`, `--staged-steps`): per-step plans, the model's
lifting input, what a short run records and which parameters it trains."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from hcdg.cli import main
from hcdg.pipeline.config import ConfigError
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.schedule import StepPlan, step_plan
from hcdg.stages import train


@pytest.mark.parametrize(("schedule", "lifting_input", "step", "plan"), [
    ("joint", "pred", 0, StepPlan(True, True, "pred")),
    ("joint", "pred", 10_000, StepPlan(True, True, "pred")),
    ("staged", "pred", 0, StepPlan(False, False, "pred")),
    ("staged", "pred", 2, StepPlan(False, False, "pred")),
    ("staged", "pred", 3, StepPlan(True, True, "pred")),
    ("lifting-detached", "pred", 0, StepPlan(True, True, "detached")),
    ("lifting-detached", "pred", 99, StepPlan(True, True, "detached")),
    ("joint", "gt-then-pred", 2, StepPlan(True, True, "gt")),
    ("joint", "gt-then-pred", 3, StepPlan(True, True, "pred")),
    ("lifting-detached", "gt-then-pred", 0, StepPlan(True, True, "gt")),
    ("lifting-detached", "gt-then-pred", 3, StepPlan(True, True, "detached")),
])  # fmt: skip
def test_step_plan_switches_after_staged_steps(schedule, lifting_input, step, plan):
    assert step_plan(schedule, lifting_input, 3, step) == plan


def test_staged_steps_zero_is_the_second_stage_from_the_start():
    assert step_plan("staged", "pred", 0, 0) == StepPlan()
    assert step_plan("joint", "gt-then-pred", 0, 0) == StepPlan()


@pytest.mark.parametrize(("changes", "option"), [
    ({"schedule": "hand3d"}, "--schedule"),
    ({"lifting_input": "gt"}, "--lifting-input"),
    ({"staged_steps": -1}, "--staged-steps"),
    ({"schedule": "staged", "lifting_input": "gt-then-pred"}, "--lifting-input"),
])  # fmt: skip
def test_config_refuses_bad_schedules_naming_the_option(changes, option):
    with pytest.raises(ConfigError, match=f"^{option}"):
        train.TrainConfig(**changes)


def test_cli_refuses_staged_with_gt_lifting_in_one_line_before_writing(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--root", str(tmp_path), "--out", str(out), "--mode", "baseline",
                                    "--schedule", "staged", "--lifting-input", "gt-then-pred"])
    assert res.exit_code != 0 and "--lifting-input gt-then-pred" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def _net() -> HandPoseNet:
    torch.manual_seed(0)
    return HandPoseNet(ModelConfig(width_mult=0.125, input_size=32, branch2=False))


def _pose_grads(net: HandPoseNet, **kwargs) -> tuple[float, float]:
    """(|grad| over the CPM trunk, |grad| over PosePrior) of sum(xyz) alone (an L_pose stand-in)."""
    torch.manual_seed(1)
    image, side = torch.rand(2, 3, 32, 32), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    net.zero_grad(set_to_none=False)
    net(image, side, **kwargs)["xyz_rel_norm"].square().sum().backward()

    def norm(module):
        return float(sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None))

    return norm(net.posenet), norm(net.prior)


def test_detached_lifting_keeps_the_pose_gradient_off_the_heatmaps():
    net = _net()
    trunk, prior = _pose_grads(net)
    assert trunk > 0 and prior > 0
    trunk, prior = _pose_grads(net, detach_lifting=True)
    assert trunk == 0.0 and prior > 0


def test_lifting_maps_replace_the_predicted_ones_and_are_shape_checked():
    net = _net()
    image, side = torch.rand(2, 3, 32, 32), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    gt = torch.rand(2, 21, 4, 4)
    with torch.no_grad():
        a = net(image, side)
        b = net(image, side, lifting_maps=gt)
        c = net(torch.rand(2, 3, 32, 32), side, lifting_maps=gt)
    assert not torch.allclose(a["xyz_rel_norm"], b["xyz_rel_norm"])
    assert torch.equal(b["xyz_rel_norm"], c["xyz_rel_norm"])  # the pose reads only the given maps
    assert torch.equal(a["heatmaps"][-1], b["heatmaps"][-1])  # the maps are still the network's
    trunk, prior = _pose_grads(net, lifting_maps=gt)
    assert trunk == 0.0 and prior > 0
    with pytest.raises(HcdgError, match=r"lifting_maps must be \(B,21,4,4\)"):
        net(image, side, lifting_maps=torch.rand(2, 21, 8, 8))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from hcdg.stages.synth import SynthConfig
    from hcdg.stages.synth import run as synth_run

    root = tmp_path_factory.mktemp("sched") / "freihand"
    synth_run(SynthConfig(format="freihand", out=str(root), n=8, n_other=4, seed=0), progress=False)
    return root


def _run(root, out, **over) -> dict:
    cfg = train.TrainConfig(root=str(root), out=str(out), mode="baseline", steps=2, input_size=32, width_mult=0.125,
                            batch_size=4, workers=0, progress=False, log_every=1, val_fraction=0.25, **over)
    return train.run(cfg)


def test_staged_first_stage_trains_the_maps_only_and_is_recorded(tiny_root, tmp_path):
    _run(tiny_root, tmp_path / "joint")
    _run(tiny_root, tmp_path / "staged", schedule="staged", staged_steps=2)
    from hcdg.stages.train_loop import build_model

    torch.manual_seed(0)  # the runs' initialisation (TrainConfig.seed 0, stages.train_loop.setup_point)
    cfg = train.TrainConfig(mode="baseline", input_size=32, width_mult=0.125)
    start = build_model(cfg, None).state_dict()
    joint = load_file(str(tmp_path / "joint" / "model.safetensors"))
    staged = load_file(str(tmp_path / "staged" / "model.safetensors"))
    lifting = [k for k in start if k.startswith(("prior.", "viewpoint.")) and start[k].is_floating_point()]
    trunk = [k for k in start if k.startswith("posenet.") and start[k].is_floating_point()]
    assert lifting and trunk
    assert all(torch.equal(staged[k], start[k]) for k in lifting), "L_pose trained the lifting in stage one"
    assert any(not torch.equal(joint[k], start[k]) for k in lifting)
    assert any(not torch.equal(staged[k], start[k]) for k in trunk)
    record = json.loads((tmp_path / "staged" / "run.json").read_text())["config"]
    assert (record["schedule"], record["lifting_input"], record["staged_steps"]) == ("staged", "pred", 2)


def test_resume_refuses_another_schedule(tiny_root, tmp_path):
    _run(tiny_root, tmp_path / "r")
    with pytest.raises(HcdgError):
        _run(tiny_root, tmp_path / "r", schedule="lifting-detached", resume=True)
