"""README's main job on the bundled demo: outputs, and events that start with the first object."""
import json
import subprocess
import sys
from pathlib import Path

import cv2

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def test_readme_main_job_on_the_demo(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kl_motion", "process", str(DEMO / "input"), "--out", str(tmp_path),
                        "--overlay", "--force", "-q"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    d = tmp_path / "demo"
    for name in ("mask.mkv", "overlay.mp4", "stats.csv", "events.jsonl"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert not list(d.glob("*.part*"))
    cap = cv2.VideoCapture(str(d / "mask.mkv"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 150
    cap.release()
    events = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    assert events, "the demo's moving objects make at least one event"
    # the car enters at frame 36: nothing before it (the swaying tree is learned during warm-up)
    assert 36 <= events[0]["start_frame"] <= 40


def _first_event(tmp_path, *flags):
    p = subprocess.run([sys.executable, "-m", "kl_motion", "process", str(DEMO / "input"), "--out", str(tmp_path),
                        "--no-mask", "--warmup-frames", "0", "--force", "-q", *flags], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in (tmp_path / "demo" / "events.jsonl").read_text().splitlines()]
    return events[0]["start_frame"]


def test_without_warmup_the_learning_period_fires_unless_restless_feedback_is_on(tmp_path):
    # without the pixel-level feedback, the swaying tree fires while the model is still learning
    assert _first_event(tmp_path / "a", "--restless-gain", "0") < 30
    # with it (the default) the tree's pixels raise their own thresholds: the first event is the car
    assert 36 <= _first_event(tmp_path / "b") <= 40
