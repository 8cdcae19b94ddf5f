"""kl_motion.chunks.join on chunk folders written by hand: the boundary cases a converged model
rarely makes (tests/test_cluster.py runs real chunks on a cluster).

- the previous chunk's open event and an event starting in the next chunk within event_gap: one
  event, and the gap's rows of stats.csv carry its id;
- an event open at a chunk's start that the previous chunk did not have (the warm-up's model saw
  motion): dropped when it does not move after the boundary, else kept with a start record;
- an event open at a chunk's start that continues the previous chunk's: one event.
"""
from __future__ import annotations

import json
from pathlib import Path

from kl_motion.chunks import Chunk, chunk_dir, join
from kl_motion.outputs import STATS_HEADER, InputReport, Options
from kl_motion.params import Params
from kl_motion.pipeline import ChunkInfo
from kl_motion.timefmt import timecode
from kl_motion.tracker import BOXES_HEADER

FPS = 25.0
OPT = Options(mask=False, report=False)


def _end(i, a, b, peak=500, mf=None):
    return dict(type="end", source="x", input="clip.avi", id=i, start_frame=a, start_time=(a - 1) / FPS,
                end_frame=b, end_time=(b - 1) / FPS, peak_area=peak / 19200, peak_pixels=peak, peak_frame=a,
                peak_time=(a - 1) / FPS, box=[10, 10, 20, 20], motion_frames=mf or (b - a + 1),
                duration=(b - a) / FPS, start_timecode=timecode((a - 1) / FPS),
                end_timecode=timecode((b - 1) / FPS), peak_timecode=timecode((a - 1) / FPS), tracks=[])


def _start(i, a):
    return dict(type="start", source="x", input="clip.avi", id=i, start_frame=a, start_time=(a - 1) / FPS,
                start_timecode=timecode((a - 1) / FPS), box=[10, 10, 20, 20], tracks=[])


def write_chunk(out: Path, c: Chunk, last: int, records: list[dict], event_rows: dict[int, int]) -> None:
    """A chunk folder: frames c.first+1 .. last; ``event_rows`` frame -> local event id in stats."""
    d = chunk_dir(out, c)
    d.mkdir(parents=True)
    rows = [STATS_HEADER]
    for f in range(c.first + 1, last + 1):
        ev = event_rows.get(f, "")
        rows.append(f"{f},{(f - 1) / FPS:.4f},{timecode((f - 1) / FPS)},0.0,1.0,2.0,0,{int(bool(ev))},0,{ev}")
    (d / "stats.csv").write_text("\n".join(rows) + "\n")
    (d / "boxes.csv").write_text(BOXES_HEADER + "\n")
    (d / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (d / "summary.json").write_text(json.dumps(dict(
        frames=last - c.first, seconds=1.0, source=dict(kind="file", width=160, height=120, fps=FPS),
        range=dict(first_frame=c.first + 1, last_frame=last, start=timecode(c.first / FPS),
                   end=timecode(last / FPS)))))


def rep(c: Chunk, last: int) -> InputReport:
    return InputReport(input="clip.avi", frames=last - c.first, seconds=1.0)


def joined(out: Path):
    evs = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    stats = [r.split(",") for r in (out / "stats.csv").read_text().splitlines()[1:]]
    return evs, {int(r[0]): r[-1] for r in stats}


def test_an_event_starting_again_within_the_gap_continues_the_open_one(tmp_path):
    c0, c1 = Chunk(0, 0, 100, 0), Chunk(1, 100, None, 50)
    # chunk 0: event 1 open at its end (frames 80-98); chunk 1: its model saw no motion at the
    # boundary, an event starts at 110 (12 frames after 98: within event_gap = 2 s)
    write_chunk(tmp_path, c0, 100, [_start(1, 80), _end(1, 80, 98)], {f: 1 for f in range(82, 101)})
    write_chunk(tmp_path, c1, 200, [_start(1, 110), _end(1, 110, 130, peak=900)],
                {f: 1 for f in range(112, 131)})
    r = join(tmp_path, OPT, Params(), [c0, c1],
             [(rep(c0, 100), ChunkInfo(tail_id=1, pixels=19200)), (rep(c1, 200), ChunkInfo(pixels=19200))], 0.0)
    assert r.status == "ok" and r.events == 1, r
    evs, ev_of = joined(tmp_path)
    assert [e["type"] for e in evs] == ["start", "end"]
    e = evs[1]
    assert (e["id"], e["start_frame"], e["end_frame"], e["peak_pixels"], e["motion_frames"]) == (1, 80, 130, 900, 40)
    assert e["duration"] == round((130 - 80) / FPS, 4)
    assert all(ev_of[f] == "1" for f in range(101, 131)), "the gap's frames are the event's"
    assert ev_of[131] == "" and ev_of[81] == ""
    assert not (tmp_path / "chunks.part").exists()


def test_an_event_only_the_warmup_saw_is_dropped_unless_it_moves_after_the_boundary(tmp_path):
    for moves in (False, True):
        out = tmp_path / f"m{int(moves)}"
        c0, c1 = Chunk(0, 0, 100, 0), Chunk(1, 100, None, 50)
        write_chunk(out, c0, 100, [], {})
        last = 106 if moves else 95
        write_chunk(out, c1, 200, [_end(1, 90, last), _start(2, 150), _end(2, 150, 170)],
                    {**{f: 1 for f in range(101, 106 + (40 if not moves else 0))}, **{f: 2 for f in range(152, 171)}})
        head = dict(id=1, motion_frames=6 if moves else 0, peak_pixels=400, peak_frame=101, peak_time=4.0,
                    box=[10, 10, 20, 20])
        r = join(out, OPT, Params(), [c0, c1],
                 [(rep(c0, 100), ChunkInfo(pixels=19200)), (rep(c1, 200), ChunkInfo(head=head, pixels=19200))], 0.0)
        evs, ev_of = joined(out)
        ends = [e for e in evs if e["type"] == "end"]
        starts = [e for e in evs if e["type"] == "start"]
        assert [e["id"] for e in starts] == [e["id"] for e in ends], evs
        if moves:
            assert r.events == 2 and [(e["start_frame"], e["end_frame"]) for e in ends] == [(90, 106), (150, 170)]
            assert ev_of[101] == "1" and ev_of[160] == "2"
        else:
            assert r.events == 1 and [(e["id"], e["start_frame"]) for e in ends] == [(1, 150)]
            assert ev_of[101] == "" and ev_of[160] == "1"


def test_an_event_open_across_the_boundary_is_one_event(tmp_path):
    c0, c1, c2 = Chunk(0, 0, 100, 0), Chunk(1, 100, 200, 50), Chunk(2, 200, None, 50)
    write_chunk(tmp_path, c0, 100, [_start(1, 20), _end(1, 20, 30), _start(2, 90), _end(2, 90, 100, peak=300)],
                {**{f: 1 for f in range(22, 31)}, **{f: 2 for f in range(92, 101)}})
    # chunk 1: the warm-up ended an event (local 1, the previous chunk's first) and has event 2 open
    # at the boundary, which goes on to 250 through chunk 2
    write_chunk(tmp_path, c1, 200, [_end(2, 90, 200, peak=800)], {f: 2 for f in range(101, 201)})
    write_chunk(tmp_path, c2, 260, [_end(1, 170, 250, peak=700), _start(2, 255), _end(2, 255, 258)],
                {**{f: 1 for f in range(201, 251)}, **{f: 2 for f in range(257, 259)}})
    h1 = dict(id=2, motion_frames=100, peak_pixels=800, peak_frame=150, peak_time=149 / FPS, box=[0, 0, 5, 5])
    h2 = dict(id=1, motion_frames=50, peak_pixels=700, peak_frame=210, peak_time=209 / FPS, box=[50, 50, 5, 5])
    r = join(tmp_path, OPT, Params(), [c0, c1, c2],
             [(rep(c0, 100), ChunkInfo(tail_id=2, pixels=19200)),
              (rep(c1, 200), ChunkInfo(lead_events=1, head=h1, tail_id=2, pixels=19200)),
              (rep(c2, 260), ChunkInfo(head=h2, pixels=19200))], 0.0)
    assert r.events == 3, r
    evs, ev_of = joined(tmp_path)
    ends = [e for e in evs if e["type"] == "end"]
    assert [(e["id"], e["start_frame"], e["end_frame"]) for e in ends] == [(1, 20, 30), (2, 90, 250), (3, 255, 258)]
    e = ends[1]
    assert e["peak_pixels"] == 800 and e["peak_frame"] == 150            # the middle chunk's part has the peak
    assert e["motion_frames"] == 11 + 100 + 50
    assert e["box"] == [0, 0, 55, 55]
    assert [s["id"] for s in evs if s["type"] == "start"] == [1, 2, 3]
    assert ev_of[150] == "2" and ev_of[240] == "2" and ev_of[257] == "3"
