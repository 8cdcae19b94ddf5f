"""`kl-motion process --cluster`: a real distributed.LocalCluster (worker processes) on 127.0.0.1,
started once for the module; the real command runs against its scheduler's address.

Whole files give the same outputs as the local run; a long clip in chunks finds every event of
the unchunked run, once, at the same frames; a failing input does not stop the others; a worker
killed in the middle of a task has its task run again; Ctrl-C stops the workers' tasks and leaves
nothing half-written under a final name.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest_process import no_traceback, part_files, read_events, read_stats, run_process, video_frames

pytest.importorskip("distributed", reason="the cluster tests need pip install 'kl-motion[cluster]'")

FPS = 25.0
# events of the long clip (frames [a, b) with a moving square); chunks of 0.2 min = 300 frames:
# the 2nd ends 10 frames before the boundary at 300 (still open there: event_gap is 2 s), the 4th
# crosses the boundary at 600
SPANS = [(100, 150), (255, 290), (450, 480), (570, 630)]
LONG = 750


def make_clip(path: Path, n: int, spans, size=(160, 120)) -> Path:
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    assert vw.isOpened()
    rng = np.random.default_rng(0)
    for i in range(n):
        f = cv2.add(np.full((h, w, 3), 90, np.uint8), rng.integers(0, 3, (h, w, 3), dtype=np.uint8))
        for a, b in spans:
            if a <= i < b:
                x = 5 + (2 * (i - a)) % (w - 40)
                cv2.rectangle(f, (x, 40), (x + 30, 80), (250, 250, 250), -1)
        vw.write(f)
    vw.release()
    return path


@pytest.fixture(scope="module")
def cluster():
    """2 worker processes, 1 task slot each.  allowed-failures=0: a task whose worker dies comes
    back to the client at once (KilledWorker), so the retry seen is kl-motion's --retries."""
    import dask
    from distributed import Client, LocalCluster
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          host="127.0.0.1", silence_logs=40)
    client = Client(lc)
    try:
        yield lc.scheduler_address, client
    finally:
        client.close()
        lc.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return dict(a=make_clip(d / "a.avi", 120, [(40, 80)]), b=make_clip(d / "b.avi", 90, [(30, 60)]),
                long=make_clip(d / "long.avi", LONG, SPANS), slow=make_clip(d / "slow.avi", 2500, [(100, 200)]))


def masks(path: Path) -> list[np.ndarray]:
    return [f[:, :, 0].copy() for f in video_frames(path)]


def test_whole_files_equal_the_local_run(cluster, clips, tmp_path):
    addr, _ = cluster
    ins = [clips["a"], clips["b"]]
    r0 = run_process(*ins, "--out", tmp_path / "local", "--kl-threshold", "120", "--bins")
    assert r0.returncode == 0, r0.stderr
    r1 = run_process(*ins, "--out", tmp_path / "cl", "--kl-threshold", "120", "--bins", "--cluster", addr)
    no_traceback(r1)
    assert r1.returncode == 0, r1.stderr
    for name in ("a", "b"):
        lo, cl = tmp_path / "local" / name, tmp_path / "cl" / name
        ml, mc = masks(lo / "mask.mkv"), masks(cl / "mask.mkv")
        assert len(ml) == len(mc) == (120 if name == "a" else 90)
        assert all(np.array_equal(x, y) for x, y in zip(ml, mc)), f"{name}: masks differ"
        assert sorted(p.name for p in (lo / "bin").iterdir()) == sorted(p.name for p in (cl / "bin").iterdir())
        for f in ("stats.csv", "events.jsonl", "boxes.csv"):
            assert (lo / f).read_text() == (cl / f).read_text(), f"{name}/{f} differs"
        assert read_events(cl / "events.jsonl"), "the clip has an event"
        s = json.loads((cl / "summary.json").read_text())
        assert s["status"] == "ok" and s["frames"] == len(mc)
    assert "2 of 2 inputs processed without error" in r1.stdout
    assert not part_files(tmp_path / "cl")


def test_chunked_long_clip_finds_every_event_once(cluster, clips, tmp_path):
    addr, _ = cluster
    r0 = run_process(clips["long"], "--out", tmp_path / "whole")
    assert r0.returncode == 0, r0.stderr
    r1 = run_process(clips["long"], "--out", tmp_path / "ch", "--cluster", addr, "--chunk", "0.2",
                     "--chunk-warmup", "4")
    no_traceback(r1)
    assert r1.returncode == 0, r1.stderr
    whole, ch = tmp_path / "whole" / "long", tmp_path / "ch" / "long"
    s = json.loads((ch / "summary.json").read_text())
    assert [(c["first_frame"], c["last_frame"]) for c in s["chunks"]] == [(1, 300), (301, 600), (601, 750)]
    assert s["frames"] == LONG and s["status"] == "ok"
    ew, ec = read_events(whole / "events.jsonl"), read_events(ch / "events.jsonl")
    assert len(ew) == len(SPANS)
    tol = 4 * FPS * 0.05      # within 5 % of the warm-up (4 s): 5 frames
    for e in ew:              # every event of the unchunked run, once, at the same frames
        same = [c for c in ec if abs(c["start_frame"] - e["start_frame"]) <= tol
                and abs(c["end_frame"] - e["end_frame"]) <= tol]
        assert len(same) == 1, (e, ec)
    assert len(ec) == len(ew), "an event was doubled (or one was invented) at a chunk boundary"
    assert [c["id"] for c in ec] == list(range(1, len(ec) + 1))
    starts = read_events(ch / "events.jsonl", "start")
    assert [x["id"] for x in starts] == [c["id"] for c in ec], "one start record per event"
    for a, b in zip(ew, ec):   # the chunks' models have learned the scene before each boundary
        assert abs(a["motion_frames"] - b["motion_frames"]) <= tol, (a, b)
        assert b["source"] == "long"
    # a track on screen at the boundary at 600 keeps its id across it
    crossing = ec[-1]
    assert any(t["first_frame"] <= 600 < t["last_frame"] for t in crossing["tracks"]), crossing["tracks"]
    # stats, boxes and masks joined in order: one row / frame each, event ids as one run's; the
    # chunks' models (learned over the warm-up, not the whole clip) agree nearly everywhere
    sw, sc = read_stats(whole / "stats.csv"), read_stats(ch / "stats.csv")
    assert [r["frame"] for r in sc] == [str(i) for i in range(1, LONG + 1)]
    for k in ("motion", "event"):
        same = sum(a[k] == b[k] for a, b in zip(sw, sc))
        assert same >= 0.98 * LONG, (k, same)
    bc = [r.split(",") for r in (ch / "boxes.csv").read_text().splitlines()[1:]]
    ids = []
    for r in bc:
        if int(r[3]) not in ids:
            ids.append(int(r[3]))
    assert ids == list(range(1, len(ids) + 1)), "track ids numbered in order of first appearance"
    assert sorted({int(r[0]) for r in bc}) == sorted({int(r["frame"]) for r in sc if r["blobs"] != "0"})
    mw, mc = masks(whole / "mask.mkv"), masks(ch / "mask.mkv")
    assert len(mc) == LONG
    differ = sum(int(np.count_nonzero(x != y)) for x, y in zip(mw, mc))
    assert differ <= 0.001 * LONG * mc[0].size, differ
    assert not (ch / "chunks.part").exists() and not part_files(ch)
    assert (ch / "report.html").is_file()


DATA = Path(os.environ.get("KL_MOTION_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def highway_clip(path: Path, n: int, fps: float) -> Path:
    """CDnet highway (dense traffic) played forwards then backwards for ``n`` frames at ``fps``."""
    src = DATA / "cdnet" / "highway" / "input"
    if not src.is_dir():
        pytest.skip(f"CDnet highway not found at {src} (set KL_MOTION_DATA)")
    frames = sorted(src.glob("in*.jpg"))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    period = 2 * len(frames) - 2
    for i in range(n):
        k = i % period
        vw.write(cv2.imread(str(frames[k if k < len(frames) else period - k])))
    vw.release()
    return path


@pytest.mark.timeout(600)
def test_chunked_real_traffic_default_warmup_finds_every_event(cluster, tmp_path):
    """Real video, event parameters that make many short events in dense traffic (motion_area at the
    traffic's usual foreground share: a frame's motion turns on small model differences).  With
    --chunk-warmup's default (5 x history frames: 500 here, 50 s at 10 fps) the chunk that starts at
    frame 700 finds the unchunked run's events within 2 frames, none missed or doubled; with the
    earlier fixed 10 s (100 frames, one history) it missed one and split another."""
    clip = highway_clip(tmp_path / "hw.avi", 1000, 10.0)
    ev = ["--motion-area", "0.06", "--event-gap", "1.2", "--history", "100", "--no-mask"]
    r0 = run_process(clip, "--out", tmp_path / "whole", *ev, timeout=240)
    assert r0.returncode == 0, r0.stderr
    r1 = run_process(clip, "--out", tmp_path / "ch", *ev, "--cluster", cluster[0], "--chunk", f"{700 / 600:.6f}",
                     timeout=240)
    no_traceback(r1)
    assert r1.returncode == 0, r1.stderr
    ew, ec = read_events(tmp_path / "whole" / "hw" / "events.jsonl"), read_events(tmp_path / "ch" / "hw" / "events.jsonl")
    assert len(ew) >= 5
    for e in ew:
        same = [c for c in ec if abs(c["start_frame"] - e["start_frame"]) <= 2 and abs(c["end_frame"] - e["end_frame"]) <= 2]
        assert len(same) == 1, (e, [(c["start_frame"], c["end_frame"]) for c in ec])
    assert len(ec) == len(ew), ([(e["start_frame"], e["end_frame"]) for e in ew], [(c["start_frame"], c["end_frame"]) for c in ec])
    s = json.loads((tmp_path / "ch" / "hw" / "summary.json").read_text())
    assert [(c["first_frame"], c["warmup_frames"]) for c in s["chunks"]] == [(1, 0), (701, 500)]


def test_one_progress_bar_over_every_frame_and_max_frames_in_chunks(cluster, clips, tmp_path):
    """On a terminal (stderr a pty, not -q) the client shows one bar over the frames of every input
    and chunk, ending at their sum; --max-frames with --chunk keeps the input's first N frames (a
    long clip cut at 400 frames: 2 chunks), whole-file inputs shorter than N are whole."""
    import pty
    import re
    addr, _ = cluster
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))    # (tqdm draws nothing 0 wide)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("KL_MOTION_DEBUG", None)
    p = subprocess.Popen([sys.executable, "-m", "kl_motion", "process", str(clips["a"]), str(clips["b"]),
                          str(clips["long"]), "--out", str(tmp_path / "o"), "--cluster", addr, "--chunk", "0.2",
                          "--max-frames", "400"], env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    err = b""
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:        # the child closed the terminal (EIO)
            break
        if not b:
            break
        err += b
    so = p.communicate(timeout=120)[0]
    os.close(master)
    text = err.decode("utf-8", "replace")
    assert p.returncode == 0, text
    counts = [(int(a), int(b)) for a, b in re.findall(r"frames:.*?\|\s*(\d+)/(\d+)", text)]
    total = 120 + 90 + 400
    assert counts and counts[-1] == (total, total), (counts, text[-2000:])
    assert all(n <= total and t <= total for n, t in counts), counts     # no frame counted twice
    assert [n for n, _ in counts] == sorted(n for n, _ in counts), counts
    assert "3 of 3 inputs processed without error" in so
    s = json.loads((tmp_path / "o" / "long" / "summary.json").read_text())
    assert [(c["first_frame"], c["last_frame"]) for c in s["chunks"]] == [(1, 300), (301, 400)]
    assert s["status"] == "ok" and s["frames"] == 400
    assert [r["frame"] for r in read_stats(tmp_path / "o" / "long" / "stats.csv")] == [str(i) for i in range(1, 401)]
    assert len(masks(tmp_path / "o" / "long" / "mask.mkv")) == 400
    assert len(read_stats(tmp_path / "o" / "a" / "stats.csv")) == 120


def test_a_failing_input_does_not_stop_the_others(cluster, clips, tmp_path):
    addr, _ = cluster
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    r = run_process(junk, tmp_path / "missing.avi", clips["a"], clips["long"], "--out", tmp_path / "o",
                    "--cluster", addr, "--chunk", "0.2", "--chunk-warmup", "4")
    no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert "missing.avi: no such file" in r.stderr
    assert "2 of 4 inputs processed without error" in r.stdout
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert " failed " in lines[str(junk)] and " ok " in lines[str(clips["a"])]
    assert len(masks(tmp_path / "o" / "a" / "mask.mkv")) == 120
    assert len(read_stats(tmp_path / "o" / "long" / "stats.csv")) == LONG
    assert not (tmp_path / "o" / "junk" / "mask.mkv").exists()


def _start(args: list, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("KL_MOTION_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "kl_motion", "process", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _task_worker(client, prefix: str) -> str | None:
    for w, keys in client.processing().items():
        if any(str(k).startswith(prefix) for k in keys):
            return w
    return None


def test_a_killed_workers_task_runs_again(cluster, clips, tmp_path):
    addr, client = cluster
    out = tmp_path / "o"
    p = _start([clips["slow"], "--out", out, "--cluster", addr, "--retries", "1"])
    try:
        _wait_for(lambda: (out / "slow" / "stats.part.csv").is_file(), 60, "the task to start writing")
        w = _task_worker(client, "kl-motion-input-slow")
        assert w is not None, client.processing()
        pid = client.run(os.getpid, workers=[w])[w]
        os.kill(pid, signal.SIGKILL)      # the worker dies in the middle of the task
        so, se = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert "trying again" in se, se
    assert p.returncode == 0, se
    assert len(masks(out / "slow" / "mask.mkv")) == 2500
    assert len(read_stats(out / "slow" / "stats.csv")) == 2500
    assert json.loads((out / "slow" / "summary.json").read_text())["status"] == "ok"
    assert not part_files(out)
    client.wait_for_workers(2, timeout=60)        # the nanny restarts the killed worker


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_ctrl_c_stops_the_tasks_and_leaves_nothing_half_written(cluster, clips, tmp_path, chunked):
    addr, client = cluster
    client.wait_for_workers(2, timeout=60)
    out = tmp_path / "o"
    extra = ["--chunk", "0.5", "--chunk-warmup", "2"] if chunked else []
    p = _start([clips["slow"], "--out", out, "--cluster", addr, *extra])
    try:
        first = "chunks.part/0000/stats.part.csv" if chunked else "stats.part.csv"
        _wait_for(lambda: (out / "slow" / first).is_file(), 60, "the task to start writing")
        p.send_signal(signal.SIGINT)
        so, se = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    no_traceback(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    assert p.returncode == 130, se
    # the workers' tasks stopped (they were not left running to the end of the clip)
    _wait_for(lambda: _task_worker(client, "kl-motion-") is None, 10, "the cluster's tasks to end")
    time.sleep(1.0)
    d = out / "slow"
    if chunked:      # nothing joined: nothing under a final name; the first chunk's task was stopped
        assert not [f for f in d.iterdir() if f.name != "chunks.part"], list(d.iterdir())
        s = json.loads((d / "chunks.part" / "0000" / "summary.json").read_text())
        assert s["status"] == "interrupted" and s["frames"] < 750, s
    else:            # as a local Ctrl-C: outputs closed, complete and renamed, holding what was processed
        s = json.loads((d / "summary.json").read_text())
        assert s["status"] == "interrupted"
        n = len(read_stats(d / "stats.csv"))
        assert 0 < n < 2500 and len(masks(d / "mask.mkv")) == n
        assert not part_files(d)


def test_plan_chunks():
    from kl_motion.chunks import Chunk, plan
    assert plan(750, 25, 0.2, 4) == [Chunk(0, 0, 300, 0), Chunk(1, 300, 600, 100), Chunk(2, 600, None, 100)]
    assert plan(360, 25, 0.2, 4) == [Chunk(0, 0, None, 0)]          # not longer than a chunk and a quarter
    assert plan(670, 25, 0.2, 4) == [Chunk(0, 0, 300, 0), Chunk(1, 300, None, 100)]   # a short tail joins
    # --start/--end and --frame-skip 2: boundaries and lead-ins on the processed frames
    assert plan(2000, 25, 0.2, 1, first=10, end=910, step=3) == [
        Chunk(0, 10, 310, 0), Chunk(1, 310, 610, 27), Chunk(2, 610, 910, 27)]
    assert plan(750, 25, 0, 4) == [Chunk(0, 0, None, 0)]
    # --chunk-warmup's default: 5 x history processed frames (at least twice warmup_frames)
    from kl_motion.chunks import default_warmup
    from kl_motion.params import Params
    assert default_warmup(Params(), 30.0) == pytest.approx(1000 / 30)
    assert default_warmup(Params(history=100), 10.0, step=2) == pytest.approx(100.0)
    assert default_warmup(Params(history=5, warmup_frames=50), 25.0) == pytest.approx(4.0)


def test_cluster_flags_are_checked_up_front(tmp_path, clips):
    for args, msg in ((["--chunk", "1"], "--chunk needs --cluster"),
                      (["--cluster", "local:2", "--jobs", "2"], "use --cluster local:N instead of --jobs"),
                      (["--cluster", "http://a b"], "is not a scheduler address"),
                      (["--cluster", "local:0"], "local:N needs N >= 1")):
        r = run_process(clips["a"], "--out", tmp_path / "o", *args)
        no_traceback(r)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    r = run_process(clips["a"], "--out", tmp_path / "o", "--cluster", "local", "--chunk", "1", "--overlay")
    assert r.returncode == 2 and "--chunk cannot be combined with --overlay" in r.stderr, r.stderr
    r = run_process(clips["a"], "--out", tmp_path / "o", "--cluster", "local", "--chunk", "1", "--chunk-warmup", "-1")
    assert r.returncode == 2 and "--chunk-warmup must be 0 or more" in r.stderr, r.stderr
    r = run_process(clips["a"], "--out", tmp_path / "o", "--cluster", "tcp://127.0.0.1:9", "--retries", "0")
    no_traceback(r)
    assert r.returncode == 2 and "cannot connect to the scheduler" in r.stderr, r.stderr
    assert not (tmp_path / "o" / "a").exists()


def test_without_dask_the_plain_install_works_and_cluster_says_what_to_install(tmp_path, clips):
    """dask hidden (an import hook that refuses it): process and --jobs work, --cluster is one line."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _No:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed'):\n"
        "            raise ImportError('hidden by the test')\n"
        "sys.meta_path.insert(0, _No())\n")
    env = dict(os.environ, PYTHONPATH=str(hide), PYTHONWARNINGS="ignore")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "kl_motion", "process", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=120)
    r = run(clips["a"], clips["b"], "--out", tmp_path / "o", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert len(masks(tmp_path / "o" / "a" / "mask.mkv")) == 120
    r = run(clips["a"], "--out", tmp_path / "o2", "--cluster", "local:2")
    no_traceback(r)
    assert r.returncode == 2 and "pip install 'kl-motion[cluster]'" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys, kl_motion, kl_motion.cli, kl_motion.process_cmd, "
                        "kl_motion.pipeline, kl_motion.chunks; assert 'dask' not in sys.modules"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def _numba_threads_in_a_task(ctx):
    import numba

    from kl_motion.cluster import _Task
    with _Task(ctx, "probe"):
        return numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS


def test_each_task_gets_its_share_of_the_cores(cluster):
    """2 workers x 1 task slot on this machine: each task runs numba on cores // 2 threads (not on
    every core, numba's default), and --threads wins."""
    from kl_motion.cluster import _threads_by_host
    from kl_motion.threads import cores
    _, client = cluster
    client.wait_for_workers(2, timeout=60)
    ctx = dict(threads=None, threads_by_host=_threads_by_host(client), stop_name="kl-motion-stop-test",
               progress_topic="kl-motion-progress-test", quiet=True, verbose=False, setup_logging=lambda q, v: None)
    assert ctx["threads_by_host"] == {"127.0.0.1": max(1, cores() // 2)}
    got, pool = client.submit(_numba_threads_in_a_task, ctx, pure=False).result(timeout=60)
    assert got == max(1, min(pool, cores() // 2))
    if pool >= 2 and cores() >= 2:      # numba's default here would be every core
        assert got < pool
    got, _ = client.submit(_numba_threads_in_a_task, dict(ctx, threads=1), pure=False).result(timeout=60)
    assert got == 1


def _faults_of_frame_sized_blocks(n: int = 40, nbytes: int = 1 << 20) -> dict:
    """Minor page faults of allocating, filling and freeing ``n`` blocks of ``nbytes`` one after the
    other (as a frame loop does) in the process this runs in, and the MALLOC_TRIM_THRESHOLD_ it was
    started with.  Counted for the calling thread only (RUSAGE_THREAD): a worker's warm-up thread may
    be loading the kernels meanwhile, and its faults are not the frames'."""
    import resource
    a = np.ones(nbytes, np.uint8)               # one block first: glibc's own threshold adapts to it
    del a
    f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(n):
        a = np.ones(nbytes, np.uint8)
        del a
    start = [x for x in Path("/proc/self/environ").read_bytes().split(b"\0") if x.startswith(b"MALLOC_TRIM")]
    return dict(faults=resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0, trim=start)


def _profiler_scheduled(dask_worker) -> bool:
    return "profile" in dask_worker.periodic_callbacks


def test_workers_keep_frames_on_the_heap_and_local_ones_run_no_profiler(cluster, monkeypatch):
    """dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, with which glibc maps and unmaps
    every block of 128 KiB or more: a page fault per 4 KiB of every frame (0.3 ms a 320x240 frame).
    On a plain LocalCluster (the fixture's) 40 blocks of 1 MiB fault ~256 times each; after
    kl_motion.cluster.heap_for_frames they reuse the heap; the workers' preload (dask_setup) runs it;
    and `--cluster local` starts its workers without the variable, and without dask's statistical
    profiler.  Planted: heap_for_frames returning at once, dask_setup not calling it, the variable kept
    in _start_local, the profiler left on: each fails."""
    from kl_motion.cluster import _start_local, heap_for_frames
    from distributed import Client
    _, client = cluster
    client.wait_for_workers(2, timeout=60)
    before = client.run(_faults_of_frame_sized_blocks)
    assert all(r["trim"] == [b"MALLOC_TRIM_THRESHOLD_=65536"] and r["faults"] > 40 * 200 for r in before.values()), before
    assert all(client.run(heap_for_frames).values())
    after = client.run(_faults_of_frame_sized_blocks)
    assert all(r["faults"] < 40 * 20 for r in after.values()), after
    # the preload, in a process started as dask's nanny starts a worker
    code = ("import numpy as np, sys; sys.path.insert(0, %r); from test_cluster import _faults_of_frame_sized_blocks as f; "
            "from kl_motion import cluster; cluster.dask_setup(None); cluster._preloaded.wait(120); print(f()['faults'])" % str(Path(__file__).parent))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536"))
    assert r.returncode == 0 and int(r.stdout.split()[-1]) < 40 * 20, (r.stdout, r.stderr[-500:])
    # the fixture's nanny left the variable in this process's environment (dask sets it there to
    # spawn its workers): a fresh command has none
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    lc = _start_local(1, ())
    try:
        with Client(lc) as c:
            c.wait_for_workers(1, timeout=60)
            own = c.run(_faults_of_frame_sized_blocks)
            sampled = c.run(_profiler_scheduled)
    finally:
        lc.close()
    assert all(r["trim"] == [] and r["faults"] < 40 * 20 for r in own.values()), own
    # and no statistical profiler (which the fixture's plain LocalCluster has)
    assert list(sampled.values()) == [False] and all(client.run(_profiler_scheduled).values())
