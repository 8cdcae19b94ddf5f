"""Write-then-rename: a file under its final name is always complete (no Qt, no cv2).

- ``part_name(path)``: ``mask.mkv`` -> ``mask.part.mkv`` (the extension stays last, so a muxer or
  image writer that picks the format from it picks the right one)
- ``finish(tmp, final, ok)``: rename ``tmp`` to ``final`` when ``ok`` (a folder replaces a folder)
- ``atomic_path(path)``: a context manager giving the temporary path to write; renamed on success,
  removed on error
- ``write_text(path, text)``: the common case
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError

PART = ".part"


def part_name(path: str | Path) -> Path:
    """``mask.mkv`` -> ``mask.part.mkv``; ``bin`` -> ``bin.part``."""
    path = Path(path)
    return path.with_name(path.stem + PART + path.suffix)


def finish(tmp: Path, final: Path, ok: bool = True) -> Path:
    """Rename ``tmp`` to ``final`` when ``ok`` (else leave it under its temporary name); returns
    the name the data now has.  OutputError (one line) when the rename fails."""
    if not ok:
        return tmp
    try:
        if tmp.is_dir() and final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(tmp, final)
    except OSError as e:
        raise OutputError(f"cannot rename {tmp} to {final}: {e}") from None
    return final


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write tmp`` -> ``p`` appears complete or not at all."""
    path = Path(path)
    tmp = part_name(path)
    try:
        yield tmp
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    finish(tmp, path)


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
