"""Stage `synth`: write a synthetic dataset in a real on-disk format (the offline default).

`run` draws hands, renders them and writes FreiHAND, RHD or STB layouts that the
real readers (`hcdg.pipeline.datasets`) read unchanged; see docs/synthetic.md.
The whole root is written into a temporary sibling folder and renamed into place
at the end, so `out` is either absent, the previous complete dataset, or the new
complete one. Re-running with the same arguments finds the finished dataset (its
`hcdg_synth.json` matches) and does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.synth import hand, styles, writers
from hcdg.store.atomic import dir_mode, naming

#: Default sizes (small enough for a laptop demo; the real sets are far larger:
#: FreiHAND 32,560 poses, RHD 2,728 evaluation images, STB 1,500 frames per sequence).
DEFAULT_N = {"freihand": 256, "rhd": 256, "stb": 128}
#: The other split: FreiHAND evaluation poses, RHD training images (STB: unused).
DEFAULT_N_OTHER = {"freihand": 64, "rhd": 64, "stb": 0}


@dataclass(frozen=True)
class SynthConfig:
    """`hcdg synth`.

    Attributes:
        format: "freihand" | "rhd" | "stb" (layouts: docs/sources.md#datasets).
        out: the dataset root to create (FreiHAND root, the `RHD_published_v2` folder, STB root).
        n: freihand: training poses (4 images each); rhd: evaluation images; stb: frames per
            sequence (B1Counting and B1Random, left + right view each). None = `DEFAULT_N`.
        n_other: freihand: evaluation poses; rhd: training images; stb: unused. None = default.
        seed: every random draw derives from it (same seed and sizes: same bytes).
        style: "source", "mixed-target" or "HAND_COLOUR:COLOUR[:BACKGROUND]" (Table 2 words,
            "*" = drawn per image); None = freihand "source", rhd/stb "mixed-target".
        overwrite: replace an existing, different dataset at `out`.
        views: hand orientations: "any" (uniform on SO(3), default) or "dorsal" (back of the
            hand towards the camera, any in-plane roll, +-25 deg tilts; see `synth.hand.VIEWS`).
    """

    format: Literal["freihand", "rhd", "stb"]
    out: str
    n: int | None = None
    n_other: int | None = None
    seed: int = 0
    style: str | None = None
    overwrite: bool = False
    views: str = "any"

    def resolved(self) -> tuple[int, int, str]:
        """(n, n_other, style) with the per-format defaults filled in."""
        n = DEFAULT_N[self.format] if self.n is None else self.n
        n_other = DEFAULT_N_OTHER[self.format] if self.n_other is None else self.n_other
        style = self.style or writers.DEFAULT_STYLE[self.format]
        return n, n_other, style


def _validate(cfg: SynthConfig) -> tuple[int, int, str]:
    if cfg.format not in writers.FORMATS:
        raise HcdgError(f"--format {cfg.format!r}: expected one of {', '.join(writers.FORMATS)}")
    n, n_other, style = cfg.resolved()
    if n < 1:
        raise HcdgError(f"--n {n}: expected at least 1")
    if cfg.format == "stb":
        if cfg.n_other not in (None, 0):
            raise HcdgError("--n-other: not used by stb (both sequences get --n frames)")
    elif n_other < 1:
        what = "evaluation poses" if cfg.format == "freihand" else "training images"
        raise HcdgError(f"--n-other {n_other}: expected at least 1 ({cfg.format} {what})")
    if cfg.seed < 0:
        raise HcdgError(f"--seed {cfg.seed}: expected a non-negative integer")
    styles.parse_style(style)  # raises HcdgError naming --style
    if cfg.views not in hand.VIEWS:
        raise HcdgError(f"--views {cfg.views!r}: expected one of {', '.join(hand.VIEWS)}")
    return n, n_other, style


def _same_dataset(root: Path, fmt: str, seed: int, style: str, n: int, n_other: int, views: str) -> bool:
    """Whether `root` already holds exactly what these arguments would write."""
    try:
        info = json.loads((root / writers.SIDECAR).read_text())
    except (OSError, ValueError):
        return False
    want = writers.counts(fmt, n, n_other)
    have = (info.get("format"), info.get("version"), info.get("seed"), info.get("style"), info.get("counts"),
            info.get("views", "any"))
    return have == (fmt, writers.SYNTH_VERSION, seed, style, want, views)


def run(cfg: SynthConfig, progress: bool = True) -> dict[str, Any]:
    """Write the dataset; returns a summary (root, format, counts, images, style, seed, skipped)."""
    n, n_other, style = _validate(cfg)
    out = Path(cfg.out)
    summary = {"root": str(out), "format": cfg.format, "seed": cfg.seed, "style": style,
               "counts": writers.counts(cfg.format, n, n_other), "images": writers.n_images(cfg.format, n, n_other)}
    exists = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if exists:
        if out.is_dir() and _same_dataset(out, cfg.format, cfg.seed, style, n, n_other, cfg.views):
            return {**summary, "skipped": True, "seconds": 0.0}
        if not cfg.overwrite:
            raise HcdgError(f"--out {out}: exists and is not this synthetic dataset (use --overwrite to replace it)")
        if not out.is_dir():
            raise HcdgError(f"--out {out}: is a file, expected a folder")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    t0 = time.perf_counter()
    try:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=summary["images"], desc=f"synth {cfg.format}", unit="img")
        try:
            with naming(out):  # a full disk names the dataset being written
                writers.write_dataset(cfg.format, tmp, n, n_other, cfg.seed, style, bar.update if bar else None,
                                      cfg.views)
        finally:
            if bar is not None:
                bar.close()
        os.chmod(tmp, dir_mode())  # mkdtemp makes it 0700; the umask decides
        if exists:
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            if out.exists():
                out.rmdir()  # an empty folder
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "skipped": False, "seconds": round(time.perf_counter() - t0, 3)}
