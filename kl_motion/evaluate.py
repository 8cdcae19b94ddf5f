"""Scoring against CDnet-2014-layout ground truth, by CDnet's rules.

Labels: 255 positive; 0 and 50 negative; 85 and 170 not scored.  Only frames
FIRST..LAST of temporalROI.txt, only pixels > 0 of ROI.bmp (where present).
A method's output pixel is positive when it is 255 (127 = shadow counts as negative).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .atomic import write_text
from .analyzer import Analyzer, canonical, detector_names, make_detector
from .errors import KLMotionError, SourceError
from .params import Params
from .fsnames import imread
from .sources import IMAGE_EXTS, FolderSource, natural_key


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, pred_pos: np.ndarray, gt: np.ndarray, roi: np.ndarray | None) -> None:
        """pred_pos: bool (H, W); gt: uint8 CDnet labels; roi: bool or None."""
        pos = gt == 255
        neg = (gt == 0) | (gt == 50)
        if roi is not None:
            pos &= roi
            neg &= roi
        self.tp += int(np.count_nonzero(pred_pos & pos))
        self.fn += int(np.count_nonzero(~pred_pos & pos))
        self.fp += int(np.count_nonzero(pred_pos & neg))
        self.tn += int(np.count_nonzero(~pred_pos & neg))

    def metrics(self) -> dict[str, float]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        recall = tp / (tp + fn) if tp + fn else 0.0
        spec = tn / (tn + fp) if tn + fp else 0.0
        fpr = fp / (fp + tn) if fp + tn else 0.0
        fnr = fn / (tp + fn) if tp + fn else 0.0
        total = tp + fp + fn + tn
        pwc = 100.0 * (fn + fp) / total if total else 0.0
        precision = tp / (tp + fp) if tp + fp else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return dict(recall=recall, specificity=spec, fpr=fpr, fnr=fnr, pwc=pwc, precision=precision, f_measure=f)


@dataclass
class Record:
    sequence: str
    method: str
    tp: int
    fp: int
    fn: int
    tn: int
    recall: float
    specificity: float
    fpr: float
    fnr: float
    pwc: float
    precision: float
    f_measure: float
    ms_per_frame: float
    frames_scored: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Sequence:
    path: Path
    name: str
    inputs: list[Path]
    gts: list[Path]
    first: int
    last: int
    roi: np.ndarray | None


def load_sequence(seq_dir: str | Path) -> Sequence:
    d = Path(seq_dir)
    if not d.is_dir():
        raise SourceError(f"{d}: not a sequence folder")
    inp, gtd = d / "input", d / "groundtruth"
    if not inp.is_dir() or not gtd.is_dir():
        raise SourceError(f"{d}: not in the CDnet layout (needs input/ and groundtruth/)")
    inputs = sorted((p for p in inp.iterdir() if p.suffix.lower() in IMAGE_EXTS),
                    key=lambda p: natural_key(p.name))
    gts = sorted((p for p in gtd.iterdir() if p.suffix.lower() in (".png", ".bmp")), key=lambda p: natural_key(p.name))
    if not inputs:
        raise SourceError(f"{inp}: no frames")
    troi = d / "temporalROI.txt"
    if troi.exists():
        try:
            first, last = (int(v) for v in troi.read_text().split()[:2])
        except ValueError:
            raise SourceError(f"{troi}: expected two frame numbers 'FIRST LAST'") from None
    else:
        first, last = 1, len(inputs)
    last = min(last, len(inputs))
    roi = None
    roi_path = d / "ROI.bmp"
    if roi_path.exists():
        r = imread(roi_path, cv2.IMREAD_GRAYSCALE)
        if r is None:
            raise SourceError(f"{roi_path}: cannot read")
        roi = r > 0
    name = f"{d.parent.name}/{d.name}" if d.parent.name else d.name
    return Sequence(d, name, inputs, gts, first, last, roi)


def gt_for(seq: Sequence, frame_no: int) -> np.ndarray:
    p = seq.path / "groundtruth" / f"gt{frame_no:06d}.png"
    if not p.exists():
        p = seq.gts[frame_no - 1]
    g = imread(p, cv2.IMREAD_GRAYSCALE)
    if g is None:
        raise SourceError(f"{p}: cannot read ground truth")
    return g


# ----------------------------------------------------------------------------- methods
def available_methods() -> list[str]:
    """The detector registry's names (kl_motion.analyzer): what --method accepts here."""
    return detector_names()


def evaluate_sequence(seq_dir, methods=("kl_motion",), params: Params | None = None,
                      on_frame: Callable[[int, int], None] | None = None) -> list[Record]:
    """Run every method on the same frames of one sequence, in this run, and score it.  Each
    method is a detector of the registry driven by the same Analyzer as ``process``, so its
    masks are those ``process --method NAME`` writes."""
    seq = load_sequence(seq_dir)
    names = list(dict.fromkeys(canonical(m) for m in methods))
    params = params or Params()
    runners = {m: Analyzer(make_detector(m, params), fps=FolderSource.FPS) for m in names}
    counts = {m: Counts() for m in names}
    times: dict[str, list[float]] = {m: [] for m in names}
    src = FolderSource(seq.path / "input")
    scored = 0
    for i in range(1, seq.last + 1):
        frame = src.read()
        if frame is None:
            break
        gt = gt_for(seq, i) if i >= seq.first else None
        t = (i - 1) / FolderSource.FPS
        for m in names:
            t0 = time.perf_counter()
            mask = runners[m].analyze(frame, t, i).mask
            times[m].append(time.perf_counter() - t0)
            if gt is not None:
                if mask.shape != gt.shape:
                    raise KLMotionError(f"{seq.name}: {m} mask {mask.shape} differs from ground truth {gt.shape}")
                counts[m].add(mask == 255, gt, seq.roi)
        if gt is not None:
            scored += 1
        if on_frame:
            on_frame(i, seq.last)
    out = []
    for m in names:
        t = times[m][1:] or times[m]
        ms = 1000.0 * float(np.median(t)) if t else float("nan")
        c = counts[m]
        out.append(Record(seq.name, m, c.tp, c.fp, c.fn, c.tn, **c.metrics(), ms_per_frame=ms, frames_scored=scored))
    return out


def mean_records(records: list[Record]) -> list[Record]:
    """Per method: the mean of each metric over sequences (counts are summed)."""
    out = []
    methods = list(dict.fromkeys(r.method for r in records))
    for m in methods:
        rs = [r for r in records if r.method == m]
        keys = ("recall", "specificity", "fpr", "fnr", "pwc", "precision", "f_measure", "ms_per_frame")
        avg = {k: float(np.mean([getattr(r, k) for r in rs])) for k in keys}
        out.append(Record("mean", m, sum(r.tp for r in rs), sum(r.fp for r in rs), sum(r.fn for r in rs),
                          sum(r.tn for r in rs), **avg, frames_scored=sum(r.frames_scored for r in rs)))
    return out


def format_table(records: list[Record]) -> str:
    head = ("sequence", "method", "TP", "FP", "FN", "TN", "recall", "spec", "FPR", "FNR", "PWC", "precision", "F", "ms/frame")
    rows = [[r.sequence, r.method, str(r.tp), str(r.fp), str(r.fn), str(r.tn), f"{r.recall:.3f}", f"{r.specificity:.4f}",
             f"{r.fpr:.4f}", f"{r.fnr:.3f}", f"{r.pwc:.3f}", f"{r.precision:.3f}", f"{r.f_measure:.3f}",
             f"{r.ms_per_frame:.2f}"] for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(head), line(["-" * w for w in widths])]
    prev = None
    for r, row in zip(records, rows):
        if prev is not None and r.sequence != prev:
            out.append("")
        prev = r.sequence
        out.append(line(row))
    return "\n".join(out)


def write_json(records: list[Record], path: str | Path) -> None:
    data = []
    for r in records:
        d = asdict(r)
        d.pop("extra", None)
        data.append(d)
    write_text(path, json.dumps(data, indent=2) + "\n")
