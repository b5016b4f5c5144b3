"""Format versions of the records hcdg writes, and the one chain that upgrades older ones.

Three kinds of record carry a ``schema`` number:

* ``run.json`` (`store.runs`): the key ``"schema"``;
* ``model.json`` (`store.checkpoints`): the key ``"schema"``;
* result and summary parquet files (`store.results`): the key-value metadata ``hcdg.schema``.

A record without the number was written before it existed: it is schema 1. Readers call
`upgrade_run`, `upgrade_model_meta` or `upgrade_results`, which apply the steps below one
version at a time, so a record of any age reads in today's form, and only here does code
know what older hcdg versions wrote. A record from a *newer* hcdg is refused with one line.

Upgrades happen in memory: files are never rewritten on read. (An old ``run.json`` keeps
its recorded config on `--resume`, so its checkpoints' config hash stays valid; see
`store.runs.recorded_identity`.)

History:

* run.json 1 -> 2: train configs recorded before a key existed get the value such runs were
  trained with (`LEGACY_TRAIN_VALUES`); L_con form ``"paper"`` is today's ``"paper-literal"``.
* model.json 1 -> 2: the network output and the heatmap Gaussian of runs that predate
  those keys (``output: "xyz"``, ``gaussian: "exp-d2-2s2"``) are written out.
* results 1 -> 2: protocol ``gtroot-2.5d`` is ``2.5d-gtroot-gtbone``; files without the
  ``hcdg.pa = freihand-toolbox`` marker hold proper-rotation-only ``pa`` rows, today's
  ``pa-proper``; per-sample tables get toolbox ``pa`` rows re-aligned from their stored
  predictions (a similarity transform of the original prediction, so its toolbox alignment
  equals the original's to float32 storage precision, ~1e-4 mm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hcdg.pipeline.errors import HcdgError

if TYPE_CHECKING:  # only the results chain needs them: reading run.json stays light
    import numpy as np
    import pandas as pd

#: Today's versions. Bump one and add a step to its chain when the format changes.
RUN_SCHEMA = 2
MODEL_SCHEMA = 2
RESULTS_SCHEMA = 2
#: The version of a record that carries none.
UNVERSIONED = 1
SCHEMA_KEY = "schema"
#: Parquet key-value metadata holding RESULTS_SCHEMA.
PARQUET_SCHEMA_KEY = b"hcdg.schema"
#: Marker of result files whose ``pa`` rows are the FreiHAND toolbox's alignment (written
#: from 2026-12 on, before `RESULTS_SCHEMA` existed; still written, so older hcdg reads them).
PA_FORMAT_KEY = b"hcdg.pa"
PA_FORMAT = b"freihand-toolbox"

#: Train-config keys added after run folders were first written, with the value such runs
#: were trained with (their run.json lacks the key): an old run reads with what it really
#: did, not with today's defaults.
LEGACY_TRAIN_VALUES: dict[str, Any] = {
    "heat_reduction": "mean", "pose_reduction": "mean", "heat_stages": "all", "heat_resolution": "grid",
    "gaussian": "exp-d2-2s2", "preset": "paper", "target": "xyz", "arch": "hcdg",
    "augment_on": "workers", "schedule": "joint", "lifting_input": "pred", "staged_steps": 500,
    "compile": "off", "channels_last": False,
}  # fmt: skip
#: L_con forms renamed since (old name -> today's).
CON_LOSS_RENAMES = {"paper": "paper-literal"}
#: Protocols renamed since (old name -> today's).
PROTOCOL_RENAMES = {"gtroot-2.5d": "2.5d-gtroot-gtbone"}


def current_protocol_name(name: str) -> str:
    """Today's name of a protocol given under an old one (``gtroot-2.5d`` -> ``2.5d-gtroot-gtbone``)."""
    return PROTOCOL_RENAMES.get(name, name)


def _version(value: Any, what: str, current: int) -> int:
    if value is None:
        return UNVERSIONED
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise HcdgError(f"{what}: schema {value!r} is not a version number") from None
    if v < UNVERSIONED:
        raise HcdgError(f"{what}: schema {v} is not a version hcdg wrote")
    if v > current:
        raise HcdgError(f"{what}: written by a newer hcdg (schema {v}; this hcdg reads up to {current}); "
                        "upgrade hcdg")  # fmt: skip
    return v


def _climb(obj: Any, version: int, steps: Mapping[int, Callable[[Any], Any]], current: int) -> Any:
    for v in range(version, current):
        obj = steps[v](obj)
    return obj


# --------------------------------------------------------------------------- run.json


def _run_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    config = record.get("config")
    if record.get("stage") == "train" and isinstance(config, dict):
        config = {**{k: v for k, v in LEGACY_TRAIN_VALUES.items() if k not in config}, **config}
        if config.get("con_loss") in CON_LOSS_RENAMES:
            config["con_loss"] = CON_LOSS_RENAMES[config["con_loss"]]
        record = {**record, "config": config}
    return record


#: version -> the step from it to the next.
RUN_UPGRADES = {1: _run_1_to_2}


def run_schema(record: Mapping[str, Any], what: str = "run.json") -> int:
    """The schema of a run record (`UNVERSIONED` when it has none); refuses a newer one."""
    return _version(record.get(SCHEMA_KEY), what, RUN_SCHEMA)


def upgrade_run(record: Mapping[str, Any], what: str = "run.json") -> dict[str, Any]:
    """A run record in today's form (schema `RUN_SCHEMA`); the input is not changed."""
    out = _climb(dict(record), run_schema(record, what), RUN_UPGRADES, RUN_SCHEMA)
    out[SCHEMA_KEY] = RUN_SCHEMA
    return out


# --------------------------------------------------------------------------- model.json


def _model_1_to_2(meta: dict[str, Any]) -> dict[str, Any]:
    meta = dict(meta)
    if isinstance(meta.get("model_config"), dict):
        meta["model_config"] = {"output": "xyz", **meta["model_config"]}
    if isinstance(meta.get("crop"), dict):
        meta["crop"] = {"gaussian": "exp-d2-2s2", **meta["crop"]}
    return meta


#: version -> the step from it to the next.
MODEL_UPGRADES = {1: _model_1_to_2}


def upgrade_model_meta(meta: Mapping[str, Any], what: str = "model.json") -> dict[str, Any]:
    """A `model.json` record in today's form (schema `MODEL_SCHEMA`)."""
    version = _version(meta.get(SCHEMA_KEY), what, MODEL_SCHEMA)
    out = _climb(dict(meta), version, MODEL_UPGRADES, MODEL_SCHEMA)
    out[SCHEMA_KEY] = MODEL_SCHEMA
    return out


# --------------------------------------------------------------------------- result parquet


def results_metadata() -> dict[bytes, bytes]:
    """The key-value metadata every result / summary parquet file hcdg writes carries."""
    return {PARQUET_SCHEMA_KEY: str(RESULTS_SCHEMA).encode(), PA_FORMAT_KEY: PA_FORMAT}


def results_schema(metadata: Mapping[bytes, bytes] | None, what: str) -> int:
    """The schema of a parquet file from its key-value metadata; refuses a newer one."""
    raw = (metadata or {}).get(PARQUET_SCHEMA_KEY)
    return _version(None if raw is None else raw.decode(errors="replace"), what, RESULTS_SCHEMA)


def _results_1_to_2(item: tuple[pd.DataFrame, bool, Mapping[bytes, bytes]]) -> tuple:
    frame, per_sample, metadata = item
    frame = frame.copy()
    frame["protocol"] = frame["protocol"].replace(PROTOCOL_RENAMES)
    old = (frame["protocol"] == "pa") & ((metadata or {}).get(PA_FORMAT_KEY) != PA_FORMAT)
    if not old.any():
        return frame, per_sample, metadata
    frame.loc[old, "protocol"] = "pa-proper"
    if per_sample:
        frame = _insert_toolbox_pa(frame, old.to_numpy())
    return frame, per_sample, metadata


def _insert_toolbox_pa(frame: pd.DataFrame, old: np.ndarray) -> pd.DataFrame:
    """Toolbox ``pa`` rows re-aligned from the ``pa-proper`` rows `old`, placed before them.

    Spelled against the schema-1 columns (``pred_xyz_m`` / ``gt_xyz_m``: 63 float32 metres,
    ``err_mm_00`` ... ``err_mm_20``, ``epe_mm``), not against today's layout."""
    import numpy as np
    import pandas as pd

    from hcdg.pipeline import metrics

    rows = frame[old].copy()
    n = len(rows)
    gt = np.stack([np.asarray(v, np.float64) for v in rows["gt_xyz_m"]]).reshape(n, 21, 3)
    pred = np.stack([np.asarray(v, np.float64) for v in rows["pred_xyz_m"]]).reshape(n, 21, 3)
    aligned = metrics.toolbox_align(pred, gt)
    err = metrics.joint_errors_mm(aligned, gt)
    rows["protocol"] = "pa"
    rows["pred_xyz_m"] = list(aligned.reshape(n, 63).astype(np.float32))
    for j in range(21):
        rows[f"err_mm_{j:02d}"] = err[:, j]
    rows["epe_mm"] = err.mean(axis=1)
    first = int(np.flatnonzero(old)[0])
    return pd.concat([frame.iloc[:first], rows, frame.iloc[first:]], ignore_index=True)


#: version -> the step from it to the next.
RESULTS_UPGRADES = {1: _results_1_to_2}


def upgrade_results(frame: pd.DataFrame, metadata: Mapping[bytes, bytes] | None, *, per_sample: bool,
                    what: str) -> pd.DataFrame:  # fmt: skip
    """A result (`per_sample`) or summary table read from parquet, in today's form.

    A summary of schema 1 cannot gain toolbox ``pa`` rows (it has no predictions): summarise
    the upgraded per-sample table instead (`summary_is_current` says when).
    """
    version = results_schema(metadata, what)
    if "protocol" not in frame.columns:
        return frame
    out, _, _ = _climb((frame, per_sample, metadata), version, RESULTS_UPGRADES, RESULTS_SCHEMA)
    return out


def summary_is_current(metadata: Mapping[bytes, bytes] | None, what: str) -> bool:
    """Whether a summary parquet file is in today's form (else re-summarise its per-sample file)."""
    return results_schema(metadata, what) == RESULTS_SCHEMA
