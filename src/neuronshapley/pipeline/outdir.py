"""A run's output folder: locked while a run writes it, never holding files of two runs.

:class:`OutputFolder` (a context manager) refuses a file, or a folder that holds files,
unless ``overwrite``; creates the folder; and takes a lock on ``.neuronshapley.lock`` in it
(an OS lock held by this process, with its pid written in the file for the message a second
run gets). The operating system drops the lock when the process ends, however it ends, so a
lock file left by a dead process is simply taken over. :meth:`OutputFolder.clear_previous`
removes the files an earlier run of this tool wrote (only those: other files are kept)
just before the new ones are written.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from neuronshapley.errors import RunError

LOCK_NAME = ".neuronshapley.lock"
#: What ``run``, ``demo`` and the report write into an output folder (glob patterns).
TOOL_FILES = (
    "values.csv", "metadata.json", "state.npz", "state.json", "run_config.json",
    "report.html", "removal.csv", "ablation.csv", "summary.json", ".*.tmp",
    "figures/values.png", "figures/top_units.png", "figures/samples.png",
    "figures/removal.png", "figures/layers.png", "figures/units/unit*_examples.png",
    "figures/units/unit*_featvis.png", "figures/units/units.json",
)
_TOOL_FOLDERS = ("figures/units", "figures")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class OutputFolder:
    """``with OutputFolder(path, overwrite) as folder:`` claims ``path`` for one run."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False,
                 flag: str = "--overwrite", option: str = "--out") -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._flag, self._option = flag, option
        self._fd: int | None = None
        self._created = False

    # ------------------------------------------------------------------ claim
    def __enter__(self) -> OutputFolder:
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunError(f"output {p} is a file, not a folder: choose another {self._option}")
        if not p.exists():
            try:
                p.mkdir(parents=True)
            except FileExistsError:  # made by a concurrent run meanwhile: lock decides
                pass
            except OSError as exc:
                raise RunError(f"cannot create the output folder {p}: "
                               f"{exc.strerror or exc}") from None
            else:
                self._created = True
        self._lock()
        try:
            if self.contents() and not self.overwrite:
                raise RunError(
                    f"output folder {p} is not empty and would be overwritten: pass "
                    f"{self._flag}, or choose another {self._option}"
                )
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def contents(self) -> list[Path]:
        """What the folder holds besides the lock file."""
        return [c for c in self.path.iterdir() if c.name != LOCK_NAME]

    def clear_previous(self) -> list[Path]:
        """Remove the files an earlier run of this tool wrote here; return the others kept."""
        for pattern in TOOL_FILES:
            for f in self.path.glob(pattern):
                if f.is_file() or f.is_symlink():
                    f.unlink(missing_ok=True)
        for name in _TOOL_FOLDERS:
            folder = self.path / name
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return self.contents()

    # ------------------------------------------------------------------- lock
    def _lock(self) -> None:
        lock = self.path / LOCK_NAME
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunError(f"cannot write into the output folder {self.path}: "
                               f"{exc.strerror or exc}") from None
            if not _try_lock(fd):
                holder = _holder(fd)
                os.close(fd)
                raise RunError(
                    f"output folder {self.path} is being written by another run ({holder}): "
                    f"wait for it to finish, or choose another {self._option}"
                )
            try:  # the previous holder may have removed the file between open and lock
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (and the folder, if this run made it and left it empty)."""
        if self._fd is None:
            return
        (self.path / LOCK_NAME).unlink(missing_ok=True)  # while still holding the lock
        os.close(self._fd)
        self._fd = None
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


__all__ = ["LOCK_NAME", "TOOL_FILES", "OutputFolder"]
