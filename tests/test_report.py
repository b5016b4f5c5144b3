"""`hcdg report` from two tiny fabricated runs: numbers land in the right cells."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.protocols import ProtocolResult
from hcdg.stages import report
from hcdg.store import results
from hcdg.store.runs import prepare_run

BASE = {"combine": "concat", "lambda_con": 0.1, "con_loss": "paper-literal", "aug": "clip"}
#: run -> (config, EPE mm per target under 2.5d-gtroot-gtbone, random weights)
RUNS = {
    "ours-r06": ({**BASE, "mode": "ie+te", "ratio": 0.6}, {"stb": 31.25, "rhd": 44.5}, False),
    "baseline": ({**BASE, "mode": "baseline", "ratio": 0.6}, {"stb": 40.0, "rhd": 50.0}, True),
}


def _results(n: int, epe_mm: float, gt_root: str) -> list[ProtocolResult]:
    """Every joint off by exactly `epe_mm` along x under 2.5d-gtroot-gtbone; other protocols 1 mm better."""
    gt = np.zeros((n, 21, 3)) + [0.0, 0.0, 0.5]
    out = []
    roots = ("wrist", "palm") if gt_root == "palm" else ("wrist",)
    for proto, d in (("2.5d-gtroot-gtbone", epe_mm), ("rr-gtscale", epe_mm - 1), ("pa", epe_mm - 2)):
        for root in roots:
            dd = d + (5.0 if root == "palm" else 0.0)
            pred = gt + [dd / 1000.0, 0.0, 0.0]
            out.append(ProtocolResult(proto, root, pred, gt, np.full((n, 21), dd)))
    return out


def _make_runs(parent):
    for name, (cfg, epe, rw) in RUNS.items():
        run = prepare_run(parent / name, stage="train", config=cfg, seed=0,
                          extra={"store_fingerprint": {"random_weights": rw}})  # fmt: skip
        for target, gt_root in (("stb", "palm"), ("rhd", "wrist")):
            frame = results.results_frame(
                run=name, target=target, split="test", sample_ids=[str(i) for i in range(3)],
                results=_results(3, epe[target], gt_root), config=cfg, random_weights=rw,
            )  # fmt: skip
            results.write_results(run, target, frame)
        pd.DataFrame({"kind": ["train", "train", "val"], "step": [1, 2, 2], "loss": [2.0, 1.0, np.nan],
                      "val_epe_mm": [np.nan, np.nan, 30.0]}).to_parquet(run / "metrics.parquet")  # fmt: skip
    return parent


class _Tables(HTMLParser):
    """table id -> list of rows (list of cell texts)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._id = dict(attrs).get("id")
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._id].append(self._row)
            self._row = None
        elif tag == "table":
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _row(rows, method, setting, source_prefix):
    hits = [r for r in rows if r[0] == method and r[1] == setting and r[2].startswith(source_prefix)]
    assert len(hits) == 1, (method, setting, source_prefix, rows)
    return hits[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    sweep = _make_runs(tmp_path_factory.mktemp("sweep"))
    out = tmp_path_factory.mktemp("rep") / "report"
    res = CliRunner().invoke(main, ["report", str(sweep), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_html_has_both_runs_in_the_right_cells_and_the_published_rows(built):
    text = (built / "report.html").read_text()
    assert "<script" not in text and 'src="data:image/png;base64,' in text  # self-contained
    p = _Tables()
    p.feed(text)
    t4a = p.tables["table4a"]
    assert t4a[0][:5] == ["Method", "Setting", "Source", "FreiHAND→STB EPE (mm)", "FreiHAND→RHD EPE (mm)"]
    ours = _row(t4a, "IE+TE", "0.6", "re-run")
    assert ours[3:5] == ["31.25", "44.50"] and "2.5d-gtroot-gtbone" in ours[2] and ours[7] == "ours-r06"
    # paired differences to the re-run baseline: every sample 8.75 / 5.5 mm lower, so the interval is a point
    assert t4a[0][5:7] == ["STB: Δ vs baseline, 95% CI", "RHD: Δ vs baseline, 95% CI"]
    assert ours[5:7] == ["-8.75 [-8.75, -8.75]*", "-5.50 [-5.50, -5.50]*"]
    base = _row(t4a, "Baseline", "", "re-run")
    assert base[3:5] == ["40.00", "50.00"] and "baseline" in base[7] and base[5:7] == ["baseline", "baseline"]
    # published numbers (protocol authors) never sit beside rows of another protocol
    assert not any(r[2].startswith("as published") for t in p.tables.values() for r in t)
    # Table 3: Ours = r 0.6 for STB, r 0.9 for RHD -> only the STB cell has a re-run; the r 0.6
    # run's RHD result follows in its own row, its STB result is not listed twice
    t3 = p.tables["table3"]
    assert _row(t3, "Ours (IE+TE)", "", "re-run")[3:5] == ["31.25", "—"]
    extra = _row(t3, "IE+TE, ratio 0.6", "", "re-run")
    assert extra[3:5] == ["—", "44.50"] and "STB: in the row above" in extra[8]
    assert sum("ours-r06" in r[7] for r in t3[1:]) == 2
    assert _row(p.tables["table5"], "IE+TE", "0.1", "re-run")[3:5] == ["31.25", "44.50"]
    assert _row(p.tables["table4b"], "IE+TE", "Concatenation", "re-run")[3:5] == ["31.25", "44.50"]
    # the full table carries every protocol and both STB roots
    full = p.tables["full_results"]
    cols = full[0]
    rows = [dict(zip(cols, r)) for r in full[1:]]
    stb_palm_pa = [r for r in rows if r["run"] == "ours-r06" and r["target"] == "stb" and r["protocol"] == "pa"
                   and r["root"] == "palm" and r["joints"] == "all"]  # fmt: skip
    assert len(stb_palm_pa) == 1 and stb_palm_pa[0]["epe_mean_mm"] == "34.25"
    # random weights banner names the baseline run
    assert "RANDOM weights" in text and "baseline" in text.split("RANDOM weights")[1][:200]


def test_markdown_twin_and_figures(built):
    md = (built / "report.md").read_text()
    assert "as published, not re-run" not in md and "31.25" in md and "## What happened" in md
    for name in ("ratio_ablation", "pck_stb", "pck_rhd", "loss_curves"):
        assert f"figures/{name}.png" in md
        assert (built / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_csv_and_parquet_tables_parse_back(built):
    t4a = pd.read_csv(built / "tables" / "table4a.csv")
    rerun = t4a[(t4a.method == "IE+TE") & (t4a.source.str.startswith("re-run"))]
    assert len(rerun) == 1 and rerun.stb_epe_mm.iloc[0] == pytest.approx(31.25)
    pub = t4a[t4a.source == report.PUBLISHED_SOURCE]
    assert pub.rhd_epe_mm.tolist() == [48.36, 48.37, 46.82, 49.43, 47.34, 63.01]
    full = pd.read_parquet(built / "tables" / "full_results.parquet")
    assert set(full.protocol) == {"2.5d-gtroot-gtbone", "rr-gtscale", "pa"} and set(full.root) == {"wrist", "palm"}


def test_palm_root_and_protocol_switch_the_paper_tables(tmp_path):
    runs, warnings = report.load_runs([str(_make_runs(tmp_path))])
    assert len(runs) == 2 and not warnings
    cfg = report.ReportConfig(runs=(str(tmp_path),), out=str(tmp_path / "o"), protocol="pa", root="palm")
    ours = report.paper_table("4a", runs, cfg)
    row = ours[(ours.method == "IE+TE") & ours.source.str.startswith("re-run")].iloc[0]
    assert row.stb_epe_mm == pytest.approx(31.25 - 2 + 5) and row.rhd_epe_mm == pytest.approx(44.5 - 2)
    assert "pa, STB root palm" in row.source


def test_refuses_a_foreign_out_folder_and_missing_runs(tmp_path):
    foreign = tmp_path / "busy"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    runs = _make_runs(tmp_path / "runs")
    r = CliRunner().invoke(main, ["report", str(runs), "--out", str(foreign)])
    assert r.exit_code == 1 and "holds no earlier report" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0


def test_run_facets_normalise_configs():
    f = report.run_facets({"mode": "baseline", "ratio": 0.6, "lambda_con": 0.1, "aug": "clip"})
    assert f["ratio"] is None and f["lambda_con"] is None
    f = report.run_facets({"train": {"mode": "ie+te", "ratio": 0.90000001}, "model": {"combine": "sum"}})
    assert f["mode"] == "ie+te" and f["ratio"] == 0.9 and f["combine"] == "sum" and f["aug"] == "clip"
    assert report.run_facets({"mode": "ie", "ratio": 0.6})["ratio"] is None


def _seeded_runs(parent, per_seed_shift=(1.0, 2.0, 3.0)):
    """baseline and ie+te r=0.6, three seeds each, 40 samples; ie+te = baseline - shift(seed)."""
    rng = np.random.default_rng(0)
    base_mm = rng.uniform(30, 50, size=40)
    for s, shift in enumerate(per_seed_shift):
        for mode, mm in (("baseline", base_mm + 0.001 * s), ("ie+te", base_mm + 0.001 * s - shift)):
            cfg = {**BASE, "mode": mode, "ratio": 0.6, "seed": s}
            name = f"mode={mode},seed={s}"
            run = prepare_run(parent / name, stage="train", config=cfg, seed=s)
            gt = np.zeros((40, 21, 3)) + [0.0, 0.0, 0.5]
            err = np.repeat(mm[:, None], 21, axis=1)
            pred = gt + np.stack([err / 1000, 0 * err, 0 * err], axis=-1)
            for target in ("stb", "rhd"):
                frame = results.results_frame(
                    run=name, target=target, split="test", sample_ids=[str(i) for i in range(40)],
                    results=[ProtocolResult("2.5d-gtroot-gtbone", "wrist", pred, gt, err)], config=cfg,
                )  # fmt: skip
                results.write_results(run, target, frame)
            scale = 1000.0 if mode == "baseline" else 1.0  # very different loss scales
            pd.DataFrame({
                "kind": ["train", "train", "val", "train", "val"], "step": [1, 2, 2, 4, 4],
                "loss": [2.0 * scale, 1.0 * scale, np.nan, 0.5 * scale, np.nan],
                "val_epe_mm": [np.nan, np.nan, 40.0, np.nan, 35.0 - s],
                "val_mean_pose_epe_mm": [np.nan, np.nan, 45.0, np.nan, 45.0],
                "wall_s": [1.0, 2.0, 2.5, 1.0, 30.0],  # resumed after step 2: sessions of 2.5 s and 30 s
            }).to_parquet(run / "metrics.parquet")  # fmt: skip
            (run / "done.json").write_text(f'{{"total_steps": 4, "val_epe_mm": {35.0 - s}, "val_mean_pose_epe_mm": 45.0}}')
    figs = parent.parent / "figures"
    figs.mkdir(exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 2))
    fig.savefig(figs / "fig3-tsne.png")
    plt.close(fig)
    return parent


def test_seeds_are_grouped_with_mean_std_and_paired_intervals(tmp_path):
    runs_dir = _seeded_runs(tmp_path / "demo" / "runs")
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(runs_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    p = _Tables()
    p.feed((out / "report.html").read_text())
    t4a = p.tables["table4a"]
    head = t4a[0]
    ours = dict(zip(head, _row(t4a, "IE+TE", "0.6", "re-run")))
    base = dict(zip(head, _row(t4a, "Baseline", "", "re-run")))
    mean_b = pd.read_csv(out / "tables" / "table4a.csv").query("method == 'Baseline' and source != @report.PUBLISHED_SOURCE")
    # one row per config; 3 seeds each: mean ± std (n=3), std of the shifts 1, 2, 3 = 1
    assert ours["FreiHAND→STB EPE (mm)"].endswith("± 1.000 (n=3)") or ours["FreiHAND→STB EPE (mm)"].endswith("± 1.00 (n=3)")
    assert "(n=3)" in base["FreiHAND→STB EPE (mm)"] and len(mean_b) == 1
    diff = ours["STB: Δ vs baseline, 95% CI"]
    # per sample (seeds averaged) every sample is exactly 2 mm lower: a point interval over samples;
    # over seeds the differences are -1, -2, -3: mean -2, t-interval -2 ± 4.30 * 1 / sqrt(3) includes 0
    assert diff.startswith("-2.00") and "[-2.00, -2.00]*" in diff and "seeds (n=3) -2.00" in diff
    assert diff.endswith("]") and not diff.endswith("]*")  # the seed interval contains 0: not marked
    assert base["STB: Δ vs baseline, 95% CI"] == "baseline"
    paired = pd.read_csv(out / "tables" / "paired.csv")
    row = paired[(paired.target == "stb")].iloc[0]
    assert row.seed_ci_low_mm == pytest.approx(-2 - 4.302653 / np.sqrt(3), rel=1e-5)
    # runs table: steps, wall time (sessions summed), final validation and mean-pose EPE
    runs = p.tables["runs"]
    rows = [dict(zip(runs[0], r)) for r in runs[1:]]
    r0 = next(r for r in rows if r["run"] == "mode=ie+te,seed=0")
    assert r0["steps"] == "4" and r0["val_epe_mm"] == "35.00" and r0["val_mean_pose_epe_mm"] == "45.00"
    assert float(r0["wall_min"]) == pytest.approx(32.5 / 60, abs=0.006)
    # one loss panel per run and a validation figure; Figure 3 from ../figures embedded
    html = (out / "report.html").read_text()
    for name in ("loss_curves", "val_curves", "paper_fig3-tsne"):
        assert (out / "figures" / f"{name}.png").is_file(), name
    assert "Figures 3-4" in html and 'class="scroll"' in html


def test_digits_grow_until_different_numbers_print_differently():
    from hcdg.stages import report_render as rr

    assert rr.digits_to_tell_apart([82.9031, 82.9042, 50.0]) == 3
    assert rr.digits_to_tell_apart([82.90, 50.0]) == 2
    assert rr.digits_to_tell_apart([1.0000001, 1.0000002]) == 4  # capped: 0.1 um apart is the same EPE
    assert rr.digits_to_tell_apart([]) == 2


def test_figure_option_embeds_a_png_and_refuses_other_files(tmp_path):
    runs = _make_runs(tmp_path / "sw")
    bad = tmp_path / "notes.png"
    bad.write_text("not a png")
    res = CliRunner().invoke(main, ["report", str(runs), "--out", str(tmp_path / "o"), "--figure", str(bad)])
    assert res.exit_code != 0 and "not a PNG file" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_every_con_loss_form_is_a_rerun_of_the_papers_row_labelled_unless_default(tmp_path):
    """Each L_con form matches the paper's row (the paper prints only Eq. 4); the run default
    is unlabelled and listed first; old run folders' "paper" reads as "paper-literal"; the
    ratio figure keeps every form."""
    default = report.default_con_loss()
    forms = {"default": (default, 30.0), "hinge": ("hinge", 33.0), "old": ("paper", 36.0)}
    for name, (form, epe) in forms.items():
        cfg = {**BASE, "con_loss": form, "mode": "ie+te", "ratio": 0.6}
        run = prepare_run(tmp_path / "runs" / name, stage="train", config=cfg, seed=0)
        if name == "old":  # as hcdg wrote run.json before `store.schema` (no version; Eq. 4 as "paper")
            record = json.loads((run / "run.json").read_text())
            del record["schema"]
            (run / "run.json").write_text(json.dumps(record))
        frame = results.results_frame(run=name, target="stb", split="test", sample_ids=["0", "1"],
                                      results=_results(2, epe, "palm"), config=cfg, random_weights=False)  # fmt: skip
        results.write_results(run, "stb", frame)
    runs, _ = report.load_runs([str(tmp_path / "runs")])
    cfg = report.ReportConfig(runs=(str(tmp_path / "runs"),), out=str(tmp_path / "rep"), protocol="2.5d-gtroot-gtbone")
    t = report.paper_table("4a", runs, cfg)
    rerun = t[(t.method == "IE+TE") & (t.setting == "0.6") & (t.source != report.PUBLISHED_SOURCE)]
    assert list(rerun.stb_epe_mm) == [30.0, 33.0, 36.0]  # default first, then by form name
    assert rerun.source.iloc[0] == "re-run (2.5d-gtroot-gtbone, STB root wrist)"
    assert rerun.source.iloc[1].startswith("re-run, hinge L_con (")
    assert rerun.source.iloc[2].startswith("re-run, paper-literal L_con (")
    pts = report.ratio_points(runs, "stb", cfg)
    assert pts == {"": {0.6: [30.0]}, ", hinge L_con": {0.6: [33.0]}, ", paper-literal L_con": {0.6: [36.0]}}
