"""`hcdg embed` throughput and memory: end to end vs model-only, peak RSS for N and 4N images.

Measures on synthetic FreiHAND-format images (224x224 JPEG, `hcdg synth`):

* e2e        - the image loop of `hcdg embed` (DataLoader workers decoding JPEGs and
               running the model's own open_clip preprocessing, the model, the writer
               thread, Zarr chunk writes), images/s from `EmbedSummary.image_seconds`;
* model-only - the same encoder, batch size and device on tensors decoded and
               preprocessed beforehand (forward + copy to host), images/s (on at
               most 2048 images, held in memory);
* ratio      - e2e / model-only (goal >= 0.9: decoding and writing hidden behind the model);
* peak RSS   - of a fresh `hcdg embed` process (and its largest DataLoader worker) for
               N and 4N images (goal: flat, i.e. memory does not grow with N).

Text encoding is not measured: a small `--prompt-filter` keeps it short. Best of
`--repeats` runs for the two throughputs, e2e and model-only interleaved.

Usage:
    python benchmarks/bench_embed.py --model hcdg-tiny --n 1024 --batch-size 64 --workers 2
    python benchmarks/bench_embed.py --model ViT-B-32 --pretrained none --n 256 --batch-size 32
    python benchmarks/bench_embed.py --model ViT-B-32 --pretrained openai --n 130240 --batch-size 256 \
        --workers 15 --device cuda --no-rss --root FREIHAND   # GPU, the real training split
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT_FILTER = "^one pale yellow"  # 40 prompts: text encoding is not what is measured here


def make_data(root: Path, n_images: int) -> Path:
    """A FreiHAND-format synthetic training split with at least `n_images` images (cached in `root`)."""
    from hcdg.stages.synth import SynthConfig, run

    poses = -(-n_images // 4)
    for cached in sorted(root.glob("freihand_*"), key=lambda p: int(p.name.split("_")[1])):
        if int(cached.name.split("_")[1]) >= poses and (cached / "training_xyz.json").exists():
            return cached  # a bigger cached set works too (runs use --limit)
    out = root / f"freihand_{poses}"
    if not (out / "training_xyz.json").exists():
        run(SynthConfig(format="freihand", out=str(out), n=poses, n_other=1, seed=0), progress=False)
    return out


def e2e(args, data: Path, store: Path, limit: int) -> dict:
    from hcdg.stages.embed import EmbedConfig, run

    s = run(EmbedConfig(dataset="freihand", root=str(data), store=str(store), model=args.model,
                        pretrained=args.pretrained, batch_size=args.batch_size, workers=args.workers,
                        device=args.device, precision=args.precision, limit=limit, prompt_filter=PROMPT_FILTER,
                        progress=False))
    return {"images": s.embedded, "seconds": s.image_seconds, "img_s": s.embedded / s.image_seconds}


def model_only(args, data: Path, n: int) -> tuple[dict, object]:
    import torch

    from hcdg.pipeline.clip import ImageRows
    from hcdg.store.clip_weights import load_encoder
    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.devices import resolve_device
    from hcdg.stages.embed import resolve_pretrained

    device = resolve_device(args.device)
    precision = args.precision if args.precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    enc = load_encoder(args.model, resolve_pretrained(args.model, args.pretrained), precision=precision, device=device)
    ds = open_dataset("freihand", data)
    rows = ImageRows([ds.image_path(i) for i in range(n)], enc.preprocess, enc.image_size)
    pixels = torch.stack([rows[i][1] for i in range(n)])  # decoded + preprocessed up front, not timed
    if device.type == "cuda":
        pixels = pixels.pin_memory()

    def once() -> dict:
        t0 = time.perf_counter()
        for start in range(0, n, args.batch_size):
            enc.encode_images(pixels[start:start + args.batch_size]).cpu().numpy()
        dt = time.perf_counter() - t0
        return {"images": n, "seconds": dt, "img_s": n / dt}

    enc.encode_images(pixels[: args.batch_size])  # warm-up (first-call allocations), not timed
    return once(), once


def child_rss(args) -> None:
    """Run one embed in this (fresh) process and print peak RSS of it and of its largest worker."""
    out = e2e(args, Path(args.data), Path(args.store), args.limit)
    out["rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out))


def rss(args, data: Path, tmp: Path, limit: int) -> dict:
    cmd = [sys.executable, __file__, "--child-rss", "--data", str(data), "--store", str(tmp / f"rss{limit}.zarr"),
           "--limit", str(limit), "--model", args.model, "--batch-size", str(args.batch_size),
           "--workers", str(args.workers), "--device", args.device, "--precision", args.precision]
    if args.pretrained:
        cmd += ["--pretrained", args.pretrained]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hcdg-tiny")
    ap.add_argument("--pretrained", default=None, help="default: none for hcdg-tiny, openai otherwise")
    ap.add_argument("--n", type=int, default=1024, help="images for the throughput runs (RSS: N and 4N)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-rss", action="store_true", help="skip the N / 4N peak-RSS runs")
    ap.add_argument("--data-dir", default=None, help="where synthetic data is made/cached (default: a temp dir)")
    ap.add_argument("--root", default=None, help="use this FreiHAND-format root (e.g. the real one) instead of synthetic data")
    ap.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rss:
        child_rss(args)
        return

    import torch

    with tempfile.TemporaryDirectory(prefix="hcdg-bench-embed-") as tmp_s:
        tmp = Path(tmp_s)
        data_root = Path(args.data_dir) if args.data_dir else tmp
        data_root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        data = Path(args.root) if args.root else make_data(data_root, args.n if args.no_rss else 4 * args.n)
        print(f"data: {data} ({time.perf_counter() - t0:.0f} s to make)", file=sys.stderr)
        # model-only keeps its images decoded in memory: at most 2048 (its rate does not depend on N)
        mo_first, mo_again = model_only(args, data, min(args.n, 2048))
        runs_e2e, runs_mo = [], [mo_first]
        for r in range(args.repeats):
            runs_e2e.append(e2e(args, data, tmp / f"e2e{r}.zarr", args.n))
            if r + 1 < args.repeats:
                runs_mo.append(mo_again())
        best_e2e = max(runs_e2e, key=lambda x: x["img_s"])
        best_mo = max(runs_mo, key=lambda x: x["img_s"])
        result = {
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
                       f"torch threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.1f}",
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "model": args.model, "pretrained": args.pretrained, "n": args.n, "batch_size": args.batch_size,
            "workers": args.workers, "e2e_img_s": round(best_e2e["img_s"], 1),
            "model_only_img_s": round(best_mo["img_s"], 1),
            "ratio": round(best_e2e["img_s"] / best_mo["img_s"], 3),
            "e2e_runs": [round(x["img_s"], 1) for x in runs_e2e], "model_only_runs": [round(x["img_s"], 1) for x in runs_mo],
        }
        if not args.no_rss:
            for limit in (args.n, 4 * args.n):
                out = rss(args, data, tmp, limit)
                result[f"rss_mb_{limit}"] = {"main": round(out["rss_self_mb"]), "largest_worker": round(out["rss_worker_mb"]),
                                             "img_s": round(out["img_s"], 1)}
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
