"""Training input pipeline throughput: does the loader keep up with the training step?

Measures `hcdg train`'s data path (`pipeline.train_data.AugmentedSamples`: JPEG decode,
crop with random scale/rotation/translation, heatmaps, colour jitter) through a torch
DataLoader with the same batch sampler as training, at the paper's input size (256),
for several worker counts, and for each `--augment-on` mode: "workers" (the loader does
everything) and "device" (the loader decodes and draws the augmentation; the warp, jitter
and heatmaps run batched in the step, `pipeline.device_aug.render_batch`, timed here
separately on `--device`). Compare the samples/s with the training step's samples/s
(`benchmarks/bench_step.py`): the loader keeps up when its rate with W workers is above
the step's rate.

Usage:
    python benchmarks/bench_loader.py --root SYNTH_FREIHAND [--batch 8] [--batches 40]
        [--workers 0,1,2] [--size 256] [--augment-on workers,device] [--device cpu]

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
from hcdg.pipeline.device_aug import render_batch  # noqa: E402
from hcdg.pipeline.train_data import AugmentedSamples, ColorJitter, GlobalBatchSampler  # noqa: E402
from hcdg.pipeline.transforms import CropConfig, GeomAug  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="FreiHAND-format dataset root")
    ap.add_argument("--batch", type=int, default=8, help="batch size (hcdg train's default 8)")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per worker count")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    ap.add_argument("--size", type=int, default=256, help="crop size (256 = paper)")
    ap.add_argument("--augment-on", default="workers,device", help="comma-separated modes: workers, device")
    ap.add_argument("--device", default="cpu", help="where the device mode's render_batch runs (cpu, cuda)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reader = open_dataset("freihand", args.root, "training")
    crop = CropConfig(input_size=args.size)
    dev = torch.device(args.device)
    train_idx = np.arange(len(reader))
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{len(reader)} images, crop {args.size}, batch {args.batch}, {args.batches} batches; render on {dev}")
    print("\n| augment-on | workers | loader samples/s | loader ms/sample (wall) | render ms/sample |"
          "\n|---|---:|---:|---:|---:|")
    for mode in args.augment_on.split(","):
        ds = AugmentedSamples(reader, crop, GeomAug(), ColorJitter(), seed=0, augment_on=mode)
        for w in (int(x) for x in args.workers.split(",")):
            sampler = GlobalBatchSampler(train_idx, args.batch, seed=0, start_step=0, total_steps=args.batches + 2)
            loader = DataLoader(ds, batch_sampler=sampler, num_workers=w)
            it = iter(loader)
            for _ in range(2):  # warm-up: worker start, first decode
                next(it)
            t = time.perf_counter()
            n, t_render = 0, 0.0
            for batch in it:
                n += batch["index"].shape[0]
                if mode == "device":
                    t0 = time.perf_counter()
                    out = render_batch({k: v.to(dev) for k, v in batch.items()}, crop, color=True)
                    out["image"].sum().item()  # wait for the device
                    t_render += time.perf_counter() - t0
            dt = time.perf_counter() - t - t_render
            rend = f"{1000 * t_render / n:.2f}" if mode == "device" else "-"
            print(f"| {mode} | {w} | {n / dt:.1f} | {1000 * dt / n:.2f} | {rend} |", flush=True)


if __name__ == "__main__":
    main()
