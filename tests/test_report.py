"""`hcdg report` from two tiny fabricated runs: numbers land in the right cells."""

from __future__ import annotations

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

BASE = {"combine": "concat", "lambda_con": 0.1, "con_loss": "paper", "aug": "clip"}
#: run -> (config, EPE mm per target under gtroot-2.5d, random weights)
RUNS = {
    "ours-r06": ({**BASE, "mode": "ie+te", "ratio": 0.6}, {"stb": 31.25, "rhd": 44.5}, False),
    "baseline": ({**BASE, "mode": "baseline", "ratio": 0.6}, {"stb": 40.0, "rhd": 50.0}, True),
}


def _results(n: int, epe_mm: float, gt_root: str) -> list[ProtocolResult]:
    """Every joint off by exactly `epe_mm` along x under gtroot-2.5d; other protocols 1 mm better."""
    gt = np.zeros((n, 21, 3)) + [0.0, 0.0, 0.5]
    out = []
    roots = ("wrist", "palm") if gt_root == "palm" else ("wrist",)
    for proto, d in (("gtroot-2.5d", epe_mm), ("rr-gtscale", epe_mm - 1), ("pa", epe_mm - 2)):
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
    assert ours[3:5] == ["31.25", "44.50"] and "2.5d-gtroot-gtbone" in ours[2] and ours[5] == "ours-r06"
    base = _row(t4a, "Baseline", "", "re-run")
    assert base[3:5] == ["40.00", "50.00"] and "baseline" in base[5]
    assert _row(t4a, "IE+TE", "0.6", "as published")[3:5] == ["34.97", "47.34"]
    assert _row(t4a, "IE+TE", "0.4", "as published")[3:5] == ["47.25", "63.01"]
    # Table 3: Ours = r 0.6 for STB, r 0.9 for RHD -> only the STB cell has a re-run
    t3 = p.tables["table3"]
    assert _row(t3, "Zhang et al. 2021 [60]", "", "as published")[3:5] == ["36.1", "48.3"]
    assert _row(t3, "Ours (IE+TE)", "", "as published")[3:5] == ["34.9", "46.8"]
    assert _row(t3, "Ours (IE+TE)", "", "re-run")[3:5] == ["31.25", "—"]
    assert _row(t3, "IE+TE, ratio 0.6", "", "re-run")[3:5] == ["31.25", "44.50"]
    assert _row(p.tables["table6"], "Normal Augmentation", "", "as published")[3:5] == ["38.92", "49.86"]
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
    assert "as published, not re-run" in md and "31.25" in md and "| *Zhang et al. 2021 [60]* |" in md
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
