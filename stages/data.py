"""Stage `data`: validate a dataset root (`hcdg data check`) and show one sample (`hcdg data show`).

Both open the dataset with `hcdg.pipeline.datasets.open_dataset`, which validates
the root up front (annotation files present and well-formed, one image per
annotation); `check` then reports counts and decodes images, `show` returns one
sample as plain JSON-able data and can write the image with its skeleton drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hcdg.pipeline.datasets import DEFAULT_SPLITS, HandDataset, Sample, open_dataset
from hcdg.pipeline.errors import HcdgError

DatasetName = Literal["freihand", "rhd", "stb"]


@dataclass(frozen=True)
class DataSource:
    """Which dataset split to open.

    Attributes:
        dataset: "freihand" | "rhd" | "stb".
        root: the dataset folder (layouts: docs/sources.md#datasets, docs/data.md).
        split: None = the dataset's default (freihand "training", rhd "evaluation",
            stb "test"; docs/data.md); STB also takes a sequence name.
        cameras: STB views; None = the reader's default ("BB_left",).
        hand: RHD hand choice; None = "auto" (more mask pixels, the evaluation rule).
    """

    dataset: DatasetName
    root: str
    split: str | None = None
    cameras: tuple[str, ...] | None = None
    hand: Literal["auto", "left", "right"] | None = None


@dataclass(frozen=True)
class CheckConfig:
    """`hcdg data check`: validate, count, decode.

    Attributes:
        decode: which images to decode: "ends" (first and last; quick), "all"
            (every image, with a progress bar: finds corrupt files), "none".
    """

    source: DataSource
    decode: Literal["ends", "all", "none"] = "ends"


@dataclass(frozen=True)
class ShowConfig:
    """`hcdg data show`: one sample as JSON; `png` = where to write the image with its skeleton."""

    source: DataSource
    index: int = 0
    png: str | None = None


def open_source(source: DataSource) -> HandDataset:
    """Open (and validate) the split `source` names."""
    options: dict[str, Any] = {}
    if source.cameras is not None and source.dataset != "stb":
        raise HcdgError(f"--camera / cameras applies to stb only, not {source.dataset}")
    if source.hand is not None and source.dataset != "rhd":
        raise HcdgError(f"--hand / hand applies to rhd only, not {source.dataset}")
    if source.cameras is not None:
        options["cameras"] = tuple(source.cameras)
    if source.hand is not None:
        options["hand"] = source.hand
    return open_dataset(source.dataset, Path(source.root), source.split, **options)


def check(cfg: CheckConfig) -> dict[str, Any]:
    """Validate the split and return a report: counts, files read, bytes, images decoded."""
    ds = open_source(cfg.source)
    n = len(ds)
    manifest = ds.manifest()
    report: dict[str, Any] = {
        "dataset": ds.dataset,
        "split": ds.split,
        "root": str(ds.root),
        "samples": n,
        "files": len(manifest),
        "bytes": int(sum(size for _, size in manifest)),
    }
    if getattr(ds, "note", ""):  # e.g. a partial STB copy: which frames it holds
        report["note"] = ds.note
    for attr in ("n_poses", "versions", "sequences", "cameras"):
        if hasattr(ds, attr):
            value = getattr(ds, attr)
            report[attr] = list(value) if isinstance(value, tuple) else value
    if cfg.decode == "none" or n == 0:
        indices: list[int] | range = []
    elif cfg.decode == "ends":
        indices = sorted({0, n - 1})
    else:
        indices = range(n)
    sizes: set[tuple[int, int]] = set()
    iterator = indices
    if cfg.decode == "all":
        from tqdm import tqdm

        iterator = tqdm(indices, desc=f"{ds.dataset} {ds.split}: decoding", unit="img")
    for i in iterator:
        sample = ds[i]
        _check_annotation(sample, need_3d=getattr(ds, "has_3d", True))
        sizes.add((int(sample.image.shape[1]), int(sample.image.shape[0])))
    report["decoded"] = len(indices)
    report["image_sizes"] = [list(s) for s in sorted(sizes)]
    return report


def _check_annotation(sample: Sample, need_3d: bool = True) -> None:
    if not need_3d:  # 2D-only annotations (a COCO-style JSON without joint_cam)
        if not np.isfinite(sample.uv).all():
            raise HcdgError(f"{sample.image_path}: annotation of sample {sample.sample_id} has non-finite keypoints")
        return
    if not (np.isfinite(sample.xyz).all() and (sample.xyz[:, 2] > 0).all()):
        raise HcdgError(
            f"{sample.image_path}: annotation of sample {sample.sample_id} has non-finite joints "
            "or joints behind the camera (z <= 0)"
        )


def sample_to_dict(sample: Sample) -> dict[str, Any]:
    """A sample as plain JSON-able data (arrays become nested lists)."""
    out: dict[str, Any] = {
        "dataset": sample.dataset,
        "split": sample.split,
        "index": sample.index,
        "sample_id": sample.sample_id,
        "image": str(sample.image_path),
        "side": sample.side,
        "root": sample.root,
        "units": {"xyz": "m", "uv": "px", "K": "px"},
        "K": np.asarray(sample.K, dtype=float).tolist(),
        "xyz": np.asarray(sample.xyz, dtype=float).tolist(),
        "uv": np.asarray(sample.uv, dtype=float).tolist(),
        "visible": np.asarray(sample.visible, dtype=bool).tolist(),
        "extra": _plain(sample.extra),
    }
    if sample.image is not None:
        out["image_size"] = [int(sample.image.shape[1]), int(sample.image.shape[0])]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def show(cfg: ShowConfig) -> dict[str, Any]:
    """One sample (image decoded) as JSON-able data; writes `cfg.png` atomically when given."""
    ds = open_source(cfg.source)
    if not 0 <= cfg.index < len(ds):
        raise HcdgError(f"--index {cfg.index}: out of range for {ds.dataset} {ds.split} (0..{len(ds) - 1})")
    sample = ds[cfg.index]
    out = sample_to_dict(sample)
    if getattr(ds, "note", ""):
        out["note"] = ds.note
    if cfg.png:
        from PIL import Image

        from hcdg.pipeline.datasets.draw import draw_skeleton
        from hcdg.store.atomic import atomic_path

        drawn = draw_skeleton(sample.image, sample.uv, sample.visible)
        with atomic_path(cfg.png) as tmp:
            Image.fromarray(drawn).save(tmp, format="PNG")
        out["png"] = str(cfg.png)
    return out


def run(config: CheckConfig | ShowConfig) -> dict[str, Any]:
    """Run `check` or `show`, by the type of `config`."""
    if isinstance(config, CheckConfig):
        return check(config)
    if isinstance(config, ShowConfig):
        return show(config)
    raise TypeError(f"stages.data.run: unexpected config {type(config).__name__}")


def default_split(dataset: str) -> str:
    """The split used when none is given (see `DataSource.split`)."""
    return DEFAULT_SPLITS[dataset]
