"""The parameter table and its checks to the value: what the mutation run on params.py found
untested.  Each test names the bug it was checked against.

The table itself (every parameter's type, default, range, section, viewer slider, restart flag and
help) is written out in docs/parameters.md; test_docs_parameter_table_is_the_code_s compares it
with ``spec()`` line by line, so a default, a bound or a help line changed by accident fails
here, and a deliberate change updates docs/parameters.md in the same commit:

    .venv/bin/python -c "import sys; sys.path.insert(0, 'tests'); from test_params_exact import table; print(table())"
"""
from __future__ import annotations

import math
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kl_motion import MotionModel, ParameterError, Params
from kl_motion.params import (CONFIG_MAX_BYTES, ZONE_MAX_POINTS, _short, _toml_value, names, needs_reset,
                              spec)

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
BEGIN, END = "<!-- table: begin -->", "<!-- table: end -->"


def table() -> str:
    """docs/parameters.md's table, from the code."""
    rows = ["| parameter | type | default | range | section | viewer slider | restarts the model | help |",
            "|---|---|---|---|---|---|---|---|"]
    for r in spec():
        rng = "-" if r["lo"] is None else f"{r['lo']!r} .. {r['hi']!r}"
        rows.append(f"| `{r['name']}` | {r['type'].__name__} | `{r['default']!r}` | {rng} | {r['group']} | "
                    f"{'yes' if r['gui'] else 'no'} | {'yes' if r['reset'] else 'no'} | {r['help']} |")
    return "\n".join(rows)


def test_docs_parameter_table_is_the_code_s():
    """Planted: history's default 200 -> 201, its minimum 1 -> 0, n_components' maximum 8 -> 9,
    kl_threshold's group, `gui=True` -> False as _p's default, n_components' reset flag."""
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{DOC} lost its table markers"
    doc = text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    want = table().splitlines()
    diff = [f"docs: {a}\ncode: {b}" for a, b in zip(doc, want) if a != b]
    assert not diff and len(doc) == len(want), (
        "docs/parameters.md and params.py differ (a deliberate change updates the docs: see this file's "
        "docstring):\n" + "\n".join(diff[:5]) + f"\n({len(doc)} rows in the docs, {len(want)} in the code)")


# ----------------------------------------------------------------------------- validate()
NUMERIC = [r for r in spec() if r["type"] in (int, float)]


@pytest.mark.parametrize("r", NUMERIC, ids=[r["name"] for r in NUMERIC])
def test_each_bound_is_valid_and_one_step_beyond_is_not(r):
    """lo and hi themselves are accepted, a step beyond each is refused with its message (the bounds
    come from the table that the docs pin).  Planted: `v < lo` -> `v <= lo`, `v > hi` -> `v >= hi`,
    the messages' minimum/maximum swapped."""
    name, lo, hi = r["name"], r["lo"], r["hi"]
    step = 1 if r["type"] is int else 1e-6
    base = Params()
    # keep var_min <= var_max and shadow_low <= shadow_high
    pair = {"var_min": ("var_max", max), "var_max": ("var_min", min),
            "shadow_low": ("shadow_high", max), "shadow_high": ("shadow_low", min)}
    for v in (lo, hi):
        extra = {}
        if name in pair:
            other, pick = pair[name]
            extra[other] = pick(v, getattr(base, other))
        p = base.replace(**{name: v}, **extra)
        assert getattr(p, name) == v and type(getattr(p, name)) is r["type"]
    with pytest.raises(ParameterError, match=rf"^{name}={lo - step!r} is below its minimum {lo!r}$"):
        base.replace(**{name: lo - step})
    with pytest.raises(ParameterError, match=rf"^{name}={hi + step!r} is above its maximum {hi!r}$"):
        base.replace(**{name: hi + step})


def test_types_are_checked_and_converted():
    """Planted: `isinstance(v, bool) or ...` -> `and` (True taken as the integer 1), the float
    conversion dropped (an int stays an int), `not math.isfinite` -> `math.isfinite`."""
    p = Params(history=300.0, kl_threshold=12, motion_area=0)
    assert p.history == 300 and type(p.history) is int
    assert p.kl_threshold == 12.0 and type(p.kl_threshold) is float and type(p.motion_area) is float
    cases = [
        (dict(history=True), "history must be an integer, got True"),
        (dict(history="200"), "history must be an integer, got '200'"),
        (dict(history=2.5), "history must be an integer, got 2.5"),
        (dict(kl_threshold=False), "kl_threshold must be a number, got False"),
        (dict(kl_threshold="16"), "kl_threshold must be a number, got '16'"),
        (dict(kl_threshold=math.inf), "kl_threshold must be finite, got inf"),
        (dict(kl_threshold=-math.inf), "kl_threshold must be finite, got -inf"),
        (dict(detect_shadows=1), "detect_shadows must be true or false, got 1"),
        (dict(zone_mask=3), "zone_mask must be a string, got 3"),
        (dict(ignore_zones="left"), "ignore_zones must be a list of polygons, got 'left'"),
    ]
    for changes, msg in cases:
        with pytest.raises(ParameterError) as e:
            Params(**changes)
        assert str(e.value) == msg
    assert Params(detect_shadows=False).detect_shadows is False and Params(zone_mask="z.png").zone_mask == "z.png"


def test_pairs_may_be_equal_not_crossed():
    """var_min == var_max and shadow_low == shadow_high are valid.  Planted: `>` -> `>=` in either
    check."""
    assert Params(var_min=40.0, var_max=40.0).var_min == 40.0
    assert Params(shadow_low=0.8, shadow_high=0.8).shadow_high == 0.8
    with pytest.raises(ParameterError, match=r"^var_min=40.5 must not exceed var_max=40.0$"):
        Params(var_min=40.5, var_max=40.0)
    with pytest.raises(ParameterError, match=r"^shadow_low=0.81 must not exceed shadow_high=0.8$"):
        Params(shadow_low=0.81, shadow_high=0.8)


def test_zone_polygons_are_checked_point_by_point():
    """Planted: ZONE_MAX_POINTS + 1 accepted (`>` -> `>=` refuses exactly 1000), a polygon of 2 points
    accepted (`< 3` -> `<= 3` refuses triangles), the 0..1 slack (-0.001, 1.001) moved, a point of
    3 numbers or a True coordinate accepted, tuples refused."""
    tri = [[0, 0], [1, 0], [0, 1]]
    Params(ignore_zones=[tri], include_zones=[((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))])
    Params(ignore_zones=[[[-0.001, 1.001], [1.001, -0.001], [0.5, 0.5]]])          # the slack
    n = ZONE_MAX_POINTS
    assert n == 1000
    Params(ignore_zones=[[[0.0, 0.0]] * (n - 3), tri])                             # exactly 1000 points
    with pytest.raises(ParameterError, match=rf"^ignore_zones has {n + 1} points in 2 polygon\(s\); at most {n} "):
        Params(ignore_zones=[[[0.0, 0.0]] * (n - 2), tri])
    with pytest.raises(ParameterError, match=rf"^include_zones has {n + 1} points in {n + 1} polygon\(s\)"):
        Params(include_zones=[5] * (n + 1))               # a non-list polygon counts as one point
    bad = [
        ([[[0, 0], [1, 0]]], "each polygon needs at least 3 [x, y] points, got [[0, 0], [1, 0]]"),
        (["abc"], "each polygon needs at least 3 [x, y] points, got 'abc'"),
        ([[[0, 0], [1, 0], [0, 1, 0]]], "a point must be [x, y] numbers, got [0, 1, 0]"),
        ([[[0, 0], [1, 0], [True, 0]]], "a point must be [x, y] numbers, got [True, 0]"),
        ([[[0, 0], [1, 0], "xy"]], "a point must be [x, y] numbers, got 'xy'"),
        ([[[0, 0], [1, 0], [0, "1"]]], "a point must be [x, y] numbers, got [0, '1']"),
        ([[[0, 0], [1, 0], [0, 1.0011]]], "point [0, 1.0011] is outside 0..1"),
        ([[[0, 0], [1, 0], [-0.0011, 1]]], "point [-0.0011, 1] is outside 0..1"),
    ]
    for zones, msg in bad:
        with pytest.raises(ParameterError) as e:
            Params(ignore_zones=zones)
        assert str(e.value).startswith("ignore_zones: " + msg), str(e.value)


def test_short_cuts_long_values_to_one_line():
    """Planted: the limit 80 -> 81 / 79, `limit - 3` -> `limit - 4`, `<=` -> `<`."""
    assert _short("x" * 78) == repr("x" * 78)                   # 80 characters: as they are
    s = _short("y" * 79)                                         # 81: cut to 80 with "..."
    assert len(s) == 80 and s.endswith("...") and s.startswith("'yyy")
    assert _short(list(range(100)), limit=10) == "[0, 1, ..."
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    assert _short(deep) == "<list nested too deeply>"


# ----------------------------------------------------------------------------- TOML
def test_toml_values_and_text():
    """Planted: true/false swapped, a string's quotes or backslashes not escaped, comments written
    with comments=False, a group heading missing, the range left out of a comment."""
    assert _toml_value(True) == "true" and _toml_value(False) == "false"
    assert _toml_value(7) == "7" and _toml_value(0.1) == "0.1"
    assert _toml_value('a"b\\c') == '"a\\"b\\\\c"'
    assert _toml_value([[0.5, 1], (0, 0.25)]) == "[[0.5, 1], [0, 0.25]]"
    with pytest.raises(TypeError, match="cannot write"):
        _toml_value(None)
    p = Params(zone_mask='C:\\masks\\"gate".png', ignore_zones=[[[0, 0], [0.5, 0], [0.5, 0.5]]])
    bare = p.to_toml(comments=False).splitlines()
    assert bare[0] == "# kl_motion parameters (see `kl-motion config --dump`)"
    assert [l for l in bare if l.startswith("#")] == [bare[0]] + [f"# --- {g} ---" for g in
                                                                 dict.fromkeys(r["group"] for r in spec())]
    assert 'zone_mask = "C:\\\\masks\\\\\\"gate\\".png"' in bare
    assert "detect_shadows = true" in bare and "history = 200" in bare and "kl_threshold = 16.0" in bare
    assert len([l for l in bare if " = " in l]) == len(names())
    full = p.to_toml().splitlines()
    i = full.index("history = 200")
    assert full[i - 1] == "# " + spec()[0]["help"] + " [1 .. 100000]"
    j = full.index("zone_mask = " + p.to_toml(comments=False).split("zone_mask = ")[1].splitlines()[0])
    assert full[j - 1].startswith("# Image file") and "[" not in full[j - 1].split("(")[-1]
    assert full[-1] != "" and p.to_toml().endswith("\n")


def test_load_refuses_what_it_cannot_read(tmp_path):
    """Every problem names the file.  Planted: `size > CONFIG_MAX_BYTES` -> `>=` (a file of exactly
    the limit refused), the folder and not-UTF-8 cases turned into other messages."""
    assert CONFIG_MAX_BYTES == 1 << 20                            # 1 MiB (test_faults: "at most 1048576")
    ok = tmp_path / "limit.toml"
    body = "history = 300\n"
    ok.write_bytes(body.encode() + b"#" * (CONFIG_MAX_BYTES - len(body) - 1) + b"\n")
    assert ok.stat().st_size == CONFIG_MAX_BYTES and Params.load(ok).history == 300
    big = tmp_path / "big.toml"
    big.write_bytes(ok.read_bytes() + b"\n")
    with pytest.raises(ParameterError, match=rf"big.toml is {CONFIG_MAX_BYTES + 1} bytes; at most {CONFIG_MAX_BYTES}"):
        Params.load(big)
    with pytest.raises(ParameterError, match=r"config file .*folder.* is a folder$"):
        Params.load(tmp_path.joinpath("folder").mkdir() or tmp_path / "folder")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"zone_mask = \"caf\xe9.png\"\n")
    with pytest.raises(ParameterError, match=r"latin.toml is not valid TOML"):
        Params.load(latin)
    sec = tmp_path / "sec.toml"
    sec.write_text("[kl_threshold]\nx = 1\n")
    with pytest.raises(ParameterError, match=r"sec.toml: kl_threshold is a parameter, not a section \(sections: "
                                             r"cleanup, detection, events, model, zones\)$"):
        Params.load(sec)
    near = tmp_path / "near.toml"
    near.write_text("[cleanups]\nmin_area = 3\n")
    with pytest.raises(ParameterError, match=r"unknown section \[cleanups\] \(did you mean cleanup\?\)"):
        Params.load(near)
    far = tmp_path / "far.toml"
    far.write_text("[qqq]\nmin_area = 3\n")
    with pytest.raises(ParameterError, match=r"far.toml: unknown section \[qqq\] \(sections: cleanup, "):
        Params.load(far)
    with pytest.raises(ParameterError, match=r"^unknown parameter\(s\): zzz$"):
        Params.from_dict({"zzz": 1})
    with pytest.raises(ParameterError, match=r"^unknown parameter\(s\): nope, zzz$"):
        Params().replace(zzz=1, nope=2)
    under = tmp_path / "limit.toml" / "x.toml"                  # a file is not a folder
    with pytest.raises(ParameterError, match=r"^config file .*x.toml: Not a directory$"):
        Params.load(under)
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 50000 + "]" * 50000 + "\n")
    with pytest.raises(ParameterError, match=r"deep.toml is nested too deeply$"):
        Params.load(deep)
    for text, msg in [("[events]\nkl_threshold = 3\n", "kl_threshold belongs in [detection] (or at the top level), "
                                                        "not in [events]"),
                      ("kl_threshold = 3\n[detection]\nkl_threshold = 4\n",
                       "kl_threshold is set twice (at the top level and in [detection])"),
                      ("[detection.more]\nkl_threshold = 3\n",
                       "[detection.more]: sections do not nest (more is not a parameter of [detection])"),
                      ("kl_treshold = 3\n", "unknown parameter(s): kl_treshold (did you mean kl_threshold?)"),
                      ("[detection]\nkl_treshold = 3\n", "unknown parameter(s): kl_treshold (did you mean "
                                                           "kl_threshold?)")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ParameterError) as e:
            Params.load(bad)
        assert str(e.value).endswith("bad.toml: " + msg), str(e.value)
    mixed = tmp_path / "mixed.toml"
    mixed.write_text("min_area = 3\n[events]\nevent_gap = 0.5\n[cleanup]\nopen_size = 2\n")
    assert Params.load(mixed) == Params(min_area=3, event_gap=0.5, open_size=2)


def test_needs_reset_only_for_the_shape_of_the_state():
    """Planted: `and` -> `or` (any change restarts), `!=` -> `==`."""
    p = Params()
    assert not needs_reset(p, p.replace(kl_threshold=3.0, history=50, min_area=1))
    assert needs_reset(p, p.replace(n_components=4)) and needs_reset(p, p.replace(scale=0.5))
    assert not needs_reset(p, Params())


# ----------------------------------------------------------------------------- PendingParams
def test_pending_parameters_wait_for_the_next_frame_and_add_up():
    """Two set_params before a frame both apply (the second builds on the first), `params` shows the
    pending ones at once, the setter checks the new value, and a frame takes them.  Planted:
    `self._pending or self._params` -> `and` (the second change drops the first)."""
    m = MotionModel()
    f = np.full((24, 32, 3), 90, np.uint8)
    m.apply(f)
    m.set_params(kl_threshold=5.0)
    p = m.set_params(min_area=3)
    assert (p.kl_threshold, p.min_area) == (5.0, 3) and m.params == p
    assert m._params.kl_threshold == 16.0                         # not yet inside the frame loop
    m.apply(f)
    assert m._params == p and m.params == p
    bad = Params()
    bad.kl_threshold = -1.0                                        # a dataclass allows this; the setter does not
    with pytest.raises(ParameterError, match="below its minimum"):
        m.params = bad
    assert m.params == p
    m.params = Params(history=9)
    assert m.params.history == 9 and m._params.history == 200
    m.apply(f)
    assert m._params.history == 9


def test_parameters_set_from_another_thread_land_between_frames():
    """set_params from another thread while frames are applied: every frame sees one whole set
    (kl_threshold and min_area changed together), never half of one."""
    m = MotionModel()
    f = np.full((24, 32, 3), 90, np.uint8)
    seen = []
    stop = threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            k += 1
            m.set_params(kl_threshold=float(k % 50 + 1), min_area=k % 50 + 1)

    # a short GIL switch interval: the two threads hand over far more often (more chances to land a
    # set_params mid-frame), and each hand-over no longer waits the default 5 ms (21 s -> ~1 s)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    t = threading.Thread(target=flip)
    t.start()
    try:
        for _ in range(200):
            m.apply(f)
            seen.append((m._params.kl_threshold, m._params.min_area))
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old_interval)
    assert all(int(a) == b for a, b in seen[1:])
