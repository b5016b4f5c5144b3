"""`hcdg report`: the paper's results section, filled from the given runs.

Reads run folders (or sweep folders holding them): `run.json` (the training config),
`eval/<target>-summary.parquet` (or the per-sample file, summarised here) and
`metrics.parquet` (loss curves). Writes into the report folder:

* ``report.html``: self-contained (inline CSS, figures as base64 PNG);
* ``report.md`` + ``figures/*.png``: the Markdown twin;
* ``tables/*.csv`` and ``tables/*.parquet``: every table, machine-readable;
* ``report.json``: what went in (run folders, protocol, root), also the folder's marker.

Paper-shaped tables (Tables 3-6) group runs by their config (mode, ratio, combine,
lambda_con, con_loss, aug) and put re-run numbers beside the paper's published rows,
which are labelled "as published, not re-run". They use one protocol (default the
paper's, ``authors``, when any run has results under it, else ``2.5d-gtroot-gtbone``) and
one STB root handling (default ``wrist``); the full table
lists every protocol, root and joint set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hcdg.pipeline import published
from hcdg.pipeline.config import to_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.stages import report_render as render
from hcdg.store import results as store
from hcdg.store.atomic import atomic_path, atomic_write_json, atomic_write_text
from hcdg.store.runs import read_run

REPORT_MARKER = "report.json"
PUBLISHED_SOURCE = "as published, not re-run"
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
            numbers (the authors' test code, PROTOCOL.md §4). None = "authors" when some
            run has results under it, else "2.5d-gtroot-gtbone" (xyz-output runs).
        root: STB root handling in the paper-shaped tables ("wrist": GT palm converted
            to a wrist, so the network's wrist is compared as it is; PROTOCOL.md §3).
        joints: joint set of the paper-shaped tables ("all": the paper's EPE over 21 joints).
    """

    runs: tuple[str, ...] = ()
    out: str = ""
    title: str = "hcdg: image-free domain generalization via CLIP, results"
    protocol: str | None = None
    root: str = "wrist"
    joints: str = "all"


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


def _load_run(folder: Path, warnings: list[str]) -> RunInfo:
    record = read_run(folder)
    summaries = []
    for path in store.result_files(folder):
        target = path.stem
        spath = store.summary_path(folder, target)
        try:
            if spath.is_file():
                summaries.append(store.read_summary(spath))
            else:
                summaries.append(store.summarise_results(store.read_results(path)))
        except HcdgError as exc:
            warnings.append(str(exc))
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=list(store.SUMMARY_SCHEMA))
    if not summaries:
        warnings.append(f"{folder}: no evaluation results (eval/<target>.parquet); run `hcdg eval` first")
    try:
        losses = store.read_loss_curves(folder)
    except HcdgError as exc:
        warnings.append(str(exc))
        losses = None
    rw = store.random_weights_of(record) or bool(summary.get("random_weights", pd.Series([], dtype=bool)).any())
    return RunInfo(
        name=folder.name, folder=folder, facets=run_facets(record.get("config", {})), seed=record.get("seed"),
        random_weights=rw, summary=summary, losses=losses,
    )  # fmt: skip


def load_runs(paths: tuple[str, ...] | list[str]) -> tuple[list[RunInfo], list[str]]:
    """The runs under `paths` (run or sweep folders) and the warnings met reading them."""
    warnings: list[str] = []
    return [_load_run(f, warnings) for f in store.find_run_dirs(paths)], warnings


def epe_of(run: RunInfo, target: str, cfg: ReportConfig) -> float | None:
    """The run's mean EPE on `target` under the report's protocol / root / joint set."""
    s = run.summary
    if s.empty:
        return None
    sel = s[(s["target"] == target) & (s["protocol"] == cfg.protocol) & (s["joints"] == cfg.joints)]
    roots = set(sel["root"])
    root = cfg.root if cfg.root in roots else "wrist"
    sel = sel[sel["root"] == root]
    if sel.empty:
        return None
    return float(sel["epe_mean_mm"].iloc[0])


# --------------------------------------------------------------------------- tables


def _label(runs: list[RunInfo]) -> str:
    return ", ".join(r.name + (" †" if r.random_weights else "") for r in runs)


def _rerun_row(table: str, method: str, setting: str, source: str, per_target: dict[str, list[RunInfo]],
               cfg: ReportConfig, note: str = "") -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = {"table": table, "method": method, "setting": setting, "source": source}
    all_runs: list[RunInfo] = []
    for t in published.TARGETS:
        vals = [(r, v) for r in per_target.get(t, []) if (v := epe_of(r, t, cfg)) is not None]
        row[f"{t}_epe_mm"] = sum(v for _, v in vals) / len(vals) if vals else math.nan
        row[f"{t}_n_runs"] = len(vals)
        all_runs += [r for r, _ in vals if r not in all_runs]
    row["runs"] = _label(all_runs)
    row["random_weights"] = any(r.random_weights for r in all_runs)
    row["note"] = note
    return row


def _source(con_loss: Any, cfg: ReportConfig) -> str:
    variant = "" if con_loss in (None, "paper") else f", {con_loss} L_con"
    return f"re-run{variant} ({cfg.protocol}, STB root {cfg.root})"


def paper_table(key: str, runs: list[RunInfo], cfg: ReportConfig) -> pd.DataFrame:
    """One paper-shaped table: each published row, then the re-runs of its config
    (one row per L_con form found), then re-run configs the paper does not print."""
    rows: list[dict[str, Any]] = []
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
        for form in sorted(per_form, key=lambda f: (f not in (None, "paper"), str(f))):
            rows.append(_rerun_row(key, prow.method, prow.setting, _source(form, cfg), per_form[form], cfg))
    rows += _extra_rows(key, runs, cfg, rows)
    return pd.DataFrame(rows)


def _extra_rows(key: str, runs: list[RunInfo], cfg: ReportConfig, done: list[dict]) -> list[dict[str, Any]]:
    """Re-run configurations a table's published rows do not cover (e.g. another ratio)."""
    printed = {(r.method, r.setting) for r in published.rows_of(key)}
    groups: dict[tuple, list[RunInfo]] = {}
    for r in runs:
        f = r.facets
        default_rest = f["aug"] == "clip" and f["combine"] == "concat"
        if key in ("3", "4a") and f["mode"] == "ie+te" and default_rest and _close(f["lambda_con"], 0.1):
            setting = f"{f['ratio']:g}" if f["ratio"] is not None else "?"
            if key == "3":
                groups.setdefault((f"IE+TE, ratio {setting}", "", f["con_loss"]), []).append(r)
            elif ("IE+TE", setting) not in printed:
                groups.setdefault(("IE+TE", setting, f["con_loss"]), []).append(r)
        elif key == "3" and f["mode"] == "baseline" and f["aug"] == "clip":
            groups.setdefault(("Baseline", "", None), []).append(r)
        elif key == "5" and f["mode"] == "ie+te" and default_rest and _close(f["ratio"], 0.6):
            setting = f"{f['lambda_con']:g}" if f["lambda_con"] is not None else "?"
            if ("IE+TE", setting) not in printed:
                groups.setdefault(("IE+TE", setting, f["con_loss"]), []).append(r)
    out = []
    for (method, setting, form), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))):
        if key != "3":
            note = "setting not in the paper"
        elif method == "Baseline":
            note = "no CLIP (Table 4(a) baseline), for reference"
        else:
            note = "one ratio for both targets"
        per_target = {t: members for t in published.TARGETS}
        out.append(_rerun_row(key, method, setting, _source(form, cfg), per_target, cfg, note))
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
    rows = []
    for r in runs:
        targets = sorted(set(r.summary["target"])) if not r.summary.empty else []
        rows.append({"run": r.name, "folder": str(r.folder), **r.facets, "seed": r.seed,
                     "random_weights": r.random_weights, "targets": ", ".join(targets) or "-",
                     "loss_rows": 0 if r.losses is None else len(r.losses)})  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the stage


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HcdgError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_MARKER).is_file():
        raise HcdgError(f"--out {out}: exists, is not empty and holds no earlier report; use a new folder")
    out.mkdir(parents=True, exist_ok=True)


def run(cfg: ReportConfig) -> dict[str, Any]:
    """Build the report; returns {"html", "markdown", "tables": [...], "runs": n, "warnings": [...]}."""
    import dataclasses

    from hcdg.pipeline.protocols import PAPER_PROTOCOL, PROTOCOLS, ROOTS, canonical_name

    if cfg.protocol is not None:
        cfg = dataclasses.replace(cfg, protocol=canonical_name(cfg.protocol))
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
        has_paper = any((r.summary["protocol"] == PAPER_PROTOCOL).any() for r in runs if len(r.summary))
        cfg = dataclasses.replace(cfg, protocol=PAPER_PROTOCOL if has_paper else "2.5d-gtroot-gtbone")
    out = Path(cfg.out)
    _prepare_out(out)

    tables: dict[str, pd.DataFrame] = {f"table{spec.key}": paper_table(spec.key, runs, cfg) for spec in published.TABLES}
    tables["full_results"] = full_table(runs)
    tables["runs"] = runs_table(runs)
    written = []
    for name, frame in tables.items():
        for ext in ("csv", "parquet"):
            path = out / "tables" / f"{name}.{ext}"
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False) if ext == "csv" else frame.to_parquet(tmp, index=False)
            written.append(str(path))

    figures = render.figures(runs, cfg)
    for name, png in figures.items():
        with atomic_path(out / "figures" / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    for stale in (out / "figures").glob("*.png"):  # an earlier report's figure this one lacks
        if stale.stem not in figures:
            stale.unlink()
    page = render.Page(cfg=cfg, runs=runs, tables=tables, figures=figures, warnings=warnings,
                       created=time.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    atomic_write_text(out / "report.html", render.html(page))
    atomic_write_text(out / "report.md", render.markdown(page))
    atomic_write_json(out / REPORT_MARKER, {
        "config": to_dict(cfg), "run_folders": [str(r.folder) for r in runs], "created": page.created,
        "warnings": warnings,
    })  # fmt: skip
    return {"html": str(out / "report.html"), "markdown": str(out / "report.md"), "tables": written,
            "runs": len(runs), "warnings": warnings}  # fmt: skip
