"""Run folders: every run records what produced it before any work starts.

A run folder holds `run.json`: the stage, the resolved config (after TOML file
and CLI flags), the seed, package versions, the git commit of the code, the
command line and the start time. Opening a folder that already holds a
*different* run is refused unless the caller resumes it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the run folder's writer lock (`RUN/.hcdg-lock`, `store.locks`), creating the folder if needed.

    A second writer is refused with one line naming the holder. When the block fails and
    this call created the folder, the folder is removed again if nothing else was written.
    """
    from hcdg.store.locks import RUN_LOCK, writer_lock

    folder = Path(folder)
    check_folder_path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HcdgError(f"--out {folder}: cannot create the run folder ({exc.strerror or exc})") from None
    ok = False
    try:
        with writer_lock(folder / RUN_LOCK, f"run folder {folder}"):
            clean_stale_temps(folder)
            yield folder
            ok = True
    finally:
        if created and not ok:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a refused command leaves nothing behind


def check_folder_path(folder: Path) -> None:
    """One line when `folder` (or a parent) is a file."""
    for p in (folder, *folder.parents):
        if p.exists() and not p.is_dir():
            raise HcdgError(f"--out {folder}: {p} is a file, not a folder; give a folder path")
        if p.exists():
            break


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove `.tmp-*` files a killed write left in `folder` (call while holding its writer lock)."""
    removed = []
    for stale in folder.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            removed.append(stale)
    return removed


def _is_empty(folder: Path) -> bool:
    from hcdg.store.locks import RUN_LOCK

    return not any(p.name != RUN_LOCK for p in folder.iterdir())


def check_run(folder: str | Path, *, stage: str, config: dict[str, Any], seed: int, resume: bool = False
              ) -> dict[str, Any] | None:
    """The refusals of `prepare_run`, without writing: the folder's old record (None when new)."""
    folder = Path(folder)
    existing = folder / RUN_FILE
    if existing.is_file():
        old = read_run(folder)
        same = old.get("stage") == stage and old.get("config") == config and old.get("seed") == seed
        if not same:
            oc = config_of(old)  # keys the record predates count with the values such runs had
            keys = sorted(k for k in set(oc) | set(config) if oc.get(k, "<absent>") != config.get(k, "<absent>"))
            what = (f"config key {keys[0]!r}: recorded {oc.get(keys[0], '<absent>')!r}, now "
                    f"{config.get(keys[0], '<absent>')!r}" + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else "")
                    if keys else "other stage or seed")
            raise HcdgError(
                f"{folder}: holds a different run ({old.get('stage')}; {what}); use a new --out folder"
            )
        if not resume:
            raise HcdgError(f"{folder}: already holds this run; pass --resume to continue it")
        return old
    if folder.exists() and not _is_empty(folder):
        raise HcdgError(f"{folder}: exists and is not an hcdg run folder; use a new --out folder")
    return None


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
    old = check_run(folder, stage=stage, config=config, seed=seed, resume=resume)
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
    if old is not None:
        record["started_at"] = old.get("started_at")
        record["resumed_at"] = [*old.get("resumed_at", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(existing, record)
    return folder


#: Train-config keys added after run folders were first written, with the value such runs
#: were trained with (their run.json lacks the key). `config_of` fills them in, so an old
#: run reads with what it really did, not with today's defaults.
LEGACY_TRAIN_VALUES: dict[str, Any] = {
    "heat_reduction": "mean", "pose_reduction": "mean", "heat_stages": "all", "heat_resolution": "grid",
    "gaussian": "exp-d2-2s2", "preset": "paper", "target": "xyz", "arch": "hcdg",
    "augment_on": "workers", "compile": "off", "channels_last": False,
}


def recorded_identity(folder: str | Path, stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config`, or the folder's recorded config when that is the same run written before some
    keys existed (`config_of(record) == config`): so a `--resume` of an older run folder keeps
    its record and its checkpoints' config hash instead of being refused as another run."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return config
    try:
        old = read_run(folder)
    except HcdgError:
        return config
    recorded = old.get("config")
    if old.get("stage") == stage and isinstance(recorded, dict) and recorded != config and config_of(old) == config:
        return recorded
    return config


def config_of(record: dict[str, Any]) -> dict[str, Any]:
    """The `config` of a run record; for train runs, keys it predates filled in with
    `LEGACY_TRAIN_VALUES`. Other stages' configs are returned as they are."""
    config = record.get("config", {})
    if not isinstance(config, dict):
        return {}
    if record.get("stage") != "train":
        return dict(config)
    return {**{k: v for k, v in LEGACY_TRAIN_VALUES.items() if k not in config}, **config}

