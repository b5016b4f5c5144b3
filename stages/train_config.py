"""`TrainConfig`: every setting of `hcdg train` / `hcdg sweep`, declared once, and how one is resolved.

Each field carries its option's help text, `--help` section, role (identity / runtime) and
whether it decides a run's batches (`pipeline.config.option`); choices are its `Literal`
type. The CLI builds its options from these fields; `TrainConfig.resolve` is the one
preset -> TOML file -> flags merge, for the CLI and Python callers alike:

    cfg = TrainConfig.resolve(preset="authors", toml="base.toml", root="data/freihand", out="runs/a")

`identity` is what defines a run (compared on `--resume`, hashed into checkpoints).
`to_toml` writes a config that `--config` reads back (`hcdg train --print-config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hcdg.pipeline.aug_configs import AugConfig, ColorJitter
from hcdg.pipeline.config import (ConfigError, check_choices, check_finite, check_seed, fields_of, from_dict, merge,
                                 to_dict)
from hcdg.pipeline.config import option as opt
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.schedule import check_schedule
from hcdg.pipeline.model_sizes import size_problems
from hcdg.pipeline.transforms import GeomAug
from hcdg.store.fingerprint import digest

Mode = Literal["baseline", "ie", "te", "ie+te"]

#: Run length when neither --steps nor --epochs is given: hand3d trains PoseNet for
#: 30,000 iterations (training_posenet.py `max_iter`); the paper gives no length.
DEFAULT_STEPS = 30_000

#: `--help` sections of `hcdg train` / `hcdg sweep`, in order (as timm groups its arguments).
SECTIONS = ("data", "model", "optimisation", "loss", "CLIP mixing", "run")

#: Named bundles of defaults (`--preset`); TOML keys and flags given explicitly win.
#: "paper" = TrainConfig's own defaults (today's reading of the paper's text).
#: "authors" = the paper authors' released recipe, as far as hcdg has the knobs (docs/training.md,
#: "Presets"; their repo: main/config.py, main/preprocessing.py, main/model_no_render.py).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "authors": {
        "batch_size": 32,  # main/config.py:18 train_batch_size
        "epochs": 45,  # the released snapshot_45.pth.tar (their README; main/base.py:68)
        "target": "uvd",  # data/Rhp/Rhp.py:148-152 fit_joint_img
        "arch": "authors",  # colorhandpose3d/model/* (TFConv2D, NHWC flatten, head bias), [0,1] input
        "sigma_px": 10.0,  # main/preprocessing.py:44, exp(-d^2/sigma^2) at 256
        "ratio": 0.8,  # main/config.py:52 img_weight = 0.8 (the paper's text: 0.6 STB / 0.9 RHD)
        # main/preprocessing.py:94-109: scale clip(N(0,1), +-1) * 0.25 + 1 -> hcdg draws uniform in the
        # same range; rotation U(-3,3) * 30 deg with probability 0.6 -> hcdg draws U(-90, 90) always;
        # no translation. Colour: brightness, contrast U(0.8, 1.2) (l.115-116); their per-channel
        # x U(0.8, 1.2) has no hcdg knob (saturation 0 instead).
        "geom": {"scale_range": (0.75, 1.25), "rotation_deg": 90.0, "translation_frac": 0.0},
        "color": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.0},
        # Last CPM stage only, its maps upsampled to the 256 crop (ColorHandPose3D.py:107), their
        # Gaussian exp(-d^2/sigma^2) (preprocessing.py:88). Their loss reduction is not in the
        # release (no training loss code): hcdg's default heat_reduction is kept.
        "heat_stages": "last",
        "heat_resolution": "crop",
        "gaussian": "exp-d2-s2",
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The TrainConfig values of preset `name` (with `preset` itself)."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return {**PRESETS[name], "preset": name}


def _data(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    return opt(default, help=help, section="data", **kw)


def _model(default: Any, help: str, **kw: Any) -> Any:
    return opt(default, help=help, section="model", role="identity", **kw)


def _optim(default: Any, help: str, **kw: Any) -> Any:
    return opt(default, help=help, section="optimisation", **kw)


def _loss(default: Any, help: str, **kw: Any) -> Any:
    return opt(default, help=help, section="loss", role="identity", **kw)


def _mix(default: Any, help: str, **kw: Any) -> Any:
    return opt(default, help=help, section="CLIP mixing", role="identity", batch=False, **kw)


def _run(default: Any, help: str, **kw: Any) -> Any:
    return opt(default, help=help, section="run", **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `hcdg train` needs. Defaults are the paper's setting where it gives one.

    Build one with `TrainConfig.resolve(...)` to apply a preset (as the CLI does); the plain
    constructor takes the paper's defaults and only records `preset`.
    """

    # which `PRESETS` bundle the defaults came from (recorded)
    preset: Literal["paper", "authors"] = _run(
        "paper", "Named bundle of settings under the TOML file and the flags: paper (TrainConfig's own values) "
        "or authors (their released recipe; docs/training.md, Presets).", role="identity", batch=False)
    # --- data -------------------------------------------------------------------------
    store: str | None = _data(None, "Feature store from `hcdg embed` (not needed for --mode baseline or --aug normal).",
                              role="runtime", batch=False)
    dataset: Literal["freihand", "rhd"] = _data(  # paper §3.4: trained on FreiHAND only
        "freihand", "Training dataset (the paper: freihand).", role="identity", batch=True)
    root: str = _data("", "Dataset root folder (real on-disk layout, or `hcdg synth` output).",
                      role="runtime", batch=True)
    split: str = _data("training", "Dataset split to train on.", role="identity", batch=True)  # FreiHAND: 130,240 images
    out: str = _run("", "Run folder (created; refuses one holding a different run).", role="runtime", batch=False)
    val_fraction: float = _data(0.02, "Fraction of poses held out for the per-epoch validation EPE.",  # ours
                                role="identity", batch=True)
    # --- method (paper §3.3-3.4, Tables 4-6) --------------------------------------------
    # the paper's method: image + text features mixed (Table 4a)
    mode: Mode = _mix("ie+te", "baseline (no Branch2) | ie (r=1) | te (r=0) | ie+te (mix at --ratio) (Table 4).",
                      sweep_axis=True)
    # r in f = r f_img + (1-r) f_txt; §3.3: 0.6 for STB, 0.9 for RHD
    ratio: float = _mix(0.6, "Image weight r in f = r f_img + (1-r) f_txt, in [0, 1] (paper: 0.6 STB, 0.9 RHD).",
                        sweep_axis=True)
    # Table 4b: concatenation is the paper's choice
    combine: Literal["concat", "sum"] = _model(
        "concat", "How Branch2 joins the CLIP feature: concat (paper) or sum (Table 4b).", batch=False,
        sweep_axis=True)
    lambda_heat: float = _loss(1.0, "Weight l1 of L_heat (paper §3.4).", batch=False)  # l1, §3.4
    lambda_pose: float = _loss(1.0, "Weight l2 of L_pose (paper §3.4).", batch=False)  # l2, §3.4
    lambda_con: float = _loss(0.1, "Weight l3 of L_con (paper §3.4; Table 5: 1, 0.1, 0.01, 0.001).",
                              batch=False, sweep_axis=True)  # l3, §3.4 / Table 5
    # Eq. 4's reading (pipeline/losses.py). "paper-literal" = as printed, unbounded below and
    # measured to diverge (docs/model.md, docs/benchmarks.md "learning"); the default is the
    # bounded reading chosen by that measurement. Run folders before 2026-12 call paper-literal
    # "paper"; reading them renames it (store.schema).
    con_loss: Literal["paper-literal", "hinge", "contrastive"] = _loss(
        "contrastive", "L_con form: contrastive (d_pos + max(0, m - d_neg), Hadsell 2006) | hinge "
        "(max(0, d_pos - d_neg + m)) | paper-literal (Eq. 4 as printed: UNBOUNDED below, diverges; docs/model.md).",
        batch=False, sweep_axis=True)
    # margin of the bounded forms; reuses Eq. 4's 0.5 (no source gives one)
    margin: float = _loss(0.5, "Margin m of --con-loss hinge/contrastive.", batch=False)
    # e_neg of Eq. 4: the other sample's e1' (docs/model.md)
    con_negative: Literal["e1", "e2"] = _loss(
        "e1", "Eq. 4's e_neg: e1 (the other sample's image-only encoding) | e2 (its CLIP-enriched one).", batch=False)
    # Table 6: "normal" = six augmentations make the positive
    aug: Literal["clip", "normal"] = _loss(
        "clip", "Positive view: clip | normal (Table 6: six augmentations).", batch=False, sweep_axis=True)
    # L2-normalise f_img, f_txt before mixing (paper silent)
    normalize_features: bool = _mix(True, "L2-normalise image and text features before mixing (the paper is silent).")
    # regex over the store's prompts; "" = all of Table 2 (§3.3)
    prompt_filter: str = _mix("", "Regular expression: draw only the store's prompts it matches (empty: all).")
    # --- optimisation ---------------------------------------------------------------------
    steps: int | None = _optim(None, "Total optimizer steps of the run (--resume continues to it); wins over --epochs.",
                               role="runtime", batch=False)
    epochs: int | None = _optim(
        None, f"Total epochs, when --steps is not given (neither: {DEFAULT_STEPS:,} steps, hand3d's PoseNet).",
        role="runtime", batch=False)
    # global batch; paper silent, hand3d's training scripts use 8
    batch_size: int = _optim(8, "Global batch size, split over --nproc.", role="identity", batch=True)
    lr: float = _optim(1e-4, "Adam learning rate (paper §3.4).", role="identity", batch=False)  # §3.4
    betas: tuple[float, float] = _optim((0.9, 0.999), "Adam betas (paper §3.4).", role="identity", batch=False,
                                        cli=False)
    # Steps at which the learning rate is multiplied by lr_drop_factor. The paper gives one
    # constant rate (§3.4): (). hand3d's PoseNet schedule is (10000, 20000) with factor 0.1.
    lr_drops: tuple[int, ...] = _optim(
        (), "Comma-separated steps at which the learning rate drops by --lr-drop-factor (none: constant, "
        "paper §3.4; hand3d: 10000,20000).", role="identity", batch=False)
    lr_drop_factor: float = _optim(0.1, "Learning-rate multiplier at each drop.", role="identity", batch=False)
    # Which losses train which part when (pipeline/schedule.py, docs/model.md "Training schedules").
    # "joint" = every loss from step 0, the lifting reading the maps with gradients: the paper and
    # the authors' code; kept by measurement (docs/benchmarks.md "Training schedules": lifting-detached
    # localises better but its 3D lags). "staged" = L_heat alone for the first staged_steps steps, then
    # all (hand3d trained PoseNet on L_heat alone first: training_posenet.py l.47, 61);
    # "lifting-detached" = L_pose never reaches the maps (hand3d trained PosePrior/ViewPoint apart).
    schedule: Literal["joint", "staged", "lifting-detached"] = _optim(
        "joint", "Which losses train what, when: joint (all from step 0; the paper) | staged (L_heat alone for "
        "--staged-steps, then all; hand3d's order) | lifting-detached (L_pose never reaches the heatmaps). "
        "docs/model.md, Training schedules.", role="identity", batch=False)
    # What PosePrior/ViewPoint read: "pred" = the last CPM stage's maps; "gt-then-pred" = the
    # ground-truth target maps for the first staged_steps steps (hand3d training_lifting.py l.56 feeds
    # score maps drawn from the ground truth), then the predicted ones.
    lifting_input: Literal["pred", "gt-then-pred"] = _optim(
        "pred", "Maps PosePrior/ViewPoint read: pred (the last CPM stage) | gt-then-pred (ground-truth maps for "
        "--staged-steps steps, as hand3d's lifting training, then pred).", role="identity", batch=False)
    # Length of the first stage of "staged" / "gt-then-pred" (unused by joint + pred). hand3d ran
    # each stage to convergence (30,000 / 80,000 iterations); 500 = a third of the learning
    # benchmark's 1,500 steps, the length screened there (docs/benchmarks.md "Learning").
    staged_steps: int = _optim(500, "Steps of the first stage of --schedule staged / --lifting-input gt-then-pred.",
                               role="identity", batch=False)
    # --- network ----------------------------------------------------------------------------
    # What L_pose regresses: "xyz" = hand3d's root-relative, bone-normalised coordinates (paper
    # §3.1); "uvd" = the authors' normalised crop (u/S, v/S, ((z - z_root)/0.15 + 1)/2)
    # (their data/Rhp/Rhp.py:148-152 `fit_joint_img`), scored under `--protocol authors`.
    target: Literal["xyz", "uvd"] = _model(
        "xyz", "What L_pose regresses: xyz (hand3d's root-relative, bone-normalised) or uvd (the authors' "
        "normalised crop uv + depth; scored with `hcdg eval --protocol authors`).", batch=True)
    # "hcdg" = hcdg's network; "authors" = their layout (TF-SAME + NHWC lifting, bias-free head,
    # [0,1] input, their hand-side convention; `pipeline.authors.model_config`, docs/model.md).
    arch: Literal["hcdg", "authors"] = _model(
        "hcdg", "Network layout: hcdg or authors (TF-SAME + NHWC lifting, bias-free head, [0,1] input, their "
        "hand side; docs/model.md).", batch=False)
    # 1.0 = hand3d channel counts (docs/sources.md#hand3d-network)
    width_mult: float = _model(1.0, "Channel multiplier of the network (1.0 = the paper's).", batch=False)
    # §3.1: 256x256 crops, heatmaps at 1/8 (32x32)
    input_size: int = _model(256, "Crop side in pixels, multiple of 8 (the paper: 256).", batch=True)
    # L_heat reading (pipeline/heatmap_loss.py; the paper prints only ||h - h_gt||^2, Eq. 2).
    # Chosen by the measured comparison in docs/benchmarks.md "learning" (docs/model.md).
    # sum = Eq. 2 as printed (per-sample ||h - h_gt||_2^2); with pose "sum" the three printed norms
    # keep the scale l1 = l2 = 1, l3 = 0.1 was chosen at. Measured: the one reading tried whose maps
    # beat the mean 2D layout while the pose learns; EPE on par with "mean" (docs/benchmarks.md "Learning").
    # rmse = hand3d training_posenet.py l.58
    heat_reduction: Literal["mean", "sum", "rmse"] = _loss(
        "sum", "L_heat reduction: mean (element MSE) | sum (per-sample ||.||^2, Eq. 2 as printed) | rmse "
        "(hand3d's per-keypoint RMSE).", batch=False)
    # Eq. 3 as printed: per-sample ||c - c_gt||_2^2
    pose_reduction: Literal["mean", "sum"] = _loss(
        "sum", "L_pose reduction: mean (element MSE) | sum (per-sample ||.||^2, Eq. 3 as printed).", batch=False)
    # all = hand3d / CPM intermediate supervision
    heat_stages: Literal["all", "last"] = _loss(
        "all", "CPM stages L_heat supervises: all (hand3d) | last (the authors).", batch=False)
    # crop = hand3d l.46 / authors: upsampled to S
    heat_resolution: Literal["grid", "crop"] = _loss(
        "grid", "Where L_heat compares maps: grid (S/8 heatmaps) | crop (upsampled to the S crop, hand3d and "
        "the authors).", batch=False)
    # heatmap sigma on the input crop, px: the authors' value (docs/sources.md#heatmaps-and-crop)
    sigma_px: float = _loss(10.0, "Sigma of the target Gaussian in crop pixels (the authors: 10 at 256).", batch=True)
    # How sigma enters the target: exp(-d^2/(2 sigma^2)) or hand3d's / the authors' exp(-d^2/sigma^2).
    gaussian: Literal["exp-d2-2s2", "exp-d2-s2"] = _loss(
        "exp-d2-2s2", "Target Gaussian: exp(-d^2/(2 sigma^2)) | exp(-d^2/sigma^2) (hand3d, the authors).", batch=True)
    # x hand3d's keypoint crop side (transforms.CropConfig)
    crop_scale: float = _data(1.0, "Multiplier on hand3d's keypoint crop side.", role="identity", batch=True)
    augment: bool = _data(True, "Geometric + colour augmentation of the crops.", role="identity", batch=True)
    geom: GeomAug = _data(help="Scale / rotation / translation of the crops (TOML table; transforms.GeomAug).",
                          default_factory=GeomAug, role="identity", batch=True, cli=False)
    color: ColorJitter = _data(help="Brightness / contrast / saturation jitter (TOML table; aug_configs.ColorJitter).",
                               default_factory=ColorJitter, role="identity", batch=True, cli=False)
    normal_aug: AugConfig = opt(help="Table 6's six augmentations, with --aug normal (TOML table; aug_configs.AugConfig).",
                                default_factory=AugConfig, section="loss", role="identity", batch=False, cli=False)
    # Where the crop warp, colour jitter and heatmaps of the training input run (issue 13: input
    # prep measured 3.78 ms/sample at 256 px on CPU, ~6 cores per run at 1,000 samples/s). "workers"
    # = the loader workers (PIL, numpy; the historical path); "device" = batched torch ops in the
    # training step (`pipeline.device_aug`), the workers only decode and draw the augmentation.
    augment_on: Literal["workers", "device"] = _data(
        "workers", "Where crop warp, colour jitter and heatmaps run: workers (loader processes) or device "
        "(batched on the training device; docs/training.md).", role="identity", batch=True)
    # --- execution ----------------------------------------------------------------------------
    # Autocast of the network's forward (pipeline/precision.py; docs/training.md "Precision and speed").
    # fp32: the paper's and hand3d's; bf16/fp16 change the rounding, so they are part of the run.
    precision: Literal["fp32", "bf16", "fp16"] = _optim(
        "fp32", "Autocast of the network: fp32 (none) | bf16 | fp16 (with loss scaling); losses and metrics "
        "stay float32 (docs/training.md).", role="identity", batch=False)
    # torch.compile backend of the network; "off" = eager, as every number in docs/ was measured.
    compile: Literal["off", "inductor", "aot_eager"] = _optim(
        "off", "torch.compile the network: bare --compile = inductor; aot_eager = trace only; falls back to "
        "eager with one line where unsupported.", role="identity", batch=False,
        click={"is_flag": False, "flag_value": "inductor"})
    # NHWC weights + input (pipeline.precision.to_channels_last); off = torch's default layout.
    channels_last: bool = _optim(False, "NHWC memory layout of weights and input (fast convolutions on GPUs).",
                                 role="identity", batch=False)
    device: str = _run("auto", "auto (cuda if available), cpu, cuda, cuda:N.", role="runtime", batch=True)
    seed: int = _run(0, "Seed of initialisation, data order, augmentation, prompts.", role="identity", batch=True,
                     sweep_axis=True)
    checkpoint_every: int = _run(1000, "Steps between checkpoints (and one at the end).", role="runtime", batch=False)
    log_every: int = _run(50, "Steps between metrics rows.", role="runtime", batch=False)
    val_every: int = _run(0, "Extra validation every N steps (0: per epoch and at the end).", role="identity",
                          batch=False)
    workers: int = _run(2, "DataLoader worker processes (0: load in the training process).", role="runtime",
                        batch=False)
    nproc: int = _run(1, "Local DDP processes (gloo on CPU, nccl on CUDA); under torchrun: ignored.",
                      role="runtime", batch=True)
    resume: bool = _run(False, "Continue the run in --out from its newest checkpoint.", role="runtime", batch=False,
                        commands=("train",))
    progress: bool = _run(True, "Progress bar (a periodic status line when not on a terminal).", role="runtime",
                          batch=False)
    # a view of metrics.parquet for TensorBoard users (store/tensorboard_log.py); off by default:
    # it needs the optional package `tensorboard` (extra [tb])
    tensorboard: bool = _run(False, "Also write TensorBoard scalars (losses, lr, validation EPE and 2D error, "
                             "Branch2 diagnostics) into RUN/tensorboard (sweeps: one per point); needs "
                             "`pip install 'hcdg[tb]'`.", role="runtime", batch=False)

    def __post_init__(self) -> None:
        def bad(opt: str, msg: str) -> ConfigError:
            return ConfigError(f"{opt}: {msg}")

        check_finite(self)  # NaN/inf pass every comparison below as False: refuse them first
        check_choices(self)  # every Literal field
        check_seed(self.seed)  # torch.manual_seed takes int64
        for name, problem in size_problems(self.width_mult, self.input_size):  # named by the flag, not model.*
            raise bad(f"--{name.replace('_', '-')}", problem)
        if not 0.0 <= self.ratio <= 1.0:
            raise bad("--ratio", f"expected a value in [0, 1], got {self.ratio!r}")
        if self.aug == "normal" and self.mode != "ie+te":
            # Table 6's positive is an augmented view: no CLIP feature, so the mode would be ignored.
            raise bad("--aug normal", f"replaces the CLIP feature; use it with --mode ie+te, not --mode {self.mode}")
        problem = check_schedule(self.schedule, self.lifting_input, self.staged_steps)
        if problem:
            raise ConfigError(problem)
        if not self.sigma_px > 0:
            raise bad("--sigma-px", f"expected > 0, got {self.sigma_px!r}")
        for name in ("lambda_heat", "lambda_pose", "lambda_con", "margin"):
            if getattr(self, name) < 0:
                raise bad(f"--{name.replace('_', '-')}", f"expected >= 0, got {getattr(self, name)!r}")
        if self.steps is not None and self.steps < 1:
            raise bad("--steps", f"expected >= 1, got {self.steps!r}")
        if self.epochs is not None and self.epochs < 1:
            raise bad("--epochs", f"expected >= 1, got {self.epochs!r}")
        if self.batch_size < 2:
            raise bad("--batch-size", f"expected >= 2 (L_con picks negatives in the batch), got {self.batch_size!r}")
        if not self.lr > 0:
            raise bad("--lr", f"expected > 0, got {self.lr!r}")
        if any(d < 1 for d in self.lr_drops) or list(self.lr_drops) != sorted(self.lr_drops):
            raise bad("--lr-drops", f"expected increasing step numbers >= 1, got {list(self.lr_drops)}")
        if not 0 < self.lr_drop_factor <= 1:
            raise bad("--lr-drop-factor", f"expected a value in (0, 1], got {self.lr_drop_factor!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise bad("betas", f"expected two values in [0, 1), got {self.betas!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad("--val-fraction", f"expected a value in [0, 1), got {self.val_fraction!r}")
        for name in ("checkpoint_every", "log_every", "nproc"):
            if getattr(self, name) < 1:
                raise bad(f"--{name.replace('_', '-')}", f"expected >= 1, got {getattr(self, name)!r}")
        if self.workers < 0 or self.val_every < 0:
            raise bad("--workers/--val-every", "expected >= 0")
        if self.batch_size % self.nproc:
            raise bad("--batch-size", f"the global batch {self.batch_size} must be divisible by --nproc {self.nproc}")
        if self.prompt_filter:
            try:
                re.compile(self.prompt_filter)
            except re.error as exc:
                raise bad("--prompt-filter", f"not a valid regular expression ({exc})") from None

    # -- building one ------------------------------------------------------------------------
    @classmethod
    def resolve(cls, preset: str | None = None, toml: str | Path | Mapping[str, Any] | None = None, *,
                where: str = "flags", **flags: Any) -> TrainConfig:
        """The config `hcdg train` builds: preset values, then the config file (a TOML path, a run
        folder's run.json, or a parsed table), then `flags` (None values = not given). The preset is `preset`, else the TOML's
        `preset` key, else "paper". Unknown keys and bad values raise ConfigError naming their source."""
        src = str(toml) if isinstance(toml, (str, Path)) else where
        base = read_config_file(toml) if isinstance(toml, (str, Path)) else dict(toml or {})
        name = preset or base.get("preset") or "paper"
        if name not in PRESETS:
            who = "--preset" if preset else f"{src}: preset"
            raise ConfigError(f"{who}: expected one of {', '.join(PRESETS)}, got {name!r}")
        return from_dict(cls, merge(merge(preset_values(name), base), flags), where=src)

    # -- derived -------------------------------------------------------------------------------
    @property
    def uses_clip(self) -> bool:
        """Whether the run reads CLIP features from the store (Branch2 with a CLIP positive)."""
        return self.mode != "baseline" and self.aug == "clip"

    @property
    def effective_ratio(self) -> float | None:
        """The image weight r actually used: ie -> 1, te -> 0, ie+te -> ratio, else None."""
        if not self.uses_clip:
            return None
        return {"ie": 1.0, "te": 0.0}.get(self.mode, self.ratio)

    @property
    def total_steps_given(self) -> int | None:
        """`steps`, or DEFAULT_STEPS when neither steps nor epochs is given."""
        if self.steps is None and self.epochs is None:
            return DEFAULT_STEPS
        return self.steps

    @property
    def heat_loss(self) -> Any:
        """The L_heat reading of this run (`pipeline.heatmap_loss`)."""
        from hcdg.pipeline.heatmap_loss import HeatLossConfig

        return HeatLossConfig(self.heat_reduction, self.heat_stages, self.heat_resolution)

    def lr_at(self, step_idx: int) -> float:
        """Learning rate of 0-based step `step_idx` (piecewise constant, `lr_drops`)."""
        return self.lr * self.lr_drop_factor ** sum(step_idx >= d for d in self.lr_drops)

    @property
    def split_key(self) -> str:
        return f"{self.dataset}/{self.split}"

    def model_config(self, clip_dim: int | None = None) -> Any:
        """The network this run trains (`pipeline.network_config.model_config`)."""
        from hcdg.pipeline.network_config import model_config

        return model_config(to_dict(self), clip_dim)

    def crop_config(self) -> Any:
        """The crops and heatmap targets of this run (`pipeline.network_config.crop_config`)."""
        from hcdg.pipeline.network_config import crop_config

        return crop_config(to_dict(self))


def fields_with(role: str | None = None, batch: bool | None = None) -> tuple[str, ...]:
    """Names of the TrainConfig fields of `role` ("identity" / "runtime") and/or `batch` classification."""
    return tuple(n for n, f in fields_of(TrainConfig).items()
                 if (role is None or f.metadata.get("role") == role)
                 and (batch is None or f.metadata.get("batch") is batch))


#: Config keys that do not change what a run computes (paths, devices, cadence, length):
#: a `--resume` may change them. Everything else must match the run folder's record.
RUNTIME_KEYS = frozenset(fields_with(role="runtime"))


def identity(cfg: TrainConfig, store_fingerprint: dict[str, Any] | None, data_ids_sha256: str) -> dict[str, Any]:
    """What defines a run (compared on `--resume`): the config minus runtime keys, plus data identity."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in RUNTIME_KEYS}
    d["effective_ratio"] = cfg.effective_ratio
    d["data_ids_sha256"] = data_ids_sha256
    d["store_fingerprint_sha256"] = None
    if store_fingerprint is not None:  # the store level + the training split (other splits may come later)
        used = {k: v for k, v in store_fingerprint.items() if k != "splits"}
        used["split"] = store_fingerprint.get("splits", {}).get(cfg.split_key)
        d["store_fingerprint_sha256"] = digest(used)
    return d


def ids_sha256(ids: list[str]) -> str:
    """sha256 of the ordered sample ids (what the run trained on)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML config file as a dict; a one-line HcdgError when missing or malformed."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise HcdgError(f"--config {path}: file not found") from None
    except IsADirectoryError:
        raise HcdgError(f"--config {path}: is a folder, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise HcdgError(f"--config {path}: not valid TOML ({exc})") from None


#: Keys `identity` adds to a run's recorded config (run.json): derived, not settings.
DERIVED_KEYS = ("effective_ratio", "data_ids_sha256", "store_fingerprint_sha256")
#: The resolved config a run folder keeps, in the form `--config` reads (like timm's args.yaml).
CONFIG_FILE = "config.toml"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """TrainConfig keys from a TOML file, or from a run record (`run.json`: its config and runtime
    keys, without the derived ones; an older record as today's hcdg reads it, `store.schema`), so a
    finished run can be fed back with `--config RUN/run.json`."""
    if str(path).endswith(".json"):
        from hcdg.store.runs import read_run_file

        if not Path(path).is_file():
            raise HcdgError(f"--config {path}: file not found")
        record = read_run_file(path)
        if record.get("stage") != "train" or not isinstance(record.get("config"), dict):
            raise HcdgError(f"--config {path}: not the run.json of a training run")
        runtime = record.get("runtime") if isinstance(record.get("runtime"), dict) else {}
        known = fields_of(TrainConfig)
        return {k: v for k, v in {**record["config"], **runtime}.items() if k in known and k not in DERIVED_KEYS}
    return read_toml(path)


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(cfg: TrainConfig) -> str:
    """`cfg` as a TOML file that `--config` reads back to an equal config (keys by `--help` section;
    unset optional keys, which TOML cannot spell, as comments)."""
    d = to_dict(cfg)
    meta = fields_of(TrainConfig)
    lines = [f"# hcdg train config (TrainConfig): `hcdg train --config FILE` reads it back; flags win."]
    tables = [k for k, v in d.items() if isinstance(v, dict)]
    for section in SECTIONS:
        keys = [k for k in d if k not in tables and meta[k].metadata.get("section") == section]
        if keys:
            lines.append(f"\n# --- {section}")
        for k in keys:
            lines.append(f"# {k} = (not set)" if d[k] is None else f"{k} = {_toml_value(d[k])}")
    for t in tables:
        lines.append(f"\n[{t}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in d[t].items()]
    return "\n".join(lines) + "\n"
