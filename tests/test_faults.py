"""Fault injection (issue 13): every case runs as a real subprocess and is checked for its exit
code, its one-line message, and that every file under a final name decodes to the end.

Cases: file names that are not UTF-8 (batch, --jobs, image folder, zone mask, viewer), a worker
killed under --jobs, 16-bit images with a hot pixel, oversized zones, hostile TOML and hostile
state files.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest_process import count_frames, make_video, no_traceback, part_files, read_stats, run_process

BAD = os.fsdecode(b"bad\xff\xfe")          # a file name that is not UTF-8 (Linux takes any bytes)


def _can_make_non_utf8(tmp: Path) -> bool:
    try:
        (tmp / (BAD + ".probe")).write_bytes(b"")
        return True
    except (OSError, UnicodeEncodeError):
        return False


@pytest.fixture
def non_utf8(tmp_path):
    if not _can_make_non_utf8(tmp_path):
        pytest.skip("this file system does not take file names that are not UTF-8")
    return tmp_path


def _py(code: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    e.pop("KL_MOTION_DEBUG", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=cwd)


def _complete(d: Path, frames: int, videos=("mask.mkv",)) -> None:
    """Every output of one input is under its final name and decodes to the end."""
    assert not part_files(d), part_files(d)
    for v in videos:
        assert count_frames(d / v) == frames, v
    assert len(read_stats(d / "stats.csv")) == frames
    assert json.loads((d / "summary.json").read_text())["frames"] == frames


# ---------------------------------------------------------------------------- names that are not UTF-8
def test_non_utf8_file_names_in_a_batch_and_with_jobs(non_utf8):
    """OpenCV segfaulted opening such a name (rc 139): later inputs were lost, --jobs lost the pool."""
    tmp = non_utf8
    good = make_video(tmp / "short.avi", n=30)
    bad = tmp / (BAD + ".avi")
    bad.write_bytes(good.read_bytes())
    for jobs in ("1", "2"):
        out = tmp / f"o{jobs}"
        r = run_process(bad, good, "--out", out, "--jobs", jobs)
        assert r.returncode == 0, r.stderr
        no_traceback(r)
        assert "bad\\xff\\xfe.avi" in r.stdout            # the summary names it readably
        _complete(out / "short", 30)
        _complete(out / "bad\\xff\\xfe", 30)


def test_non_utf8_image_folder_and_zone_mask(non_utf8):
    tmp = non_utf8
    folder = tmp / BAD
    folder.mkdir()
    for i in range(12):
        f = np.full((48, 64, 3), 90, np.uint8)
        cv2.rectangle(f, (2 * i, 10), (2 * i + 10, 20), (250, 250, 250), -1)
        (folder / (BAD + f"{i:03d}.png")).write_bytes(cv2.imencode(".png", f)[1].tobytes())
    zone = tmp / (BAD + "zone.png")
    zone.write_bytes(cv2.imencode(".png", np.full((48, 64), 255, np.uint8))[1].tobytes())
    r = run_process(folder, "--out", tmp / "o", "--bins", "--zone-mask", zone)
    assert r.returncode == 0, r.stderr
    no_traceback(r)
    d = tmp / "o" / "bad\\xff\\xfe"
    _complete(d, 12)
    assert len(list((d / "bin").glob("bin*.png"))) == 12
    # a folder that is not UTF-8 as --out: refused in one line, nothing written
    r = run_process(make_video(tmp / "short.avi", n=5), "--out", tmp / BAD / "out")
    assert r.returncode == 2 and "not valid UTF-8" in r.stderr, r.stderr
    no_traceback(r)
    assert not (tmp / BAD / "out").exists()


def test_viewer_opens_a_non_utf8_file_name(non_utf8):
    pytest.importorskip("PySide6")
    tmp = non_utf8
    bad = tmp / (BAD + ".avi")
    make_video(tmp / "v.avi", n=20).rename(bad)      # (OpenCV cannot write that name either)
    r = _py(f"""
        import os, sys
        from PySide6.QtWidgets import QApplication
        from kl_motion import Params
        from kl_motion.gui.main_window import MainWindow
        app = QApplication([])
        w = MainWindow(Params(), os.fsdecode({os.fsencode(str(bad))!r}), playing=True, speed=0.0)
        w.show()
        import time
        end = time.time() + 60
        while (w.packet is None or w.packet.position < 15) and time.time() < end:
            app.processEvents()
            time.sleep(0.01)
        print(w.packet.position if w.packet is not None else 0, w.windowTitle())
        w.shutdown()
        """, tmp, env=dict(QT_QPA_PLATFORM="offscreen"))
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    position, title = r.stdout.split(" ", 1)
    assert int(position) >= 15           # the viewer played the file (it has 20 frames)
    assert "bad\\xff\\xfe.avi" in title


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_killed_worker_does_not_fail_the_other_inputs(tmp_path):
    """A worker that dies (OOM killer, a crash in FFmpeg) used to break the whole pool:
    every input still queued failed with BrokenProcessPool."""
    if not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs /proc/PID/task/PID/children to find the worker processes")
    long = make_video(tmp_path / "long.avi", n=1500, moving=(100, 1400))
    short = make_video(tmp_path / "short.avi", n=30)
    cmd = [sys.executable, "-m", "kl_motion", "process", long, short, short, "--out", tmp_path / "o", "--jobs", "2"]
    p = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    st = tmp_path / "o" / "long" / "stats.part.csv"
    deadline = time.time() + 90
    while time.time() < deadline and not (st.exists() and st.stat().st_size > 3000):
        time.sleep(0.05)
    victims = []
    for c in _children(p.pid):
        try:
            cmdline = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and (Path(f"/proc/{c}/fd").exists()):
            # the worker that has long's stats.part.csv open
            if any(os.path.realpath(f"/proc/{c}/fd/{fd}") == str(st) for fd in os.listdir(f"/proc/{c}/fd")):
                victims.append(c)
    assert victims, "worker of long.avi not found"
    os.kill(victims[0], signal.SIGKILL)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    assert "worker process crashed" in err
    no_traceback(subprocess.CompletedProcess([], p.returncode, out, err))
    _complete(tmp_path / "o" / "long", 1500)        # run again alone: complete
    _complete(tmp_path / "o" / "short", 30)
    _complete(tmp_path / "o" / "short-2", 30)


# ---------------------------------------------------------------------------- 16-bit images
def test_16bit_folder_is_scaled_by_a_fixed_range_not_each_frames_maximum(tmp_path):
    """A hot pixel from frame 61 on used to darken every later frame (per-frame maximum):
    a false light switch and a relearn."""
    folder = tmp_path / "raw16"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(90):
        f = (rng.integers(0, 40, (60, 80)) + 1500).astype(np.uint16)      # a 12-bit sensor, dim scene
        if i >= 60:
            f[5, 5] = 65535                                              # one hot pixel
        cv2.imwrite(str(folder / f"f{i:03d}.png"), f)
    r = run_process(folder, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    rows = read_stats(tmp_path / "o" / "raw16" / "stats.csv")
    assert len(rows) == 90
    assert all(row["lightswitch"] == "0" for row in rows), [i for i, row in enumerate(rows) if row["lightswitch"] != "0"]
    assert max(float(row["fg_fraction"]) for row in rows) < 0.05
    from kl_motion.sources import FolderSource
    src = FolderSource(folder)
    frames = list(src)
    assert frames[0].dtype == np.uint8
    assert abs(float(frames[70].mean()) - float(frames[10].mean())) < 1.0    # same brightness mapping
    assert 80 < float(frames[10].mean()) < 110                               # 1520 of 4095 -> ~95


def test_grey_image_among_colour_ones_keeps_the_folder_layout(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(30):
        f = np.full((48, 64, 3), 100, np.uint8)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), f if i != 15 else f[:, :, 0])
    r = run_process(folder, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "size changed" not in r.stderr and "reset" not in r.stderr, r.stderr
    _complete(tmp_path / "o" / "mixed", 30)


# ---------------------------------------------------------------------------- zones and config files
def test_oversized_zones_are_refused_at_once(tmp_path):
    """10^4 random points took seconds in cv2.fillPoly, 10^6 did not finish in 300 s."""
    v = make_video(tmp_path / "a.avi", n=5)
    rng = np.random.default_rng(0)
    pts = rng.random((5000, 2)).round(4).tolist()
    cfg = tmp_path / "zones.toml"
    cfg.write_text(f"ignore_zones = {json.dumps([pts])}\n")
    t = time.time()
    r = run_process(v, "--out", tmp_path / "o", "--config", cfg, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "ignore_zones has 5000 points" in r.stderr and "zone_mask" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert time.time() - t < 30
    assert not (tmp_path / "o" / "a").exists()


@pytest.mark.parametrize("text, msg", [
    ("a = " + "[" * 50000 + "]" * 50000 + "\n", "nested too deeply"),
    ("x = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
    ("[events]\nkl_threshold = 3\n", "kl_threshold belongs in [detection]"),
    ("kl_threshold = 3\n[detection]\nkl_threshold = 4\n", "kl_threshold is set twice"),
    ("kl_treshold = 3\n", "kl_treshold (did you mean kl_threshold?)"),
    ("[detectoin]\nkl_threshold = 3\n", "unknown section [detectoin] (did you mean detection?)"),
    ("[detection.more]\nkl_threshold = 3\n", "sections do not nest"),
    ("kl_threshold = -3\n", "below its minimum"),
    ("# " + "x" * (1 << 20) + "\n", "at most 1048576"),
])
def test_hostile_config_files(tmp_path, text, msg):
    cfg = tmp_path / "site.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "kl_motion", "config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    no_traceback(r)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert msg in r.stderr and "site.toml" in r.stderr, r.stderr


def test_parameters_in_their_sections_still_load(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text("history = 300\n[detection]\nkl_threshold = 12.5\n[events]\nevent_gap = 1.5\n")
    r = subprocess.run([sys.executable, "-m", "kl_motion", "config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "kl_threshold = 12.5" in r.stdout and "event_gap = 1.5" in r.stdout and "history = 300" in r.stdout


# ---------------------------------------------------------------------------- hostile state files
_STATE_CASES = {
    "huge": "shape=np.array([6000, 6000, 3], np.int64)",     # and a gmm header of that size, below
    "nan": "gmm=np.where(z['gmm'] > 0.5, np.nan, z['gmm']).astype(np.float32)",
    "negcount": "frames_seen=np.int64(-1)",
    "shape2": "shape=np.array([48, 64], np.int64)",
    "negshape": "shape=np.array([48, -64, 3], np.int64)",
    "floatshape": "shape=np.array([48.0, 64, 3])",
    "nmodes": "nmodes=np.full_like(z['nmodes'], 9)",
    "weights": "gmm=(z['gmm'] * 5).astype(np.float32)",
    "f64": "gmm=z['gmm'].astype(np.float64)",
    "curinf": "cur=np.full_like(z['cur'], np.inf)",
}
_STATE_MSG = {
    "huge": "over the limit", "nan": "NaN", "negcount": "frames_seen=-1", "shape2": "'shape' must be 3",
    "negshape": "is not a frame", "floatshape": "'shape' must be 3", "nmodes": "9 mixture components",
    "weights": "weights range", "f64": "float64, expected", "curinf": "NaN or infinite",
}


def test_hostile_state_files_are_refused_quickly_and_small(tmp_path):
    """A 2.7 MB file declaring a 6000x6000 state took 76 s and 5.4 GB; NaN and frames_seen=-1
    loaded (the latter then raised ZeroDivisionError); bad shapes raised a raw ValueError."""
    r = _py(f"""
        import resource, time, sys
        import numpy as np
        from kl_motion import MotionModel
        from kl_motion.errors import StateError
        rng = np.random.default_rng(0)
        m = MotionModel()
        for i in range(25):
            m.apply(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8))
        m.save("good.npz")
        z = dict(np.load("good.npz"))
        cases = {_STATE_CASES!r}
        for name, change in cases.items():
            d = dict(z)
            d.update(eval("dict(" + change + ")"))
            np.savez_compressed(name + ".npz", **d)
        # 'huge': the gmm member's header declares 6000x6000 pixels (2.2 GB), its data is a stub
        import zipfile
        with zipfile.ZipFile("huge.npz") as src, zipfile.ZipFile("huge2.npz", "w") as dst:
            big = dict([("gmm.npy", ("<f4", (6000, 6000, 3, 5))), ("nmodes.npy", ("|u1", (6000, 6000))),
                        ("cur.npy", ("<f4", (6000, 6000, 4)))])
            for item in src.namelist():
                if item not in big:
                    dst.writestr(item, src.read(item))
            for item, (descr, shape) in big.items():
                with dst.open(item, "w") as f:
                    np.lib.format.write_array_header_1_0(f, dict(descr=descr, fortran_order=False, shape=shape))
                    f.write(bytes(4096))
        import os
        os.replace("huge2.npz", "huge.npz")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        good = MotionModel.load("good.npz")
        good.apply(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8))
        for name in cases:
            t = time.time()
            try:
                MotionModel.load(name + ".npz")
                print(name, "LOADED")
            except StateError as e:
                print(name, round(time.time() - t, 3), str(e).replace(chr(10), " "))
        print("rss", rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """, tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for name, msg in _STATE_MSG.items():
        assert lines[name] != "LOADED", name
        secs, text = lines[name].split(" ", 1)
        assert float(secs) < 1.0, (name, secs)
        assert msg in text and f"{name}.npz" in text, (name, text)
    rss0, rss1 = map(int, lines["rss"].split())
    assert rss1 - rss0 < 200_000, (rss0, rss1)          # kB: nothing large was allocated


def test_viewer_prints_no_raw_opencv_warnings(tmp_path):
    """`kl-motion view` of a truncated MP4 and of an absent camera printed OpenCV's own
    '[ WARN:0@1.2] global cap.cpp:212 open VIDEOIO(FFMPEG): ...' lines on the terminal."""
    pytest.importorskip("PySide6")
    v = tmp_path / "v.mp4"
    make_video(v, n=40, fourcc="mp4v")
    data = v.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])     # no moov atom: cannot be opened
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONWARNINGS="ignore")
    for source in ("trunc.mp4", "9"):
        p = subprocess.Popen([sys.executable, "-m", "kl_motion", "view", source], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(6)
        p.send_signal(signal.SIGINT)            # closes the window
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert "WARN" not in err and "VIDEOIO" not in err and "Traceback" not in err, err


# ---------------------------------------------------------------------------- output-side faults
def _noise_video(path: Path, n: int, size=(160, 120)) -> Path:
    """Incompressible frames: every output grows fast (fills a small disk)."""
    rng = np.random.default_rng(1)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for _ in range(n):
        vw.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    vw.release()
    return path


def _final_files_complete(root: Path) -> list[Path]:
    """Every file under a final name below ``root`` is complete: videos decode to the frame count
    of the run's summary/stats, text parses.  Returns the final-named files."""
    finals = [p for p in root.rglob("*") if p.is_file() and ".part" not in p.name and p.name != ".kl-motion.lock"]
    for p in finals:
        d = p.parent if p.parent.name not in ("clips", "snapshots", "bin", "mask") else p.parent.parent
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else None
        assert summary is not None, f"{p} under its final name but the run wrote no summary.json"
        if p.suffix in (".mkv", ".mp4") and p.parent == d:
            assert count_frames(p) == summary["frames"], p
        elif p.suffix in (".mkv", ".mp4"):
            assert count_frames(p) > 0, p
        elif p.name == "stats.csv":
            assert len(read_stats(p)) == summary["frames"], p
        elif p.suffix == ".jsonl":
            [json.loads(line) for line in p.read_text().splitlines()]
    return finals


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs (needs root or CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    d = tmp_path / "tiny"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'}); "
                    "the simulated write failure (RLIMIT_FSIZE) test still runs")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("stats", [False, True])
def test_disk_full_stops_at_once_and_renames_nothing(tmp_path, tiny_disk, stats):
    """Disk full used to rename broken files to their final names (mask.mkv 0 bytes, overlay.mp4
    without its index), keep encoding into the full disk and report 'internal error: OSError'."""
    v = _noise_video(tmp_path / "noise.avi", 400)
    flags = [] if stats else ["--no-stats", "--no-events"]
    t = time.time()
    r = run_process(v, "--out", tiny_disk, "--overlay", *flags, timeout=300)
    assert r.returncode == 2, r.stderr
    no_traceback(r)
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "disk full" in errors[0] and str(tiny_disk / "noise") in errors[0], r.stderr
    d = tiny_disk / "noise"
    assert _final_files_complete(tiny_disk) == []          # nothing under a final name
    assert not (d / "mask.mkv").exists() and not (d / "overlay.mp4").exists()
    # what was written stays readable as far as it got (docs/headless.md)
    n = count_frames(d / "mask.part.mkv")
    assert 0 < n < 400
    if stats:
        rows = read_stats(d / "stats.part.csv")
        assert 0 < len(rows) <= 400 and rows[-1]["frame"]
    assert time.time() - t < 200


def test_a_video_write_that_fails_silently_is_not_renamed(tmp_path):
    """FFmpeg drops a failed write and OpenCV does not say so: a file-size limit (RLIMIT_FSIZE,
    no root needed) truncates the videos; the run must see it and keep the .part names."""
    v = _noise_video(tmp_path / "noise.avi", 120)
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), "--out", str(tmp_path / "o"), "--overlay",
           "--no-stats", "--no-events"]

    def limit():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert r.returncode == 2, r.stderr
    no_traceback(r)
    assert "overlay.part.mp4: incomplete" in r.stderr, r.stderr
    d = tmp_path / "o" / "noise"
    assert not (d / "overlay.mp4").exists() and (d / "overlay.part.mp4").exists()
    assert _final_files_complete(tmp_path / "o") == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_close_outputs_like_ctrl_c(tmp_path, sig, code):
    """SIGTERM (kill, systemctl stop, docker stop) ended the run with rc 143 and every output an
    unplayable .part."""
    v = make_video(tmp_path / "long.avi", n=4000, moving=(100, 3900))
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), str(v), "--jobs", "2", "--out", str(tmp_path / "o"),
           "--overlay", "--clips"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        parts = list((tmp_path / "o").glob("*/stats.part.csv"))
        if len(parts) == 2 and all(q.stat().st_size > 2000 for q in parts):
            break
        time.sleep(0.05)
    os.killpg(p.pid, sig)                  # like systemd: the whole process group
    out, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err and "interrupted after" in err, err
    for name in ("long", "long-2"):
        d = tmp_path / "o" / name
        n = len(read_stats(d / "stats.csv"))
        assert 0 < n < 4000 and count_frames(d / "mask.mkv") == n and count_frames(d / "overlay.mp4") == n
        assert not part_files(d)
    _final_files_complete(tmp_path / "o")


def test_two_runs_into_one_folder_the_second_is_refused(tmp_path):
    """Both used to exit 0 with corrupt output (overlay.mp4 saying 3,000 frames, 1,500 decoding)."""
    # frames large enough that the first run is still going when the second has started (on a quiet
    # machine 160x120 frames were done in ~2 s, about the second run's own start-up time)
    v = make_video(tmp_path / "long.avi", n=600, moving=(100, 500), size=(640, 480))
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), "--out", str(tmp_path / "o"), "--overlay"]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "o" / "long" / ".kl-motion.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not lock.exists():
        time.sleep(0.02)
    b = run_process(v, "--out", tmp_path / "o", "--overlay", "--force")
    out, err = a.communicate(timeout=300)
    assert b.returncode == 2, b.stderr
    no_traceback(b)
    assert "being written by another kl-motion run (pid" in b.stderr, b.stderr
    assert a.returncode == 0, err
    d = tmp_path / "o" / "long"
    assert count_frames(d / "overlay.mp4") == 600 and count_frames(d / "mask.mkv") == 600
    assert len(read_stats(d / "stats.csv")) == 600
    assert not (d / ".kl-motion.lock").exists() and not part_files(d)


def test_a_failed_rename_fails_the_run(tmp_path):
    """A failed rename was only a warning and the run reported ok."""
    v = make_video(tmp_path / "a.avi", n=40)
    blocker = tmp_path / "o" / "a" / "stats.csv"
    blocker.mkdir(parents=True)                    # a folder under the final name: the rename fails
    (blocker / "keep").write_text("x")
    r = run_process(v, "--out", tmp_path / "o", "--force")
    assert r.returncode == 2, r.stderr
    no_traceback(r)
    assert "cannot rename" in r.stderr and "stats.csv" in r.stderr, r.stderr
    assert (blocker / "keep").read_text() == "x"


def _pacing_video(path: Path, n: int, moving: tuple[int, int], size=(160, 120)) -> Path:
    """Grey frames with a square pacing left and right during frames [moving[0], moving[1]):
    one long event."""
    w, h = size
    rng = np.random.default_rng(0)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for i in range(n):
        f = cv2.add(np.full((h, w, 3), 90, np.uint8), rng.integers(0, 3, (h, w, 3), dtype=np.uint8))
        if moving[0] <= i < moving[1]:
            x = abs((3 * (i - moving[0])) % 200 - 100) + 10
            cv2.rectangle(f, (x, 40), (x + 30, 80), (250, 250, 250), -1)
        vw.write(f)
    vw.release()
    return path


def _kill9_when(p: subprocess.Popen, cond, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not cond():
        time.sleep(0.05)
    assert cond(), "condition not reached"
    p.kill()
    p.wait(timeout=60)


def test_kill9_leftovers_do_not_block_a_rerun_and_force_keeps_old_clips(tmp_path):
    """After kill -9, a re-run with --clips refused because clips/ held only a .part; --force deleted
    the old snapshots and clips before the new run had replaced them."""
    v = _pacing_video(tmp_path / "long.avi", n=1500, moving=(100, 1400))
    out = tmp_path / "o"
    d = out / "long"
    cmd = [sys.executable, "-m", "kl_motion", "process", str(v), "--out", str(out), "--clips", "--snapshots"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    st = d / "stats.part.csv"
    _kill9_when(p, lambda: st.exists() and st.stat().st_size > 3000 and any((d / "clips").glob("*.part.mp4")),
                timeout=240)
    # what a hard kill leaves is readable as far as it reached the disk (docs/headless.md): the text
    # files, flushed every second (the videos are not: FFmpeg holds them in memory until closed)
    assert len(read_stats(st)) > 0
    r = run_process(v, "--out", out, "--clips", "--snapshots")
    assert r.returncode == 0, r.stderr
    assert not part_files(d)
    _final_files_complete(out)
    clip = d / "clips" / "event-0001.mp4"
    first = clip.stat().st_mtime_ns
    # --force, killed before its event ends: the first run's clip and snapshot are still there
    p = subprocess.Popen(cmd + ["--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill9_when(p, lambda: any((d / "clips").glob("*.part.mp4")), timeout=240)
    assert clip.stat().st_mtime_ns == first and count_frames(clip) > 0
    assert (d / "snapshots" / "event-0001.jpg").exists()


def test_one_pixel_folder_fails_cleanly(tmp_path):
    """A 1x1 image folder failed with 'cannot open a FFV1 video writer' and left .part files and an
    empty bin.part/."""
    folder = tmp_path / "dot"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), np.full((1, 1, 3), 20 * i, np.uint8))
    r = run_process(folder, "--out", tmp_path / "o", "--bins")
    assert r.returncode == 2, r.stderr
    no_traceback(r)
    assert "1x1 pixels are too small for a video" in r.stderr and "--mask-format png" in r.stderr, r.stderr
    assert not part_files(tmp_path / "o")
    r = run_process(folder, "--out", tmp_path / "o2", "--bins", "--mask-format", "png")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "o2" / "dot" / "bin").iterdir())) == 10


def test_text_outputs_reach_the_disk_every_second(tmp_path):
    """A killed run's stats.part.csv was 0 bytes after 6 s of a stream (everything still in the
    file object's buffer): a slow live source must find its rows on disk within about a second."""
    from kl_motion.sinks import FLUSH_SECONDS, TextSink
    t = TextSink(tmp_path / "stats.csv", "frame")
    t.line("1")
    time.sleep(FLUSH_SECONDS + 0.1)
    t.line("2")                                   # a frame of a slow camera, a second later
    assert (tmp_path / "stats.part.csv").read_text() == "frame\n1\n2\n"
    t.close(ok=True)
    assert (tmp_path / "stats.csv").read_text() == "frame\n1\n2\n"
