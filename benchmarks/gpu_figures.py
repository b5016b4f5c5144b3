"""Every GPU figure docs/benchmarks.md needs, in one run (`benchmarks/gpu.sh` calls this).

Prints one Markdown table:

* embed: ViT-B-32 image encoder (random weights: the same cost as OpenAI's) at 224 px,
  images/s, fp32 and bf16 (`store.clip_weights.load_encoder`, batch 256, no decode); and the whole
  `hcdg embed` (decode + encoder + store writes) over synthetic FreiHAND-format 224 px images,
  images/s and the time FreiHAND's 130,240 images would take at that rate;
* step: one `hcdg train` optimizer step (`pipeline.objective.loss_terms` + backward + Adam,
  mode ie+te, float16 feature table of FreiHAND's 130,240 rows) at the paper's size
  (256 px, width 1), batch 32 and 64, for each execution row of `hcdg train` (fp32 eager,
  compiled, bf16, bf16 + compiled, channels-last, fp16 + loss scaling): samples/s, peak
  GPU memory, first-step (compile) seconds;
* ddp: 2-process DDP efficiency of `hcdg train --nproc 2` against one process at the same
  global batch (where 2 GPUs exist);
* loader: the training input pipeline (`AugmentedSamples`: decode, crop warp, colour
  jitter, heatmaps) at 256 px with 0 and W workers, samples/s; with the step rates it says
  how many workers one run needs;
* sweep: a 4-point ratio sweep of S steps, shared batches (`stages.train_shared`) vs one
  run after another (`stages.train_loop.train`), wall s and the speed-up.

`--dry-run`: the same code at toy sizes on the CPU in about a minute (what the test suite
runs; the compiled rows run eagerly -- compiling takes minutes per graph on a small CPU,
tests/test_train_precision.py covers it -- and DDP runs on gloo); its numbers mean nothing.

Usage:
    python benchmarks/gpu_figures.py [--device cuda] [--dir /tmp/hcdg-gpu] [--dry-run]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def embed_rate(device: torch.device, precision: str, model: str, batch: int, reps: int) -> tuple[float, int]:
    """(images/s, input side px) of the image encoder alone."""
    from hcdg.store.clip_weights import load_encoder

    enc = load_encoder(model, "none", precision=precision, device=device)
    h, w = enc.image_size
    x = torch.rand(batch, 3, h, w, device=device)
    enc.encode_images(x)  # warm-up
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        enc.encode_images(x)
    _sync(device)
    return reps * batch / (time.perf_counter() - t), h


def _data(root: Path, store: Path, dry: bool) -> None:
    from hcdg.stages import embed, synth

    if not root.exists():
        synth.run(synth.SynthConfig(format="freihand", out=str(root), n=4 if dry else 64, n_other=1), progress=False)
    if not store.exists():
        embed.run(embed.EmbedConfig(dataset="freihand", root=str(root), store=str(store), model="hcdg-tiny",
                                    workers=0, device="cpu", prompt_filter="^one ", progress=False))


def _one_batch(root: Path, size: int, batch: int) -> dict[str, torch.Tensor]:
    from torch.utils.data import default_collate

    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.train_data import AugmentedSamples
    from hcdg.pipeline.transforms import CropConfig

    reader = open_dataset("freihand", root, "training")
    ds = AugmentedSamples(reader, CropConfig(input_size=size), None, None, 0, None)
    items = [ds[(0, i % len(reader))] for i in range(batch)]
    out = default_collate(items)
    out["feat_row"] = torch.arange(batch) % 1000
    return out


#: Execution rows of `hcdg train` (TrainConfig fields; `pipeline.precision`).
STEP_ROWS: dict[str, dict[str, object]] = {
    "fp32": {}, "bf16": {"precision": "bf16"}, "fp16 + scaler": {"precision": "fp16"},
    "channels-last": {"channels_last": True}, "bf16 + channels-last": {"precision": "bf16", "channels_last": True},
    "compiled": {"compile": "inductor"}, "bf16 + compiled": {"precision": "bf16", "compile": "inductor"},
}


def step_rate(device: torch.device, root: Path, size: int, width: float, batch: int, row: dict, steps: int,
              rows: int) -> tuple[float, float, float]:
    """(samples/s, peak device memory MiB (NaN on CPU), first step s incl. compiling) of one row."""
    from hcdg.pipeline import objective, precision
    from hcdg.stages import train, train_loop

    cfg = train.TrainConfig(root="x", out="x", store="x", input_size=size, width_mult=width, batch_size=batch,
                            device=str(device), **row)
    dim = 512
    tables = objective.FeatureTables(torch.randn(rows, dim, device=device).half(), torch.randn(3920, dim, device=device))
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = precision.to_channels_last(train_loop.build_model(cfg, dim).to(device), cfg.channels_last)
    net = precision.compile_module(model, cfg.compile)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = precision.grad_scaler(cfg.precision, device)
    b = {k: v.to(device) for k, v in _one_batch(root, size, batch).items()}

    def step(i: int) -> None:
        loss, _ = objective.loss_terms(cfg, net, b, tables, i)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()

    t = time.perf_counter()
    step(0)  # warm-up (compile, cudnn autotune, allocator)
    _sync(device)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    _sync(device)
    rate = steps * batch / (time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    del model, net, optim, tables, b
    return rate, peak, first


def embed_run(device: torch.device, root: Path, store: Path, model: str, workers: int) -> tuple[float, int]:
    """(images/s of the image loop, images) of the whole `hcdg embed` over `root` (random weights)."""
    from hcdg.stages import embed

    shutil.rmtree(store, ignore_errors=True)
    res = embed.run(embed.EmbedConfig(dataset="freihand", root=str(root), store=str(store), model=model,
                                      pretrained="none", device=str(device), workers=workers,
                                      prompt_filter="^one ", progress=False))
    return res.embedded / max(res.image_seconds, 1e-9), res.embedded


def ddp_efficiency(device: torch.device, root: Path, store: Path, work: Path, size: int, width: float, batch: int,
                   steps: int, workers: int) -> tuple[float, float]:
    """(samples/s of `hcdg train` in 1 process, in 2 processes) at global batch `batch` (median train row)."""
    import pandas as pd

    from hcdg.stages import train

    rates = []
    for nproc in (1, 2):
        out = work / f"ddp{nproc}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = train.TrainConfig(root=str(root), store=str(store), out=str(out), input_size=size, width_mult=width,
                                batch_size=batch, steps=steps, workers=workers, device=device.type, nproc=nproc,
                                progress=False, log_every=max(1, steps // 4), checkpoint_every=steps,
                                augment_on="device", val_fraction=0.02)
        train.run(cfg)
        df = pd.read_parquet(out / "metrics.parquet")
        sps = df[df.kind == "train"]["samples_per_s"].to_numpy()
        rates.append(float(pd.Series(sps[1:] if len(sps) > 1 else sps).median()))  # the first row holds start-up
    return rates[0], rates[1]


def loader_rate(root: Path, size: int, batch: int, workers: int, batches: int, augment_on: str = "workers",
                device: torch.device | None = None) -> float:
    """Training-loader samples/s; with augment_on="device", each batch is also rendered
    (`device_aug.render_batch`) on `device`, included in the time."""
    from torch.utils.data import DataLoader

    from hcdg.pipeline.device_aug import render_batch

    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.train_data import AugmentedSamples, ColorJitter, GlobalBatchSampler
    from hcdg.pipeline.transforms import CropConfig, GeomAug

    reader = open_dataset("freihand", root, "training")
    crop = CropConfig(input_size=size)
    ds = AugmentedSamples(reader, crop, GeomAug(), ColorJitter(), 0, None, augment_on=augment_on)
    import numpy as np

    sampler = GlobalBatchSampler(np.arange(len(reader)), min(batch, len(reader)), 0, 0, batches + 1)
    it = iter(DataLoader(ds, batch_sampler=sampler, num_workers=workers, pin_memory=device is not None
                         and device.type == "cuda"))
    next(it)  # workers started
    t = time.perf_counter()
    n = 0
    for b in it:
        n += len(b["index"])
        if augment_on == "device":
            render_batch({k: v.to(device, non_blocking=True) for k, v in b.items()}, crop, color=True)
    _sync(device or torch.device("cpu"))
    return n / (time.perf_counter() - t)


def sweep_speedup(device: torch.device, root: Path, store: Path, work: Path, size: int, width: float, batch: int,
                  steps: int, workers: int) -> tuple[float, float]:
    from hcdg.stages import train, train_loop, train_shared
    from hcdg.stages.train_dist import DistEnv

    base = train.TrainConfig(root=str(root), store=str(store), out="x", input_size=size, width_mult=width,
                             batch_size=batch, steps=steps, workers=workers, device=str(device), progress=False,
                             checkpoint_every=steps, log_every=max(1, steps // 2), val_fraction=0.02)
    ratios = (0.4, 0.6, 0.8, 0.9)
    env = DistEnv(rank=0, world=1, local_rank=0, spawned=False)
    times = {}
    for kind in ("separate", "shared"):
        cfgs = [train.replace(base, ratio=r, out=str(work / kind / f"r{r}")) for r in ratios]
        shutil.rmtree(work / kind, ignore_errors=True)
        _sync(device)
        t = time.perf_counter()
        if kind == "separate":
            for c in cfgs:
                train_loop.train(c, env)
        else:
            res = train_shared.train_group(cfgs, env)
            bad = [r for r in res if not isinstance(r, dict)]
            if bad:
                raise RuntimeError(f"shared sweep: {bad[0]}")
        _sync(device)
        times[kind] = time.perf_counter() - t
    return times["separate"], times["shared"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dir", default=None, help="where the synthetic data is made (default: a temp dir)")
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    args = ap.parse_args()
    dry = args.dry_run
    device = torch.device("cpu" if dry else args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size, width = (32, 0.125) if dry else (256, 1.0)
    workers = 0 if dry else min(16, os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        d = Path(args.dir) if args.dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hcdg-gpu-")))
        root, store = d / "frei", d / "store.zarr"
        _data(root, store, dry)
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU)"
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, GPU {gpu}, torch {torch.__version__}"
              + (" -- DRY RUN: toy sizes, the numbers mean nothing" if dry else ""))
        print()
        print("| figure | setting | value |")
        print("|---|---|---:|")
        t0 = time.perf_counter()
        model, eb = ("hcdg-tiny", 8) if dry else ("ViT-B-32", 256)
        for prec in ("fp32", "bf16"):
            r, side = embed_rate(device, prec, model, eb, 2 if dry else 20)
            print(f"| embed images/s | {model} random weights, {side} px, batch {eb}, {prec} | {r:.0f} |", flush=True)
        eroot = d / "frei-embed"
        if not eroot.exists():
            from hcdg.stages import synth

            synth.run(synth.SynthConfig(format="freihand", out=str(eroot), n=4 if dry else 1024, n_other=1),
                      progress=False)
        r, n = embed_run(device, eroot, d / "embed.zarr", model, workers)
        print(f"| hcdg embed images/s | {model} random weights, {n} synthetic FreiHAND images (224 px), "
              f"{workers} workers, decode + store | {r:.0f} |", flush=True)
        print(f"| hcdg embed, FreiHAND's 130,240 images | at that rate, minutes | {130_240 / r / 60:.1f} |", flush=True)
        rates: dict[tuple[str, int], float] = {}

        def step_rows(compiled: bool) -> None:
            for name, row in STEP_ROWS.items():
                if bool(row.get("compile")) != compiled:
                    continue
                row = dict(row)
                if dry and compiled:  # compiling takes minutes per graph on a small CPU (aot_eager too):
                    row["compile"] = "off"  # the dry run checks the rows' code; tests/test_train_precision compiles
                for b in ((4,) if dry else (32, 64)):
                    r, peak, first = step_rate(device, root, size, width, b, row, 2 if dry else 20,
                                               1000 if dry else 130_240)
                    rates[(name, b)] = r
                    how = f" ({row['compile']})" if row.get("compile", "off") != "off" else " (dry run: eager)"
                    print(f"| step samples/s | ie+te, {size} px, width {width:g}, batch {b}, {name}"
                          f"{how if compiled else ''} | {r:.0f} |", flush=True)
                    print(f"| step peak memory MiB | same | {peak:.0f} |", flush=True)
                    print(f"| step first-step s (incl. compile) | same | {first:.1f} |", flush=True)

        step_rows(compiled=False)  # the compiled rows come last: a run cut by the time limit keeps the rest
        loader = {}
        for w in sorted({0, workers}):
            loader[w] = loader_rate(root, size, 8 if dry else 32, w, 2 if dry else 40)
            print(f"| loader samples/s | {size} px, augmentation on, {w} workers | {loader[w]:.0f} |", flush=True)
            r = loader_rate(root, size, 8 if dry else 32, w, 2 if dry else 40, "device", device)
            print(f"| loader samples/s, --augment-on device | {size} px, render on {device.type} included, "
                  f"{w} workers | {r:.0f} |", flush=True)
        fastest = max(rates.values())
        print(f"| workers to feed the fastest step | {fastest:.0f} samples/s / {loader[0]:.0f} per core | "
              f"{fastest / max(loader[0], 1e-9):.1f} |")
        n_gpu = torch.cuda.device_count() if device.type == "cuda" else 0
        if dry or n_gpu >= 2:
            db = 4 if dry else 64
            one, two = ddp_efficiency(device, root, store, d / "ddp", size, width, db, 2 if dry else 40,
                                      0 if dry else max(1, workers // 2))
            print(f"| 2-process DDP samples/s | {size} px, global batch {db}, --augment-on device, 1 / 2 processes "
                  f"| {one:.0f} / {two:.0f} |", flush=True)
            print(f"| 2-process DDP efficiency | samples/s of 2 processes / (2 x 1 process) | "
                  f"{two / (2 * one):.2f} |", flush=True)
        else:
            print(f"| 2-process DDP efficiency | needs 2 GPUs, this machine has {n_gpu} | n/a |", flush=True)
        sb = 4 if dry else 32
        sep, sha = sweep_speedup(device, root, store, d / "sweep", size, width, sb, 2 if dry else 30, workers)
        print(f"| 4-point ratio sweep wall s, separate | {size} px, batch {sb}, {2 if dry else 30} steps, "
              f"{workers} workers | {sep:.1f} |")
        print(f"| 4-point ratio sweep wall s, shared batches | same | {sha:.1f} |")
        print(f"| shared-sweep speed-up | separate / shared | {sep / sha:.2f}x |", flush=True)
        step_rows(compiled=True)
        for b in ((4,) if dry else (32, 64)):
            for name in STEP_ROWS:
                print(f"| step speed vs fp32 eager | {name}, batch {b} | {rates[(name, b)] / rates[('fp32', b)]:.2f}x |")
        print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
