"""Stage two, `hcdg train`: the hand pose network trained from cached CLIP features.

    store (hcdg embed) --load once--> image table (N,D), text table (P,D) on the device
    reader --AugmentedSamples--> crops + heatmaps + targets + store row
    per step: f_clip = mix(f_img[rows], f_txt[prompt ids], r)  (paper §3.3, no CLIP run)
              L = l1 L_heat + l2 L_pose + l3 L_con             (paper §3.4, Eq. 1)
    every N steps: checkpoint (safetensors + JSON); per epoch: validation EPE

`run(config)` is the whole stage. With `nproc > 1` (or under `torchrun`) it trains with
DistributedDataParallel; see `stages/train_dist.py`. The run folder layout, resume and
DDP semantics are described in docs/training.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from hcdg.pipeline.aug_configs import AugConfig, ColorJitter
from hcdg.pipeline.config import ConfigError, check_finite, to_dict
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.precision import COMPILE_BACKENDS, PRECISIONS
from hcdg.pipeline.transforms import GeomAug
from hcdg.store.fingerprint import digest

Mode = Literal["baseline", "ie", "te", "ie+te"]
MODES = ("baseline", "ie", "te", "ie+te")

#: Config keys that do not change what a run computes (paths, devices, cadence, length):
#: a `--resume` may change them. Everything else must match the run folder's record.
#: Run length when neither --steps nor --epochs is given: hand3d trains PoseNet for
#: 30,000 iterations (training_posenet.py `max_iter`); the paper gives no length.
DEFAULT_STEPS = 30_000

#: Runs recorded before a config key existed lack it in run.json: `hcdg.store.runs.config_of`
#: fills in the value such runs had (`store.runs.LEGACY_TRAIN_VALUES`).

RUNTIME_KEYS = frozenset(
    {"store", "root", "out", "resume", "device", "workers", "nproc", "checkpoint_every", "log_every",
     "steps", "epochs", "progress"}
)


#: Named bundles of defaults (`--preset`); flags and TOML keys given explicitly win.
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
    """The TrainConfig values of preset `name` (pending keys only where the field exists)."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return {**PRESETS[name], "preset": name}


@dataclass(frozen=True)
class TrainConfig:
    """Everything `hcdg train` needs. Defaults are the paper's setting where it gives one."""

    # which `PRESETS` bundle the defaults came from (recorded; `--preset`)
    preset: Literal["paper", "authors"] = "paper"
    # --- data -------------------------------------------------------------------------
    store: str | None = None  # feature store from `hcdg embed` (not needed for baseline / aug=normal)
    dataset: Literal["freihand", "rhd"] = "freihand"  # paper §3.4: trained on FreiHAND only
    root: str = ""  # dataset root folder (PROTOCOL.md §3 layout)
    split: str = "training"  # FreiHAND's training split (130,240 images)
    out: str = ""  # run folder
    val_fraction: float = 0.02  # held-out poses for the per-epoch validation EPE (ours)
    # --- method (paper §3.3-3.4, Tables 4-6) --------------------------------------------
    mode: Mode = "ie+te"  # the paper's method: image + text features mixed (Table 4a)
    ratio: float = 0.6  # r in f = r f_img + (1-r) f_txt; §3.3: 0.6 for STB, 0.9 for RHD
    combine: Literal["concat", "sum"] = "concat"  # Table 4b: concatenation is the paper's choice
    lambda_heat: float = 1.0  # l1, §3.4
    lambda_pose: float = 1.0  # l2, §3.4
    lambda_con: float = 0.1  # l3, §3.4 / Table 5
    # Eq. 4's reading (pipeline/losses.py). "paper-literal" = as printed, unbounded below and
    # measured to diverge (docs/model.md, docs/benchmarks.md "learning"); the default is the
    # bounded reading chosen by that measurement.
    con_loss: Literal["paper-literal", "hinge", "contrastive", "paper"] = "contrastive"
    margin: float = 0.5  # margin of the bounded forms; reuses Eq. 4's 0.5 (no source gives one)
    con_negative: Literal["e1", "e2"] = "e1"  # e_neg of Eq. 4: the other sample's e1' (docs/model.md)
    aug: Literal["clip", "normal"] = "clip"  # Table 6: "normal" = six augmentations make the positive
    normalize_features: bool = True  # L2-normalise f_img, f_txt before mixing (paper silent)
    prompt_filter: str = ""  # regex over the store's prompts; "" = all of Table 2 (§3.3)
    # --- optimisation ---------------------------------------------------------------------
    steps: int | None = None  # total optimizer steps (wins over epochs)
    epochs: int | None = None  # total epochs when steps is not given; neither: DEFAULT_STEPS
    batch_size: int = 8  # global batch; paper silent, hand3d's training scripts use 8
    lr: float = 1e-4  # Adam learning rate, §3.4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas, §3.4
    # Steps at which the learning rate is multiplied by lr_drop_factor. The paper gives one
    # constant rate (§3.4): (). hand3d's PoseNet schedule is (10000, 20000) with factor 0.1.
    lr_drops: tuple[int, ...] = ()
    lr_drop_factor: float = 0.1
    # --- network ----------------------------------------------------------------------------
    # What L_pose regresses: "xyz" = hand3d's root-relative, bone-normalised coordinates (paper
    # §3.1); "uvd" = the authors' normalised crop (u/S, v/S, ((z - z_root)/0.15 + 1)/2)
    # (their data/Rhp/Rhp.py:148-152 `fit_joint_img`), scored under `--protocol authors`.
    target: Literal["xyz", "uvd"] = "xyz"
    # "hcdg" = hcdg's network; "authors" = their layout (TF-SAME + NHWC lifting, bias-free head,
    # [0,1] input, their hand-side convention; `pipeline.authors.model_config`, docs/model.md).
    arch: Literal["hcdg", "authors"] = "hcdg"
    width_mult: float = 1.0  # 1.0 = hand3d channel counts (PROTOCOL.md §2)
    input_size: int = 256  # §3.1: 256x256 crops, heatmaps at 1/8 (32x32)
    # L_heat reading (pipeline/heatmap_loss.py; the paper prints only ||h - h_gt||^2, Eq. 2).
    # Chosen by the measured comparison in docs/benchmarks.md "learning" (docs/model.md).
    # sum = Eq. 2 as printed (per-sample ||h - h_gt||_2^2); with pose "sum" the three printed norms
    # keep the scale l1 = l2 = 1, l3 = 0.1 was chosen at. Measured: the one reading tried whose maps
    # beat the mean 2D layout while the pose learns; EPE on par with "mean" (docs/benchmarks.md "Learning").
    heat_reduction: Literal["mean", "sum", "rmse"] = "sum"  # rmse = hand3d training_posenet.py l.58
    pose_reduction: Literal["mean", "sum"] = "sum"  # Eq. 3 as printed: per-sample ||c - c_gt||_2^2
    heat_stages: Literal["all", "last"] = "all"  # all = hand3d / CPM intermediate supervision
    heat_resolution: Literal["grid", "crop"] = "grid"  # crop = hand3d l.46 / authors: upsampled to S
    sigma_px: float = 10.0  # heatmap sigma on the input crop, px: the authors' value (PROTOCOL.md §2)
    # How sigma enters the target: exp(-d^2/(2 sigma^2)) or hand3d's / the authors' exp(-d^2/sigma^2).
    gaussian: Literal["exp-d2-2s2", "exp-d2-s2"] = "exp-d2-2s2"
    crop_scale: float = 1.0  # x hand3d's keypoint crop side (transforms.CropConfig)
    augment: bool = True  # geometric + colour augmentation of the training crops
    geom: GeomAug = field(default_factory=GeomAug)  # scale / rotation / translation (transforms.GeomAug)
    color: ColorJitter = field(default_factory=ColorJitter)  # brightness / contrast / saturation
    normal_aug: AugConfig = field(default_factory=AugConfig)  # Table 6's six augmentations (aug=normal)
    # Where the crop warp, colour jitter and heatmaps of the training input run (issue 13: input
    # prep measured 3.78 ms/sample at 256 px on CPU, ~6 cores per run at 1,000 samples/s). "workers"
    # = the loader workers (PIL, numpy; the historical path); "device" = batched torch ops in the
    # training step (`pipeline.device_aug`), the workers only decode and draw the augmentation.
    augment_on: Literal["workers", "device"] = "workers"
    # --- execution ----------------------------------------------------------------------------
    # Autocast of the network's forward (pipeline/precision.py; docs/training.md "Precision and speed").
    # fp32: the paper's and hand3d's; bf16/fp16 change the rounding, so they are part of the run.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # torch.compile backend of the network ("off" = eager, as measured everywhere else in docs/).
    compile: Literal["off", "inductor", "aot_eager"] = "off"
    channels_last: bool = False  # NHWC weights + input (pipeline.precision.to_channels_last); off = eager default
    device: str = "auto"  # "auto" = cuda when available, else cpu
    seed: int = 0
    checkpoint_every: int = 1000  # steps between checkpoints (and one at the end)
    log_every: int = 50  # steps between metrics rows
    val_every: int = 0  # extra validation every N steps (0 = only per epoch and at the end)
    workers: int = 2  # DataLoader worker processes (0 = load in the training process)
    nproc: int = 1  # local DDP processes (gloo on CPU, nccl on CUDA); torchrun sets its own
    resume: bool = False
    progress: bool = True  # tqdm progress bar on rank 0

    def __post_init__(self) -> None:
        def bad(opt: str, msg: str) -> ConfigError:
            return ConfigError(f"{opt}: {msg}")

        check_finite(self)  # NaN/inf pass every comparison below as False: refuse them first

        if self.mode not in MODES:
            raise bad("--mode", f"expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.ratio <= 1.0:
            raise bad("--ratio", f"expected a value in [0, 1], got {self.ratio!r}")
        if self.aug not in ("clip", "normal"):
            raise bad("--aug", f"expected 'clip' or 'normal', got {self.aug!r}")
        if self.aug == "normal" and self.mode != "ie+te":
            # Table 6's positive is an augmented view: no CLIP feature, so the mode would be ignored.
            raise bad("--aug normal", f"replaces the CLIP feature; use it with --mode ie+te, not --mode {self.mode}")
        if self.preset not in PRESETS:
            raise bad("--preset", f"expected one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.target not in ("xyz", "uvd"):
            raise bad("--target", f"expected 'xyz' or 'uvd', got {self.target!r}")
        if self.arch not in ("hcdg", "authors"):
            raise bad("--arch", f"expected 'hcdg' or 'authors', got {self.arch!r}")
        if self.combine not in ("concat", "sum"):
            raise bad("--combine", f"expected 'concat' or 'sum', got {self.combine!r}")
        if self.con_loss not in ("paper-literal", "hinge", "contrastive", "paper"):
            raise bad("--con-loss", f"expected 'paper-literal', 'hinge' or 'contrastive', got {self.con_loss!r}")
        for opt, val, allowed in (("--heat-reduction", self.heat_reduction, ("mean", "sum", "rmse")),
                                  ("--heat-stages", self.heat_stages, ("all", "last")),
                                  ("--pose-reduction", self.pose_reduction, ("mean", "sum")),
                                  ("--heat-resolution", self.heat_resolution, ("grid", "crop")),
                                  ("--gaussian", self.gaussian, ("exp-d2-2s2", "exp-d2-s2"))):
            if val not in allowed:
                raise bad(opt, f"expected one of {', '.join(allowed)}, got {val!r}")
        if not self.sigma_px > 0:
            raise bad("--sigma-px", f"expected > 0, got {self.sigma_px!r}")
        if self.con_negative not in ("e1", "e2"):
            raise bad("--con-negative", f"expected 'e1' or 'e2', got {self.con_negative!r}")
        if self.augment_on not in ("workers", "device"):
            raise bad("--augment-on", f"expected 'workers' or 'device', got {self.augment_on!r}")
        if self.precision not in PRECISIONS:
            raise bad("--precision", f"expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_BACKENDS:
            raise bad("--compile", f"expected one of {', '.join(COMPILE_BACKENDS)}, got {self.compile!r}")
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


def check_args(cfg: TrainConfig) -> None:
    """The paths a run cannot do without (HcdgError naming the option)."""
    if not cfg.out:
        raise HcdgError("--out: a run folder is required")
    if not cfg.root:
        raise HcdgError("--root: the dataset root folder is required")
    if cfg.uses_clip and not cfg.store:
        raise HcdgError(f"--store: mode {cfg.mode!r} mixes cached CLIP features; give the store from `hcdg embed`")


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the run in `cfg.out`; returns `done.json`'s record.

    With `cfg.nproc > 1` outside torchrun, spawns that many local processes.
    """
    from hcdg.stages import train_dist, train_loop

    check_args(cfg)
    env = train_dist.torchrun_env()
    if env is not None:
        return train_loop.train(cfg, env)
    if cfg.nproc > 1:
        from hcdg.store.runs import run_lock

        with run_lock(cfg.out):  # held by this process for its DDP workers' whole run
            train_loop.preflight(cfg)  # errors surface here, once, before any process starts
            return train_dist.spawn(cfg)
    return train_loop.train(cfg, train_dist.DistEnv(rank=0, world=1, local_rank=0, spawned=False))


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """`cfg` with some fields changed (validated again)."""
    return dataclasses.replace(cfg, **changes)
