"""Several training runs fed from one data loader (`hcdg sweep --shared-batches`).

Runs whose batches are the same (`batch_key`: same data, seed, batch size, augmentation,
crop and target settings) see exactly the same decoded, cropped and augmented samples at
every step: `pipeline.train_data` makes a step's data a function of (seed, step) alone.
`train_group` decodes each batch once and steps every run on it in turn. Each run keeps
everything else of its own: model, Adam, prompt draws (seeded by (seed, step)), the
global RNG state (swapped in before each of its steps: model initialisation and dropout
draw what they would alone), run folder and its lock, checkpoints, metrics, validation,
`done.json`. So each run's metrics and final weights equal those of the same run trained
alone with `hcdg train` (tests/test_sweep_shared.py checks bit equality on CPU).

Validation batches (no augmentation, the same at every validation) are decoded once and
replayed to every run of the group while they fit in `VAL_CACHE_BYTES`.

Runs may start at different steps (some resumed from a checkpoint, some fresh) and end at
different totals: the loader spans [min start, max total) and a run steps only inside its
own range. One run failing with an `HcdgError` (the non-finite guard, a damaged
checkpoint, a refused folder) stops that run, with its one-line reason in the result list;
the others go on.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hcdg.pipeline.config import to_dict
from hcdg.pipeline.devices import resolve_device
from hcdg.pipeline.errors import HcdgError
from hcdg.stages.train_config import TrainConfig, fields_with
from hcdg.stages.train_dist import DistEnv
from hcdg.stages.train_loop import (
    STOP_ENV, PointRun, finish_point, open_data, setup_point, step_point, stop_after_step, to_device, train_loader,
)  # fmt: skip

#: TrainConfig fields that decide which batches a run sees (pipeline.train_data: reader, train/val
#: split, order, augmentation, crop + heatmap rendering, pose target), plus where it runs: the fields
#: declared `batch=True` in stages/train_config.py. Runs equal in all of them can share one loader.
#: (The store decides the rows gathered for the CLIP feature and which unreadable images are
#: dropped: `train_group` checks those after opening it.)
BATCH_FIELDS = fields_with(batch=True)
#: Validation batches kept in memory for replay to the group's other runs. FreiHAND's 2 %
#: held out at 256 px is ~2,600 crops x 0.9 MB = 2.3 GB: above this, each run decodes them again.
VAL_CACHE_BYTES = 1 << 30


def batch_key(cfg: TrainConfig) -> str:
    """A string equal for runs that see the same batches (`BATCH_FIELDS`)."""
    d = to_dict(cfg)
    key = {k: d[k] for k in BATCH_FIELDS}
    if not cfg.augment:  # no augmentation: its magnitudes change nothing
        key["geom"] = key["color"] = None
    return json.dumps(key, sort_keys=True, default=str)


def group_by_batches(cfgs: list[TrainConfig]) -> list[list[int]]:
    """Indices of `cfgs` grouped by `batch_key`, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(batch_key(cfg), []).append(i)
    return list(groups.values())


# --- one RNG state per run -------------------------------------------------------------------


@dataclass
class _RngState:
    torch_cpu: torch.Tensor
    cuda: list[torch.Tensor] | None
    numpy: Any
    python: Any


def _capture() -> _RngState:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return _RngState(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())


def _restore(st: _RngState) -> None:
    torch.set_rng_state(st.torch_cpu)
    if st.cuda is not None:
        torch.cuda.set_rng_state_all(st.cuda)
    np.random.set_state(st.numpy)
    random.setstate(st.python)


class ReplayBatches:
    """An iterable over `loader` that keeps its batches on the first full pass and replays them
    afterwards, unless they exceed `budget_bytes` (then every pass iterates `loader` again)."""

    def __init__(self, loader: Any, budget_bytes: int = VAL_CACHE_BYTES) -> None:
        self.loader, self.budget = loader, budget_bytes
        self.cache: list[dict[str, torch.Tensor]] | None = None
        self.passes = 0  # passes that iterated the loader (tests, benchmarks)

    def __iter__(self) -> Any:
        if self.cache is not None:
            yield from self.cache
            return
        self.passes += 1
        keep: list[dict[str, torch.Tensor]] | None = []
        size = 0
        for batch in self.loader:
            if keep is not None:
                size += sum(v.numel() * v.element_size() for v in batch.values())
                if size <= self.budget:
                    keep.append(batch)
                else:
                    keep = None
            yield batch
        self.cache = keep


# --- the group ---------------------------------------------------------------------------------


def same_views(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Both runs draw fresh augmentations, or both replay the same stored views."""
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _subgroups(points: dict[int, PointRun]) -> list[list[int]]:
    """Runs whose train/val indices and store rows agree (runs without CLIP use no rows)."""
    groups: list[list[Any]] = []  # [members, the group's store rows or None]
    for i, pt in points.items():
        rows = pt.data.feature_rows
        for g in groups:
            ref = points[g[0][0]]
            if (np.array_equal(ref.train_idx, pt.train_idx) and np.array_equal(ref.val_idx, pt.val_idx)
                    and same_views(ref.data.views, pt.data.views)  # stored views decide the crops
                    and (rows is None or g[1] is None or np.array_equal(rows, g[1]))):
                g[0].append(i)
                g[1] = g[1] if g[1] is not None else rows
                break
        else:
            groups.append([[i], rows])
    return [m for m, _ in groups]


def train_group(cfgs: list[TrainConfig], env: DistEnv | None = None) -> list[dict[str, Any] | HcdgError]:
    """Train runs that share their batches (`batch_key`) from one loader, in this process.

    Returns, per config, its done record or the `HcdgError` that stopped it.
    """
    from hcdg.stages import train_dist

    if not cfgs:
        return []
    if len({batch_key(c) for c in cfgs}) != 1:
        raise ValueError("train_group: the runs do not share their batches (group them with group_by_batches)")
    env = env or DistEnv(rank=0, world=1, local_rank=0, spawned=False)
    t_start = time.perf_counter()
    device = resolve_device(cfgs[0].device, env.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_dist.init(env, device)
    results: list[dict[str, Any] | HcdgError | None] = [None] * len(cfgs)
    stacks = [contextlib.ExitStack() for _ in cfgs]  # each run's folder lock, released when it ends
    datas: dict[tuple[Any, ...], Any] = {}
    points: dict[int, PointRun] = {}
    rngs: dict[int, _RngState] = {}
    outer = _capture()
    try:
        for i, cfg in enumerate(cfgs):
            key = (cfg.dataset, cfg.root, cfg.split, cfg.store, cfg.uses_clip, cfg.prompt_filter)
            try:
                if key not in datas:  # the tables are loaded once per store (and prompt filter)
                    datas[key] = open_data(cfg, device, check_files=env.rank == 0 and not env.spawned)
                pt = setup_point(cfg, env, device, datas[key], stacks[i], t_start, bar_position=len(points))
            except HcdgError as exc:
                results[i] = exc
                stacks[i].close()
                continue
            rngs[i] = _capture()  # after manual_seed(cfg.seed) + init (or the checkpoint's state)
            if pt.done is not None:
                results[i] = pt.done
                stacks[i].close()
            else:
                points[i] = pt
        for members in _subgroups(points):
            _run_subgroup({i: points[i] for i in members}, rngs, results, stacks)
    finally:
        for st in stacks:
            st.close()
        _restore(outer)
        train_dist.shutdown(env)
    return results  # type: ignore[return-value]


def _run_subgroup(points: dict[int, PointRun], rngs: dict[int, _RngState],
                  results: list[Any], stacks: list[contextlib.ExitStack]) -> None:
    def end(i: int, result: Any) -> None:
        results[i] = result
        points[i].bar.close()
        stacks[i].close()  # its lock: the folder is free for the next writer now
        del active[i]

    active = dict(points)
    for i, pt in list(active.items()):
        if pt.start >= pt.total:  # resumed at its last step: only the final model is missing
            end(i, finish_point(pt))
    if not active:
        return
    shared_val = ReplayBatches(next(iter(active.values())).val_loader)
    for pt in active.values():
        pt.val_loader = shared_val
    lo, hi = min(p.start for p in active.values()), max(p.total for p in active.values())
    src = next((p for p in active.values() if p.data.feature_rows is not None), next(iter(active.values())))
    device = src.device
    stop_after = stop_after_step()
    for step_idx, batch in zip(range(lo, hi), train_loader(src, lo, hi)):
        batch = to_device(batch, device)
        for i, pt in list(active.items()):
            if not pt.start <= step_idx < pt.total:
                continue
            _restore(rngs[i])
            try:
                step_point(pt, batch, step_idx)
                if step_idx + 1 == pt.total:
                    end(i, finish_point(pt))
            except HcdgError as exc:
                end(i, exc)
            finally:
                rngs[i] = _capture()
        if stop_after and step_idx + 1 == stop_after:
            for pt in active.values():
                pt.bar.close()
            raise SystemExit(f"{STOP_ENV}={stop_after}: stopped after step {step_idx + 1} (test hook)")
        if not active:
            break
