"""The report's verdict in words: what was trained, whether each method beat the baseline on
each target under each protocol (with its interval), where protocols disagree, and which
protocols rest on heatmaps that did not learn.

Pure: plain records and the paired table (`store.paired.PAIRED_COLUMNS`) in, sentences and
small records out. `stages.report` gathers the inputs; `stages.report_render` shows them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Protocols whose 2D joints come from the network's heatmaps, per target ("*" = every target):
#: 2.5d-gtroot-gtbone decodes them (docs/results.md); the authors' STB script takes the
#: argmax of the upsampled last-stage heatmap (their STB.py; docs/sources.md#authors-test-code).
HEATMAP_2D_PROTOCOLS: Mapping[str, tuple[str, ...]] = {"2.5d-gtroot-gtbone": ("*",), "authors": ("stb",)}

BETTER, WORSE, UNCLEAR = "better", "worse", "no clear difference"


@dataclass(frozen=True)
class RunFacts:
    """What the verdict needs of one training run (None = not recorded)."""

    name: str
    group: str  # config without its seed (store.paired.group_key)
    mode: str | None = None
    ratio: float | None = None
    width_mult: float | None = None
    input_size: int | None = None
    crop_scale: float | None = None
    batch_size: int | None = None
    n_train: int | None = None  # training images (done.json)
    steps: int | None = None
    clip: str | None = None  # CLIP model and weights the features came from
    random_weights: bool = False
    val_2d_px: float | None = None  # final validation 2D error of the heatmaps (px, crop)
    val_mean_2d_px: float | None = None  # the same for the mean training layout
    eval_files: tuple[str, ...] = ()  # results files compared
    set_aside: tuple[str, ...] = ()  # checkpoint / --limit evaluations not compared

    @property
    def heatmaps_learned(self) -> bool | None:
        """True when the heatmaps' validation 2D error beat the mean layout's; None when unknown."""
        if self.val_2d_px is None or self.val_mean_2d_px is None or self.val_mean_2d_px <= 0:
            return None  # 0 px: a one-crop validation set is its own mean layout; no reference
        return self.val_2d_px < self.val_mean_2d_px


@dataclass(frozen=True)
class Finding:
    """One method against the baseline on one target under one protocol (root as the tables)."""

    method: str  # "ie+te (ratio 0.6)"
    runs: str
    target: str
    protocol: str
    root: str
    diff_mm: float  # method minus baseline; negative = lower error
    low_mm: float
    high_mm: float
    interval: str  # "samples" or "seeds (n=3)"
    n_samples: int
    direction: str  # BETTER / WORSE / UNCLEAR
    unreliable: str | None = None  # why this protocol's number cannot be trusted here

    def text(self) -> str:
        d = 2 if max(abs(self.diff_mm), abs(self.low_mm), abs(self.high_mm)) >= 0.05 else 4  # no "+0.00 worse"
        ci = f"{self.diff_mm:+.{d}f} mm [{self.low_mm:+.{d}f}, {self.high_mm:+.{d}f}] over {self.interval}"
        return f"{self.direction} under {self.protocol} ({ci})" + (" — unreliable" if self.unreliable else "")


@dataclass
class Verdict:
    setup: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)  # (BETTER / WORSE / "mixed" / UNCLEAR, sentence)
    disagreements: list[str] = field(default_factory=list)
    unreliable: dict[str, str] = field(default_factory=dict)  # run name -> why its heatmap 2D is unreliable
    used: list[str] = field(default_factory=list)  # which results were compared / set aside


def direction(low_mm: float, high_mm: float) -> str:
    """BETTER when the whole interval of (method - baseline) is below 0, WORSE when above."""
    if not (math.isfinite(low_mm) and math.isfinite(high_mm)):
        return UNCLEAR
    return BETTER if high_mm < 0 else WORSE if low_mm > 0 else UNCLEAR


def method_name(run: RunFacts) -> str:
    """'ie+te (ratio 0.6)', 'baseline', ..."""
    mode = run.mode or "?"
    return f"{mode} (ratio {run.ratio:g})" if mode == "ie+te" and run.ratio is not None else mode


def _num(v: Any, fmt: str) -> str:
    return "?" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def setup_lines(runs: Sequence[RunFacts]) -> list[str]:
    """One line per training setup: method, network width, crop, batch, images, steps, CLIP."""
    lines: dict[str, list[str]] = {}
    for r in runs:
        crop = f"{_num(r.input_size, 'd')} px crops" + (f" (box scale {r.crop_scale:g})" if r.crop_scale else "")
        text = (f"{method_name(r)}: width x{_num(r.width_mult, 'g')}, {crop}, batch {_num(r.batch_size, 'd')}, "
                f"{_num(r.n_train, 'd')} training images, {_num(r.steps, 'd')} steps, CLIP {r.clip or 'none'}"
                + (" (RANDOM weights: the features carry no meaning)" if r.random_weights and r.clip else ""))  # fmt: skip
        lines.setdefault(text, []).append(r.name)
    return [f"{text} — run(s) {', '.join(names)}" for text, names in lines.items()]


def unreliable_runs(runs: Sequence[RunFacts]) -> dict[str, str]:
    """run name -> why protocols taking 2D from its heatmaps are unreliable (the heatmaps'
    validation 2D error did not beat predicting the mean training layout)."""
    out = {}
    for r in runs:
        if r.heatmaps_learned is False:
            out[r.name] = (f"its heatmaps did not beat the mean layout (validation 2D {r.val_2d_px:.2f} px vs "
                           f"{r.val_mean_2d_px:.2f} px for the mean layout)")  # fmt: skip
    return out


def heatmap_protocol(protocol: str, target: str) -> bool:
    """True when `protocol` takes its 2D joints from the heatmaps on `target`."""
    targets = HEATMAP_2D_PROTOCOLS.get(protocol, ())
    return "*" in targets or target in targets


def findings(paired: pd.DataFrame, runs: Sequence[RunFacts], root: str = "wrist",
             protocols: Iterable[str] | None = None) -> list[Finding]:
    """Every (method, target, protocol) of the paired table at `root` (wrist where a target has
    no `root` rows), using the interval over seeds when >= 2 seeds pair up, else over samples."""
    if paired is None or paired.empty:
        return []
    by_name = {r.name: r for r in runs}
    unrel = unreliable_runs(runs)
    order = list(protocols) if protocols is not None else list(pd.unique(paired["protocol"]))
    out = []
    for (group, target, protocol), rows in paired.groupby(["group", "target", "protocol"], sort=False):
        if protocol not in order:
            continue
        pick = rows[rows["root"] == root]
        if pick.empty:
            pick = rows[rows["root"] == "wrist"]
        if pick.empty:
            continue
        row = pick.iloc[0]
        names = [n.strip() for n in str(row["runs"]).split(",") if n.strip()]
        members = [by_name[n] for n in names if n in by_name]
        base_names = [n.strip() for n in str(row["baseline_runs"]).split(",") if n.strip()]
        seeds = int(row.get("n_seeds_paired") or 0)
        if seeds >= 2 and math.isfinite(float(row["seed_ci_low_mm"])):
            lo, hi, how, diff = float(row["seed_ci_low_mm"]), float(row["seed_ci_high_mm"]), f"seeds (n={seeds})", float(row["seed_diff_mm"])
        else:
            lo, hi, how, diff = float(row["ci_low_mm"]), float(row["ci_high_mm"]), "samples", float(row["diff_mm"])
        why = None
        if heatmap_protocol(protocol, target):
            bad = [n for n in [*names, *base_names] if n in unrel]
            if bad:
                why = "; ".join(f"{n}: {unrel[n]}" for n in bad)
        out.append(Finding(
            method=method_name(members[0]) if members else str(row["runs"]), runs=str(row["runs"]),
            target=str(target), protocol=str(protocol), root=str(row["root"]), diff_mm=diff, low_mm=lo,
            high_mm=hi, interval=how, n_samples=int(row["n_samples"]), direction=direction(lo, hi), unreliable=why,
        ))  # fmt: skip
    order_idx = {p: i for i, p in enumerate(order)}
    return sorted(out, key=lambda f: (f.method, f.target, order_idx.get(f.protocol, 99)))


def _target_name(t: str) -> str:
    return {"stb": "STB", "rhd": "RHD", "freihand": "FreiHAND"}.get(t, t)


def summary_lines(found: Sequence[Finding]) -> tuple[list[tuple[str, str]], list[str]]:
    """((overall direction, sentence) per method x target, a sentence per method x target
    whose protocols disagree). Protocols flagged unreliable do not decide the direction."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in found:
        groups.setdefault((f.method, f.target), []).append(f)
    sentences, disagree = [], []
    for (method, target), fs in groups.items():
        trusted = [f for f in fs if not f.unreliable]
        clear = {f.direction for f in trusted} - {UNCLEAR}
        if clear == {BETTER}:
            overall, head = BETTER, "beat the baseline"
        elif clear == {WORSE}:
            overall, head = WORSE, "was worse than the baseline"
        elif clear:
            overall, head = "mixed", "beat the baseline under some protocols and was worse under others"
        else:
            overall, head = UNCLEAR, "did not differ clearly from the baseline"
        text = f"{method} on {_target_name(target)}: {head}: " + "; ".join(f.text() for f in fs) + "."
        sentences.append((overall, text))
        if len(clear) > 1:
            pro = ", ".join(f.protocol for f in trusted if f.direction == BETTER)
            con = ", ".join(f.protocol for f in trusted if f.direction == WORSE)
            disagree.append(f"{method} on {_target_name(target)}: better under {pro}, worse under {con}.")
    return sentences, disagree


def verdict(paired: pd.DataFrame, runs: Sequence[RunFacts], root: str = "wrist",
            protocols: Iterable[str] | None = None) -> Verdict:
    """The whole verdict block (see the module docstring)."""
    v = Verdict(setup=setup_lines(runs), unreliable=unreliable_runs(runs))
    v.findings = findings(paired, runs, root, protocols)
    v.summary, v.disagreements = summary_lines(v.findings)
    used = sorted({f for r in runs for f in r.eval_files})
    aside = [f"{r.name}/eval/{f}" for r in runs for f in r.set_aside]
    v.used.append("Compared: each run's finished model on every sample of each evaluated split ("
                  + (", ".join(used) or "no results") + "); rows of different checkpoints or sample limits are never paired.")
    if aside:
        v.used.append("Set aside (other checkpoints, --limit or decoders; not compared): " + ", ".join(aside) + ".")
    return v
