"""An evaluation's identity names its files: a quick check never replaces the reference results,
and `hcdg report` never pairs rows of different checkpoints or sample limits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.model import HandPoseNet, ModelConfig
from hcdg.pipeline.transforms import CropConfig
from hcdg.stages import eval as ev
from hcdg.store import eval_files as ef
from hcdg.store import results as rs
from hcdg.store.checkpoints import config_hash, save_checkpoint, save_model
from hcdg.store.runs import prepare_run


def _run(folder: Path, mode: str, seed: int) -> Path:
    """A finished run (fresh narrow network as model.safetensors) with a step-5 checkpoint
    holding other weights."""
    cfg = {"mode": mode, "width_mult": 0.125, "input_size": 32, "sigma_px": 10.0, "crop_scale": 1.0,
           "combine": "concat", "ratio": 0.6, "aug": "clip"}
    chash = config_hash(cfg)
    prepare_run(folder, stage="train", config=cfg, seed=0, extra={"config_hash": chash})
    torch.manual_seed(seed)
    net = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32, branch2=False))
    opt = torch.optim.Adam(net.parameters())
    save_checkpoint(folder, step=5, epoch=0, model_state=net.state_dict(), optimizer_state=opt.state_dict(),
                    cfg_hash=chash)
    torch.manual_seed(seed + 100)
    net = HandPoseNet(ModelConfig(width_mult=0.125, input_size=32, branch2=False))
    save_model(folder, net.state_dict(), {"model_config": to_dict(ModelConfig(width_mult=0.125, input_size=32)),
                                          "config_hash": chash, "step": 10, "crop": to_dict(CropConfig(input_size=32))})
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synth_rhd) -> dict[str, Path]:
    parent = tmp_path_factory.mktemp("runs")
    out = {"baseline": _run(parent / "baseline", "baseline", 0), "ours": _run(parent / "ours", "ie+te", 1)}
    for run in out.values():
        res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(synth_rhd),
                                        "--no-progress"])  # fmt: skip
        assert res.exit_code == 0, res.output
    return out


def _report(runs, out: Path) -> pd.DataFrame:
    res = CliRunner().invoke(main, ["report", *map(str, runs.values()), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return pd.read_parquet(out / "tables" / "paired.parquet")


def test_the_issue_sequence_leaves_the_report_unchanged(runs, synth_rhd, tmp_path):
    before = _report(runs, tmp_path / "r1")
    assert len(before) and set(before["checkpoint"]) == {"final"} and set(before["limit"]) == {"all"}
    ref = rs.results_path(runs["ours"], "rhd")
    ref_bytes = ref.read_bytes()
    # the issue's quick check: an early checkpoint (as `ls` names it, and as a step number) on 4 samples
    for ck in ("step-00000005", "5", str(runs["ours"] / "checkpoints" / "step-00000005")):
        res = CliRunner().invoke(main, ["eval", "--run", str(runs["ours"]), "--target", "rhd", "--root",
                                        str(synth_rhd), "--checkpoint", ck, "--limit", "4", "--no-progress"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "rhd--step-00000005--limit-4.parquet" in res.output and "does not compare it" in res.output
    assert ref.read_bytes() == ref_bytes  # the reference results are untouched
    quick = rs.read_summary(rs.summary_path(runs["ours"], "rhd--step-00000005--limit-4"))
    assert set(quick["checkpoint"]) == {"step-00000005"} and set(quick["checkpoint_step"]) == {5}
    assert set(quick["limit"]) == {"4"} and quick["n_samples"].eq(4).all()
    full = rs.read_summary(rs.summary_path(runs["ours"], "rhd"))
    assert set(full["checkpoint"]) == {"final"} and set(full["checkpoint_step"]) == {10} and set(full["limit"]) == {"all"}

    after = _report(runs, tmp_path / "r2")
    pd.testing.assert_frame_equal(before, after)
    html = (tmp_path / "r2" / "report.html").read_text()
    assert "rhd--step-00000005--limit-4.parquet" in html  # named as set aside


def test_paired_table_never_pairs_different_checkpoints_or_limits(runs, synth_rhd):
    from hcdg.store import paired

    ev.run(ev.EvalConfig(run=str(runs["baseline"]), target="rhd", root=str(synth_rhd), limit=4, progress=False))
    table = paired.sample_epe_table(list(runs.values()), reference_only=False)
    assert {"final", "step-00000005"} <= set(table["checkpoint"]) or set(table["limit"]) >= {"all", "4"}
    base = paired.group_key({**_cfg_of(runs["baseline"])})
    diffs = paired.paired_differences(table, base)
    for (ck, lim), rows in diffs.groupby(["checkpoint", "limit"]):
        # each pair is within one checkpoint/limit; the limit-4 pair has 4 samples
        assert rows["n_samples"].eq(4 if lim == "4" else rows["n_samples"].iloc[0]).all()
    assert ("step-00000005", "4") not in set(zip(diffs["checkpoint"], diffs["limit"]))  # baseline has no such eval


def _cfg_of(run: Path) -> dict:
    from hcdg.store.runs import read_run

    return read_run(run)["config"]


def test_overwrite_of_another_evaluation_is_refused_without_force(runs, synth_rhd):
    run = runs["baseline"]
    ref = rs.results_path(run, "rhd")
    before = ref.read_bytes()
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(synth_rhd),
                                    "--protocol", "pa", "--no-progress"])  # fmt: skip
    assert res.exit_code == 1 and "refusing to replace" in res.output and "--force" in res.output
    assert len(res.output.strip().splitlines()) == 1 and ref.read_bytes() == before
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(synth_rhd),
                                    "--protocol", "pa", "--no-progress", "--force"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(rs.read_results(ref)["protocol"]) == {"pa"}
    # the same evaluation again replaces its own files without a word
    assert CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(synth_rhd),
                                     "--protocol", "pa", "--no-progress"]).exit_code == 0  # fmt: skip


def test_unknown_checkpoint_names_what_is_there(runs):
    with pytest.raises(Exception, match=r"checkpoint 7: no such checkpoint .*present: step-00000005"):
        ev.load_run_model(runs["ours"], "7")


def test_stems_name_every_variant():
    ident = ef.EvalIdentity(checkpoint="final", target="stb", split="B1Counting", default_split=False,
                            crops="seed-boxes", boxes="STB_bbox.npy", limit=None, protocols=("pa",),
                            decoder="argmax", default_decoder="soft-argmax")  # fmt: skip
    assert ident.stem == "stb--split-B1Counting--seed-boxes--decoder-argmax"
    assert not ident.is_reference and not ef.is_reference_stem(ident.stem)
    assert ef.is_reference_stem("rhd--seed-boxes") and not ef.is_reference_stem("rhd--limit-3")


def test_freihand_submission_has_the_toolbox_layout(tmp_path, synth_freihand):
    import json

    import numpy as np

    run = _run(tmp_path / "run", "baseline", 0)
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "freihand", "--root", str(synth_freihand),
                                    "--write-submission", str(out), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"FreiHAND toolbox submission: {out}" in res.output and "expects 3960" in res.output
    xyz_list, verts_list = json.loads(out.read_text())
    frame = rs.read_results(rs.results_path(run, "freihand"))
    pick = frame[(frame.protocol == "2.5d-gtroot-gtbone") & (frame.root == "wrist")]
    assert len(xyz_list) == len(verts_list) == len(pick)
    np.testing.assert_allclose(np.asarray(xyz_list), rs.xyz_array(pick["pred_xyz_m"]), atol=1e-6)  # metres
    assert np.asarray(verts_list).shape == (len(pick), 778, 3)
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--target", "rhd", "--root", str(synth_freihand),
                                    "--write-submission", str(tmp_path / "x.json")])  # fmt: skip
    assert res.exit_code == 1 and "only with --target freihand" in res.output and not (tmp_path / "x.json").exists()
