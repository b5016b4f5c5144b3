"""`hcdg sweep --shared-batches`: one loader for the points that see the same batches, each
point's results equal to its solo run, resume and failures per point."""

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.aug_configs import ColorJitter
from hcdg.stages import sweep, train, train_loop, train_shared
from hcdg.stages.train_loop import STOP_ENV
from hcdg.store.checkpoints import list_checkpoints, load_model_state

#: Tiny network, tiny batches; 5 steps cross no epoch (40 images / 4), validation every 2.
FLAGS = ["--steps", 5, "--width-mult", 0.125, "--input-size", 32, "--batch-size", 4, "--workers", 0,
         "--no-progress", "--val-fraction", 0.2, "--log-every", 1, "--val-every", 2, "--checkpoint-every", 2]
TIMING = ["samples_per_s", "wall_s"]


def _args(store, root, out, *extra):
    return [str(a) for a in ["sweep", "--shared-batches", "--store", store, "--root", root, "--out", out, *FLAGS, *extra]]


def _metrics(run_dir):
    return pd.read_parquet(run_dir / "metrics.parquet").drop(columns=TIMING)


def _assert_same_run(a, b):
    pd.testing.assert_frame_equal(_metrics(a), _metrics(b), check_exact=True)
    wa, _ = load_model_state(a)
    wb, _ = load_model_state(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_batch_key_groups_points_that_see_the_same_batches():
    base = train.TrainConfig(root="r", out="o", store="s")
    cfgs = [train.replace(base, ratio=0.6), train.replace(base, ratio=0.9, lambda_con=1.0),
            train.replace(base, mode="baseline"), train.replace(base, seed=1), train.replace(base, batch_size=16),
            train.replace(base, input_size=128), train.replace(base, mode="ie", precision="bf16", lr=1e-3)]
    assert train_shared.group_by_batches(cfgs) == [[0, 1, 2, 6], [3], [4], [5]]
    # without augmentation, its magnitudes do not split a group
    a = train.replace(base, augment=False)
    b = train.replace(base, augment=False, color=ColorJitter(brightness=0.5))
    assert train_shared.batch_key(a) == train_shared.batch_key(b) != train_shared.batch_key(base)


def test_shared_sweep_equals_solo_runs_and_resumes_per_point(synth_freihand, synth_freihand_store, tmp_path,
                                                             monkeypatch):
    import dataclasses

    from hcdg.pipeline import network_config

    real_mc = network_config.model_config  # dropout on in the lifting nets: the forward draws from the global RNG,
    monkeypatch.setattr(network_config, "model_config",  # so each point must see its own stream
                        lambda *a, **kw: dataclasses.replace(real_mc(*a, **kw), prior_dropout=True))
    out = tmp_path / "sw"
    args = _args(synth_freihand_store, synth_freihand, out, "--mode", "baseline,ie+te", "--ratio", "0.4,0.9")
    loaders = []
    real_loader = train_loop.train_loader
    monkeypatch.setattr(train_shared, "train_loader", lambda *a: loaders.append(a[1:]) or real_loader(*a))

    # killed after step 3 (all points checkpointed at step 2) ...
    monkeypatch.setenv(STOP_ENV, "3")
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)
    monkeypatch.delenv(STOP_ENV)
    names = ["mode=baseline", "mode=ie+te,ratio=0.4", "mode=ie+te,ratio=0.9"]
    assert all(list_checkpoints(out / n)[-1].name == "step-00000002" for n in names)
    assert loaders == [(0, 5)]  # one loader for the three points (the baseline uses no store rows)
    # ... one point's folder lost entirely: it restarts at 0 while the others resume at 2
    import shutil

    shutil.rmtree(out / names[2])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert loaders[1:] == [(0, 5)] and "3 point(s) from one loader" in res.output
    table = pd.read_parquet(out / "sweep.parquet")
    assert table["point"].tolist() == names and table["status"].tolist() == ["trained"] * 3
    assert table["group"].tolist() == [1, 1, 1] and table["steps"].tolist() == [5, 5, 5]

    # every point equals the same run trained alone with `hcdg train`
    for name, (_, _, cfg) in zip(names, sweep.grid(sweep.SweepConfig(
            out=str(out), base=train.TrainConfig(
                store=str(synth_freihand_store), root=str(synth_freihand), steps=5, width_mult=0.125, input_size=32,
                batch_size=4, workers=0, progress=False, val_fraction=0.2, log_every=1, val_every=2,
                checkpoint_every=2),
            mode=("baseline", "ie+te"), ratio=(0.4, 0.9)))):
        solo = tmp_path / "solo" / name
        train.run(train.replace(cfg, out=str(solo), resume=False))
        _assert_same_run(out / name, solo)
        assert json.loads((out / name / "done.json").read_text())["val_epe_mm"] == pytest.approx(
            json.loads((solo / "done.json").read_text())["val_epe_mm"], abs=0)
    assert _metrics(out / names[1])["loss"].tolist() != _metrics(out / names[2])["loss"].tolist()

    again = CliRunner().invoke(main, args)  # all finished: nothing trains
    assert again.exit_code == 0 and len(loaders) == 2
    assert pd.read_parquet(out / "sweep.parquet")["status"].tolist() == ["skipped (finished)"] * 3


def test_a_failing_point_stops_alone_with_its_reason(synth_freihand, synth_freihand_store, tmp_path, monkeypatch):
    from hcdg.pipeline import objective

    real = objective.loss_terms

    def poisoned(cfg, *a, **kw):
        total, terms = real(cfg, *a, **kw)
        step = a[3]
        return (total * float("nan"), terms) if cfg.ratio == 0.9 and step == 2 else (total, terms)

    monkeypatch.setattr(objective, "loss_terms", poisoned)
    out = tmp_path / "sw"
    res = CliRunner().invoke(main, _args(synth_freihand_store, synth_freihand, out, "--ratio", "0.4,0.9"))
    assert res.exit_code == 1 and "Traceback" not in res.output
    last = res.output.strip().splitlines()[-1]
    assert "sweep point ratio=0.9: step 3: the loss is nan" in last
    table = pd.read_parquet(out / "sweep.parquet")
    assert table["status"].tolist()[0] == "trained" and table["status"].tolist()[1].startswith("failed: step 3")
    assert (out / "ratio=0.4" / "done.json").is_file() and not (out / "ratio=0.9" / "done.json").exists()
    assert list_checkpoints(out / "ratio=0.9")[-1].name == "step-00000002"  # the last good state
    assert not (out / "ratio=0.9" / ".hcdg-lock").exists()  # its lock was released


def test_shared_batches_refuses_local_ddp(synth_freihand, synth_freihand_store, tmp_path):
    res = CliRunner().invoke(main, _args(synth_freihand_store, synth_freihand, tmp_path / "sw", "--ratio", "0.4,0.9",
                                         "--nproc", "2"))
    assert res.exit_code == 1 and "--shared-batches: --nproc 2" in res.output and "Traceback" not in res.output


def test_replay_batches_decodes_once_within_budget():
    batches = [{"x": torch.full((2, 3), float(i))} for i in range(3)]
    r = train_shared.ReplayBatches(batches, budget_bytes=1 << 20)
    assert [b["x"][0, 0].item() for b in r] == [0, 1, 2] and [b["x"][0, 0].item() for b in r] == [0, 1, 2]
    assert r.passes == 1
    small = train_shared.ReplayBatches(batches, budget_bytes=30)
    list(small), list(small)
    assert small.passes == 2 and small.cache is None
