"""Pipeline pieces in-process: the threaded frame generator, the writer thread, sinks."""
from __future__ import annotations

import numpy as np
import pytest

from kl_motion.errors import OutputError, SourceError
from kl_motion.pipeline import ReaderThread, WriterThread, frames, input_name, redact
from kl_motion.sinks import ImageSequenceSink, TextSink, VideoSink, check_new, part_name
from kl_motion.sources import Source, VideoInfo


class ListSource(Source):
    def __init__(self, n, fail_at=None):
        self.n, self.fail_at, self.i = n, fail_at, 0
        self.info = VideoInfo(8, 6, 25.0, n, "file", "list")

    def read(self):
        if self.fail_at is not None and self.i == self.fail_at:
            raise SourceError("list: broken")
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((6, 8, 3), self.i, np.uint8)


def test_frames_generator_keeps_order_and_raises_source_errors():
    got = [int(f[0, 0, 0]) for f in frames(ListSource(50), maxsize=2)]
    assert got == list(range(1, 51))
    with pytest.raises(SourceError):
        for _ in frames(ListSource(50, fail_at=20), maxsize=2):
            pass


def test_reader_close_stops_early():
    r = ReaderThread(ListSource(10 ** 6), maxsize=2)
    it = iter(r)
    assert next(it) is not None
    assert r.close(2.0) is False and r.error is None


def test_writer_thread_reraises_handler_errors():
    seen = []

    def handler(x):
        if x == 3:
            raise OutputError("disk full")
        seen.append(x)

    w = WriterThread(handler, maxsize=1)
    with pytest.raises(OutputError):
        for i in range(100):
            w.put(i)
        w.close()
    assert seen == [0, 1, 2]


def test_sinks_write_under_part_names_and_rename(tmp_path):
    assert part_name(tmp_path / "mask.mkv").name == "mask.part.mkv"
    v = VideoSink(tmp_path / "mask.mkv", 25, color=False)
    v.write(np.zeros((6, 8), np.uint8))
    assert (tmp_path / "mask.part.mkv").exists() and not (tmp_path / "mask.mkv").exists()
    v.close()
    assert (tmp_path / "mask.mkv").exists() and not (tmp_path / "mask.part.mkv").exists()
    s = ImageSequenceSink(tmp_path / "bin")
    s.write(np.array([[0, 127, 255]], np.uint8))
    s.close()
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["bin000001.png"]
    t = TextSink(tmp_path / "a.csv", "h")
    t.line("1")
    t.close(ok=False)              # not complete: stays under its temporary name
    assert (tmp_path / "a.part.csv").read_text() == "h\n1\n" and not (tmp_path / "a.csv").exists()
    with pytest.raises(OutputError, match="exists"):
        check_new([tmp_path / "mask.mkv"], force=False)
    check_new([tmp_path / "mask.mkv"], force=True)
    check_new([tmp_path / "nothing.csv", tmp_path / "emptydir"], force=False)


def test_input_names(tmp_path):
    (tmp_path / "highway" / "input").mkdir(parents=True)
    assert input_name(str(tmp_path / "highway" / "input")) == "highway"
    assert input_name("clips/cam1.mp4") == "cam1"
    assert input_name("0") == "camera0"
    assert input_name("rtsp://user:secret@10.0.0.5:554/stream1") == "10.0.0.5_554_stream1"
    assert redact("rtsp://user:secret@10.0.0.5/s") == "rtsp://user:***@10.0.0.5/s"
    assert redact("http://10.0.0.5/a:b@c") == "http://10.0.0.5/a:b@c"
