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


def test_a_slow_first_frame_says_once_that_numba_is_compiling(tmp_path, monkeypatch, caplog):
    import logging
    import threading
    import time

    from kl_motion import pipeline
    from kl_motion.params import Params
    from kl_motion.sources import demo_path

    demo = demo_path() / "input"

    class Slow:
        """The real detector, with a first frame as slow as a numba compile (first=True), or
        a quick first frame and slow later ones (first=False: the run is slow, not the start)."""
        def __init__(self, inner, first):
            self.inner, self.first, self.calls = inner, first, 0

        def apply(self, frame):
            self.calls += 1
            if (self.calls == 1) == self.first:
                time.sleep(1.0 if self.first else 0.2)
            return self.inner.apply(frame)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    from kl_motion.analyzer import make_detector
    from kl_motion import analyzer
    monkeypatch.setattr(analyzer, "COMPILE_NOTICE_SECONDS", 0.3)
    monkeypatch.setattr(pipeline, "_compile_notice", threading.Lock())
    opt = pipeline.Options(max_frames=5)

    def said(out, slow, first=True):
        det = make_detector("mog2", Params())     # OpenCV's: no compile of its own
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kl_motion"):
            rep = pipeline.process_input(str(demo), tmp_path / out, Params(), opt,
                                         detector=Slow(det, first) if slow else det)
        assert rep.status in ("ok", "truncated"), rep.message
        return sum("compiling" in r.getMessage() for r in caplog.records)

    said("warm", slow=False)                      # loads the cleanup's numba functions
    monkeypatch.setattr(pipeline, "_compile_notice", threading.Lock())
    assert said("fast", slow=False) == 0          # a quick first frame: nothing said
    assert said("later", slow=True, first=False) == 0   # nor when only later frames are slow
    assert said("slow", slow=True) == 1           # a slow one: one line
    assert said("again", slow=True) == 0          # once per process
