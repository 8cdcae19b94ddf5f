"""Browser-playable video: H.264 in MP4 through PyAV (its wheels carry FFmpeg with libx264,
so nothing is downloaded at run time), and clips cut from a file without re-encoding.

- ``H264Sink``: the same interface as ``sinks.VideoSink`` (write BGR/grey frames, ``close(ok)``
  renames ``name.part.mp4`` to ``name.mp4``); yuv420p, ``+faststart`` so a browser starts
  playing before the whole file is loaded; x264's ``ultrafast`` preset, one thread (640x480 on the
  test machine, CPU time per frame: 2.1 ms, 5.8 kB; ``veryfast`` 5.0 ms, 2.0 kB; OpenCV's mp4v
  1.7 ms, 8.6 kB), so it costs the writer thread about what MPEG-4 did.
- ``cut_clip(src, dst, t0, t1)``: copies the packets of ``[t0, t1]`` of a video file into
  ``dst`` (same codec, no re-encoding), starting at the key frame at or before ``t0``;
  returns None where the codec cannot go into an MP4 (the caller encodes the frames instead).
- ``codec_of(path)``: the codec name of a file's first video stream.
"""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import OutputError
from .sinks import _finish, check_space, part_name

log = logging.getLogger("kl_motion")

# codecs an MP4 holds and browsers or common players read
MP4_COPY_CODECS = {"h264", "hevc", "av1", "mpeg4", "vp9"}


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        raise OutputError("H.264 output needs PyAV: pip install av") from None
    return av


class H264Sink:
    """An H.264 .mp4 opened on the first frame (its size, made even, fixes the video's size)."""

    def __init__(self, path: str | Path, fps: float, color: bool = True, crf: int = 23, preset: str = "ultrafast",
                 threads: int = 1, gop_seconds: float = 2.0):
        self.path = Path(path)
        self.tmp = part_name(self.path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.color = color
        self.crf, self.preset, self.threads = crf, preset, threads
        self.gop = max(1, int(round(gop_seconds * self.fps)))     # a key frame every 2 s: quick seeks
        self._c = self._s = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.closed = False
        self._failed: str | None = None     # why a write failed (the file is then incomplete)

    def _open(self, w: int, h: int) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w2, h2 = max(2, w - w % 2), max(2, h - h % 2)         # yuv420p needs even sizes
        try:
            c = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
            rate = Fraction(self.fps).limit_denominator(1001)
            s = c.add_stream("libx264", rate=rate)
            s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
            s.options = {"crf": str(self.crf), "preset": self.preset}
            s.codec_context.thread_count = self.threads
            s.codec_context.gop_size = self.gop
        except Exception as e:
            raise OutputError(f"{self.path}: cannot open an H.264 writer: {e}") from None
        self._c, self._s, self.size = c, s, (w2, h2)

    def write(self, img: np.ndarray) -> None:
        import cv2
        h, w = img.shape[:2]
        if self._c is None:
            self._open(w, h)
        W, H = self.size
        if (w, h) != (W, H):
            img = img[:H, :W] if (w - W) in (0, 1) and (h - H) in (0, 1) else cv2.resize(img, (W, H))
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        av = _av()
        fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        fr.pts = self.frames
        self.frames += 1
        if self._failed:
            return                      # the file is incomplete already; end() says so
        check_space(self.tmp)
        try:
            for pkt in self._s.encode(fr):
                self._c.mux(pkt)
        except (OSError, av.error.FFmpegError) as e:     # a full disk, a file-size limit
            self._failed = str(e)

    def end(self, verify: bool = True) -> None:
        """Flush and close the file without renaming it; with ``verify``, OutputError when a write
        failed (the file keeps its temporary name, readable as far as it got)."""
        if self._c is None:
            return
        c, self._c = self._c, None
        try:
            if not self._failed:
                for pkt in self._s.encode(None):
                    c.mux(pkt)
        except Exception as e:
            self._failed = self._failed or str(e)
        finally:
            try:
                c.close()
            except Exception as e:
                self._failed = self._failed or str(e)
        if verify and self._failed:
            raise OutputError(f"{self.tmp}: incomplete: {self._failed}; kept under its temporary name")

    def commit(self) -> Path | None:
        """Rename the closed video to its final name (None when nothing was written)."""
        return _finish(self.tmp, self.path, True) if self.frames else None

    def close(self, ok: bool = True) -> Path | None:
        if self.closed:
            return None
        self.closed = True
        if self._c is None:
            return None
        self.end(verify=ok)
        return self.commit() if ok else self.tmp

    def discard(self) -> None:
        """Remove the temporary file (of a run that failed before writing anything)."""
        if self._c is not None:
            try:
                self._c.close()
            except Exception:
                pass
            self._c = None
        self.closed = True
        try:
            self.tmp.unlink()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.close(ok=et is None or issubclass(et, KeyboardInterrupt))


def codec_of(path: str | Path) -> str | None:
    av = _av()
    try:
        with av.open(str(path)) as c:
            return c.streams.video[0].codec_context.name if c.streams.video else None
    except Exception:
        return None


def cut_clip(src: str | Path, dst: str | Path, t0: float, t1: float) -> str | None:
    """Copy the video packets from the key frame at or before ``t0`` s to ``t1`` s of ``src`` into
    ``dst`` (an .mp4, written as ``.part`` and renamed).  Returns the codec name, or None when the
    source's codec cannot be copied into an MP4 (nothing is written then)."""
    av = _av()
    dst = Path(dst)
    try:
        inp = av.open(str(src))
    except Exception as e:
        raise OutputError(f"cannot read {src} to cut a clip: {e}") from None
    try:
        if not inp.streams.video:
            return None
        vin = inp.streams.video[0]
        name = vin.codec_context.name
        if name not in MP4_COPY_CODECS:
            return None
        tb = vin.time_base
        start_pts = vin.start_time or 0
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = part_name(dst)
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        ok = False
        try:
            vout = out.add_stream_from_template(vin)
            target = start_pts + int(max(0.0, t0) / tb)
            inp.seek(target, stream=vin, backward=True, any_frame=False)
            end = start_pts + int(t1 / tb)
            first = None
            n = 0
            for pkt in inp.demux(vin):
                if pkt.dts is None and pkt.pts is None:
                    continue           # the demuxer's flush packet
                if first is None:
                    if not pkt.is_keyframe:
                        continue
                    first = pkt.dts if pkt.dts is not None else pkt.pts
                if (pkt.dts if pkt.dts is not None else pkt.pts) > end:
                    break
                if pkt.pts is not None:
                    pkt.pts -= first
                if pkt.dts is not None:
                    pkt.dts -= first
                pkt.stream = vout
                out.mux(pkt)
                n += 1
            ok = n > 0
        finally:
            out.close()
        if not ok:
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, dst)
        return name
    except OutputError:
        raise
    except Exception as e:
        log.debug("clip copy from %s failed: %s", src, e)
        part_name(dst).unlink(missing_ok=True)
        return None
    finally:
        inp.close()
