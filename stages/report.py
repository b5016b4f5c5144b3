"""`hcdg report`: the paper's results section, filled from the given runs.

Reads run folders (or sweep folders holding them): `run.json` (the training config),
`eval/<target>-summary.parquet` (or the per-sample file, summarised here) and
`metrics.parquet` (loss curves). Writes into the report folder:

* ``report.html``: self-contained (inline CSS, figures as base64 PNG);
* ``report.md`` + ``figures/*.png``: the Markdown twin;
* ``tables/*.csv`` and ``tables/*.parquet``: every table, machine-readable;
* ``report.json``: what went in (run folders, protocol, root), also the folder's marker.

Paper-shaped tables (Tables 3-6) group runs by their config (mode, ratio, combine,
lambda_con, con_loss, aug, and within those by the whole config without the seed,
`store.paired.group_key`) and put re-run numbers beside the paper's published rows,
which are labelled "as published, not re-run". A re-run cell is the mean over the
group's runs (seeds) ± their standard deviation (n); beside it the paired difference
to the re-run baseline (Table 4a's no-CLIP config) on the same samples, with its
bootstrap 95% interval over samples and, with >= 2 seeds on both sides, its t-interval
over seeds (`store.paired`). They use one protocol (default the paper's, ``authors``,
when any run has results under it, else ``2.5d-gtroot-gtbone``) and one STB root
handling (default ``wrist``); the full table lists every protocol, root and joint set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hcdg.pipeline import published
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline import stats, verdict
from hcdg.pipeline.localisation import maps_localise
from hcdg.stages import report_render as render
from hcdg.store import paired
from hcdg.store import results as store
from hcdg.store.atomic import atomic_path, atomic_write_json, atomic_write_text
from hcdg.store.runs import DONE_FILE, find_run_dirs, read_done, read_run
from hcdg.store.staging import staged_dir

REPORT_MARKER = "report.json"
PUBLISHED_SOURCE = published.PUBLISHED_SOURCE
FACETS = ("mode", "ratio", "combine", "lambda_con", "con_loss", "aug")
#: Config key spellings accepted for each facet (last component of a flattened key).
_ALIASES = {
    "mode": ("mode",),
    "ratio": ("ratio",),
    "combine": ("combine",),
    "lambda_con": ("lambda_con", "lambda3", "l3"),
    "con_loss": ("con_loss",),
    "aug": ("aug",),
}


@dataclass(frozen=True)
class ReportConfig:
    """What `hcdg report` reads and how it fills the paper-shaped tables.

    Attributes:
        runs: run folders or sweep folders (searched for run folders).
        out: the report folder (created; a non-empty folder must be an earlier report).
        title: page title.
        protocol: protocol of the paper-shaped tables; "authors" is the one of the paper's
            numbers (the authors' test code, docs/sources.md#authors-test-code). None = "authors" when some
            run has results under it, else "2.5d-gtroot-gtbone" (xyz-output runs), else any
            protocol present (e.g. "authors-gtcrops": uvd runs evaluated on GT boxes).
        root: STB root handling in the paper-shaped tables ("wrist": GT palm converted
            to a wrist, so the network's wrist is compared as it is; docs/sources.md#joint-orders).
        joints: joint set of the paper-shaped tables ("all": the paper's EPE over 21 joints).
        figures: extra PNG files shown in the report's "Figures" section (e.g. `hcdg viz`
            output); the paper's Figures 3-4 (``fig3*.png``, ``fig4*.png``) in a ``figures/``
            folder beside or inside a given run folder are found without it.
    """

    runs: tuple[str, ...] = ()
    out: str = ""
    title: str = "hcdg: image-free domain generalization via CLIP, results"
    protocol: str | None = None
    root: str = "wrist"
    joints: str = "all"
    figures: tuple[str, ...] = ()


# --------------------------------------------------------------------------- run facets


def run_facets(config: Mapping[str, Any]) -> dict[str, Any]:
    """The table-grouping facets of a run config (nested dict): mode, ratio, combine,
    lambda_con, con_loss, aug. Top-level keys win; else a unique nested key of that name.

    Normalised: facets that do not apply to the mode are None (baseline has no Branch2:
    no ratio, combine, lambda_con, con_loss; only ie+te has a ratio); aug is "clip"
    unless "normal"; floats are rounded to 6 decimals.
    """
    flat = store.flatten_config(config, prefix="")
    out: dict[str, Any] = {}
    for facet, names in _ALIASES.items():
        value = None
        for name in names:
            if name in flat:
                value = flat[name]
                break
            nested = [v for k, v in flat.items() if k.endswith("." + name)]
            if len(nested) == 1:
                value = nested[0]
                break
        out[facet] = value
    mode = str(out["mode"]).lower() if out["mode"] is not None else None
    out["mode"] = {"iete": "ie+te", "ie_te": "ie+te", "ie-te": "ie+te"}.get(mode, mode)
    out["aug"] = "normal" if str(out["aug"]).lower() == "normal" else "clip"
    for k in ("ratio", "lambda_con"):
        out[k] = None if out[k] is None else round(float(out[k]), 6)
    if out["aug"] != "normal":
        if out["mode"] == "baseline":
            out.update(ratio=None, combine=None, lambda_con=None, con_loss=None)
        elif out["mode"] != "ie+te":
            out["ratio"] = None
    return out


def _row_facets(match: Mapping[str, Any]) -> dict[str, Any]:
    """A published row's facets with the paper's defaults filled in, restricted to the
    facets that apply (so they can be compared with `run_facets`)."""
    full = {**published.DEFAULT_FACETS, **match}
    if full.get("aug") == "normal":
        keys = ["aug", "combine", "lambda_con"] + (["mode"] if "mode" in match else [])
    elif full.get("mode") == "baseline":
        keys = ["mode", "aug"]
    else:
        keys = ["mode", "aug", "combine", "lambda_con"] + (["ratio"] if full.get("mode") == "ie+te" else [])
    return {k: full[k] for k in keys}


def _matches(run: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    for k, v in want.items():
        got = run.get(k)
        if isinstance(v, float) or isinstance(got, float):
            if got is None or v is None or not math.isclose(float(got), float(v), abs_tol=1e-6):
                return False
        elif got != v:
            return False
    return True


# --------------------------------------------------------------------------- gathering


@dataclass
class RunInfo:
    """One run as the report sees it."""

    name: str
    folder: Path
    facets: dict[str, Any]
    seed: Any
    random_weights: bool
    summary: pd.DataFrame  # store.SUMMARY_SCHEMA rows of every evaluated target
    losses: pd.DataFrame | None
    group: str = ""  # store.paired.group_key: the config without its seed
    done: dict[str, Any] | None = None  # done.json of a finished training run
    steps: int | None = None  # steps trained (done.json, else the last metrics row)
    wall_s: float | None = None  # training seconds summed over the sessions in metrics.parquet
    val_epe_mm: float | None = None  # final validation EPE (done.json, else the last val row)
    val_mean_pose_epe_mm: float | None = None  # the same for predicting the mean training pose
    eval_files: list[str] = field(default_factory=list)  # results files read (finished model, all samples)
    set_aside: list[str] = field(default_factory=list)  # checkpoint / --limit / decoder evaluations not compared
    val_2d_px: float | None = None  # final validation 2D error of the heatmap argmax (crop px)
    val_mean_2d_px: float | None = None  # the same for the mean 2D layout of the validation crops

    @property
    def maps_localise(self) -> bool | None:
        """Whether the final heatmaps beat the mean 2D layout (None: not measured)."""
        return maps_localise(self.val_2d_px, self.val_mean_2d_px)


def _load_run(folder: Path, warnings: list[str]) -> RunInfo:
    record = read_run(folder)
    summaries = []
    used = store.result_files(folder, reference_only=True)
    set_aside = [p.name for p in store.result_files(folder) if p not in used]
    for path in used:
        try:
            summaries.append(store.target_summary(folder, path.stem))
        except HcdgError as exc:  # an unreadable result is refused, never dropped from the report
            raise HcdgError(f"{exc}; fix or re-run `hcdg eval` for it, or leave {folder} out") from None
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=list(store.SUMMARY_SCHEMA))
    if not summaries:
        warnings.append(f"{folder}: no evaluation results (eval/<target>.parquet); run `hcdg eval` first")
    losses = store.read_loss_curves(folder)  # unreadable: refused (one line naming the file)
    rw = store.random_weights_of(record) or bool(summary.get("random_weights", pd.Series([], dtype=bool)).any())
    info = RunInfo(
        name=folder.name, folder=folder, facets=run_facets(record["config"]), seed=record.get("seed"),
        random_weights=rw, summary=summary, losses=losses, group=paired.group_key(record["config"]),
        eval_files=[p.name for p in used], set_aside=set_aside,
    )  # fmt: skip
    _training_facts(info, warnings)
    return info


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _training_facts(info: RunInfo, warnings: list[str]) -> None:
    """Steps, wall time and final validation EPE from done.json and metrics.parquet."""
    if (info.folder / DONE_FILE).is_file():
        try:
            info.done = read_done(info.folder)
        except HcdgError as exc:
            warnings.append(str(exc))
    df = info.losses
    if info.done:
        info.steps = info.done.get("total_steps")
        info.val_epe_mm = _finite(info.done.get("val_epe_mm"))
        info.val_mean_pose_epe_mm = _finite(info.done.get("val_mean_pose_epe_mm"))
        info.val_2d_px = _finite(info.done.get("val_2d_px"))
        info.val_mean_2d_px = _finite(info.done.get("val_mean_2d_px"))
    if df is not None and len(df):
        if info.steps is None:
            info.steps = int(df["step"].max())
        val = df[df["val_epe_mm"].notna()]
        if info.val_epe_mm is None and len(val):
            info.val_epe_mm = _finite(val["val_epe_mm"].iloc[-1])
        if info.val_mean_pose_epe_mm is None and len(val) and "val_mean_pose_epe_mm" in val.columns:
            info.val_mean_pose_epe_mm = _finite(val["val_mean_pose_epe_mm"].iloc[-1])
        if info.val_2d_px is None and len(val) and {"val_2d_px", "val_mean_2d_px"} <= set(val.columns):
            info.val_2d_px = _finite(val["val_2d_px"].iloc[-1])
            info.val_mean_2d_px = _finite(val["val_mean_2d_px"].iloc[-1])
        if "wall_s" in df.columns and df["wall_s"].notna().any():
            w = df["wall_s"].dropna().to_numpy()
            # wall_s restarts at 0 in each (resumed) process: add up each session's last value
            ends = [w[i] for i in range(len(w)) if i == len(w) - 1 or w[i + 1] < w[i]]
            info.wall_s = float(sum(ends))
    if info.maps_localise is False:
        from hcdg.pipeline.localisation import no_location_message

        warnings.append(no_location_message(info.val_2d_px, info.val_mean_2d_px, str(info.folder)))


def clip_of(record: Mapping[str, Any]) -> str | None:
    """'hcdg-tiny (random weights)', 'ViT-B-32 (openai)', ... from a run's store fingerprint."""
    enc = (record.get("store_fingerprint") or {}).get("encoder") if isinstance(record.get("store_fingerprint"), Mapping) else None
    if not isinstance(enc, Mapping):
        return None
    synth = enc.get("synthetic_clip") if isinstance(enc.get("synthetic_clip"), Mapping) else None
    if synth is not None:  # `hcdg clip train` weights (store.clip_model): never to be read as OpenAI's
        arch = (synth.get("recipe") or {}).get("architecture", "?") if isinstance(synth.get("recipe"), Mapping) else "?"
        return f"{arch} (synthetic-hand CLIP, weights {str(synth.get('weights_sha256', '?'))[:12]}; not OpenAI's)"
    w = enc.get("weights") if isinstance(enc.get("weights"), Mapping) else {}
    kind = "random weights" if w.get("kind") == "random" else (w.get("tag") or w.get("kind") or "?")
    return f"{enc.get('model', '?')} ({kind})"


def run_facts(info: RunInfo) -> verdict.RunFacts:
    """What the verdict block needs of a run (config, done.json, CLIP weights, results read)."""
    record = read_run(info.folder)
    c, d = record["config"], info.done or {}
    rt = record.get("runtime") if isinstance(record.get("runtime"), Mapping) else {}
    return verdict.RunFacts(
        name=info.name, group=info.group, mode=info.facets["mode"], ratio=info.facets["ratio"],
        width_mult=c.get("width_mult"), input_size=c.get("input_size"), crop_scale=c.get("crop_scale"),
        batch_size=c.get("batch_size", rt.get("batch_size")), n_train=d.get("n_train"), steps=info.steps,
        clip=clip_of(record) if info.facets["mode"] != "baseline" else None, random_weights=info.random_weights,
        val_2d_px=_finite(d.get("val_2d_px")), val_mean_2d_px=_finite(d.get("val_mean_2d_px")),
        eval_files=tuple(info.eval_files), set_aside=tuple(info.set_aside),
    )  # fmt: skip


def load_runs(paths: tuple[str, ...] | list[str]) -> tuple[list[RunInfo], list[str]]:
    """The runs under `paths` (run or sweep folders) and the warnings met reading them."""
    warnings: list[str] = []
    return [_load_run(f, warnings) for f in find_run_dirs(paths)], warnings


def pick_root(available: Any, wanted: str) -> str:
    """The root a table or figure shows: `wanted` where the results have it, else wrist
    (STB's palm root exists only on STB and under some protocols)."""
    return wanted if wanted in set(available) else "wrist"


def root_of(run: RunInfo, target: str, cfg: ReportConfig) -> str:
    """The root the paper tables read for `target`: cfg.root where the run has it, else wrist."""
    s = run.summary
    if s.empty:
        return "wrist"
    sel = s[(s["target"] == target) & (s["protocol"] == cfg.protocol) & (s["joints"] == cfg.joints)]
    return pick_root(sel["root"], cfg.root)


def epe_of(run: RunInfo, target: str, cfg: ReportConfig) -> float | None:
    """The run's mean EPE on `target` under the report's protocol / root / joint set."""
    s = run.summary
    if s.empty:
        return None
    sel = s[(s["target"] == target) & (s["protocol"] == cfg.protocol) & (s["joints"] == cfg.joints)]
    sel = sel[sel["root"] == root_of(run, target, cfg)]
    if sel.empty:
        return None
    return float(sel["epe_mean_mm"].iloc[0])


# --------------------------------------------------------------------------- tables


def _label(runs: list[RunInfo]) -> str:
    return ", ".join(r.name + (" †" if r.random_weights else "") for r in runs)


PAIRED_CELLS = ("diff_mm", "ci_low_mm", "ci_high_mm", "beyond_noise_samples", "n_seeds_paired", "seed_diff_mm",
                "seed_ci_low_mm", "seed_ci_high_mm", "beyond_noise_seeds")  # fmt: skip


@dataclass
class Context:
    """What every re-run row needs besides its runs: the report config and the paired table."""

    cfg: ReportConfig
    paired: pd.DataFrame  # store.paired.PAIRED_COLUMNS rows under cfg.joints
    baseline_group: str | None


def _paired_cells(ctx: Context, members: list[RunInfo], target: str) -> dict[str, Any]:
    """The paired difference of a row's runs (one config group) on `target`, or {} when none."""
    if not members or ctx.paired.empty:
        return {}
    group = members[0].group
    if group == ctx.baseline_group:
        return {"is_baseline": True}
    p = ctx.paired
    root = root_of(members[0], target, ctx.cfg)
    sel = p[(p["group"] == group) & (p["target"] == target) & (p["protocol"] == ctx.cfg.protocol) & (p["root"] == root)]
    if sel.empty:
        return {}
    row = sel.iloc[0]
    return {k: row[k] for k in PAIRED_CELLS}


def _rerun_row(table: str, method: str, setting: str, source: str, per_target: dict[str, list[RunInfo]],
               ctx: Context, note: str = "") -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = {"table": table, "method": method, "setting": setting, "source": source}
    all_runs: list[RunInfo] = []
    for t in published.TARGETS:
        vals = [(r, v) for r in per_target.get(t, []) if (v := epe_of(r, t, ctx.cfg)) is not None]
        mean, std, n = stats.mean_std([v for _, v in vals])
        row[f"{t}_epe_mm"] = mean
        row[f"{t}_epe_std_mm"] = std
        row[f"{t}_n_runs"] = n
        cells = _paired_cells(ctx, [r for r, _ in vals], t)
        row[f"{t}_is_baseline"] = bool(cells.pop("is_baseline", False))
        for k in PAIRED_CELLS:
            row[f"{t}_{k}"] = cells.get(k, math.nan)
        all_runs += [r for r, _ in vals if r not in all_runs]
    row["runs"] = _label(all_runs)
    row["random_weights"] = any(r.random_weights for r in all_runs)
    row["note"] = "; ".join(filter(None, [note, no_location_note(all_runs)]))
    return row


def no_location_note(runs: list[RunInfo]) -> str:
    """The tables' flag for runs whose heatmaps do not beat the mean 2D layout ("" when none)."""
    bad = [r for r in runs if r.maps_localise is False]
    if not bad:
        return ""
    return f"heatmaps carry no location (val 2D ≥ mean layout): {_label(bad)}"


def _by_group(per_target: dict[str, list[RunInfo]]) -> list[dict[str, list[RunInfo]]]:
    """Split each target's runs by config group (`RunInfo.group`); the i-th group of every
    target goes into the i-th row (one row when every target has one config)."""
    split: dict[str, list[list[RunInfo]]] = {}
    for t, runs in per_target.items():
        groups: dict[str, list[RunInfo]] = {}
        for r in runs:
            groups.setdefault(r.group, []).append(r)
        split[t] = [groups[g] for g in sorted(groups)]
    n = max((len(v) for v in split.values()), default=0)
    return [{t: v[i] for t, v in split.items() if i < len(v)} for i in range(n)]


def default_con_loss() -> str:
    """The L_con form a run gets when it does not choose one (`TrainConfig.con_loss`)."""
    import dataclasses

    from hcdg.stages.train import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}["con_loss"].default


def con_loss_label(form: Any) -> str:
    """", FORM L_con" for a run whose L_con form is not the run default ("" for the
    default and for runs without Branch2). Every form is a re-run of the paper's row:
    the paper prints Eq. 4 and no other; the forms are readings of it (docs/model.md)."""
    return "" if form in (None, default_con_loss()) else f", {form} L_con"


def _source(con_loss: Any, cfg: ReportConfig) -> str:
    return f"re-run{con_loss_label(con_loss)} ({cfg.protocol}, STB root {cfg.root})"


def paper_table(key: str, runs: list[RunInfo], cfg: ReportConfig | Context) -> pd.DataFrame:
    """One paper-shaped table: each published row, then the re-runs of its config
    (one row per L_con form and config group found), then re-run configs the paper does
    not print. `cfg` may be a bare ReportConfig (then no paired differences)."""
    ctx = cfg if isinstance(cfg, Context) else Context(cfg=cfg, paired=pd.DataFrame(), baseline_group=None)
    rows: list[dict[str, Any]] = []
    shown: set[tuple[str, str]] = set()  # (target, run folder) already in a re-run row: never twice
    for prow in published.rows_of(key):
        rows.append({
            "table": key, "method": prow.method, "setting": prow.setting, "source": PUBLISHED_SOURCE,
            "stb_epe_mm": prow.stb_epe_mm, "rhd_epe_mm": prow.rhd_epe_mm, "stb_n_runs": 0, "rhd_n_runs": 0,
            "runs": "", "random_weights": False, "note": prow.note,
        })  # fmt: skip
        if not prow.match:
            continue
        per_form: dict[Any, dict[str, list[RunInfo]]] = {}
        for t, match in prow.match.items():
            want = _row_facets(match)
            for r in runs:
                if _matches(r.facets, want):
                    per_form.setdefault(r.facets["con_loss"], {}).setdefault(t, []).append(r)
        default = default_con_loss()
        for form in sorted(per_form, key=lambda f: (f not in (None, default), str(f))):
            parts = _by_group(per_form[form])
            for i, part in enumerate(parts):
                note = f"config {i + 1} of {len(parts)} (differs beyond the seed)" if len(parts) > 1 else ""
                rows.append(_rerun_row(key, prow.method, prow.setting, _source(form, ctx.cfg), part, ctx, note))
                shown |= {(t, str(r.folder)) for t, members in part.items() for r in members
                          if epe_of(r, t, ctx.cfg) is not None}
    rows += _extra_rows(key, runs, ctx, shown)
    return pd.DataFrame(rows)


def _extra_rows(key: str, runs: list[RunInfo], ctx: Context, shown: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Re-run configurations a table's published rows do not cover (e.g. another ratio); a
    (target, run) already in a row above is not repeated."""
    printed = {(r.method, r.setting) for r in published.rows_of(key)}
    groups: dict[tuple, list[RunInfo]] = {}
    for r in runs:
        f = r.facets
        default_rest = f["aug"] == "clip" and f["combine"] == "concat"
        if key in ("3", "4a") and f["mode"] == "ie+te" and default_rest and _close(f["lambda_con"], 0.1):
            setting = f"{f['ratio']:g}" if f["ratio"] is not None else "?"
            if key == "3":
                groups.setdefault((f"IE+TE, ratio {setting}", "", f["con_loss"], r.group), []).append(r)
            elif ("IE+TE", setting) not in printed:
                groups.setdefault(("IE+TE", setting, f["con_loss"], r.group), []).append(r)
        elif key == "3" and f["mode"] == "baseline" and f["aug"] == "clip":
            groups.setdefault(("Baseline", "", None, r.group), []).append(r)
        elif key == "5" and f["mode"] == "ie+te" and default_rest and _close(f["ratio"], 0.6):
            setting = f"{f['lambda_con']:g}" if f["lambda_con"] is not None else "?"
            if ("IE+TE", setting) not in printed:
                groups.setdefault(("IE+TE", setting, f["con_loss"], r.group), []).append(r)
    out = []
    for (method, setting, form, _group), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]), kv[0][3])
    ):
        if key != "3":
            note = "setting not in the paper"
        elif method == "Baseline":
            note = "no CLIP (Table 4(a) baseline), for reference"
        else:
            note = "one ratio for both targets"
        per_target = {t: [r for r in members if (t, str(r.folder)) not in shown] for t in published.TARGETS}
        if not any(per_target.values()):
            continue
        above = [t.upper() for t in published.TARGETS if not per_target[t]]
        if above:
            note += f"; {', '.join(above)}: in the row above"
        out.append(_rerun_row(key, method, setting, _source(form, ctx.cfg), per_target, ctx, note))
    return out


def _close(a: Any, b: float) -> bool:
    return a is not None and math.isclose(float(a), b, abs_tol=1e-6)


def full_table(runs: list[RunInfo]) -> pd.DataFrame:
    """Every summary row of every run (all targets, protocols, roots, joint sets)."""
    frames = []
    for r in runs:
        if r.summary.empty:
            continue
        s = r.summary.drop(columns=[c for c in ("pck", "pck_thresholds_mm") if c in r.summary.columns]).copy()
        s = s[[c for c in s.columns if not c.startswith(store.CFG_PREFIX) and c not in FACETS]]
        s["run"] = r.name
        for k in FACETS:
            s[k] = r.facets[k]
        s["random_weights"] = r.random_weights
        frames.append(s)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run: facets, seed, config group, steps, wall time, final validation EPE."""
    rows = []
    for r in runs:
        targets = sorted(set(r.summary["target"])) if not r.summary.empty else []
        rows.append({"run": r.name, **r.facets, "seed": r.seed, "group": r.group,
                     "steps": r.steps, "finished": r.done is not None,
                     "wall_min": None if r.wall_s is None else r.wall_s / 60.0,
                     "val_epe_mm": r.val_epe_mm, "val_mean_pose_epe_mm": r.val_mean_pose_epe_mm,
                     "val_2d_px": r.val_2d_px, "val_mean_2d_px": r.val_mean_2d_px,
                     "maps_localise": r.maps_localise,
                     "random_weights": r.random_weights, "targets": ", ".join(targets) or "-",
                     "folder": str(r.folder)})  # fmt: skip
    return pd.DataFrame(rows)


def baseline_group(runs: list[RunInfo], warnings: list[str]) -> str | None:
    """The config group of the re-run baseline (mode baseline, CLIP augmentation): the one
    with the most runs when several configs qualify (named in a warning)."""
    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        if r.facets["mode"] == "baseline" and r.facets["aug"] == "clip" and not r.summary.empty:
            groups.setdefault(r.group, []).append(r)
    if not groups:
        return None
    best = max(sorted(groups), key=lambda g: len(groups[g]))
    if len(groups) > 1:
        warnings.append(f"{len(groups)} baseline configs found; differences are taken to the one of "
                        f"{_label(groups[best])}")  # fmt: skip
    return best


def paired_context(runs: list[RunInfo], cfg: ReportConfig, warnings: list[str]) -> Context:
    """The paired table of every run against the baseline group (empty without a baseline)."""
    base = baseline_group(runs, warnings)
    table = pd.DataFrame(columns=list(paired.PAIRED_COLUMNS))
    if base is not None:
        try:
            epe = paired.sample_epe_table([r.folder for r in runs if not r.summary.empty], joints=cfg.joints)
            table = paired.paired_differences(epe, base)
        except HcdgError as exc:
            warnings.append(str(exc))
    return Context(cfg=cfg, paired=table, baseline_group=base)


FIGURE_PATTERNS = ("fig3*.png", "fig4*.png")


def paper_figures(cfg: ReportConfig) -> dict[str, bytes]:
    """name -> PNG bytes of the extra figures: cfg.figures, then Figures 3-4 found in a
    ``figures/`` folder inside or beside the given run folders."""
    paths: list[Path] = [Path(f) for f in cfg.figures]
    for p in paths:
        if not p.is_file():
            raise HcdgError(f"--figure {p}: no such file (expected a PNG)")
    for run in cfg.runs:
        for folder in (Path(run) / "figures", Path(run).resolve().parent / "figures"):
            if folder.is_dir():
                paths += sorted(q for pat in FIGURE_PATTERNS for q in folder.glob(pat))
    out: dict[str, bytes] = {}
    for p in paths:
        data = p.read_bytes()
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            raise HcdgError(f"--figure {p}: not a PNG file")
        out.setdefault(p.stem, data)
    return out


# --------------------------------------------------------------------------- figure data


def ratio_points(runs: list[RunInfo], target: str, cfg: ReportConfig) -> dict[str, dict[float, list[float]]]:
    """Table 4(a)'s re-run points for `target`: L_con label ("" = the run default form, else
    ", FORM L_con") -> ratio (IE = 1, TE = 0) -> EPEs mm of the runs there. Every L_con form
    is a re-run of the paper's rows, so none is dropped; the default form comes first."""
    pts: dict[Any, dict[float, list[float]]] = {}
    for r in runs:
        f = r.facets
        if f["aug"] != "clip" or f["combine"] != "concat" or f["lambda_con"] is None:
            continue
        if not math.isclose(f["lambda_con"], 0.1):
            continue
        x = {"ie+te": f["ratio"], "ie": 1.0, "te": 0.0}.get(f["mode"])
        if x is None or (v := epe_of(r, target, cfg)) is None:
            continue
        pts.setdefault(con_loss_label(f["con_loss"]), {}).setdefault(float(x), []).append(v)
    return {label: pts[label] for label in sorted(pts)}  # "" (the default form) sorts first


def baseline_epe_mm(runs: list[RunInfo], target: str, cfg: ReportConfig) -> float | None:
    """Mean EPE on `target` of the re-run baselines (mode baseline, CLIP augmentation); None without."""
    base = [v for r in runs if r.facets["mode"] == "baseline" and r.facets["aug"] == "clip"
            and (v := epe_of(r, target, cfg)) is not None]  # fmt: skip
    return sum(base) / len(base) if base else None


def published_ratio_points(target: str) -> list[tuple[float, float]]:
    """Table 4(a) as published for `target`: (ratio, EPE mm), IE at ratio 1, sorted by ratio."""
    rows = published.rows_of("4a")
    pub = [(float(p.setting), p.epe_mm(target)) for p in rows if p.method == "IE+TE"]
    pub.append((1.0, next(p.epe_mm(target) for p in rows if p.method == "IE")))
    return sorted(pub)


def pck_panels(runs: list[RunInfo], cfg: ReportConfig) -> dict[str, list[render.PckPanel]]:
    """target -> one PCK panel per protocol (in `PROTOCOLS` order) under the report's joint
    set and root (`pick_root` over the protocol's rows), one curve per run."""
    from hcdg.pipeline.protocols import PROTOCOLS

    summaries = [r.summary.assign(run=r.name) for r in runs if not r.summary.empty]
    if not summaries:
        return {}
    allsum = pd.concat(summaries, ignore_index=True)
    out: dict[str, list[render.PckPanel]] = {}
    for t in sorted(set(allsum["target"])):
        sel = allsum[(allsum["target"] == t) & (allsum["joints"] == cfg.joints)]
        panels = []
        for p in (p for p in PROTOCOLS if p in set(sel["protocol"])):
            ps = sel[sel["protocol"] == p]
            root = pick_root(ps["root"], cfg.root)
            curves = [(row["run"], list(row["pck_thresholds_mm"]), list(row["pck"]))
                      for _, row in ps[ps["root"] == root].iterrows()]  # fmt: skip
            panels.append(render.PckPanel(protocol=p, root=root, curves=curves))
        out[t] = panels
    return out


def figure_data(runs: list[RunInfo], cfg: ReportConfig) -> render.FigureData:
    """Everything the report's figures plot, computed here; `report_render.figures` draws it."""
    from hcdg.pipeline.protocols import PAPER_PROTOCOL

    shown = cfg.protocol == PAPER_PROTOCOL  # published numbers only beside their own protocol
    return render.FigureData(
        protocol=str(cfg.protocol), published_protocol=shown,
        ratio_points={t: ratio_points(runs, t, cfg) for t in published.TARGETS},
        baseline_epe_mm={t: baseline_epe_mm(runs, t, cfg) for t in published.TARGETS},
        published_ratio_points={t: published_ratio_points(t) if shown else [] for t in published.TARGETS},
        pck=pck_panels(runs, cfg),
        losses=[(r.name, r.losses) for r in runs if r.losses is not None and len(r.losses)],
    )


# --------------------------------------------------------------------------- the stage


#: What a report folder holds: a folder holding only these (a report of an hcdg before reports were
#: staged, killed before its marker) is an earlier report, replaced by the rerun.
REPORT_ENTRIES = {"tables", "figures", "report.html", "report.md", REPORT_MARKER}


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HcdgError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_MARKER).is_file():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_ENTRIES)
        if foreign:
            raise HcdgError(f"--out {out}: exists, is not empty and holds no earlier report ({foreign[0]!r}); "
                            "use a new folder")


def run(cfg: ReportConfig) -> dict[str, Any]:
    """Build the report; returns {"html", "markdown", "tables": [...], "runs": n, "warnings": [...]}."""
    import dataclasses

    from hcdg.pipeline.protocols import PAPER_PROTOCOL, PROTOCOLS, ROOTS
    from hcdg.store.schema import current_protocol_name

    if cfg.protocol is not None:
        cfg = dataclasses.replace(cfg, protocol=current_protocol_name(cfg.protocol))
    if not cfg.runs:
        raise HcdgError("report: give at least one run folder or sweep folder")
    if not cfg.out:
        raise HcdgError("report: --out REPORT_DIR is required")
    if cfg.protocol is not None and cfg.protocol not in PROTOCOLS:
        raise HcdgError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {cfg.protocol!r}")
    if cfg.root not in ROOTS:
        raise HcdgError(f"--root: expected one of {', '.join(ROOTS)}, got {cfg.root!r}")
    if cfg.joints not in store.JOINT_SETS:
        raise HcdgError(f"--joints: expected one of {', '.join(store.JOINT_SETS)}, got {cfg.joints!r}")
    runs, warnings = load_runs(cfg.runs)
    if cfg.protocol is None:
        present = {p for r in runs if len(r.summary) for p in r.summary["protocol"]}
        # the paper's protocol, else hcdg's 2.5D reading, else any present (e.g. uvd runs on GT boxes)
        order = (PAPER_PROTOCOL, "2.5d-gtroot-gtbone", *PROTOCOLS)
        cfg = dataclasses.replace(cfg, protocol=next((p for p in order if p in present), "2.5d-gtroot-gtbone"))
    extra_figures = paper_figures(cfg)
    final = Path(cfg.out)
    _prepare_out(final)
    with staged_dir(final, "report") as out:  # written whole beside --out, renamed at the end
        result = _write(cfg, out, runs, warnings, extra_figures)
    return {**result, "html": str(final / "report.html"), "markdown": str(final / "report.md"),
            "tables": [str(final / Path(p).relative_to(out)) for p in result["tables"]]}


def _write(cfg: ReportConfig, out: Path, runs: list[RunInfo], warnings: list[str],
           extra_figures: dict[str, bytes]) -> dict[str, Any]:
    from hcdg.pipeline.protocols import PROTOCOLS

    ctx = paired_context(runs, cfg, warnings)
    tables: dict[str, pd.DataFrame] = {f"table{spec.key}": paper_table(spec.key, runs, ctx) for spec in published.TABLES}
    tables["paired"] = ctx.paired
    tables["full_results"] = full_table(runs)
    tables["runs"] = runs_table(runs)
    written = []
    for name, frame in tables.items():
        for ext in ("csv", "parquet"):
            path = out / "tables" / f"{name}.{ext}"
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False) if ext == "csv" else frame.to_parquet(tmp, index=False)
            written.append(str(path))

    figures = {**render.figures(figure_data(runs, cfg)), **{f"paper_{k}": v for k, v in extra_figures.items()}}
    for name, png in figures.items():
        with atomic_path(out / "figures" / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    facts = [run_facts(r) for r in runs]
    page = render.Page(cfg=cfg, runs=runs, tables=tables, figures=figures, warnings=warnings,
                       created=time.strftime("%Y-%m-%d %H:%M:%S"), baseline_group=ctx.baseline_group,
                       verdict=verdict.verdict(ctx.paired, facts, cfg.root, PROTOCOLS))  # fmt: skip
    atomic_write_text(out / "report.html", render.html(page))
    atomic_write_text(out / "report.md", render.markdown(page))
    atomic_write_json(out / REPORT_MARKER, {
        "config": to_dict(cfg), "run_folders": [str(r.folder) for r in runs], "created": page.created,
        "warnings": warnings,
    })  # fmt: skip
    return {"html": str(out / "report.html"), "markdown": str(out / "report.md"), "tables": written,
            "runs": len(runs), "warnings": warnings}  # fmt: skip
