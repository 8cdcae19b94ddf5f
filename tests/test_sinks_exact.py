"""The output writers of kl_motion/sinks.py, in-process and exact (issue 17: the mutation run of
sinks.py; each test names the bug it was checked against: the mutant, or the same change made by
hand, failed it).

Real files are written and read back (FFV1 in .mkv is lossless, grey and colour, so decoded frames
are compared exactly).  Two things are faked, each in one test: the free space of the device
(``os.statvfs``, to put the disk-full limit exactly on its boundary) and the clock of TextSink (to
put the flush interval exactly on its boundary).  A full device is /dev/full behind a symlink.
"""
from __future__ import annotations

import os
import struct
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest_process import video_frames

from kl_motion import sinks
from kl_motion.errors import OutputError
from kl_motion.sinks import (ImageSequenceSink, TextSink, VideoSink, check_new, check_space, verify_video,
                             write_image)

RNG = np.random.default_rng(17)


def _decode(path: Path) -> list[np.ndarray]:
    return video_frames(path, cv2.CAP_FFMPEG)


def _fourcc(path: Path) -> str:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    return code.to_bytes(4, "little").decode("ascii", "replace").lower()


def _fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps


# ------------------------------------------------------------------------------------- check_space
def test_disk_full_limit_is_one_mebibyte_and_the_message_gives_the_kilobytes_left(tmp_path, monkeypatch):
    """Planted: `free <= MIN_FREE_BYTES`, MIN_FREE_BYTES 1 << 21 / 2 << 20, `f_bavail / f_frsize`,
    `free * 1024`, `// 1023` / `// 1025` in the message, `not path.is_dir()` (statvfs of a missing
    file: no check)."""
    free = {"blocks": 0}

    def statvfs(p):
        os.stat(p)                                  # a missing path fails as the real statvfs does
        return types.SimpleNamespace(f_bavail=free["blocks"], f_frsize=4096)

    monkeypatch.setattr(os, "statvfs", statvfs)
    free["blocks"] = (1 << 20) // 4096              # exactly 1 MiB left: still written
    check_space(tmp_path)
    check_space(tmp_path / "mask.part.mkv")         # not written yet: its folder's device counts
    free["blocks"] = (1 << 20) // 4096 - 1          # 4 kB less: refused, naming the path and what is left
    with pytest.raises(OutputError) as e:
        check_space(tmp_path / "mask.part.mkv")
    assert str(e.value) == f"{tmp_path / 'mask.part.mkv'}: disk full (1020 kB left on its device); stopped writing"
    with pytest.raises(OutputError, match="disk full"):
        check_space(tmp_path)
    # one byte short of 1 MiB, in 1-byte blocks
    monkeypatch.setattr(os, "statvfs", lambda p: types.SimpleNamespace(f_bavail=(1 << 20) - 1, f_frsize=1))
    with pytest.raises(OutputError, match=r"disk full \(1023 kB left"):    # 1048575 // 1024 (// 1023 gives 1025)
        check_space(tmp_path)


def test_a_vanished_folder_is_not_a_full_disk(tmp_path):
    """Planted: the `except (OSError, AttributeError)` not catching (FileNotFoundError escapes)."""
    assert check_space(tmp_path / "gone" / "mask.part.mkv") is None


# ---------------------------------------------------------------------------------------- check_new
def test_check_new_refuses_files_and_folders_with_a_complete_file_only(tmp_path):
    """Planted: `or` -> `and`, `and` -> `or`, `PART in q.name`, the loop over paths never run."""
    (tmp_path / "stats.csv").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "leftovers").mkdir()
    (tmp_path / "leftovers" / "bin000001.part.png").write_text("x")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "bin000001.png").write_text("x")
    check_new([tmp_path / "empty", tmp_path / "leftovers", tmp_path / "missing.mkv"], force=False)
    for p in ("stats.csv", "done"):
        with pytest.raises(OutputError) as e:
            check_new([tmp_path / "missing.mkv", tmp_path / p], force=False)
        assert str(e.value) == f"{tmp_path / p} exists (use --force to overwrite)"
    check_new([tmp_path / "stats.csv", tmp_path / "done"], force=True)


# -------------------------------------------------------------------------------------- verify_video
def _video(path: Path, n: int) -> Path:
    v = VideoSink(path, 25, color=False)
    for i in range(n):
        v.write(np.full((8, 10), 20 * i, np.uint8))
    v.end(verify=False)
    return v.tmp


def test_verify_video_counts_frames_and_reads_the_last(tmp_path):
    """Planted: `max(0, frames + 1)` / `max(1, ...)` / `frames - 2` as the frame read, `n != frames and not ok`,
    `n == frames` choosing the message, `fd is None` (os.close(None)), the except not catching."""
    one, five = _video(tmp_path / "one.mkv", 1), _video(tmp_path / "five.mkv", 5)
    assert verify_video(one, 1) is None
    assert verify_video(five, 5) is None
    assert verify_video(five, 6) == "it holds 5 frames of the 6 written"
    assert verify_video(five, 4) == "it holds 5 frames of the 4 written"
    assert verify_video(tmp_path / "missing.mkv", 3) == "it cannot be opened (no index)"
    (tmp_path / "junk.mkv").write_bytes(b"x" * 1000)
    assert verify_video(tmp_path / "junk.mkv", 3) == "it cannot be opened (no index)"
    # an MJPG .avi whose last frame's JPEG data is zeroed: the right count, the last frame unreadable
    vw = cv2.VideoWriter(str(tmp_path / "z.avi"), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (16, 8))
    for i in range(3):
        vw.write(np.full((8, 16, 3), 60 * i, np.uint8))
    vw.release()
    d = bytearray((tmp_path / "z.avi").read_bytes())
    j = d.rfind(b"00dc", 0, d.find(b"idx1"))
    n = struct.unpack("<I", d[j + 4:j + 8])[0]
    d[j + 8:j + 8 + n] = bytes(n)
    (tmp_path / "z.avi").write_bytes(bytes(d))
    assert verify_video(tmp_path / "z.avi", 3) == "its last frame does not decode"
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/\xff.mkv"))      # a name that is not UTF-8
    assert "No such file" in verify_video(bad, 3)
    os.replace(five, bad)
    assert verify_video(bad, 5) is None                           # opened through /proc/self/fd


# ---------------------------------------------------------------------------------------- VideoSink
def test_video_sink_codecs_by_extension_and_an_explicit_fourcc(tmp_path):
    """Planted: `fourcc and CODECS...`, `[1]` / `[-1]` of the CODECS entry, the suffix not lowered."""
    f = RNG.integers(0, 256, (16, 24, 3), np.uint8)
    # (FFmpeg's decoder names MPEG-4 part 2, written as mp4v, "fmp4")
    want = {"m.mkv": "ffv1", "o.MP4": "fmp4", "a.avi": "mjpg", "x.mov": "ffv1"}
    for name, code in want.items():
        v = VideoSink(tmp_path / name, 25, color=True)
        v.write(f)
        assert v.close() == tmp_path / name
        assert _fourcc(tmp_path / name) == code, name
    v = VideoSink(tmp_path / "j.mkv", 25, color=True, fourcc="MJPG")
    v.write(f)
    v.close()
    assert _fourcc(tmp_path / "j.mkv") == "mjpg"
    with pytest.raises(OutputError, match=r"z\.mkv: cannot open a ZZZZ video writer"):
        VideoSink(tmp_path / "z.mkv", 25, color=True, fourcc="ZZZZ").write(f)


def test_video_sink_frame_rate_and_its_default(tmp_path):
    """Planted: 25.0 -> 26.0 / 24.0, `fps or fps > 0` (a negative rate kept), `fps > 1` (0.5 refused),
    `fps > -1` (-0.5 kept)."""
    for fps, want in ((None, 25.0), (0, 25.0), (-5, 25.0), (-0.5, 25.0), (0.5, 0.5), (12.5, 12.5)):
        v = VideoSink(tmp_path / f"v{want}.mkv", fps, color=False)
        assert v.fps == want
        v.write(np.zeros((4, 4), np.uint8))
        v.close()
        assert _fps(tmp_path / f"v{want}.mkv") == pytest.approx(want), fps


def test_video_sink_size_limits(tmp_path):
    """Planted: `w < 3`, `w <= 2`, `w < 1`, `h < 1`, `w < 2 and h < 2`."""
    v = VideoSink(tmp_path / "a" / "b" / "two.mkv", 25, color=False)     # folders made on the way
    v.write(np.full((2, 2), 9, np.uint8))
    assert v.close() == tmp_path / "a" / "b" / "two.mkv"
    assert [f[:, :, 0].tolist() for f in _decode(tmp_path / "a" / "b" / "two.mkv")] == [[[9, 9], [9, 9]]]
    for h, w in ((5, 1), (1, 5), (1, 1)):
        with pytest.raises(OutputError) as e:
            VideoSink(tmp_path / "small.mkv", 25, color=False).write(np.zeros((h, w), np.uint8))
        assert str(e.value) == (f"{tmp_path / 'small.mkv'}: frames of {w}x{h} pixels are too small for a video "
                                "(FFmpeg needs at least 2x2; for the mask use --mask-format png)")
    assert not list(tmp_path.glob("small*"))


def test_mask_video_is_lossless_and_later_sizes_are_resized_nearest(tmp_path):
    """Planted: `(w, h) == self.size` (a frame of another size written as it is: dropped), the
    interpolation `self.color` instead of `not self.color` (INTER_AREA greys a 0/255 mask), frames
    counted by 2 / from 1."""
    first = np.where(RNG.random((12, 16)) > 0.5, 255, 0).astype(np.uint8)
    big = np.where(RNG.random((24, 32)) > 0.5, 255, 0).astype(np.uint8)
    v = VideoSink(tmp_path / "mask.mkv", 25, color=False)
    v.write(first)
    v.write(big)
    v.write(first)
    assert v.frames == 3 and v.size == (16, 12)
    v.close()
    got = [f[:, :, 0] for f in _decode(tmp_path / "mask.mkv")]
    assert len(got) == 3
    assert np.array_equal(got[0], first) and np.array_equal(got[2], first)
    assert np.array_equal(got[1], cv2.resize(big, (16, 12), interpolation=cv2.INTER_NEAREST))
    assert set(np.unique(got[1])) <= {0, 255}


def test_colour_video_takes_grey_frames_and_resizes_by_area(tmp_path):
    """Planted: `not self.color and img.ndim == 2` / `ndim != 2` / `or` (grey not made colour),
    INTER_NEAREST for colour."""
    img = RNG.integers(0, 256, (16, 24, 3), np.uint8)
    grey = RNG.integers(0, 256, (16, 24), np.uint8)
    big = RNG.integers(0, 256, (32, 48, 3), np.uint8)
    v = VideoSink(tmp_path / "c.mkv", 25, color=True)
    v.write(img)
    v.write(grey)
    v.write(big)
    v.close()
    got = _decode(tmp_path / "c.mkv")
    assert len(got) == 3
    assert np.array_equal(got[0], img)
    assert np.array_equal(got[1], np.dstack([grey] * 3))
    assert np.array_equal(got[2], cv2.resize(big, (24, 16), interpolation=cv2.INTER_AREA))


def test_grey_video_takes_colour_and_one_channel_frames(tmp_path):
    """Planted: `shape[2] != 1` (BGR taken as its blue plane, one channel given to cvtColor),
    `img[:, :, 1]`, `ndim == 4` / `ndim != 3` / `or` (colour frames not made grey)."""
    img = RNG.integers(0, 256, (16, 24, 3), np.uint8)
    one = RNG.integers(0, 256, (16, 24, 1), np.uint8)
    grey = RNG.integers(0, 256, (16, 24), np.uint8)
    v = VideoSink(tmp_path / "g.mkv", 25, color=False)
    v.write(grey)
    v.write(img)
    v.write(one)
    v.close()
    got = [f[:, :, 0] for f in _decode(tmp_path / "g.mkv")]
    assert np.array_equal(got[0], grey)
    assert np.array_equal(got[1], cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert np.array_equal(got[2], one[:, :, 0])


def test_video_sink_close_verifies_renames_once_and_keeps_a_bad_video(tmp_path):
    """Planted: `closed = True` in __init__, `if not self.closed`, `self._w is not None` in close or
    end, verify's default False, `bad is None`, commit `if not self.frames`, `return self.commit() if
    not ok`.  A frame FFmpeg dropped (a full disk) is made by counting one frame more than was written."""
    v = VideoSink(tmp_path / "ok.mkv", 25, color=False)
    assert v.close() is None and v.commit() is None and not list(tmp_path.iterdir())   # nothing written
    v = VideoSink(tmp_path / "ok.mkv", 25, color=False)
    v.write(np.zeros((4, 4), np.uint8))
    assert v.close() == tmp_path / "ok.mkv" and v.closed
    assert v.close() is None                                       # once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mkv"]

    v = VideoSink(tmp_path / "cut.mkv", 25, color=False)
    v.write(np.zeros((4, 4), np.uint8))
    assert v.close(ok=False) == tmp_path / "cut.part.mkv"          # an interrupted run: not renamed
    assert len(_decode(tmp_path / "cut.part.mkv")) == 1 and not (tmp_path / "cut.mkv").exists()

    v = VideoSink(tmp_path / "bad.mkv", 25, color=False)
    for _ in range(3):
        v.write(np.zeros((4, 4), np.uint8))
    v.frames += 1                                                  # FFmpeg dropped a write
    with pytest.raises(OutputError) as e:
        v.end()
    assert str(e.value) == (f"{tmp_path / 'bad.part.mkv'}: incomplete: it holds 3 frames of the 4 written; "
                            "kept under its temporary name")
    v.end()                                                        # released already: nothing to do
    assert not (tmp_path / "bad.mkv").exists() and (tmp_path / "bad.part.mkv").exists()
    w = VideoSink(tmp_path / "bad2.mkv", 25, color=False)
    w.write(np.zeros((4, 4), np.uint8))
    w.frames += 1
    with pytest.raises(OutputError, match="incomplete"):
        w.close()
    assert not (tmp_path / "bad2.mkv").exists()


def test_video_sink_as_context_manager_renames_unless_an_error(tmp_path):
    """Planted: `et is not None or ...`, `et is None and issubclass(...)`."""
    with VideoSink(tmp_path / "a.mkv", 25, color=False) as v:
        v.write(np.zeros((4, 4), np.uint8))
    assert (tmp_path / "a.mkv").exists()
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(tmp_path / "ctrl_c.mkv", 25, color=False) as v:
            v.write(np.zeros((4, 4), np.uint8))
            raise KeyboardInterrupt        # Ctrl-C: what was written is complete and kept
    assert (tmp_path / "ctrl_c.mkv").exists()
    with pytest.raises(ValueError):
        with VideoSink(tmp_path / "err.mkv", 25, color=False) as v:
            v.write(np.zeros((4, 4), np.uint8))
            raise ValueError
    assert not (tmp_path / "err.mkv").exists() and (tmp_path / "err.part.mkv").exists()


def test_video_sink_discard_removes_its_temporary_file(tmp_path):
    """Planted: `self._w is None` in discard, `closed = False`, the except OSError not catching."""
    v = VideoSink(tmp_path / "d.mkv", 25, color=False)
    v.discard()                                                    # nothing written: no file, no error
    assert v.closed
    v = VideoSink(tmp_path / "d.mkv", 25, color=False)
    v.write(np.zeros((4, 4), np.uint8))
    v.discard()
    assert v.closed and v._w is None and not list(tmp_path.iterdir())
    assert v.close() is None and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- ImageSequenceSink
def test_image_sequence_keeps_255_above_200_and_numbers_from_start(tmp_path):
    """Planted: threshold 201 / 199, maxval 254 / 256, `binary` default False, start 2 / 0, `n` and
    `frames` counted by 2, a leftover folder not removed (`not self.tmp.exists()`), parents=False."""
    (tmp_path / "out" / "bin.part").mkdir(parents=True)
    (tmp_path / "out" / "bin.part" / "bin000009.png").write_text("a killed run's")
    s = ImageSequenceSink(tmp_path / "out" / "bin")
    m = np.array([[0, 127, 200, 201, 254, 255]], np.uint8)
    s.write(m)
    s.write(m[:, ::-1].copy())
    assert s.frames == 2
    assert s.close() == tmp_path / "out" / "bin"
    assert sorted(p.name for p in (tmp_path / "out" / "bin").iterdir()) == ["bin000001.png", "bin000002.png"]
    got = cv2.imread(str(tmp_path / "out" / "bin" / "bin000001.png"), cv2.IMREAD_UNCHANGED)
    assert got.tolist() == [[0, 0, 0, 255, 255, 255]]
    assert s.close() is None
    s = ImageSequenceSink(tmp_path / "deep" / "er" / "raw", prefix="m", start=7, binary=False)
    s.write(m)
    assert s.close(ok=False) == tmp_path / "deep" / "er" / "raw.part"
    assert [p.name for p in (tmp_path / "deep" / "er" / "raw.part").iterdir()] == ["m000007.png"]
    assert cv2.imread(str(tmp_path / "deep" / "er" / "raw.part" / "m000007.png"),
                      cv2.IMREAD_UNCHANGED).tolist() == m.tolist()


def test_image_sequence_write_failure_and_discard(tmp_path):
    """Planted: `if cv2.imwrite(...)` (not), rmtree's ignore_errors False, `closed = False` in discard."""
    s = ImageSequenceSink(tmp_path / "bin")
    (tmp_path / "bin.part").rmdir()                                # the folder vanished under the run
    with pytest.raises(OutputError) as e:
        s.write(np.zeros((4, 4), np.uint8))
    assert str(e.value) == f"cannot write {tmp_path / 'bin.part' / 'bin000001.png'}"
    s.discard()
    s.discard()
    assert s.closed and s.close() is None and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ TextSink
def test_text_sink_flushes_every_second_on_a_fake_clock(tmp_path, monkeypatch):
    """Planted: FLUSH_SECONDS 2.0 / 0.0, `> FLUSH_SECONDS`, `now + self._flushed`, `flush_lines and`."""
    now = [100.0]
    monkeypatch.setattr(sinks, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    t = TextSink(tmp_path / "stats.csv", "frame")
    part = tmp_path / "stats.part.csv"
    t.line("1")
    assert part.read_text() == ""                                  # in the buffer only
    now[0] = 100.999
    t.line("2")
    assert part.read_text() == ""
    now[0] = 101.0                                                 # one second after the last flush
    t.line("3")
    assert part.read_text() == "frame\n1\n2\n3\n"
    now[0] = 101.5
    t.line("4")
    assert part.read_text() == "frame\n1\n2\n3\n"
    assert t.lines == 4
    assert t.close() == tmp_path / "stats.csv"
    assert (tmp_path / "stats.csv").read_text() == "frame\n1\n2\n3\n4\n"

    e = TextSink(tmp_path / "events.jsonl", flush_lines=True)      # no header, every line at once
    e.line("{}")
    assert (tmp_path / "events.part.jsonl").read_text() == "{}\n"
    e.close(ok=False)
    assert (tmp_path / "events.part.jsonl").read_text() == "{}\n" and not (tmp_path / "events.jsonl").exists()


def test_text_sink_on_a_full_device_is_one_output_error(tmp_path):
    """/dev/full behind the temporary name: every flush fails with ENOSPC.  Planted: the except of
    line() or end() not catching (a raw OSError escapes), `e.strerror and e` (the errno text in
    the message), end() not closing (`not self._f.closed`), discard letting close's error out."""
    os.symlink("/dev/full", tmp_path / "e.part.jsonl")
    t = TextSink(tmp_path / "e.jsonl", flush_lines=True)
    with pytest.raises(OutputError) as err:
        t.line("{}")
    assert str(err.value) == f"{tmp_path / 'e.part.jsonl'}: cannot write: No space left on device"
    t = TextSink(tmp_path / "e.jsonl")
    t.line("{}")                                                   # buffered
    with pytest.raises(OutputError) as err:
        t.end()
    assert str(err.value) == f"{tmp_path / 'e.part.jsonl'}: cannot write: No space left on device"
    assert t._f.closed
    t.end()                                                        # closed already: nothing to do
    (tmp_path / "e.part.jsonl").unlink()
    os.symlink("/dev/full", tmp_path / "e.part.jsonl")
    t = TextSink(tmp_path / "e.jsonl")
    t.line("{}")
    t.discard()                                                    # the lost lines do not matter here
    assert t.closed and not os.path.lexists(tmp_path / "e.part.jsonl")
    t.discard()                                                    # twice: the file is gone already


def test_text_sink_cannot_open_and_end_closes_before_the_rename(tmp_path):
    """Planted: the except of __init__ not catching, `if not header`, `self._f.closed` tested
    without `not` in end (the file left open, its lines not on disk at the rename), parents=False."""
    (tmp_path / "s.part.csv").mkdir()
    with pytest.raises(OutputError) as e:
        TextSink(tmp_path / "s.csv", "h")
    assert str(e.value).startswith(f"cannot write {tmp_path / 's.csv'}: ")
    t = TextSink(tmp_path / "sub" / "dir" / "t.csv", "h")                # folders made on the way
    t.line("1")
    t.end()
    assert t._f.closed and (tmp_path / "sub" / "dir" / "t.part.csv").read_text() == "h\n1\n"
    assert t.commit() == tmp_path / "sub" / "dir" / "t.csv"
    assert (tmp_path / "sub" / "dir" / "t.csv").read_text() == "h\n1\n"
    t = TextSink(tmp_path / "sub" / "u.csv")
    assert t.close() == tmp_path / "sub" / "u.csv" and (tmp_path / "sub" / "u.csv").read_text() == ""
    assert t.close() is None


# ----------------------------------------------------------------------------------------- write_image
def test_write_image_jpeg_quality_90_and_a_failed_write(tmp_path):
    """Planted: quality 91 / 89 by default, `if cv2.imwrite(...)` (not), parents=False."""
    img = RNG.integers(0, 256, (32, 48, 3), np.uint8)
    assert write_image(tmp_path / "a" / "b" / "snap.jpg", img) == tmp_path / "a" / "b" / "snap.jpg"
    want = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    assert (tmp_path / "a" / "b" / "snap.jpg").read_bytes() == want
    write_image(tmp_path / "q.jpg", img, quality=40)
    assert (tmp_path / "q.jpg").read_bytes() == cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 40])[1].tobytes()
    (tmp_path / "b.part.jpg").mkdir()                             # the temporary name cannot be written
    with pytest.raises(OutputError) as e:
        write_image(tmp_path / "b.jpg", img)
    assert str(e.value) == f"cannot write {tmp_path / 'b.jpg'}"
    assert not (tmp_path / "b.jpg").exists()
