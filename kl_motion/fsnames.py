"""File names that are not valid UTF-8, kept away from OpenCV.

On Linux a file name is any bytes; Python hands undecodable bytes over as lone surrogates
(``'bad\\udcff.avi'``).  OpenCV's Python bindings do not check the UTF-8 conversion of such a
string and crash the process (segfault) inside ``VideoCapture``, ``imread`` or ``imwrite``.
Every path that reaches OpenCV goes through this module first:

- ``shown(path)``: the name as printed to users (undecodable bytes as ``\\xff``);
- ``imread(path, flags)``: reads the bytes with Python and decodes them in memory;
- ``capture_path(path)``: a name OpenCV's FFmpeg backend can open (``/proc/self/fd/N`` on Linux)
  and the descriptor to close afterwards.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


def is_utf8(path) -> bool:
    """Whether ``str(path)`` can be handed to OpenCV (encodes to UTF-8)."""
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown(path) -> str:
    """``path`` as a printable one-line string: bytes that are not UTF-8 become ``\\xNN``."""
    s = str(path)
    if is_utf8(s):
        return s
    return os.fsencode(s).decode("utf-8", "backslashreplace")


def imread(path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """cv2.imread for any file name: None when the file cannot be read or decoded."""
    if is_utf8(path):
        return cv2.imread(str(path), flags)
    try:
        data = np.fromfile(Path(path), np.uint8)
    except (OSError, ValueError):
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, flags)


def capture_path(path) -> tuple[str, int | None]:
    """A name for cv2.VideoCapture: the path itself when it is UTF-8, else ``/proc/self/fd/N``
    of a descriptor opened here (close it with os.close after the capture is released).
    Raises OSError when the file cannot be opened, ValueError where /proc is missing."""
    if is_utf8(path):
        return str(path), None
    if not os.path.isdir("/proc/self/fd"):
        raise ValueError("the file name is not valid UTF-8 and OpenCV cannot open it (rename the file)")
    fd = os.open(Path(path), os.O_RDONLY)
    return f"/proc/self/fd/{fd}", fd
