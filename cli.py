"""Command line: parses and dispatches only (tests call it in-process).

Each command builds its stage's frozen config (TOML file, then flags on top)
and calls that stage's `run(...)`. User errors (`HcdgError`) become one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import click

from hcdg import __version__
from hcdg.pipeline.config import show_default
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


def _resolve_ref(ref):
    """A class (or constant) given directly or as "module:Name" (imported only when needed: --help, parsing)."""
    if not isinstance(ref, str):
        return ref
    import importlib

    mod, _, attr = ref.partition(":")
    return getattr(importlib.import_module(mod), attr)


class LazyChoice(click.Choice):
    """click.Choice whose values are read when first needed (a stage module imports torch)."""

    def __init__(self, resolve) -> None:
        self._resolve, self._choices, self.case_sensitive = resolve, None, True

    @property
    def choices(self):  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._resolve())
        return self._choices


class FieldOption(click.Option):
    """An option declared by a config dataclass field: its help text (`option` metadata, or the one given
    here), its default (always the field's; never restated) and its `--help` section."""

    def __init__(self, *args, field=None, section=None, base_help=None, note="", **kw) -> None:
        super().__init__(*args, **kw)
        self.field_ref, self.section, self._base_help, self._note = field, section, base_help, note
        self._resolved = field is None

    def field_default(self):
        """The dataclass default of the field this option sets (KeyError when it has none)."""
        from hcdg.pipeline.config import default_of

        cls, name = self.field_ref
        return default_of(_resolve_ref(cls), name)

    def get_help_record(self, ctx):
        if not self._resolved:
            from hcdg.pipeline.config import fields_of, show_default

            cls, name = _resolve_ref(self.field_ref[0]), self.field_ref[1]
            base = self._base_help() if callable(self._base_help) else self._base_help
            text = base or fields_of(cls)[name].metadata.get("help", "")
            try:
                d = self.field_default()
            except KeyError:
                d = None
            if not self.required and d not in (None, ""):
                text += f" Default: {show_default(d)}."
            self.help, self._resolved = (text + self._note).strip(), True
        return super().get_help_record(ctx)


class SectionedCommand(click.Command):
    """A command whose `--help` lists its options in sections (data, model, ..., as timm groups them)."""

    def format_options(self, ctx, formatter) -> None:
        from hcdg.stages.train_config import SECTIONS

        groups: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec:
                groups.setdefault(getattr(p, "section", None) or "other", []).append(rec)
        for name in sorted(groups, key=lambda g: SECTIONS.index(g) if g in SECTIONS else len(SECTIONS)):
            with formatter.section(f"{name[0].upper()}{name[1:]} options"):
                formatter.write_dl(groups[name])


def field_option(cls, name: str, *decls: str, help: str | None = None, note: str = "", section: str | None = None,
                 choices=None, **click_kw):
    """click.option for field `name` of the config dataclass `cls` (a class, or "module:Class" for a
    stage module that is imported only for --help / parsing). The click default is None (the
    dataclass default applies); help = `help` or the field's metadata help, plus "Default: X." read
    from the field. choices: None = the field's Literal values (classes given directly); True = the
    same, read lazily; a "module:NAME" string or a sequence = those; False = none (a comma list).
    `help` may be a function (called for --help only: text read from constants of heavy modules)."""
    from hcdg.pipeline.config import default_of, field_choices, fields_of

    flag = "--" + name.replace("_", "-")
    if not isinstance(cls, str):
        import typing

        tp = typing.get_type_hints(cls)[name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        base = args[0] if len(args) == 1 else tp  # X | None -> X
        if base is bool and not decls:
            off = default_of(cls, name) is False
            decls = (flag,) if off else (f"{flag}/--no-{flag[2:]}",)
            if off:
                click_kw.setdefault("is_flag", True)
        if base in (int, float):
            click_kw.setdefault("type", base)
        section = section or fields_of(cls)[name].metadata.get("section")
        if choices is None and field_choices(cls, name):
            choices = True
    if choices is True:
        click_kw["type"] = LazyChoice(lambda: field_choices(_resolve_ref(cls), name))
    elif isinstance(choices, str):
        click_kw["type"] = LazyChoice(lambda: _resolve_ref(choices))
    elif choices:
        click_kw["type"] = click.Choice(list(choices))
    return click.option(*(decls or (flag,)), default=None, cls=FieldOption, field=(cls, name), section=section,
                        base_help=help, note=note, **click_kw)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hcdg")
def main() -> None:
    """hcdg: image-free domain generalization via CLIP for 3D hand pose (WACV 2023).

    Typical flow: `hcdg synth` (or real data) -> `hcdg embed` -> `hcdg train`
    -> `hcdg eval` -> `hcdg report`. `hcdg demo` runs it all offline.
    """


# --- data / synth commands (foundation) -------------------------------------


def _splits_note(defaults: str = "hcdg.pipeline.datasets:DEFAULT_SPLITS") -> str:
    """"freihand training, rhd evaluation, ..." from a {dataset: default split} constant."""
    return ", ".join(f"{k} {v}" for k, v in _resolve_ref(defaults).items())


_SOURCE = "hcdg.stages.data:DataSource"


def _data_source_options(f):
    """Options shared by `data check` and `data show`: which dataset split to open."""
    f = field_option(_SOURCE, "hand", help="RHD only: which hand to read; auto (when not given) = the one with "
                     "more mask pixels.")(f)
    f = field_option(_SOURCE, "cameras", "--camera", "cameras", multiple=True, choices="hcdg.pipeline.datasets.stb:CAMERAS",
                     help=lambda: "STB only: camera view(s), repeatable (not given: "
                     f"{show_default(_resolve_ref('hcdg.pipeline.datasets.stb:DEFAULT_CAMERAS'))}).")(f)
    f = field_option(_SOURCE, "split", help=lambda: f"Split (not given: {_splits_note()}; "
                     "STB also takes a sequence name such as B1Counting).")(f)
    f = field_option(_SOURCE, "root", required=True, type=click.Path(path_type=str),
                     help="Dataset folder in its real on-disk layout, or a COCO-style hand keypoint JSON "
                          "(mmpose / I2L-MeshNet layouts; docs/data.md).")(f)
    f = field_option(_SOURCE, "dataset", required=True, choices=True, help="Dataset format to read.")(f)
    return f


def _data_source(dataset, root, split, cameras, hand):
    from hcdg.stages.data import DataSource

    return DataSource(dataset=dataset, root=root, split=split, cameras=tuple(cameras) or None, hand=hand)


@main.group("data")
def data_group() -> None:
    """Inspect real-format datasets (FreiHAND, RHD, STB): validate a root, show a sample."""


@data_group.command("check")
@_data_source_options
@field_option("hcdg.stages.data:CheckConfig", "decode", choices=True,
              help="Images to decode: first and last (ends), every one (all: finds corrupt files), or none.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def data_check(dataset, root, split, cameras, hand, decode, as_json) -> None:
    """Validate a dataset root and print its counts (exit 1 with one line naming the problem)."""
    import json

    from hcdg.pipeline.config import merge
    from hcdg.stages import data as stage

    cfg = stage.CheckConfig(**merge({"source": _data_source(dataset, root, split, cameras, hand)}, {"decode": decode}))
    report = stage.run(cfg)
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
            if cfg.decode == "ends" and report["samples"] > report["decoded"] else "")
    click.echo(f"images decoded: {report['decoded']} (sizes {sizes}){note}")
    if report.get("note"):
        click.echo(f"note: {report['note']}")


@data_group.command("show")
@_data_source_options
@field_option("hcdg.stages.data:ShowConfig", "index", type=int, help="Sample position in the split.")
@field_option("hcdg.stages.data:ShowConfig", "png", type=click.Path(dir_okay=False, path_type=str),
              help="Also write the image with the 2D skeleton drawn to this PNG file.")
def data_show(dataset, root, split, cameras, hand, index, png) -> None:
    """Print one sample as JSON (xyz metres FreiHAND order camera frame, uv px, K, side, root, ...)."""
    import json

    from hcdg.pipeline.config import merge
    from hcdg.stages import data as stage

    out = stage.run(stage.ShowConfig(**merge({"source": _data_source(dataset, root, split, cameras, hand)},
                                             {"index": index, "png": png})))
    click.echo(json.dumps(out))


_SYNTH = "hcdg.stages.synth:SynthConfig"


def _per_format(name: str) -> str:
    """"freihand 256, rhd 256, stb 128" from a {format: value} constant of stages/synth.py."""
    return ", ".join(f"{k} {v}" for k, v in _resolve_ref(f"hcdg.stages.synth:{name}").items())


@main.command("synth")
@field_option(_SYNTH, "format", "--format", "fmt", required=True, choices=True,
              help="On-disk layout to write: freihand (source), rhd or stb (targets).")
@field_option(_SYNTH, "out", required=True, type=click.Path(path_type=str),
              help="Dataset root to create (written to a temp folder, renamed into place at the end).")
@field_option(_SYNTH, "n", type=int,
              help=lambda: "freihand: training poses (4 images each); rhd: evaluation images; stb: frames per "
                           f"sequence, B1Counting and B1Random (not given: {_per_format('DEFAULT_N')}).")
@field_option(_SYNTH, "n_other", type=int,
              help=lambda: "freihand: evaluation poses; rhd: training images; stb: unused (not given: "
                           f"{_per_format('DEFAULT_N_OTHER')}).")
@field_option(_SYNTH, "seed", type=int, help="Random seed; the same seed and sizes give the same bytes.")
@field_option(_SYNTH, "style",
              help=lambda: "source | mixed-target | HAND_COLOUR:COLOUR[:room|background] in Table 2 words, "
                           "'*' = drawn per image (e.g. 'black:dotted:room', 'peach:*'). Not given: "
                           + ", ".join(f"{k} {v}" for k, v in
                                       _resolve_ref("hcdg.pipeline.synth.writers:DEFAULT_STYLE").items()) + ".")
@field_option(_SYNTH, "views",
              help="Hand orientations: any (uniform) | dorsal (back of the hand towards the camera, "
                   "any in-plane roll, +-25 deg tilts: depth sign readable, so short runs learn).")
@field_option(_SYNTH, "overwrite", is_flag=True,
              help="Replace a different dataset `hcdg synth` wrote at --out (never files it did not write).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (shown unless --no-progress).")
def synth_cmd(fmt, out, n, n_other, seed, style, views, overwrite, progress) -> None:
    """Write synthetic hands in a real dataset layout (the offline default; docs/synthetic.md)."""
    from hcdg.stages import synth as stage

    from hcdg.pipeline.config import from_dict, merge

    cfg = from_dict(stage.SynthConfig, merge({"format": fmt, "out": out}, {
        "n": n, "n_other": n_other, "seed": seed, "style": style, "overwrite": overwrite, "views": views}), where="flags")
    report = stage.run(cfg, **({} if progress is None else {"progress": progress}))
    if report["skipped"]:
        click.echo(f"{report['root']}: already holds this {fmt} dataset (seed {cfg.seed}, style {report['style']}); "
                   "nothing to do")
    else:
        click.echo(f"wrote {report['images']} {fmt} images to {report['root']} "
                   f"(style {report['style']}, seed {cfg.seed}) in {report['seconds']:.1f} s")


# --- prompts / embed / store commands (stage one) ---------------------------


@main.command("prompts")
@click.option("--store", type=click.Path(path_type=str), default=None,
              help="Print the prompt list this feature store holds (not given: the paper's Table 2).")
@click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Print this prompt list instead (one prompt per line; ids = line order).")
@click.option("--prompt-filter", default=None, help="Regular expression: print only the prompts it matches.")
def prompts_cmd(store, prompt_file, prompt_filter) -> None:
    """Print prompts as `id<TAB>text` lines (Table 2: 3,920 prompts, ids 0..3919)."""
    from hcdg.stages import store_cmds

    click.echo("\n".join(store_cmds.prompt_lines(store, prompt_file, prompt_filter)))


_EMBED = "hcdg.stages.embed:EmbedConfig"


@main.command("embed")
@field_option(_EMBED, "dataset", required=True, choices=True,
              help="Dataset format to read (synthetic data from `hcdg synth` uses the same formats).")
@field_option(_EMBED, "root", required=True, type=click.Path(path_type=str), help="Dataset root folder.")
@field_option(_EMBED, "split", help=lambda: f"Split (not given: {_splits_note()}).")
@field_option(_EMBED, "cameras", "--camera", "cameras", multiple=True, choices="hcdg.pipeline.datasets.stb:CAMERAS",
              help=lambda: "STB only: camera view(s), repeatable (not given: "
              f"{show_default(_resolve_ref('hcdg.pipeline.datasets.stb:DEFAULT_CAMERAS'))}).")
@field_option(_EMBED, "store", required=True, type=click.Path(path_type=str),
              help="Feature store: a Zarr folder, or one HDF5 file when the path ends in .h5.")
@field_option(_EMBED, "key", help="Split key in the store (not given: <dataset>/<split>).")
@field_option(_EMBED, "model", help=lambda: "open_clip model, hcdg-tiny, local-dir:DIR or hf-hub:ORG/REPO (not given: "
              f"an existing --store's recorded encoder, else {_resolve_ref('hcdg.pipeline.clip:DEFAULT_MODEL')}, "
              "paper §3.2).")
@field_option(_EMBED, "pretrained", help="Weights: an open_clip tag, TAG=FILE, a weights file, or none (random "
              "weights from --seed). Not given: an existing --store's, else the model's OpenAI weights (paper "
              "§3.2), or none for hcdg-tiny.")
@field_option(_EMBED, "clip", type=click.Path(path_type=str),
              help="A synthetic-CLIP folder from `hcdg clip train` (instead of --model/--pretrained).")
@field_option(_EMBED, "seed", type=int, help="Seed of random weights (not given: the store's, else 0).")
@field_option(_EMBED, "precision", choices=True, help="Compute precision; auto = fp16 on CUDA, fp32 on CPU.")
@field_option(_EMBED, "device", help="auto (cuda if available), cpu, cuda, cuda:N.")
@field_option(_EMBED, "batch_size", type=int, help="Images per forward.")
@field_option(_EMBED, "workers", type=int, help="DataLoader processes decoding images (not given: CPUs - 1, at "
              "most 16; 0 = main process).")
@field_option(_EMBED, "dtype", choices=True, help="Stored dtype of the features.")
@field_option(_EMBED, "chunk_rows", type=int,
              help="Rows per chunk, the unit of resume and sharding (used when a split is created).")
@field_option(_EMBED, "shard", help="i/n: embed only the i-th of n chunk ranges (not given: all, or "
              "RANK/WORLD_SIZE under torchrun).")
@field_option(_EMBED, "limit", type=int, help="Embed only the first N images of the split.")
@field_option(_EMBED, "skip_corrupt", is_flag=True, help="Record unreadable images as skipped rows instead of stopping.")
@field_option(_EMBED, "prompt_file", type=click.Path(dir_okay=False, path_type=str),
              help="Own prompt list, one per line (not given: the paper's Table 2).")
@field_option(_EMBED, "prompt_filter", help="Regular expression: keep only matching prompts.")
@field_option(_EMBED, "progress", "--progress/--no-progress", help="Progress bar with images/s.")
@field_option(_EMBED, "views", type=int, help="Augmented views per image: K draws of the training augmentation, "
              "each crop rendered as `hcdg train` renders it (0 = one feature of the whole image; docs/store.md).")
@field_option(_EMBED, "view_seed", type=int, help="Seed of the view draws.")
@field_option(_EMBED, "view_preset", choices=True, help="Training preset whose augmentation the views draw from.")
@field_option(_EMBED, "view_config", type=click.Path(dir_okay=False, path_type=str),
              help="Training config file (TOML, `hcdg train --print-config`) whose crop and augmentation the views use.")
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


_VERIFY = "hcdg.stages.store_cmds:VerifyConfig"


@store_group.command("verify")
@click.argument("path", type=click.Path(path_type=str))
@field_option(_VERIFY, "sample", type=int, help="Random rows re-encoded per table.")
@field_option(_VERIFY, "split", "--split", "split_key", help="Only this split key (not given: every split).")
@field_option(_VERIFY, "root", help="Dataset root, when it moved since `hcdg embed`.")
@field_option(_VERIFY, "pretrained", help="Weights file, when it moved since `hcdg embed`.")
@field_option(_VERIFY, "device", help="auto, cpu, cuda, cuda:N.")
@field_option(_VERIFY, "seed", type=int, help="Seed drawing the rows.")
@field_option(_VERIFY, "checksums_only", is_flag=True,
              help="Only check every chunk against its CRC32 (needs neither the encoder nor the dataset).")
def store_verify_cmd(path, sample, split_key, root, pretrained, device, seed, checksums_only) -> None:
    """Check every chunk's CRC32, then re-encode random rows with the recorded encoder and compare."""
    from hcdg.stages import store_cmds

    from hcdg.pipeline.config import from_dict, merge

    flags = {"sample": sample, "split": split_key, "root": root, "pretrained": pretrained, "device": device,
             "seed": seed, "checksums_only": checksums_only}
    report = store_cmds.verify(from_dict(store_cmds.VerifyConfig, merge({"store": path}, flags), where="flags"))
    click.echo(store_cmds.verify_text(report))
    if not report["ok"]:
        raise HcdgError(store_cmds.verify_failure(report))

# --- train / sweep commands (stage two) -------------------------------------

_FLOAT_LIST = "comma-separated numbers"


def _train_options(sweep: bool):
    """The `hcdg train` flags, one per `TrainConfig` field (help, choices, default and section read from
    the field); `hcdg sweep` takes the fields declared `sweep_axis` as comma lists."""
    import dataclasses
    import typing

    from hcdg.stages.train_config import PRESETS, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    opts = [click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, cls=FieldOption,
                         section="run", help="TOML file with TrainConfig keys (as `--print-config` writes); "
                                             "flags given on the command line win.")]
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if meta.get("cli") is False or ("commands" in meta and ("sweep" if sweep else "train") not in meta["commands"]):
            continue
        axis = sweep and meta.get("sweep_axis", False)
        note = ""
        if not isinstance(PRESETS["authors"].get(f.name, {}), dict):
            note += f" --preset authors: {show_default(PRESETS['authors'][f.name])}."
        if axis:
            kind = {float: _FLOAT_LIST, int: "comma-separated integers, e.g. 0,1,2 (repeats every point)"}
            example = {"ratio": "0.4,0.6,0.8,0.9", "lambda_con": "1,0.1,0.01,0.001"}.get(f.name)  # Tables 4a, 5
            note += f" Sweep axis: {kind.get(hints[f.name], 'comma list')}" + (f", e.g. {example}." if example else ".")
        help_ = "Sweep folder (one run folder per point)." if sweep and f.name == "out" else None
        as_text = axis or typing.get_origin(hints[f.name]) is tuple  # comma lists, parsed by `_axis`
        opts.append(field_option(TrainConfig, f.name, help=help_, note=note, required=sweep and f.name == "out",
                                 **({"type": str} if as_text else {}), choices=False if axis else None,
                                 **meta.get("click", {})))  # e.g. --compile's optional value

    def deco(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def _train_config(config_file, flags: dict, where: str = "flags"):
    """`TrainConfig.resolve` of the command line: preset -> --config TOML -> flags."""
    from hcdg.stages.train_config import TrainConfig

    if flags.get("lr_drops") is not None:
        flags = {**flags, "lr_drops": _axis(flags["lr_drops"], int, "--lr-drops")}
    return TrainConfig.resolve(preset=flags.pop("preset", None), toml=config_file, where=where, **flags)


@main.command("train", cls=SectionedCommand)
@_train_options(sweep=False)
@click.option("--print-config", is_flag=True, cls=FieldOption, section="run",
              help="Print the resolved config (preset, --config file and flags) as TOML that --config reads, "
                   "and exit without training. Each run folder keeps the same file as config.toml.")
def train_cmd(config_file, print_config, **flags) -> None:
    """Train the hand pose network from cached CLIP features (stage two).

    \b
    Example (paper setting, r = 0.6, l3 = 0.1):
    hcdg train --store STORE --dataset freihand --root FREIHAND --out runs/r0.6 --ratio 0.6
    """
    from hcdg.stages import train as stage

    cfg = _train_config(config_file, flags)
    if print_config:
        from hcdg.stages.train_config import to_toml

        click.echo(to_toml(cfg), nl=False)
        return
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


@main.command("sweep", cls=SectionedCommand)
@_train_options(sweep=True)
@field_option("hcdg.stages.sweep:SweepConfig", "shared_batches", "--shared-batches/--separate-batches", section="run",
              help="Train the points that see the same batches (same seed, batch size, augmentation, crop) in "
                   "one process from one data loader, each batch decoded once; results equal solo runs "
                   "(docs/training.md, Sweeps).")
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
@field_option("hcdg.stages.import_authors:ImportConfig", "out", required=True,
              type=click.Path(file_okay=False, path_type=str), help="Run folder to create (must not exist, or be empty).")
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


_REPORT = "hcdg.stages.report:ReportConfig"
_PROTOCOLS = "hcdg.pipeline.protocols:PROTOCOLS"


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@field_option(_REPORT, "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Report folder: report.html, report.md, figures/, tables/ (created; may hold an earlier report).")
@field_option(_REPORT, "protocol", choices=_PROTOCOLS,
              help=lambda: "Protocol of the paper-shaped tables (not given: "
              f"{_resolve_ref('hcdg.pipeline.protocols:PAPER_PROTOCOL')}, the paper's, when a run has results "
              "under it, else the first that applies; all appear in the full table).")
@field_option(_REPORT, "root", choices="hcdg.pipeline.protocols:ROOTS",
              help="STB root handling in the paper-shaped tables.")
@field_option(_REPORT, "joints", choices="hcdg.store.results:JOINT_SETS",
              help="Joint set of the paper-shaped tables (all = the paper's 21).")
@field_option(_REPORT, "title", help="Page title.")
@field_option(_REPORT, "figures", "--figure", "figures", multiple=True, type=click.Path(dir_okay=False, path_type=str),
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


_EVAL = "hcdg.stages.eval:EvalConfig"
_DECODERS = "hcdg.pipeline.protocols:DECODERS"


@main.command("eval")
@field_option(_EVAL, "run", "--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Training run folder (from `hcdg train`): its run.json config rebuilds the network.")
@field_option(_EVAL, "target", required=True, choices=True, help="Dataset to evaluate on (paper §4: stb and rhd).")
@field_option(_EVAL, "root", required=True, type=click.Path(path_type=str),
              help="The target dataset's root folder, in its real on-disk layout, or a COCO-style hand keypoint "
                   "JSON with 3D (joint_cam + cam_param; docs/data.md).")
@field_option(_EVAL, "split", help=lambda: f"Split (not given: the test split: {_splits_note('hcdg.stages.eval:DEFAULT_SPLITS')}).")
@field_option(_EVAL, "checkpoint",
              help="Weights: 'final', 'latest', a step number (500), a checkpoint folder name (step-00000500) "
                   "or path (not given: the finished model (model.safetensors), else the newest checkpoint).")
@field_option(_EVAL, "batch_size", type=int, help="Images per forward pass (results do not depend on it).")
@field_option(_EVAL, "device", help="auto (cuda if available), cpu, cuda, cuda:N.")
@field_option(_EVAL, "protocols", "--protocol", "protocols", multiple=True, choices=_PROTOCOLS,
              help="Protocol(s) to compute, repeatable (not given: all that apply to the run's output: for uvd "
                   "networks authors with --crops seed-boxes, authors-gtcrops with --crops gt; the other four for "
                   "xyz networks; docs/results.md).")
@field_option(_EVAL, "crops", choices=True,
              help="Crop boxes: gt (hand3d's box from the ground-truth keypoints) or seed-boxes "
                   "(the paper authors' released boxes, given with --boxes, cut as their test code cuts them).")
@field_option(_EVAL, "boxes", type=click.Path(dir_okay=False, path_type=str),
              help="With --crops seed-boxes: .npy of [x, y, w, h] per test frame (STB_bbox.npy (3000,4), Rhp_bbox.npy (2725,4)).")
@field_option(_EVAL, "decoder", choices=_DECODERS, help="Heatmap -> 2D decoder used by 2.5d-gtroot-gtbone.")
@field_option(_EVAL, "scale", type=float,
              help="Test-time box size multiplier about its centre, as the authors' test.py --scale (the "
                   "paper's numbers: unscaled).")
@field_option(_EVAL, "rot", type=float,
              help="Test-time crop rotation in degrees, as the authors' test.py --rot (the "
                   "paper's numbers: unrotated; hcdg's protocols: a camera roll, undone before scoring).")
@field_option(_EVAL, "limit", type=int, help="Evaluate only the first N samples (quick checks).")
@field_option(_EVAL, "workers", type=int, help="DataLoader worker processes for decoding and cropping.")
@field_option(_EVAL, "progress", "--progress/--no-progress", help="Progress bar.")
@field_option(_EVAL, "force", is_flag=True,
              help="Replace results of the same name written by a different evaluation (another --protocol "
                   "subset or --boxes file). A checkpoint, --limit, --split, --crops or --decoder evaluation "
                   "never needs it: it is written beside the reference results (RUN/eval/<target>--<variant>.parquet).")
@field_option(_EVAL, "write_submission", type=click.Path(dir_okay=False, path_type=str),
              help="With --target freihand (evaluation split, every sample): also write the FreiHAND toolbox's "
                   "pred.json [xyz_list, verts_list] (metres, camera frame; verts_list holds no mesh: "
                   "docs/results.md).")
def eval_cmd(run_dir, target, root, split, checkpoint, batch_size, device, protocols, crops, boxes, decoder,
             scale, rot, limit, workers, progress, force, write_submission) -> None:
    """Evaluate a trained run on STB / RHD / FreiHAND under every protocol; write RUN/eval/<target>.parquet
    (the finished model on every sample; other checkpoints, --limit, --scale/--rot go beside it, e.g.
    RUN/eval/rhd--step-00000500--limit-4.parquet, and `hcdg report` leaves those out)."""
    from hcdg.pipeline.config import from_dict, merge
    from hcdg.stages import eval as stage

    flags = {"run": run_dir, "target": target, "root": root, "split": split, "checkpoint": checkpoint,
             "batch_size": batch_size, "device": device, "protocols": list(protocols) or None, "crops": crops,
             "boxes": boxes, "decoder": decoder, "scale": scale, "rot": rot, "limit": limit, "workers": workers,
             "progress": progress, "force": force, "write_submission": write_submission}
    res = stage.run(from_dict(stage.EvalConfig, merge({}, flags), where="flags"))
    click.echo(f"weights: {res['weights']} (step {res['checkpoint_step']})")
    if res["note"]:
        click.echo(f"note: {res['note']}")
    click.echo(stage.format_summary(res["summary_frame"]))
    m2d = res["mmpose_2d"]
    click.echo(f"2D (heatmaps, image px; mmpose's names): PCK {m2d['PCK']:.3f} (@0.2 bbox)  "
               f"AUC {m2d['AUC']:.3f} (0-30 px)  EPE {m2d['EPE']:.2f} px")
    if res["random_weights"]:
        click.echo("note: this run was trained with RANDOM-weight CLIP features; they carry no meaning.")
    click.echo(f"{res['n_samples']} samples -> {res['results']} (summary: {res['summary']})")
    if res["submission"]:
        click.echo(f"FreiHAND toolbox submission: {res['submission']}")
    if not res["identity"].is_reference:
        click.echo(f"note: {res['identity'].describe()}: written beside the reference results "
                   f"({res['identity'].target}.parquet); `hcdg report` does not compare it.")


_PREDICT = "hcdg.stages.predict:PredictConfig"


@main.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@field_option(_PREDICT, "run", "--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (`hcdg train` or `hcdg import authors`).")
@field_option(_PREDICT, "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder to create (new or empty): predictions.parquet, predictions.json, overlays/.")
@field_option(_PREDICT, "boxes", type=click.Path(dir_okay=False, path_type=str),
              help="Hand boxes [x, y, w, h] in image pixels: .json keyed by file name (value a box, or "
                   "{box, side, K}) or an (N, 4) .npy in input order, or the authors' STB_bbox.npy / Rhp_bbox.npy "
                   "(rows matched by file name: B1Counting/BB_left_N.png, NNNNN.png), or a COCO-style hand JSON. "
                   "Not given: the whole image is the crop.")
@field_option(_PREDICT, "box_frame", choices=("image", "mirrored"),
              help="Pixel frame of --boxes: image (as the image is) or mirrored (the image flipped left-right, "
                   "u -> W-1-u). Not given: the frame the file was made in (the authors' STB boxes: mirrored; "
                   "their RHD boxes: mirrored for left hands), else image.")
@field_option(_PREDICT, "side", choices=True,
              help="Hand side; left hands are mirrored in and out. auto = the boxes file's per-image side, else right.")
@field_option(_PREDICT, "whole_image", choices=True,
              help="Crop of an image without a box: pad (whole image, padded to a square) or center (its central square).")
@field_option(_PREDICT, "bone_length_mm", type=float,
              help="Middle MCP->PIP bone length: adds root-relative millimetres (and with --K the camera frame).")
@field_option(_PREDICT, "K", "--K", "K",
              help="Intrinsics of the images: fx,fy,cx,cy or a .json/.npy 3x3 file; with --bone-length-mm adds "
                   "camera-frame millimetres.")
@field_option(_PREDICT, "checkpoint", help="Weights, as `hcdg eval --checkpoint` (not given: the finished model).")
@field_option(_PREDICT, "device", help="auto, cpu, cuda, cuda:N.")
@field_option(_PREDICT, "batch_size", type=int, help="Crops per forward pass.")
@field_option(_PREDICT, "decoder", choices=_DECODERS, help="Heatmap -> 2D decoder.")
@field_option(_PREDICT, "plot3d", is_flag=True, help="Also draw a 3D view per image (overlays/NAME.3d.png).")
@field_option(_PREDICT, "overwrite", is_flag=True, help="Replace an earlier `hcdg predict` output in --out.")
@field_option(_PREDICT, "progress", "--progress/--no-progress", help="Progress bar.")
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


_EXPORT = "hcdg.stages.export:ExportConfig"


@main.command("export")
@field_option(_EXPORT, "run", "--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder (`hcdg train` or `hcdg import authors`).")
@field_option(_EXPORT, "format", "--format", "fmt", required=True, choices=True,
              help="onnx (needs `pip install hcdg[export]`) or torchscript.")
@field_option(_EXPORT, "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="File to write; its JSON sidecar is written beside it as OUT.json.")
@field_option(_EXPORT, "input_size", type=int,
              help="Crop side the graph takes (not given: the network's; another size adds a resize in the graph).")
@field_option(_EXPORT, "dynamic_batch", is_flag=True, help="ONNX: any batch size (else batch 1 only).")
@field_option(_EXPORT, "checkpoint", help="Weights, as `hcdg eval --checkpoint` (not given: the finished model).")
@field_option(_EXPORT, "check", "--check/--no-check", help="Compare the file with the eager model.")
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


_TSNE = "hcdg.stages.viz:TsneConfig"
_RETRIEVE = "hcdg.stages.viz:RetrieveConfig"


@viz_group.command("tsne")
@field_option(_TSNE, "store", required=True, type=click.Path(path_type=str), help="Feature store from `hcdg embed`.")
@field_option(_TSNE, "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="PNG to write (the 2D points go to the same name with .csv).")
@field_option(_TSNE, "n", type=int, help="Points per group (aug and each split), subsampled with --seed.")
@field_option(_TSNE, "seed", type=int, help="Seed of subsampling, prompt draw and t-SNE.")
@field_option(_TSNE, "source", help="Source split key for 'aug' (not given: the store's first freihand/* split).")
@field_option(_TSNE, "perplexity", type=float, help="t-SNE perplexity (capped for small sets).")
@field_option(_TSNE, "normalize", "--normalize/--no-normalize",
              help="L2-normalise features before mixing and t-SNE (off = the printed raw sum).")
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
@field_option(_RETRIEVE, "store", required=True, type=click.Path(path_type=str), help="Feature store from `hcdg embed`.")
@field_option(_RETRIEVE, "root", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Root of the source dataset (for the images).")
@field_option(_RETRIEVE, "index", type=int, required=True, help="Row of the query image in the source split (reader order).")
@field_option(_RETRIEVE, "prompt", required=True,
              help="Prompt text; must be one of the store's prompts (`hcdg prompts --store`).")
@field_option(_RETRIEVE, "ratio", type=float, help="Image weight r in r*f_img + (1-r)*f_txt.")
@field_option(_RETRIEVE, "top", type=int, help="How many ranked images to draw.")
@field_option(_RETRIEVE, "out", required=True, type=click.Path(dir_okay=False, path_type=str), help="PNG to write.")
@field_option(_RETRIEVE, "dataset", help="Source dataset of the split.")
@field_option(_RETRIEVE, "split", help="Source split.")
@field_option(_RETRIEVE, "normalize", "--normalize/--no-normalize", help="L2-normalise features before mixing.")
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

_CLIP = "hcdg.stages.clip_train:ClipTrainConfig"
_CLIP_CHECK = "hcdg.stages.clip_train:ClipCheckConfig"
#: (field, click type, help) of the `hcdg clip train` recipe options.
_CLIP_OPTIONS = (
    ("architecture", str, "open_clip model config to train (hcdg's own: pipeline/clip_configs/)."),
    ("n_images", int, "Rendered corpus images."),
    ("heldout", int, "Held-out images of the zero-shot check."),
    ("steps", int, "Optimiser steps."),
    ("batch_size", int, "Image-caption pairs per step (the contrastive negatives)."),
    ("lr", float, "AdamW peak learning rate (warm-up, then cosine)."),
    ("weight_decay", float, "AdamW weight decay."),
    ("warmup", int, "Linear warm-up steps."),
    ("corpus_seed", int, "Seed of the corpus (must differ from every pose set's seed)."),
    ("heldout_seed", int, "Seed of the held-out zero-shot images."),
    ("seed", int, "Seed of the initial weights, batch order and captions."),
    ("checkpoint_every", int, "Steps between resumable states (in .OUT.partial/)."),
)


def _clip_train_options(f):
    for name, tp, text in reversed(_CLIP_OPTIONS):
        f = field_option(_CLIP, name, type=tp, help=text)(f)
    return f


@main.group("clip")
def clip_group() -> None:
    """A small CLIP trained on synthetic hands (its text features mean something offline)."""


@clip_group.command("train")
@field_option(_CLIP, "out", required=True, type=click.Path(path_type=str),
              help="Model folder to create (open_clip local-dir: config, safetensors weights, card).")
@field_option(_CLIP, "exclude", multiple=True, type=click.Path(path_type=str),
              help="Synthetic pose-set folder (hcdg_synth.json) whose seed the corpus must not share; repeatable.")
@_clip_train_options
@field_option(_CLIP, "progress", "--progress/--no-progress", help="Progress bars.")
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
@field_option(_CLIP_CHECK, "images", type=click.Path(path_type=str),
              help="A synthetic dataset folder (its hcdg_synth.json styles); not given: the card's held-out images.")
@field_option(_CLIP_CHECK, "limit", type=int, help="At most this many of --images' images.")
def clip_check_cmd(folder, images, limit) -> None:
    """Load a synthetic CLIP through open_clip and print zero-shot accuracy beside chance."""
    from hcdg.pipeline.config import from_dict
    from hcdg.stages import clip_train as stage

    flags = {"folder": folder, "images": images, "limit": limit}
    stage.check(from_dict(stage.ClipCheckConfig, {k: v for k, v in flags.items() if v is not None}, where="flags"),
                echo=click.echo)
_DEMO = "hcdg.stages.demo:DemoConfig"


def _demo_sizes() -> str:
    sizes = _resolve_ref("hcdg.stages.demo:SIZES")
    return "; ".join(f"{k}: {v.steps} steps of batch {v.batch_size} at {v.input_size} px" for k, v in sizes.items())


@main.command("demo")
@field_option(_DEMO, "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Demo folder (data/, store.zarr, runs/, report/); re-running skips finished steps.")
@field_option(_DEMO, "clip",
              help="synthetic (train hcdg's synthetic CLIP into OUT/clip, reused on re-runs), random "
                   "(hcdg-tiny, random weights), or a folder from `hcdg clip train`.")
@field_option(_DEMO, "model", help="An open_clip model instead of --clip (e.g. ViT-B-32).")
@field_option(_DEMO, "pretrained",
              help="Weights tag/file for --model (e.g. --model ViT-B-32 --pretrained openai where the weights can be had).")
@field_option(_DEMO, "size", choices=True,
              help=lambda: f"How big: {_demo_sizes()} (tiny is a smoke test; docs/demo.md has measured times).")
@field_option(_DEMO, "device", help="auto, cpu, cuda, cuda:N.")
@field_option(_DEMO, "progress", "--progress/--no-progress", help="Progress bars of the steps.")
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
