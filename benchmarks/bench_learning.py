"""Does `hcdg train` learn at the defaults users run? Held-out EPE and 2D error vs steps.

The paper's optimisation settings (Adam 1e-4, lambda 1 / 1 / 0.1, hcdg's default L_heat and
L_con readings) with only the size reduced: 64 px crops, width 0.25, batch 16, on
`hcdg synth` FreiHAND-format hands with uniformly random orientations (the synth default).
Each (variant, seed) is one `hcdg train` run validated every `--val-every` steps on held-out
poses (10 %, all 4 versions of a pose together). Reported per checkpoint step:

* ratio = held-out EPE / EPE of predicting the mean training pose (rr, GT bone scale);
* 2d_px = 2D error (crop px) of the last-stage heatmap argmax, and its ratio to the mean 2D
  layout placed in the crop (`2d_ratio`; < 0.5 = the heatmaps peak on the joints);
* for Branch2 runs, L_con's min/max over the run and the final mean |e1'|_2 (bounded?).

Usage (what docs/benchmarks.md "learning" ran):
    python -m benchmarks.bench_learning --out /tmp/hcdg-learn --seeds 0,1,2 --steps 3000 \
        --report 500,1000,1500,3000 --jobs 2
    python -m benchmarks.bench_learning --variant heat-mean=heat_reduction:mean ...   # a comparison
    python -m benchmarks.bench_learning --variant b-detached=mode:baseline,schedule:lifting-detached ...
        # a training schedule (docs/benchmarks.md "Training schedules"; add checkpoint_every:250 to a
        # variant to make a long run resumable after an interruption)

`--variant NAME=key:value[,key:value...]` adds a configuration on top of the defaults (values
parsed as JSON when they parse, else strings); without it, `baseline` and `ie+te` at the
defaults. Runs are resumable (re-running skips finished ones). Prints a Markdown table and
writes it, with every number, to OUT/learning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_VARIANTS = {"baseline": {"mode": "baseline"}, "ie+te": {"mode": "ie+te"}}
SMALL = {"input_size": 64, "width_mult": 0.25, "batch_size": 16}


def _parse_variant(text: str) -> tuple[str, dict]:
    name, _, body = text.partition("=")
    out: dict = {}
    for item in filter(None, body.split(",")):
        k, _, v = item.partition(":")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    out.setdefault("mode", "baseline" if name.startswith("baseline") else "ie+te")
    return name, out


def prepare_data(work: Path, n_poses: int, data_seed: int) -> tuple[Path, Path]:
    """Synthetic FreiHAND root (uniform views) and its hcdg-tiny feature store, built once."""
    from hcdg.stages import embed, synth

    root, store = work / "freihand", work / "store.zarr"
    if not (root / "hcdg_synth.json").is_file():
        synth.run(synth.SynthConfig(format="freihand", out=str(root), n=n_poses, n_other=4, seed=data_seed),
                  progress=False)
    if not (work / "store.done").is_file():
        embed.run(embed.EmbedConfig(dataset="freihand", root=str(root), store=str(store), model="hcdg-tiny",
                                    device="cpu", workers=0, progress=False))
        (work / "store.done").write_text("ok\n")
    return root, store


def run_one(args: dict) -> None:
    """One training run (in a subprocess: one thread, so parallel jobs do not fight)."""
    from hcdg.stages import train

    cfg = train.TrainConfig(**args)
    train.run(cfg)


def summarise(run_dir: Path, report_steps: list[int]) -> dict:
    import pandas as pd

    df = pd.read_parquet(run_dir / "metrics.parquet")
    val = df[df["kind"] == "val"].set_index("step")
    tr = df[df["kind"] == "train"]
    rows = {}
    for s in report_steps:
        if s in val.index:
            v = val.loc[s]
            rows[s] = {"epe_mm": float(v["val_epe_mm"]), "mean_pose_mm": float(v["val_mean_pose_epe_mm"]),
                       "ratio": float(v["val_epe_mm"] / v["val_mean_pose_epe_mm"]),
                       "2d_px": float(v["val_2d_px"]), "mean_2d_px": float(v["val_mean_2d_px"]),
                       "2d_ratio": float(v["val_2d_px"] / v["val_mean_2d_px"])}
    con = tr["loss_con"].dropna()
    out = {"steps": rows, "wall_s": float(df["wall_s"].max())}
    if tr["e1_norm"].notna().any():
        out.update(l_con_min=float(con.min()), l_con_max=float(con.max()),
                   e1_norm_first=float(tr["e1_norm"].dropna().iloc[0]),
                   e1_norm_last=float(tr["e1_norm"].dropna().iloc[-1]))
    return out


def _table(results: dict) -> str:
    """Markdown: one row per (run, reported step)."""
    lines = ["| variant | seed | step | EPE / mean-pose EPE | EPE mm | 2D px | 2D / mean layout | L_con range | |e1'| start -> end |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        con = (f"{r['l_con_min']:.3g} .. {r['l_con_max']:.3g}" if "l_con_min" in r else "-")
        norm = f"{r['e1_norm_first']:.3g} -> {r['e1_norm_last']:.3g}" if "e1_norm_last" in r else "-"
        for s, v in r["steps"].items():
            lines.append(f"| {r['variant']} | {r['seed']} | {s} | {v['ratio']:.3f} | {v['epe_mm']:.1f} | "
                         f"{v['2d_px']:.2f} | {v['2d_ratio']:.3f} | {con} | {norm} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--report", default="500,1000,1500")
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--poses", type=int, default=256, help="synthetic training poses (x4 images)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--table-only", action="store_true",
                    help="summarise every finished or running run under OUT/runs (no training)")
    ap.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._one:
        run_one(json.loads(a._one))
        return
    work = Path(a.out)
    report = [int(s) for s in a.report.split(",")]
    if a.table_only:
        print(_table({d.name: {"variant": d.name.rsplit("-s", 1)[0], "seed": int(d.name.rsplit("-s", 1)[1]),
                               **summarise(d, report)}
                      for d in sorted((work / "runs").iterdir()) if (d / "metrics.parquet").is_file()}))
        return
    work.mkdir(parents=True, exist_ok=True)
    root, store = prepare_data(work, a.poses, 0)
    variants = dict(_parse_variant(v) for v in a.variant) if a.variant else DEFAULT_VARIANTS
    seeds = [int(s) for s in a.seeds.split(",")]
    jobs: list[tuple[str, int, Path, dict]] = []
    for name, over in variants.items():
        for seed in seeds:
            run_dir = work / "runs" / f"{name}-s{seed}"
            cfg = {**SMALL, "root": str(root), "out": str(run_dir), "steps": a.steps, "seed": seed,
                   "val_every": a.val_every, "val_fraction": 0.1, "workers": 0, "progress": False,
                   "checkpoint_every": 100_000, **over}
            if cfg["mode"] != "baseline":
                cfg["store"] = str(store)
            jobs.append((name, seed, run_dir, cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    def finished(run_dir: Path) -> bool:  # done to the requested length (a longer --steps resumes it)
        done = run_dir / "done.json"
        return done.is_file() and json.loads(done.read_text()).get("total_steps", 0) >= a.steps

    pending = [j for j in jobs if not finished(j[2])]
    running: list[tuple[subprocess.Popen, tuple]] = []
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < a.jobs:
            j = pending.pop(0)
            if j[2].exists():
                j[3]["resume"] = True
            p = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_learning", "--out", a.out,
                                  "--_one", json.dumps(j[3])], env=env)
            running.append((p, j))
        time.sleep(2)
        for p, j in list(running):
            if p.poll() is not None:
                running.remove((p, j))
                status = "ok" if p.returncode == 0 else f"FAILED rc={p.returncode}"
                print(f"[{time.perf_counter() - t0:6.0f}s] {j[0]} seed {j[1]}: {status}", flush=True)
    results = {f"{n}-s{s}": {"variant": n, "seed": s, "config": c, **summarise(d, report)}
               for n, s, d, c in jobs if finished(d)}
    table = _table(results)
    print(table)
    meta = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "command": " ".join(sys.argv), "poses": a.poses, "small": SMALL}
    (work / "learning.json").write_text(json.dumps({"meta": meta, "results": results, "table": table}, indent=1))


if __name__ == "__main__":
    main()
