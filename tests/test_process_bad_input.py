"""`kl-motion process` on bad input: one line, non-zero exit, no traceback, nothing lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest_process import (METHOD, count_frames, make_video, no_traceback, part_files, read_events, read_stats,
                              run_process)

pytestmark = pytest.mark.timeout(180)


def one_error(r, *needles):
    no_traceback(r)
    errs = [l for l in r.stderr.splitlines() if l.startswith("kl-motion: error:")]
    assert len(errs) == 1, r.stderr
    for n in needles:
        assert n in errs[0], errs[0]
    return errs[0]


@pytest.mark.parametrize("kind", ["missing", "random", "empty", "text", "noframes"])
def test_unreadable_inputs(tmp_path, kind):
    p = tmp_path / f"{kind}.mp4"
    if kind == "random":
        p.write_bytes(np.random.default_rng(1).integers(0, 256, 30000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not a video\n")
    elif kind == "noframes":                       # a valid container with no frame in it
        p = tmp_path / "noframes.avi"
        cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120)).release()
    r = run_process(p, "--out", tmp_path / "o")
    assert r.returncode == 2
    line = one_error(r, str(p))
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {"missing": "no such file", "empty": "empty", "noframes": "no readable frames"}.get(kind, "not a video") in line
    assert not part_files(tmp_path / "o")


def test_truncated_file_keeps_what_was_read(tmp_path):
    good = make_video(tmp_path / "full.avi", n=60)
    data = good.read_bytes()
    t = tmp_path / "cut.avi"
    t.write_bytes(data[: len(data) * 55 // 100])
    r = run_process(t, "--out", tmp_path / "o", "--bins")
    assert r.returncode == 2
    line = one_error(r, "cut.avi", "of 60 frames")
    got = int(line.split("read ")[1].split(" of")[0])
    assert 20 <= got < 60
    d = tmp_path / "o" / "cut"
    assert count_frames(d / "mask.mkv") == got                  # closed, renamed, playable
    assert len(read_stats(d / "stats.csv")) == got
    assert len(list((d / "bin").glob("*.png"))) == got
    assert not part_files(d)


def test_corrupt_middle_processes_up_to_the_break(tmp_path):
    good = make_video(tmp_path / "full.avi", n=60)
    b = bytearray(good.read_bytes())
    mid = len(b) // 2
    b[mid: mid + 4000] = bytes(4000)
    c = tmp_path / "corrupt.avi"
    c.write_bytes(bytes(b))
    r = run_process(c, "--out", tmp_path / "o")
    no_traceback(r)
    d = tmp_path / "o" / "corrupt"
    n = len(read_stats(d / "stats.csv"))
    assert 20 <= n < 60 and count_frames(d / "mask.mkv") == n
    # FFmpeg drops the damaged frames: fewer than the header's 60 were read, which is an error
    # (exit 2) saying how far it got, and the outputs stay, complete and renamed
    assert r.returncode == 2, r.stderr
    one_error(r, "corrupt.avi", f"read {n} of 60", "truncated or corrupt")
    assert not part_files(d)


def test_grey_video_and_grey_image_folder(tmp_path):
    v = make_video(tmp_path / "flat.avi", n=40, moving=None, grey_value=128)
    r = run_process(v, "--out", tmp_path / "o")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert read_events(tmp_path / "o" / "flat" / "events.jsonl") == []
    folder = tmp_path / "greys"
    folder.mkdir()
    for i in range(30):
        img = np.full((60, 80), 100, np.uint8)
        if 10 <= i < 25:
            img[20:40, 2 * i: 2 * i + 20] = 240
        cv2.imwrite(str(folder / f"{i}.png"), img)
    r = run_process(folder, "--out", tmp_path / "o", "--overlay", "--bins", "--snapshots", "--clips",
                    "--event-gap", "0.2")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert len(read_events(tmp_path / "o" / "greys" / "events.jsonl")) == 1
    assert count_frames(tmp_path / "o" / "greys" / "overlay.mp4") == 30


def test_frame_size_change_resets_with_warning(tmp_path):
    folder = tmp_path / "sizes"
    folder.mkdir()
    for i in range(30):
        w, h = (160, 120) if i < 15 else (120, 90)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), np.full((h, w, 3), 100, np.uint8))
    r = run_process(folder, "--out", tmp_path / "o", "--bins")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "size changed from 160x120 to 120x90 at frame 16" in r.stderr
    d = tmp_path / "o" / "sizes"
    assert count_frames(d / "mask.mkv") == 30
    assert cv2.imread(str(d / "bin" / "bin000020.png")).shape[:2] == (90, 120)


def test_absent_camera(tmp_path):
    r = run_process("9", "--out", tmp_path / "o", timeout=60)
    assert r.returncode == 2
    one_error(r, "camera 9")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unwritable_output_folder(tmp_path):
    v = make_video(tmp_path / "a.avi", n=5)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_process(v, "--out", blocker / "sub")
    assert r.returncode == 2
    one_error(r, "output folder")


def test_sigint_closes_outputs(tmp_path):
    v = make_video(tmp_path / "long.avi", n=1500, moving=(100, 1400))
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), "--out", str(tmp_path / "o"), "--overlay"]
    if METHOD:
        cmd += ["--method", METHOD]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    d = tmp_path / "o" / "long"
    deadline = time.time() + 60
    while time.time() < deadline:
        st = d / "stats.part.csv"
        if st.exists() and st.stat().st_size > 2000:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted after" in err
    n = len(read_stats(d / "stats.csv"))
    assert 0 < n < 1500
    assert count_frames(d / "mask.mkv") == n
    assert count_frames(d / "overlay.mp4") == n
    assert not part_files(d)


def test_sigint_with_jobs_stops_every_worker(tmp_path):
    v = make_video(tmp_path / "long.avi", n=4000, moving=(100, 3900))
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), str(v), str(v), "--jobs", "2",
           "--out", str(tmp_path / "o")]
    if METHOD:
        cmd += ["--method", METHOD]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        parts = list((tmp_path / "o").glob("*/stats.part.csv"))
        if len(parts) == 2 and all(q.stat().st_size > 2000 for q in parts):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    statuses = [line.split()[1] for line in out.splitlines() if "long.avi" in line]
    assert statuses == ["interrupted"] * 3, out       # two stopped mid-way, one not started
    assert out.count("not started") == 1
    for name in ("long", "long-2"):
        d = tmp_path / "o" / name
        n = len(read_stats(d / "stats.csv"))
        assert 0 < n < 4000 and count_frames(d / "mask.mkv") == n
        assert not part_files(d)
    assert not (tmp_path / "o" / "long-3").exists()
