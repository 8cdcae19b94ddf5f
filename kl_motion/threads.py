"""How many threads the detector uses (``--threads``, ``--jobs``).  No Qt.

``plan(jobs, threads, n_inputs)`` decides the worker processes and the threads per process so
that ``--jobs N`` does not oversubscribe the machine: without ``--threads`` each of the N
processes gets ``cores // N`` threads (at least one), so jobs x threads <= cores whenever
jobs <= cores; with ``--threads`` the user's number is used as asked, with a warning when
jobs x threads exceeds the cores.  ``use_threads(n)`` sets numba's thread count (for the
calling thread: numba's count is per thread) and OpenCV's, and pins it: ``ThreadTuner`` (used by
the model for every frame) then leaves it alone.  Without a pinned count the tuner adapts it.
"""
from __future__ import annotations

import os
import statistics
import threading

from .errors import KLMotionError

_pinned = threading.local()       # use_threads(n) in this thread: the tuner keeps n


def cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):      # not Linux
        return max(1, os.cpu_count() or 1)


def check(threads: int | None, jobs: int = 1) -> None:
    """A bad --threads / --jobs is a one-line error."""
    if threads is not None and threads < 1:
        raise KLMotionError("--threads must be at least 1")
    if jobs < 1:
        raise KLMotionError("--jobs must be at least 1")


def plan(jobs: int, threads: int | None, n_inputs: int = 1, ncores: int | None = None) -> tuple[int, int, str]:
    """(worker processes, threads per process, warning or "").

    ``jobs`` is --jobs, capped at the number of inputs; ``threads`` is --threads or None.
    """
    check(threads, jobs)
    n = ncores or cores()
    jobs = max(1, min(jobs, n_inputs))
    if threads is not None:
        warn = ""
        if jobs * threads > n:
            warn = (f"{jobs} job(s) x {threads} thread(s) = {jobs * threads} threads on {n} cores: "
                    f"oversubscribed as asked (without --threads each job gets {max(1, n // jobs)})")
        return jobs, threads, warn
    warn = ""
    if jobs > n:
        warn = f"--jobs {jobs} on {n} cores: oversubscribed as asked (one thread per job)"
    return jobs, max(1, n // jobs), warn


def use_threads(n: int | None) -> int:
    """Use ``n`` threads (None: leave numba's and OpenCV's defaults) for the detector in the calling
    thread; returns numba's thread count now in force.  numba cannot go above its pool's size
    (NUMBA_NUM_THREADS, every core by default): a larger ``n`` is capped there."""
    import cv2
    import numba
    if n is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        cv2.setNumThreads(max(1, n))
        _pinned.n = numba.get_num_threads()
    return numba.get_num_threads()


def pinned() -> int | None:
    """The count use_threads(n) set in the calling thread, or None (the tuner may adapt it)."""
    return getattr(_pinned, "n", None)


class ThreadTuner:
    """Chooses the kernel's thread count from its measured frame times (no Qt, no I/O).

    With every core free, more threads are faster; with a core busy (another program, another
    job), the kernel's threads wait for the busy core at every barrier and all threads can be
    slower than one (docs/speed.md, "Busy cores").  The tuner runs ``block`` frames at the current
    count, then ``block`` at the other candidate (one fewer, or back to the most), and keeps the
    faster by the medians of the two blocks (a candidate must win by ``margin``).  While the same
    count keeps winning, the next trial comes later (``period`` frames, doubling up to
    ``max_period``), so a settled choice costs about one block in ``max_period`` frames; a
    frame time that moves away from the settled one by ``drift`` starts trials again at once.

    ``count(n_max)`` is asked before each frame (n_max: the most threads allowed, numba's count
    in the calling thread), ``record(seconds)`` after it.
    """

    def __init__(self, block: int = 8, period: int = 64, max_period: int = 1024, margin: float = 0.03,
                 drift: float = 0.25, warmup: int = 4):
        self.block, self.period0, self.max_period = block, period, max_period
        self.margin, self.drift, self.warmup = margin, drift, warmup
        self.n_max = 0
        self.reset(0)

    def reset(self, n_max: int) -> None:
        self.n_max = n_max
        self.current = n_max            # the chosen count
        self.period = self.period0
        self._seen = 0                  # frames recorded since the reset
        self._since = 0                 # frames at the chosen count since the last trial
        self._trial: int | None = None  # the count under trial, or None
        self._cur_times: list[float] = []
        self._trial_times: list[float] = []
        self._settled: float | None = None   # median frame time of the chosen count at the last decision

    def _candidate(self) -> int:
        return self.current - 1 if self.current > 1 else self.n_max

    def count(self, n_max: int) -> int:
        """Threads for the next frame."""
        if n_max != self.n_max:
            self.reset(n_max)
        if n_max <= 1:
            return max(1, n_max)
        if self._trial is None and self._seen >= self.warmup and self._since >= self.period \
                and len(self._cur_times) >= self.block and self._candidate() != self.current:
            self._trial = self._candidate()
            self._trial_times = []
        return self._trial if self._trial is not None else self.current

    def record(self, seconds: float) -> None:
        """The time of the frame just done (with the count ``count`` gave)."""
        self._seen += 1
        if self._seen <= self.warmup or self.n_max <= 1:
            return
        if self._trial is None:
            self._since += 1
            self._cur_times = (self._cur_times + [seconds])[-self.block:]
            if self._settled is not None and len(self._cur_times) == self.block:
                med = statistics.median(self._cur_times)
                if abs(med - self._settled) > self.drift * self._settled:
                    self.period = self.period0          # the machine changed: look again soon
                    self._since = max(self._since, self.period)
            return
        self._trial_times.append(seconds)
        if len(self._trial_times) < self.block:
            return
        cur = statistics.median(self._cur_times)
        new = statistics.median(self._trial_times)
        if new < cur * (1.0 - self.margin):
            self.current = self._trial
            self._cur_times = list(self._trial_times)
            self._settled = new
            self.period = self.period0
        else:
            self._settled = cur
            self.period = min(self.max_period, self.period * 2)
        self._trial = None
        self._since = 0


def add_argument(parser) -> None:
    """The --threads option of process, eval and view."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for the detector (numba and OpenCV; default: every core, "
                             "or cores / jobs with --jobs)")
