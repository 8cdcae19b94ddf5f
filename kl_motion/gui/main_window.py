"""The viewer's main window: video, parameter panel, playback, record/snapshot/presets, zones."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import cv2
from PySide6.QtCore import Qt, QTimer, QSignalBlocker
from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QColor, QIcon, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QComboBox, QDockWidget, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QInputDialog, QLabel, QListWidget, QListWidgetItem,
                               QMainWindow, QMessageBox, QPushButton, QScrollArea, QSlider, QStyle, QVBoxLayout,
                               QWidget)

from ..analyzer import detector_names, describe, make_detector
from ..errors import ParameterError, SourceError
from ..params import Params
from ..sources import VIDEO_EXTS, VideoInfo, demo_path as demo_sequence
from .compose import MODE_LABELS, MODES, ViewSettings
from .controls import ParamControls
from .timeline import MotionTimeline
from .video_view import VideoView
from .worker import THUMB_WIDTH, EventItem, Packet, Worker

SPEEDS = [("0.25x", 0.25), ("0.5x", 0.5), ("1x", 1.0), ("2x", 2.0), ("4x", 4.0), ("max", 0.0)]


def demo_path() -> Path | None:
    """The frames of the demo clip shipped inside the package, or None if it is missing."""
    try:
        return demo_sequence() / "input"
    except SourceError:
        return None


class MainWindow(QMainWindow):
    def __init__(self, params: Params | None = None, source=None, playing: bool = True, speed: float = 1.0,
                 settings: ViewSettings | None = None, parent=None, threads: int | None = None):
        super().__init__(parent)
        self.model_threads = threads        # numba threads for the model (--threads); None: worker.model_threads()
        self.setWindowTitle("kl-motion viewer")
        self.detector_name = "kl_motion"
        self.model = make_detector(self.detector_name, params or Params())   # the detector in use
        self.compare_name = "mog2"           # shown beside it in the 2x2 grid ("" = the background)
        self._compare = None
        self.event_items: list[EventItem] = []       # the list's events, by start (a replay replaces them)
        self.events_received: list[EventItem] = []   # every event the worker reported, in order
        self._timeline_t = 0.0
        self.settings = settings or ViewSettings()
        self.worker: Worker | None = None
        self.info: VideoInfo | None = None
        self.packet: Packet | None = None
        self._speed = speed
        self._start_playing = playing
        self._hover: tuple[float, float] | None = None
        self._shown_times: deque[float] = deque(maxlen=240)
        self._last_frame_time = time.perf_counter()
        self._closing = False
        self.frames_shown = 0
        self.last_error = ""

        self.view = VideoView(self)
        self.view.hovered.connect(self._on_hover)
        self.view.zoneFinished.connect(self._on_zone)
        self.view.drawingChanged.connect(lambda k: self._zone_buttons_state(k))

        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.view, 1)
        lay.addWidget(self._build_playbar())
        self.timeline = MotionTimeline(central)
        self.timeline.seekRequested.connect(self.seek)
        lay.addWidget(self.timeline)
        self.setCentralWidget(central)

        self.controls = ParamControls(self.model.params)
        self.controls.paramChanged.connect(self._on_param_edit)
        self._build_dock()
        self._build_actions()
        self._build_status()
        self.view.set_zones(self.model.params.ignore_zones, self.model.params.include_zones)

        self._tick = QTimer(self)
        self._tick.setInterval(500)
        self._tick.timeout.connect(self._update_status)
        self._tick.start()
        self.resize(1280, 760)
        if source is not None:
            self.open_source(source)

    # ================================================================== building
    def _build_playbar(self) -> QWidget:
        w = QWidget(self)
        h = QHBoxLayout(w)
        h.setContentsMargins(6, 0, 6, 2)
        st = self.style()
        self.btn_play = QPushButton(st.standardIcon(QStyle.SP_MediaPause), "", w)
        self.btn_play.setToolTip("Play / pause (Space)")
        self.btn_play.clicked.connect(self.toggle_play)
        self.btn_back = QPushButton(st.standardIcon(QStyle.SP_MediaSeekBackward), "", w)
        self.btn_back.setToolTip("Step back one frame (Left)")
        self.btn_back.clicked.connect(lambda: self.step(-1))
        self.btn_step = QPushButton(st.standardIcon(QStyle.SP_MediaSeekForward), "", w)
        self.btn_step.setToolTip("Step one frame (Right)")
        self.btn_step.clicked.connect(lambda: self.step(1))
        self.seekbar = QSlider(Qt.Horizontal, w)
        self.seekbar.setToolTip("Seek (Home: start, PgUp/PgDn: 10 s)")
        self.seekbar.setRange(0, 0)
        self.seekbar.sliderReleased.connect(lambda: self.seek(self.seekbar.value()))
        self.seekbar.actionTriggered.connect(self._seekbar_action)
        self.pos_label = QLabel("-", w)
        self.pos_label.setMinimumWidth(110)
        self.speed_box = QComboBox(w)
        self.speed_box.setToolTip("Playback speed for files ([ and ])")
        for label, v in SPEEDS:
            self.speed_box.addItem(label, v)
        self.speed_box.setCurrentIndex([v for _, v in SPEEDS].index(self._speed) if self._speed in
                                       [v for _, v in SPEEDS] else 2)
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(self.speed_box.itemData(i)))
        for b in (self.btn_back, self.btn_play, self.btn_step):
            b.setFocusPolicy(Qt.NoFocus)
            h.addWidget(b)
        h.addWidget(self.seekbar, 1)
        h.addWidget(self.pos_label)
        h.addWidget(QLabel("Speed", w))
        h.addWidget(self.speed_box)
        return w

    def _build_dock(self):
        panel = QWidget()
        v = QVBoxLayout(panel)
        v.setContentsMargins(0, 0, 0, 0)
        # display settings
        disp = QWidget(panel)
        f = QFormLayout(disp)
        f.setContentsMargins(8, 6, 8, 2)
        self.mode_box = QComboBox(disp)
        for m in MODES:
            self.mode_box.addItem(MODE_LABELS[m], m)
        self.mode_box.setCurrentIndex(MODES.index(self.settings.mode))
        self.mode_box.currentIndexChanged.connect(lambda i: self.set_mode(MODES[i]))
        f.addRow("View", self.mode_box)
        tint = QWidget(disp)
        th = QHBoxLayout(tint)
        th.setContentsMargins(0, 0, 0, 0)
        self.color_btn = QPushButton(tint)
        self.color_btn.setToolTip("Tint colour of moving pixels")
        self.color_btn.setFixedWidth(36)
        self.color_btn.clicked.connect(self._pick_color)
        self.opacity = QSlider(Qt.Horizontal, tint)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(self.settings.opacity * 100)))
        self.opacity.setToolTip("Tint opacity")
        self.opacity.valueChanged.connect(lambda v: self.set_view(opacity=v / 100.0))
        th.addWidget(self.color_btn)
        th.addWidget(self.opacity, 1)
        f.addRow("Tint", tint)
        marks = QWidget(disp)
        mh = QHBoxLayout(marks)
        mh.setContentsMargins(0, 0, 0, 0)
        self.outlines_box = QCheckBox("Outlines", marks)
        self.outlines_box.setChecked(self.settings.outlines)
        self.outlines_box.toggled.connect(lambda b: self.set_view(outlines=b))
        self.boxes_box = QCheckBox("Boxes", marks)
        self.boxes_box.setChecked(self.settings.boxes)
        self.boxes_box.toggled.connect(lambda b: self.set_view(boxes=b))
        mh.addWidget(self.outlines_box)
        mh.addWidget(self.boxes_box)
        mh.addStretch(1)
        f.addRow("Marks", marks)
        self.vmax_box = QDoubleSpinBox(disp)
        self.vmax_box.setRange(0.5, 1000.0)
        self.vmax_box.setDecimals(1)
        self.vmax_box.setValue(self.settings.heat_vmax)
        self.vmax_box.setToolTip("KL value shown as the top of the heat map's colour scale")
        self.vmax_box.valueChanged.connect(lambda x: self.set_view(heat_vmax=float(x)))
        f.addRow("Heat max", self.vmax_box)
        names = detector_names()
        self.detector_box = QComboBox(disp)
        self.compare_box = QComboBox(disp)
        self.compare_box.addItem("(background)", "")
        for n in names:
            self.detector_box.addItem(n, n)
            self.detector_box.setItemData(self.detector_box.count() - 1, describe(n), Qt.ToolTipRole)
            self.compare_box.addItem(n, n)
            self.compare_box.setItemData(self.compare_box.count() - 1, describe(n), Qt.ToolTipRole)
        self.detector_box.setToolTip("The detector that makes the mask and the events")
        self.compare_box.setToolTip("The detector shown in the grid's fourth tile, on the same frames")
        self.detector_box.setCurrentIndex(names.index(self.detector_name))
        self.compare_box.setCurrentIndex(self.compare_box.findData(self.compare_name))
        self.detector_box.currentIndexChanged.connect(lambda i: self.set_detector(self.detector_box.itemData(i)))
        self.compare_box.currentIndexChanged.connect(lambda i: self.set_compare(self.compare_box.itemData(i)))
        f.addRow("Detector", self.detector_box)
        f.addRow("Grid: compare", self.compare_box)
        self._color_swatch()
        v.addWidget(disp)
        # buttons
        row = QWidget(panel)
        rh = QHBoxLayout(row)
        rh.setContentsMargins(8, 0, 8, 0)
        self.btn_reset = QPushButton("Reset background", row)
        self.btn_reset.setToolTip("Forget the learned background and start again (R)")
        self.btn_reset.clicked.connect(self.reset_background)
        self.btn_defaults = QPushButton("Defaults", row)
        self.btn_defaults.setToolTip("Set every parameter back to its default (zones are kept)")
        self.btn_defaults.clicked.connect(self.restore_defaults)
        rh.addWidget(self.btn_reset)
        rh.addWidget(self.btn_defaults)
        v.addWidget(row)
        # zones
        zrow = QWidget(panel)
        zh = QHBoxLayout(zrow)
        zh.setContentsMargins(8, 0, 8, 0)
        self.btn_ignore = QPushButton("Ignore zone", zrow)
        self.btn_ignore.setCheckable(True)
        self.btn_ignore.setToolTip("Draw a polygon where motion is ignored (I)")
        self.btn_ignore.clicked.connect(lambda on: self.draw_zone("ignore") if on else self.view.cancel_drawing())
        self.btn_include = QPushButton("Include zone", zrow)
        self.btn_include.setCheckable(True)
        self.btn_include.setToolTip("Draw a polygon; only motion inside include zones counts (N)")
        self.btn_include.clicked.connect(lambda on: self.draw_zone("include") if on else self.view.cancel_drawing())
        self.btn_clear_zones = QPushButton("Clear", zrow)
        self.btn_clear_zones.setToolTip("Remove every zone")
        self.btn_clear_zones.clicked.connect(self.clear_zones)
        for b in (self.btn_ignore, self.btn_include, self.btn_clear_zones):
            zh.addWidget(b)
        v.addWidget(zrow)
        scroll = QScrollArea(panel)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        v.addWidget(scroll, 1)
        self.dock = QDockWidget("Controls", self)
        self.dock.setObjectName("controls")
        self.dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.dock.setWidget(panel)
        panel.setMinimumWidth(360)
        self.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        # the event list
        self.event_list = QListWidget(self)
        self.event_list.setIconSize(QSize(THUMB_WIDTH, THUMB_WIDTH * 3 // 4))
        self.event_list.setToolTip("Motion events (start, duration, peak area); click one to go to its start")
        self.event_list.itemClicked.connect(self._on_event_clicked)
        self.event_list.itemActivated.connect(self._on_event_clicked)
        self.events_dock = QDockWidget("Events", self)
        self.events_dock.setObjectName("events")
        self.events_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.events_dock.setWidget(self.event_list)
        self.addDockWidget(Qt.RightDockWidgetArea, self.events_dock)
        self.splitDockWidget(self.dock, self.events_dock, Qt.Vertical)

    def _act(self, menu, text, slot, shortcut=None, tip=None, checkable=False):
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.WindowShortcut)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip + (f" ({QKeySequence(shortcut).toString()})" if shortcut else ""))
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda checked=False: slot())
        if menu is not None:
            menu.addAction(a)
        self.addAction(a)
        return a

    def _build_actions(self):
        mb = self.menuBar()
        m = mb.addMenu("&Source")
        self.act_open = self._act(m, "Open &file...", self.pick_file, "Ctrl+O", "Open a video file")
        self._act(m, "Open image f&older...", self.pick_folder, "Ctrl+Shift+O", "Open a folder of images")
        self._act(m, "&Camera...", self.pick_camera, "Ctrl+K", "Open a camera by index")
        self._act(m, "&URL...", self.pick_url, "Ctrl+U", "Open a stream URL (rtsp://, http://...)")
        self._act(m, "&Demo clip", self.open_demo, None, "Open the bundled demo clip")
        m.addSeparator()
        self.act_snapshot = self._act(m, "Save &snapshot...", lambda: self.save_snapshot(), "Ctrl+S",
                                      "Save the shown image as PNG")
        self.act_record = self._act(m, "&Record...", self._toggle_record, "Ctrl+R",
                                    "Record the shown video to a file", checkable=True)
        m.addSeparator()
        self._act(m, "&Quit", self.close, "Ctrl+Q")
        m = mb.addMenu("&Preset")
        self._act(m, "&Load preset...", lambda: self.load_preset(), "Ctrl+P", "Load parameters from a TOML file")
        self._act(m, "&Save preset...", lambda: self.save_preset(), "Ctrl+Shift+S",
                  "Save parameters (with zones) to a TOML file the CLI reads")
        m = mb.addMenu("&View")
        self.mode_actions = []
        for i, mode in enumerate(MODES):
            a = self._act(m, MODE_LABELS[mode], lambda mode=mode: self.set_mode(mode), str(i + 1))
            self.mode_actions.append(a)
        m.addSeparator()
        self._act(m, "Toggle &outlines", lambda: self.outlines_box.toggle(), "O")
        self._act(m, "Toggle &boxes", lambda: self.boxes_box.toggle(), "B")
        self._act(m, "&Full screen", self._toggle_fullscreen, "F11")
        m = mb.addMenu("P&layback")
        self._act(m, "&Play / pause", self.toggle_play, "Space")
        self._act(m, "Step &forward", lambda: self.step(1), "Right")
        self._act(m, "Step &back", lambda: self.step(-1), "Left")
        self._act(m, "Back 10 s", lambda: self._jump(-10), "PgUp")
        self._act(m, "Forward 10 s", lambda: self._jump(10), "PgDown")
        self._act(m, "&Restart", lambda: self.seek(0), "Home")
        self._act(m, "&Slower", lambda: self._speed_step(-1), "[")
        self._act(m, "&Faster", lambda: self._speed_step(1), "]")
        self._act(m, "Reset &background", self.reset_background, "R")
        m = mb.addMenu("&Zones")
        self._act(m, "Draw &ignore zone", lambda: self.draw_zone("ignore"), "I")
        self._act(m, "Draw i&nclude zone", lambda: self.draw_zone("include"), "N")
        self._act(m, "&Remove last zone", self.remove_last_zone, "Ctrl+Z")
        self._act(m, "&Clear zones", self.clear_zones)
        self._act(m, "Cancel drawing", self.view.cancel_drawing, "Esc")
        m = mb.addMenu("&Help")
        self._act(m, "&Keyboard shortcuts", self._show_help, "F1")

    def _build_status(self):
        sb = self.statusBar()
        self.st_source = QLabel("-")
        self.st_proc = QLabel("-")
        self.st_disp = QLabel("-")
        self.st_fg = QLabel("-")
        self.st_hover = QLabel("")
        self.st_rec = QLabel("")
        self.st_rec.setStyleSheet("color: #d22; font-weight: bold;")
        for w, tip in ((self.st_source, "Source frame rate"),
                       (self.st_proc, "Processing time per frame (model / total incl. reading and drawing)"),
                       (self.st_disp, "Frames painted per second"), (self.st_fg, "Foreground pixels"),
                       (self.st_hover, "KL value under the mouse"), (self.st_rec, "")):
            w.setToolTip(tip)
            sb.addPermanentWidget(w)

    # ================================================================== sources
    def open_source(self, spec) -> None:
        """Open a camera index, file, image folder or URL (in the worker thread; errors show in the window)."""
        # the old worker gets a short grace period only: one stuck opening a dead URL must not
        # freeze the window (its signals are disconnected and it has its own model)
        self._stop_worker(timeout=0.5)
        self.packet = None
        self.info = None
        self.last_error = ""
        self.view.set_image(None)
        name = getattr(getattr(spec, "info", None), "name", spec)
        self.view.set_message(f"Opening {name} ...")
        self.setWindowTitle(f"kl-motion viewer - {name}")
        self.model = make_detector(self.detector_name, self.model.params)
        w = Worker(spec, self.model, self.settings, playing=self._start_playing, speed=self._speed,
                   stall_timeout=self.stall_timeout)
        w.model_threads = self.model_threads
        w.detector_name = self.detector_name
        self._compare = make_detector(self.compare_name, self.model.params) if self.compare_name else None
        w.set_compare(self._compare, self.compare_name)
        w.eventEnded.connect(self._on_event)
        self.event_items.clear()
        self.events_received.clear()
        self.event_list.clear()
        self.timeline.set_data(None)
        self.timeline.set_thresholds(self.model.params.motion_area, self.model.params.kl_threshold)
        w.opened.connect(self._on_opened)
        w.failed.connect(self._on_failed)
        w.frameReady.connect(self._on_frame)
        w.message.connect(self._on_message)
        w.stateChanged.connect(self._on_play_state)
        w.recordingChanged.connect(self._on_recording)
        self.worker = w
        self._last_frame_time = time.perf_counter()
        self._on_play_state(self._start_playing)
        w.start()

    def _stop_worker(self, timeout: float = 3.0) -> bool:
        w, self.worker = self.worker, None
        if w is None:
            return True
        for sig in (w.opened, w.failed, w.frameReady, w.message, w.stateChanged, w.recordingChanged, w.eventEnded):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):
                pass
        ok = w.stop(timeout)
        if self.act_record.isChecked():
            with QSignalBlocker(self.act_record):
                self.act_record.setChecked(False)
            self.st_rec.setText("")
        return ok

    def open_demo(self):
        p = demo_path()
        if p is None:
            self._on_failed("the demo clip is not installed with this package")
        else:
            self.open_source(str(p))

    def pick_file(self):
        exts = " ".join(f"*{e}" for e in sorted(VIDEO_EXTS))
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", f"Videos ({exts});;All files (*)")
        if path:
            self.open_source(path)

    def pick_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Open image folder")
        if path:
            self.open_source(path)

    def pick_camera(self):
        idx, ok = QInputDialog.getInt(self, "Camera", "Camera index:", 0, 0, 63)
        if ok:
            self.open_source(int(idx))

    def pick_url(self):
        url, ok = QInputDialog.getText(self, "Stream URL", "URL (rtsp://, http://, ...):")
        if ok and url.strip():
            self.open_source(url.strip())

    # ================================================================== worker signals
    def _on_opened(self, info: VideoInfo):
        self.info = info
        if self.worker is not None:
            self.timeline.set_data(self.worker.timeline)
        self.view.set_message("")
        self.last_error = ""
        seekable = info.seekable and bool(info.total_frames)
        self.seekbar.setEnabled(seekable)
        self.seekbar.setRange(0, max(0, (info.total_frames or 1) - 1))
        for wdg in (self.btn_back, self.btn_step, self.speed_box):
            wdg.setEnabled(info.seekable)
        self.setWindowTitle(f"kl-motion viewer - {Path(info.name).name or info.name} "
                            f"({info.width}x{info.height}, {info.kind})")

    def _on_failed(self, msg: str):
        self.last_error = msg
        self.view.set_image(None)
        self.view.set_message(f"Cannot open source:\n{msg}\n\nUse the Source menu to open another one.")
        self.statusBar().showMessage(msg, 10000)

    def _on_message(self, msg: str):
        if msg == "End of video":
            self.statusBar().showMessage("End of video - Home restarts", 5000)
            return
        self.view.set_message(msg)
        if msg:
            self.statusBar().showMessage(msg, 5000)

    def _on_play_state(self, playing: bool):
        # nearest-neighbour scaling while playing (about 4x cheaper to paint), smooth when paused
        self.view.smooth = not playing
        self.view.update()
        st = self.style()
        self.btn_play.setIcon(st.standardIcon(QStyle.SP_MediaPause if playing else QStyle.SP_MediaPlay))

    def _on_recording(self, path: str):
        self.st_rec.setText(f"REC {Path(path).name}" if path else "")
        with QSignalBlocker(self.act_record):
            self.act_record.setChecked(bool(path))

    def _on_frame(self):
        w = self.worker
        if w is None:
            return
        p = w.take()
        if p is None:
            return
        self.packet = p
        self.view.set_image(p.image, grid=self.settings.mode == "grid" and p.image.shape[:2] == p.frame.shape[:2])
        now = time.perf_counter()
        self._shown_times.append(now)
        self._last_frame_time = now
        self.frames_shown += 1
        if p.position >= 0 and not self.seekbar.isSliderDown():
            with QSignalBlocker(self.seekbar):
                self.seekbar.setValue(p.position)
        self.timeline.set_position(p.position)
        if now - self._timeline_t > 0.1:          # the curves: redrawn at most 10 times a second
            self._timeline_t = now
            self.timeline.update()
        if self._hover is not None:
            self._show_hover()

    # ================================================================== status
    @property
    def displayed_fps(self) -> float:
        t = self._shown_times
        now = time.perf_counter()
        recent = [x for x in t if now - x <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def _update_status(self):
        info, p, w = self.info, self.packet, self.worker
        if info is not None:
            src_fps = info.fps
            if w is not None and w._grabber is not None and w._grabber.fps:
                src_fps = w._grabber.fps
            self.st_source.setText(f"{info.width}x{info.height} @ {src_fps:.1f} fps")
            if info.total_frames and p is not None and p.position >= 0:
                self.pos_label.setText(f"{p.position + 1} / {info.total_frames}")
            elif p is not None:
                self.pos_label.setText(f"frame {p.result.index}")
        if p is not None:
            if p.model_ms > 0:
                self.st_proc.setText(f"model {p.model_ms:.1f} ms | total {p.total_ms:.1f} ms")
            self.st_fg.setText(f"fg {100.0 * p.result.fg_fraction:.2f}%")
        playing = w is not None and w.playing
        self.st_disp.setText(f"display {self.displayed_fps:.1f} fps" if playing else "paused")
        # a live source that stopped delivering: say so (the worker says it too, this catches a blocked read)
        if (w is not None and w.live and playing and not self.view.message
                and time.perf_counter() - self._last_frame_time > max(3.0, w.stall_timeout)):
            self.view.set_message(f"No new frames from {info.name if info else 'the source'} "
                                  f"for {time.perf_counter() - self._last_frame_time:.0f} s")
        elif self.view.message.startswith("No new frames") and time.perf_counter() - self._last_frame_time < 1:
            self.view.set_message("")

    def _on_hover(self, fx: float, fy: float):
        self._hover = None if fx < 0 else (fx, fy)
        self._show_hover()

    def _show_hover(self):
        p = self.packet
        if self._hover is None or p is None:
            self.st_hover.setText("")
            return
        H, W = p.result.kl.shape
        x = min(int(self._hover[0] * W), W - 1)
        y = min(int(self._hover[1] * H), H - 1)
        m = int(p.result.mask[y, x])
        what = {255: "motion", 127: "shadow"}.get(m, "background")
        self.st_hover.setText(f"({x}, {y}) KL {float(p.result.kl[y, x]):.2f} {what}")

    def hover_text(self) -> str:
        return self.st_hover.text()

    # ================================================================== playback
    def toggle_play(self):
        if self.worker is not None:
            self.worker.set_playing(not self.worker.playing)

    def set_playing(self, playing: bool):
        if self.worker is not None:
            self.worker.set_playing(playing)

    def step(self, n: int = 1):
        w = self.worker
        if w is None or w.live:
            return
        if w.playing:
            w.set_playing(False)
        w.step(n)

    def seek(self, index: int):
        w = self.worker
        if w is None or w.live:
            return
        w.seek(index)

    def _seekbar_action(self, action):
        # clicks on the groove / keyboard on the slider (dragging is handled on release)
        if not self.seekbar.isSliderDown():
            QTimer.singleShot(0, lambda: self.seek(self.seekbar.sliderPosition()))

    def _jump(self, seconds: float):
        if self.packet is not None and self.info is not None and self.packet.position >= 0:
            self.seek(max(0, self.packet.position + int(seconds * self.info.fps)))

    def set_speed(self, speed: float):
        self._speed = float(speed)
        if self.worker is not None:
            self.worker.speed = self._speed
            self.worker._wake.set()
        vals = [v for _, v in SPEEDS]
        if self._speed in vals and self.speed_box.currentIndex() != vals.index(self._speed):
            with QSignalBlocker(self.speed_box):
                self.speed_box.setCurrentIndex(vals.index(self._speed))

    def _speed_step(self, d: int):
        i = min(max(self.speed_box.currentIndex() + d, 0), len(SPEEDS) - 1)
        self.speed_box.setCurrentIndex(i)

    def reset_background(self):
        if self.worker is not None:
            self.worker.reset_background()
            self._refresh_if_paused()
        self.statusBar().showMessage("Background reset", 2000)

    # ================================================================== parameters (two-way binding)
    def _on_param_edit(self, name: str, value):
        try:
            self.model.set_params(**{name: value})
        except ParameterError as e:
            self.statusBar().showMessage(str(e), 6000)
            self.controls.set_params(self.model.params)   # put the widget back
            return
        self._params_changed()
        self._refresh_if_paused()

    def _params_changed(self):
        """Parameters took a new value: the grid's second detector and the timeline's lines follow."""
        p = self.model.params
        if self._compare is not None:
            self._compare.params = p
        self.timeline.set_thresholds(p.motion_area, p.kl_threshold)

    # ================================================================== detectors
    def set_detector(self, name: str):
        """Run another detector of the registry (kl_motion, mog2, knn, ...) from the next frame on;
        playback goes on, the parameters are kept."""
        if name == self.detector_name:
            return
        det = make_detector(name, self.model.params)
        self.detector_name, self.model = name, det
        if self.detector_box.currentData() != name:
            with QSignalBlocker(self.detector_box):
                self.detector_box.setCurrentIndex(self.detector_box.findData(name))
        if self.worker is not None:
            self.worker.set_detector(det, name)
        self.statusBar().showMessage(f"Detector: {describe(name)}", 4000)
        self._refresh_if_paused()

    def set_compare(self, name: str):
        """The detector shown in the grid's fourth tile ("" = the background image)."""
        self.compare_name = name or ""
        if self.compare_box.currentData() != self.compare_name:
            with QSignalBlocker(self.compare_box):
                self.compare_box.setCurrentIndex(self.compare_box.findData(self.compare_name))
        self._compare = make_detector(name, self.model.params) if name else None
        if self.worker is not None:
            self.worker.set_compare(self._compare, self.compare_name)
        self._refresh_if_paused()

    # ================================================================== events
    def _on_event(self, item: EventItem):
        """An event ended (worker): into the list, replacing those it overlaps (a replay after a seek)."""
        self.events_received.append(item)
        ev = item.event
        self.event_items = [e for e in self.event_items
                            if e.event.end_frame < ev.start_frame or e.event.start_frame > ev.end_frame]
        self.event_items.append(item)
        self.event_items.sort(key=lambda e: e.event.start_frame)
        self._fill_event_list()

    def _fill_event_list(self):
        self.event_list.clear()
        for k, item in enumerate(self.event_items, 1):
            ev = item.event
            m, s = divmod(ev.start_time, 60.0)
            li = QListWidgetItem(f"#{k}  {int(m):02d}:{s:05.2f}   {ev.duration:.1f} s\npeak {100 * ev.peak_area:.2f}% "
                                 f"at frame {ev.peak_frame}")
            li.setToolTip(f"frames {ev.start_frame}-{ev.end_frame}, peak {ev.peak_pixels} px at frame "
                          f"{ev.peak_frame}, box {ev.box}")
            li.setData(Qt.UserRole, ev.start_frame)
            if item.thumb is not None:
                t = item.thumb
                img = QImage(t.data, t.shape[1], t.shape[0], t.strides[0], QImage.Format_BGR888).copy()
                li.setIcon(QIcon(QPixmap.fromImage(img)))
            self.event_list.addItem(li)
        self.timeline.set_spans([(e.event.start_frame, e.event.end_frame) for e in self.event_items])

    def _on_event_clicked(self, li: QListWidgetItem):
        """Go to the start of the event (frame numbers are 1-based, positions 0-based)."""
        self.seek(max(0, int(li.data(Qt.UserRole)) - 1))

    def set_params(self, params: Params | None = None, **changes) -> Params:
        """Change parameters from code (preset, zones, tests); the panel follows without echo."""
        if params is not None:
            self.model.params = params
        if changes:
            self.model.set_params(**changes)
        p = self.model.params
        self.controls.set_params(p)
        self.view.set_zones(p.ignore_zones, p.include_zones)
        self._params_changed()
        self._refresh_if_paused()
        return p

    @property
    def params(self) -> Params:
        return self.model.params

    def restore_defaults(self):
        p = self.model.params
        self.set_params(Params().replace(ignore_zones=p.ignore_zones, include_zones=p.include_zones,
                                         zone_mask=p.zone_mask))

    def _refresh_if_paused(self):
        """While paused, re-run the shown frame so a change is visible at once."""
        w = self.worker
        if w is not None and not w.playing and not w.live and w.position >= 0:
            w.seek(w.position)

    # ================================================================== presets
    def save_preset(self, path: str | None = None) -> str | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save preset", "kl-motion.toml", "TOML (*.toml)")
            if not path:
                return None
        try:
            self.model.params.save(path)
        except OSError as e:
            self._error(f"Cannot save preset {path}: {e}")
            return None
        self.statusBar().showMessage(f"Saved preset {path}", 4000)
        return path

    def load_preset(self, path: str | None = None) -> Params | None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load preset", "", "TOML (*.toml);;All files (*)")
            if not path:
                return None
        try:
            p = Params.load(path)
        except (ParameterError, OSError) as e:
            self._error(str(e))
            return None
        self.set_params(p)
        self.statusBar().showMessage(f"Loaded preset {path}", 4000)
        return p

    def _error(self, msg: str):
        self.last_error = msg
        self.statusBar().showMessage(msg, 8000)
        if not self.testing:
            QMessageBox.warning(self, "kl-motion", msg)

    testing = False       # tests set this to avoid modal dialogs
    stall_timeout = 3.0   # seconds without a frame before a live source is reported as stalled

    # ================================================================== snapshot / record
    def save_snapshot(self, path: str | None = None) -> str | None:
        p = self.packet
        if p is None:
            self.statusBar().showMessage("Nothing to save yet", 3000)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", f"kl-motion-{p.result.index:06d}.png",
                                                  "PNG (*.png)")
            if not path:
                return None
        if not cv2.imwrite(str(path), p.image):
            self._error(f"Cannot write {path}")
            return None
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return path

    def _toggle_record(self, on: bool):
        if on:
            if self.start_recording() is None:
                with QSignalBlocker(self.act_record):
                    self.act_record.setChecked(False)
        else:
            self.stop_recording()

    def start_recording(self, path: str | None = None) -> str | None:
        if self.worker is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Record to", "kl-motion-record.mp4",
                                                  "MP4 (*.mp4);;MJPEG AVI (*.avi)")
            if not path:
                return None
        self.worker.start_recording(path)
        return path

    def stop_recording(self):
        if self.worker is not None:
            self.worker.stop_recording()

    # ================================================================== view settings
    def set_view(self, **changes):
        from dataclasses import replace
        self.settings = replace(self.settings, **changes)
        if self.worker is not None:
            self.worker.set_settings(self.settings)

    def set_mode(self, mode: str):
        if mode not in MODES:
            raise ValueError(mode)
        if self.mode_box.currentIndex() != MODES.index(mode):
            with QSignalBlocker(self.mode_box):
                self.mode_box.setCurrentIndex(MODES.index(mode))
        self.set_view(mode=mode)

    def _pick_color(self):
        b, g, r = self.settings.color
        c = QColorDialog.getColor(QColor(r, g, b), self, "Tint colour")
        if c.isValid():
            self.set_view(color=(c.blue(), c.green(), c.red()))
            self._color_swatch()

    def _color_swatch(self):
        b, g, r = self.settings.color
        self.color_btn.setStyleSheet(f"background-color: rgb({r},{g},{b});")

    def _toggle_fullscreen(self):
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # ================================================================== zones
    def draw_zone(self, kind: str):
        self.view.start_drawing(kind)

    def _zone_buttons_state(self, kind: str):
        with QSignalBlocker(self.btn_ignore), QSignalBlocker(self.btn_include):
            self.btn_ignore.setChecked(kind == "ignore")
            self.btn_include.setChecked(kind == "include")

    def _on_zone(self, kind: str, pts: list):
        p = self.model.params
        key = "ignore_zones" if kind == "ignore" else "include_zones"
        try:
            self.set_params(**{key: list(getattr(p, key)) + [pts]})
        except ParameterError as e:
            self._error(str(e))

    def remove_last_zone(self):
        p = self.model.params
        if p.include_zones:
            self.set_params(include_zones=p.include_zones[:-1])
        elif p.ignore_zones:
            self.set_params(ignore_zones=p.ignore_zones[:-1])

    def clear_zones(self):
        self.view.cancel_drawing()
        self.set_params(ignore_zones=[], include_zones=[])

    # ================================================================== help / close
    def _show_help(self):
        lines = [f"{a.shortcut().toString():>14}  {a.text().replace('&', '')}" for a in self.actions()
                 if not a.shortcut().isEmpty()]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

    def shutdown(self) -> bool:
        """Stop every thread (worker, grabber, recorder). True when all have ended."""
        self._tick.stop()
        return self._stop_worker()

    def closeEvent(self, ev):
        self._closing = True
        self.shutdown()
        super().closeEvent(ev)
