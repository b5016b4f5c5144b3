"""Run folders: every run records what produced it before any work starts.

A run folder holds `run.json`: its format version (``schema``, `store.schema`), the stage,
the resolved config (after TOML file and CLI flags), the seed, package versions, the git
commit of the code, the command line and the start time. Opening a folder that already
holds a *different* run is refused unless the caller resumes it. A finished training run
also holds `done.json` (steps, validation numbers, config hash). This module owns both
records and finds run folders under sweep folders (`find_run_dirs`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError
from hcdg.store import schema
from hcdg.store.atomic import atomic_write_json, read_json_object

RUN_FILE = "run.json"
DONE_FILE = "done.json"
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


def read_run(folder: str | Path, *, upgrade: bool = True) -> dict[str, Any]:
    """The `run.json` of a run folder in today's form (`store.schema.upgrade_run`), or with
    `upgrade=False` as written; a clear error when there is none."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        raise HcdgError(f"{folder}: not a run folder (expected {RUN_FILE})")
    return read_run_file(path, upgrade=upgrade)


def read_run_file(path: str | Path, *, upgrade: bool = True) -> dict[str, Any]:
    """A run record read from `path` (a `run.json` anywhere), as `read_run` returns it."""
    record = read_json_object(path, "stage, config, seed, ...")
    return schema.upgrade_run(record, str(path)) if upgrade else record


def read_done(folder: str | Path) -> dict[str, Any]:
    """`done.json` of a finished training run (HcdgError when the run has not finished)."""
    path = Path(folder) / DONE_FILE
    if not path.is_file():
        raise HcdgError(f"{folder}: the training run has not finished (no {DONE_FILE})")
    return read_json_object(path, "total_steps, config_hash, val_epe_mm, ...")


def write_done(folder: str | Path, done: dict[str, Any]) -> Path:
    """Write `done.json` (atomically; the last file a finished training run writes)."""
    path = Path(folder) / DONE_FILE
    atomic_write_json(path, done)
    return path


def finished_run(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(run record, done record) of a finished training run whose `done.json` belongs to its
    `run.json` (same config hash); None when `folder` holds no such run."""
    folder = Path(folder)
    if not (folder / DONE_FILE).is_file() or not (folder / RUN_FILE).is_file():
        return None
    run, done = read_run(folder), read_done(folder)
    return (run, done) if done.get("config_hash") == run.get("config_hash") else None


def is_run_dir(folder: str | Path) -> bool:
    """Whether `folder` holds a run (a `run.json` of any stage but a sweep's)."""
    folder = Path(folder)
    if not (folder / RUN_FILE).is_file():
        return False
    return read_run(folder).get("stage") != "sweep"  # a damaged run.json is named, not skipped


def find_run_dirs(paths: Iterable[str | Path], max_depth: int = 3) -> list[Path]:
    """Run folders among `paths`: a folder with a `run.json` is a run; any other folder
    (e.g. a sweep folder) is searched for run folders up to `max_depth` levels down.

    Order: as given, sub-folders sorted by name; duplicates dropped.
    """
    out: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if is_run_dir(folder):
            out.append(folder)
            return
        if depth >= max_depth:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            walk(child, depth + 1)

    for p in paths:
        folder = Path(p)
        if not folder.is_dir():
            raise HcdgError(f"{folder}: no such folder (expected a run folder or a sweep folder)")
        before = len(out)
        walk(folder, 0)
        if len(out) == before:
            raise HcdgError(f"{folder}: holds no run folder (no {RUN_FILE} found up to {max_depth} levels down)")
    seen: set[Path] = set()
    unique = []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    return unique


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
        old = read_run(folder, upgrade=False)
        same = old.get("stage") == stage and old.get("config") == config and old.get("seed") == seed
        if not same:
            oc = schema.upgrade_run(old, str(existing)).get("config", {})  # as today's hcdg reads it
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
        # a resumed run keeps its recorded config, so it keeps the format version that config has
        schema.SCHEMA_KEY: schema.RUN_SCHEMA if old is None else schema.run_schema(old),
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


def recorded_identity(folder: str | Path, stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config`, or the folder's recorded config when that is the same run in an older format
    (it reads as `config` once upgraded, `store.schema.upgrade_run`): so a `--resume` of an
    older run folder keeps its record and its checkpoints' config hash instead of being
    refused as another run."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return config
    try:
        old = read_run(folder, upgrade=False)
        upgraded = schema.upgrade_run(old, str(path)).get("config")
    except HcdgError:
        return config
    recorded = old.get("config")
    if old.get("stage") == stage and isinstance(recorded, dict) and recorded != config and upgraded == config:
        return recorded
    return config
