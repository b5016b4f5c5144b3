"""Rendering for `hcdg report`: matplotlib figures (Agg, PNG bytes), the HTML page and
its Markdown twin. No file I/O here; `stages.report` decides where things go."""

from __future__ import annotations

import base64
import html as _html
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from hcdg.pipeline import published

if TYPE_CHECKING:
    from hcdg.stages.report import ReportConfig, RunInfo

TARGET_TITLES = {"stb": "FreiHAND→STB", "rhd": "FreiHAND→RHD", "freihand": "FreiHAND→FreiHAND"}

PROTOCOL_NOTES = {
    "authors": "the paper authors' test code (their Rhp.py / STB.py evaluate_detailed): the network's normalised "
               "uvd (RHD: regressed uv; STB: argmax of the upsampled last-stage heatmap), their depth decoding, GT "
               "root depth and intrinsics, their crop affine; camera-frame EPE, no alignment. The paper's numbers "
               "use this protocol; it applies to uvd-output runs (--target uvd, or `hcdg import authors`).",
    "2.5d-gtroot-gtbone": "hcdg's 2.5D reading (formerly `gtroot-2.5d`): 2D from the heatmaps, network relative "
                          "depth scaled by the GT bone length, GT root depth and intrinsics; camera-frame EPE, no "
                          "alignment (root x/y error included). NOT the authors' computation.",
    "rr-gtscale": "hand3d (Zimmermann & Brox 2017): root-relative prediction scaled by the GT bone length and "
                  "placed at the GT root; measures articulation and orientation.",
    "pa": "FreiHAND toolbox: Procrustes alignment with scale (centre, scale, rotate); measures articulation only.",
}  # fmt: skip
ROOT_NOTES = {
    "wrist": "STB's GT palm converted to a wrist (wrist = mid_MCP + 2.2 (palm - mid_MCP)); the network's wrist is "
             "compared as it is. The only root for FreiHAND and RHD.",
    "palm": "STB only: a palm point (wrist + middle MCP)/2 derived from the prediction replaces its joint 0 and "
            "is compared with the GT palm.",
}  # fmt: skip

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.published td{color:#666;font-style:italic;background:#fafafa}
.banner{border:2px solid #c0392b;background:#fdecea;padding:.8em 1em;margin:1em 0;font-weight:bold}
.warn{border:1px solid #e0a800;background:#fff8e1;padding:.5em 1em;margin:1em 0}
.caption{color:#555;font-size:.9em}img{max-width:100%}code{background:#f3f3f3;padding:0 .2em}
"""


@dataclass
class Page:
    cfg: "ReportConfig"
    runs: list["RunInfo"]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes]
    warnings: list[str]
    created: str


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


def figures(runs: list["RunInfo"], cfg: "ReportConfig") -> dict[str, bytes]:
    """name -> PNG bytes: ratio_ablation, pck_<target> (one per evaluated target), loss_curves."""
    from hcdg.pipeline.protocols import PROTOCOLS
    from hcdg.stages.report import epe_of

    plt = _pyplot()
    out: dict[str, bytes] = {}
    summaries = [r.summary.assign(run=r.name) for r in runs if not r.summary.empty]
    allsum = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()

    # Table 4(a) as a plot: EPE vs ratio (IE = ratio 1, TE = ratio 0), published beside.
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.92)
    colours = {"stb": "tab:blue", "rhd": "tab:orange"}
    for t in published.TARGETS:
        pts: dict[float, list[float]] = {}
        for r in runs:
            f = r.facets
            if f["aug"] != "clip" or f["combine"] != "concat" or f["lambda_con"] is None:
                continue
            if not math.isclose(f["lambda_con"], 0.1) or f["con_loss"] not in (None, "paper"):
                continue
            x = {"ie+te": f["ratio"], "ie": 1.0, "te": 0.0}.get(f["mode"])
            if x is None or (v := epe_of(r, t, cfg)) is None:
                continue
            pts.setdefault(float(x), []).append(v)
        if pts:
            xs = sorted(pts)
            ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], "o-", color=colours[t], label=f"{TARGET_TITLES[t]} re-run")
        pub = [(float(p.setting), p.epe_mm(t)) for p in published.rows_of("4a") if p.method == "IE+TE"]
        pub.append((1.0, next(p.epe_mm(t) for p in published.rows_of("4a") if p.method == "IE")))
        pub.sort()
        ax.plot([p[0] for p in pub], [p[1] for p in pub], "x--", color=colours[t], alpha=0.6,
                label=f"{TARGET_TITLES[t]} as published")  # fmt: skip
    ax.set_xlabel("ratio r (image weight; IE = 1, TE = 0)")
    ax.set_ylabel(f"EPE mm ({cfg.protocol})")
    ax.set_title("Table 4(a): mixing ratio")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out["ratio_ablation"] = _png(fig)

    # PCK curves per target: one panel per protocol, one line per run.
    if not allsum.empty:
        for t in sorted(set(allsum["target"])):
            sel = allsum[(allsum["target"] == t) & (allsum["joints"] == cfg.joints)]
            protos = [p for p in PROTOCOLS if p in set(sel["protocol"])]
            fig, axes = plt.subplots(1, len(protos), figsize=(4.2 * len(protos), 3.6), squeeze=False)
            fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
            for ax, p in zip(axes[0], protos):
                ps = sel[sel["protocol"] == p]
                root = cfg.root if cfg.root in set(ps["root"]) else "wrist"
                for _, row in ps[ps["root"] == root].iterrows():
                    ax.plot(row["pck_thresholds_mm"], row["pck"], label=row["run"])
                ax.set_title(f"{TARGET_TITLES.get(t, t)}: {p} (root {root})", fontsize=9)
                ax.set_xlabel("threshold mm")
                ax.set_ylabel("PCK")
                ax.set_ylim(0, 1)
                ax.grid(alpha=0.3)
            axes[0][0].legend(fontsize=7)
            out[f"pck_{t}"] = _png(fig)

    # Loss curves.
    with_losses = [r for r in runs if r.losses is not None and len(r.losses)]
    if with_losses:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.22)
        for r in with_losses:
            df = r.losses
            train = df[df["kind"] == "train"] if "kind" in df.columns else df
            train = train[train["loss"].notna()]
            ax1.plot(train["step"], train["loss"], label=r.name)
            val = df[df["val_epe_mm"].notna()]
            if len(val):
                ax2.plot(val["step"], val["val_epe_mm"], "o-", label=r.name)
        ax1.set_title("training loss", fontsize=9)
        ax1.set_xlabel("step")
        ax2.set_title("validation EPE mm (FreiHAND hold-out, rr-gtscale)", fontsize=9)
        ax2.set_xlabel("step")
        for a in (ax1, ax2):
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
        out["loss_curves"] = _png(fig)
    return out


# --------------------------------------------------------------------------- table cells


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _paper_rows(frame: pd.DataFrame, key: str) -> list[tuple[bool, list[str]]]:
    """(is_published, cells) for a paper-shaped table."""
    from hcdg.stages.report import PUBLISHED_SOURCE

    rows = []
    for _, r in frame.iterrows():
        pub = r["source"] == PUBLISHED_SOURCE
        cells = [r["method"], r["setting"] or "", r["source"]]
        for t in published.TARGETS:
            v = r[f"{t}_epe_mm"]
            digits = 1 if (pub and key == "3") else 2
            text = _fmt(v, digits)
            n = int(r[f"{t}_n_runs"])
            if not pub and n > 1:
                text += f" (n={n})"
            cells.append(text)
        cells += [r["runs"], r["note"]]
        rows.append((pub, cells))
    return rows


PAPER_HEADER = ["Method", "Setting", "Source", "FreiHAND→STB EPE (mm)", "FreiHAND→RHD EPE (mm)", "Runs", "Note"]
FULL_COLUMNS = ["run", "target", "split", "protocol", "root", "joints", "n_samples", "epe_mean_mm", "epe_median_mm",
                "auc_0_50_20", "auc_0_50_100", "auc_20_50_hand3d", "mode", "ratio", "combine", "lambda_con",
                "con_loss", "aug"]  # fmt: skip


def _generic_rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    cols = [c for c in columns if c in frame.columns]
    digits = {c: (3 if c.startswith("auc") else 2) for c in cols}
    return [[_fmt(r[c], digits[c]) for c in cols] for _, r in frame.iterrows()]


def _intro(cfg: "ReportConfig") -> list[str]:
    same = cfg.protocol == "authors"
    return [
        f"Paper-shaped tables: re-run numbers use protocol `{cfg.protocol}` ({PROTOCOL_NOTES[cfg.protocol]}) "
        f"with STB root `{cfg.root}` and joint set `{cfg.joints}`. "
        + ("" if same else "The paper's numbers use `authors`, so published and re-run rows are NOT comparable here. ")
        + "Rows labelled \"as published, not re-run\" are copied from the paper (§4, Tables 3-6); "
        "the paper does not say how it handled STB's palm root.",
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


# --------------------------------------------------------------------------- HTML


def _e(s: Any) -> str:
    return _html.escape(str(s))


def _html_table(header: list[str], rows: list[tuple[bool, list[str]]], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for pub, cells in rows:
        tds = "".join(
            f'<td class="num">{_e(c)}</td>' if (c[:1].isdigit() or c == "—") else f"<td>{_e(c)}</td>" for c in cells
        )
        body.append(f'<tr class="{"published" if pub else "rerun"}">{tds}</tr>')
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def html(page: Page) -> str:
    cfg = page.cfg
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(cfg.title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_e(cfg.title)}</h1>",
             f"<p class='caption'>Generated {_e(page.created)} from {len(page.runs)} run(s) by <code>hcdg report</code>.</p>"]  # fmt: skip
    parts += [f"<div class='banner'>{_e(b)}</div>" for b in _banners(page)]
    parts += [f"<div class='warn'>{_e(w)}</div>" for w in page.warnings]
    parts += [f"<p>{_e(p)}</p>" for p in _intro(cfg)]
    for spec in published.TABLES:
        frame = page.tables[f"table{spec.key}"]
        parts.append(f"<h2>{_e(spec.title)}</h2><p class='caption'>{_e(spec.caption)}</p>")
        parts.append(_html_table(PAPER_HEADER, _paper_rows(frame, spec.key), f"table{spec.key}"))
        if spec.key == "4a" and "ratio_ablation" in page.figures:
            parts.append(_img(page.figures["ratio_ablation"], "ratio ablation"))
    parts.append("<h2>PCK curves</h2>")
    pck = [k for k in page.figures if k.startswith("pck_")]
    parts += [_img(page.figures[k], k) for k in pck] or ["<p>No evaluation results.</p>"]
    parts.append("<h2>Training curves</h2>")
    parts.append(_img(page.figures["loss_curves"], "loss curves") if "loss_curves" in page.figures
                 else "<p>No run has a metrics.parquet.</p>")  # fmt: skip
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
        parts.append(_html_table(cols, [(False, r) for r in _generic_rows(full, cols)], "full_results"))
    parts.append("<h2>Runs</h2>")
    runs = page.tables["runs"]
    cols = list(runs.columns)
    parts.append(_html_table(cols, [(False, r) for r in _generic_rows(runs, cols)], "runs"))
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
    parts += [f"> {_md_text(w)}\n" for w in page.warnings]
    parts += [p + "\n" for p in _intro(cfg)]
    for spec in published.TABLES:
        frame = page.tables[f"table{spec.key}"]
        rows = [[f"*{c}*" if pub and c else c for c in cells] for pub, cells in _paper_rows(frame, spec.key)]
        parts += [f"## {spec.title}", "", spec.caption, "", _md_table(PAPER_HEADER, rows), ""]
        if spec.key == "4a" and "ratio_ablation" in page.figures:
            parts += ["![ratio ablation](figures/ratio_ablation.png)", ""]
    parts += ["## PCK curves", ""]
    parts += [f"![{k}](figures/{k}.png)\n" for k in page.figures if k.startswith("pck_")] or ["No evaluation results.\n"]
    parts += ["## Training curves", ""]
    parts += ["![loss curves](figures/loss_curves.png)\n" if "loss_curves" in page.figures else "No run has a metrics.parquet.\n"]
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
