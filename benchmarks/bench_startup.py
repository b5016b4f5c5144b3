"""`hcdg train` start-up at FreiHAND size: annotation parse, dataset open, mean pose, feature table, CLI import.

Builds (once, in --dir) a FreiHAND-layout root with --poses poses of random annotations
(training_xyz/K/scale.json, ~45 MB at 32,560 poses) and 4 x --poses empty image files,
then times, best of --repeats (torch imported first, as in a training process, whose
larger heap makes every garbage-collector pass dearer):

* the annotation parse: `json.load` + `np.asarray` with the collector on (before) vs
  `common.read_json_array` (collector paused; now);
* opening the dataset (`FreiHandDataset`: parse + checks + listing the images);
* the validation mean pose over the 10,000 samples `hcdg train` uses: one `annotation()`
  + `rel_norm_pose` per sample (before) vs `train_data.mean_pose` (now, vectorised);
* the (rows x 512) float16 image table: converting it to float32 and scanning it with
  `isfinite` for skipped rows (before) vs keeping it in float16 and reading the validity
  array (now): seconds and table bytes;
* `import hcdg.cli` in a fresh interpreter, and whether it imported torch.

Usage:
    python benchmarks/bench_startup.py [--poses 32560] [--repeats 3] [--dir /tmp/hcdg-bench-startup]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hcdg.pipeline.datasets import common  # noqa: E402
from hcdg.pipeline.datasets.freihand import FreiHandDataset  # noqa: E402
from hcdg.pipeline.train_data import mean_pose, rel_norm_pose  # noqa: E402


def build(root: Path, poses: int) -> None:
    rng = np.random.default_rng(0)
    xyz = rng.normal(0.0, 0.05, size=(poses, 21, 3)) + np.array([0.0, 0.0, 0.6])
    K = np.tile(np.array([[480.0, 0.0, 112.0], [0.0, 480.0, 112.0], [0.0, 0.0, 1.0]]), (poses, 1, 1))
    K[:, :2, :] += rng.normal(0.0, 1.0, size=(poses, 2, 3)) * (K[:, :2, :] != 0)
    for name, arr in (("xyz", xyz), ("K", K), ("scale", rng.uniform(0.02, 0.04, size=poses))):
        (root / f"training_{name}.json").write_text(json.dumps(arr.tolist()))
    rgb = root / "training" / "rgb"
    rgb.mkdir(parents=True, exist_ok=True)
    for i in range(4 * poses):
        (rgb / f"{i:08d}.jpg").touch()
    (root / ".complete").write_text("ok")


def best(fn, repeats: int) -> tuple[float, float]:
    """(best wall s, its CPU s) of `repeats` calls."""
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return min(runs)


def parse_gc_on(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        return np.asarray(json.load(fh), dtype=np.float64)


def mean_pose_loop(reader, idx) -> np.ndarray:  # the per-sample form `mean_pose` had before
    acc = np.zeros((21, 3))
    for i in idx:
        s = reader.annotation(int(i))
        acc += rel_norm_pose(s.xyz, s.side)
    return (acc / max(1, len(idx))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poses", type=int, default=32_560, help="poses (FreiHAND training: 32,560; images = 4x)")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension (ViT-B/32: 512)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/hcdg-bench-startup")
    args = ap.parse_args()
    root = Path(args.dir) / f"freihand-{args.poses}"
    if not (root / ".complete").is_file():
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build(root, args.poses)
        print(f"built {root} in {time.perf_counter() - t:.1f} s")
    xyz_json = root / "training_xyz.json"
    rows = 4 * args.poses
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}; {rows:,} images, {xyz_json.stat().st_size / 1e6:.0f} MB xyz json")
    print()
    print("| step | before (wall s / CPU s) | now (wall s / CPU s) | ratio |")
    print("|---|---|---|---|")

    def row(name, before, now):
        print(f"| {name} | {before[0]:.3f} / {before[1]:.3f} | {now[0]:.3f} / {now[1]:.3f} | "
              f"{before[0] / max(now[0], 1e-9):.2f}x |", flush=True)

    assert gc.isenabled()
    row("parse training_xyz.json (collector on -> paused)", best(lambda: parse_gc_on(xyz_json), args.repeats),
        best(lambda: common.read_json_array(xyz_json, "joints", (-1, 21, 3)), args.repeats))

    def open_before():
        real = common.read_json_array
        common.read_json_array = lambda p, w, s: common.as_array(common.read_json(p, w), s, str(p))
        try:
            return FreiHandDataset(root, "training")
        finally:
            common.read_json_array = real

    row("open FreiHandDataset (3 json + checks + listing)", best(open_before, args.repeats),
        best(lambda: FreiHandDataset(root, "training"), args.repeats))

    reader = FreiHandDataset(root, "training")
    idx = np.arange(rows)[:: max(1, rows // 10000)]
    a, b = mean_pose_loop(reader, idx), mean_pose(reader, idx)
    assert np.allclose(a, b, atol=1e-6), "vectorised mean pose differs"
    row(f"mean pose over {len(idx):,} samples (loop -> vectorised)", best(lambda: mean_pose_loop(reader, idx), args.repeats),
        best(lambda: mean_pose(reader, idx), args.repeats))

    table = torch.from_numpy(np.random.default_rng(0).normal(size=(rows, args.dim)).astype(np.float16))
    valid = np.ones(rows, dtype=bool)
    feature_rows = np.arange(rows)

    def before_table():
        t = table.float()
        skipped = np.flatnonzero(~torch.isfinite(t).all(dim=1).numpy()[feature_rows])
        return t, skipped

    def now_table():
        return table, np.flatnonzero(~valid[feature_rows])

    row(f"image table {rows:,} x {args.dim}: float32 + isfinite scan -> float16 + valid array",
        best(before_table, args.repeats), best(now_table, args.repeats))
    print(f"| image table bytes on the device | {rows * args.dim * 4 / 1e6:.0f} MB (+ {rows * args.dim / 1e6:.0f} MB "
          f"bool scan temp) | {rows * args.dim * 2 / 1e6:.0f} MB | {2.0:.2f}x |")

    code = "import sys, time; t = time.perf_counter(); import hcdg.cli; print(time.perf_counter() - t, 'torch' in sys.modules)"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(args.repeats)]
    torch_s = min(float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import torch; "
                                        "print(time.perf_counter() - t)"], capture_output=True, text=True,
                                       check=True).stdout) for _ in range(args.repeats))
    cli_s = min(float(r[0]) for r in runs)
    print(f"| `import hcdg.cli` (paid by every command, `hcdg store info` included) | {cli_s + torch_s:.3f} "
          f"(+ `import torch` {torch_s:.3f}) | {cli_s:.3f} (imports torch: {runs[0][1]}) | "
          f"{(cli_s + torch_s) / cli_s:.2f}x |")


if __name__ == "__main__":
    main()
