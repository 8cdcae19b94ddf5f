"""The public modules type-check with the pinned mypy (config: [tool.mypy] in pyproject.toml), and the
package says it is typed (py.typed, PEP 561)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kl_motion

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_marker_ships():
    assert (Path(kl_motion.__file__).parent / "py.typed").is_file()


def test_mypy_public_modules(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"),
                        "--config-file", str(ROOT / "pyproject.toml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Success: no issues found" in r.stdout


def test_public_names_are_exported_and_documented():
    for name in ("MotionModel", "Params", "EventDetector", "Event", "open_source", "Source", "VideoInfo", "demo_path"):
        assert name in kl_motion.__all__, name
        obj = getattr(kl_motion, name)
        doc = (obj.__doc__ or "").strip()
        assert doc and not doc.startswith(f"{name}("), f"{name} has no docstring of its own"
