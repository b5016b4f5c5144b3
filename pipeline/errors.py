"""The one exception type users see: a clear, one-line message.

Every bad-input path (missing file, wrong count, unknown option, mismatched
store) raises `HcdgError` with a message naming the file/option and what was
expected. The CLI prints it as one line and exits non-zero.
"""

import os


class HcdgError(Exception):
    """A user-facing error: the message is one line naming what and where."""


#: What to do about an OS error, by errno name (the CLI prints one line, `os_error_line`).
_ADVICE = {
    "ENOSPC": "free space on that file system or write somewhere else",
    "EDQUOT": "your disk quota is full: free space or write somewhere else",
    "EACCES": "check its permissions or choose a path you can write",
    "EPERM": "check its permissions or choose a path you can write",
    "EROFS": "the file system is read-only: choose another path",
    "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
    "EISDIR": "it is a folder: give a file path",
    "EEXIST": "it already exists: choose another path",
    "ENOENT": "check the path",
    "EMFILE": "too many open files: raise the limit (ulimit -n) or use fewer --workers",
    "EIO": "the disk reported an I/O error: check it",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OS error that reached the command line: the path, what happened, what to do."""
    import errno as _errno

    name = _errno.errorcode.get(exc.errno or -1, "")
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    advice = _ADVICE.get(name, "check the path and the disk")
    return f"{paths or 'a file operation'}: {what}{f' ({name})' if name else ''}; {advice}"


def require_regular_file(path: str | os.PathLike[str], what: str = "file") -> None:
    """HcdgError unless `path` is a regular file (a FIFO would block a reader forever, a device
    could stream without end). Missing files raise FileNotFoundError, as `open` would."""
    import stat

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise HcdgError(f"{path}: is {kind}, expected a regular {what}")
