"""Domain generalisation, offline: does mixing the synthetic CLIP's features help on unseen styles?

Train on source-style synthetic FreiHAND-format hands only; test on STB- and RHD-format
hands drawn in Table 2's shifted styles. Every step is an ordinary hcdg command:

    hcdg synth      source (FreiHAND format, seed 0) and targets (RHD seed 1, STB seed 2)
    hcdg clip train the synthetic CLIP at its defaults (corpus seeds far from 0..2)
    hcdg embed      source + targets + prompts with --clip (store.zarr), with the same
                    architecture at random weights (store-random.zarr: the control), and the
                    source again with K augmented views per image (store-views.zarr, --views K)
    hcdg sweep      the rows of Tables 4-6 (below), 3 seeds, against store.zarr; the IE+TE
                    rows again against store-random.zarr (the control) and store-views.zarr
                    (one sweep folder per row and seed: `--jobs N` runs N of them at once)
    hcdg eval       every run on both targets
    hcdg report     over both sweeps (Tables 4-6 with paired bootstrap CIs vs the baseline)

Rows (`--rows`):
  core   baseline, IE, TE, IE+TE r = 0.6 (+ the random-weight IE+TE r = 0.6 control, and IE+TE
         r = 0.6 on K = --views augmented views per image: docs/store.md "Views")
  full   + IE+TE r = 0.9 / 0.8 / 0.4, combine concat vs sum, lambda3 in {1, 0.1, 0.01},
         normal augmentation (Table 6), and the control at every r

Then per style group of the targets (hand colour dark/light; colour word: scene, plain
colour, bright/dark) the mean EPE of every row, from the per-sample results and the
targets' recorded styles. Resumable: re-running skips whatever is finished. Writes
OUT/dg.json and prints Markdown (docs/benchmarks.md "Domain generalisation").

    nice -n 10 python -m benchmarks.bench_dg --out /tmp/hcdg-dg --rows core --seeds 0,1,2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: The pose network's size and length (docs/benchmarks.md "Learning": the baseline reaches
#: ~0.74x the mean-pose EPE at 1,500 steps at this size).
SIZE = {"input-size": "64", "width-mult": "0.25", "batch-size": "16"}
DATA = {"freihand": 256, "rhd": 128, "stb": 64}
SMOKE_DATA = {"freihand": 12, "rhd": 8, "stb": 4}
SCENES = {"mountain", "lake", "sky blue", "dotted", "flower"}
LIGHT = {"bright", "dark"}
DARK_HANDS = {"dark brown", "brown", "black"}


def hcdg(*args: str, log: Path) -> None:
    """Run one hcdg command (appending its output to `log`); stop on failure."""
    cmd = [sys.executable, "-m", "hcdg", *args]
    with open(log, "a") as fh:
        fh.write(f"$ hcdg {' '.join(args)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        sys.exit(f"hcdg {' '.join(args)} failed (exit {rc}); see {log}")


def sweeps(rows: str, seeds: str, views: int, extra: list[str] = ()) -> list[tuple[str, str, list[str]]]:
    """(sweep folder name, store name, axis flags) of the requested rows, one folder per seed.

    `extra`: a researcher's own rows, "NAME=FLAGS" (any `hcdg sweep` flags, against store.zarr),
    e.g. "r05-l03=--mode ie+te --ratio 0.5 --lambda-con 0.3"; they run beside the chosen rows
    and join the report's paired comparisons with the same baseline runs."""
    core = [("main", "store.zarr", ["--mode", "baseline,ie,te,ie+te", "--ratio", "0.6"]),
            ("control", "store-random.zarr", ["--mode", "ie+te", "--ratio", "0.6"])]
    if views:
        core.append((f"views{views}", "store-views.zarr", ["--mode", "ie+te", "--ratio", "0.6"]))
    full = [
        ("ratios", "store.zarr", ["--mode", "ie+te", "--ratio", "0.9,0.8,0.4"]),
        ("control-ratios", "store-random.zarr", ["--mode", "ie+te", "--ratio", "0.9,0.8,0.4"]),
        ("combine", "store.zarr", ["--mode", "ie+te", "--ratio", "0.6", "--combine", "sum"]),
        ("lambda", "store.zarr", ["--mode", "ie+te", "--ratio", "0.6", "--lambda-con", "1,0.01"]),
        ("normal-aug", "store.zarr", ["--mode", "ie", "--aug", "normal"]),
    ]
    chosen = (core if rows == "core" else core + full) + [parse_row(r) for r in extra]
    return [(f"{name}-s{seed}", store, [*axes, "--seed", seed])
            for seed in seeds.split(",") for name, store, axes in chosen]


def parse_row(text: str) -> tuple[str, str, list[str]]:
    """"NAME=FLAGS" -> (NAME, "store.zarr", FLAGS split like a shell would)."""
    import shlex

    name, sep, flags = text.partition("=")
    if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
        sys.exit(f"--row {text!r}: expected NAME=FLAGS with NAME of letters, digits, - and _")
    if "--seed" in shlex.split(flags) or "--store" in shlex.split(flags):
        sys.exit(f"--row {text!r}: --seed and --store are set by bench_dg (--seeds; store.zarr)")
    return name, "store.zarr", shlex.split(flags)


def style_groups(style: dict) -> list[str]:
    """The style groups a target image belongs to."""
    c = style.get("colour")
    word = "scene" if c in SCENES else "bright/dark" if c in LIGHT else "plain colour"
    hand = "dark hand" if style.get("hand_colour") in DARK_HANDS else "light hand"
    return ["all", word, hand]


def group_table(out: Path, data: Path) -> dict:
    """{run: {target: {group: mean EPE mm}}} (protocol rr-gtscale, all joints) from per-sample results."""
    import pandas as pd

    from hcdg.pipeline.datasets import open_dataset
    from hcdg.store import results as rs
    from hcdg.store.clip_model import read_style_records

    styles = {}
    for target, ds in (("stb", "stb"), ("rhd", "rhd")):
        root = data / ds
        _, rec = read_style_records(root, "--root")
        reader = open_dataset(ds, root)
        styles[target] = {reader.sample_id(i): rec[Path(reader.image_path(i)).resolve().relative_to(root.resolve())
                                                    .as_posix()] for i in range(len(reader))}
    table: dict = {}
    for run in sorted(p.parent for p in out.glob("sweeps/*/*/run.json")):
        for target in ("stb", "rhd"):
            path = rs.results_path(run, target)
            if not path.is_file():
                continue
            frame = rs.read_results(path)
            frame = frame[(frame["protocol"] == "rr-gtscale") & (frame["root"] == "wrist")]
            rows = [(g, e) for sid, e in zip(frame["sample_id"], frame["epe_mm"])
                    for g in style_groups(styles[target].get(sid, {}))]
            means = pd.DataFrame(rows, columns=["group", "epe"]).groupby("group")["epe"].mean()
            table.setdefault(f"{run.parent.name}/{run.name}", {})[target] = {k: round(float(v), 2)
                                                                               for k, v in means.items()}
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", choices=["core", "full"], default="core")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--only", default=None,
                    help="Comma list of row names to run now (main, control, viewsK, ratios, ...; default all).")
    ap.add_argument("--row", action="append", default=[], metavar="NAME=FLAGS",
                    help='A row of your own: NAME="hcdg sweep flags" against store.zarr (repeatable), '
                         'e.g. --row "r05=--mode ie+te --ratio 0.5"; run only it with --only NAME.')
    ap.add_argument("--jobs", type=int, default=1, help="Sweeps run at once (one torch thread each).")
    ap.add_argument("--views", type=int, default=8,
                    help="K of the views row (0: no views row); the views are drawn at SIZE's crop.")
    ap.add_argument("--smoke", action="store_true",
                    help="A minutes-long check that every step runs (tiny data, CLIP and training; numbers mean nothing).")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    t0, c0 = time.time(), os.times()
    data = out / "data"
    sizes = SMOKE_DATA if args.smoke else DATA
    steps = "8" if args.smoke else str(args.steps)
    clip_recipe = ["--n-images", "64", "--heldout", "32", "--steps", "3", "--batch-size", "32"] if args.smoke else []
    for seed, (fmt, n) in enumerate(sizes.items()):
        extra = ["--n-other", "16"] if fmt != "stb" else []
        hcdg("synth", "--format", fmt, "--out", str(data / fmt), "--n", str(n), "--seed", str(seed), *extra,
             "--no-progress", log=log)
    clip = out / "clip"
    hcdg("clip", "train", "--out", str(clip), *[a for fmt in DATA for a in ("--exclude", str(data / fmt))],
         *clip_recipe, "--no-progress", log=log)
    for store, enc in (("store.zarr", ["--clip", str(clip)]),
                       ("store-random.zarr", ["--model", "hcdg-synth", "--pretrained", "none"])):
        for fmt in DATA:
            hcdg("embed", "--dataset", fmt, "--root", str(data / fmt), "--store", str(out / store), *enc,
                 "--device", "cpu", "--workers", "0", "--no-progress", log=log)
    if args.views:  # the source only: the views row trains on it (targets are never embedded for eval)
        view_cfg = out / "views-config.toml"
        if not view_cfg.is_file():
            text = subprocess.run([sys.executable, "-m", "hcdg", "train", "--print-config",
                                   *[a for kv in SIZE.items() for a in (f"--{kv[0]}", kv[1])]],
                                  check=True, capture_output=True, text=True).stdout
            view_cfg.write_text(text)
        hcdg("embed", "--dataset", "freihand", "--root", str(data / "freihand"), "--store",
             str(out / "store-views.zarr"), "--clip", str(clip), "--views", str(args.views),
             "--view-config", str(view_cfg), "--device", "cpu", "--workers", "0", "--no-progress", log=log)
    only = set(args.only.split(",")) if args.only else None

    def one_sweep(name: str, store: str, axes: list[str]) -> None:
        sweep = out / "sweeps" / name
        slog = out / "logs" / f"{name}.txt"  # one log per sweep: parallel sweeps do not interleave
        slog.parent.mkdir(exist_ok=True)
        hcdg("sweep", "--out", str(sweep), "--store", str(out / store), "--dataset", "freihand",
             "--root", str(data / "freihand"), "--steps", steps, "--val-fraction", "0.1",
             "--workers", "0", "--device", "cpu", "--no-progress", "--shared-batches",
             *[a for kv in SIZE.items() for a in (f"--{kv[0]}", kv[1])], *axes, log=slog)
        for run in sorted(p.parent for p in sweep.glob("*/done.json")):
            for target in ("stb", "rhd"):
                from hcdg.store.results import summary_path

                if not summary_path(run, target).is_file():
                    hcdg("eval", "--run", str(run), "--target", target, "--root", str(data / target),
                         "--device", "cpu", "--no-progress", log=slog)

    todo = [s for s in sweeps(args.rows, args.seeds, args.views, args.row)
            if only is None or s[0].rsplit("-s", 1)[0] in only]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # N sweeps on N cores, not N x all cores
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for fut in [pool.submit(one_sweep, *s) for s in todo]:
            fut.result()
    hcdg("report", *[str(p) for p in sorted((out / "sweeps").glob("*"))], "--out", str(out / "report"),
         "--title", "Domain generalisation offline: synthetic FreiHAND -> shifted synthetic STB / RHD", log=log)
    groups = group_table(out, data)
    card = json.loads((clip / "hcdg_clip_card.json").read_text())
    c1 = os.times()
    result = {"groups": groups, "clip_zero_shot": card["zero_shot"], "steps": int(steps), "smoke": args.smoke, "rows": args.rows,
              "seeds": args.seeds, "wall_s_this_call": round(time.time() - t0, 1),
              "cpu_s_children_this_call": round(c1.children_user + c1.children_system
                                                - c0.children_user - c0.children_system, 1)}
    (out / "dg.json").write_text(json.dumps(result, indent=1))
    print(f"report: {out / 'report' / 'report.md'}")
    print(group_markdown(groups))


def group_markdown(groups: dict) -> str:
    """Per-style-group target EPE (mm, rr-gtscale, wrist root) per row, mean over its seeds (n)."""
    import re
    from collections import defaultdict

    cols = ("all", "scene", "plain colour", "bright/dark", "dark hand", "light hand")
    rows: dict = defaultdict(list)
    for run, per in groups.items():
        sweep, point = run.split("/", 1)
        row = f"{re.sub(r'-s[0-9]+$', '', sweep)}: {re.sub(r',?seed=[0-9]+', '', point)}"
        for target, g in per.items():
            rows[(row, target)].append(g)
    lines = ["| row | target | seeds | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for (row, target), gs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = " | ".join(f"{sum(g[c] for g in gs) / len(gs):.2f}" if all(c in g for g in gs) else ""
                           for c in cols)
        lines.append(f"| {row} | {target} | {len(gs)} | {cells} |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
