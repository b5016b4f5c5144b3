"""Command line: parses and dispatches only (tests call it in-process).

Each command builds its stage's frozen config (TOML file, then flags on top)
and calls that stage's `run(...)`. User errors (`HcdgError`) become one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import click

from hcdg import __version__
from hcdg.pipeline.errors import HcdgError


class _Group(click.Group):
    """A click group that turns `HcdgError` and `OSError` into a one-line error and exit code 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HcdgError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # disk full, permission, not a folder, ...: one line, never a traceback
            from hcdg.pipeline.errors import os_error_line

            raise click.ClickException(os_error_line(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hcdg")
def main() -> None:
    """hcdg: image-free domain generalization via CLIP for 3D hand pose (WACV 2023).

    Typical flow: `hcdg synth` (or real data) -> `hcdg embed` -> `hcdg train`
    -> `hcdg eval` -> `hcdg report`. `hcdg demo` runs it all offline.
    """


# --- data / synth commands (foundation) -------------------------------------

_DATASET_CHOICE = click.Choice(["freihand", "rhd", "stb"])


def _data_source_options(f):
    """Options shared by `data check` and `data show`: which dataset split to open."""
    f = click.option("--hand", type=click.Choice(["auto", "left", "right"]), default=None,
                     help="RHD only: which hand to read; auto (default) = the one with more mask pixels.")(f)
    f = click.option("--camera", "cameras", multiple=True, type=click.Choice(["BB_left", "BB_right", "SK"]),
                     help="STB only: camera view(s), repeatable (default BB_left).")(f)
    f = click.option("--split", default=None,
                     help="Split (default: freihand training, rhd evaluation, stb test = B1Counting+B1Random; "
                          "STB also takes a sequence name such as B1Counting).")(f)
    f = click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str),
                     help="Dataset folder in its real on-disk layout (docs/data.md).")(f)
    f = click.option("--dataset", required=True, type=_DATASET_CHOICE, help="Dataset format to read.")(f)
    return f


def _data_source(dataset, root, split, cameras, hand):
    from hcdg.stages.data import DataSource

    return DataSource(dataset=dataset, root=root, split=split, cameras=tuple(cameras) or None, hand=hand)


@main.group("data")
def data_group() -> None:
    """Inspect real-format datasets (FreiHAND, RHD, STB): validate a root, show a sample."""


@data_group.command("check")
@_data_source_options
@click.option("--decode", type=click.Choice(["ends", "all", "none"]), default="ends", show_default=True,
              help="Images to decode: first and last, every one (finds corrupt files), or none.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def data_check(dataset, root, split, cameras, hand, decode, as_json) -> None:
    """Validate a dataset root and print its counts (exit 1 with one line naming the problem)."""
    import json

    from hcdg.stages import data as stage

    report = stage.run(stage.CheckConfig(source=_data_source(dataset, root, split, cameras, hand), decode=decode))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    extra = ""
    if "n_poses" in report:
        extra = f" ({report['n_poses']} poses x {report['versions']} version(s))"
    elif "sequences" in report:
        extra = f" (sequences {', '.join(report['sequences'])}; cameras {', '.join(report['cameras'])})"
    click.echo(f"{report['dataset']} {report['split']} at {report['root']}: OK, {report['samples']} samples{extra}")
    click.echo(f"files read: {report['files']} ({report['bytes'] / 2**20:.1f} MiB)")
    sizes = ", ".join(f"{w}x{h}" for w, h in report["image_sizes"]) or "-"
    note = (f"; only the first and last of {report['samples']}: `--decode all` finds a corrupt image elsewhere"
            if decode == "ends" and report["samples"] > report["decoded"] else "")
    click.echo(f"images decoded: {report['decoded']} (sizes {sizes}){note}")


@data_group.command("show")
@_data_source_options
@click.option("--index", type=int, default=0, show_default=True, help="Sample position in the split.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write the image with the 2D skeleton drawn to this PNG file.")
def data_show(dataset, root, split, cameras, hand, index, png) -> None:
    """Print one sample as JSON (xyz metres FreiHAND order camera frame, uv px, K, side, root, ...)."""
    import json

    from hcdg.stages import data as stage

    out = stage.run(stage.ShowConfig(source=_data_source(dataset, root, split, cameras, hand), index=index, png=png))
    click.echo(json.dumps(out))


@main.command("synth")
@click.option("--format", "fmt", required=True, type=_DATASET_CHOICE,
              help="On-disk layout to write: freihand (source), rhd or stb (targets).")
@click.option("--out", required=True, type=click.Path(path_type=str),
              help="Dataset root to create (written to a temp folder, renamed into place at the end).")
@click.option("--n", "n", type=int, default=None,
              help="freihand: training poses (4 images each; default 256); rhd: evaluation images "
                   "(default 256); stb: frames per sequence, B1Counting and B1Random (default 128).")
@click.option("--n-other", type=int, default=None,
              help="freihand: evaluation poses (default 64); rhd: training images (default 64); stb: unused.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed and sizes give the same bytes.")
@click.option("--style", default=None,
              help="source | mixed-target | HAND_COLOUR:COLOUR[:room|background] in Table 2 words, "
                   "'*' = drawn per image (e.g. 'black:dotted:room', 'peach:*'). "
                   "Default: freihand source, rhd/stb mixed-target.")
@click.option("--views", default="any", show_default=True,
              help="Hand orientations: any (uniform) | dorsal (back of the hand towards the camera, "
                   "any in-plane roll, +-25 deg tilts: depth sign readable, so short runs learn).")
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing, different dataset at --out.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def synth_cmd(fmt, out, n, n_other, seed, style, views, overwrite, progress) -> None:
    """Write synthetic hands in a real dataset layout (the offline default; docs/synthetic.md)."""
    from hcdg.stages import synth as stage

    cfg = stage.SynthConfig(format=fmt, out=out, n=n, n_other=n_other, seed=seed, style=style, overwrite=overwrite,
                            views=views)
    report = stage.run(cfg, progress=progress)
    if report["skipped"]:
        click.echo(f"{report['root']}: already holds this {fmt} dataset (seed {seed}, style {report['style']}); nothing to do")
    else:
        click.echo(f"wrote {report['images']} {fmt} images to {report['root']} "
                   f"(style {report['style']}, seed {seed}) in {report['seconds']:.1f} s")


# --- prompts / embed / store commands (stage one) ---------------------------


@main.command("prompts")
@click.option("--store", type=click.Path(path_type=str), default=None,
              help="Print the prompt list this feature store holds (default: the paper's Table 2).")
@click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Print this prompt list instead (one prompt per line; ids = line order).")
@click.option("--prompt-filter", default=None, help="Regular expression: print only the prompts it matches.")
def prompts_cmd(store, prompt_file, prompt_filter) -> None:
    """Print prompts as `id<TAB>text` lines (Table 2: 3,920 prompts, ids 0..3919)."""
    from hcdg.stages import store_cmds

    click.echo("\n".join(store_cmds.prompt_lines(store, prompt_file, prompt_filter)))


@main.command("embed")
@click.option("--dataset", required=True, type=click.Choice(["freihand", "rhd", "stb"]),
              help="Dataset format to read (synthetic data from `hcdg synth` uses the same formats).")
@click.option("--root", required=True, type=click.Path(path_type=str), help="Dataset root folder.")
@click.option("--split", default=None, help="Split (default: freihand training, rhd evaluation, stb test).")
@click.option("--camera", "cameras", multiple=True, type=click.Choice(["BB_left", "BB_right", "SK"]),
              help="STB only: camera view(s), repeatable (default BB_left).")
@click.option("--store", required=True, type=click.Path(path_type=str),
              help="Feature store: a Zarr folder, or one HDF5 file when the path ends in .h5.")
@click.option("--key", default=None, help="Split key in the store (default: <dataset>/<split>).")
@click.option("--model", default=None, help="open_clip model, hcdg-tiny, local-dir:DIR or hf-hub:ORG/REPO "
              "(default: an existing --store's recorded encoder, else ViT-B-32, paper §3.2).")
@click.option("--pretrained", default=None, help="Weights: an open_clip tag (default openai), TAG=FILE, a weights "
              "file, or none (random weights from --seed; hcdg-tiny's default).")
@click.option("--clip", default=None, type=click.Path(path_type=str),
              help="A synthetic-CLIP folder from `hcdg clip train` (instead of --model/--pretrained).")
@click.option("--seed", type=int, default=None, help="Seed of random weights (default: the store's, else 0).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default=None,
              help="Compute precision (default auto: fp16 on CUDA, fp32 on CPU).")
@click.option("--device", default=None, help="auto (default: cuda if available), cpu, cuda, cuda:N.")
@click.option("--batch-size", type=int, default=None, help="Images per forward (default 256).")
@click.option("--workers", type=int, default=None, help="DataLoader processes decoding images (default: CPUs - 1, at most 16; 0 = main process).")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default=None,
              help="Stored dtype of the features (default float16).")
@click.option("--chunk-rows", type=int, default=None,
              help="Rows per chunk, the unit of resume and sharding (default 1024; used when a split is created).")
@click.option("--shard", default=None, help="i/n: embed only the i-th of n chunk ranges (default: all, or "
              "RANK/WORLD_SIZE under torchrun).")
@click.option("--limit", type=int, default=None, help="Embed only the first N images of the split.")
@click.option("--skip-corrupt", is_flag=True, default=None,
              help="Record unreadable images as skipped rows instead of stopping.")
@click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Own prompt list, one per line (default: the paper's Table 2).")
@click.option("--prompt-filter", default=None, help="Regular expression: keep only matching prompts.")
@click.option("--progress/--no-progress", default=None, help="Progress bar with images/s (default on).")
def embed_cmd(cameras, **flags) -> None:
    """Stage one: frozen CLIP features of every image of a split and of all prompts, into a store.

    \b
    Resumable (rerun the same command after a kill), shardable (--shard i/n).
    Example (offline demo with the tiny random model):
    hcdg embed --dataset freihand --root SYNTH/freihand --store feats.zarr --model hcdg-tiny
    """
    from hcdg.pipeline.config import from_dict
    from hcdg.stages import embed as stage

    cfg = from_dict(stage.EmbedConfig, {k: v for k, v in {**flags, "cameras": cameras or None}.items()
                                        if v is not None}, where="flags")
    summary = stage.run(cfg)
    click.echo(summary.line())


@main.group("store")
def store_group() -> None:
    """Inspect and check feature stores written by `hcdg embed`."""


@store_group.command("info")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (counts, splits, fingerprint).")
def store_info_cmd(path, as_json) -> None:
    """Print a store's metadata, fingerprint and completeness."""
    from hcdg.stages import store_cmds

    click.echo(store_cmds.info(path, as_json))


@store_group.command("verify")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--sample", type=int, default=16, show_default=True, help="Random rows re-encoded per table.")
@click.option("--split", "split_key", default=None, help="Only this split key (default: every split).")
@click.option("--root", default=None, help="Dataset root, when it moved since `hcdg embed`.")
@click.option("--pretrained", default=None, help="Weights file, when it moved since `hcdg embed`.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed drawing the rows.")
@click.option("--checksums-only", is_flag=True, default=False,
              help="Only check every chunk against its CRC32 (needs neither the encoder nor the dataset).")
def store_verify_cmd(path, sample, split_key, root, pretrained, device, seed, checksums_only) -> None:
    """Check every chunk's CRC32, then re-encode random rows with the recorded encoder and compare."""
    from hcdg.stages import store_cmds

    report = store_cmds.verify(store_cmds.VerifyConfig(store=path, sample=sample, split=split_key, root=root,
                                                       pretrained=pretrained, device=device, seed=seed,
                                                       checksums_only=checksums_only))
    click.echo(store_cmds.verify_text(report))
    if not report["ok"]:
        raise HcdgError(store_cmds.verify_failure(report))

# --- train / sweep commands (stage two) -------------------------------------

_FLOAT_LIST = "comma-separated numbers, e.g. 0.4,0.6,0.8,0.9"


def _read_toml(path: str) -> dict:
    """A TOML config file as a dict; a clear one-line error when missing or malformed."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise HcdgError(f"--config {path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise HcdgError(f"--config {path}: not valid TOML ({exc})") from None


def _default(name: str) -> str:
    """TrainConfig's default of field `name`, for help strings (never restate it as a literal)."""
    import dataclasses

    from hcdg.stages.train import TrainConfig

    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    return str(f.default if f.default is not dataclasses.MISSING else f.default_factory())


def _sweep_default(name: str):
    """SweepConfig's default of field `name`."""
    import dataclasses

    from hcdg.stages.sweep import SweepConfig

    return {f.name: f.default for f in dataclasses.fields(SweepConfig)}[name]


def _default_lr_drops() -> tuple:
    from hcdg.stages.train import TrainConfig

    return TrainConfig().lr_drops


def _default_steps() -> str:
    from hcdg.stages.train import DEFAULT_STEPS

    return f"{DEFAULT_STEPS:,}"


def _preset_note(name: str) -> str:
    """', authors preset: VALUE' when the authors preset sets field `name`."""
    from hcdg.stages.train import preset_values

    v = preset_values("authors")
    return f"; --preset authors: {v[name]}" if name in v else ""


def _train_options(sweep: bool):
    """The `hcdg train` flags (shared by `hcdg sweep`, whose grid axes take comma lists)."""
    axis = (lambda name, help_: click.option(name, default=None, help=f"{help_} Sweep axis: {_FLOAT_LIST}."))
    opts = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="TOML file with TrainConfig keys; flags given on the command line win."),
        click.option("--preset", type=click.Choice(["paper", "authors"]), default=None,
                     help="Bundle of defaults under the TOML file and the flags: paper (TrainConfig's "
                          f"defaults, default {_default('preset')}) or authors (their released recipe; "
                          "docs/training.md, Presets)."),
        click.option("--store", default=None, help="Feature store from `hcdg embed` (not needed for --mode baseline or --aug normal)."),
        click.option("--dataset", type=click.Choice(["freihand", "rhd"]), default=None, help=f"Training dataset (paper: freihand). Default {_default('dataset')}."),
        click.option("--root", default=None, help="Dataset root folder (real on-disk layout, or `hcdg synth` output)."),
        click.option("--split", default=None, help=f"Dataset split to train on. Default {_default('split')}."),
        click.option("--out", required=True,
                     help="Sweep folder (one run folder per point)." if sweep else "Run folder (created; refuses one holding a different run)."),
        click.option("--combine", default=None, help="How Branch2 joins the CLIP feature: concat (paper) or sum (Table 4b)."
                     + (" Sweep axis: comma list." if sweep else ""))
        if sweep else click.option("--combine", type=click.Choice(["concat", "sum"]), default=None,
                                    help="How Branch2 joins the CLIP feature: concat (paper) or sum (Table 4b)."),
        click.option("--mode", default=None, help="baseline | ie | te | ie+te (Table 4). Sweep axis: comma list.")
        if sweep else click.option("--mode", type=click.Choice(["baseline", "ie", "te", "ie+te"]), default=None,
                                    help=f"baseline (no Branch2) | ie (r=1) | te (r=0) | ie+te (mix at --ratio). Default {_default('mode')}."),
        axis("--ratio", "Image weight r in f = r f_img + (1-r) f_txt, in [0, 1] (paper: 0.6 STB, 0.9 RHD).")
        if sweep else click.option("--ratio", type=float, default=None, help=f"Image weight r in f = r f_img + (1-r) f_txt, in [0, 1] (paper: 0.6 STB, 0.9 RHD). Default {_default('ratio')}{_preset_note('ratio')}."),
        axis("--lambda-con", "Weight l3 of L_con (Table 5: 1, 0.1, 0.01, 0.001).")
        if sweep else click.option("--lambda-con", type=float, default=None, help=f"Weight l3 of L_con (paper §3.4). Default {_default('lambda_con')}."),
        click.option("--con-loss", default=None,
                     help="L_con form: contrastive (d_pos + max(0, m - d_neg), Hadsell 2006) | hinge "
                          "(max(0, d_pos - d_neg + m)) | paper-literal (Eq. 4 as printed: UNBOUNDED below, diverges; "
                          f"docs/model.md). Default {_default('con_loss')}."
                     + (" Sweep axis: comma list." if sweep else "")),
        click.option("--heat-reduction", type=click.Choice(["mean", "sum", "rmse"]), default=None,
                     help="L_heat reduction: mean (element MSE) | sum (per-sample ||.||^2, Eq. 2 as printed) | "
                          f"rmse (hand3d's per-keypoint RMSE). Default {_default('heat_reduction')}."),
        click.option("--pose-reduction", type=click.Choice(["mean", "sum"]), default=None,
                     help="L_pose reduction: mean (element MSE) | sum (per-sample ||.||^2, Eq. 3 as printed). "
                          f"Default {_default('pose_reduction')}."),
        click.option("--heat-stages", type=click.Choice(["all", "last"]), default=None,
                     help=f"CPM stages L_heat supervises: all (hand3d) | last (the authors). Default {_default('heat_stages')}."),
        click.option("--heat-resolution", type=click.Choice(["grid", "crop"]), default=None,
                     help="Where L_heat compares maps: grid (S/8 heatmaps) | crop (upsampled to the S crop, hand3d "
                          f"and the authors). Default {_default('heat_resolution')}."),
        click.option("--gaussian", type=click.Choice(["exp-d2-2s2", "exp-d2-s2"]), default=None,
                     help="Target Gaussian: exp(-d^2/(2 sigma^2)) | exp(-d^2/sigma^2) (hand3d, the authors). "
                          f"Default {_default('gaussian')}."),
        click.option("--sigma-px", type=float, default=None,
                     help=f"Sigma of the target Gaussian in crop pixels (authors: 10 at 256). Default {_default('sigma_px')}."),
        click.option("--aug", default=None, help=f"Positive view: clip | normal (Table 6: six augmentations). Default {_default('aug')}."
                     + (" Sweep axis: comma list." if sweep else "")),
        click.option("--lambda-heat", type=float, default=None, help=f"Weight l1 of L_heat (paper §3.4). Default {_default('lambda_heat')}."),
        click.option("--lambda-pose", type=float, default=None, help=f"Weight l2 of L_pose (paper §3.4). Default {_default('lambda_pose')}."),
        click.option("--margin", type=float, default=None,
                     help=f"Margin m of --con-loss hinge/contrastive. Default {_default('margin')}."),
        click.option("--con-negative", default=None,
                     help="Eq. 4's e_neg: e1 (the other sample's image-only encoding) | e2 (its CLIP-enriched one). "
                          f"Default {_default('con_negative')}."),
        click.option("--normalize-features/--no-normalize-features", default=None,
                     help=f"L2-normalise image and text features before mixing (the paper is silent). Default {_default('normalize_features')}."),
        click.option("--prompt-filter", default=None, help="Regular expression: draw only the store's prompts it matches."),
        click.option("--steps", type=int, default=None, help="Total optimizer steps of the run (--resume continues to it)."),
        click.option("--epochs", type=int, default=None, help=f"Total epochs, when --steps is not given (neither: {_default_steps()} steps){_preset_note('epochs')}."),
        click.option("--batch-size", type=int, default=None, help=f"Global batch size, split over --nproc. Default {_default('batch_size')}{_preset_note('batch_size')}."),
        click.option("--lr", type=float, default=None, help=f"Adam learning rate (paper §3.4). Default {_default('lr')}."),
        click.option("--lr-drops", default=None,
                     help="Comma-separated steps at which the learning rate drops by --lr-drop-factor "
                          "(none: constant, paper §3.4; hand3d: 10000,20000). Default "
                          f"{','.join(map(str, _default_lr_drops())) or 'none'}."),
        click.option("--lr-drop-factor", type=float, default=None, help=f"Learning-rate multiplier at each drop. Default {_default('lr_drop_factor')}."),
        click.option("--target", type=click.Choice(["xyz", "uvd"]), default=None,
                     help="What L_pose regresses: xyz (hand3d's root-relative, bone-normalised) or uvd (the "
                          "authors' normalised crop uv + depth; scored with `hcdg eval --protocol authors`). "
                          f"Default {_default('target')}{_preset_note('target')}."),
        click.option("--arch", type=click.Choice(["hcdg", "authors"]), default=None,
                     help="Network layout: hcdg or authors (TF-SAME + NHWC lifting, bias-free head, [0,1] input, "
                          f"their hand side; docs/model.md). Default {_default('arch')}{_preset_note('arch')}."),
        click.option("--width-mult", type=float, default=None, help=f"Channel multiplier of the network (1.0 = paper). Default {_default('width_mult')}."),
        click.option("--input-size", type=int, default=None, help=f"Crop side in pixels, multiple of 8 (256 = paper). Default {_default('input_size')}."),
        click.option("--augment/--no-augment", default=None, help=f"Geometric + colour augmentation of the crops. Default {_default('augment')}."),
        click.option("--augment-on", type=click.Choice(["workers", "device"]), default=None,
                     help="Where crop warp, colour jitter and heatmaps run: workers (loader processes) or device "
                          f"(batched on the training device; docs/training.md). Default {_default('augment_on')}."),
        click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None, help=f"fp32 or bf16 autocast. Default {_default('precision')}."),
        click.option("--device", default=None, help=f"auto (cuda if available), cpu, cuda, cuda:N. Default {_default('device')}."),
        click.option("--seed", default=None, help="Seeds of initialisation, data order, augmentation, prompts "
                     f"(default {_default('seed')}). Sweep axis: comma list of integers, e.g. 0,1,2 (repeats every point).")
        if sweep else click.option("--seed", type=int, default=None, help="Seed of initialisation, data order, "
                                   f"augmentation, prompts (default {_default('seed')})."),
        click.option("--checkpoint-every", type=int, default=None, help=f"Steps between checkpoints. Default {_default('checkpoint_every')}."),
        click.option("--log-every", type=int, default=None, help=f"Steps between metrics rows. Default {_default('log_every')}."),
        click.option("--val-every", type=int, default=None, help=f"Extra validation every N steps (0: per epoch + at the end). Default {_default('val_every')}."),
        click.option("--val-fraction", type=float, default=None, help=f"Fraction of poses held out for validation. Default {_default('val_fraction')}."),
        click.option("--workers", type=int, default=None, help=f"DataLoader worker processes. Default {_default('workers')}."),
        click.option("--nproc", type=int, default=None, help="Local DDP processes (gloo on CPU, nccl on CUDA). Under torchrun: ignored."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (shown on a terminal)."),
    ]

    def deco(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def _train_config(config_file, flags: dict, where: str = "flags"):
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages.train import TrainConfig

    from hcdg.stages.train import preset_values

    base = _read_toml(config_file) if config_file else {}
    if flags.get("lr_drops") is not None:
        flags = {**flags, "lr_drops": _axis(flags["lr_drops"], int, "--lr-drops")}
    preset = flags.pop("preset", None) or base.get("preset") or "paper"
    if preset not in ("paper", "authors"):
        raise HcdgError(f"{config_file}: preset: expected 'paper' or 'authors', got {preset!r}")
    return from_dict(TrainConfig, merge(merge(preset_values(preset), base), flags), where=config_file or where)


@main.command("train")
@_train_options(sweep=False)
@click.option("--resume", is_flag=True, default=False, help="Continue the run in --out from its newest checkpoint.")
def train_cmd(config_file, resume, **flags) -> None:
    """Train the hand pose network from cached CLIP features (stage two).

    \b
    Example (paper setting, r = 0.6, l3 = 0.1):
    hcdg train --store STORE --dataset freihand --root FREIHAND --out runs/r0.6 --ratio 0.6
    """
    from hcdg.stages import train as stage

    cfg = _train_config(config_file, {**flags, "resume": resume or None})
    done = stage.run(cfg)

    def num(key: str, unit: str) -> str:
        v = done.get(key)
        return "n/a" if v is None else f"{v:.2f} {unit}"

    click.echo(
        f"trained {done['total_steps']} steps -> {cfg.out}: val EPE {num('val_epe_mm', 'mm')} "
        f"(mean pose {num('val_mean_pose_epe_mm', 'mm')}), 2D {num('val_2d_px', 'px')} "
        f"(mean layout {num('val_mean_2d_px', 'px')})"
    )


def _axis(value, conv, name):
    if value is None:
        return ()
    try:
        return tuple(conv(v.strip()) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise HcdgError(f"{name}: expected {_FLOAT_LIST}, got {value!r}") from None


@main.command("sweep")
@_train_options(sweep=True)
@click.option("--shared-batches/--separate-batches", default=None,
              help="Train the points that see the same batches (same seed, batch size, augmentation, crop) in "
                   "one process from one data loader, each batch decoded once; results equal solo runs "
                   "(docs/training.md, Sweeps). Default: "
                   + ("shared" if _sweep_default("shared_batches") else "separate") + ".")
def sweep_cmd(config_file, out, mode, aug, combine, ratio, lambda_con, con_loss, seed, shared_batches,
              **flags) -> None:
    """Run a grid of training runs against one store (one run folder per point, resumable).

    \b
    Example (Table 4a ratios):
    hcdg sweep --ratio 0.4,0.6,0.8,0.9 --store STORE --root FREIHAND --out sweeps/ratio
    Three seeds of each point (the report then shows mean ± std (n) and paired CIs):
    hcdg sweep --mode baseline,ie+te --seed 0,1,2 --store STORE --root FREIHAND --out sweeps/seeds
    """
    from hcdg.stages import sweep as stage

    base = _train_config(config_file, {**flags, "out": out})
    sweep = stage.SweepConfig(
        out=out, base=base, mode=_axis(mode, str, "--mode"), aug=_axis(aug, str, "--aug"),
        combine=_axis(combine, str, "--combine"), ratio=_axis(ratio, float, "--ratio"),
        lambda_con=_axis(lambda_con, float, "--lambda-con"), con_loss=_axis(con_loss, str, "--con-loss"),
        seed=_axis(seed, int, "--seed"),
        **({} if shared_batches is None else {"shared_batches": shared_batches}),
    )
    table = stage.run(sweep, echo=click.echo)
    click.echo(table.drop(columns=["run_dir"]).to_string(index=False))


# --- import ------------------------------------------------------------------


@main.group("import")
def import_group() -> None:
    """Bring foreign networks into hcdg run folders (usable by eval, report and hcdg.load_model)."""


@import_group.command("authors")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder to create (must not exist, or be empty).")
def import_authors_cmd(checkpoint, out) -> None:
    """The paper authors' released checkpoint (snapshot_45.pth.tar) -> an hcdg run folder.

    Read with torch.load(weights_only=True, mmap=True): a pickle holding anything but tensors
    is refused. CLIP, HandSegNet and their unused layers are left out. Evaluate it with
    `hcdg eval --run OUT --protocol authors --crops seed-boxes --boxes ...`.
    """
    from hcdg.stages import import_authors as stage

    res = stage.run(stage.ImportConfig(checkpoint=checkpoint, out=out), echo=click.echo)
    click.echo(f"imported {res['n_tensors']} tensors (Branch2: {'yes' if res['branch2'] else 'no'}) from "
               f"{checkpoint} (sha256 {res['sha256'][:16]}...) -> {res['out']}")
    if res["unused"]:
        click.echo(f"note: {len(res['unused'])} other key(s) not used, e.g. {res['unused'][0]}")


# --- eval / report / viz / demo commands -------------------------------------


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Report folder: report.html, report.md, figures/, tables/ (created; may hold an earlier report).")
@click.option("--protocol", type=click.Choice(["authors", "2.5d-gtroot-gtbone", "rr-gtscale", "pa", "pa-proper"]), default=None,
              help="Protocol of the paper-shaped tables (default: authors, the paper's, when a run has results "
                   "under it, else 2.5d-gtroot-gtbone; all appear in the full table).")
@click.option("--root", type=click.Choice(["wrist", "palm"]), default=None,
              help="STB root handling in the paper-shaped tables (default wrist).")
@click.option("--joints", type=click.Choice(["all", "visible"]), default=None,
              help="Joint set of the paper-shaped tables (default all 21).")
@click.option("--title", default=None, help="Page title.")
@click.option("--figure", "figures", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              help="Extra PNG to show (repeatable), e.g. `hcdg viz` output; fig3*/fig4*.png in a figures/ folder "
                   "inside or beside a run folder are found without it.")
def report_cmd(runs, out, protocol, root, joints, title, figures) -> None:
    """Write the results report (HTML + Markdown + CSV/parquet tables) for RUN_DIR... (run or sweep folders)."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import report as stage

    flags = {"runs": list(runs), "out": out, "protocol": protocol, "root": root, "joints": joints, "title": title,
             "figures": list(figures) or None}
    res = stage.run(from_dict(stage.ReportConfig, merge({}, flags), where="flags"))
    for w in res["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"report of {res['runs']} run(s): {res['html']} (Markdown: {res['markdown']})")


@main.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Training run folder (from `hcdg train`): its run.json config rebuilds the network.")
@click.option("--target", required=True, type=click.Choice(["stb", "rhd", "freihand"]),
              help="Dataset to evaluate on (paper §4: stb and rhd).")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str),
              help="The target dataset's root folder, in its real on-disk layout (docs/data.md).")
@click.option("--split", default=None,
              help="Split (default: the test split: stb test = B1Counting+B1Random, rhd evaluation, freihand evaluation).")
@click.option("--checkpoint", default=None,
              help="Weights: default the finished model (model.safetensors), else the newest checkpoint; "
                   "'final', 'latest', or a checkpoint folder RUN/checkpoints/step-N.")
@click.option("--batch-size", type=int, default=None, help="Images per forward pass (default 32; results do not depend on it).")
@click.option("--device", default=None, help="auto (default: cuda if available), cpu, cuda, cuda:N.")
@click.option("--protocol", "protocols", multiple=True,
              type=click.Choice(["authors", "2.5d-gtroot-gtbone", "rr-gtscale", "pa", "pa-proper"]),
              help="Protocol(s) to compute, repeatable (default: all that apply to the run's output: authors for "
                   "uvd networks, the other four for xyz networks; PROTOCOL.md §4, docs/results.md).")
@click.option("--crops", type=click.Choice(["gt", "seed-boxes"]), default=None,
              help="Crop boxes: gt (default; hand3d's box from the ground-truth keypoints) or seed-boxes "
                   "(the paper authors' released boxes, given with --boxes, cut as their test code cuts them).")
@click.option("--boxes", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="With --crops seed-boxes: .npy of [x, y, w, h] per test frame (STB_bbox.npy (3000,4), Rhp_bbox.npy (2725,4)).")
@click.option("--decoder", type=click.Choice(["soft-argmax", "argmax"]), default=None,
              help="Heatmap -> 2D decoder used by 2.5d-gtroot-gtbone (default soft-argmax).")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N samples (quick checks).")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes for decoding and cropping (default 0).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default on).")
def eval_cmd(run_dir, target, root, split, checkpoint, batch_size, device, protocols, crops, boxes, decoder,
             limit, workers, progress) -> None:
    """Evaluate a trained run on STB / RHD / FreiHAND under every protocol; write RUN/eval/<target>.parquet."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import eval as stage

    flags = {"run": run_dir, "target": target, "root": root, "split": split, "checkpoint": checkpoint,
             "batch_size": batch_size, "device": device, "protocols": list(protocols) or None, "crops": crops,
             "boxes": boxes, "decoder": decoder, "limit": limit, "workers": workers, "progress": progress}
    res = stage.run(from_dict(stage.EvalConfig, merge({}, flags), where="flags"))
    click.echo(f"weights: {res['weights']} (step {res['checkpoint_step']})")
    if res["note"]:
        click.echo(f"note: {res['note']}")
    click.echo(stage.format_summary(res["summary_frame"]))
    if res["random_weights"]:
        click.echo("note: this run was trained with RANDOM-weight CLIP features; they carry no meaning.")
    click.echo(f"{res['n_samples']} samples -> {res['results']} (summary: {res['summary']})")


def _field_default(cls, name: str) -> str:
    """The default of field `name` of the frozen config `cls`, for help strings."""
    import dataclasses

    return str({f.name: f for f in dataclasses.fields(cls)}[name].default)


def _predict_default(name: str) -> str:
    from hcdg.stages.predict import PredictConfig

    return _field_default(PredictConfig, name)


@main.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (`hcdg train` or `hcdg import authors`).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder to create (new or empty): predictions.parquet, predictions.json, overlays/.")
@click.option("--boxes", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Hand boxes [x, y, w, h] in image pixels: .json keyed by file name (value a box, or "
                   "{box, side, K}) or an (N, 4) .npy in input order. Default: the whole image is the crop.")
@click.option("--side", type=click.Choice(["auto", "left", "right"]), default=None,
              help=f"Hand side; left hands are mirrored in and out. auto = the boxes file's per-image side, "
              f"else right (default {_predict_default('side')}).")
@click.option("--whole-image", type=click.Choice(["pad", "center"]), default=None,
              help="Crop of an image without a box: pad (whole image, padded to a square) or center "
              f"(its central square) (default {_predict_default('whole_image')}).")
@click.option("--bone-length-mm", type=float, default=None,
              help="Middle MCP->PIP bone length: adds root-relative millimetres (and with --K the camera frame).")
@click.option("--K", "K", default=None,
              help="Intrinsics of the images: fx,fy,cx,cy or a .json/.npy 3x3 file; with --bone-length-mm adds "
                   "camera-frame millimetres.")
@click.option("--checkpoint", default=None, help="Weights, as `hcdg eval --checkpoint` (default the finished model).")
@click.option("--device", default=None, help=f"auto, cpu, cuda, cuda:N (default {_predict_default('device')}).")
@click.option("--batch-size", type=int, default=None,
              help=f"Crops per forward pass (default {_predict_default('batch_size')}).")
@click.option("--decoder", type=click.Choice(["soft-argmax", "argmax"]), default=None,
              help=f"Heatmap -> 2D decoder (default {_predict_default('decoder')}).")
@click.option("--plot3d", is_flag=True, default=None, help="Also draw a 3D view per image (overlays/NAME.3d.png).")
@click.option("--overwrite", is_flag=True, default=None, help="Replace an earlier `hcdg predict` output in --out.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default on).")
def predict_cmd(inputs, run_dir, **flags) -> None:
    """Predict 2D + 3D hand joints on IMAGE_OR_FOLDER... (JPEG/PNG, any size); write overlays and a table.

    Bad images are skipped with one line each (and listed in predictions.json).
    """
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import predict as stage

    cfg = from_dict(stage.PredictConfig, merge({"run": run_dir, "inputs": tuple(inputs)}, flags), where="flags")
    res = stage.run(cfg, echo=click.echo)
    skipped = f"; skipped {len(res['skipped'])}: " + ", ".join(s.split(":")[0][8:] for s in res["skipped"]) \
        if res["skipped"] else ""
    click.echo(f"{res['n_images']} image(s) -> {res['out']} (predictions.parquet, predictions.json, overlays/){skipped}")


@main.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (`hcdg train` or `hcdg import authors`).")
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "torchscript"]),
              help="onnx (needs `pip install hcdg[export]`) or torchscript.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="File to write; its JSON sidecar is written beside it as OUT.json.")
@click.option("--input-size", type=int, default=None,
              help="Crop side the graph takes (default the network's; another size adds a resize in the graph).")
@click.option("--dynamic-batch", is_flag=True, default=None, help="ONNX: any batch size (default batch 1).")
@click.option("--checkpoint", default=None, help="Weights, as `hcdg eval --checkpoint` (default the finished model).")
@click.option("--check/--no-check", default=None, help="Compare the file with the eager model (default on).")
def export_cmd(run_dir, fmt, **flags) -> None:
    """Export Branch1 + lifting (what runs at test time) with the input normalisation inside the graph.

    Input: uint8 RGB crops (B, S, S, 3) of right hands. Outputs and units: see the sidecar.
    """
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import export as stage

    cfg = from_dict(stage.ExportConfig, merge({"run": run_dir, "format": fmt}, flags), where="flags")
    res = stage.run(cfg)
    chk = res["check"]
    if "max_abs_diff" in chk:
        note = (f"checked against the eager model on batch {', '.join(map(str, chk['batches']))}: "
                f"max |diff| {max(chk['max_abs_diff']):.1e}")
    else:
        note = f"not checked: {chk['skipped']}"
    click.echo(f"{res['out']} ({note}); sidecar {res['sidecar']}")


@main.group("viz")
def viz_group() -> None:
    """Figures from a feature store: t-SNE of features (paper Fig. 3), retrieval by a mixed feature (Fig. 4)."""


@viz_group.command("tsne")
@click.option("--store", required=True, type=click.Path(path_type=str), help="Feature store from `hcdg embed`.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="PNG to write (the 2D points go to the same name with .csv).")
@click.option("--n", type=int, default=None, help="Points per group (aug and each split), subsampled with --seed (default 500).")
@click.option("--seed", type=int, default=None, help="Seed of subsampling, prompt draw and t-SNE (default 0).")
@click.option("--source", default=None, help="Source split key for 'aug' (default: the store's first freihand/* split).")
@click.option("--perplexity", type=float, default=None, help="t-SNE perplexity (default 30, capped for small sets).")
@click.option("--normalize/--no-normalize", default=None,
              help="L2-normalise features before mixing and t-SNE (default on; off = the printed raw sum).")
def viz_tsne_cmd(store, out, n, seed, source, perplexity, normalize) -> None:
    """Figure 3: t-SNE of 0.5*(f_img + f_txt) of source images ('aug') and the image features of every split."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import viz as stage

    flags = {"store": store, "out": out, "n": n, "seed": seed, "source": source, "perplexity": perplexity,
             "normalize": normalize}
    res = stage.tsne(from_dict(stage.TsneConfig, merge({}, flags), where="flags"))
    groups = ", ".join(f"{g} {k}" for g, k in res["groups"].items())
    click.echo(f"wrote {res['png']} ({groups}; points in {res['csv']})")


@viz_group.command("retrieve")
@click.option("--store", required=True, type=click.Path(path_type=str), help="Feature store from `hcdg embed`.")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Root of the source dataset (for the images).")
@click.option("--index", type=int, required=True, help="Row of the query image in the source split (reader order).")
@click.option("--prompt", required=True, help="Prompt text; must be one of the store's prompts (`hcdg prompts --store`).")
@click.option("--ratio", type=float, default=None, help="Image weight r in r*f_img + (1-r)*f_txt (default 0.6).")
@click.option("--top", type=int, default=None, help="How many ranked images to draw (default 8).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=str), help="PNG to write.")
@click.option("--dataset", default=None, help="Source dataset of the split (default freihand).")
@click.option("--split", default=None, help="Source split (default training).")
@click.option("--normalize/--no-normalize", default=None, help="L2-normalise features before mixing (default on).")
def viz_retrieve_cmd(store, root, index, prompt, ratio, top, out, dataset, split, normalize) -> None:
    """Figure 4: rank the other source images by cosine similarity to one image's feature mixed with a prompt's."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import viz as stage

    flags = {"store": store, "root": root, "index": index, "prompt": prompt, "ratio": ratio, "top": top,
             "out": out, "dataset": dataset, "split": split, "normalize": normalize}
    res = stage.retrieve(from_dict(stage.RetrieveConfig, merge({}, flags), where="flags"))
    click.echo(f"query {res['query_id']} + prompt #{res['prompt_id']}:")
    for line in stage.ranking_lines(res):
        click.echo(line)
    click.echo(f"wrote {res['png']}")


# --- synthetic CLIP (docs/synthetic_clip.md) --------------------------------

_CLIP_HELP = {
    "architecture": "open_clip model config to train (hcdg's own: pipeline/clip_configs/).",
    "n_images": "Rendered corpus images.",
    "heldout": "Held-out images of the zero-shot check.",
    "steps": "Optimiser steps.",
    "batch_size": "Image-caption pairs per step (the contrastive negatives).",
    "lr": "AdamW peak learning rate (warm-up, then cosine).",
    "weight_decay": "AdamW weight decay.",
    "warmup": "Linear warm-up steps.",
    "corpus_seed": "Seed of the corpus (must differ from every pose set's seed).",
    "heldout_seed": "Seed of the held-out zero-shot images.",
    "seed": "Seed of the initial weights, batch order and captions.",
    "checkpoint_every": "Steps between resumable states (in .OUT.partial/).",
}


def _clip_train_options(f):
    import dataclasses

    from hcdg.stages.clip_train import ClipTrainConfig

    fields = {x.name: x for x in dataclasses.fields(ClipTrainConfig)}
    for name in reversed(list(_CLIP_HELP)):
        fld = fields[name]
        f = click.option(f"--{name.replace('_', '-')}", type=type(fld.default), default=None,
                         help=f"{_CLIP_HELP[name]} Default {fld.default}.")(f)
    return f


@main.group("clip")
def clip_group() -> None:
    """A small CLIP trained on synthetic hands (its text features mean something offline)."""


@clip_group.command("train")
@click.option("--out", required=True, type=click.Path(path_type=str),
              help="Model folder to create (open_clip local-dir: config, safetensors weights, card).")
@click.option("--exclude", multiple=True, type=click.Path(path_type=str),
              help="Synthetic pose-set folder (hcdg_synth.json) whose seed the corpus must not share; repeatable.")
@_clip_train_options
@click.option("--progress/--no-progress", default=None, help="Progress bars (default on).")
def clip_train_cmd(exclude, **flags) -> None:
    """Train the synthetic CLIP (open_clip ClipLoss on rendered hands + style captions); resumable.

    \b
    Re-running the same command after a kill resumes; on a finished folder of the same recipe it
    reuses it; a folder holding a different model is refused. Prints zero-shot accuracy at the end.
    Then: hcdg embed ... --clip OUT
    """
    from hcdg.pipeline.config import from_dict
    from hcdg.stages import clip_train as stage

    cfg = from_dict(stage.ClipTrainConfig, {k: v for k, v in {**flags, "exclude": exclude or None}.items()
                                            if v is not None}, where="flags")
    card = stage.run(cfg, echo=click.echo)
    if card.get("reused"):
        click.echo(stage.format_check(card["zero_shot"]))


@clip_group.command("check")
@click.argument("folder", type=click.Path(path_type=str))
@click.option("--images", default=None, type=click.Path(path_type=str),
              help="A synthetic dataset folder (its hcdg_synth.json styles); default: the card's held-out images.")
@click.option("--limit", type=int, default=None, help="At most this many of --images' images.")
def clip_check_cmd(folder, images, limit) -> None:
    """Load a synthetic CLIP through open_clip and print zero-shot accuracy beside chance."""
    from hcdg.pipeline.config import from_dict
    from hcdg.stages import clip_train as stage

    flags = {"folder": folder, "images": images, "limit": limit}
    stage.check(from_dict(stage.ClipCheckConfig, {k: v for k, v in flags.items() if v is not None}, where="flags"),
                echo=click.echo)


@main.command("demo")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Demo folder (data/, store.zarr, runs/, report/); re-running skips finished steps.")
@click.option("--clip", default=None,
              help="synthetic (default: train hcdg's synthetic CLIP into OUT/clip, reused on re-runs), random "
                   "(hcdg-tiny, random weights), or a folder from `hcdg clip train`.")
@click.option("--model", default=None, help="An open_clip model instead of --clip (e.g. ViT-B-32).")
@click.option("--pretrained", default=None,
              help="Weights tag/file for --model (e.g. --model ViT-B-32 --pretrained openai where the weights can be had).")
@click.option("--size", type=click.Choice(["small", "tiny"]), default=None,
              help="small (default: about 2 minutes on 2 idle CPU cores) or tiny (a smoke test, under a minute).")
@click.option("--device", default=None, help="auto (default), cpu, cuda, cuda:N.")
@click.option("--progress/--no-progress", default=None, help="Progress bars of the steps (default on).")
def demo_cmd(out, clip, model, pretrained, size, device, progress) -> None:
    """The whole pipeline offline: synth data -> embed -> train baseline and ie+te -> eval on STB/RHD -> report."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import demo as stage

    flags = {"out": out, "clip": clip, "model": model, "pretrained": pretrained, "size": size, "device": device,
             "progress": progress}
    res = stage.run(from_dict(stage.DemoConfig, merge({}, flags), where="flags"), echo=click.echo)
    click.echo(f"report: {res['html']}  (Markdown: {res['markdown']})")


if __name__ == "__main__":
    main()
