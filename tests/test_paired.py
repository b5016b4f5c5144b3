"""Paired statistics against the baseline on constructed runs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hcdg.pipeline import stats
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.protocols import ProtocolResult
from hcdg.store import paired, results
from hcdg.store.runs import prepare_run

BASE_CFG = {"combine": "concat", "lambda_con": 0.1, "con_loss": "paper-literal", "aug": "clip"}


def _write_run(folder, config, seed, per_sample_mm, target="rhd"):
    """A run whose every joint of sample i is off by per_sample_mm[i] (gtroot-2.5d)."""
    n = len(per_sample_mm)
    gt = np.zeros((n, 21, 3)) + [0.0, 0.0, 0.5]
    err = np.repeat(np.asarray(per_sample_mm, float)[:, None], 21, axis=1)
    pred = gt + np.stack([err / 1000.0, np.zeros_like(err), np.zeros_like(err)], axis=-1)
    cfg = {**config, "seed": seed, "data_ids_sha256": f"ids-of-seed-{seed}"}
    run = prepare_run(folder, stage="train", config=cfg, seed=seed)
    frame = results.results_frame(
        run=folder.name, target=target, split="evaluation", sample_ids=[f"{i:04d}" for i in range(n)],
        results=[ProtocolResult("2.5d-gtroot-gtbone", "wrist", pred, gt, err)], config=cfg,
    )  # fmt: skip
    results.write_results(run, target, frame)
    return run


def _sweep(tmp_path, base_mm, shift_of_seed, seeds=(0, 1, 2)):
    """baseline and ie+te runs for each seed; ie+te = baseline + shift_of_seed(seed, base)."""
    for s in seeds:
        b = base_mm + s  # seeds move the baseline itself: only the pairing removes that
        _write_run(tmp_path / f"mode=baseline,seed={s}", {**BASE_CFG, "mode": "baseline"}, s, b)
        _write_run(tmp_path / f"mode=ie+te,seed={s}", {**BASE_CFG, "mode": "ie+te", "ratio": 0.6}, s,
                   b + shift_of_seed(s, b))  # fmt: skip
    return tmp_path


def test_identical_runs_give_zero_difference_and_an_interval_of_width_zero(tmp_path):
    base = np.random.default_rng(0).uniform(20, 60, size=200)
    _sweep(tmp_path, base, lambda s, b: 0.0)
    table = paired.paired_table([tmp_path])
    assert len(table) == 1
    row = table.iloc[0]
    assert row["n_samples"] == 200 and row["n_runs"] == 3 and row["n_baseline_runs"] == 3
    assert row["diff_mm"] == pytest.approx(0.0, abs=1e-12)
    assert row["ci_low_mm"] <= 0.0 <= row["ci_high_mm"] and row["ci_high_mm"] - row["ci_low_mm"] < 1e-9
    assert not row["beyond_noise_samples"] and not row["beyond_noise_seeds"]
    assert row["n_seeds_paired"] == 3 and row["seed_diff_mm"] == pytest.approx(0.0, abs=1e-12)
    assert row["n_resamples"] == stats.BOOTSTRAP_RESAMPLES


def test_constant_2mm_shift_gives_mean_2_with_a_tight_interval(tmp_path):
    base = np.random.default_rng(1).uniform(20, 60, size=150)
    _sweep(tmp_path, base, lambda s, b: 2.0)
    row = paired.paired_table([tmp_path]).iloc[0]
    assert row["diff_mm"] == pytest.approx(2.0, abs=1e-9)
    assert row["ci_low_mm"] == pytest.approx(2.0, abs=1e-9) and row["ci_high_mm"] == pytest.approx(2.0, abs=1e-9)
    assert row["beyond_noise_samples"] and row["beyond_noise_seeds"]
    assert row["seed_diff_mm"] == pytest.approx(2.0) and row["seed_std_mm"] == pytest.approx(0.0, abs=1e-9)
    assert row["epe_mm"] - row["baseline_epe_mm"] == pytest.approx(2.0)


def test_noisy_shift_interval_covers_it_with_the_expected_width(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.uniform(20, 60, size=400)
    noise = {s: rng.normal(0.0, 1.0, size=400) for s in range(3)}
    _sweep(tmp_path, base, lambda s, b: 2.0 + noise[s])
    row = paired.paired_table([tmp_path]).iloc[0]
    d = 2.0 + np.mean([noise[s] for s in range(3)], axis=0)  # seeds averaged per sample
    assert row["diff_mm"] == pytest.approx(d.mean())
    half = 1.96 * d.std() / np.sqrt(400)  # the normal-theory half width the bootstrap should approximate
    assert row["ci_low_mm"] < d.mean() < row["ci_high_mm"]
    assert (row["ci_high_mm"] - row["ci_low_mm"]) == pytest.approx(2 * half, rel=0.15)
    assert row["beyond_noise_samples"]
    # seeded: the same inputs give the same interval; another seed a slightly different one
    again = paired.paired_table([tmp_path]).iloc[0]
    assert again["ci_low_mm"] == row["ci_low_mm"] and again["ci_high_mm"] == row["ci_high_mm"]
    other = paired.paired_table([tmp_path], seed=1).iloc[0]
    assert other["ci_low_mm"] != row["ci_low_mm"]


def test_seed_interval_is_wide_when_seeds_disagree(tmp_path):
    base = np.random.default_rng(3).uniform(20, 60, size=100)
    _sweep(tmp_path, base, lambda s, b: {0: -3.0, 1: 1.0, 2: 5.0}[s])
    row = paired.paired_table([tmp_path]).iloc[0]
    assert row["diff_mm"] == pytest.approx(1.0)
    assert row["beyond_noise_samples"]  # every sample moved by +1 on average: the test set is not the noise
    assert row["seed_diff_mm"] == pytest.approx(1.0) and row["seed_std_mm"] == pytest.approx(4.0)
    assert row["seed_ci_low_mm"] < 0.0 < row["seed_ci_high_mm"] and not row["beyond_noise_seeds"]


def test_group_key_ignores_the_seed_only(tmp_path):
    cfg = {**BASE_CFG, "mode": "ie+te", "ratio": 0.6}
    assert paired.group_key({**cfg, "seed": 0, "data_ids_sha256": "a"}) == paired.group_key({**cfg, "seed": 5})
    assert paired.group_key({**cfg, "seed": 0}) != paired.group_key({**cfg, "ratio": 0.9, "seed": 0})


def test_baseline_must_be_found_or_named(tmp_path):
    _write_run(tmp_path / "a", {**BASE_CFG, "mode": "ie+te", "ratio": 0.6}, 0, [10.0, 20.0])
    b = _write_run(tmp_path / "b", {**BASE_CFG, "mode": "ie+te", "ratio": 0.9}, 0, [11.0, 22.0])
    with pytest.raises(HcdgError, match="exactly one `mode: baseline`"):
        paired.paired_table([tmp_path])
    row = paired.paired_table([tmp_path], baseline=b).iloc[0]
    assert row["runs"] == "a" and row["baseline_runs"] == "b" and row["diff_mm"] == pytest.approx(-1.5)
    assert np.isnan(row["seed_std_mm"]) and not row["beyond_noise_seeds"]  # one seed: no seed interval


def test_only_common_samples_are_paired(tmp_path):
    _write_run(tmp_path / "base", {**BASE_CFG, "mode": "baseline"}, 0, [10.0, 20.0, 30.0])
    _write_run(tmp_path / "ours", {**BASE_CFG, "mode": "ie+te", "ratio": 0.6}, 0, [9.0, 19.0])  # first 2 only
    row = paired.paired_table([tmp_path]).iloc[0]
    assert row["n_samples"] == 2 and row["diff_mm"] == pytest.approx(-1.0)


def test_bootstrap_and_t_interval_helpers():
    mean, lo, hi = stats.bootstrap_mean_ci(np.full(50, 3.0))
    assert (mean, lo, hi) == (3.0, 3.0, 3.0)
    assert all(np.isnan(stats.bootstrap_mean_ci(np.array([]))))
    m, sd, lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and sd == pytest.approx(1.0)
    assert hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert stats.excludes_zero(0.1, 0.2) and stats.excludes_zero(-0.2, -0.1)
    assert not stats.excludes_zero(0.0, 0.0) and not stats.excludes_zero(-0.1, 0.1)
