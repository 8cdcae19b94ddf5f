"""A picture of a whole recording: ``report.html`` (one self-contained page: inline SVG
plot, thumbnails as data URIs, no script, nothing fetched) and ``motion.png`` (the plot
alone, drawn with OpenCV).  Built from an input's output folder: ``stats.csv``,
``events.jsonl``, ``summary.json`` and, where present, ``snapshots/``.

The plot: foreground fraction (left axis) and peak KL (right axis, log scale) over time, event
spans shaded, the ``motion_area`` line (a frame counts as motion at or above it) and the
``kl_threshold`` line.  Long recordings are reduced to one maximum per plot column, so a
one-frame spike stays visible.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .sinks import part_name
from .timefmt import timecode

COLUMNS = 1200                 # at most this many points per curve
FG_COLOUR = "#1f6fb4"
KL_COLOUR = "#e07b00"
SPAN_COLOUR = "#ffe08a"        # event spans
THRESH_COLOUR = "#c0392b"


@dataclass
class Curve:
    time: np.ndarray
    fg: np.ndarray
    kl: np.ndarray | None      # None for --method mog2/knn (no KL)
    events: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.time[-1]) if len(self.time) else 0.0


def load(out_dir: str | Path) -> Curve:
    """Read an input's output folder (stats.csv is needed; the rest is optional)."""
    d = Path(out_dir)
    t, fg, kl = [], [], []
    with open(d / "stats.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t.append(float(row["time"]))
            fg.append(float(row["fg_fraction"]))
            kl.append(float(row["kl_max"]) if row.get("kl_max") else math.nan)
    kla = np.array(kl, np.float64)
    events = []
    ev_path = d / "events.jsonl"
    if ev_path.exists():
        for line in ev_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("type", "end") == "end":       # live files also hold 'start' records
                    events.append(rec)
    summary = {}
    if (d / "summary.json").exists():
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    return Curve(np.array(t, np.float64), np.array(fg, np.float64),
                 None if np.isnan(kla).all() else np.nan_to_num(kla), events, summary)


def reduce_max(t: np.ndarray, y: np.ndarray, n: int = COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: the maximum of each of ``n`` equal time bins (empty bins dropped)."""
    if len(t) <= n:
        return t, y
    t0, t1 = float(t[0]), float(t[-1])
    idx = np.minimum(((t - t0) / max(t1 - t0, 1e-9) * n).astype(np.int64), n - 1)
    out = np.full(n, -np.inf)
    np.maximum.at(out, idx, y)
    keep = np.isfinite(out)
    centres = t0 + (np.arange(n) + 0.5) / n * (t1 - t0)
    return centres[keep], out[keep]


def _scales(c: Curve, p: dict):
    fg_top = max(float(c.fg.max()) if len(c.fg) else 0.0, p.get("motion_area", 0.0)) * 1.1 or 0.01
    kl_top = None
    if c.kl is not None:     # KL on a log axis: log10(1 + KL), so the threshold (~30) and peaks (~5000) both show
        kl_top = _lg(max(float(c.kl.max()) if len(c.kl) else 0.0, p.get("kl_threshold", 0.0), 1.0)) * 1.08
    return fg_top, kl_top


def _lg(v):
    return np.log10(1.0 + np.maximum(v, 0.0))


def _kl_ticks(top: float) -> list[float]:
    """KL values 0, 1, 10, 100, ... that fit under a log axis' top."""
    return [0.0] + [10.0 ** k for k in range(0, 9) if _lg(10.0 ** k) <= top]


def _nice_ticks(top: float, n: int = 4) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _time_ticks(duration: float, n: int = 8) -> list[float]:
    if duration <= 0:
        return [0.0]
    raw = duration / n
    steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]
    step = next((s for s in steps if s >= raw), 3600 * math.ceil(raw / 3600))
    return [i * step for i in range(int(duration / step) + 1)]


def _tlabel(s: float, duration: float) -> str:
    tc = timecode(s)
    if duration < 3600:
        tc = tc[3:]                 # MM:SS.mmm
    return tc[:-4] if s == int(s) else tc[:-2]


# ---------------------------------------------------------------------------- SVG
def svg_plot(c: Curve, width: int = 1100, height: int = 320) -> str:
    p = c.summary.get("params", {})
    L, R, T, B = 64, 64, 16, 36
    w, h = width - L - R, height - T - B
    dur = max(c.duration, 1e-6)
    fg_top, kl_top = _scales(c, p)

    def X(t):
        return L + w * float(t) / dur

    def Y(v, top):
        return T + h * (1 - float(v) / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="motion over time">',
           f'<rect x="{L}" y="{T}" width="{w}" height="{h}" fill="#fff" stroke="#999"/>']
    for e in c.events:                                    # event spans
        x0, x1 = X(e["start_time"]), X(e["end_time"])
        out.append(f'<rect class="span" x="{x0:.1f}" y="{T}" width="{max(x1 - x0, 2):.1f}" height="{h}" '
                   f'fill="{SPAN_COLOUR}"><title>event {e["id"]}: {html.escape(_tc(e, "start"))} - '
                   f'{html.escape(_tc(e, "end"))}</title></rect>')
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{T + 12}" font-size="11" text-anchor="middle" '
                   f'fill="#7a5b00">{e["id"]}</text>')
    for v in _nice_ticks(fg_top):
        y = Y(v, fg_top)
        out.append(f'<line x1="{L}" x2="{L + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="{FG_COLOUR}">'
                   f'{v * 100:g}%</text>')
    if kl_top:
        for v in _kl_ticks(kl_top):
            out.append(f'<text x="{L + w + 6}" y="{Y(_lg(v), kl_top) + 4:.1f}" font-size="11" '
                       f'fill="{KL_COLOUR}">{v:g}</text>')
    for s in _time_ticks(dur):
        x = X(s)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T + h}" y2="{T + h + 4}" stroke="#666"/>'
                   f'<text x="{x:.1f}" y="{T + h + 17}" font-size="11" text-anchor="middle">'
                   f'{_tlabel(s, dur)}</text>')
    if "motion_area" in p:
        y = Y(p["motion_area"], fg_top)
        out.append(f'<line class="threshold" x1="{L}" x2="{L + w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{THRESH_COLOUR}" stroke-dasharray="6 4"><title>motion_area {p["motion_area"]:g}'
                   f'</title></line>')
    if kl_top and "kl_threshold" in p:
        y = Y(_lg(p["kl_threshold"]), kl_top)
        out.append(f'<line class="threshold" x1="{L}" x2="{L + w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{KL_COLOUR}" stroke-dasharray="2 3"><title>kl_threshold {p["kl_threshold"]:g}'
                   f'</title></line>')
    series = [("fg", c.fg, fg_top, FG_COLOUR)]
    if kl_top:
        series.append(("kl", _lg(c.kl), kl_top, KL_COLOUR))
    for name, y, top, col in series:
        tt, yy = reduce_max(c.time, y, min(COLUMNS, w))
        pts = " ".join(f"{X(a):.1f},{Y(b, top):.1f}" for a, b in zip(tt, yy))
        out.append(f'<polyline class="{name}" points="{pts}" fill="none" stroke="{col}" stroke-width="1.3"/>')
    out.append(f'<text x="{L}" y="{height - 2}" font-size="11" fill="{FG_COLOUR}">— foreground fraction '
               f'(left; dashed: motion_area)</text>')
    if kl_top:
        out.append(f'<text x="{L + w}" y="{height - 2}" font-size="11" text-anchor="end" fill="{KL_COLOUR}">'
                   f'peak KL (right, log scale; dotted: kl_threshold) —</text>')
    out.append("</svg>")
    return "\n".join(out)


def _tc(e: dict, which: str) -> str:
    return e.get(f"{which}_timecode") or timecode(e.get(f"{which}_time", 0.0))


# ---------------------------------------------------------------------------- PNG
def _hex(c: str) -> tuple[int, int, int]:
    return (int(c[5:7], 16), int(c[3:5], 16), int(c[1:3], 16))     # BGR


def plot_png(c: Curve, width: int = 1200, height: int = 360) -> np.ndarray:
    """The same plot as the page's, as a BGR image."""
    p = c.summary.get("params", {})
    L, R, T, B = 70, 60, 14, 40
    w, h = width - L - R, height - T - B
    img = np.full((height, width, 3), 255, np.uint8)
    dur = max(c.duration, 1e-6)
    fg_top, kl_top = _scales(c, p)

    def X(t):
        return int(round(L + w * float(t) / dur))

    def Y(v, top):
        return int(round(T + h * (1 - float(v) / top)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for e in c.events:
        x0, x1 = X(e["start_time"]), X(e["end_time"])
        cv2.rectangle(img, (x0, T), (max(x1, x0 + 1), T + h), _hex(SPAN_COLOUR), -1)
        cv2.putText(img, str(e["id"]), ((x0 + x1) // 2 - 4, T + 14), font, 0.4, (0, 90, 122), 1, cv2.LINE_AA)
    for v in _nice_ticks(fg_top):
        y = Y(v, fg_top)
        cv2.line(img, (L, y), (L + w, y), (235, 235, 235), 1)
        cv2.putText(img, f"{v * 100:g}%", (4, y + 4), font, 0.4, _hex(FG_COLOUR), 1, cv2.LINE_AA)
    if kl_top:
        for v in _kl_ticks(kl_top):
            cv2.putText(img, f"{v:g}", (L + w + 6, Y(_lg(v), kl_top) + 4), font, 0.4, _hex(KL_COLOUR), 1,
                        cv2.LINE_AA)
    for s in _time_ticks(dur):
        x = X(s)
        cv2.line(img, (x, T + h), (x, T + h + 4), (100, 100, 100), 1)
        lab = _tlabel(s, dur)
        cv2.putText(img, lab, (x - 4 * len(lab), T + h + 18), font, 0.4, (40, 40, 40), 1, cv2.LINE_AA)

    def dashed(y, col, on=8, off=5):
        for x in range(L, L + w, on + off):
            cv2.line(img, (x, y), (min(x + on, L + w), y), col, 1)

    if "motion_area" in p:
        dashed(Y(p["motion_area"], fg_top), _hex(THRESH_COLOUR))
    if kl_top and "kl_threshold" in p:
        dashed(Y(_lg(p["kl_threshold"]), kl_top), _hex(KL_COLOUR), 3, 4)
    series = [(c.fg, fg_top, FG_COLOUR)] + ([(_lg(c.kl), kl_top, KL_COLOUR)] if kl_top else [])
    for y, top, col in series:
        tt, yy = reduce_max(c.time, y, min(COLUMNS, w))
        pts = np.array([[X(a), Y(b, top)] for a, b in zip(tt, yy)], np.int32)
        if len(pts):
            cv2.polylines(img, [pts], False, _hex(col), 1, cv2.LINE_AA)
    cv2.rectangle(img, (L, T), (L + w, T + h), (150, 150, 150), 1)
    cv2.putText(img, "foreground fraction (left; dashed: motion_area)", (L, height - 6), font, 0.42, _hex(FG_COLOUR), 1, cv2.LINE_AA)
    if kl_top:
        cv2.putText(img, "peak KL (right, log)", (L + w - 150, height - 6), font, 0.42, _hex(KL_COLOUR), 1, cv2.LINE_AA)
    return img


# ---------------------------------------------------------------------------- page
def _thumb_uri(img: np.ndarray | bytes | None, width: int = 240) -> str | None:
    if img is None:
        return None
    if isinstance(img, (bytes, bytearray)):
        data = bytes(img)
    else:
        if img.shape[1] > width:
            img = cv2.resize(img, (width, max(1, round(img.shape[0] * width / img.shape[1]))),
                             interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return None
        data = buf.tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1160px}
h1{font-size:20px;margin:0 0 4px} .sub{color:#666;margin-bottom:16px}
table{border-collapse:collapse;margin:8px 0 20px} td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
th{background:#f6f6f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
.summary td:first-child{color:#666} .events img{display:block;max-width:240px;border:1px solid #ccc}
.plot{border:1px solid #ddd;padding:4px;margin-bottom:16px}
"""


def render_html(c: Curve, name: str, thumbs: dict[int, object] | None = None) -> str:
    s = c.summary
    thumbs = thumbs or {}
    motion_frames = int(np.count_nonzero(c.fg >= s.get("params", {}).get("motion_area", np.inf)))
    total_ev = sum(float(e.get("duration", 0.0)) for e in c.events)
    src = s.get("source", {})
    rows = [
        ("input", s.get("input", name)),
        ("status", s.get("status", "")),
        ("frames", s.get("frames", len(c.time))),
        ("duration", timecode(c.duration)),
        ("video", f"{src.get('width', '?')}x{src.get('height', '?')} at {src.get('fps', 0):g} fps" if src else ""),
        ("processing", f"{s.get('fps', 0):g} fps" if s else ""),
        ("events", f"{len(c.events)} ({timecode(total_ev)} in events, "
                   f"{100 * total_ev / max(c.duration, 1e-9):.1f} % of the time)"),
        ("frames at or above motion_area", motion_frames),
        ("peak foreground", f"{100 * float(c.fg.max()) if len(c.fg) else 0:.2f} %"),
    ]
    if c.kl is not None:
        rows.append(("peak KL", f"{float(c.kl.max()):.2f}"))
    p = s.get("params", {})
    rows.append(("thresholds", f"kl_threshold {p.get('kl_threshold', '?')}, motion_area {p.get('motion_area', '?')}"))
    summ = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    evrows = []
    for e in c.events:
        uri = _thumb_uri(thumbs.get(e["id"]))
        img = f'<img src="{uri}" alt="event {e["id"]}">' if uri else ""
        tracks = e.get("tracks")
        evrows.append(
            f'<tr><td class="n">{e["id"]}</td><td>{html.escape(_tc(e, "start"))}</td>'
            f'<td>{html.escape(_tc(e, "end"))}</td><td class="n">{float(e.get("duration", 0)):.2f} s</td>'
            f'<td class="n">{100 * float(e.get("peak_area", 0)):.2f} %</td>'
            f'<td class="n">{len(tracks) if tracks is not None else ""}</td><td>{img}</td></tr>')
    events = ("<table class=events><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>peak area</th>"
              "<th>tracks</th><th>peak frame</th></tr>" + "".join(evrows) + "</table>") if evrows else \
        "<p>No motion events.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kl-motion: {html.escape(name)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>{CSS}</style></head><body>
<h1>{html.escape(name)}</h1><div class=sub>kl-motion report: motion over the whole recording</div>
<div class=plot>{svg_plot(c)}</div>
<table class=summary>{summ}</table>
<h2>Events</h2>{events}
</body></html>
"""


def _write(path: Path, data: bytes) -> Path:
    tmp = part_name(path)
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def write_report(out_dir: str | Path, thumbs: dict[int, object] | None = None, name: str | None = None,
                 html_name: str = "report.html", png_name: str = "motion.png") -> list[Path]:
    """Write ``report.html`` and ``motion.png`` into ``out_dir`` (from its stats.csv, events.jsonl,
    summary.json).  ``thumbs`` maps event id to a BGR image or JPEG bytes; events without one use
    their ``snapshot`` file when there is one."""
    d = Path(out_dir)
    c = load(d)
    thumbs = dict(thumbs or {})
    for e in c.events:
        if e["id"] not in thumbs and e.get("snapshot") and (d / e["snapshot"]).is_file():
            thumbs[e["id"]] = cv2.imread(str(d / e["snapshot"]))
    page = render_html(c, name or d.name, thumbs)
    ok, png = cv2.imencode(".png", plot_png(c))
    return [_write(d / html_name, page.encode("utf-8")), _write(d / png_name, png.tobytes())]
