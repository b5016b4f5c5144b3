"""Training-step time at the paper's network size: baseline vs cached CLIP features vs online CLIP.

One optimizer step = forward, Eq. 1 loss, backward, Adam step, on a batch of random
256x256 crops with random targets (the data pipeline is not timed). The loss is the one
`hcdg train` computes at its defaults (`pipeline.objective.loss_terms` with a default
`TrainConfig`: L_heat / L_pose readings, L_con form, prompt draw, mixing). Variants:

* baseline  - no Branch2 (Table 4 "Baseline"): L_heat + L_pose.
* ie+te     - Branch2 with f_clip gathered from in-memory tables (N=130,240 FreiHAND
              images x 512, P=3,920 prompts x 512) and mixed at r=0.6: what `hcdg train` does.
* online    - as ie+te, but f_img and f_txt come from running open_clip's ViT-B-32
              image and text encoders (random weights, pretrained=None: same cost as
              OpenAI's) on the batch inside every step, the way the paper's pipeline
              does (frozen, no_grad).

Execution rows (`--rows`, issue 21): the ie+te step under each execution setting of
`hcdg train` (`pipeline.precision`): fp32 eager, compiled (`--compile`, inductor), bf16,
bf16 + compiled, channels-last, at one or more sizes (`--sizes SIZE:WIDTH:BATCH,...`), as
ratios to fp32 eager measured in the same run; the compile time (first step) and the largest
relative loss difference to fp32 eager over all steps are printed with each row.

Usage:
    python benchmarks/bench_step.py [--steps 2] [--warmup 1] [--batch 8] [--threads 2]
        [--device cpu] [--width 1.0] [--size 256]
    python benchmarks/bench_step.py --rows fp32,compiled,bf16,bf16+compiled,channels-last \
        --sizes 64:0.25:8,256:1:2

Wall time suffers from other processes on a shared machine; process CPU time (all of
this process's threads) does much less so, and with `--threads 1` it is the work done.
Variants run round-robin (one step of each per round, same batch), so load from other
processes hits them alike. Prints a Markdown table (seconds per step, samples/s, ratio to baseline) plus the CLIP
encoder share of the online step, and an estimate of a 4-point ratio sweep both ways.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hcdg.pipeline import mixing, objective, precision  # noqa: E402
from hcdg.pipeline.model import HandPoseNet  # noqa: E402
from hcdg.pipeline.prompts import table2_prompts  # noqa: E402
from hcdg.stages.train_config import TrainConfig  # noqa: E402

N_FREIHAND = 130_240  # FreiHAND training images (docs/sources.md#freihand)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP preprocessing
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic_batch(b: int, s: int, device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A random training batch with every key `objective.loss_terms` reads."""
    h = s // 8
    return {
        "image": torch.rand(b, 3, s, s, generator=gen).to(device),
        "hand_side": torch.tensor([[0.0, 1.0]]).repeat(b, 1).to(device),
        "heatmaps": torch.rand(b, 21, h, h, generator=gen).to(device),
        "uv_crop": (torch.rand(b, 21, 2, generator=gen) * s).to(device),
        "visible": torch.ones(b, 21, dtype=torch.bool).to(device),
        "pose_target": torch.randn(b, 21, 3, generator=gen).to(device),
        "feat_row": torch.randint(N_FREIHAND, (b,), generator=gen).to(device),
    }


def variant_config(name: str, batch: int, width: float, size: int) -> TrainConfig:
    """The default `TrainConfig` of a variant: baseline, or the paper's ie+te mix (online: the same)."""
    return TrainConfig(mode="baseline" if name == "baseline" else "ie+te", batch_size=batch, width_mult=width,
                       input_size=size)


class OnlineClip:
    """open_clip ViT-B-32 image + text encoders with random weights, frozen."""

    def __init__(self, device: torch.device) -> None:
        import open_clip

        self.model = open_clip.create_model("ViT-B-32", pretrained=None).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32")
        self.prompts = table2_prompts().texts
        self.mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
        self.device = device

    @torch.no_grad()
    def features(self, image: torch.Tensor, prompt_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(image, size=224, mode="bicubic", align_corners=False).clamp(0, 1)
        f_img = self.model.encode_image((x - self.mean) / self.std)
        tokens = self.tokenizer([self.prompts[i] for i in prompt_ids.tolist()]).to(self.device)
        f_txt = self.model.encode_text(tokens)
        return f_img.float(), f_txt.float()


class Variant:
    """One training set-up: model + Adam (+ CLIP tables or the online CLIP encoders) and its TrainConfig."""

    def __init__(self, name: str, cfg: TrainConfig, device: torch.device,
                 tables: objective.FeatureTables | None = None) -> None:
        torch.manual_seed(cfg.seed)  # as `hcdg train` seeds the initialisation
        gen = torch.Generator().manual_seed(0)
        self.name, self.cfg, self.device = name, cfg, device
        mcfg = cfg.model_config(None)
        self.model = precision.to_channels_last(HandPoseNet(mcfg).to(device).train(), cfg.channels_last)
        self.net = precision.compile_module(self.model, cfg.compile)  # the model itself unless --compile
        self.losses: list[float] = []
        self.optim = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.tables, self.clip = tables, None
        if name == "ie+te" and tables is None:
            self.tables = objective.FeatureTables(torch.randn(N_FREIHAND, mcfg.clip_dim, generator=gen).to(device),
                                                  torch.randn(3920, mcfg.clip_dim, generator=gen).to(device))
        elif name == "online":
            self.clip = OnlineClip(device)
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.clip_times: list[float] = []
        self.clip_cpu: list[float] = []

    def loss(self, batch: dict[str, torch.Tensor], step: int, timed: bool = False) -> torch.Tensor:
        """The total loss of step `step` on `batch` (`objective.loss_terms`; online: CLIP run on the batch)."""
        positives = None
        if self.clip is not None:
            pids = objective.prompt_ids(self.cfg, step, n_prompts=len(self.clip.prompts))
            tc, cc = time.perf_counter(), time.process_time()
            f_img, f_txt = self.clip.features(batch["image"], pids)
            _sync(self.device)
            if timed:
                self.clip_times.append(time.perf_counter() - tc)
                self.clip_cpu.append(time.process_time() - cc)
            positives = {"clip_feat": mixing.mix_features(f_img, f_txt, self.cfg.effective_ratio,
                                                          self.cfg.normalize_features)}
        loss, _ = objective.loss_terms(self.cfg, self.net, batch, self.tables, step, positives=positives)
        self.losses.append(float(loss.detach()))
        return loss

    def step(self, batch: dict[str, torch.Tensor], step: int, timed: bool) -> tuple[float, float]:
        _sync(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = self.loss(batch, step, timed)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        _sync(self.device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if timed:
            self.times.append(dt)
            self.cpu_times.append(dc)
        return dt, dc


#: Execution rows of `--rows` (TrainConfig fields; fp32 eager is the reference of the ratios).
ROWS: dict[str, dict[str, object]] = {
    "fp32": {}, "compiled": {"compile": "inductor"}, "bf16": {"precision": "bf16"},
    "bf16+compiled": {"precision": "bf16", "compile": "inductor"}, "channels-last": {"channels_last": True},
}


def run_rows(args: argparse.Namespace, device: torch.device) -> None:
    """The `--rows` table: the ie+te step under each execution setting, per size, ratios to fp32 eager."""
    import dataclasses

    rows = args.rows.split(",")
    if any(r not in ROWS for r in rows) or rows[0] != "fp32":
        raise SystemExit(f"--rows: expected a comma list of {', '.join(ROWS)} starting with fp32, got {args.rows!r}")
    print("\n| size | row | s / step | samples/s | speed vs fp32 eager | process CPU s / step | "
          "first step s (compile) | max rel. loss diff vs fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for spec in args.sizes.split(","):
        size, width, batch = spec.split(":")
        base = variant_config("ie+te", int(batch), float(width), int(size))
        variants = [Variant("ie+te", dataclasses.replace(base, **ROWS[r]), device) for r in rows]
        gen = torch.Generator().manual_seed(0)
        first: dict[str, float] = {}
        for i in range(args.warmup + args.steps):
            b = synthetic_batch(int(batch), int(size), device, gen)
            for row, v in zip(rows, variants):
                dt, dc = v.step(b, i, i >= args.warmup)
                first.setdefault(row, dt)
                print(f"  {spec} round {i} {row:14s} wall {dt:.2f} s, process CPU {dc:.2f} s", flush=True)
        ref = variants[0]
        for row, v in zip(rows, variants):
            s = statistics.mean(v.times)
            diff = max(abs(a - b) / abs(b) for a, b in zip(v.losses, ref.losses))
            note = " (fell back to eager)" if getattr(v.net, "compiled", None) is False else ""
            print(f"| {size} px, width {width}, batch {batch} | {row}{note} | {s:.3f} | {int(batch) / s:.1f} | "
                  f"{statistics.mean(ref.times) / s:.2f}x | {statistics.mean(v.cpu_times):.2f} | {first[row]:.1f} | "
                  f"{diff:.1e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    ap.add_argument("--batch", type=int, default=8, help="batch size (hand3d's training scripts use 8)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--width", type=float, default=1.0, help="ModelConfig.width_mult (1.0 = paper)")
    ap.add_argument("--size", type=int, default=256, help="ModelConfig.input_size (256 = paper)")
    ap.add_argument("--sweep-steps", type=int, default=0,
                    help="steps per sweep point for the sweep estimate (0 = one FreiHAND epoch)")
    ap.add_argument("--variants", default="baseline,ie+te,online", help="comma-separated subset to run")
    ap.add_argument("--rows", default="", help=f"execution rows instead of variants: comma list of {', '.join(ROWS)}")
    ap.add_argument("--sizes", default="64:0.25:8,256:1:2", help="with --rows: SIZE:WIDTH:BATCH,... to measure")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    if args.rows:
        print(f"# {args.warmup} warm-up + {args.steps} timed steps per row, rows round-robin on the same batches")
        run_rows(args, device)
        return
    print(f"# batch {args.batch}, input {args.size}, width {args.width}, {args.warmup} warm-up + {args.steps} timed steps")
    variants = [Variant(n, variant_config(n, args.batch, args.width, args.size), device)
                for n in args.variants.split(",")]
    gen = torch.Generator().manual_seed(0)
    # round-robin: each round runs one step of every variant on the same batch, so load
    # from other processes on a shared machine hits all variants alike
    for i in range(args.warmup + args.steps):
        batch = synthetic_batch(args.batch, args.size, device, gen)
        timed = i >= args.warmup
        for v in variants:
            dt, dc = v.step(batch, i, timed)
            print(f"  round {i} ({'timed' if timed else 'warm-up'}) {v.name:9s} wall {dt:.2f} s, "
                  f"process CPU {dc:.2f} s", flush=True)
    results = {}
    for v in variants:
        r = {"s_per_step": statistics.mean(v.times), "min": min(v.times), "max": max(v.times),
             "cpu_s": statistics.mean(v.cpu_times)}
        if v.clip_times:
            r["clip_s"] = statistics.mean(v.clip_times)
            r["clip_cpu_s"] = statistics.mean(v.clip_cpu)
        results[v.name] = r
    base = results.get("baseline", {}).get("s_per_step")
    base_cpu = results.get("baseline", {}).get("cpu_s")
    print("\n| variant | wall s / step (mean) | min - max | samples/s | wall ratio | process CPU s / step | CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['s_per_step'] / base:.2f}" if base else "-"
        cratio = f"{r['cpu_s'] / base_cpu:.2f}" if base_cpu else "-"
        print(f"| {name} | {r['s_per_step']:.2f} | {r['min']:.2f} - {r['max']:.2f} | "
              f"{args.batch / r['s_per_step']:.2f} | {ratio} | {r['cpu_s']:.2f} | {cratio} |")
    if "online" in results:
        on = results["online"]
        print(f"\nonline: the CLIP ViT-B-32 image+text encoders take {on['clip_s']:.2f} s wall "
              f"({on['clip_cpu_s']:.2f} s process CPU) of the step")
        if "ie+te" in results:
            # one embed pass ~ encoding every training image once (+ 3,920 prompts, small);
            # the clip timing includes 8 text encodes per batch, so this is an upper bound
            embed = N_FREIHAND / args.batch * on["clip_cpu_s"]
            cached, online = results["ie+te"]["cpu_s"], on["cpu_s"]
            n = args.sweep_steps or N_FREIHAND // args.batch
            print(f"4-point ratio sweep, {n:,} steps per point, process-CPU hours: cached "
                  f"4 x {cached * n / 3600:.1f} + one embed pass (<= {embed / 3600:.1f}) = "
                  f"{(4 * cached * n + embed) / 3600:.1f}; online 4 x {online * n / 3600:.1f} = "
                  f"{4 * online * n / 3600:.1f}")


if __name__ == "__main__":
    main()
