"""The one parameter table.

Every tunable of kl_motion lives here, once: its default, its valid range and a
help line.  The library validates against it, the CLI generates its flags from
it, the GUI builds its sliders from it and the TOML config file is read into it.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import ParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:                                   # Python 3.10: the same parser as the tomli package
    import tomli as tomllib


CONFIG_MAX_BYTES = 1 << 20    # a config file larger than this is refused
ZONE_MAX_POINTS = 1000       # points in all polygons of one zone list (ignore_zones, include_zones)


def _p(default, lo=None, hi=None, help="", group="model", gui=True, reset=False):
    md = dict(lo=lo, hi=hi, help=help, group=group, gui=gui, reset=reset)
    if isinstance(default, list):
        return field(default_factory=list, metadata=md)
    return field(default=default, metadata=md)


@dataclass
class Params:
    """Every parameter of the detector, the cleanup and the events, with its default, range and help
    (``spec()``; ``kl-motion config --dump``).  ``replace(**changes)`` gives a checked copy, ``validate()``
    raises ParameterError for a bad value; ``load``/``save`` read and write the TOML the CLI uses."""
    # --- background mixture -------------------------------------------------
    history: int = _p(200, 1, 100000, "Background memory in frames; the learning rate is 1/history (1/n for the first n frames).")
    n_components: int = _p(3, 1, 8, "Maximum number of Gaussians per pixel in the background mixture.", reset=True)
    match_sigma: float = _p(2.5, 0.5, 10.0, "A pixel matches a component when it lies within this many standard deviations of it.")
    background_ratio: float = _p(0.9, 0.1, 1.0, "Heaviest components whose weights add up to this fraction form the background.")
    var_init: float = _p(15.0, 1.0, 400.0, "Variance (grey levels squared) of a newly created component.")
    var_min: float = _p(9.0, 0.1, 400.0, "Sensor noise floor: lower bound of the variance of every distribution (background and current).")
    var_max: float = _p(75.0, 1.0, 2000.0, "Upper bound of a component's variance.")
    complexity_prior: float = _p(0.05, 0.0, 0.5, "Zivkovic's prior: components that are not supported lose weight and disappear.")
    learn_every: int = _p(2, 1, 4, "Turns: a pixel's mixture learns on every n-th frame (the rows take turns), and on every frame where it or a pixel near it in its row is foreground or unexplained; it then learns at the rate of all the frames since it last learned, so the memory stays history frames. 1 = every pixel on every frame; 2 spares 5-15 % of a settled scene's frame time (more at large sizes), F within 0.003 on six of the seven shared sequences (docs/accuracy.md).")
    fg_learn_factor: float = _p(0.1, 0.0, 1.0, "Learning rate multiplier at pixels detected as foreground (1 = learn everywhere, 0 = conservative).")
    # --- current distribution and score ------------------------------------
    pool_radius: int = _p(1, 0, 3, "Radius of the neighbourhood pooled into each pixel's current distribution (0 = the pixel alone).")
    current_rate: float = _p(1.0, 0.05, 1.0, "Rate of the short-term moving average that forms the current distribution (1 = this frame only).")
    neighbour_radius: int = _p(1, 0, 3, "A pixel that the background of a neighbour within this radius explains is background (swaying trees, camera jitter; 0 = off).")
    restless_gain: float = _p(72.0, 0.0, 500.0, "Pixel-level feedback: a pixel's threshold is kl_threshold x (1 + restless_gain x its restless level, the moving average of how often its label flips); water and leaves stop firing, calm pixels stay sensitive (0 = off).")
    restless_rate: float = _p(0.03, 0.0, 1.0, "Rate of the moving average of label flips behind restless_gain (after a start or a relearn, 1/n over the first n frames until that falls below this: the level is then the mean of the flips seen so far).")
    restless_learn: float = _p(10.0, 0.0, 1000.0, "Foreground learns at fg_learn_factor of the rate, except at restless pixels: the slowdown fades out as restless_learn x restless level reaches 1 (waves and leaves labelled foreground are still learned; a person who stops at a calm pixel stays foreground; 0 = off).")
    kl_threshold: float = _p(16.0, 0.0, 500.0, "A pixel is foreground where KL(current || background) exceeds this (at a calm pixel: see restless_gain).", group="detection")
    detect_shadows: bool = _p(True, help="Label darker copies of the background colour as shadow (127) instead of foreground (colour input only: a grey pixel has no colour to compare).", group="detection")
    shadow_low: float = _p(0.7, 0.0, 1.0, "Darkest brightness ratio (pixel / background) still taken as shadow.", group="detection")
    shadow_high: float = _p(0.95, 0.0, 1.0, "Brightest brightness ratio still taken as shadow.", group="detection")
    shadow_chroma: float = _p(0.04, 0.0, 1.0, "Largest colour distortion (relative to brightness) still taken as shadow.", group="detection")
    scale: float = _p(1.0, 0.1, 1.0, "Detect at this fraction of the frame size; the mask is resized back to full size.", group="detection", reset=True)
    # --- cleanup -------------------------------------------------------------
    median_size: int = _p(3, 0, 15, "Median filter size applied to the mask (0 = off; even values are rounded up).", group="cleanup")
    close_size: int = _p(5, 0, 31, "Morphological closing size that fills holes in objects (0 = off).", group="cleanup")
    open_size: int = _p(0, 0, 31, "Morphological opening size that removes specks (0 = off).", group="cleanup")
    fill_holes: int = _p(1500, 0, 1000000, "Holes inside a blob up to this many pixels (at full size) are filled (0 = off).", group="cleanup")
    min_area: int = _p(30, 0, 100000, "Blobs smaller than this many pixels (at full size) are removed.", group="cleanup")
    feedback_min_area: int = _p(15, 0, 100000, "Blobs of at least this many pixels (at full size) count as objects for the restless feedback (label flips next to them are not counted), whatever min_area removes from the output.", group="cleanup")
    # --- zones ---------------------------------------------------------------
    ignore_zones: list = _p([], help="Polygons [[x, y], ...] in fractions of width/height (0..1) where motion is ignored.", group="zones", gui=False)
    include_zones: list = _p([], help="If any, only motion inside these polygons (fractions of width/height) counts.", group="zones", gui=False)
    zone_mask: str = _p("", help="Image file: black pixels are ignored, others are watched (combined with the polygons).", group="zones", gui=False)
    # --- events --------------------------------------------------------------
    motion_area: float = _p(0.002, 0.0, 1.0, "A frame is in motion when this fraction of the frame (after min_area) is foreground.", group="events")
    event_start_frames: int = _p(3, 1, 1000, "Consecutive motion frames needed to start an event.", group="events")
    warmup_frames: int = _p(20, 0, 100000, "Frames after the model starts in which no motion is counted (the background is still being learned).", group="events")
    event_gap: float = _p(2.0, 0.0, 3600.0, "Seconds without motion that end an event.", group="events")
    pre_capture: float = _p(1.0, 0.0, 60.0, "Seconds of video kept before an event in its clip.", group="events")
    post_capture: float = _p(1.0, 0.0, 60.0, "Seconds of video kept after an event in its clip.", group="events")
    lightswitch_fraction: float = _p(0.6, 0.05, 1.0, "When more than this fraction of the frame changes at once it is an illumination change: relearn fast, no event.", group="events")

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------
    def validate(self) -> "Params":
        for f in fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            t = _type_of(f)
            if t is bool:
                if not isinstance(v, (bool,)):
                    raise ParameterError(f"{f.name} must be true or false, got {_short(v)}")
            elif t is int:
                if isinstance(v, bool) or not isinstance(v, (int,)) and not (isinstance(v, float) and v.is_integer()):
                    raise ParameterError(f"{f.name} must be an integer, got {_short(v)}")
                v = int(v)
                object.__setattr__(self, f.name, v)
            elif t is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ParameterError(f"{f.name} must be a number, got {_short(v)}")
                v = float(v)
                if not math.isfinite(v):
                    raise ParameterError(f"{f.name} must be finite, got {_short(v)}")
                object.__setattr__(self, f.name, v)
            elif t is str:
                if not isinstance(v, str):
                    raise ParameterError(f"{f.name} must be a string, got {_short(v)}")
            elif t is list:
                _check_polygons(f.name, v)
            if t in (int, float):
                if m["lo"] is not None and v < m["lo"]:
                    raise ParameterError(f"{f.name}={v} is below its minimum {m['lo']}")
                if m["hi"] is not None and v > m["hi"]:
                    raise ParameterError(f"{f.name}={v} is above its maximum {m['hi']}")
        if self.var_min > self.var_max:
            raise ParameterError(f"var_min={self.var_min} must not exceed var_max={self.var_max}")
        if self.shadow_low > self.shadow_high:
            raise ParameterError(f"shadow_low={self.shadow_low} must not exceed shadow_high={self.shadow_high}")
        return self

    def replace(self, **changes) -> "Params":
        unknown = set(changes) - set(names())
        if unknown:
            raise ParameterError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Params":
        """Parameters from a TOML document: at the top level or under the section of their
        group (``[detection]``, ``[events]``, ...), each at most once."""
        flat = _flatten(d)
        unknown = set(flat) - set(names())
        if unknown:
            raise ParameterError("unknown parameter(s): " + ", ".join(_with_nearest(k, names()) for k in sorted(unknown)))
        try:
            return cls(**flat)
        except TypeError as e:  # pragma: no cover - defensive
            raise ParameterError(str(e)) from None

    # ------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "Params":
        """Read a TOML config file; every problem is a ParameterError that names the file."""
        from .fsnames import shown
        path = Path(path)
        name = shown(path)
        try:
            size = path.stat().st_size
            if size > CONFIG_MAX_BYTES:
                raise ParameterError(f"config file {name} is {size} bytes; at most {CONFIG_MAX_BYTES} are read")
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParameterError(f"config file not found: {name}") from None
        except IsADirectoryError:
            raise ParameterError(f"config file {name} is a folder") from None
        except OSError as e:
            raise ParameterError(f"config file {name}: {e.strerror or e}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ParameterError(f"config file {name} is not valid TOML: {e}") from None
        except RecursionError:
            raise ParameterError(f"config file {name} is nested too deeply") from None
        try:
            return cls.from_dict(data)
        except ParameterError as e:
            raise ParameterError(f"config file {name}: {e}") from None

    def to_toml(self, comments: bool = True) -> str:
        lines = ["# kl_motion parameters (see `kl-motion config --dump`)"]
        group = None
        for f in fields(self):
            m = f.metadata
            if m["group"] != group:
                group = m["group"]
                lines.append("")
                lines.append(f"# --- {group} ---")
            if comments:
                rng = "" if m["lo"] is None else f" [{m['lo']} .. {m['hi']}]"
                lines.append(f"# {m['help']}{rng}")
            lines.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        write_text(path, self.to_toml())



class PendingParams:
    """Parameters that any thread may change while frames are processed, applied between frames
    (never in the middle of one).  ``params`` and ``set_params`` record the change; the owner calls
    ``_take_pending()`` at the start of each frame, which swaps it in, drops the cached zone mask
    when the zones changed, and calls ``_params_changed(old, new)`` for the owner's own state.
    MotionModel and the OpenCV detectors share it."""

    _zone_key: object

    def _init_params(self, p: Params) -> None:
        self._params = p.validate()
        self._pending: Params | None = None
        self._lock = threading.Lock()

    @property
    def params(self) -> Params:
        with self._lock:
            return self._pending or self._params

    @params.setter
    def params(self, p: Params) -> None:
        p.validate()
        with self._lock:
            self._pending = p

    def set_params(self, **changes) -> Params:
        """Change parameters; they take effect on the next frame (never mid-frame)."""
        with self._lock:
            p = self._pending = (self._pending or self._params).replace(**changes)
        return p

    def _take_pending(self) -> None:
        with self._lock:
            p, self._pending = self._pending, None
        if p is None:
            return
        old, self._params = self._params, p
        if (old.ignore_zones, old.include_zones, old.zone_mask) != (p.ignore_zones, p.include_zones, p.zone_mask):
            self._zone_key = None       # zones changed: rebuild the zone mask on the next frame
        self._params_changed(old, p)

    def _params_changed(self, old: Params, new: Params) -> None:
        """The owner's reaction to a parameter change taken between frames (none by default)."""

# ----------------------------------------------------------------------
def _type_of(f) -> type:
    t = f.type
    if isinstance(t, str):
        t = {"int": int, "float": float, "bool": bool, "str": str, "list": list}[t]
    return t


def names() -> list[str]:
    return [f.name for f in fields(Params)]


def spec() -> list[dict[str, Any]]:
    """The table as plain records: name, type, default, lo, hi, help, group."""
    out = []
    defaults = Params()
    for f in fields(Params):
        m = f.metadata
        out.append(dict(name=f.name, type=_type_of(f), default=getattr(defaults, f.name), lo=m["lo"],
                        hi=m["hi"], help=m["help"], group=m["group"], gui=m["gui"], reset=m["reset"]))
    return out


def needs_reset(old: Params, new: Params) -> bool:
    """Whether going from old to new changes the shape of the model state."""
    return any(f.metadata["reset"] and getattr(old, f.name) != getattr(new, f.name) for f in fields(Params))


def _flatten(d: dict) -> dict:
    """{name: value} from a TOML document whose parameters are at the top level or in the
    section of their group; a parameter in another section, set twice, or a section that is
    not a group is a ParameterError."""
    group_of = {f.name: f.metadata["group"] for f in fields(Params)}
    groups = sorted(set(group_of.values()))
    out: dict[str, Any] = {}
    where: dict[str, str] = {}

    def put(k: str, v, at: str, section: str | None) -> None:
        if section is not None and k in group_of and group_of[k] != section:
            raise ParameterError(f"{k} belongs in [{group_of[k]}] (or at the top level), not in [{section}]")
        if k in out:
            raise ParameterError(f"{k} is set twice ({where[k]} and {at})")
        out[k], where[k] = v, at

    for k, v in d.items():
        if not isinstance(v, dict):
            put(k, v, "at the top level", None)
            continue
        if k not in groups:
            what = f"{k} is a parameter, not a section" if k in group_of else \
                _with_nearest(f"unknown section [{k}]", groups, k)
            raise ParameterError(f"{what} (sections: {', '.join(groups)})")
        for k2, v2 in v.items():
            if isinstance(v2, dict):
                raise ParameterError(f"[{k}.{k2}]: sections do not nest ({k2} is not a parameter of [{k}])")
            put(k2, v2, f"in [{k}]", k)
    return out


def _with_nearest(text: str, choices, word: str | None = None) -> str:
    """``text`` followed by ' (did you mean X?)' when a choice is close to ``word`` (default: text)."""
    import difflib
    near = difflib.get_close_matches(text if word is None else word, list(choices), n=1, cutoff=0.75)
    return f"{text} (did you mean {near[0]}?)" if near else text


def _check_polygons(name: str, v) -> None:
    if not isinstance(v, list):
        raise ParameterError(f"{name} must be a list of polygons, got {_short(v)}")
    points = sum(len(poly) if isinstance(poly, (list, tuple)) else 1 for poly in v)
    if points > ZONE_MAX_POINTS:   # cv2.fillPoly's time grows faster than the number of points
        raise ParameterError(f"{name} has {points} points in {len(v)} polygon(s); at most {ZONE_MAX_POINTS} "
                             "(draw a complex zone as a zone_mask image)")
    for poly in v:
        if not isinstance(poly, (list, tuple)) or len(poly) < 3:
            raise ParameterError(f"{name}: each polygon needs at least 3 [x, y] points, got {_short(poly)}")
        for pt in poly:
            if (not isinstance(pt, (list, tuple)) or len(pt) != 2
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in pt)):
                raise ParameterError(f"{name}: a point must be [x, y] numbers, got {_short(pt)}")
            if not all(-0.001 <= c <= 1.001 for c in pt):
                raise ParameterError(f"{name}: point {pt!r} is outside 0..1 (coordinates are fractions of width/height)")


def _short(v, limit: int = 80) -> str:
    """repr(v) cut to one short line (a hostile value can be megabytes or nested deeply)."""
    try:
        r = repr(v)
    except RecursionError:
        r = f"<{type(v).__name__} nested too deeply>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")
