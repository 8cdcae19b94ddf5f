"""Video sources behind one interface: files, image folders, cameras and stream URLs.

Every failure is a SourceError with a one-line message.  A source's ``info`` (VideoInfo) says
what it can do: ``live`` (frames come in real time: cameras, streams), ``seekable`` and
``fps_known``; ``kind`` is only a label for people and summaries.  The one list of media file
extensions (``IMAGE_EXTS``, ``VIDEO_EXTS``) is here too.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import SourceError
from .fsnames import capture_path, imread, is_utf8, shown

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".webm", ".wmv",
              ".flv", ".3gp", ".mjpeg", ".mjpg", ".h264", ".h265", ".hevc", ".dav", ".asf", ".ogv", ".gif"}
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "rtmp://")
LIVE_KINDS = ("camera", "stream")


def quiet_opencv() -> None:
    """OpenCV and FFmpeg print their own warnings (decoder errors, missing cameras, "can't be used
    to capture by name") on stderr; process and view give one-line messages instead.  Call it
    before the first capture is opened (FFmpeg reads its level then)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except Exception:  # pragma: no cover - an OpenCV without cv2.utils.logging
        pass


@dataclass
class VideoInfo:
    """What a Source knows of its video: frame size, frame rate, frame count (None when unknown) and kind."""
    width: int
    height: int
    fps: float
    total_frames: int | None  # None when unknown (cameras, streams)
    kind: str                 # "file", "folder", "camera", "stream": a label, test the capabilities below
    name: str
    live: bool | None = None        # frames come in real time (camera, stream); default from kind
    seekable: bool | None = None    # seek(index) works; default: not live
    fps_known: bool | None = None   # fps is the source's own, not a default; default: not live

    def __post_init__(self):
        if self.live is None:
            self.live = self.kind in LIVE_KINDS
        if self.seekable is None:
            self.seekable = not self.live
        if self.fps_known is None:
            self.fps_known = not self.live

    @property
    def resolution(self) -> tuple[int, int]:
        return (self.width, self.height)


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def redact(spec: str) -> str:
    """A URL as shown to users: a password in it is replaced by ***."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", str(spec), flags=re.I)


def is_live(spec: str | int | Path) -> bool:
    """Whether a spec names a camera or a stream (before opening it)."""
    return classify(spec) in LIVE_KINDS


def classify(spec: str | int | Path) -> str:
    """The kind of a spec: "camera", "stream", "folder" or "file"."""
    s = str(spec)
    if isinstance(spec, int) or re.fullmatch(r"\d+", s):
        return "camera"
    if s.lower().startswith(URL_SCHEMES):
        return "stream"
    if Path(s).is_dir():
        return "folder"
    return "file"


class Source:
    """Base class: iterate to get uint8 BGR (or grey) frames; ``info`` describes the video."""
    info: VideoInfo
    frames_read: int = 0

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            f = self.read()
            if f is None:
                return
            yield f

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FolderSource(Source):
    """Images in a folder, in natural order (a CDnet ``input/`` folder works)."""
    FPS = 25.0          # the frame rate given to an image folder

    def __init__(self, folder: str | Path, grey: bool = False):
        self.folder = Path(folder)
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()]
        if not files:
            raise SourceError(f"{shown(self.folder)}: no images in folder")
        self.files = sorted(files, key=lambda p: natural_key(p.name))
        self._flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_UNCHANGED
        self._ranges: dict[np.dtype, float] = {}     # a fixed value range per pixel type, from its first image
        self._colour: bool | None = None           # the first image's layout (grey or colour) is kept
        first = self._load(self.files[0])
        h, w = first.shape[:2]
        self._first: np.ndarray | None = first
        self.info = VideoInfo(w, h, self.FPS, len(self.files), "folder", shown(self.folder), live=False,
                              seekable=True, fps_known=False)
        self.frames_read = 0

    def _load(self, p: Path) -> np.ndarray:
        img = imread(p, self._flag)         # any file name (OpenCV crashes on names that are not UTF-8)
        if img is None:
            raise SourceError(f"{shown(p)}: cannot read image")
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / self._range(img))
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        colour = img.ndim == 3
        if self._colour is None:
            self._colour = colour
        elif colour != self._colour:      # a grey image among colour ones (or the reverse): same layout
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if self._colour else cv2.COLOR_BGR2GRAY)
        return img

    def _range(self, img: np.ndarray) -> float:
        """The value that maps to 255 for images of this pixel type: fixed for the whole folder (a
        per-image maximum would change the brightness of every frame with one hot pixel).  Integers:
        the smallest of 8, 10, 12, 14 or 16 bits that holds the first image; floats: 1.0 when the
        first image is within 0..1, else its maximum."""
        r = self._ranges.get(img.dtype)
        if r is None:
            top = float(np.max(np.abs(img))) if img.size else 0.0
            if not np.isfinite(top):
                top = 1.0
            if np.issubdtype(img.dtype, np.integer):
                bits = next((b for b in (8, 10, 12, 14, 16) if top <= 2 ** b - 1), np.iinfo(img.dtype).bits)
                r = float(2 ** bits - 1)
            else:
                r = 1.0 if top <= 1.0 else top
            self._ranges[img.dtype] = r
        return r

    def seek(self, index: int) -> None:
        self.frames_read = max(0, min(index, len(self.files)))
        self._first = None

    def read(self):
        if self.frames_read >= len(self.files):
            return None
        if self._first is not None and self.frames_read == 0:
            img, self._first = self._first, None
        else:
            img = self._load(self.files[self.frames_read])
        self.frames_read += 1
        return img


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: a file, a camera index, a stream URL."""

    def __init__(self, spec: str | int, kind: str | None = None, open_timeout: float = 10.0):
        kind = kind or classify(spec)
        self.kind = kind
        self.spec = spec
        self._fd = None
        name = redact(shown(spec)) if kind == "stream" else shown(spec)   # errors and info.name: no password
        if kind == "file":
            p = Path(str(spec))
            if not p.exists():
                raise SourceError(f"{name}: no such file")
            if not p.is_file():
                raise SourceError(f"{name}: not a file")
            if p.stat().st_size == 0:
                raise SourceError(f"{name}: file is empty")
            try:   # a name that is not UTF-8 would crash OpenCV: open it through a descriptor
                path, self._fd = capture_path(p)
            except (OSError, ValueError) as e:
                raise SourceError(f"{name}: {getattr(e, 'strerror', None) or e}") from None
        elif kind == "stream" and not is_utf8(spec):
            raise SourceError(f"{name}: the URL is not valid UTF-8")
        try:
            if kind == "camera":
                cap = cv2.VideoCapture(int(spec))
            elif kind == "stream":
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(open_timeout * 1000)]
                cap = cv2.VideoCapture(str(spec), cv2.CAP_FFMPEG, params)
            else:
                cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            if not cap.isOpened():
                cap.release()
                what = {"camera": f"camera {spec}: not found or cannot be opened",
                        "stream": f"{name}: cannot open stream",
                        "file": f"{name}: not a video file OpenCV can read"}[kind]
                raise SourceError(what)
            ok, first = cap.read()
            if not ok or first is None:
                cap.release()
                what = {"camera": f"camera {spec}: opened but gives no frames",
                        "stream": f"{name}: stream gives no frames",
                        "file": f"{name}: video has no readable frames"}[kind]
                raise SourceError(what)
        except BaseException:
            self._close_fd()
            raise
        self.cap: cv2.VideoCapture | None = cap
        self._first: np.ndarray | None = first
        live = kind in LIVE_KINDS
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps_known = bool(fps) and np.isfinite(fps) and 0 < fps <= 1000
        if not fps_known:
            fps = 30.0 if live else 25.0
        n = 0 if live else int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.info = VideoInfo(first.shape[1], first.shape[0], float(fps), n if n > 0 else None, kind, name,
                              live=live, seekable=not live, fps_known=bool(fps_known))
        self.frames_read = 0

    def read(self):
        if self._first is not None:
            f, self._first = self._first, None
        else:
            if self.cap is None:
                return None
            ok, f = self.cap.read()
            if not ok or f is None:
                return None
        self.frames_read += 1
        return f

    def seek(self, index: int) -> None:
        if not self.info.seekable:
            raise SourceError(f"{shown(self.spec)}: cannot seek in a {self.kind}")
        if self.cap is None:
            raise SourceError(f"{self.spec}: cannot seek: the source is closed")
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._first = None
        self.frames_read = index

    def close(self) -> None:
        cap = getattr(self, "cap", None)
        if cap is not None:
            cap.release()
            self.cap = None
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)


def demo_path() -> Path:
    """The demo clip shipped inside the package: a folder in the CDnet-2014 layout (``input/`` with
    150 frames, ``groundtruth/``, ``temporalROI.txt``).  Found through ``importlib.resources``, so it
    works after any kind of install (wheel, sdist, editable) and from any current folder.  Give
    ``demo_path() / "input"`` to ``open_source``, ``frames`` or ``kl-motion process``; ``kl-motion eval``
    takes ``demo_path()`` itself.  Raises SourceError if the package was installed without it."""
    from importlib.resources import files
    root = files("kl_motion") / "data" / "demo"
    if not isinstance(root, Path) or not (root / "input").is_dir():   # e.g. a zipped package
        raise SourceError(f"the demo clip is not installed as files with this package ({root})")
    return root


def open_source(spec: str | int | Path, grey: bool = False) -> Source:
    """Open a file, image folder, camera index or URL. Raises SourceError."""
    kind = classify(spec)
    if kind == "folder":
        return FolderSource(str(spec), grey=grey)
    return CaptureSource(int(str(spec)) if kind == "camera" else str(spec), kind)
