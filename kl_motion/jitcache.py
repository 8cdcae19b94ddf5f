"""Where numba caches the compiled kernels; chosen by ``kl_motion/__init__.py`` before any kernel is compiled.

numba writes its cache next to the source (``kl_motion/__pycache__``) when it can.  In a read-only
install (a system or pipx install, a container image) it falls back to ``~/.cache/numba``, and when
that is not writable either (a service user without a home) it stops with "cannot cache function".
So, only when the package folder is not writable and the user has not set ``NUMBA_CACHE_DIR``, this
module points numba at a per-user folder: ``$XDG_CACHE_HOME/kl_motion/numba`` (default
``~/.cache/kl_motion/numba``; ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows), else
``<temp>/kl_motion-<user>/numba`` (created private, used only if it is ours and not shared).
No Qt, no numba import here.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Mapping

PACKAGE_DIR = Path(__file__).resolve().parent


def writable_dir(path: Path) -> bool:
    """True if ``path`` exists or can be created and a file can be written in it (numba's own test)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def user_cache_root(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The platform's per-user cache folder (what platformdirs calls user_cache_dir), or None without a home."""
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA")
        return Path(base) if base else None
    if sys.platform == "darwin":
        home = environ.get("HOME")
        return Path(home) / "Library" / "Caches" if home else None
    xdg = environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg)
    home = environ.get("HOME")
    return Path(home) / ".cache" if home else None


def _private_temp_dir(environ: Mapping[str, str]) -> Path | None:
    """``<temp>/kl_motion-<user>``, created 0700; None if it exists but is another user's or open to others
    (numba loads pickles from its cache: a folder someone else can write is not safe)."""
    if hasattr(os, "getuid"):
        who = str(os.getuid())
    else:
        who = environ.get("USERNAME") or "user"
    d = Path(tempfile.gettempdir()) / f"kl_motion-{who}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        st = d.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        return None
    return d


def choose_cache_dir(package_dir: Path = PACKAGE_DIR, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder to give numba as NUMBA_CACHE_DIR, or None to leave numba's choice alone: the user set
    NUMBA_CACHE_DIR, or the package folder is writable (numba then caches in its ``__pycache__``)."""
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    if writable_dir(package_dir / "__pycache__"):
        return None
    root = user_cache_root(environ)
    if root is not None and writable_dir(root / "kl_motion" / "numba"):
        return root / "kl_motion" / "numba"
    tmp = _private_temp_dir(environ)
    if tmp is not None and writable_dir(tmp / "numba"):
        return tmp / "numba"
    return None


def configure() -> Path | None:
    """Set NUMBA_CACHE_DIR (and numba's config, if numba is already imported) when choose_cache_dir()
    picks a folder; returns it.  Must run before the kernels are decorated (at import of .kernels)."""
    d = choose_cache_dir()
    if d is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(d)      # also for --jobs worker processes
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.CACHE_DIR = str(d)        # type: ignore[attr-defined]
    return d
