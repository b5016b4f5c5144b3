"""Loading a split for training: `store.features.load_split` on FreiHAND's size, with and without checks.

Builds (once, in --dir) a Zarr feature store with one split of --rows x --dim float16
image features written chunk by chunk through `StoreWriter` (1024 rows per chunk, as
`hcdg embed` writes them), then times `load_split(store, key, "cpu")` -- what `hcdg train`
does at start-up: ids, features, validity flags, completeness, and (since issue 11)
every chunk's CRC32 checked against the one written with it. With --no-verify-too it
also times the loader with the checks switched off (`verify=False`), the cost of the
checks alone. Best and median of --repeats runs, and the best process CPU time (all threads) (the page cache is warm after the first).

Usage:
    python benchmarks/bench_store_load.py [--rows 130240] [--dim 512] [--repeats 5] [--dir /tmp/hcdg-bench-store]
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from hcdg.store import features as fs  # noqa: E402
from hcdg.store import fingerprint as fpr  # noqa: E402
from hcdg.store.feature_writer import StoreWriter  # noqa: E402

KEY = "freihand/training"


def build(path: Path, rows: int, dim: int) -> None:
    enc = {"model": "bench", "weights": {"kind": "random", "seed": 0}, "precision": "fp32"}
    w = StoreWriter(path, fpr.store_fingerprint(enc, "bench", 1, "float16"), dim)
    sfp = fpr.split_fingerprint([("x.jpg", 1)], dataset="freihand", split="training", options={}, limit=None)
    split = w.open_split(KEY, [f"{i:08d}" for i in range(rows)], fs.DEFAULT_CHUNK_ROWS, sfp, {"root": "bench"})
    rng = np.random.default_rng(0)
    for c in range(split.n_chunks):
        r = split.rows(c)
        split.write_chunk(c, rng.normal(size=(len(r), dim)).astype(np.float32), [""] * len(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=130_240, help="rows of the split (FreiHAND training: 130,240)")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension (ViT-B/32: 512)")
    ap.add_argument("--repeats", type=int, default=5, help="timed loads per variant (best is reported)")
    ap.add_argument("--dir", default="/tmp/hcdg-bench-store", help="where the store is built")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the store even when present")
    ap.add_argument("--no-verify-too", action="store_true", help="also time load_split(verify=False)")
    args = ap.parse_args()
    path = Path(args.dir) / f"store-{args.rows}x{args.dim}.zarr"
    if args.rebuild or not path.exists():
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        build(path, args.rows, args.dim)
        print(f"# built {path} in {time.perf_counter() - t:.1f} s")
    variants = {"load_split": {}}
    if args.no_verify_too and "verify" in inspect.signature(fs.load_split).parameters:
        variants["load_split(verify=False)"] = {"verify": False}
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, numpy {np.__version__}; "
          f"{args.rows} x {args.dim} float16, best of {args.repeats}")
    print("\n| variant | best wall s | median wall s | best process CPU s |\n|---|---:|---:|---:|")
    for name, kw in variants.items():
        fs.load_split(path, KEY, "cpu", **kw)  # warm the page cache
        times, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            ids, feats = fs.load_split(path, KEY, "cpu", **kw)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            assert len(ids) == args.rows and feats.shape == (args.rows, args.dim)
        print(f"| {name} | {min(times):.3f} | {float(np.median(times)):.3f} | {min(cpu):.3f} |")


if __name__ == "__main__":
    main()
