"""Synthetic-hand throughput: images per second at 224x224 on one core.

Measures, for FreiHAND-like 224x224 images (pipeline/synth):

* pose    - drawing hands and cameras (`plan_poses`), per image;
* render  - rasterising one hand (`render.render_hand`: capsules, palm, z-buffer, visibility);
* style   - background + compositing (`styles.background` + `styles.compose`);
* image   - render + style: one finished uint8 image in memory;
* written - the whole `hcdg synth --format freihand` writer into a temp folder
            (4 versions per pose, JPEG encoding, JSON, disk), per image written.

Threads are pinned to one (numpy/BLAS); torch is not imported. Reports wall-clock and
process CPU time; on a shared machine CPU time is the steadier number. Target >= 100 img/s.

Usage:
    python benchmarks/bench_synth.py [--n 200] [--poses 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hcdg.pipeline.synth import render as R  # noqa: E402
from hcdg.pipeline.synth import styles as S  # noqa: E402
from hcdg.pipeline.synth import writers as W  # noqa: E402


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Best (wall, cpu) seconds of `repeats` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images per in-memory measurement")
    ap.add_argument("--poses", type=int, default=64, help="poses written by the writer measurement (x4 images)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats; the best is reported")
    args = ap.parse_args()
    n = args.n
    plan = W.plan_poses(0, "freihand", "training", n)
    rng = np.random.default_rng(0)
    style_list = [S.SOURCE] + [S.draw_style(S.parse_style("mixed-target"), rng) for _ in range(n - 1)]
    layers: list = []

    def pose():
        W.plan_poses(1, "freihand", "training", n)

    def render():
        layers.clear()
        for i in range(n):
            layers.append(R.render_hand(plan.xyz[i], plan.K[i], 224, 224, size=float(plan.size[i])))

    def style():
        r = np.random.default_rng(1)
        for i in range(n):
            st = style_list[i]
            S.compose(layers[i], S.background(st, 224, 224, r), S.skin_rgb(st, r), st.lighting, r)

    def image():
        r = np.random.default_rng(2)
        for i in range(n):
            st = style_list[i]
            layer = R.render_hand(plan.xyz[i], plan.K[i], 224, 224, size=float(plan.size[i]),
                                  light=S.lighting_for(st, r))
            S.compose(layer, S.background(st, 224, 224, r), S.skin_rgb(st, r), st.lighting, r)

    def written():
        with tempfile.TemporaryDirectory() as tmp:
            W.write_freihand(Path(tmp) / "fh", args.poses, 1, seed=3)

    rows = []
    for name, fn, count in (("pose", pose, n), ("render", render, n), ("style", style, n),
                            ("image", image, n), ("written", written, 4 * args.poses + 1)):
        wall, cpu = _timed(fn, args.repeats)
        rows.append((name, count, wall, cpu))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}, "
          f"numpy {np.__version__}; threads pinned to 1; load average {load}")
    print("| step | images | wall ms/img | img/s (wall) | CPU ms/img | img/s (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, count, wall, cpu in rows:
        print(f"| {name} | {count} | {1000 * wall / count:.2f} | {count / wall:.0f} | "
              f"{1000 * cpu / count:.2f} | {count / cpu:.0f} |")


if __name__ == "__main__":
    main()
