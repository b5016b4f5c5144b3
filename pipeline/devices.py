"""Turning a `--device` flag into a torch device, once, for every stage."""

from __future__ import annotations

import os

import torch

from hcdg.pipeline.errors import HcdgError


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """`auto` -> this process's GPU (`cuda:LOCAL_RANK`) when CUDA is there, else the CPU.

    `cuda` without an index also means this process's GPU, so the same flag works
    under torchrun. A malformed spec or CUDA asked for where there is none is a
    one-line `HcdgError` naming `--device`.
    """
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise HcdgError(f"--device {spec}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HcdgError(f"--device {spec}: CUDA is not available on this machine")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev
