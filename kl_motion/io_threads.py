"""The pipeline's threads: a reader that decodes a Source into a bounded queue, and a writer that
runs a handler on each item in order.  So decoding, the detector and encoding overlap, and memory
stays bounded.  No Qt, no detector here.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

import numpy as np

from .sources import Source

_END = object()


class ReaderThread:
    """Reads a Source in a thread into a bounded queue.  Iterate for frames; when it
    ends, ``error`` holds the SourceError that stopped it (None at a clean end)."""

    def __init__(self, source: Source, maxsize: int = 8, stop: threading.Event | None = None):
        self.source = source
        self.q: queue.Queue = queue.Queue(maxsize)
        self._ext_stop = stop
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="kl-reader", daemon=True)
        self._t.start()

    def stopped(self) -> bool:
        return self._halt.is_set() or (self._ext_stop is not None and self._ext_stop.is_set())

    def _run(self) -> None:
        try:
            while not self.stopped():
                f = self.source.read()
                if f is None:
                    break
                while not self.stopped():
                    try:
                        self.q.put(f, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the consumer
            self.error = e
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self.q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.stopped():
                    try:
                        self.q.get_nowait()
                    except queue.Empty:
                        pass

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            try:
                f = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stopped():
                    return
                continue
            if f is _END:
                return
            yield f

    def close(self, timeout: float = 5.0) -> bool:
        """Stop reading; True if the reader thread is still stuck in a read after ``timeout``."""
        self._halt.set()
        end = time.monotonic() + timeout
        while self._t.is_alive() and time.monotonic() < end:
            try:
                while True:
                    self.q.get_nowait()
            except queue.Empty:
                pass
            self._t.join(0.05)
        return self._t.is_alive()


def frames(source: Source, maxsize: int = 8) -> Iterator[np.ndarray]:
    """A generator of the source's frames, decoded in a background thread."""
    r = ReaderThread(source, maxsize)
    try:
        yield from r
        if r.error is not None:
            raise r.error
    finally:
        r.close()


class WriterThread:
    """Calls ``handler(item)`` for each put item, in order, in a thread.  An exception in
    the handler is re-raised by the next put() or by close()."""

    def __init__(self, handler: Callable, maxsize: int = 8):
        self.handler = handler
        self.q: queue.Queue = queue.Queue(maxsize)
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="kl-writer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.handler(item)
                except BaseException as e:
                    self.error = e

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def close(self) -> None:
        self.q.put(_END)
        self._t.join()
        if self.error is not None:
            raise self.error
