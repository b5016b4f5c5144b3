"""`hcdg sweep`: grid naming, one run folder per point, finished points skipped."""

import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import sweep, train


def test_grid_names_points_and_drops_settings_a_point_ignores():
    base = train.TrainConfig(root="r", out="o", store="s")
    cfg = sweep.SweepConfig(out="SW", base=base, mode=("baseline", "ie", "ie+te"), ratio=(0.9, 0.6),
                            lambda_con=(0.1,))
    names = [n for n, _, _ in sweep.grid(cfg)]
    # Table 4a: the baseline ignores ratio and L_con, ie ignores ratio: 1 + 1 + 2 runs, not 6.
    assert names == ["mode=baseline", "mode=ie,lambda_con=0.1", "mode=ie+te,ratio=0.9,lambda_con=0.1",
                     "mode=ie+te,ratio=0.6,lambda_con=0.1"]
    points = {n: c for n, _, c in sweep.grid(cfg)}
    assert points["mode=ie+te,ratio=0.9,lambda_con=0.1"].ratio == 0.9
    assert points["mode=ie+te,ratio=0.9,lambda_con=0.1"].out == "SW/mode=ie+te,ratio=0.9,lambda_con=0.1"
    assert all(c.resume for c in points.values())
    with pytest.raises(HcdgError, match="--ratio"):
        sweep.grid(sweep.SweepConfig(out="SW", base=base, ratio=(0.6, 1.5)))
    with pytest.raises(HcdgError, match="at least one axis"):
        sweep.grid(sweep.SweepConfig(out="SW", base=base))


def test_sweep_runs_each_point_once_and_skips_finished_points(synth_freihand, synth_freihand_store, tmp_path,
                                                              monkeypatch):
    out = tmp_path / "sw"
    args = ["sweep", "--ratio", "0.6,0.9", "--store", synth_freihand_store, "--root", synth_freihand, "--out", out,
            "--steps", 2, "--width-mult", 0.25, "--input-size", 64, "--batch-size", 4, "--workers", 0,
            "--no-progress", "--val-fraction", 0.2]
    args = [str(a) for a in args]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    table = pd.read_parquet(out / "sweep.parquet")
    assert table["point"].tolist() == ["ratio=0.6", "ratio=0.9"]
    assert table["status"].tolist() == ["trained", "trained"] and table["steps"].tolist() == [2, 2]
    assert (out / "ratio=0.9" / "done.json").is_file() and "ratio=0.9" in first.output
    assert table["val_epe_mm"].notna().all()

    # Unfinish one point (as if killed after its last checkpoint): only that one is redone.
    (out / "ratio=0.9" / "done.json").unlink()
    calls = []
    real_run = train.run
    monkeypatch.setattr(train, "run", lambda cfg: calls.append(cfg.out) or real_run(cfg))
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    table2 = pd.read_parquet(out / "sweep.parquet")
    assert calls == [str(out / "ratio=0.9")]
    assert table2["status"].tolist() == ["skipped (finished)", "trained"]
    assert table2["val_epe_mm"].tolist() == pytest.approx(table["val_epe_mm"].tolist())

    calls.clear()
    third = CliRunner().invoke(main, args)
    assert third.exit_code == 0 and calls == []  # everything finished: nothing trains


def test_seed_is_an_axis_that_combines_with_any_other():
    base = train.TrainConfig(root="r", out="o", store="s")
    cfg = sweep.SweepConfig(out="SW", base=base, mode=("baseline", "ie+te"), ratio=(0.6,), seed=(0, 1, 2))
    points = sweep.grid(cfg)
    names = [n for n, _, _ in points]
    assert names == [f"mode=baseline,seed={s}" for s in range(3)] + [f"mode=ie+te,ratio=0.6,seed={s}" for s in range(3)]
    assert [c.seed for _, _, c in points] == [0, 1, 2, 0, 1, 2]
    only = sweep.grid(sweep.SweepConfig(out="SW", base=base, seed=(3, 4)))
    assert [(n, c.seed) for n, _, c in only] == [("seed=3", 3), ("seed=4", 4)]
    with pytest.raises(HcdgError, match="--seed: a value is repeated"):
        sweep.grid(sweep.SweepConfig(out="SW", base=base, seed=(1, 1)))


def test_sweep_seed_flag_takes_a_comma_list_of_integers(tmp_path):
    res = CliRunner().invoke(main, ["sweep", "--seed", "0,x", "--root", str(tmp_path), "--out", str(tmp_path / "s")])
    assert res.exit_code != 0 and "--seed" in res.output and "Traceback" not in res.output
