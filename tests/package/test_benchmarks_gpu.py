"""benchmarks/gpu.sh: the one-call GPU measurement runs end to end (its CPU dry run)."""

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.slow
def test_gpu_script_dry_run_prints_every_figure(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("| ")]
    figures = [r.split("|")[1].strip() for r in rows[1:]]  # after the header (the rule starts "|-")
    for want in ("embed images/s", "step samples/s", "loader samples/s", "loader samples/s, --augment-on device",
                 "workers to feed the fastest step",
                 "shared-sweep speed-up"):
        assert want in figures, out.stdout
    assert figures.count("embed images/s") == 2 and figures.count("step samples/s") == 2  # fp32 + bf16
    assert "DRY RUN" in out.stdout
