"""DDP plumbing for `hcdg train`: torchrun environment, local spawning, process groups.

Two ways to get N processes:
* `torchrun --nproc-per-node N -m hcdg train ...`: torchrun sets RANK / WORLD_SIZE /
  LOCAL_RANK / MASTER_ADDR / MASTER_PORT; every process runs the CLI and joins with
  `init_method="env://"`.
* `hcdg train --nproc N`: the CLI process validates the run (`train_loop.preflight`),
  then spawns N local processes that join over a free localhost TCP port.

The backend is gloo on CPU and nccl on CUDA. Rank 0 writes the run folder
(checkpoints, metrics, final model); all ranks read checkpoints on resume.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hcdg.pipeline.errors import HcdgError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank of world, local rank (GPU index), how it was started."""

    rank: int
    world: int
    local_rank: int
    spawned: bool  # started by `spawn` (the parent already ran the preflight)
    init_method: str = "env://"


def torchrun_env() -> DistEnv | None:
    """The DistEnv torchrun describes through environment variables, or None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise HcdgError("torchrun: RANK / WORLD_SIZE / LOCAL_RANK are not integers") from None
    return DistEnv(rank=rank, world=world, local_rank=local, spawned=False)


def init(env: DistEnv, device: torch.device) -> None:
    """Join the process group (no-op for a single process or when already joined)."""
    if env.world <= 1 or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=env.init_method, rank=env.rank, world_size=env.world)


def barrier(env: DistEnv, device: torch.device) -> None:
    if env.world > 1 and dist.is_initialized():
        if device.type == "cuda":
            dist.barrier(device_ids=[device.index or 0])
        else:
            dist.barrier()


def all_mean(env: DistEnv, values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (the tensor itself for a single process)."""
    if env.world <= 1:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / env.world


def broadcast_flag(env: DistEnv, flag: bool, device: torch.device) -> bool:
    """Rank 0's boolean, on every rank."""
    if env.world <= 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def shutdown(env: DistEnv) -> None:
    if env.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(local_rank: int, fn: Callable[[Any, DistEnv], Any], cfg: Any, port: int) -> None:
    threads = max(1, (os.cpu_count() or 1) // cfg.nproc)
    torch.set_num_threads(threads)
    env = DistEnv(rank=local_rank, world=cfg.nproc, local_rank=local_rank, spawned=True,
                  init_method=f"tcp://127.0.0.1:{port}")
    fn(cfg, env)


def spawn(fn: Callable[[Any, DistEnv], Any], cfg: Any) -> None:
    """Run `fn(cfg, env)` in `cfg.nproc` local processes joined over a free localhost port.

    `fn` must be a module-level function (it is pickled into each process), e.g.
    `stages.train_loop.train`. A process's `HcdgError` / `ConfigError` is raised here as one line.
    """
    import torch.multiprocessing as mp

    try:
        mp.start_processes(_entry, args=(fn, cfg, _free_port()), nprocs=cfg.nproc, join=True, start_method="spawn")
    except mp.ProcessRaisedException as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else repr(exc)
        prefix = "hcdg.pipeline.errors.HcdgError: "
        if prefix in last or "ConfigError: " in last:
            raise HcdgError(last.split(": ", 1)[1]) from None
        raise HcdgError(f"a DDP training process failed: {last}") from None
    except mp.ProcessExitedException as exc:
        raise HcdgError(f"a DDP training process exited abnormally ({exc})") from None
