"""The report's verdict: directions with intervals, protocol disagreement, heatmaps that did not learn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import verdict as vd
from hcdg.pipeline.protocols import ProtocolResult
from hcdg.store import results
from hcdg.store.runs import prepare_run

BASE = {"combine": "concat", "lambda_con": 0.1, "con_loss": "paper", "aug": "clip", "width_mult": 0.25,
        "input_size": 64, "crop_scale": 1.0, "batch_size": 4}
#: protocol -> (baseline EPE, ie+te EPE) mm: ie+te better under 2.5d, worse under pa, equal-ish under rr
EPE = {"2.5d-gtroot-gtbone": (50.0, 47.5), "pa": (20.0, 21.7), "rr-gtscale": (30.0, 30.0)}


def _results(n: int, which: int, jitter: np.ndarray) -> list[ProtocolResult]:
    gt = np.zeros((n, 21, 3)) + [0.0, 0.0, 0.5]
    out = []
    for proto, pair in EPE.items():
        err = pair[which] + (jitter if proto == "rr-gtscale" else np.zeros(n))
        out.append(ProtocolResult(proto, "wrist", gt + 0.001, gt, np.repeat(err[:, None], 21, axis=1)))
    return out


def _runs(parent, heat_learned: bool):
    jit = np.random.default_rng(0).normal(0, 3, (2, 12))
    for i, (name, cfg) in enumerate((("baseline", {**BASE, "mode": "baseline"}),
                                     ("ours", {**BASE, "mode": "ie+te", "ratio": 0.6}))):
        run = prepare_run(parent / name, stage="train", config=cfg, seed=0,
                          extra={"store_fingerprint": {"encoder": {"model": "hcdg-tiny", "weights": {"kind": "random"}}}})
        frame = results.results_frame(run=name, target="rhd", split="evaluation", sample_ids=[str(k) for k in range(12)],
                                      results=_results(12, i, jit[i]), config=cfg)  # fmt: skip
        results.write_results(run, "rhd", frame)
        done = {"total_steps": 40, "n_train": 96, "val_epe_mm": 60.0, "val_mean_pose_epe_mm": 61.0,
                "val_2d_px": 9.0 if heat_learned else 16.44, "val_mean_2d_px": 16.27}
        (run / "done.json").write_text(json.dumps(done))
    return parent


def test_direction_needs_the_whole_interval_on_one_side():
    assert vd.direction(-2.0, -0.1) == vd.BETTER and vd.direction(0.2, 3.0) == vd.WORSE
    assert vd.direction(-1.0, 1.0) == vd.UNCLEAR and vd.direction(float("nan"), 1.0) == vd.UNCLEAR


def test_report_verdict_says_who_won_where_and_flags_unlearned_heatmaps(tmp_path):
    runs = _runs(tmp_path / "runs", heat_learned=False)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(runs), "--out", str(out), "--protocol", "2.5d-gtroot-gtbone"])
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    block = html[html.index("id='verdict'"):html.index("</div>", html.index("id='verdict'"))]
    # the training setup, in words
    assert "width x0.25, 64 px crops (box scale 1), batch 4, 96 training images, 40 steps" in block
    assert "CLIP hcdg-tiny (random weights)" in block
    # 2.5d (heatmap 2D, unreliable here) says better, pa says worse: pa decides, 2.5d is flagged
    assert "ie+te (ratio 0.6) on RHD: was worse than the baseline" in block
    assert "better under 2.5d-gtroot-gtbone (-2.50 mm [-2.50, -2.50] over samples) — unreliable" in block
    assert "worse under pa (+1.70 mm [+1.70, +1.70] over samples)" in block
    assert "16.44 px vs 16.27 px" in block
    # coloured by direction: the worse verdict is red, never green
    assert "<li class='worse'>ie+te (ratio 0.6) on RHD" in block
    # the table itself flags the unreliable cell
    assert "⚠ 2D unreliable" in html[html.index("id=\"table4a\""):]


def test_protocols_that_disagree_are_named(tmp_path):
    runs = _runs(tmp_path / "runs", heat_learned=True)
    out = tmp_path / "rep"
    assert CliRunner().invoke(main, ["report", str(runs), "--out", str(out)]).exit_code == 0
    md = (out / "report.md").read_text()
    assert "Protocols disagree: ie+te (ratio 0.6) on RHD: better under 2.5d-gtroot-gtbone, worse under pa." in md
    assert "⚠ 2D unreliable" not in md
    html = (out / "report.html").read_text()
    # the Δ cell of a better result is green, a worse one red (Table 4a under 2.5d: better)
    t4a = html[html.index('id="table4a"'):]
    assert '<td class="better">-2.50 [-2.50, -2.50]*</td>' in t4a


def test_findings_use_the_seed_interval_when_seeds_pair_up():
    paired = pd.DataFrame([{
        "group": "g", "runs": "a, b", "baseline_runs": "c, d", "target": "stb", "protocol": "pa", "root": "wrist",
        "n_samples": 10, "diff_mm": -1.0, "ci_low_mm": -1.5, "ci_high_mm": -0.5, "n_seeds_paired": 2,
        "seed_diff_mm": -1.0, "seed_ci_low_mm": -9.0, "seed_ci_high_mm": 7.0,
    }])  # fmt: skip
    runs = [vd.RunFacts(name="a", group="g", mode="ie+te", ratio=0.6)]
    (f,) = vd.findings(paired, runs)
    assert f.interval == "seeds (n=2)" and f.direction == vd.UNCLEAR and f.method == "ie+te (ratio 0.6)"


def test_the_verdict_names_a_synthetic_clip_and_never_as_openai():
    from hcdg.stages.report import clip_of

    synth = {"store_fingerprint": {"encoder": {"model": "local-dir", "weights": {"kind": "local-dir"},
                                               "synthetic_clip": {"recipe": {"architecture": "hcdg-synth"},
                                                                  "weights_sha256": "2120989" + "0" * 57}}}}
    text = clip_of(synth)
    assert text.startswith("hcdg-synth (synthetic-hand CLIP, weights 212098900000") and "not OpenAI's" in text
    rand = {"store_fingerprint": {"encoder": {"model": "hcdg-tiny", "weights": {"kind": "random"}}}}
    assert clip_of(rand) == "hcdg-tiny (random weights)"
    assert clip_of({"store_fingerprint": None}) is None
