"""Viewer tests (pytest-qt, offscreen). Keep them fast: the demo clip is 320x240."""
from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt  # noqa: E402

from conftest_process import video_frames  # noqa: E402

from kl_motion import MotionModel, Params  # noqa: E402
from kl_motion.gui import controls as controls_mod  # noqa: E402
from kl_motion.gui.compose import MODES, Composer, ViewSettings, grid_to_frame  # noqa: E402
from kl_motion.gui.main_window import MainWindow, demo_path  # noqa: E402
from kl_motion.gui.worker import running_threads  # noqa: E402

DEMO = demo_path()
pytestmark = pytest.mark.skipif(DEMO is None, reason="demo clip not installed")
WAIT = 15000  # ms; generous for a loaded 2-core CI box


@pytest.fixture(scope="module", autouse=True)
def warm_jit():
    """Compile (or load) the numba kernels before any timed wait starts."""
    m = MotionModel()
    f = np.zeros((24, 32, 3), np.uint8)
    m.apply(f)
    m.apply(f)
    m.background()


@pytest.fixture
def make_window(qtbot):
    made = []

    def make(source=DEMO, playing=True, speed=0.0, **kw):
        w = MainWindow(Params(), str(source) if source is not None else None, playing=playing, speed=speed, **kw)
        w.testing = True
        qtbot.addWidget(w)
        w.resize(900, 600)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


def wait_position(qtbot, w, pos):
    qtbot.waitUntil(lambda: w.packet is not None and w.packet.position >= pos, timeout=WAIT)


def wait_new_packet(qtbot, w, old):
    qtbot.waitUntil(lambda: w.packet is not None and w.packet is not old and w.packet.model_ms > 0, timeout=WAIT)
    return w.packet


def pause_at(qtbot, w, pos):
    """Play (at max speed) until frame ``pos``, then pause and wait until the worker is idle."""
    wait_position(qtbot, w, pos)
    w.set_playing(False)
    # wait until a frame that was in flight has landed and been taken by the UI
    qtbot.waitUntil(lambda: w.worker.idle and w.packet is w.worker.peek(), timeout=WAIT)
    return w.packet


def step_and_get(qtbot, w):
    old = w.packet
    w.step(1)
    wait_new_packet(qtbot, w, old)
    qtbot.waitUntil(lambda: w.worker.idle and w.packet is w.worker.peek(), timeout=WAIT)
    return w.packet


# ---------------------------------------------------------------------------- window & frames
def test_window_opens_on_demo_and_shows_frames(make_window, qtbot):
    w = make_window()
    qtbot.waitUntil(lambda: w.frames_shown >= 10, timeout=WAIT)
    assert w.info is not None and (w.info.width, w.info.height) == (320, 240)
    assert w.view.image_size() == (320, 240)
    assert w.view.paints > 0
    assert w.last_error == ""
    w._update_status()
    assert "fps" in w.st_source.text()
    assert "ms" in w.st_proc.text()
    assert "%" in w.st_fg.text()


def test_all_view_modes_render(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 40)
    images = {}
    for mode in MODES:
        old = w.packet
        w.set_mode(mode)
        qtbot.waitUntil(lambda: w.packet is not old, timeout=WAIT)
        pk = w.packet
        assert w.view.grid == (mode == "grid")
        assert (pk.result.mask == 255).sum() > 200          # from frame 40 on the demo has moving objects
        check_view_image(mode, pk.image, pk.frame, pk.result, pk.result.background, w.settings)
        images[mode] = pk.image
    # five different pictures of the same frame
    assert len({im.tobytes() for im in images.values()}) == len(MODES)


def check_view_image(mode, img, frame, result, background, s):
    """What each view mode must show, checked with plain numpy (not the composer's own code)."""
    import cv2
    H, W = frame.shape[:2]
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    mask = result.mask
    fg = mask == 255
    if mode == "overlay":
        near = cv2.dilate((mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert np.array_equal(img[~near], frame[~near])                  # background pixels untouched
        inner = cv2.erode(fg.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert inner.sum() > 50
        want = (1 - s.opacity) * frame[inner].astype(float) + s.opacity * np.array(s.color, float)
        assert np.abs(img[inner].astype(float) - want).max() <= 1.0       # foreground tinted at the opacity
    elif mode == "mask":
        for c in range(3):
            assert np.array_equal(img[:, :, c], mask)
    elif mode == "heatmap":
        kl = result.kl
        body = np.ones((H, W), bool)
        body[:H // 2 + 8, W - 48:] = False                                # the colour bar's corner
        high = body & (kl >= s.heat_vmax)
        assert high.sum() > 0
        c_high = img[high][0]
        assert (img[high] == c_high).all()                  # one colour for every KL at or above vmax
        lowest = np.unravel_index(np.argmin(np.where(body, kl, np.inf)), kl.shape)
        assert np.abs(img[lowest].astype(int) - c_high.astype(int)).sum() > 100    # another for the lowest KL
        assert np.abs(img.astype(int) - frame.astype(int)).mean() > 20              # not the picture
    elif mode == "background":
        assert background is not None
        assert np.abs(img.astype(int) - background.astype(int)).mean() < 1.0
        # the background has no moving object: where the frame shows one, they differ
        assert np.abs(img[fg].astype(int) - frame[fg].astype(int)).mean() > 10
    elif mode == "grid":
        h2, w2 = H // 2, W // 2
        small = cv2.resize(mask, (w2, h2), interpolation=cv2.INTER_NEAREST)
        tile = img[20:h2, w2:2 * w2]                                       # the mask tile, under its label
        for c in range(3):
            assert np.array_equal(tile[:, :, c], small[20:])
        assert not np.array_equal(img[20:h2, :w2], img[h2 + 20:, :w2])   # overlay and heat map differ
    else:
        raise AssertionError(mode)


def test_hover_shows_kl_value(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 10)
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    pt = w.view.frame_to_widget(0.5, 0.5)
    # a real mouse-move event through the widget (QTest.mouseMove only moves the cursor offscreen)
    ev = QMouseEvent(QEvent.MouseMove, pt, w.view.mapToGlobal(pt), Qt.NoButton, Qt.NoButton, Qt.NoModifier)
    QApplication.sendEvent(w.view, ev)
    assert "KL" in w.hover_text()
    kl = w.packet.result.kl[120, 160]
    assert f"{kl:.2f}" in w.hover_text()


# ---------------------------------------------------------------------------- two-way binding
def test_controls_bind_both_ways_without_echo(make_window, qtbot):
    w = make_window(playing=False)
    row = w.controls.row("kl_threshold")
    edits = []
    w.controls.paramChanged.connect(lambda n, v: edits.append((n, v)))
    # slider -> params
    row.slider.setValue(row.mapping.to_pos(50.0))
    assert edits and edits[-1][0] == "kl_threshold"
    assert abs(w.params.kl_threshold - 50.0) < 0.6
    assert abs(row.spin.value() - w.params.kl_threshold) < 1e-9
    # params -> slider, with no echo back as an edit
    n = len(edits)
    w.set_params(kl_threshold=12.0, min_area=40, detect_shadows=False)
    assert row.spin.value() == 12.0
    assert row.slider.value() == row.mapping.to_pos(12.0)
    assert w.controls.row("min_area").spin.value() == 40
    assert w.controls.row("detect_shadows").check.isChecked() is False
    assert len(edits) == n
    # the panel is generated from the table: exactly the gui=True entries
    from kl_motion.params import spec
    assert set(w.controls.rows) == {r["name"] for r in spec() if r["gui"]}


def test_invalid_combination_is_refused_and_widget_restored(make_window, qtbot):
    w = make_window(playing=False)
    w.set_params(var_max=50.0)
    row = w.controls.row("var_min")
    row.spin.setValue(100.0)           # var_min > var_max: ParameterError
    assert w.params.var_min <= w.params.var_max
    assert row.spin.value() == w.params.var_min


def test_log_slider_mapping_round_trips():
    m = controls_mod.Mapping(0, 500, log=True)
    for v in (0.0, 1.0, 6.0, 100.0, 500.0):
        assert abs(m.to_value(m.to_pos(v)) - v) <= max(0.01 * v, 0.01)
    assert controls_mod.wants_log(0, 500) and controls_mod.wants_log(1, 100000)
    assert not controls_mod.wants_log(0.0, 1.0)


def test_threshold_slider_changes_next_mask(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 40)
    before = step_and_get(qtbot, w)
    fg_before = int(np.count_nonzero(before.result.mask == 255))
    assert fg_before > 0
    row = w.controls.row("kl_threshold")
    row.slider.setValue(row.mapping.to_pos(300.0))
    thr = w.params.kl_threshold
    assert abs(thr - 300.0) < 10
    after = step_and_get(qtbot, w)
    fg_after = int(np.count_nonzero(after.result.mask == 255))
    # the demo's next frame at a threshold of 300: some of the motion is left, the strongest
    assert 0 < fg_after < fg_before
    kl_fg = after.result.kl[after.result.mask == 255]
    assert kl_fg.max() > thr and np.mean(kl_fg > thr) > 0.5   # cleanup adds a few weaker pixels around it
    row.slider.setValue(controls_mod.SLIDER_STEPS)   # the maximum (500)
    assert w.params.kl_threshold == 500.0
    top = step_and_get(qtbot, w)
    assert int(np.count_nonzero(top.result.mask == 255)) < fg_after


# ---------------------------------------------------------------------------- presets, snapshot, record
def test_preset_save_and_load_round_trip(make_window, qtbot, tmp_path):
    w = make_window(playing=False)
    w.set_params(kl_threshold=17.5, history=250, detect_shadows=False, min_area=99,
                 ignore_zones=[[[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]])
    saved = w.params
    path = tmp_path / "preset.toml"
    assert w.save_preset(str(path)) == str(path)
    # the CLI reads the same file
    assert Params.load(path) == saved
    w.restore_defaults()
    w.set_params(ignore_zones=[])
    assert w.params != saved
    loaded = w.load_preset(str(path))
    assert loaded == saved and w.params == saved
    assert w.controls.row("kl_threshold").spin.value() == 17.5
    assert w.controls.row("detect_shadows").check.isChecked() is False
    assert w.view.zones["ignore"] == [[(0.1, 0.1), (0.4, 0.1), (0.4, 0.4)]]


def test_bad_preset_shows_error(make_window, qtbot, tmp_path):
    w = make_window(playing=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("kl_threshold = -3\n")
    before = w.params
    assert w.load_preset(str(bad)) is None
    assert "kl_threshold" in w.last_error and w.params == before


def test_snapshot_and_recording(make_window, qtbot, tmp_path):
    import cv2
    w = make_window()
    wait_position(qtbot, w, 5)
    snap = tmp_path / "snap.png"
    assert w.save_snapshot(str(snap)) == str(snap)
    img = cv2.imread(str(snap))
    assert img is not None and img.shape == (240, 320, 3)
    rec = tmp_path / "rec.avi"
    w.set_mode("mask")                     # record the masks: they look nothing like the input frames
    w.seek(40)                             # where the demo's cars move
    marks = []         # frames processed when the worker starts and stops recording (in its own thread)
    w.worker.recordingChanged.connect(lambda path: marks.append((path, w.worker.frames_processed)),
                                      Qt.DirectConnection)
    w.start_recording(str(rec))
    qtbot.waitUntil(lambda: len(marks) == 1, timeout=WAIT)
    qtbot.waitUntil(lambda: w.worker.frames_processed >= marks[0][1] + 10, timeout=WAIT)
    w.stop_recording()
    qtbot.waitUntil(lambda: len(marks) == 2, timeout=WAIT)
    (p0, n0), (p1, n1) = marks
    assert p0 == str(rec) and p1 == ""
    got = video_frames(rec)
    assert len(got) == n1 - n0            # every frame processed while recording is in the file
    assert len(got) >= 10 and got[0].shape == (240, 320, 3)
    # what was shown: mask images (black and white, after the codec), with motion in some of them
    for f in got:
        g = f[:, :, 0]
        assert np.mean((g < 40) | (g > 215)) > 0.97
    assert max(int(np.count_nonzero(f[:, :, 0] > 127)) for f in got) > 200


# ---------------------------------------------------------------------------- zones
def test_zone_drawn_with_mouse_removes_motion_inside(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 40)
    before = step_and_get(qtbot, w)
    left = before.result.mask[:, :150]
    assert np.count_nonzero(left == 255) > 0
    w.draw_zone("ignore")
    assert w.view.drawing == "ignore"
    for fx, fy in ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)):
        qtbot.mouseClick(w.view, Qt.LeftButton, pos=w.view.frame_to_widget(fx, fy).toPoint())
    assert len(w.view.points) == 4
    qtbot.mouseClick(w.view, Qt.RightButton, pos=w.view.frame_to_widget(0.2, 0.5).toPoint())
    assert w.view.drawing == ""
    zones = w.params.ignore_zones
    assert len(zones) == 1 and len(zones[0]) == 4
    xs = [pt[0] for pt in zones[0]]
    assert min(xs) <= 0.01 and 0.49 <= max(xs) <= 0.51
    after = step_and_get(qtbot, w)
    assert np.count_nonzero(after.result.mask[:, :150] == 255) == 0
    # the zone is in the preset
    w.clear_zones()
    assert w.params.ignore_zones == []


def test_include_zone_by_keyboard_close(make_window, qtbot):
    w = make_window(playing=False)
    w.draw_zone("include")
    for fx, fy in ((0.6, 0.1), (0.9, 0.1), (0.9, 0.9)):
        qtbot.mouseClick(w.view, Qt.LeftButton, pos=w.view.frame_to_widget(fx, fy).toPoint())
    qtbot.keyClick(w.view, Qt.Key_Return)
    assert len(w.params.include_zones) == 1
    w.remove_last_zone()
    assert w.params.include_zones == []


# ---------------------------------------------------------------------------- errors & shutdown
def test_bad_sources_show_message_and_app_stays_usable(make_window, qtbot, tmp_path):
    w = make_window(source=tmp_path / "missing.mp4")
    qtbot.waitUntil(lambda: "no such file" in w.last_error, timeout=WAIT)
    assert "Cannot open" in w.view.message
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    w.open_source(str(junk))
    qtbot.waitUntil(lambda: "junk.mp4" in w.last_error, timeout=WAIT)
    w.open_demo()
    qtbot.waitUntil(lambda: w.frames_shown >= 3, timeout=WAIT)
    assert w.view.message == ""


def test_playback_seek_and_step_back(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 30)
    old = w.packet
    w.seek(100)
    qtbot.waitUntil(lambda: w.packet is not old and w.packet.position == 100, timeout=WAIT)
    assert w.seekbar.value() == 100
    old = w.packet
    w.step(-1)
    qtbot.waitUntil(lambda: w.packet is not old and w.packet.position == 99, timeout=WAIT)
    # keyboard: space resumes playback
    w.activateWindow()
    w.toggle_play()
    qtbot.waitUntil(lambda: w.packet.position > 105, timeout=WAIT)


def test_closing_stops_every_thread(make_window, qtbot):
    w = make_window()
    qtbot.waitUntil(lambda: w.frames_shown >= 3, timeout=WAIT)
    assert running_threads()
    worker = w.worker
    w.close()
    assert not worker.thread.is_alive()
    assert running_threads() == []


# ---------------------------------------------------------------------------- no Qt in the core
def test_core_does_not_import_qt():
    code = ("import sys, kl_motion, kl_motion.cli, kl_motion.model, kl_motion.sources, kl_motion.overlay, "
            "kl_motion.params\nassert not [m for m in sys.modules if m.startswith('PySide6')], 'Qt imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_composer_modes_without_qt():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    m = MotionModel()
    for _ in range(10):
        m.apply(frame)
    frame = frame.copy()
    frame[12:36, 16:44] = 250                        # an object appears
    r = m.apply(frame)
    c = Composer()
    bg = m.background()
    for mode in MODES:
        s = ViewSettings(mode=mode)
        img = c.compose(frame, r, s, bg)
        check_view_image(mode, img, frame, r, bg, s)
    # outlines and boxes are drawn on the overlay, in the foreground colour and the box colour
    plain = c.compose(frame, r, ViewSettings(), bg)
    drawn = c.compose(frame, r, ViewSettings(outlines=True, boxes=True), bg)
    assert r.blobs
    b = r.blobs[0]
    assert tuple(drawn[b.y, b.x + b.w // 2]) == (0, 255, 0) != tuple(plain[b.y, b.x + b.w // 2])
    # overlay tints foreground pixels only
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 10:20] = 255
    out = c.overlay(frame, mask, ViewSettings(opacity=1.0, color=(0, 0, 255)))
    assert (out[10:20, 10:20] == (0, 0, 255)).all()
    assert np.array_equal(out[30:, 30:], frame[30:, 30:])
    assert grid_to_frame(32 + 16, 24 + 12, 64, 48) == (32.0, 24.0)


# ---------------------------------------------------------------------------- live sources
from kl_motion.sources import Source  # noqa: E402


class FakeCamera(Source):
    """A live source (kind 'camera') that the test can stall, resume or lose."""

    def __init__(self, frames_before_stall=5):
        import threading
        from kl_motion.sources import VideoInfo
        self.info = VideoInfo(64, 48, 30.0, None, "camera", "fake camera")
        self.go = threading.Event()
        self.go.set()
        self.stall_after = frames_before_stall
        self.lost = False
        self.closed = False
        self.n = 0
        self.rng = np.random.default_rng(1)

    def read(self):
        import time
        if self.n >= self.stall_after:
            self.go.wait()
        if self.lost or self.closed:
            return None
        self.n += 1
        time.sleep(0.01)
        return self.rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def close(self):
        self.closed = True
        self.go.set()


def test_stalled_and_lost_camera_show_message_not_freeze(make_window, qtbot):
    cam = FakeCamera()
    w = make_window(source=None)
    w.stall_timeout = 0.5
    cam.go.clear()
    w.open_source(cam)
    # the grabber keeps only the newest frame, so fewer frames are shown than read
    qtbot.waitUntil(lambda: w.frames_shown >= 1 and cam.n >= 5, timeout=WAIT)
    assert w.worker.live and not w.btn_step.isEnabled()
    qtbot.waitUntil(lambda: "No frames" in w.view.message or "No new frames" in w.view.message, timeout=WAIT)
    n = w.frames_shown
    cam.go.set()                                   # frames come again: the message goes
    qtbot.waitUntil(lambda: w.frames_shown > n + 2 and w.view.message == "", timeout=WAIT)
    cam.lost = True                                # the camera disappears
    qtbot.waitUntil(lambda: "Lost" in w.view.message, timeout=WAIT)
    w.close()
    assert running_threads() == []
    assert cam.closed


# ---------------------------------------------------------------------------- PySide6 6.12.0 refcount bugs
def test_qtcompat_probe_and_repair(qapp):
    """PySide6 6.12.0 on Python 3.11 dropped a reference to None on every void call and to True on
    every emit() (the interpreter aborted after some thousands of calls); pyproject excludes that
    release, so the installed binding is healthy.  What can still go wrong here: the probe taking a
    healthy binding for a leaky one (and bumping the singletons' counts for nothing), or the repair
    not giving back what a leaky emit() drops.  Both are checked against the real counts."""
    import ctypes
    from kl_motion.gui import qtcompat
    from kl_motion.gui.qtcompat import _Probe
    from PySide6.QtWidgets import QLabel
    if sys.version_info >= (3, 12):
        pytest.skip("None and True are immortal from Python 3.12 on: their counts say nothing")
    # the installed binding: no leak measured, nothing made immortal, and indeed none lost
    assert qtcompat._probe() == (False, False)
    assert not qtcompat.IMMORTALIZED and sys.getrefcount(None) < 2 ** 40
    lab, o = QLabel(), _Probe()
    o.sig.connect(lambda: None)
    n0, t0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        lab.setText("x")
        qtcompat.emit(o.sig)
    assert abs(sys.getrefcount(None) - n0) < 50 and abs(sys.getrefcount(True) - t0) < 50

    # the repair, on a signal that leaks the way 6.12.0's did (emit returns True, one reference short)
    class LeakySignal:
        def emit(self, *args):
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(True))
            return True

    leaky = LeakySignal()
    old = qtcompat.EMIT_LOSES_TRUE
    qtcompat.EMIT_LOSES_TRUE = True
    try:
        t0 = sys.getrefcount(True)
        for _ in range(1000):
            qtcompat.emit(leaky)
        assert abs(sys.getrefcount(True) - t0) < 50
    finally:
        qtcompat.EMIT_LOSES_TRUE = old


def test_gui_code_emits_only_through_the_helper():
    import re
    from pathlib import Path
    import kl_motion.gui as g
    for f in Path(g.__file__).parent.glob("*.py"):
        if f.name == "qtcompat.py":
            continue
        assert not re.search(r"\.emit\(", f.read_text()), f"{f.name}: use qtcompat.emit(signal, ...)"


def test_end_of_video_pauses_and_restart_plays_again(make_window, qtbot):
    w = make_window()
    qtbot.waitUntil(lambda: w.packet is not None and w.packet.position == 149 and not w.worker.playing,
                    timeout=WAIT)
    w.step(1)                       # nothing more to read: must not hang or crash
    qtbot.wait(100)
    assert w.worker.thread.is_alive()
    w.seek(0)
    w.set_playing(True)
    qtbot.waitUntil(lambda: w.worker.playing and 5 <= w.packet.position < 149, timeout=WAIT)


def test_mjpeg_stream_shows_frames_then_reports_the_drop(make_window, qtbot):
    try:
        from mjpeg_server import MJPEGServer
    except ImportError:
        pytest.skip("tests/mjpeg_server.py not available")
    with MJPEGServer(frames_per_connection=40, connections=1, fps=50.0) as srv:
        w = make_window(source=srv.url)
        qtbot.waitUntil(lambda: w.frames_shown >= 5, timeout=WAIT)
        assert w.info.kind == "stream" and not w.seekbar.isEnabled()
        # the server closes the connection after 40 frames and refuses the next one
        qtbot.waitUntil(lambda: "Lost" in w.view.message, timeout=WAIT)
        w.close()
        assert running_threads() == []


def test_mjpeg_stream_that_drops_is_reconnected_through_streams(make_window, qtbot):
    """The viewer reconnects through kl_motion.streams.ReconnectingSource: frames of the second
    connection are shown and the 'Lost ... reconnecting' message goes away."""
    from mjpeg_server import MJPEGServer
    from kl_motion.streams import ReconnectingSource
    with MJPEGServer(frames_per_connection=30, connections=2, fps=50.0) as srv:
        w = make_window(source=srv.url)
        qtbot.waitUntil(lambda: w.frames_shown >= 3, timeout=WAIT)
        assert isinstance(w.worker.source, ReconnectingSource)
        said = []
        w.worker.message.connect(said.append)
        qtbot.waitUntil(lambda: srv.connections >= 2 and w.worker.source.reconnects == 1, timeout=WAIT)
        n = w.frames_shown
        qtbot.waitUntil(lambda: w.frames_shown > n + 3, timeout=WAIT)    # frames of the second connection
        assert any(m.startswith("Lost") and "reconnecting" in m for m in said)
        qtbot.waitUntil(lambda: w.view.message == "", timeout=WAIT)
        w.close()
        assert running_threads() == []


def test_keyboard_shortcuts(make_window, qtbot):
    w = make_window()
    pause_at(qtbot, w, 10)
    w.activateWindow()
    w.view.setFocus()
    pos = w.packet.position
    qtbot.keyClick(w, Qt.Key_Right)                 # step
    qtbot.waitUntil(lambda: w.packet.position == pos + 1, timeout=WAIT)
    qtbot.keyClick(w, Qt.Key_5)                     # grid view
    assert w.settings.mode == "grid" and w.mode_box.currentText().startswith("Grid")
    qtbot.keyClick(w, Qt.Key_Space)                 # play
    qtbot.waitUntil(lambda: w.worker.playing, timeout=WAIT)
    qtbot.keyClick(w, Qt.Key_Space)                 # pause
    qtbot.waitUntil(lambda: not w.worker.playing, timeout=WAIT)


def test_missing_camera_shows_message(make_window, qtbot):
    w = make_window(source=None)
    w.open_source(9)
    qtbot.waitUntil(lambda: "camera 9" in w.last_error, timeout=WAIT)
    assert "Cannot open" in w.view.message


def test_default_source_is_the_demo_without_camera(monkeypatch):
    from kl_motion.gui import app
    monkeypatch.setattr(app, "first_camera", lambda: None)
    assert app.default_source() == str(DEMO)
    monkeypatch.setattr(app, "first_camera", lambda: 0)
    assert app.default_source() == 0


def test_view_without_a_display_is_a_one_line_error():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    p = subprocess.run([sys.executable, "-m", "kl_motion", "view"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 2
    assert "no display" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_slow_first_frame_says_the_detector_is_compiling(make_window, qtbot, monkeypatch):
    import time

    from kl_motion import analyzer

    real = MotionModel.apply
    calls = []

    def slow_first(self, frame):                   # the first frame as slow as a numba compile
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.5)
        return real(self, frame)

    monkeypatch.setattr(analyzer, "COMPILE_NOTICE_SECONDS", 0.2)
    monkeypatch.setattr(MotionModel, "apply", slow_first)
    w = make_window()
    qtbot.waitUntil(lambda: "Compiling" in w.view.message, timeout=WAIT)
    qtbot.waitUntil(lambda: w.frames_shown >= 1 and w.view.message == "", timeout=WAIT)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_option_reaches_the_model(make_window, qtbot, monkeypatch, threads):
    """`kl-motion view --threads N`: the worker thread runs the model with N numba threads (numba's count
    is per calling thread, so it is read inside apply)."""
    import numba
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"numba's pool has {numba.config.NUMBA_NUM_THREADS} thread(s) here")
    seen = []
    real = MotionModel.apply

    def apply(self, frame):
        seen.append(numba.get_num_threads())
        return real(self, frame)

    monkeypatch.setattr(MotionModel, "apply", apply)
    w = make_window(threads=threads)
    wait_position(qtbot, w, 3)
    assert seen and set(seen) == {threads}, seen


# ---------------------------------------------------------------------------- events, timeline, detectors (issue 12)
def two_event_clip(path):
    """An MJPG .avi, 160x120 at 25 fps, 150 frames: a bright square moves during frames 25-44 and
    110-129 (2.6 s apart: two events with the default event_gap of 2 s)."""
    import cv2
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    rng = np.random.default_rng(0)
    for i in range(150):
        f = cv2.add(np.full((120, 160, 3), 90, np.uint8), rng.integers(0, 3, (120, 160, 3), dtype=np.uint8))
        for a in (25, 110):
            if a <= i < a + 20:
                x = 10 + 5 * (i - a)
                cv2.rectangle(f, (x, 40), (x + 30, 80), (250, 250, 250), -1)
        vw.write(f)
    vw.release()
    return path


def play_to_end(qtbot, w, last):
    qtbot.waitUntil(lambda: w.packet is not None and w.packet.position == last and not w.worker.playing,
                    timeout=4 * WAIT)
    qtbot.wait(50)                      # the end-of-input event signal is queued before the last state change


def span_runs(w) -> int:
    """Event spans painted on the timeline: runs of the span colour along its top band."""
    from kl_motion.gui.timeline import SPAN_COLOUR
    img = w.timeline.grab().toImage()
    runs, inside = 0, False
    for x in range(img.width()):
        c = img.pixelColor(x, 1)
        on = (c.red(), c.green(), c.blue()) == (SPAN_COLOUR.red(), SPAN_COLOUR.green(), SPAN_COLOUR.blue())
        runs += on and not inside
        inside = on
    return runs


def test_event_list_fills_and_a_click_seeks_to_the_event(make_window, qtbot):
    w = make_window()
    play_to_end(qtbot, w, 149)
    assert w.event_list.count() == len(w.event_items) == len(w.worker.events) >= 1
    item, ev = w.event_list.item(0), w.event_items[0].event
    assert not item.icon().isNull() and "peak" in item.text()       # thumbnail, start, duration, peak
    assert f"{ev.duration:.1f} s" in item.text()
    rect = w.event_list.visualItemRect(item)
    qtbot.mouseClick(w.event_list.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: w.packet.position == ev.start_frame - 1, timeout=WAIT)


def test_timeline_draws_one_span_per_event(make_window, qtbot, tmp_path):
    clip = two_event_clip(tmp_path / "two.avi")
    w = make_window(source=clip)
    play_to_end(qtbot, w, 149)
    assert [(e.event.start_frame // 10, e.event.end_frame // 10) for e in w.event_items] == [(2, 4), (11, 13)]
    assert span_runs(w) == 2 == w.timeline.spans_drawn
    assert np.isfinite(w.worker.timeline.fg).all() and np.isfinite(w.worker.timeline.kl).all()


def test_an_event_slider_change_alters_the_next_events(make_window, qtbot, tmp_path):
    """motion_area set with its spin box after the first event: the second motion makes no event."""
    clip = two_event_clip(tmp_path / "two.avi")
    w = make_window(source=clip, speed=0.5)            # half speed: the edit lands between the two motions
    qtbot.waitUntil(lambda: len(w.events_received) == 1, timeout=8 * WAIT)
    assert w.packet.position < 108
    w.controls.row("motion_area").spin.setValue(0.5)       # as a user does: through the widget
    assert w.params.motion_area == 0.5
    w.set_speed(0.0)
    play_to_end(qtbot, w, 149)
    assert len(w.events_received) == 1 and w.timeline.motion_area == 0.5


def test_switching_the_detector_keeps_the_video_playing(make_window, qtbot):
    from kl_motion.analyzer import OpenCVDetector
    w = make_window(speed=1.0)
    wait_position(qtbot, w, 10)
    pos = w.packet.position
    w.detector_box.setCurrentIndex(w.detector_box.findData("mog2"))
    assert w.detector_name == "mog2" and w.worker.playing
    qtbot.waitUntil(lambda: isinstance(w.worker.model, OpenCVDetector) and w.packet.result.kl is None, timeout=WAIT)
    p = w.packet.position
    qtbot.waitUntil(lambda: w.packet.position >= p + 5, timeout=WAIT)     # still playing, new frames
    assert w.worker.playing and w.packet.position > pos and w.last_error == ""
    w.set_mode("heatmap")                                  # no KL map: the view still draws
    qtbot.waitUntil(lambda: w.packet.image.shape == (240, 320, 3) and w.worker.playing, timeout=WAIT)


@pytest.mark.parametrize("clip", ["demo", "two"])
def test_viewer_and_process_give_the_same_events(make_window, qtbot, tmp_path, clip):
    from kl_motion.pipeline import Options, process_input
    src = DEMO if clip == "demo" else two_event_clip(tmp_path / "two.avi")
    rep = process_input(str(src), tmp_path / "out", Params(), Options())
    assert rep.status == "ok", rep.message
    lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    import json
    recs = [json.loads(x) for x in lines]
    extra = ("source", "type", "input", "tracks", "start_timecode", "end_timecode", "peak_timecode")
    want = [{k: v for k, v in r.items() if k not in extra} for r in recs if r["type"] == "end"]
    w = make_window(source=src)
    play_to_end(qtbot, w, rep.frames - 1)
    got = [e.event.to_dict() for e in w.events_received]
    assert want and got == want


def test_timeline_of_a_long_clip_draws_column_maxima(qtbot):
    """A 20000-frame clip: the curves are the maximum per pixel column (a one-frame spike stays
    visible), and each event span is painted once."""
    from kl_motion.gui.timeline import MotionTimeline, _col_max
    from kl_motion.gui.worker import TimelineData
    v = np.array([1, np.nan, 3, np.nan, np.nan, 2], np.float32)
    assert np.allclose(_col_max(v, np.array([0, 2, 3, 5])), [1, 3, np.nan, 2], equal_nan=True)
    d = TimelineData(20000)
    for i in range(1, 20001):
        d.put(i, 0.0, 1.0)
    d.put(12345, 0.5, 1.0)                      # one frame of motion (KL flat: its line stays low)
    t = MotionTimeline()
    qtbot.addWidget(t)
    t.resize(600, 60)
    t.set_data(d)
    t.set_spans([(100, 300), (12000, 12400)])
    t.show()
    img = t.grab().toImage()
    assert t.spans_drawn == 2
    x = int(t.x_of(12345))
    def red_rows(x):                            # the fg area's red, down the column (the dashed line is 1 px)
        return max(sum(img.pixelColor(x + dx, y).red() > 120 and img.pixelColor(x + dx, y).green() < 110
                       for y in range(8, 58)) for dx in (-1, 0, 1))
    assert red_rows(x) >= 15 and red_rows(int(t.x_of(5000))) <= 2    # the spike rises in its column, elsewhere flat
