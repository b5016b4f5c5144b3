"""Training data on the fly: crops with geometric and colour augmentation, a held-out split.

Pure (no file layout policy): a torch `Dataset` over any `HandDataset` reader. Each
item goes through the shared transform `hcdg.pipeline.transforms.prepare` (crop around
the hand, left hands mirrored to right) with a random scale / rotation / translation
(`GeomAug`), then colour jitter, and carries the row of the sample in the feature
store's image table (`feat_row`) so the training step can gather its cached CLIP
feature on the device.

Determinism: nothing here holds RNG state. Item keys are `(epoch, reader index)` and
the augmentation of an item is drawn from `numpy.random.default_rng([seed, epoch,
index])`; the order of an epoch is a permutation drawn from `(seed, epoch)`. So the
data a step sees is a function of (seed, step) alone: the same with any number of
loader workers, after a resume, and whatever the number of DDP ranks (each rank takes
its slice of the global batch).

Trade-off (documented in docs/training.md): the cached CLIP image feature is that of
the *un-augmented* image (the store is computed once, by `hcdg embed`), while the
network sees the augmented crop. The feature still describes the sample's content and
style; what it does not see is the random crop/rotation/jitter of the step. The paper
computes CLIP on the fly, but CLIP is trained to be largely invariant to such mild
geometric/photometric changes, and caching is what makes training as fast as the
baseline and a ratio sweep reuse one store. A store embedded with `--views K`
(`pipeline.views`) holds K augmented crops per image instead; with `views=` an item
replays one of them (its stored parameters), so the network sees the crop CLIP saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hcdg.pipeline import hands
from hcdg.pipeline.aug_configs import ColorJitter  # noqa: F401  (defined there, torch-free)

if TYPE_CHECKING:
    from hcdg.pipeline.transforms import GeomParams

#: `numpy.random.default_rng` stream tags, so the order and augmentation streams never collide.
_ORDER_TAG = 0x0DE2
_AUG_TAG = 0xA06
_SPLIT_TAG = 0x5B17
_VIEW_PICK_TAG = 0x71E


def jitter_factors(jitter: ColorJitter, rng: np.random.Generator) -> tuple[float, float, float]:
    """The (brightness, contrast, saturation) factors of one jitter, drawn from `rng` in that order
    (shared by `color_jitter` and the device path, `pipeline.device_aug`)."""
    b, c, s = (1.0 + rng.uniform(-m, m) if m > 0 else 1.0 for m in (jitter.brightness, jitter.contrast, jitter.saturation))
    return b, c, s


def color_jitter(image: np.ndarray, jitter: ColorJitter, rng: np.random.Generator) -> np.ndarray:
    """Jitter a float image (3, H, W) in [0, 1]: brightness, contrast, saturation (random order not used).

    Returns a new float32 array clipped to [0, 1].
    """
    return apply_color(image, jitter_factors(jitter, rng))


def apply_color(image: np.ndarray, bcs: tuple[float, float, float]) -> np.ndarray:
    """`color_jitter` with given (brightness, contrast, saturation) factors: a float image (3, H, W)
    in [0, 1] -> a new float32 array clipped to [0, 1]."""
    img = image.astype(np.float32, copy=True)
    b, c, s = (float(f) for f in bcs)
    img *= b
    gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]  # ITU-R 601 luma
    img = (img - gray.mean()) * c + gray.mean()
    gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    img = (img - gray[None]) * s + gray[None]
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def view_geom(row: np.ndarray) -> GeomParams:
    """The `transforms.GeomParams` of a stored view's parameter row (`pipeline.views.VIEW_PARAMS`:
    scale, rotation_deg, shift_x_frac, shift_y_frac, then the colour factors), float32 widened to float."""
    from hcdg.pipeline.transforms import GeomParams

    return GeomParams(*(float(x) for x in row[:4]))


def view_bcs(row: np.ndarray) -> tuple[float, float, float]:
    """The (brightness, contrast, saturation) factors of a stored view's parameter row."""
    return float(row[4]), float(row[5]), float(row[6])


#: Keys of an item (and of a collated batch) the training step uses.
ITEM_KEYS = ("image", "heatmaps", "uv_crop", "xyz_rel_norm", "pose_target", "bone_scale_m", "root_xyz_m",
             "K_crop", "hand_side", "visible", "feat_row", "index")


class AugmentedSamples(Dataset):
    """Items `(epoch, reader_index) -> dict of tensors` for training or validation.

    Args:
        reader: any `HandDataset`.
        crop: the `transforms.CropConfig` (crop size = network input size).
        geom: a `transforms.GeomAug` for training, None for validation (no augmentation).
        color: colour jitter for training, None for none.
        seed: the run's seed; with (epoch, index) it fixes each item's augmentation.
        feature_rows: (len(reader),) int64 row of each sample in the store's image
            table, or None when the run uses no CLIP features (rows are then -1).
        target: what `pose_target` holds: "xyz" = `xyz_rel_norm`; "uvd" = the authors'
            normalised crop uvd (`authors.uvd_target`).
        augment_on: "workers" = items carry "image" and "heatmaps"; "device" = the same random
            draws, but items carry the decoded image ("image_u8" (H, W, 3) uint8), the warp
            ("image_from_crop" (3, 3) crop -> image pixels) and the colour factors ("color_bcs"
            (3,)) instead, for `device_aug.render_batch` in the training step. All of a batch's
            images must then have one size (a dataset's images do).
        views: (len(reader), K, 7) float32 stored augmented views (`pipeline.views`, from a store
            built with `hcdg embed --views K`), or None. With views, each item replays one of its
            sample's K views (picked from (seed, epoch, index)) instead of drawing a fresh
            augmentation, and `feat_row` is `feature_rows[index] + view` (the view's row).
    """

    def __init__(
        self,
        reader: Any,
        crop: Any,
        geom: Any | None,
        color: ColorJitter | None,
        seed: int,
        feature_rows: np.ndarray | None = None,
        target: str = "xyz",
        augment_on: str = "workers",
        views: np.ndarray | None = None,
    ) -> None:
        if target not in ("xyz", "uvd"):
            raise ValueError(f"target: expected 'xyz' or 'uvd', got {target!r}")
        if augment_on not in ("workers", "device"):
            raise ValueError(f"augment_on: expected 'workers' or 'device', got {augment_on!r}")
        self.augment_on = augment_on
        self.target = target
        self.reader = reader
        self.crop = crop
        self.geom = geom
        self.color = color
        self.seed = int(seed)
        self.feature_rows = None if feature_rows is None else np.asarray(feature_rows, dtype=np.int64)
        if views is not None and (self.feature_rows is None or geom is None):
            raise ValueError("views: stored views need feature_rows and a geometric augmentation")
        self.views = None if views is None else np.asarray(views, dtype=np.float32)

    def pick_view(self, epoch: int, index: int) -> int:
        """The stored view item (epoch, index) replays: uniform over K, a function of (seed, epoch, index)
        alone (the same for any loader workers, DDP rank count or resume point)."""
        assert self.views is not None
        return int(np.random.default_rng([self.seed, _VIEW_PICK_TAG, epoch, index]).integers(self.views.shape[1]))

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        from hcdg.pipeline.transforms import draw_geom, prepare

        epoch, index = (int(k) for k in key)
        rng = np.random.default_rng([self.seed, _AUG_TAG, epoch, index])
        sample = self.reader[index]
        on_device = self.augment_on == "device"
        view, bcs = -1, None
        if self.views is not None:  # replay a stored view: the crop its CLIP feature was computed on
            view = self.pick_view(epoch, index)
            params = view_geom(self.views[index, view])
            bcs = view_bcs(self.views[index, view])
        else:
            params = draw_geom(self.geom, rng) if self.geom is not None else None
        out = prepare(sample, self.crop, None, None, render=not on_device, params=params)
        if on_device:  # same draws, same order: geometry, then colour
            if bcs is None:
                bcs = jitter_factors(self.color, rng) if self.color is not None else (1.0, 1.0, 1.0)
            from hcdg.pipeline.camera import affine_inverse

            pixels = {
                "image_u8": torch.from_numpy(np.require(sample.image, np.uint8, ["C", "W"])),
                "image_from_crop": torch.from_numpy(
                    affine_inverse(out["crop_from_image"] @ out["image_from_original"]).astype(np.float32)),
                "color_bcs": torch.tensor(bcs, dtype=torch.float32),
            }
        else:
            image = np.asarray(out["image"], dtype=np.float32)
            if bcs is not None:
                image = apply_color(image, bcs)
            elif self.color is not None:
                image = color_jitter(image, self.color, rng)
            pixels = {"image": torch.from_numpy(np.ascontiguousarray(image)),
                      "heatmaps": torch.from_numpy(np.asarray(out["heatmaps"], dtype=np.float32))}
        row = -1 if self.feature_rows is None else int(self.feature_rows[index]) + max(view, 0)
        rel = np.asarray(out["xyz_rel_norm"], dtype=np.float32)
        if self.target == "uvd":
            from hcdg.pipeline.authors import uvd_target

            pose = uvd_target(out["uv_crop"], np.asarray(out["xyz_m"])[:, 2], self.crop.input_size)
        else:
            pose = rel
        return {
            **pixels,
            "uv_crop": torch.from_numpy(np.asarray(out["uv_crop"], dtype=np.float32)),
            "xyz_rel_norm": torch.from_numpy(rel),
            "pose_target": torch.from_numpy(np.ascontiguousarray(pose, dtype=np.float32)),
            "bone_scale_m": torch.tensor(float(out["bone_scale_m"]), dtype=torch.float32),
            "root_xyz_m": torch.from_numpy(np.asarray(out["root_xyz_m"], dtype=np.float32)),
            "K_crop": torch.from_numpy(np.asarray(out["K_crop"], dtype=np.float32)),
            "hand_side": torch.from_numpy(np.asarray(out["hand_side"], dtype=np.float32)),
            "visible": torch.from_numpy(np.asarray(out["visible"], dtype=bool)),
            "feat_row": torch.tensor(row, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }


# --- which samples train, which validate ---------------------------------------------


def pose_groups(reader: Any) -> np.ndarray:
    """(N,) int group id per sample: samples sharing a group never straddle train/val.

    FreiHAND's training split holds every pose 4 times (green screen + 3 background
    versions; docs/sources.md#freihand: annotation index = id mod n_poses), so its group is the pose
    id; elsewhere each sample is its own group.
    """
    n = len(reader)
    if getattr(reader, "dataset", None) == "freihand" and getattr(reader, "split", None) == "training":
        n_poses = getattr(reader, "n_poses", None) or (n // 4 if n % 4 == 0 and n >= 4 else n)
        return np.arange(n, dtype=np.int64) % int(n_poses)
    return np.arange(n, dtype=np.int64)


def split_train_val(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), sorted, holding out ~`val_fraction` of the groups.

    The held-out groups are a seeded random choice; with a fraction > 0 at least one
    group is held out and at least one kept.
    """
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = 0 if val_fraction == 0 else min(max(1, round(val_fraction * len(uniq))), len(uniq) - 1)
    perm = np.random.default_rng([int(seed), _SPLIT_TAG]).permutation(len(uniq))
    val_groups = uniq[perm[:n_val]]
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def rel_norm_pose(xyz_m: np.ndarray, side: str) -> np.ndarray:
    """(21, 3) root-relative, bone-normalised pose of a hand, left hands mirrored (x -> -x).

    Same convention as `transforms.prepare`'s `xyz_rel_norm` (root = joint 0, bone =
    middle MCP->PIP, joints 9->10).
    """
    xyz = np.asarray(xyz_m, dtype=np.float64)
    if side == "left":
        xyz = xyz * np.array([-1.0, 1.0, 1.0])
    return (xyz - xyz[0]) / hands.bone_scale(xyz)


def mean_pose(reader: Any, indices: Sequence[int]) -> np.ndarray:
    """(21, 3) mean `rel_norm_pose` over the given samples (annotations only, no image decode).

    One vectorised pass: the joints come from the reader's `poses_xyz(indices)` ((n, 21, 3)
    metres, (n,) bool left) when it has one (FreiHAND: a slice of its annotation array),
    else from `annotation(i)` per sample.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) == 0:
        return np.zeros((21, 3), dtype=np.float32)
    bulk = getattr(reader, "poses_xyz", None)
    if bulk is not None:
        xyz, left = bulk(idx)
    else:
        anns = [reader.annotation(int(i)) for i in idx]
        xyz, left = np.stack([a.xyz for a in anns]), np.array([a.side == "left" for a in anns])
    xyz = np.array(xyz, dtype=np.float64)
    xyz[np.asarray(left, dtype=bool), :, 0] *= -1.0  # left hands mirrored (x -> -x), as rel_norm_pose
    rel = (xyz - xyz[:, :1]) / hands.bone_scale_batched(xyz)[:, None, None]
    return rel.mean(axis=0).astype(np.float32)


# --- batch order -------------------------------------------------------------------------


def epoch_order(train_indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training indices in the order epoch `epoch` visits them (a function of seed, epoch)."""
    perm = np.random.default_rng([int(seed), _ORDER_TAG, int(epoch)]).permutation(len(train_indices))
    return np.asarray(train_indices)[perm]


class GlobalBatchSampler:
    """Yields this rank's slice of each global batch, from step `start_step` to `total_steps`.

    Global batch `k` of epoch `e` is `epoch_order(...)[k*B:(k+1)*B]` (the last partial
    batch of an epoch is dropped so every step sees B samples); rank `r` of `world`
    takes items `[r*B/world, (r+1)*B/world)`. Items are `(epoch, reader index)` keys.
    """

    def __init__(
        self,
        train_indices: np.ndarray,
        batch_size: int,
        seed: int,
        start_step: int,
        total_steps: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        self.train_indices = np.asarray(train_indices)
        self.batch_size = batch_size
        self.steps_per_epoch = len(self.train_indices) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train_indices)} training samples are fewer than one batch of {batch_size}")
        self.seed, self.start_step, self.total_steps = seed, start_step, total_steps
        self.local = batch_size // world
        self.rank = rank

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order, order_epoch = None, -1
        for step in range(self.start_step, self.total_steps):
            epoch, k = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(self.train_indices, self.seed, epoch), epoch
            lo = k * self.batch_size + self.rank * self.local
            yield [(epoch, int(i)) for i in order[lo : lo + self.local]]  # type: ignore[index]


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full global batches per epoch (the last partial batch is dropped)."""
    return max(0, n_train // batch_size)


def total_steps(n_train: int, batch_size: int, steps: int | None, epochs: int | None) -> int:
    """The run's length in optimizer steps: `steps` when given, else `epochs` full epochs."""
    if steps is not None:
        return int(steps)
    return int(math.floor(epochs or 0)) * steps_per_epoch(n_train, batch_size)
