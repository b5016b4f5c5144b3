"""RHD reader (a target domain: synthetic, 320x320 PNG; docs/sources.md#rhd).

On-disk layout (the real `RHD_published_v2` folder):

    {split}/color/%05d.png      RGB image
    {split}/mask/%05d.png       labels: 0 background, 1 person, 2..17 left hand, 18..33 right hand
    {split}/depth/%05d.png      (not read)
    {split}/anno_{split}.pickle dict int id -> {'xyz': (42, 3) metres, 'uv_vis': (42, 3), 'K': (3, 3)}

Joints 0-20 are the left hand, 21-41 the right, each wrist then TIP -> MCP per
finger; the reader converts to FreiHAND order (`joints.RHD_TO_FREIHAND`).

One hand per image is evaluated: the one with more mask pixels (hand3d's rule;
ties go to the right hand). Choosing it needs the mask, so it is decided lazily
per sample, the first time `annotation(i)` (or `hand_side(i)`) is asked, and
remembered for the reader's lifetime: opening the 41,258-image training split
reads no masks. `hand_sides()` decides all at once (with a progress bar). The
side is recorded in the sample; left hands are *not* mirrored here.

The pickle is read with the restricted unpickler (`safe_pickle`): the real files
are Python 2 pickles of numpy arrays with int keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hcdg.pipeline import joints
from hcdg.pipeline.datasets import _common as c
from hcdg.pipeline.datasets.base import Sample, Side
from hcdg.pipeline.datasets.safe_pickle import load_pickle
from hcdg.pipeline.errors import HcdgError

SPLITS = ("training", "evaluation")
#: Mask label ranges (inclusive) of the two hands (RHD README; docs/sources.md#rhd).
LEFT_LABELS = (2, 17)
RIGHT_LABELS = (18, 33)
HAND_CHOICES = ("auto", "left", "right")
_IMAGE_NAME = re.compile(r"^\d{5}\.png$")


class RhdDataset:
    """RHD `training` or `evaluation` split under `root` (= `RHD_published_v2`).

    Args:
        root: the `RHD_published_v2` folder.
        split: "training" or "evaluation".
        hand: "auto" (the hand with more mask pixels; the evaluation protocol),
            or "left"/"right" to always read that hand (no mask needed).
    """

    dataset = "rhd"

    def __init__(self, root: str | Path, split: str = "evaluation", hand: str = "auto") -> None:
        if split not in SPLITS:
            raise HcdgError(f"rhd: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if hand not in HAND_CHOICES:
            raise HcdgError(f"rhd: unknown hand option {hand!r} (expected one of {', '.join(HAND_CHOICES)})")
        self.root = Path(root)
        self.split = split
        self.hand = hand
        c.require_dir(self.root, "RHD root, the RHD_published_v2 folder")
        self._anno_rel = f"{split}/anno_{split}.pickle"
        anno_path = self.root / self._anno_rel
        c.require_file(anno_path, f"RHD annotation file (anno_{split}.pickle)")
        self._ids, self._xyz, self._uv_vis, self._K = _parse_annotations(load_pickle(anno_path), anno_path)

        names = [f"{i:05d}.png" for i in self._ids]
        for sub in ("color", "mask"):
            folder = self.root / split / sub
            present = c.list_names(folder, f"RHD {split} {sub} images")
            c.check_names(folder, present, names, f"{sub} images (one per id in {anno_path.name})")
        self._sides: dict[int, tuple[Side, int, int]] = {}
        self._styles = c.read_synth_styles(self.root)

    def __len__(self) -> int:
        return len(self._ids)

    def _check(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self._ids):
            raise IndexError(f"rhd {self.split}: index {index!r} out of range 0..{len(self._ids) - 1}")
        return int(index)

    def sample_id(self, index: int) -> str:
        return f"{self._ids[self._check(index)]:05d}"

    def _rel(self, kind: str, index: int) -> str:
        return f"{self.split}/{kind}/{self._ids[index]:05d}.png"

    def image_path(self, index: int) -> Path:
        return self.root / self._rel("color", self._check(index))

    def mask_path(self, index: int) -> Path:
        return self.root / self._rel("mask", self._check(index))

    def _decide(self, index: int) -> tuple[Side, int, int]:
        if index not in self._sides:
            mask = c.decode_label_image(self.root / self._rel("mask", index))
            n_left = int(np.count_nonzero((mask >= LEFT_LABELS[0]) & (mask <= LEFT_LABELS[1])))
            n_right = int(np.count_nonzero((mask >= RIGHT_LABELS[0]) & (mask <= RIGHT_LABELS[1])))
            self._sides[index] = ("left" if n_left > n_right else "right", n_left, n_right)
        return self._sides[index]

    def hand_side(self, index: int) -> Side:
        """The hand the sample carries: `hand` if fixed, else the one with more mask pixels (reads the mask)."""
        index = self._check(index)
        if self.hand != "auto":
            return self.hand  # type: ignore[return-value]
        return self._decide(index)[0]

    def hand_sides(self, progress: bool = False) -> list[Side]:
        """`hand_side(i)` for every sample (reads all masks not read yet)."""
        indices = range(len(self))
        if progress and self.hand == "auto":
            from tqdm import tqdm

            indices = tqdm(indices, desc=f"rhd {self.split} masks", unit="img")
        return [self.hand_side(i) for i in indices]

    def annotation(self, index: int) -> Sample:
        """The sample without its image. With `hand="auto"` this reads the mask (once per sample)."""
        index = self._check(index)
        extra: dict = {}
        if self.hand == "auto":
            side, n_left, n_right = self._decide(index)
            extra["mask_pixels"] = {"left": n_left, "right": n_right}
        else:
            side = self.hand  # type: ignore[assignment]
        hand = slice(0, 21) if side == "left" else slice(21, 42)
        order = joints.RHD_TO_FREIHAND
        xyz = self._xyz[index, hand][order]
        uv_vis = self._uv_vis[index, hand][order]
        rel = self._rel("color", index)
        if rel in self._styles:
            extra["style"] = self._styles[rel]
        return Sample(
            dataset=self.dataset, split=self.split, index=index, sample_id=f"{self._ids[index]:05d}",
            image_path=self.root / rel, K=self._K[index].copy(), xyz=xyz, uv=uv_vis[:, :2].copy(),
            visible=uv_vis[:, 2] > 0, side=side, root="wrist", extra=extra,
        )

    def __getitem__(self, index: int) -> Sample:
        return c.with_image(self.annotation(index))

    def manifest(self) -> list[tuple[str, int]]:
        rels = [self._anno_rel] + c.sidecar_rels(self.root)
        for kind in ("color", "mask") if self.hand == "auto" else ("color",):
            rels += [self._rel(kind, i) for i in range(len(self._ids))]
        return c.file_sizes(self.root, rels)


def _parse_annotations(data: object, path: Path) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Validate the unpickled annotation dict; (sorted ids, xyz (N,42,3), uv_vis (N,42,3), K (N,3,3))."""
    if not isinstance(data, dict) or not data:
        raise HcdgError(f"{path}: expected a non-empty dict of int id -> annotation, got {type(data).__name__}")
    bad = next((k for k in data if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0), None)
    if bad is not None:
        raise HcdgError(f"{path}: expected non-negative int ids as keys, found {bad!r}")
    ids = sorted(int(k) for k in data)
    xyz = np.empty((len(ids), 42, 3))
    uv_vis = np.empty((len(ids), 42, 3))
    K = np.empty((len(ids), 3, 3))
    for n, key in enumerate(ids):
        entry = data[key]
        where = f"{path}: id {key}"
        if not isinstance(entry, dict):
            raise HcdgError(f"{where}: expected a dict with 'xyz', 'uv_vis', 'K', got {type(entry).__name__}")
        for name, shape, out in (("xyz", (42, 3), xyz), ("uv_vis", (42, 3), uv_vis), ("K", (3, 3), K)):
            if name not in entry:
                raise HcdgError(f"{where}: missing key {name!r}")
            out[n] = c.as_array(entry[name], shape, f"{where} {name!r}")
    where = str(path)
    c.check_finite(uv_vis, where, "'uv_vis'", "id", ids)
    c.check_intrinsics(K, where, "id", ids)
    for hand in (slice(0, 21), slice(21, 42)):  # either hand may be the one read
        c.check_joints(xyz[:, hand], where, "id", ids, in_front=False)
    return ids, xyz, uv_vis, K
