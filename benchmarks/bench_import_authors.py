"""Peak memory of `hcdg import authors` on a checkpoint of the real file's size.

Builds a checkpoint in the authors' format (their pose-network keys and shapes, random
values, from tests/authors_reference.py) plus an ignored tensor of proj_linear1's real
shape (10752 x 21504 floats, ~0.92 GB: most of their 1.4 GB file), then runs the import in
a child process and prints the child's peak RSS next to the file size. With mmap the
ignored bytes are never read, so the peak stays near the ~100 MB that is kept.

    python benchmarks/bench_import_authors.py --dir /tmp/bench-import
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/hcdg-bench-import")
    args = ap.parse_args()
    d = Path(args.dir)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    ckpt = d / "snapshot_45.pth.tar"
    gen = (
        "import sys, torch; sys.path.insert(0, '.'); from tests.authors_reference import make_authors_state;"
        "sd = make_authors_state(0); sd['module.pose_model.posenet.proj_linear1.weight'] = torch.zeros(10752, 21504);"
        f"torch.save({{'epoch': 45, 'network': sd}}, '{ckpt}')"
    )
    subprocess.run([sys.executable, "-c", gen], check=True)
    size = ckpt.stat().st_size
    run = (
        "import resource, time; import torch; from hcdg.stages import import_authors as s;"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t = time.perf_counter();"
        f"s.run(s.ImportConfig(checkpoint='{ckpt}', out='{d / 'run'}'));"
        "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", run], check=True, capture_output=True, text=True).stdout.split()
    base_kb, peak_kb, secs = int(out[0]), int(out[1]), float(out[2])
    print(f"checkpoint {size / 2**20:.0f} MiB; import process peak RSS {peak_kb / 1024:.0f} MiB "
          f"(of which {base_kb / 1024:.0f} MiB is python + torch before loading); {secs:.1f} s")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
