"""The video sources of kl_motion/sources.py, in-process and exact (issue 17: the mutation run of
sources.py; each test names the bug it was checked against: the mutant, or the same change made by
hand, failed it).

Every input is a real file made here: PNG/TIFF folders (8-bit, 16-bit, float, BGRA, grey among
colour), MJPG .avi files whose header says a chosen frame rate (the rate field patched: FFmpeg's
writer cannot write some of them) or whose frames are zeroed (it opens, nothing decodes), a
non-UTF-8 file name, a TCP port that accepts and never answers.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion.errors import SourceError
from kl_motion.sources import (CaptureSource, FolderSource, Source, VideoInfo, classify, demo_path, is_live,
                               natural_key, open_source)

RNG = np.random.default_rng(1717)


def _avi(path: Path, n: int = 5, rate: int | None = None, size=(16, 8), zero=False) -> Path:
    """An MJPG .avi of ``n`` frames of brightness 40*i; ``rate``: the frame rate its header says;
    ``zero``: every frame's JPEG data zeroed (the file opens, no frame decodes)."""
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for i in range(n):
        vw.write(np.full((h, w, 3), 40 * i, np.uint8))
    vw.release()
    d = bytearray(path.read_bytes())
    if rate is not None:
        i = d.find(b"strh")          # AVISTREAMHEADER: dwScale at +28, dwRate at +32 from the fourcc
        d[i + 28:i + 36] = struct.pack("<II", 1, rate)
    if zero:
        pos = 0
        while (j := d.find(b"00dc", pos)) >= 0:
            size_ = struct.unpack("<I", d[j + 4:j + 8])[0]
            if 0 < size_ and j + 8 + size_ <= len(d):
                d[j + 8:j + 8 + size_] = bytes(size_)
            pos = j + 8
    path.write_bytes(bytes(d))
    return path


def _fds() -> set:
    """This process's open descriptors as (number, target). A set, not a count: another thread (or the
    garbage collector) may close a descriptor of its own meanwhile; the listing's own descriptor is shut
    by the time readlink runs and drops out."""
    out = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            out.add((int(n), os.readlink(f"/proc/self/fd/{n}")))
        except OSError:
            continue
    return out


# ------------------------------------------------------------------------------- names and kinds
def test_classify_natural_order_and_live():
    """Planted: `isinstance(spec, int) and re.fullmatch(...)` ("12" a file), the URL not lowered
    (`not s.lower().startswith`), `classify(spec) not in LIVE_KINDS`, natural_key's int/lower swapped."""
    here = Path(__file__).parent
    assert [classify(x) for x in (3, "12", "RTSP://h/s", "http://h/v.mjpg", here, "x.mp4", "12a", "")] == \
        ["camera", "camera", "stream", "stream", "folder", "file", "file", "folder"]
    assert [is_live(x) for x in (0, "0", "rtsps://h/s", here, "clip.mp4")] == [True, True, True, False, False]
    names = ["f10.png", "F2.png", "f1.png", "b.png", "A.png"]
    assert sorted(names, key=natural_key) == ["A.png", "b.png", "f1.png", "F2.png", "f10.png"]


def test_video_info_defaults_follow_the_kind():
    """Planted: `live is not None`, `kind not in LIVE_KINDS`, `seekable = live`, `fps_known = live`
    (each `not` removed), the `is None` tests of seekable and fps_known reversed."""
    cam = VideoInfo(4, 3, 30.0, None, "camera", "0")
    assert (cam.live, cam.seekable, cam.fps_known, cam.resolution) == (True, False, False, (4, 3))
    f = VideoInfo(4, 3, 25.0, 9, "file", "a.mp4")
    assert (f.live, f.seekable, f.fps_known) == (False, True, True)
    s = VideoInfo(4, 3, 25.0, None, "stream", "u", live=False, seekable=False, fps_known=True)
    assert (s.live, s.seekable, s.fps_known) == (False, False, True)      # given values are kept


def test_a_source_subclass_starts_at_frame_zero_and_iterates_to_none():
    """Planted: Source.frames_read 1 / -1 (the class default a subclass without its own counter gets),
    `f is not None` in __iter__."""
    class Three(Source):
        def __init__(self):
            self.left = 3

        def read(self):
            self.left -= 1
            return np.zeros((1, 1), np.uint8) if self.left >= 0 else None

    with Three() as s:
        assert s.frames_read == 0
        assert len(list(s)) == 3
    with pytest.raises(NotImplementedError):
        Source().read()


# -------------------------------------------------------------------------------------- FolderSource
def _folder(path: Path, images: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        assert cv2.imwrite(str(path / name), img)
    return path


def test_folder_lists_images_in_natural_order_and_reads_them_once_each(tmp_path):
    """Planted: `suffix not in IMAGE_EXTS`, `or p.is_file()`, the suffix not lowered, FPS 26 / 24,
    live/seekable/fps_known flipped, frames_read starting at 1, `frames_read > len(files)` (reads
    past the end), `_first ... or frames_read == 0` / `!= 0` (the first frame again) / `== -1` (the
    first image read from disk again), shape[:3]."""
    imgs = [RNG.integers(0, 256, (6, 10, 3), np.uint8) for _ in range(3)]
    d = _folder(tmp_path / "in", {"f10.png": imgs[2], "f2.PNG": imgs[1], "f1.png": imgs[0]})
    (d / "notes.txt").write_text("not an image")
    (d / "f3.png").mkdir()                                  # a folder with an image's name
    s = FolderSource(d)
    assert [p.name for p in s.files] == ["f1.png", "f2.PNG", "f10.png"]
    assert cv2.imwrite(str(d / "f1.png"), imgs[1])    # the first image was read at the open (for its size), once
    assert s.info == VideoInfo(10, 6, 25.0, 3, "folder", str(d), live=False, seekable=True, fps_known=False)
    assert s.frames_read == 0
    got = list(s)
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, imgs))
    assert s.frames_read == 3 and s.read() is None


def test_folder_seek(tmp_path):
    """Planted: `max(1, ...)` / `max(-1, ...)` in seek (frame 0 skipped; a negative index reading
    the last file), `_first ... or ...` (seek(0) returning None)."""
    imgs = [np.full((4, 4), 10 * i, np.uint8) for i in range(4)]
    s = FolderSource(_folder(tmp_path / "g", {f"{i}.png": im for i, im in enumerate(imgs)}))
    s.seek(2)
    assert s.read()[0, 0] == 20 and s.frames_read == 3
    s.seek(0)
    assert s.read()[0, 0] == 0
    s.seek(-3)
    assert s.read()[0, 0] == 0 and s.frames_read == 1
    s.seek(99)
    assert s.read() is None and s.frames_read == 4


def test_folder_errors(tmp_path):
    """Planted: `if files` (not), `img is not None`, `_load` raising no error for a broken later image."""
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "a.txt").write_text("x")
    with pytest.raises(SourceError) as e:
        FolderSource(tmp_path / "none")
    assert str(e.value) == f"{tmp_path / 'none'}: no images in folder"
    d = _folder(tmp_path / "bad", {"1.png": np.zeros((4, 4), np.uint8)})
    (d / "2.png").write_bytes(b"not a png")
    s = FolderSource(d)
    assert s.read() is not None
    with pytest.raises(SourceError) as e:
        s.read()
    assert str(e.value) == f"{d / '2.png'}: cannot read image"


def test_folder_keeps_the_first_images_layout_and_grey_reads_grey(tmp_path):
    """Planted: `colour = img.ndim != 3` / `== 4`, `_colour is not None`, GRAY2BGR and BGR2GRAY
    swapped (`not self._colour`), BGRA not made BGR (`shape[2] != 4`, `or`, `ndim == 4`), the
    IMREAD flag swapped (`if not grey`), open_source's grey default True."""
    col = RNG.integers(0, 256, (6, 8, 3), np.uint8)
    grey = RNG.integers(0, 256, (6, 8), np.uint8)
    bgra = np.dstack([col, np.full((6, 8), 77, np.uint8)])
    got = list(FolderSource(_folder(tmp_path / "c", {"1.png": col, "2.png": grey, "3.png": bgra})))
    assert [g.shape for g in got] == [(6, 8, 3)] * 3
    assert np.array_equal(got[0], col) and np.array_equal(got[1], np.dstack([grey] * 3))
    assert np.array_equal(got[2], col)
    got = list(FolderSource(_folder(tmp_path / "g", {"1.png": grey, "2.png": col})))
    assert [g.shape for g in got] == [(6, 8)] * 2
    assert np.array_equal(got[0], grey) and np.array_equal(got[1], cv2.cvtColor(col, cv2.COLOR_BGR2GRAY))
    got = list(FolderSource(tmp_path / "c", grey=True))
    assert np.array_equal(got[0], cv2.imread(str(tmp_path / "c" / "1.png"), cv2.IMREAD_GRAYSCALE))
    assert all(g.ndim == 2 for g in got)
    assert np.array_equal(next(iter(open_source(tmp_path / "c", grey=True))), got[0])
    assert np.array_equal(next(iter(open_source(tmp_path / "c"))), col)       # colour unless asked


@pytest.mark.parametrize("top, bits", [(200, 8), (255, 8), (256, 10), (1023, 10), (1024, 12), (4000, 12),
                                       (4096, 14), (16383, 14), (16384, 16), (60000, 16)])
def test_16bit_images_scale_by_the_smallest_bit_depth_that_holds_the_first(tmp_path, top, bits):
    """Planted: each depth of (8, 10, 12, 14, 16) +-1, `top < 2 ** b - 1`, `2 ** b + 1` / `- 0` /
    `- 2`, `r = 2 ** bits + 1`, `alpha = 255.0 * r`, 256.0 / 254.0, `dtype == np.uint8`."""
    first = np.linspace(0, top, 48).astype(np.uint16).reshape(6, 8)
    second = np.full((6, 8), top // 2, np.uint16)
    s = FolderSource(_folder(tmp_path / "d", {"1.png": first, "2.png": second}))
    r = 2 ** bits - 1
    got = list(s)
    assert got[0].dtype == np.uint8
    assert np.array_equal(got[0], cv2.convertScaleAbs(first, alpha=255.0 / r))
    assert np.array_equal(got[1], cv2.convertScaleAbs(second, alpha=255.0 / r))   # the same range


def test_the_range_is_fixed_by_the_first_image(tmp_path):
    """A later, brighter 16-bit image saturates instead of dimming every frame (the range is kept
    per pixel type).  Planted: `_ranges.get(...)` result tested `is not None`."""
    dim = np.full((4, 4), 1000, np.uint16)
    hot = np.full((4, 4), 4000, np.uint16)
    got = list(FolderSource(_folder(tmp_path / "h", {"1.png": dim, "2.png": hot})))
    assert got[0][0, 0] == 249 and got[1][0, 0] == 255


@pytest.mark.parametrize("top, r", [(0.8, 1.0), (1.0, 1.0), (1.5, 1.5), (4.0, 4.0), (np.inf, 1.0)])
def test_float_images_scale_by_one_or_their_maximum(tmp_path, top, r):
    """Planted: `if np.isfinite(top)` (not removed), `top = 2.0` for inf, the integer path for floats
    (`not np.issubdtype`), `1.0 if top <= 2.0` / `<= 0.0`, `2.0 if ...`, `img.size` tested with not."""
    first = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8) * (top if np.isfinite(top) else 1.0)
    if not np.isfinite(top):
        first[0, 0] = np.inf
    s = FolderSource(_folder(tmp_path / "f", {"1.tiff": first}))
    got = s.read()
    assert got.dtype == np.uint8
    assert np.array_equal(got, cv2.convertScaleAbs(first, alpha=255.0 / r))


# ------------------------------------------------------------------------------------- CaptureSource
def test_capture_file_info_reading_and_seek(tmp_path):
    """Planted: `kind and classify(spec)`, width/height from shape[2]/shape[1] or shape[1]/shape[-1],
    `n > 1` / `n >= 0` for the frame count, frames_read from 1, `_first is None`, `not ok and ...`,
    `cap is not None` in close, seek's frames_read."""
    p = _avi(tmp_path / "five.avi", 5, size=(16, 8))
    s = CaptureSource(str(p))
    assert s.info == VideoInfo(16, 8, 10.0, 5, "file", str(p), live=False, seekable=True, fps_known=True)
    assert s.frames_read == 0
    means = [round(float(f.mean())) for f in s]
    assert means == [0, 40, 80, 120, 160] and s.frames_read == 5 and s.read() is None
    s.seek(3)
    assert round(float(s.read().mean())) == 120 and s.frames_read == 4
    s.close()
    assert s.cap is None and s.read() is None
    s.close()
    with pytest.raises(SourceError, match="cannot seek: the source is closed"):
        s.seek(0)
    one = CaptureSource(str(_avi(tmp_path / "one.avi", 1)))
    assert one.info.total_frames == 1
    one.close()


@pytest.mark.parametrize("rate, fps, known", [(1000, 1000.0, True), (1001, 25.0, False), (1, 1.0, True)])
def test_a_file_frame_rate_outside_1_to_1000_is_not_known(tmp_path, rate, fps, known):
    """Planted: `fps <= 1001` / `< 1000` / `<= 999`, `0 < fps` -> `1 < fps`, each `and` -> `or`, the
    file default 25.0 -> 26 / 24 or the live one for a file (`if not live`)."""
    s = CaptureSource(str(_avi(tmp_path / f"r{rate}.avi", 3, rate=rate)))
    assert (s.info.fps, s.info.fps_known) == (fps, known)
    s.close()


def test_a_stream_has_no_frame_count_and_a_default_rate_of_30(tmp_path):
    """A local file opened as a stream (kind given): live, not seekable, no frame count, and 30 fps
    when its rate is not known.  Planted: 30.0 -> 31 / 29, `n = ... if not live`, `n >= 0`, seekable
    `live`, seek's `not self.info.seekable` reversed."""
    s = CaptureSource(str(_avi(tmp_path / "s.avi", 3, rate=1001)), kind="stream")
    assert (s.info.fps, s.info.fps_known, s.info.total_frames, s.info.live, s.info.seekable) == \
        (30.0, False, None, True, False)
    with pytest.raises(SourceError) as e:
        s.seek(1)
    assert str(e.value) == f"{tmp_path / 's.avi'}: cannot seek in a stream"
    s.close()


def test_capture_errors_are_one_line_per_kind(tmp_path):
    """Planted: `not p.exists()` / `not p.is_file()` / `st_size != 0` / `== 1` / `== -1` reversed or
    shifted, `not cap.isOpened()` without not, `not ok and first is None`, `first is not None`, the
    messages' kinds mixed, `kind == "stream" or not is_utf8(spec)`, `kind != "camera"`."""
    def msg(spec, **kw):
        with pytest.raises(SourceError) as e:
            CaptureSource(spec, **kw)
        return str(e.value)

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "one.mp4").write_bytes(b"x")
    assert msg(str(tmp_path / "no.mp4")) == f"{tmp_path / 'no.mp4'}: no such file"
    assert msg(str(tmp_path), kind="file") == f"{tmp_path}: not a file"
    assert msg(str(tmp_path / "empty.mp4")) == f"{tmp_path / 'empty.mp4'}: file is empty"
    assert msg(str(tmp_path / "one.mp4")) == f"{tmp_path / 'one.mp4'}: not a video file OpenCV can read"
    z = _avi(tmp_path / "zero.avi", 3, zero=True)
    assert msg(str(z)) == f"{z}: video has no readable frames"
    assert msg(99) == "camera 99: not found or cannot be opened"
    assert msg("rtsp://h/\udcff") == "rtsp://h/\\xff: the URL is not valid UTF-8"
    assert msg("http://127.0.0.1:1/v") == "http://127.0.0.1:1/v: cannot open stream"      # refused at once


def test_a_silent_stream_fails_after_the_open_timeout(tmp_path):
    """A server that accepts and never answers: the open fails after open_timeout, not FFmpeg's own
    (much longer) one.  Planted: `int(open_timeout / 1000)` (0 ms: FFmpeg's default)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="cannot open stream"):
            CaptureSource(f"http://127.0.0.1:{srv.getsockname()[1]}/v", open_timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 3.0
    finally:
        srv.close()


def test_a_stream_error_does_not_show_the_urls_password():
    """The Python API's SourceError for a stream names it without the password in its URL (the CLI
    redacted its own messages; open_source's did not).  Planted: the name not redacted."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        port = srv.getsockname()[1]
        with pytest.raises(SourceError) as e:
            CaptureSource(f"http://viewer:s3cret-pw@127.0.0.1:{port}/v", open_timeout=0.3)
        assert "s3cret-pw" not in str(e.value)
        assert str(e.value) == f"http://viewer:***@127.0.0.1:{port}/v: cannot open stream"
    finally:
        srv.close()


def test_a_stream_that_stalls_ends_after_the_read_timeout():
    """An MJPEG-over-HTTP server that sends 30 frames and then nothing (the connection kept open):
    the read after the 30th gives None after about open_timeout.  Planted: `int(open_timeout / 1000)` for the
    read timeout (0 ms: FFmpeg waits until the server goes away)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    done = threading.Event()
    jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 120, np.uint8))[1].tobytes()

    def serve():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
        for _ in range(30):
            conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                         + jpeg + b"\r\n")
        done.wait(20)                       # stalled, not closed
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        s = CaptureSource(f"http://127.0.0.1:{srv.getsockname()[1]}/v.mjpg", "stream", open_timeout=1.0)
        n, t0 = 0, time.monotonic()
        while s.read() is not None:
            n, t0 = n + 1, time.monotonic()
        took = time.monotonic() - t0              # the read that waited for a 31st frame
        s.close()
        assert n == 30 and 0.5 < took < 5.0, (n, took)
    finally:
        done.set()
        srv.close()


def test_a_non_utf8_file_name_is_read_through_a_descriptor_closed_afterwards(tmp_path):
    """Planted: `fd is None` in _close_fd (os.close(None) on every close), the descriptor not closed
    when the open fails (the `except BaseException` replaced)."""
    good = Path(os.fsdecode(bytes(tmp_path) + b"/cam\xff.avi"))
    _avi(tmp_path / "x.avi", 2)
    os.replace(tmp_path / "x.avi", good)
    n0 = _fds()
    s = CaptureSource(str(good))
    assert s.info.name == str(tmp_path / "cam\\xff.avi") and len(list(s)) == 2
    s.close()
    assert _fds() - n0 == set()
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/junk\xff.avi"))
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="not a video file"):
        CaptureSource(str(bad))
    assert _fds() - n0 == set()
    u = CaptureSource(str(_avi(tmp_path / "u.avi", 1)))           # a UTF-8 name: no descriptor to close
    u.close()


def test_open_source_and_the_demo_clip(tmp_path):
    """Planted: `kind != "folder"`, `int(...) if kind != "camera"`, demo_path's checks without not."""
    demo = demo_path()
    assert (demo / "input").is_dir() and (demo / "temporalROI.txt").is_file()
    src = open_source(demo / "input")
    assert isinstance(src, FolderSource) and src.info.total_frames == 150
    v = open_source(_avi(tmp_path / "v.avi", 2))
    assert isinstance(v, CaptureSource) and v.info.kind == "file"
    v.close()
    with pytest.raises(SourceError, match="camera 98: not found"):
        open_source("98")
