"""`kl-motion process` options no other test covered: --mask-format png and shadows end to end
(mask, CDnet bins, eval), --method knn, --no-stats/--no-events, --reconnect without a limit, a
second Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest_process import count_frames, make_video, no_traceback, part_files, read_events, read_stats, run_process
from mjpeg_server import MJPEGServer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def shadowy(tmp_path_factory):
    """A CDnet-layout sequence: a bright object crossing a grey floor with its shadow (the floor at
    0.8 of its brightness) under it; ground truth 255 object, 50 shadow (a negative), 0 floor."""
    seq = tmp_path_factory.mktemp("s") / "shadowy"
    (seq / "input").mkdir(parents=True)
    (seq / "groundtruth").mkdir()
    rng = np.random.default_rng(0)
    base = np.full((120, 160, 3), 170, np.uint8)
    for i in range(60):
        f = cv2.add(base, rng.integers(0, 3, base.shape, dtype=np.uint8))
        g = np.zeros((120, 160), np.uint8)
        if 30 <= i < 55:
            x = 10 + 3 * (i - 30)
            f[40:80, x:x + 30] = 240
            f[85:110, x:x + 40] = (f[85:110, x:x + 40] * 0.8).astype(np.uint8)
            g[40:80, x:x + 30] = 255
            g[85:110, x:x + 40] = 50
        if i < 20:
            g[:] = 85
        cv2.imwrite(str(seq / "input" / f"in{i + 1:06d}.png"), f)
        cv2.imwrite(str(seq / "groundtruth" / f"gt{i + 1:06d}.png"), g)
    (seq / "temporalROI.txt").write_text("21 60\n")
    return seq


def _pngs(folder: Path, prefix: str) -> list[np.ndarray]:
    files = sorted(folder.glob(f"{prefix}*.png"))
    assert [p.name for p in files] == [f"{prefix}{i:06d}.png" for i in range(1, len(files) + 1)]
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in files]


def test_shadows_end_to_end_png_masks_bins_and_eval(shadowy, tmp_path):
    r = run_process(shadowy / "input", "--out", tmp_path, "--detect-shadows", "--mask-format", "png", "--bins",
                    method=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "shadowy"                               # a CDnet input/ folder is named after its sequence
    assert not (d / "mask.mkv").exists() and not part_files(tmp_path)
    masks, bins = _pngs(d / "mask", "mask"), _pngs(d / "bin", "bin")
    assert len(masks) == len(bins) == 60
    shadow_px = 0
    for i, (m, b) in enumerate(zip(masks, bins), start=1):
        assert m.ndim == 2 and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 127, 255}
        assert set(np.unique(b)) <= {0, 255}
        assert np.array_equal(b == 255, m == 255)          # CDnet results: shadow (127) is background
        if 40 <= i <= 55:
            shadow_px += int(np.count_nonzero(m[85:110] == 127))
            assert np.count_nonzero(m[40:80] == 255) > 600    # the object itself
    assert shadow_px > 16 * 200                              # the shadow is labelled shadow, frame after frame
    assert not any(np.count_nonzero(m[:80] == 127) > 50 for m in masks)   # and only the shadow
    # eval scores 127 as negative: its counts are those of the bins, counted here by CDnet's rules
    tp = fp = fn = tn = 0
    for i in range(21, 61):
        g = cv2.imread(str(shadowy / "groundtruth" / f"gt{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        det, pos, neg = bins[i - 1] == 255, g == 255, (g == 0) | (g == 50)
        tp += int((det & pos).sum()); fn += int((~det & pos).sum())
        fp += int((det & neg).sum()); tn += int((~det & neg).sum())
    out = tmp_path / "e.json"
    e = subprocess.run([sys.executable, "-m", "kl_motion", "eval", str(shadowy), "--detect-shadows", "-q",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert e.returncode == 0, e.stderr
    (rec,) = json.loads(out.read_text())
    assert (rec["tp"], rec["fp"], rec["fn"], rec["tn"]) == (tp, fp, fn, tn)
    assert tp > 16 * 600
    # with --no-detect-shadows: no 127 anywhere, the mask video (default format) is 0/255
    r = run_process(shadowy / "input", "--out", tmp_path / "plain", "--no-detect-shadows", method=False)
    assert r.returncode == 0, r.stderr
    cap = cv2.VideoCapture(str(tmp_path / "plain" / "shadowy" / "mask.mkv"))
    n = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n += 1
        assert set(np.unique(f)) <= {0, 255}
    assert n == 60


def test_method_knn_is_opencv_knn_with_our_cleanup(tmp_path):
    from kl_motion.params import Params
    from kl_motion.postprocess import clean
    v = make_video(tmp_path / "walk.avi", n=50, moving=(20, 40))
    r = run_process(v, "--out", tmp_path / "o", "--method", "knn", "--history", "120", method=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    p = Params(history=120)
    knn = cv2.createBackgroundSubtractorKNN(history=p.history, detectShadows=p.detect_shadows)
    mine = []
    cap = cv2.VideoCapture(str(v))
    while True:
        ok, f = cap.read()
        if not ok:
            break
        mine.append(clean(knn.apply(f), p)[0])
    cap = cv2.VideoCapture(str(tmp_path / "o" / "walk" / "mask.mkv"))
    got = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        got.append(f[:, :, 0])
    assert len(got) == len(mine) == 50
    assert all(np.array_equal(a, b) for a, b in zip(got, mine))
    assert sum(int(np.count_nonzero(m)) for m in got[20:40]) > 20 * 300          # the square, found
    # and kl_motion's masks are other masks
    r = run_process(v, "--out", tmp_path / "k", method=False)
    assert r.returncode == 0, r.stderr
    assert count_frames(tmp_path / "k" / "walk" / "mask.mkv") == 50
    cap = cv2.VideoCapture(str(tmp_path / "k" / "walk" / "mask.mkv"))
    kl = [cap.read()[1][:, :, 0] for _ in range(50)]
    assert not all(np.array_equal(a, b) for a, b in zip(kl, got))


def test_no_stats_no_events_leave_those_files_out(tmp_path):
    v = make_video(tmp_path / "walk.avi", n=50, moving=(20, 40))
    r = run_process(v, "--out", tmp_path / "o", "--no-stats", "--no-events", "--event-gap", "0.4")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "o" / "walk"
    names = {p.name for p in d.iterdir()}
    assert "stats.csv" not in names and "events.jsonl" not in names
    assert "report.html" not in names and "motion.png" not in names       # the report needs the stats
    assert {"mask.mkv", "boxes.csv", "summary.json"} <= names
    assert count_frames(d / "mask.mkv") == 50
    summary = json.loads((d / "summary.json").read_text())
    assert summary["frames"] == 50 and summary["events"] == 1             # events are still detected
    # each flag alone
    r = run_process(v, "--out", tmp_path / "s", "--no-stats")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "s" / "walk").iterdir()}
    assert "stats.csv" not in names and "events.jsonl" in names
    assert len(read_events(tmp_path / "s" / "walk" / "events.jsonl")) == 1
    r = run_process(v, "--out", tmp_path / "e", "--no-events")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "e" / "walk").iterdir()}
    assert "events.jsonl" not in names and "stats.csv" in names
    assert len(read_stats(tmp_path / "e" / "walk" / "stats.csv")) == 50


def _wait(cond, timeout=60.0, what=""):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_reconnect_without_a_limit_keeps_trying_until_stopped(tmp_path):
    """--reconnect without --reconnect-attempts (0 = never give up): the stream served twice, then
    refused; the run keeps retrying with backoff until Ctrl-C, and what was read is kept."""
    with MJPEGServer(frames_per_connection=20, connections=2) as s:
        cmd = [sys.executable, "-m", "kl_motion", "process", s.url, "--out", str(tmp_path), "--reconnect",
               "--reconnect-delay", "0.05", "--stream-timeout", "3", "-v"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # 2 served connections, then at least 5 refused attempts (delays 0.05, 0.1, 0.2, 0.4 s...)
            _wait(lambda: s.connections >= 7 or p.poll() is not None, what="refused reconnects")
            assert p.poll() is None, p.communicate()[1]         # still trying, not given up
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
    no_traceback(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    assert p.returncode == 130, err
    assert "giving up" not in err and "reconnected" in err and "reconnect attempt 5 failed" in err
    (d,) = [q for q in tmp_path.iterdir() if q.is_dir()]
    n = len(read_stats(d / "stats.csv"))
    assert 36 <= n <= 40 and count_frames(d / "mask.mkv") == n
    assert not part_files(d)


def test_second_ctrl_c_aborts_the_clean_stop(tmp_path):
    """The first Ctrl-C stops cleanly, which waits for the event hook of the event it ends (here
    a hook that takes 20 s); a second Ctrl-C aborts that wait: exit 130 at once, one line."""
    v = make_video(tmp_path / "long.avi", n=3000, moving=(30, 2990))
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), "--out", str(tmp_path / "o"),
           "--on-event", "sleep 20"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait(lambda: any(q.stat().st_size > 3000 for q in (tmp_path / "o").glob("*/stats.part.csv")),
              what="frames being processed")
        p.send_signal(signal.SIGINT)
        line = p.stderr.readline()
        assert "stopping (Ctrl-C): closing outputs (Ctrl-C again to abort)" in line, line
        time.sleep(0.3)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
        try:
            os.killpg(p.pid, signal.SIGKILL)      # the hook's sleep (it holds our pipes open)
        except ProcessLookupError:
            pass
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "kl-motion: interrupted", err
    assert "outputs closed" not in err            # it did not wait for the clean stop to finish
    assert took < 10, took
