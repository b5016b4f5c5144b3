"""The one exception type users see: a clear, one-line message.

Every bad-input path (missing file, wrong count, unknown option, mismatched
store) raises `HcdgError` with a message naming the file/option and what was
expected. The CLI prints it as one line and exits non-zero.
"""


class HcdgError(Exception):
    """A user-facing error: the message is one line naming what and where."""
