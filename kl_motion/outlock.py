"""One run at a time per output folder: ``DIR/NAME/.kl-motion.lock``.

Two ``kl-motion process`` runs writing the same input folder would write the same ``.part`` files
and rename each other's half-written videos (an MP4 whose header says 3,000 frames and 1,500
decode).  The second run is refused instead.  The lock is an flock on a file in the folder: the
kernel releases it when the process ends in any way (kill -9 included), so a stale lock file never
blocks a later run.  The file holds the owner's pid and is removed when the run ends.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputError

LOCK_NAME = ".kl-motion.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None


class OutputLock:
    """``with OutputLock(folder):`` -> OutputError when another process holds the folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._made_folder = False

    def acquire(self) -> "OutputLock":
        if fcntl is None:  # pragma: no cover
            return self
        if not self.folder.exists():
            try:
                self.folder.mkdir(parents=True)
                self._made_folder = True
            except FileExistsError:
                pass
            except OSError as e:
                raise OutputError(f"cannot create {self.folder}: {e.strerror or e}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise OutputError(f"cannot create {self.path}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = _read_pid(fd)
                os.close(fd)
                who = f" (pid {owner})" if owner else ""
                raise OutputError(f"{self.folder} is being written by another kl-motion run{who}; wait for it to end "
                                  "or choose another --out") from None
            try:   # the file we locked must still be the one at the path (the owner removes it at its end)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)      # while still locked: a waiting run then locks a fresh file
        except OSError:
            pass
        os.close(fd)
        if self._made_folder:         # a run that wrote nothing leaves no empty folder behind
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).split()[0])
    except (OSError, ValueError, IndexError):
        return None
