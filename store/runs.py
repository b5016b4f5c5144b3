"""Run folders: every run records what produced it before any work starts.

A run folder holds `run.json`: the stage, the resolved config (after TOML file
and CLI flags), the seed, package versions, the git commit of the code, the
command line and the start time. Opening a folder that already holds a
*different* run is refused unless the caller resumes it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError
from hcdg.store.atomic import atomic_write_json, read_json_object

RUN_FILE = "run.json"
_PACKAGES = ("hcdg", "torch", "torchvision", "open_clip_torch", "numpy", "zarr", "h5py", "pandas", "pyarrow")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the hcdg source tree (with `-dirty` when modified), or None outside git."""
    src = cwd or Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=src, capture_output=True, text=True, timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_run(folder: str | Path) -> dict[str, Any]:
    """The `run.json` of a run folder; a clear error when there is none."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        raise HcdgError(f"{folder}: not a run folder (expected {RUN_FILE})")
    return read_json_object(path, "stage, config, seed, ...")


def prepare_run(
    folder: str | Path,
    *,
    stage: str,
    config: dict[str, Any],
    seed: int,
    resume: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Create (or, with `resume`, reopen) a run folder and record its provenance.

    A folder whose `run.json` holds a different stage or config is refused unless
    `resume` is set *and* the config matches; a non-empty folder that is not a run
    is refused too, so results are never mixed.
    """
    folder = Path(folder)
    record = {
        "stage": stage,
        "config": config,
        "seed": seed,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "argv": sys.argv,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    existing = folder / RUN_FILE
    if existing.is_file():
        old = read_run(folder)
        same = old.get("stage") == stage and old.get("config") == config and old.get("seed") == seed
        if not same:
            oc = old.get("config") if isinstance(old.get("config"), dict) else {}
            keys = sorted(k for k in set(oc) | set(config) if oc.get(k, "<absent>") != config.get(k, "<absent>"))
            what = (f"config key {keys[0]!r}: recorded {oc.get(keys[0], '<absent>')!r}, now "
                    f"{config.get(keys[0], '<absent>')!r}" + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else "")
                    if keys else "other stage or seed")
            raise HcdgError(
                f"{folder}: holds a different run ({old.get('stage')}; {what}); use a new --out folder"
            )
        if not resume:
            raise HcdgError(f"{folder}: already holds this run; pass --resume to continue it")
        record["started_at"] = old.get("started_at")
        record["resumed_at"] = [*old.get("resumed_at", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
    elif folder.exists() and any(folder.iterdir()):
        raise HcdgError(f"{folder}: exists and is not an hcdg run folder; use a new --out folder")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(existing, record)
    return folder
