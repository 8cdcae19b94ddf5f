"""Output writers.  Each writes under a temporary name and renames on close, so a
file under its final name is always complete and playable.  No Qt here.

- ``VideoSink``: a video (mask: FFV1 grey in .mkv, lossless; overlay/clips: MPEG-4 in .mp4)
- ``ImageSequenceSink``: a folder of PNGs (CDnet ``binNNNNNN.png``), folder renamed on close
- ``TextSink``: CSV / JSONL text, line-buffered
- ``check_new``: refuse to overwrite existing outputs without ``force``
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from .errors import OutputError

PART = ".part"

# fourcc and whether the codec keeps every value (lossless)
CODECS = {
    ".mkv": ("FFV1", True),
    ".avi": ("MJPG", False),
    ".mp4": ("mp4v", False),
}


def part_name(path: Path) -> Path:
    """``mask.mkv`` -> ``mask.part.mkv`` (the extension stays last so the muxer is chosen right)."""
    return path.with_name(path.stem + PART + path.suffix)


def check_new(paths, force: bool) -> None:
    """Raise OutputError if any of ``paths`` exists (a non-empty folder counts) and not ``force``."""
    if force:
        return
    for p in paths:
        p = Path(p)
        if p.is_dir() and any(p.iterdir()) or p.is_file():
            raise OutputError(f"{p} exists (use --force to overwrite)")


def _finish(tmp: Path, final: Path, ok: bool) -> Path:
    if not ok:
        return tmp
    try:
        if tmp.is_dir() and final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(tmp, final)
    except OSError as e:
        raise OutputError(f"cannot rename {tmp} to {final}: {e}") from None
    return final


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
        self._w.write(img)
        self.frames += 1

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        if self._w is None:
            return None
        self._w.release()
        self._w = None
        return _finish(self.tmp, self.path, ok)

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
        if not cv2.imwrite(str(f), mask):
            raise OutputError(f"cannot write {f}")
        self.n += 1
        self.frames += 1

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        return _finish(self.tmp, self.path, ok)


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
        if header:
            self._f.write(header + "\n")

    def line(self, text: str) -> None:
        self._f.write(text + "\n")
        self.lines += 1
        if self.flush_lines:
            self._f.flush()

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        self._f.close()
        return _finish(self.tmp, self.path, ok)


def write_image(path: str | Path, img: np.ndarray, quality: int = 90) -> Path:
    """JPEG/PNG written under a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_name(path)
    if not cv2.imwrite(str(tmp), img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
        raise OutputError(f"cannot write {path}")
    return _finish(tmp, path, True)
