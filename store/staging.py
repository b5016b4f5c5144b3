"""Staged outputs: a whole output (folder or file) is written beside its target and renamed at the end.

* `staged_dir(out, tag)` / `staged_file(out, tag)` yield a temp path `.{name}.{tag}-{pid}`
  in `out`'s folder; on success it is renamed onto `out` (an existing output is moved
  aside first and deleted after the swap), on any failure it is deleted. So `out` is
  absent, the previous complete output, or the new complete one.
* A killed process leaves its temp behind. `clean_stale(out, tag)` (called by both
  context managers before they start) removes the temps of `out` whose pid is no longer
  alive on this machine; the temp of a live process is left alone.
* `write_manifest(root)` lists every file of a finished output (`MANIFEST`, written last,
  inside it); `foreign_files(root)` names what a later `--overwrite` would delete that the
  manifest does not list: `--overwrite` replaces only what hcdg wrote.

Pids are local to one machine: like the writer locks (`store.locks`), two hosts sharing
one network folder must not write the same output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from hcdg.store.atomic import dir_mode, file_mode, json_text, naming

#: File inside a staged output folder listing its files (relative paths), written last.
MANIFEST = ".hcdg-manifest.json"


def temp_path(out: Path, tag: str) -> Path:
    """`.{name}.{tag}-{pid}` beside `out`: the temp this process writes `out` through."""
    return out.parent / f".{out.name}.{tag}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(out: Path, tag: str) -> list[Path]:
    """Remove temps `.{name}.{tag}-{pid}` (and `.{name}.old-{pid}`) of `out` left by dead processes."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(?:{re.escape(tag)}|old)-(\d+)$")
    removed = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


def _swap_in(tmp: Path, out: Path) -> None:
    """Move `tmp` onto `out`; an existing `out` is moved aside first and deleted after."""
    old = None
    if out.exists() or out.is_symlink():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            _remove(old)
            os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike[str], tag: str = "tmp", manifest: bool = False) -> Iterator[Path]:
    """Yield an empty temp folder for `out`; rename it onto `out` on success, delete it on failure.

    `manifest`: write `MANIFEST` (the list of files) into it before the rename.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out, tag)
    tmp = temp_path(out, tag)
    _remove(tmp)
    try:
        with naming(out):
            tmp.mkdir()
            os.chmod(tmp, dir_mode())
            yield tmp
            if manifest:
                write_manifest(tmp)
            _swap_in(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def staged_file(out: str | os.PathLike[str], tag: str = "tmp") -> Iterator[Path]:
    """Yield a temp file path for `out` (not created); rename it onto `out` on success, delete it on failure."""
    out = Path(out)
    clean_stale(out, tag)
    tmp = temp_path(out, tag)
    _remove(tmp)
    try:
        with naming(out):
            yield tmp
            if tmp.exists():
                os.chmod(tmp, file_mode())
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def _entries(root: Path) -> tuple[list[str], list[str]]:
    """(files, folders) under `root`, relative paths, the manifest itself left out."""
    files, dirs = [], []
    for p in root.rglob("*"):
        rel = str(p.relative_to(root))
        if p.is_dir() and not p.is_symlink():
            dirs.append(rel)
        elif p.name != MANIFEST or p.parent != root:
            files.append(rel)
    return sorted(files), sorted(dirs)


def write_manifest(root: Path) -> None:
    """Write `root/MANIFEST`: every file under `root` (relative paths, sorted)."""
    (root / MANIFEST).write_text(json_text({"files": _entries(root)[0]}))


def foreign_files(root: Path) -> list[str]:
    """Files and folders under `root` that its `MANIFEST` does not account for (all, without a manifest).

    A folder is accounted for when it holds a listed file.
    """
    import json

    try:
        listed = json.loads((root / MANIFEST).read_text())["files"]
        listed = {str(f) for f in listed}
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    files, dirs = _entries(root)
    parents = {str(Path(f).parent) for f in listed}
    held = {str(p) for f in parents for p in [Path(f), *Path(f).parents]}
    return [f for f in files if f not in listed] + [d for d in dirs if d not in held]
