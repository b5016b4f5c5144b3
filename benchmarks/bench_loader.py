"""Training input pipeline throughput: does the loader keep up with the training step?

Measures `hcdg train`'s data path (`pipeline.train_data.AugmentedSamples`: JPEG decode,
crop with random scale/rotation/translation, heatmaps, colour jitter) through a torch
DataLoader with the same batch sampler as training, at the paper's input size (256),
for several worker counts. Compare the samples/s with the training step's samples/s
(`benchmarks/bench_step.py`): the loader keeps up when its rate with W workers is above
the step's rate.

Usage:
    python benchmarks/bench_loader.py --root SYNTH_FREIHAND [--batch 8] [--batches 40]
        [--workers 0,1,2] [--size 256]

`SYNTH_FREIHAND` is a FreiHAND-format root (`hcdg synth --format freihand --out DIR`,
224x224 JPEGs like the real data).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from hcdg.pipeline.datasets import open_dataset  # noqa: E402
from hcdg.pipeline.train_data import AugmentedSamples, ColorJitter, GlobalBatchSampler  # noqa: E402
from hcdg.pipeline.transforms import CropConfig, GeomAug  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="FreiHAND-format dataset root")
    ap.add_argument("--batch", type=int, default=8, help="batch size (hcdg train's default 8)")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per worker count")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    ap.add_argument("--size", type=int, default=256, help="crop size (256 = paper)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reader = open_dataset("freihand", args.root, "training")
    ds = AugmentedSamples(reader, CropConfig(input_size=args.size), GeomAug(), ColorJitter(), seed=0)
    train_idx = np.arange(len(reader))
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{len(reader)} images, crop {args.size}, batch {args.batch}, {args.batches} batches")
    print("\n| workers | samples/s | ms/sample (wall) |\n|---|---:|---:|")
    for w in (int(x) for x in args.workers.split(",")):
        sampler = GlobalBatchSampler(train_idx, args.batch, seed=0, start_step=0, total_steps=args.batches + 2)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=w)
        it = iter(loader)
        for _ in range(2):  # warm-up: worker start, first decode
            next(it)
        t = time.perf_counter()
        n = 0
        for batch in it:
            n += batch["image"].shape[0]
        dt = time.perf_counter() - t
        print(f"| {w} | {n / dt:.1f} | {1000 * dt / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
