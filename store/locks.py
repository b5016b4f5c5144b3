"""One writer at a time: an advisory lock (`fcntl.flock`) on a lock file that says who holds it.

`writer_lock(path, what)` takes an exclusive, non-blocking lock on the file `path`
(created, then removed on release) and writes the holder into it: pid, host, start
time, command line. A second writer is refused at once with one line naming the
holder. The kernel drops a flock when its process dies, so a killed writer (SIGKILL,
OOM, power loss) never blocks the next one: its record is left in the file and the
next writer reports it as a stale lock it took over.

Used by `hcdg train` (RUN/.hcdg-lock, held by the CLI process, or rank 0 under
torchrun; DDP workers spawned by `--nproc` run under their parent's lock), `hcdg
sweep` (each point is a train run) and `hcdg embed` (STORE.writer-I-of-N.lock beside the
store, one per `--shard`, so shards still write in parallel). flock is local to one
machine on most network file systems: two hosts writing one NFS folder are not
excluded (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hcdg.pipeline.errors import HcdgError

RUN_LOCK = ".hcdg-lock"


def _holder(raw: str) -> dict[str, Any]:
    try:
        rec = json.loads(raw)
        return rec if isinstance(rec, dict) else {}
    except ValueError:
        return {}


def _describe(rec: dict[str, Any]) -> str:
    if not rec:
        return "another process"
    cmd = " ".join(str(a) for a in rec.get("argv", []))[:120]
    return f"pid {rec.get('pid')} on {rec.get('host')} since {rec.get('started_at')} ({cmd})"


def _alive(rec: dict[str, Any]) -> bool | None:
    """Whether the recorded holder still runs (None: another host, cannot tell)."""
    if rec.get("host") != socket.gethostname() or not isinstance(rec.get("pid"), int):
        return None
    try:
        os.kill(rec["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike[str], what: str, *, stale_note: bool = True) -> Iterator[Path]:
    """Hold the exclusive writer lock `path` for the block; HcdgError naming the holder when taken.

    `what` names the thing guarded in messages (e.g. "run folder runs/a").
    """
    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise HcdgError(f"{path}: cannot create the writer lock of {what} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            rec: dict[str, Any] = {}
            with contextlib.suppress(OSError):
                rec = _holder(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise HcdgError(f"{what}: another hcdg process is writing it ({_describe(rec)}; lock {path}); "
                            "wait for it to finish or stop it") from None
        try:  # the file may have been removed by a releasing holder between our open and flock: retry
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        old = _holder(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
        if old and stale_note and old.get("pid") != os.getpid():
            state = {False: "no longer running", None: "on another host"}.get(_alive(old), "not holding it")
            print(f"note: {what}: took over a stale lock of {_describe(old)}, {state} (killed?)", file=sys.stderr)
        rec = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(rec).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still locked: the next writer's inode check sees a fresh file
        os.close(fd)


def read_holder(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record in a lock file (None when there is none)."""
    try:
        return _holder(Path(path).read_text()) or None
    except OSError:
        return None
