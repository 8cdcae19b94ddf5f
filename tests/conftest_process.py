"""Helpers for the `kl-motion process` tests: tiny videos and running the real command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

W, H, FPS = 160, 120, 25.0
# KL_MOTION_TEST_METHOD=mog2 runs the same tests through OpenCV MOG2 (while the kernel is being changed)
METHOD = os.environ.get("KL_MOTION_TEST_METHOD", "")


def make_video(path: Path, n: int = 60, moving=(20, 40), light_at: int | None = None, grey_value: int = 90,
               size=(W, H), fourcc: str = "MJPG") -> Path:
    """An MJPG .avi: flat grey with a bright square moving during frames [moving[0], moving[1])
    and, from ``light_at`` on, the whole picture brighter (a light switch)."""
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (w, h))
    assert vw.isOpened()
    rng = np.random.default_rng(0)
    for i in range(n):
        f = np.full((h, w, 3), grey_value, np.uint8)
        if grey_value != 90 or light_at is not None:
            pass
        f = cv2.add(f, rng.integers(0, 3, f.shape, dtype=np.uint8))   # a little sensor noise
        if light_at is not None and i >= light_at:
            f = cv2.add(f, np.full_like(f, 70))
        if moving and moving[0] <= i < moving[1]:
            x = 10 + 3 * (i - moving[0])
            cv2.rectangle(f, (x, 40), (x + 30, 80), (250, 250, 250), -1)
        vw.write(f)
    vw.release()
    return path


def run_process(*args, timeout: float = 120, method: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kl_motion", "process", *map(str, args)]
    if METHOD and method:
        cmd += ["--method", METHOD]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("KL_MOTION_DEBUG", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def video_frames(path: Path, api: int = cv2.CAP_ANY) -> list[np.ndarray]:
    """Every frame of a video file, decoded (BGR); api: OpenCV's backend (e.g. cv2.CAP_FFMPEG)."""
    cap = cv2.VideoCapture(str(path), api)
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def read_events(path: Path, phase: str | None = "end") -> list[dict]:
    """The records of events.jsonl of one phase ('end': one per event; 'start'; None: every line)."""
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in recs if phase is None or r.get("type", "end") == phase]


def read_stats(path: Path) -> list[dict]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert "internal error" not in r.stderr, r.stderr


def part_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if ".part" in p.name]
