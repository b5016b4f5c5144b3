"""Rendering for `hcdg report`: matplotlib figures (Agg, PNG bytes), the HTML page and
its Markdown twin. It only draws and formats what `stages.report` computed (`FigureData`,
`Page`); no file I/O and no imports of the report stage: `stages.report` decides what is
shown and where it goes."""

from __future__ import annotations

import base64
import html as _html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from hcdg.pipeline import published

TARGET_TITLES = {"stb": "FreiHAND→STB", "rhd": "FreiHAND→RHD", "freihand": "FreiHAND→FreiHAND"}

PROTOCOL_NOTES = {
    "authors": "the paper authors' test code (their Rhp.py / STB.py evaluate_detailed): the network's normalised "
               "uvd (RHD: regressed uv; STB: argmax of the upsampled last-stage heatmap), their depth decoding, GT "
               "root depth and intrinsics, their crop affine; camera-frame EPE, no alignment. The paper's numbers "
               "use this protocol; it applies to uvd-output runs (--target uvd, or `hcdg import authors`).",
    "authors-gtcrops": "the authors' test computation as `authors`, on hcdg's ground-truth keypoint boxes instead "
                       "of their released boxes (eval --crops gt); NOT the paper's protocol.",
    "2.5d-gtroot-gtbone": "hcdg's 2.5D reading (formerly `gtroot-2.5d`): 2D from the heatmaps, network relative "
                          "depth scaled by the GT bone length, GT root depth and intrinsics; camera-frame EPE, no "
                          "alignment (root x/y error included). NOT the authors' computation.",
    "rr-gtscale": "hand3d (Zimmermann & Brox 2017): root-relative prediction scaled by the GT bone length and "
                  "placed at the GT root; measures articulation and orientation.",
    "pa": "FreiHAND toolbox (eval.py align_w_scale): Procrustes alignment with scale (centre, scale, rotate), "
          "reflections admitted as the toolbox admits them; measures articulation only.",
    "pa-proper": "as pa, but proper rotations only (det R = +1), so a mirror-image (e.g. depth-flipped) prediction "
                 "is not forgiven. Result files from before this split called it pa.",
}  # fmt: skip
ROOT_NOTES = {
    "wrist": "STB's GT palm converted to a wrist (wrist = mid_MCP + 2.2 (palm - mid_MCP)); the network's wrist is "
             "compared as it is. FreiHAND and RHD: their own wrist.",
    "palm": "STB: a palm point (wrist + middle MCP)/2 derived from the prediction replaces its joint 0 and "
            "is compared with the GT palm. RHD and FreiHAND, rr-gtscale only: hand3d's RHD reading, joint 0 and "
            "root of both GT and prediction = (wrist + middle MCP)/2.",
}  # fmt: skip

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1340px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.scroll{max-width:100%;overflow-x:auto;margin:.6em 0 1.2em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word;
max-width:24em}th{font-weight:600}
td.num{white-space:nowrap}td.better,li.better{background:#e3f4e3}td.worse,li.worse{background:#fbe3e1}
.verdict{border:1px solid #999;background:#fcfcfc;padding:.4em 1em;margin:1em 0}.verdict li{margin:.2em 0}
span.unrel{color:#a15c00;font-weight:600}
table.data td,table.data th{white-space:nowrap;max-width:none}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.published td{color:#666;font-style:italic;background:#fafafa}
.banner{border:2px solid #c0392b;background:#fdecea;padding:.8em 1em;margin:1em 0;font-weight:bold}
.warn{border:1px solid #e0a800;background:#fff8e1;padding:.5em 1em;margin:1em 0}
.caption{color:#555;font-size:.9em}img{max-width:100%}code{background:#f3f3f3;padding:0 .2em}
"""


class Settings(Protocol):
    """What the page shows of the report's settings (`stages.report.ReportConfig` has these)."""

    @property
    def title(self) -> str: ...
    @property
    def protocol(self) -> str | None: ...
    @property
    def root(self) -> str: ...
    @property
    def joints(self) -> str: ...


class RunView(Protocol):
    """What the page shows of one run (`stages.report.RunInfo` has these)."""

    @property
    def name(self) -> str: ...
    @property
    def random_weights(self) -> bool: ...


@dataclass
class PckPanel:
    """One PCK panel: a protocol under one root, one curve per run."""

    protocol: str
    root: str
    curves: list[tuple[str, list[float], list[float]]]  # (run name, thresholds mm, PCK in [0, 1])


@dataclass
class FigureData:
    """What the report's figures plot (computed by `stages.report.figure_data`)."""

    protocol: str  # of the EPEs in ratio_points
    published_protocol: bool  # protocol is the one the published numbers were measured with
    ratio_points: dict[str, dict[str, dict[float, list[float]]]]  # target -> L_con label -> ratio -> EPEs mm
    baseline_epe_mm: dict[str, float | None]  # target -> mean EPE of the re-run baseline (no CLIP)
    published_ratio_points: dict[str, list[tuple[float, float]]]  # target -> (ratio, EPE mm); {} off-protocol
    pck: dict[str, list[PckPanel]]  # target -> panels
    losses: list[tuple[str, pd.DataFrame]]  # (run name, metrics.parquet rows), runs with a log only


@dataclass
class Page:
    cfg: Settings
    runs: Sequence[RunView]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes]
    warnings: list[str]
    created: str
    baseline_group: str | None = None
    verdict: Any = None  # pipeline.verdict.Verdict


# --------------------------------------------------------------------------- figures


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # no bbox_inches="tight": it draws twice (~2x slower)
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figures(data: FigureData) -> dict[str, bytes]:
    """name -> PNG bytes: ratio_ablation, pck_<target> (one per evaluated target), loss_curves, val_curves."""
    plt = _pyplot()
    out: dict[str, bytes] = {}

    # Table 4(a) as a plot: EPE vs ratio (IE = ratio 1, TE = ratio 0), published beside.
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.92)
    colours = {"stb": "tab:blue", "rhd": "tab:orange"}
    styles = ("o-", "s:", "^-.", "v--", "D:")
    for t in published.TARGETS:
        for i, (label, pts) in enumerate(data.ratio_points.get(t, {}).items()):
            xs = sorted(pts)
            ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], styles[i % len(styles)],
                    color=colours[t], label=f"{TARGET_TITLES[t]} re-run{label}")
        base = data.baseline_epe_mm.get(t)
        if base is not None:
            ax.axhline(base, color=colours[t], lw=1.2, ls="-", alpha=0.45,
                       label=f"{TARGET_TITLES[t]} re-run baseline (no CLIP)")  # fmt: skip
        pub = data.published_ratio_points.get(t, [])
        if pub:  # published numbers only beside their own protocol (`FigureData`)
            ax.plot([p[0] for p in pub], [p[1] for p in pub], "x--", color=colours[t], alpha=0.6,
                    label=f"{TARGET_TITLES[t]} as published")  # fmt: skip
    ax.set_xlim(-0.05, 1.05)  # the whole range of r, however few ratios were run
    ax.margins(y=0.15)
    ax.set_xlabel("ratio r (image-feature weight; IE = 1, TE = 0)")
    ax.set_ylabel(f"EPE mm, re-runs under protocol {data.protocol}", fontsize=9)
    ax.set_title("Table 4(a): mixing ratio" + ("" if data.published_protocol else
                                               " (published numbers: protocol authors only)"), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out["ratio_ablation"] = _png(fig)

    # PCK curves per target: one panel per protocol, one line per run.
    for t, panels in data.pck.items():
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        fig.subplots_adjust(left=0.3 / fig.get_figwidth() * 2.2, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
        for ax, panel in zip(axes[0], panels):
            for run, thresholds_mm, pck in panel.curves:
                ax.plot(thresholds_mm, pck, label=run)
            ax.set_title(f"{TARGET_TITLES.get(t, t)}: {panel.protocol} (root {panel.root})", fontsize=9)
            ax.set_xlabel("threshold mm")
            ax.set_ylabel("PCK")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        out[f"pck_{t}"] = _png(fig)

    # Loss curves: one panel per run (its own y axis, log scale when positive), so one
    # run's scale cannot flatten another's; validation EPE with the mean-pose reference.
    if data.losses:
        out["loss_curves"] = _loss_panels(plt, data.losses)
        val_png = _val_panels(plt, data.losses)
        if val_png is not None:
            out["val_curves"] = val_png
    return out


_LOSS_PARTS = (("loss", "total", "k"), ("loss_heat", "L_heat", "tab:blue"), ("loss_pose", "L_pose", "tab:green"),
               ("loss_con", "L_con", "tab:red"))  # fmt: skip
#: Branch2 diagnostics (metrics.parquet): a diverging L_con shows as growing norms / d_neg.
_BRANCH2_PARTS = (("e1_norm", "|e1'|", "tab:purple"), ("d_pos", "d_pos", "tab:orange"), ("d_neg", "d_neg", "tab:brown"))


def _grid(plt, n: int, width: float = 4.3, height: float = 3.0):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    h = height * rows  # keep ~0.6 in on top for the figure title + panel titles, ~0.5 in below
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.5 / h, top=1 - 0.65 / h, wspace=0.3, hspace=0.6)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _loss_panels(plt, runs: list[tuple[str, pd.DataFrame]]) -> bytes:
    fig, axes = _grid(plt, len(runs))
    for ax, (name, df) in zip(axes, runs):
        train = df[df["kind"] == "train"] if "kind" in df.columns else df
        positive = True
        for col, label, colour in _LOSS_PARTS:
            if col not in train.columns:
                continue
            part = train[train[col].notna()]
            if not len(part) or (col == "loss_con" and (part[col] == 0).all()):
                continue
            positive &= bool((part[col] > 0).all())
            ax.plot(part["step"], part[col], color=colour, lw=1.2 if col == "loss" else 0.9, label=label)
        for col, label, colour in _BRANCH2_PARTS:
            part = train[train[col].notna()] if col in train.columns else train.iloc[:0]
            if len(part):
                positive &= bool((part[col] > 0).all())
                ax.plot(part["step"], part[col], "--", color=colour, lw=0.8, label=f"{label} (Branch2)")
        if positive:
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.suptitle("training loss per run (own y axis; log scale, symlog where a part is <= 0)", fontsize=9, y=0.995)
    return _png(fig)


def _val_panels(plt, runs: list[tuple[str, pd.DataFrame]]) -> bytes | None:
    with_val = [(name, df) for name, df in runs if df["val_epe_mm"].notna().any()]
    if not with_val:
        return None
    fig, axes = _grid(plt, len(with_val))
    for ax, (name, df) in zip(axes, with_val):
        val = df[df["val_epe_mm"].notna()]
        ax.plot(val["step"], val["val_epe_mm"], "o-", ms=3, color="tab:blue", label="network")
        if "val_mean_pose_epe_mm" in val.columns and val["val_mean_pose_epe_mm"].notna().any():
            ref = val[val["val_mean_pose_epe_mm"].notna()]
            ax.plot(ref["step"], ref["val_mean_pose_epe_mm"], "--", color="tab:gray", label="mean pose (reference)")
        last = float(val["val_epe_mm"].iloc[-1])
        title = f"{name}: final {last:.2f} mm"
        if "val_2d_px" in val.columns and pd.notna(val["val_2d_px"].iloc[-1]):
            title += f"; 2D {val['val_2d_px'].iloc[-1]:.1f} px (mean layout {val['val_mean_2d_px'].iloc[-1]:.1f})"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("EPE mm", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("validation EPE (FreiHAND hold-out, rr-gtscale) vs predicting the mean training pose", fontsize=9,
                 y=0.995)
    return _png(fig)


# --------------------------------------------------------------------------- table cells


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def digits_to_tell_apart(values: Any, least: int = 2, most: int = 4) -> int:
    """The fewest decimals (>= `least`, <= `most`) at which distinct finite values print distinctly.

    `most` caps it: values closer than 10**-most (for EPE in mm: 0.1 um, e.g. `pa` vs
    `pa-proper` when no reflection is chosen, apart only by the toolbox's 1e-8) are the same."""
    xs = sorted({float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and math.isfinite(float(v))})  # fmt: skip
    for d in range(least, most + 1):
        if len({f"{x:.{d}f}" for x in xs}) == len(xs):
            return d
    return most


def _signed(v: float, d: int) -> str:
    return f"{v:+.{d}f}"


def _diff_cell(r: Any, t: str, d: int) -> str:
    """'+2.10 [+1.95, +2.25]*' (over samples) and, with paired seeds, '; seeds (n=3) +2.10 [...]'."""
    if bool(r.get(f"{t}_is_baseline", False)):
        return "baseline"
    diff = r.get(f"{t}_diff_mm", math.nan)
    if diff is None or not math.isfinite(float(diff)):
        return "—"
    text = f"{_signed(diff, d)} [{_signed(r[f'{t}_ci_low_mm'], d)}, {_signed(r[f'{t}_ci_high_mm'], d)}]"
    text += "*" if bool(r.get(f"{t}_beyond_noise_samples")) else ""
    n_seeds = r.get(f"{t}_n_seeds_paired", 0)
    if isinstance(n_seeds, (int, float)) and math.isfinite(n_seeds) and n_seeds >= 2:
        lo, hi = r[f"{t}_seed_ci_low_mm"], r[f"{t}_seed_ci_high_mm"]
        text += f"; seeds (n={int(n_seeds)}) {_signed(r[f'{t}_seed_diff_mm'], d)} [{_signed(lo, d)}, {_signed(hi, d)}]"
        text += "*" if bool(r.get(f"{t}_beyond_noise_seeds")) else ""
    return text


UNRELIABLE = "⚠ 2D unreliable"


def _unreliable(page: Page | None, runs_label: str, target: str) -> bool:
    """True when the page's protocol takes 2D from the heatmaps on `target` and one of the
    row's runs has heatmaps that did not beat the mean layout (`pipeline.verdict`)."""
    from hcdg.pipeline.verdict import heatmap_protocol

    if page is None or page.verdict is None or not heatmap_protocol(page.cfg.protocol, target):
        return False
    names = [n.strip().rstrip("†").strip() for n in str(runs_label).split(",")]
    return any(n in page.verdict.unreliable for n in names)


def _paper_rows(frame: pd.DataFrame, key: str, page: Page | None = None) -> list[tuple[bool, list[str]]]:
    """(is_published, cells) for a paper-shaped table. With a `page`: published rows only
    when its protocol is the one they were measured with (`authors`), and re-run cells whose
    2D comes from heatmaps that did not learn flagged `UNRELIABLE`."""
    from hcdg.pipeline.protocols import PAPER_PROTOCOL as PUBLISHED_PROTOCOL

    rows = []
    pub_mask = frame["source"] == published.PUBLISHED_SOURCE
    digits = {t: digits_to_tell_apart(frame.loc[~pub_mask, f"{t}_epe_mm"]) for t in published.TARGETS}
    for _, r in frame.iterrows():
        pub = r["source"] == published.PUBLISHED_SOURCE
        if pub and page is not None and page.cfg.protocol != PUBLISHED_PROTOCOL:
            continue
        cells = [r["method"], r["setting"] or "", r["source"]]
        for t in published.TARGETS:
            v = r[f"{t}_epe_mm"]
            d = (1 if key == "3" else 2) if pub else digits[t]
            text = _fmt(v, d)
            n = int(r[f"{t}_n_runs"])
            if not pub and n > 1:
                std = r.get(f"{t}_epe_std_mm", math.nan)
                text += f" ± {_fmt(std, d)} (n={n})"
            if not pub and n and _unreliable(page, r["runs"], t):
                text += f"; {UNRELIABLE}"
            cells.append(text)
        for t in published.TARGETS:
            cells.append("" if pub else _diff_cell(r, t, digits[t]))
        cells += [r["runs"], r["note"]]
        rows.append((pub, cells))
    return rows


PAPER_HEADER = ["Method", "Setting", "Source", "FreiHAND→STB EPE (mm)", "FreiHAND→RHD EPE (mm)",
                "STB: Δ vs baseline, 95% CI", "RHD: Δ vs baseline, 95% CI", "Runs", "Note"]  # fmt: skip
DIFF_NOTE = ("Re-run cells: mean over the config's runs (seeds) ± standard deviation (n). Δ: mean per-sample paired "
             "difference to the re-run baseline (Table 4(a)'s no-CLIP config; negative = lower error) on the same "
             "samples, protocol and root, seeds averaged per sample, with a percentile-bootstrap 95% interval over "
             "samples ({resamples} resamples, seed {seed}); with >= 2 seeds on both sides also the per-seed paired "
             "differences' mean and Student-t 95% interval. * = the interval excludes 0. The interval over samples "
             "only measures test-set noise; the one over seeds is the one that says whether a difference exceeds "
             "training noise.")  # fmt: skip
FULL_COLUMNS = ["run", "target", "split", "protocol", "root", "joints", "n_samples", "epe_mean_mm", "epe_median_mm",
                "auc_0_50_20", "auc_0_50_100", "auc_20_50_hand3d", "mode", "ratio", "combine", "lambda_con",
                "con_loss", "aug"]  # fmt: skip
PAIRED_SHOWN = ["runs", "baseline_runs", "target", "protocol", "root", "crops", "n_samples", "epe_mm",
                "baseline_epe_mm", "diff_mm", "ci_low_mm", "ci_high_mm", "beyond_noise_samples", "n_seeds_paired",
                "seed_diff_mm", "seed_std_mm", "seed_ci_low_mm", "seed_ci_high_mm", "beyond_noise_seeds"]  # fmt: skip


def _generic_rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    cols = [c for c in columns if c in frame.columns]
    digits = {c: (digits_to_tell_apart(frame[c], 3, 5) if c.startswith("auc") else digits_to_tell_apart(frame[c]))
              for c in cols}  # fmt: skip
    return [[_fmt(r[c], digits[c]) for c in cols] for _, r in frame.iterrows()]


def _intro(cfg: Settings) -> list[str]:
    same = cfg.protocol == "authors"
    return [
        f"Paper-shaped tables: re-run numbers use protocol `{cfg.protocol}` ({PROTOCOL_NOTES[cfg.protocol]}) "
        f"with STB root `{cfg.root}` and joint set `{cfg.joints}`. "
        + ("Rows labelled \"as published, not re-run\" are copied from the paper (§4, Tables 3-6); "
           "the paper does not say how it handled STB's palm root." if same else
           "The paper's numbers were measured under `authors`, so they are left out of these tables and the "
           "ratio plot (they are in tables/table*.csv with source \"as published\"; a report with "
           "`--protocol authors` over uvd-output runs shows them beside the re-runs)."),
        "Numbers under different protocols or roots are not comparable; the full table lists all of them.",
    ]


def _banners(page: Page) -> list[str]:
    rw = [r.name for r in page.runs if r.random_weights]
    out = []
    if rw:
        out.append(
            "CLIP features from RANDOM weights in run(s) " + ", ".join(rw) + " (marked †): the CLIP features "
            "carry no meaning, so these numbers say nothing about the paper's claim; they only show that the "
            "pipeline runs end to end."
        )
    return out


def _diff_note(page: Page) -> str:
    from hcdg.pipeline import stats

    return DIFF_NOTE.format(resamples=stats.BOOTSTRAP_RESAMPLES, seed=stats.BOOTSTRAP_SEED)


def _paired_shown(page: Page) -> pd.DataFrame:
    p = page.tables.get("paired")
    if p is None or p.empty:
        return pd.DataFrame()
    return p[p["protocol"] == page.cfg.protocol].reset_index(drop=True)


# --------------------------------------------------------------------------- HTML


def _e(s: Any) -> str:
    return _html.escape(str(s))


def _html_table(header: list[str], rows: list[tuple[bool, list[str]]], table_id: str, data: bool = False) -> str:
    """A table in a horizontally scrolling box (wide tables never widen the page); numeric
    cells right-aligned, cells with a '*' (an interval excluding 0) shaded."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for pub, cells in rows:
        tds = []
        for c in cells:
            cls = []
            diff = c[:1] in "+-" and "[" in c  # a paired-difference cell: wraps at its "; seeds" part
            if (c[:1].isdigit() or c[:1] in "+-−" or c == "—") and not diff:
                cls.append("num")
            if diff and "*" in c.split("; ")[0]:  # coloured by direction: + = more error = worse
                cls.append("worse" if c[:1] == "+" else "better")
            text = "<br>".join(_e(part) for part in c.split("; ")) if (diff or UNRELIABLE in c) else _e(c)
            text = text.replace(_e(UNRELIABLE), f"<span class='unrel'>{_e(UNRELIABLE)}</span>")
            tds.append(f'<td class="{" ".join(cls)}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append(f'<tr class="{"published" if pub else "rerun"}">{"".join(tds)}</tr>')
    cls = ' class="data"' if data else ""
    return (f'<div class="scroll"><table id="{_e(table_id)}"{cls}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')  # fmt: skip


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _verdict_items(page: Page) -> list[tuple[str, str]]:
    """(css class, sentence) of the verdict block, in order."""
    v = page.verdict
    if v is None:
        return []
    out = [("", "Trained: " + s) for s in v.setup]
    out += [(d if d in ("better", "worse") else "", s) for d, s in v.summary]
    if not v.summary:
        out.append(("", "No method could be compared with a re-run baseline (a `mode: baseline` run with results)."))
    out += [("worse", "Protocols disagree: " + d) for d in v.disagreements]
    out += [("", f"Unreliable under protocols that take 2D from the heatmaps ({', '.join(_heatmap_protocols())}): "
                 f"run {n}: {why}.") for n, why in v.unreliable.items()]
    out += [("", u) for u in v.used]
    return out


def _heatmap_protocols() -> list[str]:
    from hcdg.pipeline.verdict import HEATMAP_2D_PROTOCOLS

    return [p + ("" if "*" in t else f" on {'/'.join(t).upper()}") for p, t in HEATMAP_2D_PROTOCOLS.items()]


def html(page: Page) -> str:
    cfg = page.cfg
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(cfg.title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_e(cfg.title)}</h1>",
             f"<p class='caption'>Generated {_e(page.created)} from {len(page.runs)} run(s) by <code>hcdg report</code>.</p>"]  # fmt: skip
    parts += [f"<div class='banner'>{_e(b)}</div>" for b in _banners(page)]
    items = _verdict_items(page)
    if items:
        lis = "".join(f"<li class='{c}'>{_e(t)}</li>" if c else f"<li>{_e(t)}</li>" for c, t in items)
        parts.append(f"<div class='verdict' id='verdict'><h2>What happened</h2><ul>{lis}</ul>"
                     "<p class='caption'>Δ = method minus baseline on the same samples (negative = lower error); "
                     "green: the 95% interval lies below 0 (better), red: above 0 (worse).</p></div>")
    parts += [f"<div class='warn'>{_e(w)}</div>" for w in page.warnings]
    parts += [f"<p>{_e(p)}</p>" for p in _intro(cfg)]
    parts.append(f"<p class='caption'>{_e(_diff_note(page))}</p>")
    for spec in published.TABLES:
        frame = page.tables[f"table{spec.key}"]
        parts.append(f"<h2>{_e(spec.title)}</h2><p class='caption'>{_e(spec.caption)}</p>")
        parts.append(_html_table(PAPER_HEADER, _paper_rows(frame, spec.key, page), f"table{spec.key}"))
        if spec.key == "4a" and "ratio_ablation" in page.figures:
            parts.append(_img(page.figures["ratio_ablation"], "ratio ablation"))
    parts.append("<h2>PCK curves</h2>")
    pck = [k for k in page.figures if k.startswith("pck_")]
    parts += [_img(page.figures[k], k) for k in pck] or ["<p>No evaluation results.</p>"]
    parts.append("<h2>Differences to the baseline, every root</h2>")
    shown = _paired_shown(page)
    if shown.empty:
        parts.append("<p>No re-run baseline (a <code>mode: baseline</code> run with results) to compare with.</p>")
    else:
        parts.append(f"<p class='caption'>Protocol <code>{_e(cfg.protocol)}</code>, joints <code>{_e(cfg.joints)}</code>; "
                     "every protocol in <code>tables/paired.csv</code> (also "
                     "<code>hcdg.store.paired.paired_table</code>).</p>")  # fmt: skip
        cols = [c for c in PAIRED_SHOWN if c in shown.columns]
        parts.append(_html_table(cols, [(False, r) for r in _generic_rows(shown, cols)], "paired", data=True))
    parts.append("<h2>Training curves</h2>")
    parts.append(_img(page.figures["loss_curves"], "loss curves") if "loss_curves" in page.figures
                 else "<p>No run has a metrics.parquet.</p>")  # fmt: skip
    if "val_curves" in page.figures:
        parts.append(_img(page.figures["val_curves"], "validation curves"))
    paper_figs = [k for k in page.figures if k.startswith("paper_")]
    if paper_figs:
        parts.append("<h2>Figures 3-4</h2>")
        for k in paper_figs:
            parts.append(f"<p class='caption'>{_e(k[len('paper_'):])}.png</p>" + _img(page.figures[k], k))
    parts.append("<h2>All protocols</h2><ul>")
    parts += [f"<li><code>{_e(k)}</code>: {_e(v)}</li>" for k, v in PROTOCOL_NOTES.items()]
    parts += [f"<li>root <code>{_e(k)}</code>: {_e(v)}</li>" for k, v in ROOT_NOTES.items()]
    parts.append("<li>joints <code>all</code>: 21 joints; <code>visible</code>: only annotated-visible ones (hand3d's RHD reading). "
                 "EPE mean/median and PCK per joint then averaged over joints (hand3d/FreiHAND EvalUtil); AUC 0-50 over 20 "
                 "(hand3d) and 100 (FreiHAND) thresholds; AUC 20-50 = hand3d's thresholds 21.05-50 mm.</li></ul>")  # fmt: skip
    full = page.tables["full_results"]
    if full.empty:
        parts.append("<p>No evaluation results.</p>")
    else:
        cols = [c for c in FULL_COLUMNS if c in full.columns]
        parts.append(_html_table(cols, [(False, r) for r in _generic_rows(full, cols)], "full_results", data=True))
    parts.append("<h2>Runs</h2>")
    runs = page.tables["runs"]
    cols = list(runs.columns)
    parts.append(_html_table(cols, [(False, r) for r in _generic_rows(runs, cols)], "runs", data=True))
    parts.append("<p class='caption'>Tables as CSV/parquet in <code>tables/</code>; figures in <code>figures/</code>.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- Markdown


def _md_text(c: object) -> str:
    """Text for Markdown: HTML in run names or titles is shown, never run (`<script>` -> `&lt;script&gt;`)."""
    return str(c).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(c: str) -> str:
    return _md_text(c).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(page: Page) -> str:
    cfg = page.cfg
    parts = [f"# {_md_text(cfg.title)}", "", f"Generated {page.created} from {len(page.runs)} run(s) by `hcdg report`.", ""]
    parts += [f"> **WARNING:** {_md_text(b)}\n" for b in _banners(page)]
    items = _verdict_items(page)
    if items:
        marks = {"better": "✅ ", "worse": "❌ ", "": ""}
        parts += ["## What happened", ""] + [f"* {marks[c]}{_md_text(t)}" for c, t in items] + [""]
    parts += [f"> {_md_text(w)}\n" for w in page.warnings]
    parts += [p + "\n" for p in _intro(cfg)]
    parts += [_diff_note(page) + "\n"]
    for spec in published.TABLES:
        frame = page.tables[f"table{spec.key}"]
        rows = [[f"*{c}*" if pub and c else c for c in cells] for pub, cells in _paper_rows(frame, spec.key, page)]
        parts += [f"## {spec.title}", "", spec.caption, "", _md_table(PAPER_HEADER, rows), ""]
        if spec.key == "4a" and "ratio_ablation" in page.figures:
            parts += ["![ratio ablation](figures/ratio_ablation.png)", ""]
    parts += ["## PCK curves", ""]
    parts += [f"![{k}](figures/{k}.png)\n" for k in page.figures if k.startswith("pck_")] or ["No evaluation results.\n"]
    parts += ["## Differences to the baseline, every root", ""]
    shown = _paired_shown(page)
    if shown.empty:
        parts += ["No re-run baseline (a `mode: baseline` run with results) to compare with.", ""]
    else:
        cols = [c for c in PAIRED_SHOWN if c in shown.columns]
        parts += [f"Protocol `{cfg.protocol}`, joints `{cfg.joints}`; every protocol in `tables/paired.csv`.", "",
                  _md_table(cols, _generic_rows(shown, cols)), ""]  # fmt: skip
    parts += ["## Training curves", ""]
    parts += ["![loss curves](figures/loss_curves.png)\n" if "loss_curves" in page.figures else "No run has a metrics.parquet.\n"]
    if "val_curves" in page.figures:
        parts += ["![validation curves](figures/val_curves.png)\n"]
    paper_figs = [k for k in page.figures if k.startswith("paper_")]
    if paper_figs:
        parts += ["## Figures 3-4", ""] + [f"![{k}](figures/{k}.png)\n" for k in paper_figs]
    parts += ["## All protocols", ""]
    parts += [f"* `{k}`: {v}" for k, v in PROTOCOL_NOTES.items()]
    parts += [f"* root `{k}`: {v}" for k, v in ROOT_NOTES.items()]
    parts.append("")
    full = page.tables["full_results"]
    if not full.empty:
        cols = [c for c in FULL_COLUMNS if c in full.columns]
        parts += [_md_table(cols, _generic_rows(full, cols)), ""]
    runs = page.tables["runs"]
    parts += ["## Runs", "", _md_table(list(runs.columns), _generic_rows(runs, list(runs.columns))), ""]
    parts.append("Tables as CSV/parquet in `tables/`; figures in `figures/`.")
    return "\n".join(parts) + "\n"
