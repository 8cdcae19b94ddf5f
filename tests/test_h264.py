"""H.264 output (PyAV/libx264) that a browser plays, and clips cut from a file without re-encoding."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from kl_motion.h264 import H264Sink, codec_of, cut_clip


def numbered(i: int, w: int = 321, h: int = 240) -> np.ndarray:
    f = np.full((h, w, 3), 90, np.uint8)
    cv2.rectangle(f, (5 + i % 200, 20), (45 + i % 200, 60), (40, 200, 250), -1)
    cv2.putText(f, str(i), (60, 150), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return f


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("h264") / "src.mp4"
    s = H264Sink(p, 25)
    for i in range(250):
        s.write(numbered(i))
    assert s.close() == p
    return p


def test_h264_sink(h264_file):
    assert not (h264_file.parent / "src.part.mp4").exists()
    with av.open(str(h264_file)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (320, 240)     # odd width made even
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(v)]
    assert len(frames) == 250
    for i in (0, 100, 249):
        assert cv2.PSNR(frames[i], numbered(i)[:, :320]) > 30


def test_cut_clip_copies_packets(h264_file, tmp_path):
    dst = tmp_path / "clip.mp4"
    assert cut_clip(h264_file, dst, 4.5, 6.0) == "h264"
    assert codec_of(dst) == "h264"
    with av.open(str(h264_file)) as c:
        v = c.streams.video[0]
        tb = float(v.time_base)
        src = [(bytes(p), p.pts * tb) for p in c.demux(v) if p.size]
    with av.open(str(dst)) as c:
        clip = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    # the clip is a run of the source's packets, byte for byte (no re-encoding) ...
    k = [b for b, _ in src].index(clip[0])
    assert [b for b, _ in src[k:k + len(clip)]] == clip
    # ... from a key frame at or before 4.5 s to at least 6.0 s
    times = sorted(t for _, t in src[k:k + len(clip)])
    assert times[0] <= 4.5 and times[-1] >= 6.0 - 0.04
    assert len(clip) < 200
    cap = cv2.VideoCapture(str(dst))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(clip)


def test_cut_clip_keeps_mpeg4_and_refuses_mjpeg(tmp_path):
    for fourcc, ext, want in (("mp4v", ".mp4", "mpeg4"), ("MJPG", ".avi", None)):
        src = tmp_path / f"src{ext}"
        vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*fourcc), 25, (160, 120))
        for i in range(100):
            vw.write(numbered(i, 160, 120))
        vw.release()
        dst = tmp_path / f"clip-{fourcc}.mp4"
        assert cut_clip(src, dst, 1.0, 2.0) == want
        assert dst.exists() == (want is not None)
        assert not list(tmp_path.glob("*.part.*"))
        if want:
            assert codec_of(dst) == want


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def plays_in_chromium(video: Path) -> str:
    page = video.with_suffix(".html")
    page.write_text(f"""<!DOCTYPE html><html><head><title>pending</title></head><body>
<video id=v muted src="{video.name}"></video><script>
const v = document.getElementById('v');
v.addEventListener('loadeddata', () => {{ document.title = 'OK ' + v.videoWidth + 'x' + v.videoHeight; }});
v.addEventListener('error', () => {{ document.title = 'ERR ' + (v.error && v.error.code); }});
</script></body></html>""")
    r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--no-first-run", "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"<title>(.*?)</title>", r.stdout)
    return m.group(1) if m else r.stderr[-500:]


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
def test_browser_plays_h264_and_not_mpeg4(h264_file, tmp_path):
    assert plays_in_chromium(h264_file) == "OK 320x240"
    old = tmp_path / "mp4v.mp4"           # what overlay.mp4 and clips used to be
    vw = cv2.VideoWriter(str(old), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for i in range(50):
        vw.write(numbered(i, 320, 240))
    vw.release()
    assert plays_in_chromium(old).startswith("ERR")
