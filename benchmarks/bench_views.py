"""`hcdg embed --views K`: embed time and store size vs K, and the per-view render cost (a scale probe).

On synthetic FreiHAND-format images (`hcdg synth`, 224x224 JPEG), for each K in `--ks`:

* e2e         - `hcdg embed --views K` (K = 0: the whole-image feature) with the given model,
                rows/s and seconds over `EmbedSummary.image_seconds`;
* store bytes - the split's folder on disk (feats, norms, valid, errors, ids, view_params, sums);
* loader      - the training loader's item (worker path, the training crop side) drawing a fresh
                augmentation vs replaying one of 8 stored views, CPU ms per item, 3 interleaved repeats;
* render      - one view in one process (`pipeline.views.ViewRows.__getitem__`: JPEG decode,
                crop warp at the training crop side, colour jitter, bicubic resize to CLIP's
                input, normalise), CPU ms per view, median of `--render-n` views.

`--project N` prints the projection to N images (FreiHAND: 130,240) with CLIP ViT-B/32
(512-d float16 features): store size from the measured bytes per row with the feature bytes
re-scaled to 512-d, and the CPU render time per view divided over `--project-workers`
loader processes (the model side on a GPU is not measured here).

Usage:
    nice -n 10 python benchmarks/bench_views.py --n 64 --ks 0 4 8 16 --chunk-rows 64 --project 130240
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="source images")
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 4, 8, 16], help="views per image (0 = whole image)")
    ap.add_argument("--model", default="hcdg-tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk-rows", type=int, default=64, help="small, so that chunks are full (stores "
                    "allocate whole chunks: a probe of N rows with the default 1024-row chunks measures padding)")
    ap.add_argument("--render-n", type=int, default=64)
    ap.add_argument("--project", type=int, default=130240, help="images to project to (FreiHAND training)")
    ap.add_argument("--project-workers", type=int, default=15)
    ap.add_argument("--project-dim", type=int, default=512)
    args = ap.parse_args()

    import torch

    from hcdg.pipeline.datasets import open_dataset
    from hcdg.pipeline.views import ViewRows
    from hcdg.stages.embed import EmbedConfig, run, view_setup
    from hcdg.stages.synth import SynthConfig
    from hcdg.stages.synth import run as synth

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_views_"))
    data = tmp / "freihand"
    synth(SynthConfig(format="freihand", out=str(data), n=-(-args.n // 4), n_other=1, seed=0), progress=False)
    rows = []
    dim = None
    for k in args.ks:
        store = tmp / f"k{k}.zarr"
        s = run(EmbedConfig(dataset="freihand", root=str(data), store=str(store), model=args.model, limit=args.n,
                            batch_size=args.batch_size, workers=args.workers, chunk_rows=args.chunk_rows, prompt_filter="^one pale yellow",
                            progress=False, views=k, device="cpu"))
        from hcdg.store.features import read_meta

        dim = int(read_meta(store)["dim"])
        split_bytes = folder_bytes(store / "splits")
        rows.append({"k": k, "rows": s.rows, "image_seconds": round(s.image_seconds, 2),
                     "rows_per_s": round(s.rows / s.image_seconds, 1), "split_bytes": split_bytes,
                     "bytes_per_image": round(split_bytes / args.n)})
    # one view's CPU cost in this process
    from hcdg.pipeline.clip import TINY_MODEL, ClipEncoder
    from hcdg.store.clip_weights import resolve_weights

    enc = ClipEncoder(resolve_weights(TINY_MODEL, "none"))
    pp = enc.model.visual.preprocess_cfg
    vs = view_setup(EmbedConfig(dataset="freihand", root=str(data), store=str(tmp / "x"), views=1))
    ds = ViewRows(open_dataset("freihand", data), vs.crop, vs.geom, vs.color, 0, 1, (224, 224), pp["mean"], pp["std"])
    times = []
    for r in range(min(args.render_n, args.n)):
        t0 = time.process_time()
        ds[r]
        times.append(time.process_time() - t0)
    render_ms = 1000 * statistics.median(times)
    # the training loader's item (worker path, 256 crop): fresh draws vs a replayed stored view, interleaved
    from hcdg.pipeline.train_data import AugmentedSamples
    from hcdg.pipeline.views import draw_views

    reader = open_dataset("freihand", data)
    n_items = min(args.n, 32)
    stored = np.stack([draw_views(vs.geom, vs.color, 0, i, 8) for i in range(len(reader))])
    rows0 = np.arange(len(reader), dtype=np.int64) * 8
    fresh_ds = AugmentedSamples(reader, vs.crop, vs.geom, vs.color, 0, rows0)
    view_ds = AugmentedSamples(reader, vs.crop, vs.geom, vs.color, 0, rows0, views=stored)
    loader_ms: dict[str, list[float]] = {"fresh": [], "views": []}
    for rep in range(3):
        for name, ds_ in (("fresh", fresh_ds), ("views", view_ds)):
            t0 = time.process_time()
            for i in range(n_items):
                ds_[(rep, i)]
            loader_ms[name].append(round(1000 * (time.process_time() - t0) / n_items, 2))
    proj = []
    k0 = next((r for r in rows if r["k"] == 0), None)
    for r in rows:
        per_row = r["split_bytes"] / max(r["rows"], 1)
        per_row_512 = per_row + (args.project_dim - dim) * 2  # float16 feature bytes re-scaled (uncompressed)
        n_rows = args.project * max(r["k"], 1)
        render_s = (args.project * r["k"] * render_ms / 1000 / args.project_workers) if r["k"] else None
        proj.append({"k": r["k"], "rows": n_rows, "store_gb": round(n_rows * per_row_512 / 1e9, 2),
                     "render_cpu_s_over_workers": None if render_s is None else round(render_s, 1)})
    out = {"machine": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "model": args.model,
           "n": args.n, "dim": dim, "crop_side": vs.crop.input_size, "measured": rows,
           "render_cpu_ms_per_view_224": round(render_ms, 2), "projection": proj,
           "loader_cpu_ms_per_item_256": loader_ms,
           "k0_rows_per_s": None if k0 is None else k0["rows_per_s"], "argv": sys.argv[1:]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
