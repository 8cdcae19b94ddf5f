"""Times as people read them: ``HH:MM:SS.mmm`` timecodes, and ``--start``/``--end`` positions
given as a time (``90``, ``1:30``, ``00:01:30.5``, ``12s``) or a frame number (``150f``)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import ParameterError


def timecode(seconds: float) -> str:
    """``3725.5`` -> ``"01:02:05.500"`` (hours grow past 99; negative times count as 0)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass(frozen=True)
class Position:
    """A point in an input: ``frame`` (0-based index) or ``seconds``; exactly one is set."""
    frame: int | None = None
    seconds: float | None = None

    def to_frame(self, fps: float) -> int:
        """The 0-based index of the first frame at or after this position."""
        if self.frame is not None:
            return self.frame
        return int(math.ceil(self.seconds * (fps if fps and fps > 0 else 25.0) - 1e-6))

    def __str__(self) -> str:
        return f"frame {self.frame + 1}" if self.frame is not None else timecode(self.seconds)


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_position(text: str, what: str = "--start") -> Position:
    """``"150f"`` -> frame 150 (1-based, as in stats.csv; stored 0-based); ``"90"``, ``"90s"``,
    ``"1:30"``, ``"0:01:30.25"`` -> seconds.  A bad value is a ParameterError."""
    s = str(text).strip().lower()
    try:
        if s.endswith("f"):
            n = int(s[:-1])
            if n < 1:
                raise ValueError
            return Position(frame=n - 1)
        m = _CLOCK.match(s)
        if m:
            h, mi, sec = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
            if mi >= 60 and m.group(1) is not None or sec >= 60:
                raise ValueError
            return Position(seconds=h * 3600 + mi * 60 + sec)
        v = float(s[:-1] if s.endswith("s") else s)
        if v < 0 or not math.isfinite(v):
            raise ValueError
        return Position(seconds=v)
    except ValueError:
        raise ParameterError(f"{what}: expected seconds (90, 1:30, 00:01:30.5) or a frame number "
                             f"(150f), got {text!r}") from None
