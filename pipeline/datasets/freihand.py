"""FreiHAND reader (the source domain: right hands, 224x224 JPEG; docs/sources.md#freihand).

On-disk layout (the real one, as downloaded):

    training/rgb/%08d.jpg       n_images = 4 x n_poses (green screen + 3 backgrounds)
    training_xyz.json           (n_poses, 21, 3) metres, camera frame, FreiHAND order
    training_K.json             (n_poses, 3, 3)  intrinsics, pixels
    training_scale.json         (n_poses,)       reference bone length, metres
    training_mano.json          (not read)
    evaluation/rgb/%08d.jpg     n_images = n_poses
    evaluation_{xyz,K,scale}.json

Image id `i` shows pose `i mod n_poses` (version `i // n_poses`, 0 = green screen).
All counts come from the annotation files; the root is validated when opened.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hcdg.pipeline.camera import project
from hcdg.pipeline.datasets import _common as c
from hcdg.pipeline.datasets.base import Sample
from hcdg.pipeline.errors import HcdgError

SPLITS = ("training", "evaluation")
#: Images per pose in the training split: the green-screen original and three
#: background-replaced versions (docs/sources.md#freihand: 130,240 = 32,560 x 4).
TRAINING_VERSIONS = 4
_IMAGE_NAME = re.compile(r"^\d{8}\.jpg$")


class FreiHandDataset:
    """FreiHAND `training` or `evaluation` split under `root` (see the module docstring)."""

    dataset = "freihand"

    def __init__(self, root: str | Path, split: str = "training") -> None:
        if split not in SPLITS:
            raise HcdgError(f"freihand: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        self.root = Path(root)
        self.split = split
        c.require_dir(self.root, "FreiHAND root")
        files = {kind: self.root / f"{split}_{kind}.json" for kind in ("xyz", "K", "scale")}
        for kind, path in files.items():
            c.require_file(path, f"FreiHAND {split} annotation file ({split}_{kind}.json)")
        self._xyz = c.read_json_array(files["xyz"], "joint annotations", (-1, 21, 3))
        n = len(self._xyz)
        self._K = c.read_json_array(files["K"], "camera intrinsics", (n, 3, 3))
        self._scale = c.read_json_array(files["scale"], "bone scales", (n,))
        if n == 0:
            raise HcdgError(f"{files['xyz']}: no annotations (expected at least one pose)")
        c.check_joints(self._xyz, str(files["xyz"]), "pose")
        c.check_intrinsics(self._K, str(files["K"]), "pose")
        c.check_finite(self._scale, str(files["scale"]), "the bone scale", "pose")
        if (self._scale <= 0).any():
            raise HcdgError(f"{files['scale']}: bone scale of pose {int(np.flatnonzero(self._scale <= 0)[0])} "
                            "is not positive (expected metres > 0)")
        self.n_poses = n
        self.versions = TRAINING_VERSIONS if split == "training" else 1
        self._n_images = n * self.versions

        rgb = self.root / split / "rgb"
        names = {name for name in c.list_names(rgb, f"FreiHAND {split} images") if _IMAGE_NAME.match(name)}
        if len(names) != self._n_images:
            how = (f"{self.versions} versions x {n} poses in {files['xyz'].name}" if self.versions > 1
                   else f"one per pose in {files['xyz'].name}")
            raise HcdgError(f"{rgb}: found {len(names)} images (%08d.jpg), expected {self._n_images} ({how})")
        c.check_names(rgb, names, (f"{i:08d}.jpg" for i in range(self._n_images)), "images")
        self._styles = c.read_synth_styles(self.root)

    def __len__(self) -> int:
        return self._n_images

    def _check(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self._n_images:
            raise IndexError(f"freihand {self.split}: index {index!r} out of range 0..{self._n_images - 1}")
        return int(index)

    def sample_id(self, index: int) -> str:
        return f"{self._check(index):08d}"

    def _rel_image(self, index: int) -> str:
        return f"{self.split}/rgb/{index:08d}.jpg"

    def image_path(self, index: int) -> Path:
        return self.root / self._rel_image(self._check(index))

    def annotation(self, index: int) -> Sample:
        index = self._check(index)
        pose = index % self.n_poses
        xyz = self._xyz[pose].copy()
        K = self._K[pose].copy()
        extra: dict = {"pose_index": pose, "scale_m": float(self._scale[pose])}
        if self.split == "training":
            extra["version"] = index // self.n_poses
        rel = self._rel_image(index)
        if rel in self._styles:
            extra["style"] = self._styles[rel]
        return Sample(
            dataset=self.dataset, split=self.split, index=index, sample_id=f"{index:08d}",
            image_path=self.root / rel, K=K, xyz=xyz, uv=project(xyz, K),
            visible=np.ones(21, dtype=bool), side="right", root="wrist", extra=extra,
        )

    def poses_xyz(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(xyz: (n, 21, 3) metres, left: (n,) bool, all False) of samples `indices`, without
        building a `Sample` each (`train_data.mean_pose`)."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= self._n_images):
            raise IndexError(f"freihand {self.split}: an index is out of range 0..{self._n_images - 1}")
        return self._xyz[idx % self.n_poses], np.zeros(len(idx), dtype=bool)

    def __getitem__(self, index: int) -> Sample:
        return c.with_image(self.annotation(index))

    def manifest(self) -> list[tuple[str, int]]:
        rels = [f"{self.split}_{kind}.json" for kind in ("xyz", "K", "scale")] + c.sidecar_rels(self.root)
        rels += [self._rel_image(i) for i in range(self._n_images)]
        return c.file_sizes(self.root, rels)

