"""`kl-motion process` on a live MJPEG-over-HTTP stream served here on 127.0.0.1."""
from __future__ import annotations

import pytest

from conftest_process import count_frames, no_traceback, part_files, read_events, read_stats, run_process
from mjpeg_server import MJPEGServer

pytestmark = pytest.mark.timeout(120)


def _dir(out):
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def test_stream_that_drops_ends_cleanly(tmp_path):
    with MJPEGServer(frames_per_connection=40, connections=1) as s:
        r = run_process(s.url, "--out", tmp_path, "--stream-timeout", "5", timeout=60)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert "stream ended after" in r.stderr
    d = _dir(tmp_path)
    assert d.name.startswith("127.0.0.1_")
    n = len(read_stats(d / "stats.csv"))
    assert 35 <= n <= 40
    assert count_frames(d / "mask.mkv") == n
    assert len(read_events(d / "events.jsonl")) >= 1         # the square moves during frames 10..29
    assert not part_files(d)


def test_stream_reconnects_with_backoff_then_gives_up(tmp_path):
    with MJPEGServer(frames_per_connection=30, connections=2) as s:
        r = run_process(s.url, "--out", tmp_path, "--reconnect", "--reconnect-attempts", "2",
                        "--reconnect-delay", "0.2", "--stream-timeout", "3", timeout=90)
        conns = s.connections
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert "reconnected" in r.stderr and "giving up after 2" in r.stderr
    assert conns == 4                       # first, one successful reconnect, two refused
    d = _dir(tmp_path)
    n = len(read_stats(d / "stats.csv"))
    assert 50 <= n <= 60
    times = [float(r["time"]) for r in read_stats(d / "stats.csv")]
    assert times == sorted(times)


def test_stream_max_frames(tmp_path):
    with MJPEGServer(frames_per_connection=200, connections=1) as s:
        r = run_process(s.url, "--out", tmp_path, "--max-frames", "25", timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(read_stats(_dir(tmp_path) / "stats.csv")) == 25


def test_unreachable_stream(tmp_path):
    with MJPEGServer(frames_per_connection=1, connections=0) as s:
        r = run_process(s.url, "--out", tmp_path, "--stream-timeout", "3", timeout=60)
    no_traceback(r)
    assert r.returncode == 2
    assert "cannot open stream" in r.stderr and len(r.stderr.strip().splitlines()) == 1
