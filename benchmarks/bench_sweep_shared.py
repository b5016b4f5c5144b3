"""A 4-point ratio sweep, shared batches vs one run after another: wall and CPU time, input share.

Builds (once, in --dir) a synthetic FreiHAND root (`hcdg synth --n 64`: 256 images 224x224)
and its `hcdg-tiny` store, then runs, each in a fresh process (`hcdg sweep`, CPU):

* `--separate-batches`: the 4 points one after another (today's default), and
* `--shared-batches`: the 4 points in one process from one loader,

and reports wall and CPU seconds (the sweep process and its children) of each. It also
times the input pipeline alone (the training loader over the same steps, no network) and
one solo run, which gives the input share `i` of a step; with it the expected cost ratio of
K separate runs to one shared group, K (i + m) / (i + K m) with m = 1 - i, is printed
next to the measured one. The GPU reading of that formula is in docs/benchmarks.md.

Usage:
    python benchmarks/bench_sweep_shared.py [--steps 40] [--size 64] [--width 0.125] [--batch 8]
        [--ratios 0.4,0.6,0.8,0.9] [--dir /tmp/hcdg-bench-sweep]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def hcdg(*args: str) -> list[str]:
    return [sys.executable, "-m", "hcdg.cli", *args]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child and its children) of running `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def loader_only(root: Path, store: Path, steps: int, size: int, batch: int) -> tuple[float, float]:
    """(wall s, CPU s) of the training loader alone over `steps` batches (what the group shares)."""
    import torch

    from hcdg.pipeline.transforms import CropConfig
    from hcdg.stages import train, train_loop
    from hcdg.stages.train_dist import DistEnv

    cfg = train.TrainConfig(root=str(root), store=str(store), out="unused", input_size=size, batch_size=batch,
                            workers=0, val_fraction=0.02)
    data = train_loop.open_data(cfg, torch.device("cpu"))
    train_idx, _, _, _ = train_loop.plan(cfg, data, 1)

    class _Pt:  # the fields train_loader reads
        pass

    pt = _Pt()
    pt.cfg, pt.data, pt.train_idx, pt.device = cfg, data, train_idx, torch.device("cpu")
    pt.env = DistEnv(rank=0, world=1, local_rank=0, spawned=False)

    pt.crop = CropConfig(input_size=size, sigma_px=cfg.sigma_px, gaussian=cfg.gaussian, crop_scale=cfg.crop_scale)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in train_loop.train_loader(pt, 0, steps):
        pass
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--size", type=int, default=64, help="input crop side, px")
    ap.add_argument("--width", type=float, default=0.125, help="network width multiplier")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ratios", default="0.4,0.6,0.8,0.9")
    ap.add_argument("--dir", default="/tmp/hcdg-bench-sweep")
    args = ap.parse_args()
    d = Path(args.dir)
    root, store = d / "frei", d / "store.zarr"
    if not root.exists():
        subprocess.run(hcdg("synth", "--format", "freihand", "--n", "64", "--out", str(root)), check=True,
                       stdout=subprocess.DEVNULL)
    if not store.exists():
        subprocess.run(hcdg("embed", "--dataset", "freihand", "--root", str(root), "--store", str(store), "--model",
                            "hcdg-tiny", "--device", "cpu", "--workers", "0", "--prompt-filter", "^one ",
                            "--no-progress"), check=True, stdout=subprocess.DEVNULL)
    k = len(args.ratios.split(","))
    common = ["--store", str(store), "--root", str(root), "--steps", str(args.steps), "--width-mult", str(args.width),
              "--input-size", str(args.size), "--batch-size", str(args.batch), "--workers", "0", "--no-progress",
              "--device", "cpu", "--checkpoint-every", str(args.steps), "--log-every", "10"]
    res = {}
    for name, flag in (("separate", "--separate-batches"), ("shared", "--shared-batches")):
        out = d / f"sweep-{name}"
        shutil.rmtree(out, ignore_errors=True)
        res[name] = timed(hcdg("sweep", flag, "--ratio", args.ratios, "--out", str(out), *common))
    solo_out = d / "solo"
    shutil.rmtree(solo_out, ignore_errors=True)
    solo = timed(hcdg("train", "--ratio", "0.6", "--out", str(solo_out), *common))
    start = timed([sys.executable, "-c", "import hcdg.stages.train_loop, torch"])  # interpreter + imports
    inp = loader_only(root, store, args.steps, args.size, args.batch)
    run_wall = solo[0] - start[0]  # one run's work without the interpreter start
    share = min(1.0, inp[0] / run_wall)
    expect = k * 1.0 / (share + k * (1.0 - share))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
          f"{k} points, {args.steps} steps, batch {args.batch}, {args.size} px, width {args.width}, workers 0, CPU")
    print()
    print("| what | wall s | CPU s |")
    print("|---|---:|---:|")
    for name in ("separate", "shared"):
        print(f"| {k}-point sweep, {name} batches | {res[name][0]:.1f} | {res[name][1]:.1f} |")
    print(f"| one solo run (`hcdg train`) | {solo[0]:.1f} | {solo[1]:.1f} |")
    print(f"| interpreter + imports alone | {start[0]:.1f} | {start[1]:.1f} |")
    print(f"| input pipeline alone, {args.steps} batches | {inp[0]:.1f} | {inp[1]:.1f} |")
    print()
    model = (res["separate"][0] - start[0] - k * inp[0]) / k  # one run's work other than its input, in process
    bound = start[0] + 1.5 * inp[0] + k * model
    print(f"issue 13's goal: shared <= start-up + 1.5 x one run's input + {k} x one run's other work = "
          f"{start[0]:.1f} + 1.5 x {inp[0]:.1f} + {k} x {model:.1f} = {bound:.1f} s wall; measured "
          f"{res['shared'][0]:.1f} s ({'met' if res['shared'][0] <= bound else 'NOT met'})")
    print(f"input share of a run's step i = {share:.2f}; separate / shared: measured wall "
          f"{res['separate'][0] / res['shared'][0]:.2f}x, CPU {res['separate'][1] / res['shared'][1]:.2f}x; "
          f"expected K(i+m)/(i+Km) = {expect:.2f}x")


if __name__ == "__main__":
    main()
