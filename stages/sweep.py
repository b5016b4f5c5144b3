"""Stage `hcdg sweep`: a grid of training runs against one feature store.

    hcdg sweep --ratio 0.4,0.6,0.8,0.9 [--lambda-con ...] [--combine ...] [--mode ...]
               [--seed 0,1,2] --out SWEEP_DIR <train flags>

Each grid point is an ordinary training run (`stages.train.run`) in
`SWEEP_DIR/<name>`, where the name lists the point's swept values in a fixed axis
order, e.g. `mode=ie+te,ratio=0.6,lambda_con=0.1`. Values that do not affect a point
are left out of its name and the duplicate points dropped (baseline ignores ratio,
combine and the contrastive settings; ie / te ignore ratio), so
`--mode baseline,ie,ie+te --ratio 0.9,0.8,0.6,0.4` is exactly Table 4a: 6 runs.
The seed is an axis like any other and combines with all of them: adding `--seed 0,1,2`
makes it 18 runs, named e.g. `mode=ie+te,ratio=0.6,seed=2`; `hcdg report` groups the
runs of one config across seeds (mean ± std (n)).

Resumable: a point whose folder holds a finished run of the same config (`done.json`
with the same config hash) is skipped; an unfinished one is resumed from its newest
checkpoint; a folder holding a different run is refused (HcdgError). After every point
`SWEEP_DIR/sweep.parquet` is rewritten atomically with one row per point.

With `--shared-batches` the points that see the same batches (same seed, batch size,
augmentation, crop, ...: `train_shared.batch_key`) form a group trained in one process from
one data loader, each batch decoded and augmented once for all of them; every point's
results equal its solo run's. Groups run one after another; a point that fails (e.g. a
non-finite loss) stops alone, its reason in the table's status, and the sweep exits
non-zero after the others finished.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any


from hcdg.pipeline.errors import HcdgError
from hcdg.stages.train_config import TrainConfig
from hcdg.store.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd

SWEEP_FILE = "sweep.parquet"
#: Axis order in point names (and columns of the table).
AXES = ("mode", "aug", "combine", "ratio", "lambda_con", "con_loss", "seed")


@dataclass(frozen=True)
class SweepConfig:
    """The grid (each axis: values to try; empty = keep the base run's value) and the base run."""

    out: str
    base: TrainConfig
    mode: tuple[str, ...] = ()
    aug: tuple[str, ...] = ()
    combine: tuple[str, ...] = ()
    ratio: tuple[float, ...] = ()
    lambda_con: tuple[float, ...] = ()
    con_loss: tuple[str, ...] = ()
    seed: tuple[int, ...] = ()  # repeats of every point (initialisation, data order, augmentation, prompts)
    # Train the points that see the same batches in one process from one loader
    # (stages/train_shared.py); off = one `hcdg train` run after another.
    shared_batches: bool = False


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _relevant(cfg: TrainConfig, axis: str) -> bool:
    """Whether `axis` changes what run `cfg` computes."""
    if axis in ("mode", "aug", "seed"):
        return True
    if cfg.mode == "baseline":
        return False
    if axis == "ratio":
        return cfg.uses_clip and cfg.mode == "ie+te"
    if axis == "combine":
        return cfg.uses_clip
    return True  # lambda_con, con_loss: any Branch2 run


def grid(sweep: SweepConfig) -> list[tuple[str, dict[str, Any], TrainConfig]]:
    """(name, swept values, run config) per distinct point, in grid order."""
    swept = [a for a in AXES if getattr(sweep, a)]
    if not swept:
        raise HcdgError("hcdg sweep: give at least one axis to sweep (--ratio, --lambda-con, --combine, --mode, --seed, ...)")
    for axis in swept:
        values = getattr(sweep, axis)
        if len(set(values)) != len(values):
            raise HcdgError(f"--{axis.replace('_', '-')}: a value is repeated in {', '.join(map(_fmt, values))}")
    points: list[tuple[str, dict[str, Any], TrainConfig]] = []
    seen: set[str] = set()
    for values in itertools.product(*(getattr(sweep, a) for a in swept)):
        changes = dict(zip(swept, values))
        try:
            cfg = dataclasses.replace(sweep.base, **changes)
        except (ValueError, TypeError) as exc:
            raise HcdgError(f"hcdg sweep: point {changes}: {exc}") from None
        shown = {a: v for a, v in changes.items() if _relevant(cfg, a)}
        name = ",".join(f"{a}={_fmt(v)}" for a, v in shown.items()) or "base"
        if name in seen:
            continue
        seen.add(name)
        points.append((name, shown, dataclasses.replace(cfg, out=str(Path(sweep.out) / name), resume=True)))
    return points


def _finished(cfg: TrainConfig) -> dict[str, Any] | None:
    """The done record when `cfg.out` holds this exact run, finished; else None."""
    from hcdg.stages.train_config import identity
    from hcdg.store.runs import finished_run

    found = finished_run(cfg.out)
    if found is None:
        return None
    run, done = found
    ident_now = identity(cfg, run.get("store_fingerprint"), run["config"].get("data_ids_sha256", ""))
    if ident_now != run.get("config"):
        return None  # a different run lives there; train.run will refuse it with a clear error
    want = cfg.total_steps_given
    if want is not None and done.get("total_steps") != want:
        return None
    if want is None and done.get("epochs") != cfg.epochs:
        return None
    return done


def _write_table(out: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(rows)
    with atomic_path(out / SWEEP_FILE) as tmp:
        df.to_parquet(tmp, index=False)
    return df


def run(sweep: SweepConfig, echo: Any = print) -> pd.DataFrame:
    """Run (or resume) every point; returns the table written to SWEEP_DIR/sweep.parquet.

    One sweep process per folder (`SWEEP/.hcdg-lock`); each point also takes its run folder's lock.
    """
    from hcdg.store.locks import RUN_LOCK, writer_lock
    from hcdg.store.runs import check_folder_path

    out = Path(sweep.out)
    grid(sweep)  # every point's config validated before the folder is created
    check_folder_path(out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out / RUN_LOCK, f"sweep folder {out}"):
        return _run_points(sweep, echo)


def _row(sweep: SweepConfig, name: str, shown: dict[str, Any], cfg: TrainConfig, status: str,
         done: dict[str, Any], wall_s: float) -> dict[str, Any]:
    return {
        "point": name, **{a: shown.get(a) for a in AXES if getattr(sweep, a)},
        "status": status, "steps": done.get("total_steps"), "val_epe_mm": done.get("val_epe_mm"),
        "val_mean_pose_epe_mm": done.get("val_mean_pose_epe_mm"), "run_dir": cfg.out, "wall_s": wall_s,
    }  # fmt: skip


def _run_shared(sweep: SweepConfig, points: list[tuple[str, dict[str, Any], TrainConfig]], echo: Any) -> pd.DataFrame:
    """The points in groups that share their batches, one process and one loader per group."""
    from hcdg.stages import train, train_dist, train_shared

    out = Path(sweep.out)
    env = train_dist.torchrun_env()
    if env is None and sweep.base.nproc > 1:
        raise HcdgError(f"--shared-batches: --nproc {sweep.base.nproc} is not supported (one process trains a "
                        "group); use --nproc 1, torchrun, or a sweep without --shared-batches")
    rows: dict[str, dict[str, Any]] = {}
    pending = []
    for name, shown, cfg in points:
        done = _finished(cfg)
        if done is None:
            train.check_args(cfg)
            pending.append((name, shown, cfg))
        else:
            echo(f"{name}: finished earlier, skipped")
            rows[name] = _row(sweep, name, shown, cfg, "skipped (finished)", done, 0.0)
    order = [n for n, _, _ in points]
    table = _write_table(out, [rows[n] for n in order if n in rows]) if rows else None
    groups = train_shared.group_by_batches([c for _, _, c in pending])
    failed: list[str] = []
    for g, members in enumerate(groups, 1):
        names = [pending[k][0] for k in members]
        echo(f"[group {g}/{len(groups)}] {len(members)} point(s) from one loader: {', '.join(names)}")
        t0 = time.perf_counter()
        results = train_shared.train_group([pending[k][2] for k in members], env)
        wall = time.perf_counter() - t0
        for k, res in zip(members, results):
            name, shown, cfg = pending[k]
            if isinstance(res, HcdgError):
                failed.append(f"sweep point {name}: {res}")
                echo(f"{name}: failed: {res}")
                rows[name] = _row(sweep, name, shown, cfg, f"failed: {res}", {}, wall)
            else:
                rows[name] = _row(sweep, name, shown, cfg, "trained", res, wall)
            rows[name]["group"] = g
        table = _write_table(out, [rows[n] for n in order if n in rows])
    if failed:
        more = f" (and {len(failed) - 1} more; see {out / SWEEP_FILE})" if len(failed) > 1 else ""
        raise HcdgError(failed[0] + more)
    return table


def _run_points(sweep: SweepConfig, echo: Any) -> pd.DataFrame:
    from hcdg.stages import train

    out = Path(sweep.out)
    points = grid(sweep)
    out.mkdir(parents=True, exist_ok=True)
    if sweep.shared_batches:
        return _run_shared(sweep, points, echo)
    rows: list[dict[str, Any]] = []
    for i, (name, shown, cfg) in enumerate(points, 1):
        t0 = time.perf_counter()
        done = _finished(cfg)
        status = "skipped (finished)"
        if done is None:
            echo(f"[{i}/{len(points)}] {name}")
            try:
                done = train.run(cfg)
            except HcdgError as exc:
                raise HcdgError(f"sweep point {name}: {exc}") from None
            status = "trained"
        else:
            echo(f"[{i}/{len(points)}] {name}: finished earlier, skipped")
        rows.append(_row(sweep, name, shown, cfg, status, done, time.perf_counter() - t0))
        table = _write_table(out, rows)
    return table
