"""`hcdg demo`: the whole pipeline, offline, on the embedded default (README's first command).

    synth   FreiHAND-format source (green screen + source backgrounds, one skin tone),
            RHD- and STB-format targets (styles drawn from the Table 2 vocabulary)
    clip    the synthetic CLIP (`hcdg clip train` into `clip/`, reused on re-runs; `--clip random`:
            the random-weight `hcdg-tiny` instead; `--model ViT-B-32 --pretrained openai`: a real one)
    embed   all three splits + the prompts with that CLIP (and, for the Figure 3-4 numbers,
            again with the same architecture at random weights: the control)
    train   `baseline` (no Branch2) and `ie+te` (r = 0.6, paper §3.3), briefly, with a
            narrow small-input copy of the paper's network
    eval    both runs on both targets, every protocol (`hcdg eval`)
    report  `hcdg report` over the two runs, plus Figures 3-4 from the store (`hcdg viz`)

Layout of `--out`::

    demo.json                 the demo's config and, per step, when it finished and its seconds
    data/{freihand,rhd,stb}/  synthetic datasets in the real on-disk formats
    store.zarr                CLIP features (image splits + prompts)
    runs/{baseline,ie+te}/    training runs, each with eval/<target>.parquet
    report/report.html        the report (and report.md, tables/, figures/)
    figures/fig3-tsne.png, figures/fig4-retrieve.png
    clip/                     the synthetic CLIP (open_clip local-dir + card), store-random.zarr (control)
    figures/fig34.json        Figures 3-4 as numbers (also a section of the report)

Every step calls the other stages' `run(...)` directly. Re-running the same command skips
what is finished (each stage is itself resumable/idempotent); a folder holding a demo of
another configuration is refused.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hcdg.pipeline.config import ConfigError, check_int_range, to_dict
from hcdg.pipeline.errors import HcdgError

DEMO_FILE = "demo.json"
TARGETS = ("stb", "rhd")
#: The two runs of the demo: the paper's Baseline row and its method at r = 0.6 (§3.3, Table 4a).
RUNS = (("baseline", "baseline"), ("ie+te", "ie+te"))


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is. Sizes are small on purpose: this shows the pipeline, it does not
    reproduce the paper's numbers (docs/reproducing.md does that on the real data)."""

    freihand_poses: int  # synthetic FreiHAND training poses (x4 images: 4 versions, as the real set)
    freihand_eval: int  # FreiHAND evaluation poses (unused by the demo, the format needs >= 1)
    rhd_eval: int  # RHD evaluation images (the target split)
    stb_frames: int  # STB frames per sequence (B1Counting + B1Random)
    input_size: int  # crop side (paper: 256); heatmaps at 1/8
    width_mult: float  # channel multiplier (paper: 1.0)
    steps: int  # training steps per run
    batch_size: int
    prompt_filter: str | None  # None = all 3,920 Table 2 prompts
    tsne_n: int  # points per group in Figure 3
    #: synthetic CLIP recipe overrides (n_images, heldout, steps, batch_size); empty = `hcdg clip train`'s defaults
    clip_recipe: tuple[tuple[str, int], ...] = ()


SIZES: dict[str, DemoSize] = {
    # Every training setting is `hcdg train`'s default (paper §3.4: Adam 1e-4, lambda 1/1/0.1;
    # hcdg's L_heat/L_con readings, docs/model.md); only the size and the length are reduced.
    # Minutes on 2 CPU cores (docs/demo.md has measured times); the two runs train concurrently.
    "small": DemoSize(freihand_poses=128, freihand_eval=8, rhd_eval=64, stb_frames=32, input_size=64,
                      width_mult=0.25, steps=1000, batch_size=16, prompt_filter=None, tsne_n=200),
    # a smoke test of every step (tests/test_demo.py); nothing is learnt at this size
    "tiny": DemoSize(freihand_poses=12, freihand_eval=1, rhd_eval=6, stb_frames=3, input_size=32,
                     width_mult=0.125, steps=6, batch_size=8,
                     prompt_filter=r"^a photo of (black|white) hand with (dotted|lake) ", tsne_n=12,
                     clip_recipe=(("n_images", 64), ("heldout", 32), ("steps", 3), ("batch_size", 32))),
}


@dataclass(frozen=True)
class DemoConfig:
    """`hcdg demo`.

    Attributes:
        out: the demo folder (created; re-running resumes it).
        clip: "synthetic" (default: train hcdg's synthetic CLIP into `<out>/clip`, cached),
            "random" (hcdg-tiny with random weights: features without meaning), or the folder
            of an already trained synthetic CLIP (docs/synthetic_clip.md).
        model, pretrained: an open_clip encoder instead (e.g. ViT-B-32 + openai, the paper's
            §3.2, where the weights can be had); None = `clip` decides.
        size: "small" (default) or "tiny" (a smoke test).
        ratio: r of the ie+te run; 0.6 = the paper's STB choice (§3.3).
        device: "auto" (cuda when available), "cpu", "cuda", ...
        seed: seed of the synthetic data, of the random CLIP weights and of training.
        progress: progress bars of the steps.
    """

    out: str = ""
    clip: str = "synthetic"
    model: str | None = None
    pretrained: str | None = None
    size: Literal["small", "tiny"] = "small"
    ratio: float = 0.6
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"--size: expected one of {', '.join(SIZES)}, got {self.size!r}")
        if not 0.0 <= self.ratio <= 1.0:
            raise ConfigError(f"--ratio: expected a value in [0, 1], got {self.ratio!r}")
        # the seeds it derives (seed + i for the datasets, the t-SNE's) stay in scikit-learn's [0, 2**32)
        check_int_range(self.seed, "--seed", 0, 2**31 - 1)


def _identity(cfg: DemoConfig) -> dict[str, Any]:
    """What must match for a re-run to resume a demo folder (not device/progress)."""
    d = to_dict(cfg)
    return {k: d[k] for k in ("clip", "model", "pretrained", "size", "ratio", "seed")} | {"sizes": to_dict(SIZES[cfg.size])}


def _open_record(out: Path, cfg: DemoConfig) -> dict[str, Any]:
    import json

    from hcdg.store.atomic import atomic_write_json

    path = out / DEMO_FILE
    ident = _identity(cfg)
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("identity") != ident:
            raise HcdgError(
                f"--out {out}: holds a demo of another configuration ({DEMO_FILE} differs: "
                f"size/clip/model/seed); use a new --out folder"
            )
        return record
    if out.exists() and any(out.iterdir()):
        raise HcdgError(f"--out {out}: exists, is not empty and holds no demo ({DEMO_FILE}); use a new folder")
    out.mkdir(parents=True, exist_ok=True)
    record = {"identity": ident, "steps": {}}
    atomic_write_json(path, record)
    return record


class _Steps:
    """Runs named steps once; records finished ones (with seconds) in demo.json."""

    def __init__(self, out: Path, record: dict[str, Any], echo: Callable[[str], None]) -> None:
        self.out, self.record, self.echo = out, record, echo

    def __call__(self, name: str, what: str, fn: Callable[[], Any], *, always: bool = False,
                 seconds: float | None = None, quiet_start: bool = False) -> Any:
        """`seconds`: the step's own time when it ran elsewhere (side by side) and `fn` only collects it."""
        from hcdg.store.atomic import atomic_write_json

        if not always and name in self.record["steps"]:
            self.echo(f"[demo] {what}: done before, skipped")
            return None
        if not quiet_start:
            self.echo(f"[demo] {what} ...")
        t0 = time.perf_counter()
        result = fn()
        sec = round(time.perf_counter() - t0 if seconds is None else seconds, 1)
        self.record["steps"][name] = {"seconds": sec, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(self.out / DEMO_FILE, self.record)
        self.echo(f"[demo] {what}: {sec} s")
        return result


def _train_one(tcfg: Any) -> dict[str, Any]:
    """One `hcdg train` run in a worker process, on one CPU thread (no bar: two would interleave)."""
    import torch

    from hcdg.stages import train

    torch.set_num_threads(1)
    return train.run(dataclasses.replace(tcfg, progress=False))


def _train_concurrently(pending: dict[str, Any], step: "_Steps", what: str, show: bool) -> None:
    """Train the pending runs at once, one process each (each resumes on its own if killed),
    showing each run's progress from its metrics.parquet (`progress.watch_runs`); each run's
    step record holds its own seconds, not the wait for the one before it."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from hcdg.stages import progress

    step.echo(f"[demo] training {', '.join(pending)} side by side ({what}) ...")
    with ProcessPoolExecutor(max_workers=len(pending), mp_context=mp.get_context("spawn")) as pool:
        futures = {name: pool.submit(_train_one, tcfg) for name, tcfg in pending.items()}
        own = progress.watch_runs(futures, {n: t.out for n, t in pending.items()},
                                  {n: t.steps for n, t in pending.items()}, enabled=show)
        for name, fut in futures.items():
            step(f"train/{name}", f"training {name} (side by side)", fut.result, seconds=own[name], quiet_start=True)


def _pick_prompt(prompts: list[str]) -> str:
    """A prompt for Figure 4 far from the source style (dark hand, outdoor colour), when present."""
    for p in prompts:
        if "dark brown" in p and "mountain" in p:
            return p
    return prompts[len(prompts) // 2]


def run(cfg: DemoConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the demo in `cfg.out`; returns {"html", "markdown", "out", "seconds", ...}."""
    from hcdg.stages import clip_train, demo_clip, embed, report, synth, train, viz
    from hcdg.store.runs import read_done
    from hcdg.stages import eval as evaluate
    from hcdg.store import features
    from hcdg.store.results import summary_path

    if not cfg.out:
        raise HcdgError("--out: the demo folder is required")
    size = SIZES[cfg.size]
    out = Path(cfg.out)
    t_start = time.perf_counter()
    record = _open_record(out, cfg)
    step = _Steps(out, record, echo)
    data = {"freihand": out / "data" / "freihand", "rhd": out / "data" / "rhd", "stb": out / "data" / "stb"}
    store = out / "store.zarr"

    # 1. synthetic data in the real formats (source: green screen; targets: shifted styles)
    counts = {"freihand": (size.freihand_poses, size.freihand_eval), "rhd": (size.rhd_eval, 1),
              "stb": (size.stb_frames, None)}
    for i, (fmt, (n, n_other)) in enumerate(counts.items()):
        step(f"synth/{fmt}", f"synthesising {fmt}-format data ({n} {'poses x 4' if fmt == 'freihand' else 'images'})",
             lambda fmt=fmt, n=n, n_other=n_other, i=i: synth.run(
                 synth.SynthConfig(format=fmt, out=str(data[fmt]), n=n, n_other=n_other, seed=cfg.seed + i),
                 progress=cfg.progress))

    # 2. the CLIP (trained on synthetic hands at seeds apart from these sets, or given), then the
    #    features of every split (and the prompts) in one store
    which, encoder = ("model", {"model": cfg.model, "pretrained": cfg.pretrained}) if cfg.model else \
        demo_clip.choose(cfg.clip, out)
    if which == "synthetic":
        step("clip/train", "training the synthetic CLIP (hcdg clip train; cached in clip/)",
             lambda: clip_train.run(clip_train.ClipTrainConfig(
                 out=encoder["clip"], exclude=tuple(str(r) for r in data.values()), progress=cfg.progress,
                 **dict(size.clip_recipe)), echo=echo))

    def embed_split(fmt: str, into: Path, enc: dict[str, Any]) -> Any:
        return embed.run(embed.EmbedConfig(
            dataset=fmt, root=str(data[fmt]), store=str(into), seed=cfg.seed, device=cfg.device, workers=0,
            prompt_filter=size.prompt_filter, progress=cfg.progress, **enc))

    for fmt in ("freihand", "stb", "rhd"):
        step(f"embed/{fmt}", f"embedding {fmt} with {encoder.get('clip') or encoder['model']}",
             lambda fmt=fmt: embed_split(fmt, store, encoder))
    random_weights = bool(features.store_info(store)["random_weights"])

    # 3. training: the Baseline row and the method (ie+te at r), side by side on 2+ cores
    run_dirs, pending = {}, {}
    for name, mode in RUNS:
        run_dirs[name] = out / "runs" / name
        pending[name] = train.TrainConfig(
            store=str(store) if mode != "baseline" else None, dataset="freihand", root=str(data["freihand"]),
            out=str(run_dirs[name]), mode=mode, ratio=cfg.ratio, steps=size.steps, batch_size=size.batch_size,
            width_mult=size.width_mult, input_size=size.input_size, device=cfg.device, seed=cfg.seed, workers=0,
            checkpoint_every=max(size.steps // 2, 1), log_every=max(size.steps // 20, 1),
            resume=(run_dirs[name] / "run.json").is_file(),  # no --resume note on a fresh folder
            progress=cfg.progress, val_fraction=0.1, val_every=max(size.steps // 4, 1),
        )  # fmt: skip
    todo = {k: v for k, v in pending.items() if f"train/{k}" not in record["steps"]}
    what = f"{size.steps} steps, width x{size.width_mult}, {size.input_size} px crops, train defaults"
    from hcdg.pipeline.devices import resolve_device

    if len(todo) > 1 and (os.cpu_count() or 1) >= 2 and resolve_device(cfg.device).type == "cpu":
        _train_concurrently(todo, step, what, cfg.progress)
        pending = {k: v for k, v in pending.items() if k not in todo}
    for name, tcfg in pending.items():
        step(f"train/{name}", f"training {name} ({what})", lambda tcfg=tcfg: train.run(tcfg))
    for name in run_dirs:
        done = read_done(run_dirs[name])
        epe, ref = (done.get(k) if done.get(k) is not None else float("nan")
                    for k in ("val_epe_mm", "val_mean_pose_epe_mm"))
        echo(f"[demo] {name}: held-out EPE {epe:.1f} mm vs {ref:.1f} mm for the mean training pose")

    # 4. evaluation of both runs on both targets, every protocol
    for name in run_dirs:
        for target in TARGETS:
            step(f"eval/{name}/{target}", f"evaluating {name} on {target}",
                 lambda name=name, target=target: evaluate.run(evaluate.EvalConfig(
                     run=str(run_dirs[name]), target=target, root=str(data[target]), device=cfg.device,
                     progress=cfg.progress)))
            if not summary_path(run_dirs[name], target).is_file():
                raise HcdgError(f"{run_dirs[name]}: evaluation on {target} left no summary; remove "
                                f"'eval/{name}/{target}' from {out / DEMO_FILE} and re-run")

    # 5. Figures 3-4 from the store, then the report
    figs = out / "figures"
    step("viz/tsne", "drawing Figure 3 (t-SNE of the features)", lambda: viz.tsne(viz.TsneConfig(
        store=str(store), out=str(figs / "fig3-tsne.png"), n=size.tsne_n, seed=cfg.seed)))
    prompts, _ = features.load_text(store)
    step("viz/retrieve", "drawing Figure 4 (retrieval by a mixed feature)", lambda: viz.retrieve(viz.RetrieveConfig(
        store=str(store), root=str(data["freihand"]), out=str(figs / "fig4-retrieve.png"), index=0,
        prompt=_pick_prompt(prompts), ratio=cfg.ratio, top=8)))
    weights = ("hcdg-tiny with RANDOM weights" if random_weights else "synthetic CLIP trained on rendered hands "
               "(not OpenAI's)" if "clip" in encoder else f"{cfg.model} ({cfg.pretrained})")
    title = (f"hcdg demo ({cfg.size}): synthetic FreiHAND -> synthetic STB / RHD, CLIP = {weights}")
    rep = step("report", "writing the report", lambda: report.run(report.ReportConfig(
        runs=(str(out / "runs"),), out=str(out / "report"), title=title)), always=True)
    clip_md = _clip_section(cfg, size, out, data, store, encoder, step, embed_split)
    if clip_md:
        _append_section(rep, clip_md)
    seconds = round(time.perf_counter() - t_start, 1)
    if random_weights:
        echo("[demo] note: the CLIP features come from RANDOM weights (offline default): they carry no meaning, "
             "so baseline vs ie+te here says nothing about the paper's claim (docs/demo.md).")
    echo(f"[demo] finished in {seconds} s; figures in {figs}")
    return {"html": rep["html"], "markdown": rep["markdown"], "out": str(out), "seconds": seconds,
            "runs": {k: str(v) for k, v in run_dirs.items()}, "random_weights": random_weights}


def _clip_section(cfg: DemoConfig, size: DemoSize, out: Path, data: dict[str, Path], store: Path,
                  encoder: dict[str, Any], step: _Steps, embed_split: Callable[..., Any]) -> str | None:
    """Figures 3-4 as numbers for the demo's CLIP and a random-weight control (figures/fig34.json);
    the Markdown section for the report. None at the smoke-test size (too few points to mean anything)."""
    import json

    from hcdg.stages import demo_clip
    from hcdg.store.atomic import atomic_write_json
    from hcdg.store.clip_model import read_card

    if size.prompt_filter is not None:
        return None
    card = read_card(encoder["clip"]) if "clip" in encoder else None
    path = out / "figures" / "fig34.json"
    if "numbers/fig34" not in step.record["steps"] or not path.is_file():
        def compute() -> None:
            numbers = demo_clip.figure_numbers(store, data, cfg.ratio, cfg.seed)
            control = None
            if card is not None:
                ctrl = demo_clip.control_store(out, step, embed_split, card["architecture"]["name"])
                control = demo_clip.figure_numbers(ctrl, data, cfg.ratio, cfg.seed)
            atomic_write_json(path, {"clip": numbers, "random_control": control})
        step("numbers/fig34", "Figures 3-4 as numbers (and the random-weight control)", compute)
    saved = json.loads(path.read_text())
    which = "synthetic" if card is not None else f"{cfg.model} ({cfg.pretrained})" if cfg.model else "random"
    return demo_clip.section(which, card, saved["clip"], saved["random_control"])


def _append_section(rep: dict[str, Any], md: str) -> None:
    """Add the CLIP section to the report's Markdown and HTML pages."""
    import html as H

    from hcdg.store.atomic import atomic_write_text

    mdp, htp = Path(rep["markdown"]), Path(rep["html"])
    atomic_write_text(mdp, mdp.read_text() + "\n" + md)
    parts, table = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                table.append(line.strip("|").split("|"))
            continue
        if table:
            cells = "".join(f"<tr>{''.join(f'<td>{H.escape(c.strip())}</td>' for c in r)}</tr>" for r in table)
            parts.append(f"<table>{cells}</table>")
            table = []
        if line.startswith("## "):
            parts.append(f"<h2>{H.escape(line[3:])}</h2>")
        elif line.strip():
            text = H.escape(line)
            while text.count("**") >= 2:
                text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
            parts.append(f"<p>{text}</p>")
    page = htp.read_text()
    block = "<section id='which-clip'>" + "".join(parts) + "</section>"
    page = page.replace("</body>", block + "</body>") if "</body>" in page else page + block
    atomic_write_text(htp, page)
