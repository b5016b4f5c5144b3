"""benchmarks/gpu.sh: the one-call GPU measurement runs end to end (its CPU dry run)."""

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.slow  # every figure's code at toy sizes, 2 spawned DDP processes and 8 sweep runs included
def test_gpu_script_dry_run_prints_every_figure(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=480)  # gpu.sh's own limit
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ")]
    figures = [r.split("|")[1].strip() for r in rows[1:]]  # after the header (the rule starts "|-")
    for want in ("embed images/s", "hcdg embed images/s", "hcdg embed, FreiHAND's 130,240 images",
                 "step samples/s", "step peak memory MiB", "step first-step s (incl. compile)",
                 "loader samples/s", "loader samples/s, --augment-on device", "workers to feed the fastest step",
                 "2-process DDP samples/s", "2-process DDP efficiency", "shared-sweep speed-up"):
        assert want in figures, out.stdout
    assert figures.count("embed images/s") == 2  # fp32 + bf16
    # every execution row of `hcdg train` (issue 21), each with its ratio to fp32 eager
    steps = [r.split("|")[2] for r in rows if r.split("|")[1].strip() == "step samples/s"]
    ratios = [r.split("|")[2] for r in rows if r.split("|")[1].strip() == "step speed vs fp32 eager"]
    for name in ("fp32", "bf16", "fp16 + scaler", "channels-last", "compiled (dry run: eager)",
                 "bf16 + compiled (dry run: eager)"):
        assert any(s.strip().endswith(name) for s in steps), (name, steps)
    assert len(steps) == len(ratios) == 7
    for v in (r.split("|")[3].strip().rstrip("x") for r in rows[1:]):  # numbers (nan: no GPU memory on the CPU)
        for part in v.split(" / "):  # "1-process / 2-process"
            float(part)
    assert "DRY RUN" in out.stdout
