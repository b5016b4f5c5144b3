"""Markdown tables of a domain-generalisation run (benchmarks/bench_dg.py) from its report's tables.

    python -m benchmarks.dg_tables OUT/report      # OUT = bench_dg's --out
    python -m benchmarks.dg_tables OUT/report --pair views8 main "mode=ie+te,ratio=0.6"
        # one row against another directly (here K = 8 views vs whole-image features), paired per seed

Source hold-out (each run's final validation) per row, then each row's target EPE under
`rr-gtscale` and `pa` (wrist root, all joints) with the paired difference to the baseline: the
bootstrap interval over test samples and the Student-t interval over seeds. Rows are named by
their sweep folder (main, control, views8, ...) and point, seeds pooled.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd


def row_label(folder: str) -> str:
    sweep, point = Path(folder).parent.name, Path(folder).name
    return f"{re.sub(r'-s[0-9]+$', '', sweep)}: {re.sub(r',?seed=[0-9]+', '', point)}"


def tables(report: Path) -> str:
    runs = pd.read_csv(report / "tables" / "runs.csv")
    runs["row"] = runs["folder"].map(row_label)
    label = runs.groupby("group")["row"].first().to_dict()
    out = ["| row | runs | hold-out EPE mm, mean ± std | / mean pose | val 2D / mean layout |", "|---|---|---|---|---|"]
    for row, g in runs.groupby("row", sort=False):
        ratio = (g["val_epe_mm"] / g["val_mean_pose_epe_mm"]).mean()
        r2d = (g["val_2d_px"] / g["val_mean_2d_px"]).mean()
        out.append(f"| {row} | {len(g)} | {g['val_epe_mm'].mean():.2f} ± {g['val_epe_mm'].std():.2f} | "
                   f"{ratio:.3f}x | {r2d:.3f}x |")
    paired = pd.read_csv(report / "tables" / "paired.csv")
    paired = paired[(paired["root"] == "wrist")]
    out += ["", "| row | target | rr-gtscale mm | Δ rr-gtscale [samples] {seeds} | pa mm | Δ pa [samples] {seeds} |",
            "|---|---|---|---|---|---|"]
    base = {}
    for (grp, target), g in paired.groupby(["group", "target"]):
        cells = {}
        for proto in ("rr-gtscale", "pa"):
            p = g[g["protocol"] == proto]
            if p.empty:
                cells[proto] = ("", "")
                continue
            r = p.iloc[0]
            base[(target, proto)] = r["baseline_epe_mm"]
            star = lambda lo, hi: "*" if lo > 0 or hi < 0 else ""  # noqa: E731
            cells[proto] = (f"{r['epe_mm']:.2f}",
                            f"{r['diff_mm']:+.2f} [{r['ci_low_mm']:+.2f}, {r['ci_high_mm']:+.2f}]"
                            f"{star(r['ci_low_mm'], r['ci_high_mm'])} {{{r['seed_ci_low_mm']:+.2f}, "
                            f"{r['seed_ci_high_mm']:+.2f}}}{star(r['seed_ci_low_mm'], r['seed_ci_high_mm'])} "
                            f"(n={int(r['n_seeds_paired'])})")
        out.append(f"| {label.get(grp, grp)} | {target} | {cells['rr-gtscale'][0]} | {cells['rr-gtscale'][1]} | "
                   f"{cells['pa'][0]} | {cells['pa'][1]} |")
    for target in sorted({t for t, _ in base}):
        out.append(f"| baseline | {target} | {base.get((target, 'rr-gtscale'), float('nan')):.2f} | | "
                   f"{base.get((target, 'pa'), float('nan')):.2f} | |")
    return "\n".join(out)


def pair(sweeps: Path, row: str, against: str, point: str) -> str:
    """Row `row` vs row `against` at run point `point` (folder name without the seed), paired per
    sample and seed like the report's baseline comparisons."""
    from hcdg.store.paired import paired_table

    def runs(name: str) -> list[Path]:
        return sorted(d for d in sweeps.glob(f"{name}-s*/*") if re.sub(r",?seed=[0-9]+", "", d.name) == point
                      and (d / "done.json").is_file())

    seed = lambda d: d.parent.name.rsplit("-s", 1)[1]  # noqa: E731
    mine, base = runs(row), runs(against)
    both = {seed(d) for d in mine} & {seed(d) for d in base}  # only seeds both rows have
    mine, base = [d for d in mine if seed(d) in both], [d for d in base if seed(d) in both]
    table = paired_table([*mine, *base], baseline=base[0])
    table = table[table["root"] == "wrist"]
    out = [f"| {row} vs {against} ({point}) | target | protocol | {row} mm | {against} mm | Δ [samples] {{seeds}} |",
           "|---|---|---|---|---|---|"]
    for _, r in table[table["protocol"].isin(["rr-gtscale", "pa", "2.5d-gtroot-gtbone"])].iterrows():
        out.append(f"| | {r['target']} | {r['protocol']} | {r['epe_mm']:.2f} | {r['baseline_epe_mm']:.2f} | "
                   f"{r['diff_mm']:+.2f} [{r['ci_low_mm']:+.2f}, {r['ci_high_mm']:+.2f}] "
                   f"{{{r['seed_ci_low_mm']:+.2f}, {r['seed_ci_high_mm']:+.2f}}} (n={int(r['n_seeds_paired'])}) |")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "--pair":
        print(pair(Path(sys.argv[1]).parent / "sweeps", *sys.argv[3:6]))
    else:
        print(tables(Path(sys.argv[1])))
