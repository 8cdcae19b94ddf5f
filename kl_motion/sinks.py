"""Output writers.  Each writes under a temporary name and renames on close, so a
file under its final name is always complete and playable.  No Qt here.

- ``VideoSink``: a video (mask: FFV1 grey in .mkv, lossless; overlay/clips: MPEG-4 in .mp4)
- ``ImageSequenceSink``: a folder of PNGs (CDnet ``binNNNNNN.png``), folder renamed on close
- ``TextSink``: CSV / JSONL text, line-buffered
- ``check_new``: refuse to overwrite existing outputs without ``force``
- ``write_image``: one JPEG/PNG
(The write-then-rename itself is ``kl_motion.atomic``.)
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from .atomic import PART, atomic_path, finish as _finish, part_name  # noqa: F401  (part_name: public here too)
from .errors import OutputError

# A write stops with "disk full" when less than this is left on the output's device: OpenCV's video
# writer does not report a failed write (FFmpeg drops it), so the free space is checked before
# each frame, and the room left lets the open videos be closed with their index.
MIN_FREE_BYTES = 1 << 20
FLUSH_SECONDS = 1.0         # text outputs reach the disk at least this often (readable after a kill -9)


def check_space(path: Path) -> None:
    """OutputError naming ``path`` when its device has less than MIN_FREE_BYTES left."""
    try:
        st = os.statvfs(path if path.is_dir() else path.parent)
    except (OSError, AttributeError):     # no statvfs (Windows) or the folder is gone
        return
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise OutputError(f"{path}: disk full ({free // 1024} kB left on its device); stopped writing")


def _write_error(path: Path, e: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {e.strerror or e}")


def verify_video(path: Path, frames: int) -> str | None:
    """None when ``path`` opens, says it holds ``frames`` frames and its last frame decodes; else
    what is wrong (a failed write inside FFmpeg leaves a file without its end or index)."""
    from .fsnames import capture_path
    try:
        name, fd = capture_path(path)
    except (OSError, ValueError) as e:
        return str(e)
    cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return "it cannot be opened (no index)"
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, frames - 1))
        ok, _ = cap.read()
        if n != frames or not ok:
            return f"it holds {n} frames of the {frames} written" if n != frames else "its last frame does not decode"
        return None
    finally:
        cap.release()
        if fd is not None:
            os.close(fd)

# fourcc and whether the codec keeps every value (lossless)
CODECS = {
    ".mkv": ("FFV1", True),
    ".avi": ("MJPG", False),
    ".mp4": ("mp4v", False),
}


def check_new(paths, force: bool) -> None:
    """Raise OutputError if any of ``paths`` exists (a folder holding a complete file counts) and
    not ``force``.  Leftover ``.part`` files of a killed run do not count: they are incomplete and
    the new run writes them again."""
    if force:
        return
    for p in paths:
        p = Path(p)
        if p.is_file() or p.is_dir() and any(PART not in q.name for q in p.iterdir()):
            raise OutputError(f"{p} exists (use --force to overwrite)")


class VideoSink:
    """A video opened on the first frame (its size fixes the video's size; later
    frames of another size are resized).  Context manager; ``close(ok)`` renames."""

    def __init__(self, path: str | Path, fps: float, color: bool, fourcc: str | None = None):
        self.path = Path(path)
        self.tmp = part_name(self.path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.color = color
        self.fourcc = fourcc or CODECS.get(self.path.suffix.lower(), ("FFV1", True))[0]
        self._w: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.closed = False

    def _open(self, w: int, h: int) -> None:
        if w < 2 or h < 2:
            raise OutputError(f"{self.path}: frames of {w}x{h} pixels are too small for a video (FFmpeg needs at "
                              "least 2x2; for the mask use --mask-format png)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        vw = cv2.VideoWriter(str(self.tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                             (w, h), self.color)
        if not vw.isOpened():
            raise OutputError(f"{self.path}: cannot open a {self.fourcc} video writer")
        self._w, self.size = vw, (w, h)

    def write(self, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        if self._w is None:
            self._open(w, h)
        elif (w, h) != self.size:
            interp = cv2.INTER_NEAREST if not self.color else cv2.INTER_AREA
            img = cv2.resize(img, self.size, interpolation=interp)
        if self.color and img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif not self.color and img.ndim == 3:
            img = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        check_space(self.tmp)
        self._w.write(img)
        self.frames += 1

    def end(self, verify: bool = True) -> None:
        """Close the video without renaming it; with ``verify``, OutputError unless it decodes to
        its last frame (FFmpeg hides failed writes: a full disk leaves a file without its index)."""
        if self._w is None:
            return
        self._w.release()
        self._w = None
        if verify:
            bad = verify_video(self.tmp, self.frames)
            if bad is not None:
                raise OutputError(f"{self.tmp}: incomplete: {bad}; kept under its temporary name")

    def commit(self) -> Path | None:
        """Rename the closed video to its final name (None when nothing was written)."""
        return _finish(self.tmp, self.path, True) if self.frames else None

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        if self._w is None:
            return None
        self.end(verify=ok)
        return self.commit() if ok else self.tmp

    def discard(self) -> None:
        """Remove the temporary file (of a run that failed before writing anything)."""
        if self._w is not None:
            self._w.release()
            self._w = None
        self.closed = True
        try:
            self.tmp.unlink()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.close(ok=et is None or issubclass(et, KeyboardInterrupt))


class ImageSequenceSink:
    """PNG files ``{prefix}{n:06d}.png`` (n from ``start``) in a folder written as
    ``folder.part`` and renamed on close. ``binary`` keeps only 255 (CDnet results)."""

    def __init__(self, folder: str | Path, prefix: str = "bin", start: int = 1, binary: bool = True):
        self.path = Path(folder)
        self.tmp = self.path.with_name(self.path.name + PART)
        self.prefix, self.n, self.binary = prefix, start, binary
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.frames = 0
        self.closed = False

    def write(self, mask: np.ndarray) -> None:
        if self.binary:
            _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        f = self.tmp / f"{self.prefix}{self.n:06d}.png"
        check_space(self.tmp)
        if not cv2.imwrite(str(f), mask):
            raise OutputError(f"cannot write {f}")
        self.n += 1
        self.frames += 1

    def end(self, verify: bool = True) -> None:
        pass            # every PNG is complete when imwrite returns

    def commit(self) -> Path | None:
        return _finish(self.tmp, self.path, True)

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        return self.commit() if ok else self.tmp

    def discard(self) -> None:
        self.closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)


class TextSink:
    """A text file written as ``name.part.ext``, renamed on close; ``line()`` flushes
    when ``flush_lines`` (JSONL events a user may tail)."""

    def __init__(self, path: str | Path, header: str | None = None, flush_lines: bool = False):
        self.path = Path(path)
        self.tmp = part_name(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._f = open(self.tmp, "w", encoding="utf-8", newline="")
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e}") from None
        self.flush_lines = flush_lines
        self.lines = 0
        self.closed = False
        self._flushed = time.monotonic()
        if header:
            self._f.write(header + "\n")

    def line(self, text: str) -> None:
        """Write a line; flushed at once with ``flush_lines``, else at least every FLUSH_SECONDS."""
        try:
            self._f.write(text + "\n")
            self.lines += 1
            now = time.monotonic()
            if self.flush_lines or now - self._flushed >= FLUSH_SECONDS:
                check_space(self.tmp)
                self._f.flush()
                self._flushed = now
        except OSError as e:
            raise _write_error(self.tmp, e) from None

    def end(self, verify: bool = True) -> None:
        """Close the file (its last lines reach the disk) without renaming it."""
        if self._f.closed:
            return
        try:
            self._f.close()
        except OSError as e:   # the last buffered lines did not reach the disk
            try:
                self._f.close()
            except OSError:
                pass
            raise _write_error(self.tmp, e) from None

    def commit(self) -> Path | None:
        return _finish(self.tmp, self.path, True)

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        self.end()
        return self.commit() if ok else self.tmp

    def discard(self) -> None:
        self.closed = True
        try:
            self._f.close()
        except OSError:
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass


def write_image(path: str | Path, img: np.ndarray, quality: int = 90) -> Path:
    """JPEG/PNG written under a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_space(path.parent)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OutputError(f"cannot write {path}")
    return path
