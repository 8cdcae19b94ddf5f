"""README's main job on the bundled demo: outputs, and events that start with the first object."""
import json
import subprocess
import sys
from pathlib import Path

import cv2

from kl_motion.sources import demo_path

DEMO = demo_path()


def test_readme_main_job_on_the_demo(tmp_path):
    """README's quick start, `process --demo`, run from a folder outside the source tree."""
    p = subprocess.run([sys.executable, "-m", "kl_motion", "process", "--demo", "--out", "out", "--overlay", "--force",
                        "-q"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    d = tmp_path / "out" / "demo"
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



def test_demo_is_package_data_and_eval_scores_it(tmp_path):
    """The demo lives inside the package (so wheels carry it) and `eval --demo` scores it from any folder."""
    import kl_motion
    assert DEMO.is_relative_to(Path(kl_motion.__file__).parent)
    assert len(list((DEMO / "input").glob("in*.jpg"))) == 150 == len(list((DEMO / "groundtruth").glob("gt*.png")))
    p = subprocess.run([sys.executable, "-m", "kl_motion", "eval", "--demo", "-q", "--json", "s.json"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (rec,) = json.loads((tmp_path / "s.json").read_text())
    assert rec["sequence"].endswith("demo") and rec["f_measure"] > 0.7


def test_without_input_or_demo_one_line_error(tmp_path):
    for cmd in (["process", "--out", "o"], ["eval"]):
        p = subprocess.run([sys.executable, "-m", "kl_motion", *cmd], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
        assert p.returncode == 2 and "--demo" in p.stderr and "Traceback" not in p.stderr, p.stderr
