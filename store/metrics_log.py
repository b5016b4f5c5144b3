"""`RUN_DIR/metrics.parquet`: training metrics, readable at every moment while a run writes it.

Each `append` rewrites the whole file atomically (temp file + rename, `hcdg.store.atomic`),
so `pandas.read_parquet(RUN_DIR / "metrics.parquet")` always sees a complete table.
At this scale (one row per logging step, a few thousand rows per run) the rewrite
costs milliseconds.

Schema (one table, one row per event; NaN where a column does not apply):

============== ======= ==============================================================
column          type    meaning
============== ======= ==============================================================
kind            string  "train" (a logging step) or "val" (a validation pass)
step            int64   optimizer steps done when the row was written (1-based)
epoch           int64   epoch index of that step (0-based)
loss            float64 total loss l1*L_heat + l2*L_pose + l3*L_con (global batch mean)
loss_heat       float64 L_heat in the run's reading (heat_reduction/stages/resolution)
loss_pose       float64 L_pose, MSE of root-relative bone-normalised xyz
loss_con        float64 L_con in the run's con_loss form (0 in baseline mode)
d_pos           float64 Branch2: mean L1 distance anchor e1' -> positive e2' (NaN without Branch2)
d_neg           float64 Branch2: mean L1 distance anchor e1' -> its negative
e1_norm         float64 Branch2: mean L2 norm of e1' (a diverging L_con inflates it)
e2_norm         float64 Branch2: mean L2 norm of e2' 
lr              float64 learning rate of the step
samples_per_s   float64 training throughput since the previous train row (all ranks)
grad_scale      float64 --precision fp16: the loss scale after the step (halved where the step's
                        gradients overflowed and its update was skipped); NaN otherwise
val_epe_mm      float64 validation EPE, root-relative, prediction scaled by the GT bone
                        length, mean over joints and samples, millimetres ("val" rows)
val_mean_pose_epe_mm float64 the same EPE when predicting the mean training pose
val_2d_px       float64 2D error, crop pixels, of the last-stage heatmap argmax (visible joints)
val_mean_2d_px  float64 the same 2D error for the mean 2D layout of the validation crops
wall_s          float64 seconds since this process started training
============== ======= ==============================================================

Train rows log the loss of the step itself (not a running mean), so a resumed run's
rows equal the uninterrupted run's rows. On resume, rows past the checkpoint's step
are dropped (they belong to the part of the run that is redone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hcdg.store.atomic import atomic_path

METRICS_FILE = "metrics.parquet"
COLUMNS: dict[str, str] = {
    "kind": "string",
    "step": "int64",
    "epoch": "int64",
    "loss": "float64",
    "loss_heat": "float64",
    "loss_pose": "float64",
    "loss_con": "float64",
    "d_pos": "float64",
    "d_neg": "float64",
    "e1_norm": "float64",
    "e2_norm": "float64",
    "lr": "float64",
    "samples_per_s": "float64",
    "grad_scale": "float64",
    "val_epe_mm": "float64",
    "val_mean_pose_epe_mm": "float64",
    "val_2d_px": "float64",
    "val_mean_2d_px": "float64",
    "wall_s": "float64",
}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    data = {c: [r.get(c, None if t in ("string", "int64") else math.nan) for r in rows] for c, t in COLUMNS.items()}
    df = pd.DataFrame(data)
    for c, t in COLUMNS.items():
        df[c] = df[c].astype(t if t != "int64" else "Int64")
    return df


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The run's metrics table (empty with the schema's columns when none was written yet)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return _frame([])
    return pd.read_parquet(path)


class MetricsLog:
    """Appends rows to `RUN_DIR/metrics.parquet` (atomic rewrite per append)."""

    def __init__(self, run_dir: str | Path, *, resume_step: int | None = None, tensorboard: bool = False) -> None:
        """Open the log; with `resume_step`, keep existing rows up to that step, else start empty.
        `tensorboard`: also mirror appended rows into RUN_DIR/tensorboard (`store.tensorboard_log`)."""
        self.path = Path(run_dir) / METRICS_FILE
        self.rows: list[dict[str, Any]] = []
        self.tb = None
        if tensorboard:
            from hcdg.store.tensorboard_log import TensorBoardMirror

            self.tb = TensorBoardMirror(run_dir, purge_step=None if resume_step is None else resume_step + 1)
        if resume_step is not None and self.path.is_file():
            old = pd.read_parquet(self.path)
            old = old[old["step"] <= resume_step]
            self.rows = [
                {k: (None if pd.isna(v) else v) for k, v in rec.items() if k in COLUMNS}
                for rec in old.to_dict("records")
            ]
        self._write()

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows (unknown keys are a programming error) and rewrite the file atomically."""
        rows = [dict(r) for r in rows]
        for row in rows:
            unknown = set(row) - set(COLUMNS)
            if unknown:
                raise KeyError(f"metrics: unknown column(s) {sorted(unknown)}")
            self.rows.append(dict(row))
        self._write()
        if self.tb is not None:
            self.tb.write(rows)

    def _write(self) -> None:
        with atomic_path(self.path) as tmp:
            _frame(self.rows).to_parquet(tmp, index=False)
