"""Where numba's cache goes (kl_motion.jitcache): numba's own place when the package folder is writable,
else a per-user folder, else a private temp folder; never a folder another user can write."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import kl_motion
from kl_motion.jitcache import choose_cache_dir


@pytest.fixture
def unwritable_pkg(tmp_path):
    """A 'package folder' in which nothing can be created: it lies under a regular file (works as root too)."""
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "kl_motion"


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch):
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_writable_package_keeps_numbas_own_cache(tmp_path):
    assert choose_cache_dir(tmp_path / "pkg", {"HOME": str(tmp_path / "home")}) is None


def test_user_setting_wins(unwritable_pkg, tmp_path):
    assert choose_cache_dir(unwritable_pkg, {"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "HOME": str(tmp_path)}) is None


def test_read_only_package_uses_the_user_cache(unwritable_pkg, tmp_path):
    home = tmp_path / "home"
    d = choose_cache_dir(unwritable_pkg, {"HOME": str(home)})
    assert d == home / ".cache" / "kl_motion" / "numba" and d.is_dir()
    xdg = tmp_path / "xdg"
    assert choose_cache_dir(unwritable_pkg, {"HOME": str(home), "XDG_CACHE_HOME": str(xdg)}) == xdg / "kl_motion" / "numba"
    # a relative XDG_CACHE_HOME is ignored (XDG base directory spec)
    assert choose_cache_dir(unwritable_pkg, {"HOME": str(home), "XDG_CACHE_HOME": "rel"}) == d


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owner/mode checks")
def test_no_writable_home_falls_back_to_a_private_temp_folder(unwritable_pkg, tmp_path, own_tempdir):
    d = choose_cache_dir(unwritable_pkg, {"HOME": str(tmp_path / "afile" / "home")})
    assert d == own_tempdir / f"kl_motion-{os.getuid()}" / "numba" and d.is_dir()
    assert stat.S_IMODE(d.parent.stat().st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owner/mode checks")
def test_a_temp_folder_others_can_write_is_refused(unwritable_pkg, tmp_path, own_tempdir):
    shared = own_tempdir / f"kl_motion-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)      # e.g. made by someone else to plant a cache numba would load
    assert choose_cache_dir(unwritable_pkg, {"HOME": str(tmp_path / "afile" / "home")}) is None


def _without_write_access() -> list[str]:
    """A command prefix under which file modes apply: none for a user, setpriv for root (root ignores modes)."""
    if os.geteuid() != 0:
        return []
    sp = shutil.which("setpriv")
    if sp is None:
        pytest.skip("running as root without setpriv: cannot take write access away")
    return [sp, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX")
@pytest.mark.parametrize("home_writable", [True, False])
def test_import_from_a_read_only_install(tmp_path, home_writable):
    """The package copied to a read-only folder (code only) and imported by a user who cannot write there:
    import must not fail (numba alone raises 'cannot cache function ... no locator available' when the
    home folder is not writable either) and NUMBA_CACHE_DIR must point at the per-user folder."""
    prefix = _without_write_access()
    site = tmp_path / "site"
    shutil.copytree(Path(kl_motion.__file__).parent, site / "kl_motion",
                    ignore=shutil.ignore_patterns("__pycache__", "data", "gui"))
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    for p in [site, *site.rglob("*")] + ([] if home_writable else [home]):
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp),
               "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
        code = "import os, kl_motion; print(kl_motion.__file__); print(os.environ.get('NUMBA_CACHE_DIR'))"
        r = subprocess.run(prefix + [sys.executable, "-c", code], env=env, cwd=tmp, capture_output=True, text=True,
                           timeout=300)
    finally:
        for p in [home, site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert r.returncode == 0, r.stderr[-2000:]
    where, cache = r.stdout.split()
    assert where == str(site / "kl_motion" / "__init__.py")
    want = home / ".cache" / "kl_motion" / "numba" if home_writable else tmp / f"kl_motion-{os.getuid()}" / "numba"
    assert cache == str(want) and want.is_dir()
