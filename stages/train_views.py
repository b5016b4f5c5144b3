"""`hcdg train` on a store with augmented views (`hcdg embed --views K`): the run's augmentation must be the
one the views were drawn from (docs/store.md "Views")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError
from hcdg.stages.train_config import TrainConfig


def check_views(cfg: TrainConfig, store: str | Path, views_fp: dict[str, Any]) -> int:
    """K of the store's view split, after refusing a run whose crop or augmentation differs from the
    embedded one (one line naming each difference)."""
    from hcdg.pipeline.views import augmentation_spec
    from hcdg.store.fingerprint import diff

    k = int(views_fp.get("k", 0))
    if k < 1:
        raise HcdgError(f"--store {store}: split {cfg.split_key} records views with K = {k}; rebuild it with `hcdg embed`")
    if not cfg.augment:
        raise HcdgError(f"--store {store}: split {cfg.split_key} holds {k} augmented views per image, but this run "
                        "has --no-augment; train with augmentation or on a store embedded without --views")
    here = augmentation_spec(cfg.crop_config(), cfg.geom, cfg.color)
    diffs = diff(views_fp.get("augmentation"), here)
    if diffs:
        raise HcdgError(f"--store {store}: split {cfg.split_key}'s {k} views were drawn from another augmentation than "
                        f"this run's ({'; '.join(diffs[:4])}); "
                        "embed again with --views and this run's --view-preset/--view-config, or train with the "
                        "store's settings")
    return k
