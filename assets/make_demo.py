"""Render the bundled demo clip and its ground truth (CDnet-2014 layout).

    python assets/make_demo.py [OUT_DIR]     (default: kl_motion/data/demo, the clip the package ships)

Deterministic (fixed seed): a textured static scene with sensor noise, a swaying
"tree" region (dynamic background), a flickering lamp, and moving objects: a car
crossing left to right, a person walking diagonally, a ball bouncing.  Ground
truth marks the moving objects 255, the rest 0; the first 30 frames are the
learning period (labelled 85, outside the temporal ROI), as in CDnet.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

W, H, N, WARMUP = 320, 240, 150, 30


def render(out: Path) -> None:
    rng = np.random.default_rng(2014)
    (out / "input").mkdir(parents=True, exist_ok=True)
    (out / "groundtruth").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.zeros((H, W, 3), np.float32)
    base[..., 0] = 90 + 40 * np.sin(xx / 23.0) + 20 * np.cos(yy / 17.0)
    base[..., 1] = 110 + 30 * np.cos(xx / 31.0 + yy / 29.0)
    base[..., 2] = 100 + 25 * np.sin(yy / 11.0)
    base[150:, :] = (70, 75, 80)                                   # road
    base[195:200, ::20] = (200, 200, 200)                          # lane marks
    cv2.rectangle(base, (230, 30), (300, 120), (60, 60, 150), -1)  # house
    texture = rng.normal(0, 6, (H, W, 3)).astype(np.float32)
    base = np.clip(base + texture, 0, 255)
    for i in range(N):
        f = base.copy()
        gt = np.zeros((H, W), np.uint8)
        # swaying tree: leaves oscillate around a trunk (background motion, not labelled)
        sway = 4.0 * np.sin(i / 3.0)
        cv2.rectangle(f, (38, 90), (46, 150), (30, 50, 70), -1)
        cv2.ellipse(f, (int(42 + sway), 70), (28, 32), 0, 0, 360, (40, 120, 50), -1)
        # flickering lamp (small, bright, unlabelled)
        lamp = 200 + 40 * np.sin(i * 1.7)
        cv2.circle(f, (270, 20), 6, (lamp, lamp, lamp), -1)
        objs = np.zeros((H, W), np.uint8)
        if 35 <= i < 120:  # car left -> right
            x = int(-60 + (i - 35) * 5)
            cv2.rectangle(f, (x, 160), (x + 60, 190), (40, 40, 200), -1)
            cv2.rectangle(f, (x + 12, 150), (x + 45, 162), (60, 60, 60), -1)
            cv2.rectangle(objs, (x, 160), (x + 60, 190), 255, -1)
            cv2.rectangle(objs, (x + 12, 150), (x + 45, 162), 255, -1)
        if 50 <= i < 145:  # person walking diagonally
            px, py = int(120 + (i - 50) * 1.2), int(60 + (i - 50) * 0.6)
            cv2.ellipse(f, (px, py), (7, 18), 0, 0, 360, (150, 170, 210), -1)
            cv2.circle(f, (px, py - 24), 6, (120, 140, 190), -1)
            cv2.ellipse(objs, (px, py), (7, 18), 0, 0, 360, 255, -1)
            cv2.circle(objs, (px, py - 24), 6, 255, -1)
        if 90 <= i < 150:  # bouncing ball
            bx = int(300 - (i - 90) * 3)
            by = int(140 - abs(60 * np.sin((i - 90) / 6.0)))
            cv2.circle(f, (bx, by), 8, (0, 220, 240), -1)
            cv2.circle(objs, (bx, by), 8, 255, -1)
        f += rng.normal(0, 4.0, f.shape).astype(np.float32)         # sensor noise
        frame = np.clip(f, 0, 255).astype(np.uint8)
        gt[objs > 0] = 255
        if i < WARMUP:
            gt[:] = 85
        cv2.imwrite(str(out / "input" / f"in{i + 1:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(out / "groundtruth" / f"gt{i + 1:06d}.png"), gt)
    (out / "temporalROI.txt").write_text(f"{WARMUP + 1} {N}\n")


if __name__ == "__main__":
    render(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "kl_motion" / "data" / "demo")
