"""`kl-motion process` on small videos made here: outputs, events, config, zones, light switch, batch."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest_process import (FPS, H, W, count_frames, make_video, no_traceback, part_files, read_events,
                              read_stats, run_process)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "walk.avi", n=60, moving=(20, 40))


@pytest.fixture(scope="module")
def full_run(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    r = run_process(clip, "--out", out, "--overlay", "--bins", "--snapshots", "--clips", "--event-gap", "0.4",
                    "--pre-capture", "0.2", "--post-capture", "0.2")
    return r, out / "walk"


def test_all_outputs_written(full_run):
    r, d = full_run
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert count_frames(d / "mask.mkv") == 60
    assert count_frames(d / "overlay.mp4") == 60
    bins = sorted((d / "bin").glob("bin*.png"))
    assert len(bins) == 60 and bins[0].name == "bin000001.png"
    b = cv2.imread(str(bins[30]), cv2.IMREAD_GRAYSCALE)
    assert b.shape == (H, W) and set(np.unique(b)) <= {0, 255} and (b == 255).any()
    assert not part_files(d)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames"] == 60


def test_mask_video_is_lossless_and_matches_bins(full_run):
    _, d = full_run
    cap = cv2.VideoCapture(str(d / "mask.mkv"))
    for i in range(31):
        ok, m = cap.read()
    m = m[:, :, 0] if m.ndim == 3 else m
    assert set(np.unique(m)) <= {0, 127, 255}
    b = cv2.imread(str(d / "bin" / "bin000031.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal((m == 255), (b == 255))


def test_stats_and_events(full_run):
    _, d = full_run
    rows = read_stats(d / "stats.csv")
    assert len(rows) == 60
    assert list(rows[0]) == ["frame", "time", "timecode", "fg_fraction", "kl_mean", "kl_max", "blobs", "motion",
                             "lightswitch", "event"]
    assert rows[30]["timecode"] == "00:00:01.200"
    assert rows[0]["frame"] == "1" and abs(float(rows[10]["time"]) - 10 / FPS) < 1e-3
    motion = [int(r["motion"]) for r in rows]
    assert sum(motion[22:38]) >= 14 and sum(motion[:18]) == 0 and sum(motion[50:]) == 0
    evs = read_events(d / "events.jsonl")
    assert len(evs) == 1
    e = evs[0]
    assert 20 <= e["start_frame"] <= 25 and 37 <= e["end_frame"] <= 47
    assert e["start_frame"] <= e["peak_frame"] <= e["end_frame"]
    assert abs(e["start_time"] - (e["start_frame"] - 1) / FPS) < 1e-3
    x, y, w, h = e["box"]
    assert 30 <= y <= 45 and 35 <= h <= 50 and w > 50
    assert (d / e["snapshot"]).is_file() and cv2.imread(str(d / e["snapshot"])).shape == (H, W, 3)
    n = count_frames(d / e["clip"])
    span = e["end_frame"] - e["start_frame"] + 1
    assert span + 5 <= n <= span + 12          # 0.2 s (5 frames) before, 0.2 s after


def test_existing_outputs_need_force(clip, tmp_path):
    r = run_process(clip, "--out", tmp_path, "--no-mask")
    assert r.returncode == 0, r.stderr
    before = (tmp_path / "walk" / "stats.csv").read_bytes()
    r = run_process(clip, "--out", tmp_path, "--no-mask")
    no_traceback(r)
    assert r.returncode == 2 and "exists" in r.stderr and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path / "walk" / "stats.csv").read_bytes() == before
    r = run_process(clip, "--out", tmp_path, "--no-mask", "--force")
    assert r.returncode == 0, r.stderr


def test_config_file_and_flags_override(clip, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[events]\nevent_start_frames = 500\n")
    r = run_process(clip, "--out", tmp_path / "a", "--no-mask", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert read_events(tmp_path / "a" / "walk" / "events.jsonl") == []
    r = run_process(clip, "--out", tmp_path / "b", "--no-mask", "--config", cfg, "--event-start-frames", "2")
    assert r.returncode == 0, r.stderr
    assert len(read_events(tmp_path / "b" / "walk" / "events.jsonl")) == 1
    summary = json.loads((tmp_path / "b" / "walk" / "summary.json").read_text())
    assert summary["params"]["event_start_frames"] == 2


def test_bad_parameter_is_one_line(clip, tmp_path):
    r = run_process(clip, "--out", tmp_path, "--kl-threshold", "-3")
    no_traceback(r)
    assert r.returncode == 2 and "kl_threshold" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ignore_zone_and_zone_mask_remove_the_event(clip, tmp_path):
    zone = json.dumps([[[0, 0], [1, 0], [1, 1], [0, 1]]])
    r = run_process(clip, "--out", tmp_path / "a", "--no-mask", "--ignore-zones", zone)
    assert r.returncode == 0, r.stderr
    assert read_events(tmp_path / "a" / "walk" / "events.jsonl") == []
    img = np.zeros((H, W), np.uint8)
    img[:, :50] = 255                       # watch only x < 50: the square starts there and leaves
    cv2.imwrite(str(tmp_path / "zone.png"), img)
    r = run_process(clip, "--out", tmp_path / "b", "--no-mask", "--zone-mask", tmp_path / "zone.png")
    assert r.returncode == 0, r.stderr
    rows = read_stats(tmp_path / "b" / "walk" / "stats.csv")
    assert sum(int(r["motion"]) for r in rows[20:30]) >= 6
    (e,) = read_events(tmp_path / "b" / "walk" / "events.jsonl")
    assert e["box"][0] + e["box"][2] <= 51
    r = run_process(clip, "--out", tmp_path / "c", "--zone-mask", tmp_path / "nothere.png")
    assert r.returncode == 2 and "zone_mask" in r.stderr


def test_light_switch_relearns_without_event(tmp_path):
    v = make_video(tmp_path / "light.avi", n=70, moving=None, light_at=35)
    r = run_process(v, "--out", tmp_path, "--no-mask", "-v")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert read_events(tmp_path / "light" / "events.jsonl") == []
    rows = read_stats(tmp_path / "light" / "stats.csv")
    flags = [int(r["lightswitch"]) for r in rows]
    k = flags.index(1)
    assert k in (35, 36) and sum(flags) == 1                 # one switch, seen at once
    assert "light switch" in r.stderr
    # re-learned within 3 frames of the switch (the learning rate restarts at 1/n). Without the
    # re-learn the whole picture stays foreground for 25 frames and counts as a second switch.
    fg = [float(r["fg_fraction"]) for r in rows]
    assert fg[k] > 0.9 and max(fg[k + 3:]) < 0.01, fg[k:]


def test_batch_with_a_bad_input_and_jobs(clip, tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"\x00garbage" * 500)
    r = run_process(clip, bad, tmp_path / "missing.avi", "--out", tmp_path / "o", "--jobs", "2", "--no-mask")
    no_traceback(r)
    assert r.returncode == 2
    assert (tmp_path / "o" / "walk" / "events.jsonl").is_file()
    assert "walk" in r.stdout and "broken.avi" in r.stdout and "1 of 3 inputs" in r.stdout
    errs = [l for l in r.stderr.splitlines() if "error" in l]
    assert len(errs) == 2 and any("broken.avi" in l for l in errs) and any("no such file" in l for l in errs)


def test_same_names_get_separate_folders_and_image_folder(clip, tmp_path):
    folder = tmp_path / "seq" / "input"
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(clip))
    i = 0
    while True:
        ok, f = cap.read()
        if not ok or i >= 40:
            break
        i += 1
        cv2.imwrite(str(folder / f"in{i}.jpg"), f)   # natural order: in2 before in10
    r = run_process(folder, folder, "--out", tmp_path / "o", "--bins", "--no-mask", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    for name in ("seq", "seq-2"):
        assert len(list((tmp_path / "o" / name / "bin").glob("bin*.png"))) == 40
    rows = read_stats(tmp_path / "o" / "seq" / "stats.csv")
    assert sum(int(r["motion"]) for r in rows[22:38]) >= 14


def test_folder_of_clips_is_each_clip(tmp_path):
    d = tmp_path / "night"
    d.mkdir()
    for name in ("cam-10.avi", "cam-2.avi"):
        make_video(d / name, n=40, moving=(10, 30))
    (d / "notes.txt").write_text("not a clip")
    r = run_process(d, "--out", tmp_path / "o", "--no-mask")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    lines = [l.split()[0] for l in r.stdout.splitlines() if l.endswith(".avi") or ".avi " in l]
    assert [l.rsplit("/", 1)[-1] for l in lines] == ["cam-2.avi", "cam-10.avi"]      # natural order
    for name in ("cam-2", "cam-10"):
        assert len(read_events(tmp_path / "o" / name / "events.jsonl")) == 1


def test_cdnet_bins_score_like_kl_motion_eval(tmp_path):
    """bin*.png from `process --bins` on a CDnet sequence score exactly as `kl-motion eval` does."""
    from kl_motion.evaluate import evaluate_sequence
    from kl_motion.sources import demo_path
    demo = demo_path()
    r = run_process(demo / "input", "--out", tmp_path, "--bins", "--no-mask", "--no-stats", "--no-events",
                    method=False)
    assert r.returncode == 0, r.stderr
    first, last = (int(v) for v in (demo / "temporalROI.txt").read_text().split()[:2])
    tp = fp = fn = tn = 0
    for i in range(1, last + 1):
        b = cv2.imread(str(tmp_path / "demo" / "bin" / f"bin{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert b is not None and b.ndim == 2 and set(np.unique(b)) <= {0, 255}     # CDnet results: 0 or 255
        if i < first:
            continue
        # CDnet's rules written out here (not kl_motion.evaluate's code): 255 positive, 0 and 50
        # negative, 85 and 170 not scored; the demo has no ROI.bmp
        g = cv2.imread(str(demo / "groundtruth" / f"gt{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        pos, neg, det = g == 255, (g == 0) | (g == 50), b == 255
        tp += int((det & pos).sum()); fn += int((~det & pos).sum())
        fp += int((det & neg).sum()); tn += int((~det & neg).sum())
    assert not (tmp_path / "demo" / "bin" / f"bin{last + 1:06d}.png").exists()
    assert tp > 0 and fp + fn < tp                       # a real score, not an empty one
    (rec,) = evaluate_sequence(demo, ["kl_motion"])
    assert (tp, fp, fn, tn) == (rec.tp, rec.fp, rec.fn, rec.tn)
