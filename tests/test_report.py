"""report.html and motion.png of a real run, the page rendered by headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion.report import SPAN_COLOUR, THRESH_COLOUR, load, reduce_max, write_report

sys.path.insert(0, str(Path(__file__).parent))
from conftest_process import FPS, H, W, read_events, run_process  # noqa: E402


def two_bursts(path: Path) -> Path:
    """150 frames; a square moves during frames 30-54 and 95-119 (two events with --event-gap 0.5)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    rng = np.random.default_rng(1)
    for i in range(150):
        f = cv2.add(np.full((H, W, 3), 90, np.uint8), rng.integers(0, 3, (H, W, 3), dtype=np.uint8))
        for a, b in ((30, 55), (95, 120)):
            if a <= i < b:
                x = 10 + 4 * (i - a)
                cv2.rectangle(f, (x, 40), (x + 30, 80), (250, 250, 250), -1)
        vw.write(f)
    vw.release()
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    v = two_bursts(d / "bursts.avi")
    r = run_process(v, "--out", d / "out", "--snapshots", "--event-gap", "0.5", "-q")
    assert r.returncode == 0, r.stderr
    out = d / "out" / "bursts"
    assert len(read_events(out / "events.jsonl")) == 2
    return out


def hex_bgr(c: str) -> np.ndarray:
    return np.array([int(c[5:7], 16), int(c[3:5], 16), int(c[1:3], 16)])


def runs_of(row: np.ndarray) -> int:
    """Number of separate runs of True in a 1-D boolean array."""
    r = row.astype(np.int8)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], r])) == 1))


def span_runs(img: np.ndarray) -> int:
    """Separate shaded event spans, counted along the row with the most span colour."""
    m = np.all(np.abs(img[:, :, :3].astype(int) - hex_bgr(SPAN_COLOUR)) <= 6, axis=2)
    if not m.any():
        return 0
    return runs_of(m[int(np.argmax(m.sum(axis=1)))])


def test_reduce_max_keeps_a_one_frame_spike():
    t = np.arange(100_000) / 25.0
    y = np.zeros_like(t)
    y[54_321] = 0.7
    tt, yy = reduce_max(t, y, 1000)
    assert len(tt) == 1000 and yy.max() == 0.7


def test_motion_png(run_dir):
    write_report(run_dir)
    img = cv2.imread(str(run_dir / "motion.png"))
    assert img is not None and img.shape[1] == 1200
    assert span_runs(img) == 2
    # the motion_area line (dashed, threshold colour) is drawn
    assert np.count_nonzero(np.all(img == hex_bgr(THRESH_COLOUR), axis=2)) > 300


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("chrome-headless-shell")


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
def test_report_page_in_headless_chromium(run_dir, tmp_path):
    magenta = np.zeros((90, 120, 3), np.uint8)
    magenta[:] = (255, 0, 255)
    page, _ = write_report(run_dir, thumbs={1: magenta, 2: magenta})
    text = page.read_text()
    # self-contained: nothing to fetch (the SVG namespace is a name, not a request)
    assert not re.findall(r'(?:src|href)="(?!data:)', text)
    assert "url(" not in text and "@import" not in text
    assert "00:00:01.2" in text        # event 1 starts at frame 31: its timecode is on the page
    shot = tmp_path / "shot.png"
    r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-extensions", "--no-first-run", "--proxy-server=http://127.0.0.1:9",
                        "--hide-scrollbars", "--window-size=1200,1100", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists(), r.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert span_runs(img) == 2                                    # the event spans are drawn
    # each thumbnail is shown (decoded from its data: URI): 2 x 120x90 magenta pixels
    mag = np.count_nonzero(np.all(np.abs(img.astype(int) - (255, 0, 255)) <= 10, axis=2))
    assert 2 * 120 * 90 * 0.9 <= mag <= 2 * 120 * 90 * 1.1, mag
    # the curve is drawn in its colour
    assert np.count_nonzero(np.all(np.abs(img.astype(int) - hex_bgr("#1f6fb4")) <= 40, axis=2)) > 200


def test_snapshots_are_the_default_thumbnails(run_dir):
    page, _ = write_report(run_dir)
    assert page.read_text().count('src="data:image/jpeg;base64,') == 2


def test_live_start_records_are_not_counted_twice(run_dir, tmp_path):
    d = tmp_path / "x"
    shutil.copytree(run_dir, d)
    evs = (d / "events.jsonl").read_text().splitlines()
    (d / "events.jsonl").write_text("\n".join(e.replace('{', '{"type": "start", ', 1) for e in evs[:1])
                                    + "\n" + "\n".join(evs) + "\n")
    assert len(load(d).events) == 2
