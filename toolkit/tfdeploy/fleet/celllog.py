"""A fan-out cell's log file that never fails its cell.

The log is a copy of what happened, for people; Terraform's output also reaches tfdeploy in
memory. When the disk under the log fills up (ENOSPC) or goes away, writing it must not raise
inside a running Terraform's output loop (that abandoned a running apply) nor in the runner
(that ended the whole fan-out with a traceback): the log stops growing, remembers why, and the
cell's result says its log is incomplete.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path


class CellLog(io.TextIOBase):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.error: OSError | None = None
        try:
            self._file: io.TextIOBase | None = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            self._file, self.error = None, exc

    def writable(self) -> bool:
        return True

    @property
    def err(self) -> "CellLog":
        """Where Terraform's stderr goes: the same log."""
        return self

    def note(self, text: str) -> None:
        """The runner's own line about the cell (started, its error, finished): kept in the log."""
        self.write(text)

    def write(self, text: str) -> int:
        if self._file is not None and self.error is None:
            try:
                self._file.write(text)
            except OSError as exc:
                self.error = exc
        return len(text)

    def flush(self) -> None:
        if self._file is not None and self.error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self.error = self.error or exc
            self._file = None
        super().close()

    @property
    def problem(self) -> str:
        """"" when the log is whole, else one phrase saying why it is not."""
        if self.error is None:
            return ""
        return f"its log {self.path} is incomplete ({describe_os_error(self.error)})"


# How describe_os_error starts its phrase for a failing disk (the run summary looks for them).
DISK_WORDS = ("the local disk is full", "the disk quota is exhausted", "the local disk is read-only")


def describe_os_error(exc: OSError) -> str:
    """An OSError in the words an operator acts on (pure)."""
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the local disk is full{where}"
    if exc.errno == errno.EDQUOT:
        return f"the disk quota is exhausted{where}"
    if exc.errno == errno.EROFS:
        return f"the local disk is read-only{where}"
    return f"{exc.strerror or exc}{where}"


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
