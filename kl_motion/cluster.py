"""`kl-motion process --cluster`: inputs (and chunks of long recordings) as tasks on a Dask cluster.

``--cluster tcp://scheduler:8786`` uses a running cluster (``dask scheduler`` + ``dask worker``
on each machine, kl_motion installed on every worker, the inputs and ``--out`` at the same paths
on every machine); ``--cluster local[:N]`` starts a ``distributed.LocalCluster`` of N worker
processes (one task each) here.  dask and distributed are the optional extra
``kl-motion[cluster]``; nothing else imports this module.

- Each input is a task running ``pipeline.process_input`` on a worker, writing its outputs there
  (atomically, as always).  With ``--chunk M`` a seekable input longer than M minutes is probed on
  a worker, cut into chunks (``kl_motion.chunks``), each chunk a task (``--chunk-warmup`` seconds
  of lead-in), then one join task writes the input's outputs.
- A task that raises or whose worker dies (KilledWorker), and a report with an internal error,
  is submitted again up to ``--retries`` times, then reported as failed; the other inputs go on.
- Workers send their frame counts to the client (``Worker.log_event``): one progress bar over
  all frames of the run, and the usual summary table at the end.
- Ctrl-C sets a ``distributed.Event``: running tasks stop at the next frame and close their
  outputs (as a local Ctrl-C does), tasks not started return at once; futures still pending after
  a grace period are cancelled.  A chunked input interrupted before its join leaves only
  ``NAME/chunks.part/``, nothing under a final name.
- Each task sets numba's (and OpenCV's) threads to its share of its machine's cores: the cores
  divided by the task slots of the workers on that machine (``--threads`` overrides).
"""
from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

from .errors import KLMotionError, ParameterError

log = logging.getLogger("kl_motion")

STOP_GRACE_SECONDS = 30.0      # after Ctrl-C: running tasks close their outputs within this, then are cancelled
PROGRESS_SECONDS = 0.5         # a worker sends its frame count at most this often


def parse_cluster(spec: str) -> tuple[str, object]:
    """``local`` / ``local:N`` -> ("local", N or None); an address -> ("address", "tcp://host:port")."""
    s = str(spec).strip()
    m = re.fullmatch(r"local(?::(\d+))?", s, flags=re.I)
    if m:
        n = int(m.group(1)) if m.group(1) else None
        if n is not None and n < 1:
            raise ParameterError("--cluster local:N needs N >= 1")
        return "local", n
    if not s:
        raise ParameterError("--cluster needs an address (tcp://host:8786) or local[:N]")
    if "://" not in s:
        s = "tcp://" + s
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^\s/]+", s, flags=re.I):
        raise ParameterError(f"--cluster {spec!r} is not a scheduler address (tcp://host:8786) or local[:N]")
    return "address", s


def require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise KLMotionError("--cluster needs dask and distributed: pip install 'kl-motion[cluster]'") from None


class UI(NamedTuple):
    """What the command line lends this module (kl_motion.process_cmd; no import back to it):
    its logging set-up (also run on the workers), its one-line report per input, its progress bar
    and the signals it handles."""
    setup_logging: Callable
    report_one: Callable
    bar: Callable
    stop_signals: tuple


# ============================================================================ worker side
_worker_setup = threading.Lock()
_worker_ready = False
_preloaded = threading.Event()      # set when dask_setup's warm-up is over (or at once without it)
_preloaded.set()


def _warm_up() -> None:
    """Import the pipeline and load the detector's numba kernels from numba's cache (compile them if
    they are not there), on one thread, so that the first task does not wait for them."""
    try:
        import numpy as np

        from .pipeline import process_input  # noqa: F401
        from .model import MotionModel
        from .threads import use_threads
        use_threads(1)
        m = MotionModel()
        f = np.full((24, 32, 3), 90, np.uint8)
        m.apply(f)
        m.apply(f)
    except Exception as e:     # the first task will meet the same problem and report it
        log.debug("worker warm-up failed: %s", e)
    finally:
        _preloaded.set()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
FRAME_HEAP_BYTES = 32 * 1024 * 1024    # blocks below this come from the heap (glibc's largest mmap threshold)


def heap_for_frames() -> bool:
    """Undo, in this worker process, what dask's nanny does to malloc: it starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``), and with that variable
    set glibc stops raising its mmap threshold, so every block of 128 KiB or more (each decoded frame,
    each mask, each resized copy) is a fresh mmap, page-faulted in and zeroed, and unmapped when freed:
    about 60 page faults and 0.3 ms of system time per 320x240 frame.  Here such blocks come from the
    heap again, kept for reuse.  Returns whether it changed anything (Linux glibc, variable set)."""
    import os
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, FRAME_HEAP_BYTES)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * FRAME_HEAP_BYTES))
    except (OSError, AttributeError):       # not glibc
        return False


def dask_setup(worker) -> None:
    """Dask's preload hook (``dask worker --preload kl_motion.cluster``; ``--cluster local`` passes it):
    malloc set for frame-sized blocks (heap_for_frames); the warm-up runs in the background while the
    worker registers with the scheduler; the first task waits for its end (two threads must not run
    numba's parallel kernels at once)."""
    heap_for_frames()
    _preloaded.clear()
    threading.Thread(target=_warm_up, name="kl-motion-warm-up", daemon=True).start()


def _host(address: str) -> str:
    s = address.split("://", 1)[-1]
    return s.rsplit(":", 1)[0]


class _Task:
    """A task's surroundings on the worker: threads, logging, the run's stop event and progress."""

    def __init__(self, ctx: dict, key: str):
        global _worker_ready
        from distributed import get_worker
        from .threads import cores, use_threads
        self.ctx, self.key = ctx, key
        self.worker = get_worker()
        _preloaded.wait()
        with _worker_setup:
            if not _worker_ready:
                ctx["setup_logging"](ctx["quiet"], ctx["verbose"])
                _worker_ready = True
        n = ctx["threads"]
        if n is None:
            n = ctx["threads_by_host"].get(_host(self.worker.address))
        if n is None:   # a worker that joined after the run started: its own cores over its task slots
            n = max(1, cores() // max(1, self.worker.state.nthreads))
        self.threads = use_threads(n)
        self.stop = threading.Event()
        self.attempt = uuid.uuid4().hex[:8]
        self._done = threading.Event()
        self._n, self._total, self._sent = 0, None, 0.0
        from distributed import Event
        self._ev = Event(ctx["stop_name"])
        if self._ev.is_set():
            self.stop.set()
        self._watch = threading.Thread(target=self._watch_stop, name="kl-stop-watch", daemon=True)
        self._watch.start()

    def _watch_stop(self) -> None:
        while not self._done.is_set():
            try:
                if self._ev.wait(timeout=0.5):
                    self.stop.set()
                    return
            except Exception:      # the client went away: stop
                if not self._done.is_set():
                    self.stop.set()
                return

    def progress(self, k: int, total) -> None:
        if total is not None:
            self._total = total
        self._n += k
        now = time.monotonic()
        if total is not None or now - self._sent >= PROGRESS_SECONDS:
            self._send(now)

    def _send(self, now: float | None = None) -> None:
        self._sent = now or time.monotonic()
        try:
            self.worker.log_event(self.ctx["progress_topic"], dict(key=self.key, attempt=self.attempt, n=self._n,
                                                                   total=self._total))
        except Exception:   # progress is a nicety
            pass

    def close(self) -> None:
        self._done.set()
        self._send()

    def __enter__(self) -> "_Task":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def input_task(spec: str, out_dir: str, params, opt, ctx: dict, key: str):
    """One whole input on a worker -> InputReport."""
    from .pipeline import finished_report, process_input
    with _Task(ctx, key) as t:
        done = finished_report(out_dir, ctx["since"])   # a retry after the result (not the work) was lost
        if done is not None:
            return done
        log.debug("%s: %d numba thread(s) on %s", out_dir, t.threads, t.worker.address)
        return process_input(spec, out_dir, params, opt, stop=t.stop, progress=t.progress)


def chunk_task(spec: str, out_dir: str, params, opt, ctx: dict, key: str):
    """One chunk on a worker -> (InputReport, ChunkInfo)."""
    from .pipeline import ChunkInfo, process_input
    info = ChunkInfo()
    with _Task(ctx, key) as t:
        rep = process_input(spec, out_dir, params, opt, stop=t.stop, progress=t.progress, chunk=info)
    return rep, info


def probe_task(spec: str, out_dir: str, opt) -> dict:
    """What the chunk plan needs of an input, read on a worker (which sees the files): frames, fps,
    the written range; ``error`` (one line) instead when it cannot be processed."""
    from . import fsnames
    from .outputs import output_paths
    from .pipeline import _range, open_input
    from .sinks import check_new
    from .sources import redact
    try:
        check_new(output_paths(Path(out_dir), opt).values(), opt.force)
        src = open_input(spec, opt, threading.Event())
        try:
            info = src.info
            if opt.fps and info.kind == "folder":
                info.fps = float(opt.fps)
            if info.live or not info.seekable or not info.total_frames:
                return dict(chunkable=False)
            step = max(0, opt.frame_skip) + 1
            first, end, _ = _range(replace(opt, lead_in=0), info, src, step)
            return dict(chunkable=True, total=int(info.total_frames), fps=float(info.fps), first=first, end=end,
                        step=step)
        finally:
            src.close()
    except KLMotionError as e:
        shown = redact(fsnames.shown(spec))
        return dict(error=fsnames.shown(str(e).replace(str(spec), shown)))


def join_task(out_dir: str, opt, params, chunks, results, started: float):
    """The chunks' outputs joined into the input's (kl_motion.chunks.join) -> InputReport; a
    problem with the files (disk full, a video that does not decode) is a failed report."""
    from .chunks import join
    from .outputs import InputReport
    try:
        return join(out_dir, opt, params, chunks, results, started)
    except KLMotionError as e:
        return InputReport(input=results[0][0].input, out_dir=out_dir, name=Path(out_dir).name, status="failed",
                           frames=sum(r.frames for r, _ in results), message=str(e))


# ============================================================================ client side
@dataclass
class _Job:
    """One input of the run and the futures working on it."""
    index: int
    spec: str
    out_dir: str
    chunks: list = field(default_factory=list)
    results: dict = field(default_factory=dict)     # chunk index -> (InputReport, ChunkInfo)
    attempts: dict = field(default_factory=dict)    # what -> attempts so far
    done: bool = False


class _Bar:
    """One progress bar over every frame of the run (frames of a retried task count once)."""

    def __init__(self, ui: UI, quiet: bool):
        self.bar = ui.bar(quiet, None, "frames")
        self.lock = threading.Lock()
        self.seen: dict[str, tuple[str, int, int | None]] = {}

    def on_event(self, event) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with self.lock:
            self.seen[msg["key"]] = (msg["attempt"], msg["n"], msg["total"])
            if self.bar is None:
                return
            totals = [v[2] for v in self.seen.values()]
            self.bar.total = sum(t for t in totals if t) or None
            self.bar.n = sum(v[1] for v in self.seen.values())
            self.bar.refresh()

    @property
    def frames(self) -> int:
        return sum(v[1] for v in self.seen.values())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _start_local(n: int | None, stop_signals: tuple):
    """A LocalCluster of ``n`` worker processes (default: one per core), one task slot each.  Its
    processes are started with Ctrl-C, SIGTERM and SIGHUP ignored (they inherit that): the run
    stops them through its stop event, so a signal to the terminal's process group does not kill
    a worker in the middle of closing its outputs."""
    import signal
    import dask
    from distributed import LocalCluster
    from .threads import cores
    n = n or cores()
    old = {s: signal.signal(s, signal.SIG_IGN) for s in stop_signals}
    # the workers' environment without dask's MALLOC_TRIM_THRESHOLD_ (see heap_for_frames; None
    # unsets a variable of this setting); and no statistical profiler in the workers (it samples
    # every thread's stack every 10 ms for a dashboard that `local` does not start: 5-15 % of the
    # workers' time on 2 cores, docs/headless.md)
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}, MALLOC_TRIM_THRESHOLD_=None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env, "distributed.worker.profile.enabled": False}):
            return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                silence_logs=logging.ERROR, preload=["kl_motion.cluster"])
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _threads_by_host(client) -> dict[str, int]:
    """Each machine's cores divided by the task slots of its workers (at least 1)."""
    from .threads import cores
    info = client.scheduler_info()["workers"]
    try:
        ncores = client.run(cores)
    except Exception:
        ncores = {}
    slots: dict[str, int] = {}
    hc: dict[str, int] = {}
    for addr, w in info.items():
        h = _host(addr)
        slots[h] = slots.get(h, 0) + int(w.get("nthreads", 1))
        hc[h] = int(ncores.get(addr, hc.get(h, 1)))
    return {h: max(1, hc[h] // max(1, slots[h])) for h in slots}


def run(args, inputs: list[str], dirs: list[str], params, opt, reports: list, stop: threading.Event, ui: UI) -> None:
    """Run every input on the cluster ``args.cluster``; reports are appended as inputs finish
    (sorted in input order at the end).  ``stop`` is set by the caller's signal handler."""
    require_dask()
    kind, value = parse_cluster(args.cluster)
    if args.chunk:
        from .chunks import check_options
        check_options(opt)
    import dask
    from distributed import Client
    cluster = None
    with dask.config.set({"distributed.scheduler.allowed-failures": 0} if kind == "local" else {}):
        try:
            if kind == "local":
                cluster = _start_local(value, ui.stop_signals)
                client = Client(cluster)
            else:
                client = Client(value, timeout=10)
        except OSError as e:
            if cluster is not None:
                cluster.close()
            raise KLMotionError(f"--cluster {args.cluster}: cannot connect to the scheduler ({e})") from None
    idle = False
    try:
        r = _Run(client, args, inputs, dirs, params, opt, reports, stop, ui)
        r.run()
        idle = not r.pending and not stop.is_set()
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                _stop_local(cluster, idle)


def _stop_local(cluster, idle: bool) -> None:
    """Stop our LocalCluster.  When every task has returned (``idle``: all outputs are written and
    renamed), its worker processes are killed first rather than asked to close, which takes ~0.6 s
    (their interpreters' teardown); otherwise (a task still running after Ctrl-C) they close as usual."""
    if idle:
        import os
        import signal
        # the scheduler's and nannies' complaints about the connections of killed workers: nothing is lost
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        for nanny in list(getattr(cluster, "workers", {}).values()):
            try:
                pid = nanny.process.process.pid
            except AttributeError:
                continue
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    cluster.close()


class _Run:
    def __init__(self, client, args, inputs, dirs, params, opt, reports, stop, ui: UI):
        self.client, self.args, self.params, self.opt, self.ui = client, args, params, opt, ui
        self.reports, self.stop = reports, stop
        self.run_id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.jobs = [_Job(i, s, d) for i, (s, d) in enumerate(zip(inputs, dirs))]
        self.pending: dict = {}                 # future -> (job, what, call)
        self.retries = max(0, args.retries)

    def run(self) -> None:
        from distributed import Event
        c = self.client
        n_workers = len(c.scheduler_info()["workers"])
        if not n_workers:
            c.wait_for_workers(1, timeout=60)
        self.ctx = dict(run_id=self.run_id, stop_name=f"kl-motion-stop-{self.run_id}",
                        progress_topic=f"kl-motion-progress-{self.run_id}", threads=self.args.threads,
                        threads_by_host=_threads_by_host(c), since=self.started, quiet=self.args.quiet,
                        verbose=self.args.verbose, setup_logging=self.ui.setup_logging)
        log.info("cluster %s: %d worker(s), %d task slot(s); numba threads per task: %s",
                 c.scheduler.address, len(c.scheduler_info()["workers"]),
                 sum(w.get("nthreads", 1) for w in c.scheduler_info()["workers"].values()),
                 self.args.threads or ", ".join(f"{h} {n}" for h, n in self.ctx["threads_by_host"].items()))
        self.stop_event = Event(self.ctx["stop_name"], client=c)
        self.bar = _Bar(self.ui, self.args.quiet)
        c.subscribe_topic(self.ctx["progress_topic"], self.bar.on_event)
        try:
            for job in self.jobs:
                if self.args.chunk:
                    self._submit(job, "probe", probe_task, job.spec, job.out_dir, self.opt)
                else:
                    self._submit_input(job)
            self._loop()
        except BaseException:
            self.stop_event.set()
            c.cancel(list(self.pending), force=True)
            raise
        finally:
            self.bar.close()
            try:
                c.unsubscribe_topic(self.ctx["progress_topic"])
            except Exception:
                pass
        order = {d.out_dir: i for i, d in enumerate(self.jobs)}
        self.reports.sort(key=lambda r: order.get(r.out_dir, 0))

    # ---- submitting
    def _key(self, job: _Job, what: str) -> str:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(job.out_dir).name)[:60]
        return f"kl-motion-{what}-{name}-{uuid.uuid4().hex[:10]}"

    def _submit(self, job: _Job, what: str, fn, *a) -> None:
        key = self._key(job, what.split(":")[0])
        if fn in (input_task, chunk_task):
            a = a + (f"{job.index}:{what}",)     # progress: a retry's count replaces the failed attempt's
        f = self.client.submit(fn, *a, key=key, pure=False)
        self.pending[f] = (job, what, (fn, a))

    def _submit_input(self, job: _Job) -> None:
        self._submit(job, "input", input_task, job.spec, job.out_dir, self.params, self.opt, self.ctx)

    def _resubmit(self, job: _Job, what: str, call) -> bool:
        n = job.attempts.get(what, 0)
        if n >= self.retries or self.stop.is_set():
            return False
        job.attempts[what] = n + 1
        fn, a = call
        if fn in (input_task, chunk_task):
            a = a[:-1]
        self._submit(job, what, fn, *a)
        return True

    # ---- the loop
    def _loop(self) -> None:
        from distributed import wait
        stopping_since = None
        while self.pending:
            if self.stop.is_set() and stopping_since is None:
                stopping_since = time.monotonic()
                self.stop_event.set()          # running tasks stop at their next frame
            if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_SECONDS:
                log.warning("cancelling %d task(s) that did not stop", len(self.pending))
                self.client.cancel(list(self.pending), force=True)
                for f, (job, what, _) in list(self.pending.items()):
                    self._finish(job, self._failed(job, "interrupted", "cancelled after Ctrl-C"))
                self.pending.clear()
                break
            try:
                wait(list(self.pending), timeout=0.25, return_when="FIRST_COMPLETED")
            except Exception:       # distributed's TimeoutError: nothing finished yet
                pass
            for f in [f for f in self.pending if f.done()]:
                job, what, call = self.pending.pop(f)
                self._completed(f, job, what, call)

    def _completed(self, f, job: _Job, what: str, call) -> None:
        try:
            res = f.result()
        except Exception as e:
            why = f"{type(e).__name__}: {e}".strip().rstrip(":")
            if self._resubmit(job, what, call):
                log.warning("%s: %s failed on the cluster (%s); trying again", Path(job.out_dir).name, what, why)
                return
            self._finish(job, self._failed(job, "failed", f"{what} failed on the cluster: {why}"))
            return
        kind = what.split(":")[0]
        if kind in ("input", "join"):
            if res.status == "failed" and res.message.startswith("internal error") and self._resubmit(job, what, call):
                log.warning("%s: %s; trying again", Path(job.out_dir).name, res.message)
                return
            self._finish(job, res)
        elif kind == "probe":
            self._planned(job, res)
        elif kind == "chunk":
            rep, info = res
            if rep.status == "failed" and rep.message.startswith("internal error") and self._resubmit(job, what, call):
                return
            job.results[int(what.split(":")[1])] = (rep, info)
            if len(job.results) == len(job.chunks):
                results = [job.results[i] for i in range(len(job.chunks))]
                if any(r.status in ("failed", "interrupted") for r, _ in results):
                    from .chunks import join     # (a failed chunk: the report only, no file is touched)
                    self._finish(job, join(job.out_dir, self.opt, self.params, job.chunks, results, self.started))
                elif self.stop.is_set():
                    self._finish(job, self._failed(job, "interrupted", "interrupted before its chunks were joined"))
                else:
                    self._submit(job, "join", join_task, job.out_dir, self.opt, self.params, job.chunks, results,
                                 self.started)

    def _planned(self, job: _Job, res: dict) -> None:
        from .chunks import chunk_dir, chunk_options, default_warmup, plan
        if "error" in res:
            self._finish(job, self._failed(job, "failed", res["error"]))
            return
        if self.stop.is_set():
            self._finish(job, self._failed(job, "interrupted", "not started"))
            return
        warmup = self.args.chunk_warmup
        if warmup is None and res.get("chunkable"):
            warmup = default_warmup(self.params, res["fps"], res["step"])
        end = res.get("end")
        if res.get("chunkable") and self.opt.max_frames:    # --max-frames: the first N processed frames, in chunks
            end = min(end if end is not None else res["total"], res["first"] + self.opt.max_frames * res["step"])
        chunks = [] if not res.get("chunkable") else plan(
            res["total"], res["fps"], self.args.chunk, warmup, res["first"], end, res["step"])
        if len(chunks) <= 1:
            self._submit_input(job)
            return
        job.chunks = chunks
        log.info("%s: %d chunks of %g min (%.4g s warm-up each)", Path(job.out_dir).name, len(chunks), self.args.chunk,
                 warmup)
        for c in chunks:
            self._submit(job, f"chunk:{c.index}", chunk_task, job.spec, str(chunk_dir(job.out_dir, c)), self.params,
                         chunk_options(self.opt, c), self.ctx)

    def _failed(self, job: _Job, status: str, message: str):
        from . import fsnames
        from .outputs import InputReport
        from .sources import redact
        return InputReport(input=redact(fsnames.shown(job.spec)), out_dir=job.out_dir, name=Path(job.out_dir).name,
                           status=status, message=message)

    def _finish(self, job: _Job, rep) -> None:
        if job.done:
            return
        job.done = True
        for f, (j, _, _) in list(self.pending.items()):   # its other tasks (chunks) are of no use now
            if j is job:
                f.cancel()
                del self.pending[f]
        self.ui.report_one(rep, self.args.quiet)
        self.reports.append(rep)


__all__ = ["parse_cluster", "require_dask", "run", "input_task", "chunk_task", "probe_task", "join_task", "dask_setup"]
