"""Evaluation results on disk: per-sample parquet, per-target summaries, loading many runs.

Layout inside a run folder (docs/results.md has the full schema):

* ``RUN_DIR/eval/<target>.parquet``: one row per sample x protocol x root, with the 21
  per-joint errors and the aligned prediction and ground truth (metres, camera frame),
  so any metric can be recomputed without the model.
* ``RUN_DIR/eval/<target>-summary.parquet``: one row per protocol x root x joint set
  ("all" joints, or only the "visible" ones), with EPE, AUCs and the PCK curve.

Both are written atomically (temp file + rename); writing one target never touches
another target's files. `load_results` concatenates the per-sample files of many runs
(sweep folders are expanded) into one DataFrame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hcdg.pipeline import metrics
from hcdg.pipeline.errors import HcdgError
from hcdg.store import schema
from hcdg.store.atomic import atomic_path
from hcdg.store.metrics_log import METRICS_FILE
from hcdg.store.runs import find_run_dirs, read_run

EVAL_DIR = "eval"
N_JOINTS = 21
ERR_COLUMNS: tuple[str, ...] = tuple(f"err_mm_{j:02d}" for j in range(N_JOINTS))
CFG_PREFIX = "cfg."
#: Joint sets a summary row can cover.
JOINT_SETS = ("all", "visible")
#: Every results / summary file carries `store.schema.results_metadata()` (its format
#: version); older files are upgraded on read by `store.schema.upgrade_results`.

#: Fixed columns of the per-sample table, in order, with their arrow types.
RESULT_SCHEMA: dict[str, pa.DataType] = {
    "run": pa.string(),
    "target": pa.string(),
    "split": pa.string(),
    "sample_id": pa.string(),
    "protocol": pa.string(),
    "root": pa.string(),
    "epe_mm": pa.float64(),
    **{c: pa.float64() for c in ERR_COLUMNS},
    "visible": pa.list_(pa.bool_(), N_JOINTS),
    "pred_xyz_m": pa.list_(pa.float32(), 3 * N_JOINTS),
    "gt_xyz_m": pa.list_(pa.float32(), 3 * N_JOINTS),
    "random_weights": pa.bool_(),
}

#: Per-axis mean absolute errors of a summary row (x, y, z in the camera frame, mm; the
#: authors' script prints them, main/metrics.py:58-76). Written after SUMMARY_SCHEMA's columns;
#: summaries written before they existed lack them.
AXIS_COLUMNS: tuple[str, ...] = ("epe_x_mean_mm", "epe_y_mean_mm", "epe_z_mean_mm")

#: Fixed columns of the summary table, in order.
SUMMARY_SCHEMA: dict[str, pa.DataType] = {
    "run": pa.string(),
    "target": pa.string(),
    "split": pa.string(),
    "protocol": pa.string(),
    "root": pa.string(),
    "joints": pa.string(),
    "n_samples": pa.int64(),
    "epe_mean_mm": pa.float64(),
    "epe_median_mm": pa.float64(),
    "auc_0_50_20": pa.float64(),
    "auc_0_50_100": pa.float64(),
    "auc_20_50_hand3d": pa.float64(),
    "pck_thresholds_mm": pa.list_(pa.float64()),
    "pck": pa.list_(pa.float64()),
    "random_weights": pa.bool_(),
}


# --------------------------------------------------------------------------- paths


def results_path(run_dir: str | Path, target: str) -> Path:
    """``RUN_DIR/eval/<target>.parquet``."""
    return Path(run_dir) / EVAL_DIR / f"{target}.parquet"


def summary_path(run_dir: str | Path, target: str) -> Path:
    """``RUN_DIR/eval/<target>-summary.parquet``."""
    return Path(run_dir) / EVAL_DIR / f"{target}-summary.parquet"


# --------------------------------------------------------------------------- run metadata


def flatten_config(config: Mapping[str, Any], prefix: str = CFG_PREFIX) -> dict[str, Any]:
    """Nested config dict -> flat ``{"cfg.mode": ..., "cfg.geom.scale_range": ...}``.

    Scalars stay as they are; lists and other non-scalars become JSON strings so every
    column has one plain type.
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_config(value, prefix=name + "."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


def _find_key(obj: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k == key:
                found.append(v)
            found.extend(_find_key(v, key))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(_find_key(v, key))
    return found


def random_weights_of(record: Mapping[str, Any]) -> bool:
    """True when a run record says anywhere (config, store fingerprint, extras) ``random_weights: true``,
    or holds a store fingerprint whose encoder weights are random (``weights: {kind: "random"}``,
    what `hcdg train` records for a store built with e.g. ``--model hcdg-tiny``)."""
    if any(v is True for v in _find_key(record, "random_weights")):
        return True
    return any(isinstance(w, Mapping) and w.get("kind") == "random" for w in _find_key(record, "weights"))


def run_columns(run_dir: str | Path) -> dict[str, Any]:
    """What every results row of a run carries: ``run`` (folder name), ``random_weights``
    and the flattened ``cfg.*`` of its `run.json`."""
    record = read_run(run_dir)
    return {
        "run": Path(run_dir).name,
        "random_weights": random_weights_of(record),
        **flatten_config(record.get("config", {})),
    }


# --------------------------------------------------------------------------- building tables


def results_frame(
    *,
    run: str,
    target: str,
    split: str,
    sample_ids: Sequence[str],
    results: Iterable[Any],
    visible: np.ndarray | None = None,
    config: Mapping[str, Any] | None = None,
    random_weights: bool = False,
    extra: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """The per-sample table of one run on one target.

    Args:
        run: run name (usually the run folder's name).
        target, split: the evaluated dataset and split.
        sample_ids: (N,) the samples, in the order of the results' arrays.
        results: `protocols.ProtocolResult`s (anything with protocol, root,
            pred_xyz_m (N,21,3), gt_xyz_m (N,21,3), errors_mm (N,21)).
        visible: (N, 21) bool visibility of the ground-truth joints (None = all).
        config: the run's resolved config (nested dict); stored as ``cfg.*`` columns.
        random_weights: the CLIP features came from random weights.
        extra: more per-sample columns (each (N,)), e.g. ``{"mirrored": [...]}``.
    """
    ids = [str(s) for s in sample_ids]
    n = len(ids)
    vis = np.ones((n, N_JOINTS), bool) if visible is None else np.asarray(visible, bool).reshape(n, N_JOINTS)
    cfg_cols = flatten_config(config or {})
    frames = []
    for res in results:
        err = np.asarray(res.errors_mm, dtype=np.float64)
        res_vis = getattr(res, "visible", None)
        vis_r = vis if res_vis is None else np.asarray(res_vis, bool).reshape(n, N_JOINTS)
        pred = np.asarray(res.pred_xyz_m, dtype=np.float32).reshape(n, 3 * N_JOINTS)
        gt = np.asarray(res.gt_xyz_m, dtype=np.float32).reshape(n, 3 * N_JOINTS)
        if err.shape != (n, N_JOINTS):
            raise HcdgError(f"results_frame: {res.protocol} errors have shape {err.shape}, expected ({n}, 21)")
        cols: dict[str, Any] = {
            "run": run, "target": target, "split": split, "sample_id": ids,
            "protocol": res.protocol, "root": res.root, "epe_mm": err.mean(axis=1),
            **{c: err[:, j] for j, c in enumerate(ERR_COLUMNS)},
            "visible": list(vis_r), "pred_xyz_m": list(pred), "gt_xyz_m": list(gt),
            "random_weights": bool(random_weights),
        }  # fmt: skip
        for k, v in (extra or {}).items():
            cols[k] = list(v)
        for k, v in cfg_cols.items():
            cols[k] = [v] * n
        frames.append(pd.DataFrame(cols))
    if not frames:
        raise HcdgError("results_frame: no protocol results given")
    return pd.concat(frames, ignore_index=True)


def xyz_array(column: pd.Series) -> np.ndarray:
    """A ``pred_xyz_m`` / ``gt_xyz_m`` column -> (N, 21, 3) float64 metres."""
    if len(column) == 0:
        return np.zeros((0, N_JOINTS, 3))
    return np.stack([np.asarray(v, dtype=np.float64) for v in column]).reshape(-1, N_JOINTS, 3)


def errors_array(frame: pd.DataFrame) -> np.ndarray:
    """The 21 ``err_mm_*`` columns -> (N, 21) float64 millimetres."""
    return frame[list(ERR_COLUMNS)].to_numpy(dtype=np.float64)


def visible_array(frame: pd.DataFrame) -> np.ndarray:
    """The ``visible`` column -> (N, 21) bool."""
    if len(frame) == 0:
        return np.zeros((0, N_JOINTS), bool)
    return np.stack([np.asarray(v, dtype=bool) for v in frame["visible"]])


def summarise_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run x target x split x protocol x root x joint set: n, EPE mean/median, AUCs, PCK,
    and the mean absolute error along x, y and z (`AXIS_COLUMNS`).

    Statistics follow `metrics.summarise` (hand3d / FreiHAND EvalUtil conventions; the
    per-axis means average per-joint means like ``epe_mean_mm``, which for all joints is the
    authors' per-sample mean over 21 joints averaged over samples); the run's ``cfg.*``
    columns are carried over. Per-axis errors are read from the stored float32 metres
    (about 1e-4 mm of round-off).
    """
    from hcdg.store.eval_files import IDENTITY_COLUMNS

    keys = ["run", "target", "split", "protocol", "root"]
    identity = [c for c in IDENTITY_COLUMNS if c in frame.columns]
    carry = ["random_weights", *identity] + [c for c in frame.columns if c.startswith(CFG_PREFIX)]
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        err = errors_array(group)
        vis = visible_array(group)
        axes = metrics.axis_errors_mm(xyz_array(group["pred_xyz_m"]), xyz_array(group["gt_xyz_m"]))
        for joints, mask in (("all", None), ("visible", vis)):
            s = metrics.summarise(err, mask)
            row = dict(zip(keys, key))
            row["joints"] = joints
            row.update(s)
            row.update({c: metrics.epe_mean_mm(axes[..., k], mask) for k, c in enumerate(AXIS_COLUMNS)})
            for c in carry:
                if c in group.columns:
                    row[c] = group[c].iloc[0]
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(SUMMARY_SCHEMA))
    out = pd.DataFrame(rows)
    return out[[c for c in (*SUMMARY_SCHEMA, *AXIS_COLUMNS) if c in out.columns]
               + [c for c in carry[1:] if c in out.columns]]


# --------------------------------------------------------------------------- parquet I/O


def _to_table(frame: pd.DataFrame, schema: Mapping[str, pa.DataType], what: str) -> pa.Table:
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise HcdgError(f"{what}: missing column(s) {', '.join(missing)}")
    ordered = list(schema) + [c for c in frame.columns if c not in schema]
    arrays, fields = [], []
    for c in ordered:
        values = frame[c]
        if c in schema:
            typ = schema[c]
            if pa.types.is_list(typ) or pa.types.is_fixed_size_list(typ):
                data = [None if v is None else np.asarray(v).tolist() for v in values]
                arr = pa.array(data, type=typ)
            else:
                arr = pa.array(values.to_numpy(), type=typ, from_pandas=True)
        else:
            arr = pa.Array.from_pandas(values)
        arrays.append(arr)
        fields.append(pa.field(c, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _write_table(path: Path, table: pa.Table) -> Path:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **schema.results_metadata()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _read(path: str | Path, columns: Mapping[str, pa.DataType], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise HcdgError(f"{path}: no {what} file")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise HcdgError(f"{path}: not a readable parquet file ({type(exc).__name__})") from None
    frame = table.to_pandas()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HcdgError(f"{path}: not an hcdg {what} table (missing {', '.join(missing)})")
    return schema.upgrade_results(frame, table.schema.metadata, per_sample=columns is RESULT_SCHEMA,
                                  what=str(path))


def write_results(run_dir: str | Path, target: str, frame: pd.DataFrame,
                  summary_columns: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``eval/<target>.parquet`` and its summary, atomically; other targets untouched.

    `target` is the file stem (`store.eval_files.EvalIdentity.stem`); `summary_columns` are
    added to every summary row (e.g. mmpose's 2D "PCK", "AUC", "EPE", which do not depend on
    the 3D protocol). Returns (results path, summary path).
    """
    table = _to_table(frame, RESULT_SCHEMA, f"results for {target}")
    summ = summarise_results(frame)
    for k, v in (summary_columns or {}).items():
        summ[k] = v
    summary = _to_table(summ, SUMMARY_SCHEMA, f"summary for {target}")
    return (
        _write_table(results_path(run_dir, target), table),
        _write_table(summary_path(run_dir, target), summary),
    )


def read_results(path: str | Path) -> pd.DataFrame:
    """One per-sample results file (schema checked)."""
    return _read(path, RESULT_SCHEMA, "results")


def read_summary(path: str | Path) -> pd.DataFrame:
    """One summary file (schema checked)."""
    return _read(path, SUMMARY_SCHEMA, "summary")


def _summary_current(path: Path) -> bool:
    try:
        meta = pq.read_schema(path).metadata
    except Exception:  # a damaged file: `read_summary` names it
        return True
    return schema.summary_is_current(meta, str(path))


def target_summary(run_dir: str | Path, target: str) -> pd.DataFrame:
    """The summary rows of a run's evaluation on `target`: its summary file when that is in
    today's format, else the summary of its (upgraded) per-sample file."""
    spath = summary_path(run_dir, target)
    if spath.is_file() and _summary_current(spath):
        return read_summary(spath)
    return summarise_results(read_results(results_path(run_dir, target)))


# --------------------------------------------------------------------------- many runs


def result_files(run_dir: str | Path, reference_only: bool = False) -> list[Path]:
    """The per-sample results files of a run (``eval/*.parquet`` minus summaries): per target,
    the reference evaluation (``<target>.parquet``) first, then its variants by name.

    `reference_only`: only evaluations of the finished model on every sample with the
    default decoder (`store.eval_files.is_reference_file`; what `hcdg report` compares).
    """
    from hcdg.store import eval_files as ef

    folder = Path(run_dir) / EVAL_DIR
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.parquet") if not p.name.endswith("-summary.parquet")]
    if reference_only:
        files = [p for p in files if ef.is_reference_file(p)]
    return sorted(files, key=lambda p: (ef.target_of(ef.stem_of(p)), ef.stem_of(p).count(ef.SEP), p.name))


def load_results(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Every per-sample result of every run (sweep folders expanded), one DataFrame.

    Adds ``run_dir`` (the folder, as a string) so runs with equal names stay apart.
    Runs without results contribute nothing; an empty frame has the fixed columns.
    """
    frames = []
    for run_dir in find_run_dirs(run_dirs):
        for path in result_files(run_dir):
            frame = read_results(path)
            frame["run_dir"] = str(run_dir)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*RESULT_SCHEMA, "run_dir"])
    return pd.concat(frames, ignore_index=True)


def read_loss_curves(run_dir: str | Path) -> pd.DataFrame | None:
    """The training metrics of a run (``RUN_DIR/metrics.parquet``), or None when absent.

    Missing optional columns (``loss_heat``, ``val_epe_mm``, ...) are added as NaN, so
    callers can plot any run; a damaged file is a clear error.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise HcdgError(f"{path}: not a readable parquet file ({type(exc).__name__})") from None
    if "step" not in frame.columns:
        raise HcdgError(f"{path}: not a training metrics table (no 'step' column)")
    for col in ("loss", "loss_heat", "loss_pose", "loss_con", "lr", "samples_per_s", "val_epe_mm"):
        if col not in frame.columns:
            frame[col] = np.nan
    return frame.sort_values("step", kind="stable").reset_index(drop=True)
