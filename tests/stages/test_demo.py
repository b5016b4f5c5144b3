"""`hcdg demo --size tiny`: every step end to end, a report with both targets and all protocols,
re-running skips finished steps, another configuration in the same folder is refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline.protocols import OUTPUT_PROTOCOLS

PROTOCOLS = OUTPUT_PROTOCOLS["xyz"]  # the demo trains xyz-output runs
from hcdg.store import results as rs


@pytest.mark.slow
def test_tiny_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    runner = CliRunner()
    res = runner.invoke(main, ["demo", "--out", str(out), "--size", "tiny", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'report' / 'report.html'}" in res.output
    assert "training the synthetic CLIP" in res.output and (out / "clip" / "hcdg_clip_card.json").is_file()
    assert "--resume" not in res.output  # a fresh folder is not resumed

    for run in ("baseline", "ie+te"):
        for target in ("stb", "rhd"):
            summary = rs.read_summary(rs.summary_path(out / "runs" / run, target))
            assert set(summary["protocol"]) == set(PROTOCOLS)
            assert set(summary["root"]) == {"wrist", "palm"}  # RHD: hand3d's palm, rr-gtscale only
            if target == "rhd":
                assert set(summary[summary["root"] == "palm"]["protocol"]) == {"rr-gtscale"}
            assert summary["epe_mean_mm"].gt(0).all()
    assert not rs.read_summary(rs.summary_path(out / "runs" / "ie+te", "stb"))["random_weights"].any()
    assert not rs.read_summary(rs.summary_path(out / "runs" / "baseline", "stb"))["random_weights"].any()

    full = pd.read_csv(out / "report" / "tables" / "full_results.csv")
    assert set(full["target"]) == {"stb", "rhd"} and set(full["protocol"]) == set(PROTOCOLS)
    assert set(full["run"]) == {"baseline", "ie+te"}
    md = (out / "report" / "report.md").read_text()
    assert "synthetic CLIP trained on rendered hands (not OpenAI's)" in md
    for fig in ("report/figures/pck_stb.png", "report/figures/pck_rhd.png", "figures/fig3-tsne.png",
                "figures/fig4-retrieve.png"):
        assert (out / fig).read_bytes()[:4] == b"\x89PNG", fig

    before = json.loads((out / "demo.json").read_text())["steps"]
    again = runner.invoke(main, ["demo", "--out", str(out), "--size", "tiny", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert again.output.count("done before, skipped") == len(before) - 1  # all but the report
    after = json.loads((out / "demo.json").read_text())["steps"]
    assert {k: v for k, v in after.items() if k != "report"} == {k: v for k, v in before.items() if k != "report"}

    other = runner.invoke(main, ["demo", "--out", str(out), "--size", "small"])
    assert other.exit_code == 1 and "another configuration" in other.output


def test_demo_clip_choices(tmp_path):
    """--clip random keeps the random-weight path; synthetic trains into OUT/clip; a folder is reused."""
    from hcdg.pipeline.errors import HcdgError
    from hcdg.stages import demo_clip

    assert demo_clip.choose("random", tmp_path) == ("random", {"model": "hcdg-tiny", "pretrained": "none"})
    assert demo_clip.choose("synthetic", tmp_path) == ("synthetic", {"clip": str(tmp_path / "clip")})
    assert demo_clip.choose(str(tmp_path), tmp_path)[0] == "folder"
    with pytest.raises(HcdgError, match="--clip"):
        demo_clip.choose(str(tmp_path / "nope"), tmp_path)
