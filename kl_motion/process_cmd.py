"""`kl-motion process`: headless processing of files, image folders, cameras and streams.

Each input's outputs go to their own folder under ``--out``.  Several inputs run one
after another, or in ``--jobs N`` worker processes; a bad input never stops the
others, a summary table ends the run and the exit code is non-zero if any failed.
The first Ctrl-C stops cleanly (outputs are closed and stay playable); a second one
aborts.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .errors import KLMotionError, OutputError

EXIT_FAILED = 2
EXIT_INTERRUPTED = 130
# handled like Ctrl-C: stop reading, close every output, exit 128 + the signal's number
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

log = logging.getLogger("kl_motion")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="video file, image folder (natural order; a CDnet input/ folder works), folder of video "
                        "clips, camera index (0) or stream URL (rtsp://, http://, udp://)")
    p.add_argument("--demo", action="store_true", help="also process the demo clip shipped with the package")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder; each input gets DIR/NAME/")
    o = p.add_argument_group("outputs (mask video, stats and events are on by default)")
    o.add_argument("--mask", action=argparse.BooleanOptionalAction, default=True,
                   help="lossless mask video mask.mkv (FFV1; 0 background, 127 shadow, 255 foreground)")
    o.add_argument("--mask-format", choices=("mkv", "png"), default="mkv",
                   help="mkv: one FFV1 video (default); png: a folder mask/maskNNNNNN.png")
    o.add_argument("--overlay", action="store_true", help="overlay.mp4: the frame with the mask tinted and boxes")
    o.add_argument("--bins", action="store_true", help="CDnet results bin/binNNNNNN.png (0/255) for CDnet's scorer")
    o.add_argument("--stats", action=argparse.BooleanOptionalAction, default=True,
                   help="stats.csv: frame, time, fg fraction, mean/max KL, blobs, motion flag")
    o.add_argument("--events", action=argparse.BooleanOptionalAction, default=True,
                   help="events.jsonl: one JSON line per motion event")
    o.add_argument("--snapshots", action="store_true", help="snapshots/event-NNNN.jpg: the peak frame of each event")
    o.add_argument("--clips", action="store_true",
                   help="clips/event-NNNN.mp4: each event with pre_capture/post_capture seconds around it")
    o.add_argument("--boxes", action=argparse.BooleanOptionalAction, default=True,
                   help="boxes.csv: every moving region of every frame with a track id kept across frames")
    o.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="report.html (motion over time, event spans, thumbnails, summary; self-contained) and "
                        "motion.png at the end (needs --stats)")
    o.add_argument("--force", action="store_true", help="overwrite existing outputs")
    ev = p.add_argument_group("live events (at each event's start and end, never holding up the frames)")
    ev.add_argument("--on-event", metavar="CMD", default="",
                    help="run the shell command CMD with KL_MOTION_PHASE (start/end), KL_MOTION_EVENT_ID, "
                         "KL_MOTION_INPUT, KL_MOTION_START_TIME, KL_MOTION_BOX, KL_MOTION_SNAPSHOT, "
                         "KL_MOTION_EVENT_JSON, ... in its environment")
    ev.add_argument("--webhook", metavar="URL", default="",
                    help="POST each start/end record as JSON to URL (5 s timeout, retried with backoff)")
    ev.add_argument("--mqtt", metavar="HOST[:PORT]", default="",
                    help="publish to an MQTT broker: PREFIX/NAME/motion ON/OFF (retained), PREFIX/NAME/events "
                         "(JSON), PREFIX/NAME/available; needs pip install 'kl-motion[mqtt]'")
    ev.add_argument("--mqtt-prefix", metavar="PREFIX", default="kl_motion", help="MQTT topic prefix")
    r = p.add_argument_group("running")
    r.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="process inputs in N parallel processes (each gets cores / N threads unless --threads)")
    from .threads import add_argument as add_threads_argument
    add_threads_argument(r)
    c = p.add_argument_group("cluster (needs pip install 'kl-motion[cluster]': dask and distributed)")
    c.add_argument("--cluster", metavar="ADDRESS|local[:N]", default=None,
                   help="run each input (and each chunk) as a task on a Dask cluster: the scheduler's address "
                        "(tcp://host:8786; every worker must see the inputs and --out at the same paths), or "
                        "local:N for N worker processes on this machine (default: one per core)")
    c.add_argument("--chunk", type=float, default=0.0, metavar="MIN",
                   help="with --cluster: split files and image folders longer than MIN minutes into chunks "
                        "run in parallel and joined into one input's outputs (default 0: no split)")
    c.add_argument("--chunk-warmup", type=float, default=None, metavar="S",
                   help="each chunk starts S seconds early so the model has learned the background when the "
                        "chunk begins; those frames write nothing (default: 5 x history frames, 33 s at 30 fps "
                        "with the default history of 200)")
    c.add_argument("--retries", type=int, default=2, metavar="N",
                   help="with --cluster: run a task again up to N times when it fails (its worker died, or an "
                        "internal error) before reporting the input as failed (default 2)")
    r.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop each input after N frames (0 = all)")
    r.add_argument("--start", metavar="POS", default=None,
                   help="files and folders: start at POS, a time (90, 1:30, 00:01:30.5) or a frame (150f)")
    r.add_argument("--end", metavar="POS", default=None,
                   help="stop at POS (a time or a frame, as --start); cameras and streams: after this time")
    r.add_argument("--frame-skip", type=int, default=0, metavar="N",
                   help="process one frame, then skip N (times stay the source's)")
    r.add_argument("--fps", type=float, default=0.0, metavar="F",
                   help="frame rate of image folders (default 25)")
    from .analyzer import detector_names
    r.add_argument("--method", default="kl_motion", choices=("kl", *detector_names()), metavar="NAME",
                   help="detector: kl_motion (default; alias kl), or a reference: mog2, knn (OpenCV + kl_motion's "
                        "cleanup and zones), mog2-raw, knn-raw (OpenCV alone); with cv2.bgsegm also gsoc, cnt, ... "
                        "(choices: %(choices)s)")
    r.add_argument("--reconnect", action="store_true", help="cameras/streams: reconnect with backoff when they drop")
    r.add_argument("--reconnect-attempts", type=int, default=0, metavar="N",
                   help="give up after N failed reconnects in a row (0 = never)")
    r.add_argument("--reconnect-delay", type=float, default=0.5, metavar="S",
                   help="first reconnect delay in seconds; doubles up to 30 s")
    r.add_argument("--stream-timeout", type=float, default=10.0, metavar="S", help="stream open/read timeout (s)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary; only warnings and errors")
    r.add_argument("-v", "--verbose", action="store_true", help="more log messages")


# ---------------------------------------------------------------------------- logging
class _Fmt(logging.Formatter):
    def format(self, rec):
        lvl = "" if rec.levelno == logging.INFO else rec.levelname.lower() + ": "
        return f"kl-motion: {lvl}{rec.getMessage()}"


class _TqdmHandler(logging.StreamHandler):
    """Writes through tqdm.write so messages do not break a progress bar on screen."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    log.handlers[:] = []
    h = _TqdmHandler(sys.stderr)
    h.setFormatter(_Fmt())
    log.addHandler(h)
    log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    from .sources import quiet_opencv
    quiet_opencv()


# ---------------------------------------------------------------------------- helpers
def _check_cluster_args(args) -> None:
    from .errors import ParameterError
    if args.cluster is None:
        for flag, on in (("--chunk", args.chunk), ("--retries", args.retries != 2)):
            if on:
                raise ParameterError(f"{flag} needs --cluster (local:N runs the tasks on this machine)")
        return
    if args.jobs != 1:
        raise ParameterError("--cluster runs the inputs on the cluster's workers: use --cluster local:N instead "
                             "of --jobs N")
    if args.chunk < 0 or (args.chunk_warmup is not None and args.chunk_warmup < 0):
        raise ParameterError("--chunk and --chunk-warmup must be 0 or more")
    if args.retries < 0:
        raise ParameterError("--retries must be 0 or more")
    from .cluster import parse_cluster, require_dask
    parse_cluster(args.cluster)
    require_dask()


def _options(args):
    from .errors import ParameterError
    from .outputs import Options
    from .timefmt import parse_position
    if args.frame_skip < 0:
        raise ParameterError("--frame-skip must be 0 or more")
    if args.fps < 0 or args.fps > 1000:
        raise ParameterError("--fps must be between 0 and 1000")
    if args.mqtt:
        from .notify import parse_host_port
        parse_host_port(args.mqtt)
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError:
            raise KLMotionError("--mqtt needs paho-mqtt: pip install 'kl-motion[mqtt]'") from None
    if args.webhook and not args.webhook.lower().startswith(("http://", "https://")):
        raise ParameterError(f"--webhook: {args.webhook!r} is not an http:// or https:// URL")
    return Options(boxes=args.boxes, report=args.report, on_event=args.on_event, webhook=args.webhook,
                   mqtt=args.mqtt, mqtt_prefix=args.mqtt_prefix,
                   start=parse_position(args.start, "--start") if args.start else None,
                   end=parse_position(args.end, "--end") if args.end else None,
                   frame_skip=args.frame_skip, fps=args.fps,
                   mask=args.mask, mask_format=args.mask_format, overlay=args.overlay, bins=args.bins,
                   stats=args.stats, events=args.events, snapshots=args.snapshots, clips=args.clips,
                   force=args.force, method=args.method, max_frames=max(0, args.max_frames),
                   reconnect=args.reconnect, reconnect_attempts=max(0, args.reconnect_attempts),
                   reconnect_delay=max(0.01, args.reconnect_delay), stream_timeout=max(0.1, args.stream_timeout))


def expand_inputs(inputs: list[str]) -> list[str]:
    """A folder without images but with video files (a folder of clips) stands for
    its videos, in natural order; everything else is kept as given."""
    from .sources import IMAGE_EXTS, VIDEO_EXTS, classify, natural_key
    out = []
    for spec in inputs:
        if classify(spec) == "folder":
            files = [p for p in Path(spec).iterdir() if p.is_file()]
            if not any(p.suffix.lower() in IMAGE_EXTS for p in files):
                videos = sorted((p for p in files if p.suffix.lower() in VIDEO_EXTS), key=lambda p: natural_key(p.name))
                if videos:
                    out.extend(str(p) for p in videos)
                    continue
        out.append(spec)
    return out


def _names(inputs: list[str]) -> list[str]:
    from .fsnames import shown
    from .pipeline import input_name
    seen: dict[str, int] = {}
    out = []
    for spec in inputs:
        n = shown(input_name(spec))     # bytes that are not UTF-8 as \xNN: OpenCV's writers take the name
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}-{k}")
    return out


_stop_global = None


def _worker_init(stop, threads: int, quiet: bool, verbose: bool) -> None:
    global _stop_global
    for sig in STOP_SIGNALS:      # the parent asks us to stop via `stop` (systemd signals the whole group)
        signal.signal(sig, signal.SIG_IGN)
    _stop_global = stop
    setup_logging(quiet, verbose)
    from .threads import use_threads
    use_threads(threads)


def _worker(spec: str, out_dir: str, params, opt):
    from .pipeline import process_input
    _log_threads(f"worker {os.getpid()}: ")
    return process_input(spec, out_dir, params, opt, stop=_stop_global)


def _log_threads(prefix: str = "") -> None:
    """-v: the thread counts in force where the model runs (numba's is per calling thread)."""
    import cv2
    import numba
    log.debug("%s%d numba thread(s), %d OpenCV thread(s)", prefix, numba.get_num_threads(), cv2.getNumThreads())


def _bar(quiet: bool, total, desc: str, unit: str = "frame"):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)


# ---------------------------------------------------------------------------- run
def run(args) -> int:
    from .flags import params_from_args, with_demo
    from .fsnames import is_utf8, shown
    from .pipeline import process_input
    from .postprocess import zone_mask

    setup_logging(args.quiet, args.verbose)
    params = params_from_args(args)
    zone_mask(params, 8, 8)            # a bad zone_mask image is a parameter error, up front
    from .threads import check
    check(args.threads, args.jobs)
    _check_cluster_args(args)
    opt = _options(args)
    out = Path(args.out)
    if not is_utf8(out.resolve()):
        raise OutputError(f"output folder {shown(out)}: its path is not valid UTF-8, which OpenCV's video "
                          "writer cannot open (choose another --out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"output folder {out} is not writable")
    inputs = expand_inputs(with_demo(args.inputs, args.demo, "INPUT", "input"))
    names = _names(inputs)
    dirs = [str(out / n) for n in names]
    if args.cluster and not args.cluster.lower().startswith("local"):
        # workers of another machine (or started in another folder) need absolute paths
        inputs = [str(Path(s).resolve()) if Path(s).exists() else s for s in inputs]
        dirs = [str(Path(d).resolve()) for d in dirs]

    from .threads import plan, use_threads
    jobs, threads, warn = plan(args.jobs, args.threads, len(inputs))
    if warn:
        log.warning(warn)
    parallel = jobs > 1 and not args.cluster
    if parallel:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        # the Event starts multiprocessing's resource tracker, which ignores SIGINT and SIGTERM but
        # not SIGHUP: started while SIGHUP is ignored, it keeps ignoring it (a hang-up of the
        # terminal would kill it and it prints a traceback when the workers end)
        hup = getattr(signal, "SIGHUP", None)
        before = signal.signal(hup, signal.SIG_IGN) if hup is not None else None
        try:
            stop = ctx.Event()
        finally:
            if hup is not None:
                signal.signal(hup, before)
    else:
        ctx, stop = None, threading.Event()
    reports = []

    got: list[int] = []

    def on_signal(signum, frame):     # Ctrl-C, kill / systemctl stop / docker stop (SIGTERM), SIGHUP
        if stop.is_set():
            raise KeyboardInterrupt
        got.append(signum)
        stop.set()
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        log.warning("stopping (%s): closing outputs (%s again to abort)", what, what)

    old = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        if args.cluster:
            from . import cluster
            cluster.run(args, inputs, dirs, params, opt, reports, stop,
                        ui=cluster.UI(setup_logging, _report_one, _bar, STOP_SIGNALS))
        elif parallel:
            _run_parallel(args, ctx, stop, inputs, dirs, params, opt, reports, jobs, threads)
        else:
            use_threads(args.threads)
            _log_threads()
            for spec, d in zip(inputs, dirs):
                if stop.is_set():
                    break
                bar = _bar(args.quiet, None, Path(d).name)

                def progress(k, total, bar=bar):
                    if bar is None:
                        return
                    if total is not None:
                        bar.total = total
                        bar.refresh()
                    bar.update(k)

                try:
                    rep = process_input(spec, d, params, opt, stop=stop, progress=progress)
                finally:
                    if bar is not None:
                        bar.close()
                _report_one(rep, args.quiet)
                reports.append(rep)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    interrupted = stop.is_set()
    if interrupted:
        from .fsnames import shown
        from .outputs import InputReport
        from .sources import redact
        done = {r.out_dir for r in reports}
        for spec, d in zip(inputs, dirs):
            if d not in done:
                reports.append(InputReport(input=redact(shown(spec)), out_dir=d, name=Path(d).name, status="interrupted",
                                           message="not started"))

    if len(inputs) > 1 and not args.quiet:
        print(format_summary(reports))
    if interrupted or any(r.status == "interrupted" for r in reports):
        return 128 + got[0] if got else EXIT_INTERRUPTED      # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    return EXIT_FAILED if any(r.failed for r in reports) else 0


def _run_parallel(args, ctx, stop, inputs, dirs, params, opt, reports, jobs: int, threads: int) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from .fsnames import shown
    from .pipeline import finished_report
    from .outputs import InputReport
    from .sources import redact

    log.debug("%d jobs x %d thread(s) each", jobs, threads)
    bar = _bar(args.quiet, len(inputs), "inputs", unit="input")

    def failed(s, d, message):
        return InputReport(input=redact(shown(s)), out_dir=d, name=Path(d).name, status="failed", message=message)

    def run_pool(work, n_workers):
        """Run ``work`` in a pool; returns the inputs a crashed worker took down with the pool."""
        broken = []
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(stop, threads, args.quiet, args.verbose)) as ex:
            futs = {ex.submit(_worker, s, d, params, opt): (s, d) for s, d in work}
            for f in as_completed(futs):
                s, d = futs[f]
                try:
                    rep = f.result()
                except BrokenProcessPool:
                    broken.append((s, d))
                    continue
                except Exception as e:  # pragma: no cover - process_input reports its own errors
                    rep = failed(s, d, f"internal error: {type(e).__name__}: {e}")
                _report_one(rep, args.quiet)
                reports.append(rep)
                if bar is not None:
                    bar.update(1)
        return broken

    # A worker that dies (a crash inside a native library) breaks the whole pool: the inputs it
    # took down run again, each alone in its own process, so only the one that crashes fails.
    started = time.time()
    broken = run_pool(list(zip(inputs, dirs)), jobs)
    if broken:
        log.warning("a worker process crashed; running its %d unfinished input(s) again, one per process",
                    len(broken))
    for s, d in broken:
        if stop.is_set():
            break
        rep = finished_report(d, started)      # done before the pool broke, its result lost with it
        if rep is not None:
            _report_one(rep, args.quiet)
            reports.append(rep)
            if bar is not None:
                bar.update(1)
            continue
        if run_pool([(s, d)], 1):
            rep = failed(s, d, "the worker process crashed on this input (a crash inside OpenCV or FFmpeg)")
            _report_one(rep, args.quiet)
            reports.append(rep)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    order = {s: i for i, s in enumerate(dirs)}
    reports.sort(key=lambda r: order.get(r.out_dir, 0))


def _report_one(rep, quiet: bool) -> None:
    if rep.status in ("failed", "truncated"):
        msg = rep.message
        if rep.input not in msg:
            msg = f"{rep.input}: {msg}"
        print(f"kl-motion: error: {msg}", file=sys.stderr)
    elif rep.status == "interrupted":
        log.warning("%s: %s", rep.input, rep.message)
    else:
        extra = f"; {rep.message}" if rep.message else ""
        log.info("%s: %d frames in %.1f s (%.1f fps), %d events -> %s%s", rep.input, rep.frames, rep.seconds,
                 rep.fps, rep.events, rep.out_dir, extra)


def format_summary(reports) -> str:
    rows = [("input", "status", "frames", "fps", "events", "message")]
    for r in reports:
        rows.append((r.input, r.status, str(r.frames), f"{r.fps:.1f}", str(r.events), r.message))
    w = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w[j]) if j < 5 else c for j, c in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w) + "  -------")
    ok = sum(not r.failed and r.status != "interrupted" for r in reports)
    lines.append(f"{ok} of {len(reports)} inputs processed without error")
    return "\n".join(lines)
