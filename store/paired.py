"""Paired comparisons of evaluated runs: per-sample differences to a baseline, with intervals.

Runs are grouped by their config *without the seed* (`group_key`): the runs of one group
are repeats of one configuration. For each group other than the baseline and each
(target, split, protocol, root, crops) both evaluated, the per-sample EPE (over the joint
set, `metrics.sample_epe_mm`) is averaged over the group's runs, the baseline's likewise,
and their difference over the samples every run of both groups evaluated is summarised by
`pipeline.stats` (mean, seeded bootstrap interval over samples; t-interval over seeds
paired by seed when both sides have >= 2 of the same seeds). `stages.report` shows this
table beside the paper-shaped rows; `paired_table` returns it for run folders.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hcdg.pipeline import metrics, stats
from hcdg.pipeline.errors import HcdgError
from hcdg.store import results as rs
from hcdg.store.fingerprint import digest
from hcdg.store.runs import find_run_dirs, read_run

#: Config keys that do not make a different configuration: the seed, and the training ids
#: it selects (the held-out validation poses are a seeded draw, `train_data.split_train_val`).
SEED_KEYS = ("seed", "data_ids_sha256")
#: Columns identifying one evaluation a difference is taken within: rows of different
#: weights (``checkpoint``: "final" or "step-N") or sample limits are never paired.
EVAL_KEYS = ("target", "split", "protocol", "root", "crops", "checkpoint", "limit")

PAIRED_COLUMNS = (
    "group", "baseline_group", "runs", "baseline_runs", *EVAL_KEYS, "n_samples", "n_runs", "n_baseline_runs",
    "epe_mm", "baseline_epe_mm", "diff_mm", "ci_low_mm", "ci_high_mm", "beyond_noise_samples",
    "n_seeds_paired", "seed_diff_mm", "seed_std_mm", "seed_ci_low_mm", "seed_ci_high_mm", "beyond_noise_seeds",
    "n_resamples",
)  # fmt: skip


def group_key(config: Mapping[str, Any]) -> str:
    """12 hex characters naming a run config without its seed (`SEED_KEYS` dropped)."""
    return digest({k: v for k, v in config.items() if k not in SEED_KEYS})[:12]


def sample_epe_table(run_dirs: Iterable[str | Path], joints: str = "all",
                     reference_only: bool = True) -> pd.DataFrame:
    """One row per run x evaluation x sample: run, run_dir, group, seed, EVAL_KEYS, sample_id, epe_mm.

    `joints`: "all" (21 joints) or "visible" (only the visible ones; NaN when none are).
    `reference_only`: read only the evaluations of the finished models on every sample
    (`store.results.result_files`); False adds checkpoint and --limit evaluations (their
    ``checkpoint`` / ``limit`` keys keep them apart).
    """
    if joints not in rs.JOINT_SETS:
        raise HcdgError(f"joints: expected one of {', '.join(rs.JOINT_SETS)}, got {joints!r}")
    frames = []
    for run_dir in find_run_dirs(run_dirs):
        config = read_run(run_dir)["config"]
        for path in rs.result_files(run_dir, reference_only=reference_only):
            res = rs.read_results(path)
            mask = rs.visible_array(res) if joints == "visible" else None
            epe = metrics.sample_epe_mm(rs.errors_array(res), mask)
            frames.append(pd.DataFrame({
                "run": Path(run_dir).name, "run_dir": str(run_dir), "group": group_key(config),
                "seed": config.get("seed"), "target": res["target"].to_numpy(), "split": res["split"].to_numpy(),
                "protocol": res["protocol"].to_numpy(), "root": res["root"].to_numpy(),
                "crops": res["crops"].fillna("gt").to_numpy() if "crops" in res.columns else "gt",
                "checkpoint": res["checkpoint"].fillna("final").to_numpy() if "checkpoint" in res.columns else "final",
                "limit": res["limit"].fillna("all").to_numpy() if "limit" in res.columns else "all",
                "sample_id": res["sample_id"].to_numpy(), "epe_mm": epe,
            }))  # fmt: skip
    cols = ["run", "run_dir", "group", "seed", *EVAL_KEYS, "sample_id", "epe_mm"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _per_sample(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(sample x run EPE matrix with only the samples every run has, run dirs)."""
    wide = rows.pivot_table(index="sample_id", columns="run_dir", values="epe_mm", aggfunc="mean")
    return wide.dropna(), list(wide.columns)


def _seed_means(rows: pd.DataFrame, samples: pd.Index) -> dict[Any, float]:
    """seed -> mean EPE over `samples` (runs of one seed averaged)."""
    sel = rows[rows["sample_id"].isin(samples)]
    per_run = sel.groupby(["run_dir"]).agg(seed=("seed", "first"), epe=("epe_mm", "mean"))
    per_run = per_run[per_run["seed"].notna()]
    return per_run.groupby("seed")["epe"].mean().to_dict()


def paired_differences(
    table: pd.DataFrame,
    baseline_group: str,
    groups: Iterable[str] | None = None,
    n_resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """`PAIRED_COLUMNS` rows: each group (default: every group but the baseline) against
    `baseline_group`, per evaluation both have. `table` is `sample_epe_table`'s."""
    if table.empty:
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    if baseline_group not in set(table["group"]):
        raise HcdgError(f"baseline group {baseline_group!r}: no evaluated run has it")
    wanted = [g for g in (groups if groups is not None else pd.unique(table["group"])) if g != baseline_group]
    rows = []
    base_all = table[table["group"] == baseline_group]
    for g in wanted:
        mine_all = table[table["group"] == g]
        for key, mine in mine_all.groupby(list(EVAL_KEYS), sort=True, dropna=False):
            base = base_all
            for k, v in zip(EVAL_KEYS, key):
                base = base[base[k] == v]
            if base.empty:
                continue
            a, a_runs = _per_sample(mine)
            b, b_runs = _per_sample(base)
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            d = a.loc[common].mean(axis=1).to_numpy() - b.loc[common].mean(axis=1).to_numpy()
            mean, lo, hi = stats.bootstrap_mean_ci(d, n_resamples=n_resamples, seed=seed)
            sa, sb = _seed_means(mine, common), _seed_means(base, common)
            paired = sorted(set(sa) & set(sb))
            s_mean, s_sd, s_lo, s_hi = (stats.t_interval([sa[s] - sb[s] for s in paired]) if paired
                                        else (math.nan,) * 4)  # fmt: skip
            rows.append({
                "group": g, "baseline_group": baseline_group,
                "runs": ", ".join(sorted(mine.loc[mine["run_dir"].isin(a_runs), "run"].unique())),
                "baseline_runs": ", ".join(sorted(base.loc[base["run_dir"].isin(b_runs), "run"].unique())),
                **dict(zip(EVAL_KEYS, key)), "n_samples": len(common), "n_runs": len(a_runs),
                "n_baseline_runs": len(b_runs), "epe_mm": float(a.loc[common].to_numpy().mean()),
                "baseline_epe_mm": float(b.loc[common].to_numpy().mean()), "diff_mm": mean,
                "ci_low_mm": lo, "ci_high_mm": hi, "beyond_noise_samples": stats.excludes_zero(lo, hi),
                "n_seeds_paired": len(paired), "seed_diff_mm": s_mean, "seed_std_mm": s_sd,
                "seed_ci_low_mm": s_lo, "seed_ci_high_mm": s_hi,
                "beyond_noise_seeds": stats.excludes_zero(s_lo, s_hi), "n_resamples": n_resamples,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def default_baseline(run_dirs: Iterable[str | Path]) -> str:
    """The group key of the runs with ``mode: baseline`` (Table 4a's no-CLIP row); an error
    when there is none or more than one such configuration."""
    keys: dict[str, list[str]] = {}
    for run_dir in find_run_dirs(run_dirs):
        config = read_run(run_dir)["config"]
        if config.get("mode") == "baseline":
            keys.setdefault(group_key(config), []).append(Path(run_dir).name)
    if len(keys) != 1:
        found = "none" if not keys else "; ".join(", ".join(v) for v in keys.values())
        raise HcdgError(
            f"baseline: expected the runs of exactly one `mode: baseline` config, found {found}; "
            "pass baseline= a run folder of the baseline"
        )
    return next(iter(keys))


def paired_table(
    paths: Iterable[str | Path],
    baseline: str | Path | None = None,
    *,
    joints: str = "all",
    n_resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Every evaluated config against the baseline, paired per sample (what `hcdg report` shows).

    Args:
        paths: run or sweep folders (as `store.results.load_results`).
        baseline: a run folder whose config (without its seed) is the baseline; None = the
            runs with ``mode: baseline`` (an error if they are not one config).
        joints: "all" or "visible": the joints each per-sample EPE averages over.
        n_resamples, seed: bootstrap resamples and seed (`pipeline.stats`' BOOTSTRAP_RESAMPLES
            and BOOTSTRAP_SEED).
    Returns:
        One row per config group x (target, split, protocol, root, crops): ``diff_mm`` (mean
        per-sample EPE difference, group minus baseline, seeds averaged), its bootstrap 95%
        interval over samples (``ci_low_mm``, ``ci_high_mm``, ``beyond_noise_samples``), and
        over seeds paired by seed (``seed_diff_mm``, ``seed_std_mm``, ``seed_ci_*``,
        ``beyond_noise_seeds``; NaN / False with fewer than 2 paired seeds). Columns:
        `PAIRED_COLUMNS`.
    """
    paths = list(paths)
    base_key = default_baseline(paths) if baseline is None else group_key(read_run(baseline)["config"])
    return paired_differences(sample_epe_table(paths, joints=joints), base_key, n_resamples=n_resamples, seed=seed)
