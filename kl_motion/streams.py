"""Live sources (cameras, stream URLs) that reconnect with backoff when they drop."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from .errors import SourceError
from .sources import CaptureSource, Source, classify, redact

log = logging.getLogger("kl_motion")


def open_live(spec: str, timeout: float = 10.0) -> CaptureSource:
    kind = classify(spec)
    if kind == "camera":
        return CaptureSource(int(spec), "camera", open_timeout=timeout)
    return CaptureSource(str(spec), "stream", open_timeout=timeout)


class ReconnectingSource(Source):
    """Wraps a camera or stream: when a read fails, reopen it after a delay that
    doubles from ``delay`` up to ``max_delay``.  Gives up after ``attempts``
    consecutive failed reopenings (0 = never) and then ends like a finished video.
    ``stop`` (a threading.Event-like object) interrupts the waiting.  ``on_status(state, attempt)``
    (called from the reading thread) hears "dropped", "retrying" (attempt n failed), "reconnected"
    and "gave_up"."""

    def __init__(self, spec: str, attempts: int = 0, delay: float = 0.5, max_delay: float = 30.0,
                 timeout: float = 10.0, stop: threading.Event | None = None, first: CaptureSource | None = None,
                 on_status: Callable[[str, int], None] | None = None):
        self.on_status = on_status
        self.spec = str(spec)
        self.shown = redact(self.spec)
        self.attempts = attempts
        self.delay, self.max_delay, self.timeout = delay, max_delay, timeout
        self.stop = stop or threading.Event()
        self.src = first or open_live(self.spec, timeout)
        self.info = self.src.info
        self.frames_read = 0
        self.reconnects = 0
        self.gave_up = False

    def read(self):
        while True:
            f = self.src.read() if self.src is not None else None
            if f is not None:
                self.frames_read += 1
                return f
            if self.src is not None:
                self.src.close()
                self.src = None
                log.warning("%s: stream dropped after %d frames; reconnecting", self.shown, self.frames_read)
                self._say("dropped", 0)
            if not self._reconnect():
                return None

    def _reconnect(self) -> bool:
        delay, tries = self.delay, 0
        while not self.stop.is_set():
            if self.attempts and tries >= self.attempts:
                log.warning("%s: giving up after %d reconnect attempts", self.shown, tries)
                self.gave_up = True
                self._say("gave_up", tries)
                return False
            if self.stop.wait(delay):
                return False
            tries += 1
            try:
                self.src = open_live(self.spec, self.timeout)
            except SourceError:
                log.info("%s: reconnect attempt %d failed", self.shown, tries)
                self._say("retrying", tries)
                delay = min(self.max_delay, delay * 2)
                continue
            self.reconnects += 1
            log.warning("%s: reconnected (attempt %d)", self.shown, tries)
            self._say("reconnected", tries)
            return True
        return False

    def _say(self, state: str, attempt: int) -> None:
        if self.on_status is not None:
            self.on_status(state, attempt)

    def close(self):
        if self.src is not None:
            self.src.close()
            self.src = None

