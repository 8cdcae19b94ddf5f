"""`kl-motion process`'s command layer (kl_motion/process_cmd.py), in-process (issue 17: the
mutation run of process_cmd.py; each test names the bug it was checked against: the mutant, or the
same change made by hand, failed it).

The options are parsed by the real parser and the runs go through ``kl_motion.cli.main`` in this
process on tiny inputs (a few 32x24 frames); a stop signal is sent to this process by a thread once
the first output exists, as systemd or Ctrl-C would.
"""
from __future__ import annotations

import io
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion import process_cmd
from kl_motion.cli import build_parser, main
from kl_motion.errors import KLMotionError, ParameterError
from kl_motion.outputs import InputReport, Options
from kl_motion.timefmt import Position


def _args(*argv):
    return build_parser().parse_args(["process", "--out", "o", *map(str, argv)])


def _folder(path: Path, n: int = 6) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        assert cv2.imwrite(str(path / f"{i:03d}.png"), np.full((24, 32), 90, np.uint8))
    return path


def _video(path: Path, n: int) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 24))
    for i in range(n):
        vw.write(np.full((24, 32, 3), 90 + (i % 3), np.uint8))
    vw.release()
    return path


# -------------------------------------------------------------------------------------- options
def test_options_carry_every_flag():
    """Planted: any two Options fields swapped or a flag dropped; `max(1, max_frames)`,
    `max(1, reconnect_attempts)`, reconnect_delay / stream_timeout floors changed."""
    a = _args("--no-mask", "--mask-format", "png", "--overlay", "--bins", "--no-stats", "--no-events", "--snapshots",
              "--clips", "--no-boxes", "--no-report", "--force", "--on-event", "echo hi", "--webhook", "HTTPS://h/x",
              "--mqtt-prefix", "pre", "--max-frames", "-4", "--start", "150f", "--end", "2:00", "--frame-skip", "2",
              "--fps", "1000", "--method", "mog2", "--reconnect", "--reconnect-attempts", "-1",
              "--reconnect-delay", "0", "--stream-timeout", "0")
    assert process_cmd._options(a) == Options(
        mask=False, mask_format="png", overlay=True, bins=True, stats=False, events=False, snapshots=True, clips=True,
        force=True, method="mog2", max_frames=0, reconnect=True, reconnect_attempts=0, reconnect_delay=0.01,
        stream_timeout=0.1, boxes=False, report=False, on_event="echo hi", webhook="HTTPS://h/x", mqtt="",
        mqtt_prefix="pre", start=Position(frame=149), end=Position(seconds=120.0), frame_skip=2, fps=1000.0)
    d = process_cmd._options(_args("--max-frames", "7", "--reconnect-attempts", "3", "--reconnect-delay", "0.02",
                                   "--stream-timeout", "0.2"))
    assert (d.max_frames, d.reconnect_attempts, d.reconnect_delay, d.stream_timeout, d.start, d.end) == \
        (7, 3, 0.02, 0.2, None, None)
    assert process_cmd._options(_args()) == Options()
    a = _args()                         # by default one input at a time, in this process, no cluster
    assert (a.jobs, a.threads, a.cluster, a.chunk, a.chunk_warmup, a.retries) == (1, None, None, 0.0, None, 2)


@pytest.mark.parametrize("argv, msg", [
    (["--frame-skip", "-1"], "--frame-skip must be 0 or more"),
    (["--fps", "-0.5"], "--fps must be between 0 and 1000"),
    (["--fps", "1000.5"], "--fps must be between 0 and 1000"),
    (["--webhook", "ftp://h/x"], "--webhook: 'ftp://h/x' is not an http:// or https:// URL"),
    (["--mqtt", "host:notaport"], "--mqtt: bad port in 'host:notaport'"),
])
def test_bad_options_are_one_line(argv, msg):
    """Planted: `frame_skip < -1` / `<= 0`, `fps <= 0`, `fps > 1001` / `>= 1000`, `or` -> `and`,
    the webhook's scheme not lowered / `not` dropped, the MQTT address not parsed (`if not args.mqtt`)."""
    with pytest.raises(KLMotionError) as e:
        process_cmd._options(_args(*argv))
    assert str(e.value) == msg
    assert process_cmd._options(_args("--fps", "0", "--frame-skip", "0", "--mqtt", "h:1883")).mqtt == "h:1883"


@pytest.mark.parametrize("argv, msg", [
    (["--chunk", "1"], "--chunk needs --cluster (local:N runs the tasks on this machine)"),
    (["--retries", "3"], "--retries needs --cluster (local:N runs the tasks on this machine)"),
    (["--retries", "0"], "--retries needs --cluster (local:N runs the tasks on this machine)"),
    (["--cluster", "local:2", "--jobs", "2"], "--cluster runs the inputs on the cluster's workers: use --cluster "
                                               "local:N instead of --jobs N"),
    (["--cluster", "local", "--chunk", "-1"], "--chunk and --chunk-warmup must be 0 or more"),
    (["--cluster", "local", "--chunk-warmup", "-0.5"], "--chunk and --chunk-warmup must be 0 or more"),
    (["--cluster", "local", "--retries", "-1"], "--retries must be 0 or more"),
    (["--cluster", "local:0"], "--cluster local:N needs N >= 1"),
    # good values, then the address is refused: the checks above let them through
    (["--cluster", "local:0", "--chunk", "0", "--chunk-warmup", "0", "--retries", "0"], "--cluster local:N needs N >= 1"),
    (["--cluster", "local:0", "--chunk-warmup", "0.5"], "--cluster local:N needs N >= 1"),
])
def test_cluster_flags_are_checked(argv, msg):
    """Planted: `args.cluster is not None`, `retries != 3`, `if not on`, `jobs == 1`, `chunk < 1` /
    `<= 0`, `chunk_warmup is None`, `chunk_warmup < 1`, `and` -> `or`, `retries < 1` / `<= 0` / `< -1`,
    parse_cluster not reached."""
    with pytest.raises(ParameterError) as e:
        process_cmd._check_cluster_args(_args(*argv))
    assert str(e.value) == msg


def test_good_cluster_flags_pass_without_a_cluster():
    """(With --cluster the check imports dask and distributed: 5-10 s, left to tests/test_cluster.py.)"""
    for argv in ([], ["--retries", "2"], ["--chunk", "0"]):
        assert process_cmd._check_cluster_args(_args(*argv)) is None


# ------------------------------------------------------------------------------ inputs and names
def test_out_is_required(capsys):
    """Planted: --out required=False (a run without it ends in an internal error, not a usage line)."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["process", "clip.mp4"])
    assert e.value.code == 2 and "the following arguments are required: -o/--out" in capsys.readouterr().err


def test_a_folder_of_clips_stands_for_its_videos_in_natural_order(tmp_path):
    """Planted: `classify(spec) != "folder"`, `if any(...)` (not dropped), `suffix not in VIDEO_EXTS`,
    the suffix not lowered, `if not videos`, the `continue` replaced by `break`."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for n in ("c10.MP4", "c2.avi", "notes.txt", "c1.mkv"):
        (clips / n).write_bytes(b"x")
    (clips / "sub.mp4").mkdir()
    imgs = _folder(tmp_path / "imgs", 1)
    (imgs / "extra.mp4").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    got = process_cmd.expand_inputs([str(clips), str(imgs), "0", str(empty), "x.mp4", str(clips)])
    want_clips = [str(clips / n) for n in ("c1.mkv", "c2.avi", "c10.MP4")]
    assert got == want_clips + [str(imgs), "0", str(empty), "x.mp4"] + want_clips


def test_inputs_of_the_same_name_get_numbered_folders():
    """Planted: `seen.get(n, 1)`, `+ 2` / `- 1`, `k != 1`."""
    assert process_cmd._names(["a/cam.mp4", "b/cam.mp4", "0", "c/cam.avi", "d/x.mp4"]) == \
        ["cam", "cam-2", "camera0", "cam-3", "x"]


# -------------------------------------------------------------------------------------- messages
def test_log_format_and_levels(capsys):
    """Planted: `rec.levelno != logging.INFO`, the level test of setup_logging swapped (`if not verbose`,
    `if not quiet`), verbose=True as its default, propagate True, handlers kept (each message twice)."""
    for quiet, verbose, level in ((False, False, logging.INFO), (True, False, logging.WARNING),
                                  (False, True, logging.DEBUG), (True, True, logging.DEBUG)):
        process_cmd.setup_logging(quiet, verbose)
        assert process_cmd.log.level == level and len(process_cmd.log.handlers) == 1
        assert process_cmd.log.propagate is False
    process_cmd.setup_logging()
    assert process_cmd.log.level == logging.INFO                 # the defaults: neither quiet nor verbose
    process_cmd.log.info("done %d", 3)
    process_cmd.log.warning("careful")
    assert capsys.readouterr().err == "kl-motion: done 3\nkl-motion: warning: careful\n"
    assert os.environ.get("OPENCV_LOG_LEVEL") == "OFF"


def test_one_line_per_input(capsys):
    """Planted: `rep.status not in ("failed", "truncated")`, `rep.input in msg`, `status != "interrupted"`."""
    process_cmd.setup_logging()
    process_cmd._report_one(InputReport("a.mp4", status="failed", message="a.mp4: no such file"), False)
    process_cmd._report_one(InputReport("b.mp4", status="truncated", message="stream ended"), False)
    process_cmd._report_one(InputReport("c.mp4", status="interrupted", message="not started"), False)
    process_cmd._report_one(InputReport("d.mp4", out_dir="o/d", frames=50, seconds=2.0, events=1, message="hi"), False)
    process_cmd._report_one(InputReport("e.mp4", out_dir="o/e", frames=5, seconds=0.0), False)
    assert capsys.readouterr().err.splitlines() == [
        "kl-motion: error: a.mp4: no such file", "kl-motion: error: b.mp4: stream ended",
        "kl-motion: warning: c.mp4: not started",
        "kl-motion: d.mp4: 50 frames in 2.0 s (25.0 fps), 1 events -> o/d; hi",
        "kl-motion: e.mp4: 5 frames in 0.0 s (0.0 fps), 0 events -> o/e"]


def test_summary_table():
    """Planted: column widths over range(4) / range(6), `j < 4` / `j <= 5` (the message padded),
    the rule after row 1 (`i == 1`) or every row, the count of good inputs (`and` -> `or`, `== "interrupted"`)."""
    reps = [InputReport("long/name.mp4", status="ok", frames=1500, seconds=10.0, events=12),
            InputReport("b", status="failed", message="b: no such file"),
            InputReport("c", status="interrupted", frames=7, seconds=1.0, message="stopped")]
    assert process_cmd.format_summary(reps).splitlines() == [
        "input          status       frames  fps    events  message",
        "-------------  -----------  ------  -----  ------  -------",
        "long/name.mp4  ok           1500    150.0  12",
        "b              failed       0       0.0    0       b: no such file",
        "c              interrupted  7       7.0    0       stopped",
        "1 of 3 inputs processed without error"]


# ----------------------------------------------------------------------------------------- runs
def test_a_batch_with_a_bad_input_exits_2_with_a_summary(tmp_path, capsys):
    """Planted: EXIT_FAILED 3 / 1, `any(not r.failed ...)`, `len(inputs) > 2` / `>= 1` for the summary,
    `if args.quiet` for it, max_frames not passed, the input loop stopping at once (`if not stop.is_set()`),
    `jobs >= 1` (one input run in a worker process), `if not warn`, _bar's `quiet or sys.stderr.isatty()`,
    exist_ok=False for --out (a folder that exists refused)."""
    good = _folder(tmp_path / "cam", 6)
    out = tmp_path / "o"
    assert main(["process", str(good), str(tmp_path / "missing.avi"), str(good), "--out", str(out), "--no-report",
                 "--max-frames", "4"]) == 2
    o, e = capsys.readouterr()
    assert "kl-motion: error: " + str(tmp_path / "missing.avi") + ": no such file" in e
    assert o.splitlines()[-1] == "2 of 3 inputs processed without error"
    assert sorted(p.name for p in out.iterdir()) == ["cam", "cam-2"]
    assert (out / "cam" / "stats.csv").read_text().count("\n") == 5           # header + 4 frames
    assert "\r" not in e                       # stderr is not a terminal: no progress bar drawn
    assert main(["process", str(good), "--out", str(tmp_path / "p"), "--no-report", "--no-mask", "-v"]) == 0
    o, e = capsys.readouterr()
    assert "numba thread(s)" in e and " jobs x " not in e                    # run here, not in worker processes
    assert main(["process", str(good), str(good), "--out", str(out), "--no-report", "--no-mask", "-q", "--force"]) == 0
    o, e = capsys.readouterr()
    assert o == "" and e == ""                                                # -q: no table, no line, no empty warning
    assert main(["process", str(good), "--out", str(tmp_path / "r"), "--no-report", "--no-mask", "-q",
                 "--threads", "4096"]) == 0
    assert "oversubscribed as asked" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_bar_on_a_terminal_only_and_not_with_q(tmp_path, monkeypatch):
    """Planted: `quiet or sys.stderr.isatty()` / `not quiet or ...` in _bar, leave=True, `total is None`
    in the progress callback (a bar without its total)."""
    assert process_cmd._bar(True, 5, "x") is None
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert process_cmd._bar(True, 5, "x") is None
    b = process_cmd._bar(False, 5, "x")
    assert b is not None and b.total == 5
    b.close()
    assert "x:   0%|" in sys.stderr.getvalue() and "\n" not in sys.stderr.getvalue()   # cleared, not left on screen
    good = _folder(tmp_path / "cam", 6)
    assert main(["process", str(good), "--out", str(tmp_path / "o"), "--no-report", "--no-mask"]) == 0
    assert "cam:   0%| " in sys.stderr.getvalue() and " 0/6 [" in sys.stderr.getvalue()   # the bar knows the total


def test_the_output_folder_is_checked_first(tmp_path, capsys):
    """Planted: `if is_utf8(...)` (not dropped), the mkdir's except not catching, `e.strerror and e`,
    parents=False."""
    good = _folder(tmp_path / "cam", 2)
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/out\xff"))
    assert main(["process", str(good), "--out", str(bad)]) == 2
    assert capsys.readouterr().err == (f"kl-motion: error: output folder {tmp_path}/out\\xff: its path is not valid "
                                       "UTF-8, which OpenCV's video writer cannot open (choose another --out)\n")
    (tmp_path / "file").write_text("x")
    assert main(["process", str(good), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"kl-motion: error: cannot create output folder {tmp_path / 'file'}: File exists\n"
    assert main(["process", str(good), "--out", str(tmp_path / "a" / "b"), "--no-report", "-q"]) == 0
    assert (tmp_path / "a" / "b" / "cam" / "stats.csv").is_file()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_closes_the_outputs_and_reports_the_rest_not_started(tmp_path, capsys, sig, code):
    """A stop signal while the first of two inputs runs: it is closed (complete, renamed), the
    second is "not started", the exit code is 128 + the signal.  Planted: `128 - got[0]`, `if not
    interrupted`, `d in done`, the handlers not restored (`for ... in old.items()` never run: the
    second signal kills pytest), the message's Ctrl-C test (`signum != signal.SIGINT`)."""
    long_ = _video(tmp_path / "long.avi", 3000)
    out = tmp_path / "o"
    before = signal.getsignal(sig)

    def stop_when_writing():
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and not (out / "long" / "mask.part.mkv").exists():
            time.sleep(0.005)
        os.kill(os.getpid(), sig)

    threading.Thread(target=stop_when_writing, daemon=True).start()
    assert main(["process", str(long_), str(_folder(tmp_path / "second", 2)), "--out", str(out), "--no-report"]) == code
    assert signal.getsignal(sig) == before
    o, e = capsys.readouterr()
    what = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"kl-motion: warning: stopping ({what}): closing outputs ({what} again to abort)" in e
    assert f"{long_}: interrupted after " in e
    rows = [line.split() for line in o.splitlines()[2:4]]
    assert [r[:2] for r in rows] == [[str(long_), "interrupted"], [str(tmp_path / "second"), "interrupted"]]
    assert rows[1][-2:] == ["not", "started"] and o.splitlines()[-1] == "0 of 2 inputs processed without error"
    n = (out / "long" / "stats.csv").read_text().count("\n") - 1
    assert 0 < n < 3000 and not (out / "second").exists()
    assert (out / "long" / "mask.mkv").is_file() and not list(out.rglob("*.part*"))



def test_jobs_run_the_inputs_in_worker_processes_and_report_in_input_order(tmp_path, capfd):
    """--jobs 2: the inputs run in two spawned workers (1-3 s here on a quiet machine); the summary
    keeps the order of the inputs although the short one ends first; a bad input fails alone.
    Planted: `jobs > 2` for parallel (run here instead), the reports not sorted (`order.get(...)`
    ignored), `for f in []` in run_pool (no result), the bar tests reversed (`bar is None`: None.update),
    SIGHUP not restored (`if hup is None`)."""
    a, b = _folder(tmp_path / "a", 4), _folder(tmp_path / "b", 30)
    out = tmp_path / "o"
    hup = signal.getsignal(signal.SIGHUP)
    assert main(["process", str(b), str(tmp_path / "missing.avi"), str(a), "--jobs", "2", "--out", str(out),
                 "--no-report", "--no-mask", "-v"]) == 2
    assert signal.getsignal(signal.SIGHUP) == hup      # ignored only while the multiprocessing Event is made
    o, e = capfd.readouterr()
    assert [line.split()[:2] for line in o.splitlines()[2:5]] == \
        [[str(b), "ok"], [str(tmp_path / "missing.avi"), "failed"], [str(a), "ok"]]
    assert o.splitlines()[-1] == "2 of 3 inputs processed without error"
    assert "kl-motion: debug: 2 jobs x 1 thread(s) each" in e
    assert len(re.findall(r"debug: worker \d+: \d+ numba thread\(s\)", e)) == 3        # -v: logged in the workers
    assert (out / "a" / "stats.csv").read_text().count("\n") == 5
    assert (out / "b" / "stats.csv").read_text().count("\n") == 31


def _children() -> list[int]:
    pids = []
    for t in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            pids += [int(c) for c in Path(f"/proc/{os.getpid()}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return pids


def test_a_killed_worker_is_replaced_and_its_input_run_again_alone(tmp_path, capfd):
    """--jobs 2 and the worker of the long input killed (as the OOM killer would) while it writes:
    the pool breaks, the inputs it took down run again, each alone in a new process, and the run
    ends as if nothing happened.  Planted: BrokenProcessPool not caught, `if not broken` for the
    warning, `for s, d in []` (the lost inputs never run again: no report), `if not stop.is_set()`,
    `if not run_pool(...)` (a good rerun reported as a crash), `run_pool(..., 0)`."""
    if not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs /proc/PID/task/PID/children to find the worker processes")
    long_ = _video(tmp_path / "long.avi", 600)
    short = _folder(tmp_path / "short", 4)
    out = tmp_path / "o"
    part = out / "long" / "mask.part.mkv"
    killed = []

    def kill_the_worker_of_long():
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and not killed:
            for c in _children():
                try:
                    if any(os.path.realpath(f"/proc/{c}/fd/{fd}") == str(part) for fd in os.listdir(f"/proc/{c}/fd")):
                        os.kill(c, signal.SIGKILL)
                        killed.append(c)
                        break
                except OSError:
                    continue
            time.sleep(0.005)

    threading.Thread(target=kill_the_worker_of_long, daemon=True).start()
    code = main(["process", str(long_), str(short), "--jobs", "2", "--out", str(out), "--no-report"])
    o, e = capfd.readouterr()
    assert killed, "the worker of long.avi was not found"
    assert code == 0, e
    assert "kl-motion: warning: a worker process crashed; running its " in e
    assert [line.split()[:2] for line in o.splitlines()[2:4]] == [[str(long_), "ok"], [str(short), "ok"]]
    assert (out / "long" / "stats.csv").read_text().count("\n") == 601          # all of it, run again
    assert (out / "short" / "stats.csv").read_text().count("\n") == 5
