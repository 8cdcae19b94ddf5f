"""How many threads the detector uses (``--threads``, ``--jobs``).  No Qt.

``plan(jobs, threads, n_inputs)`` decides the worker processes and the threads per process so
that ``--jobs N`` does not oversubscribe the machine: without ``--threads`` each of the N
processes gets ``cores // N`` threads (at least one), so jobs x threads <= cores whenever
jobs <= cores; with ``--threads`` the user's number is used as asked, with a warning when
jobs x threads exceeds the cores.  ``use_threads(n)`` sets numba's thread count (for the
calling thread: numba's count is per thread) and OpenCV's.
"""
from __future__ import annotations

import os

from .errors import KLMotionError


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
    return numba.get_num_threads()


def add_argument(parser) -> None:
    """The --threads option of process, eval and view."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for the detector (numba and OpenCV; default: every core, "
                             "or cores / jobs with --jobs)")
