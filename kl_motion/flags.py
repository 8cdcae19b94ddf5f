"""Command-line flags from the one parameter table: every parameter is a flag (``--kl-threshold 6``)
and ``--config FILE`` reads a TOML file first; flags win.  Used by every command (cli, process,
view); it imports nothing of them, so none of them imports another through it.
"""
from __future__ import annotations

import argparse
import json

from .errors import KLMotionError
from .params import Params, spec


def add_param_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --config and one flag per parameter of the table."""
    parser.add_argument("--config", metavar="FILE", help="TOML file of parameters (flags override it)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for s in spec():
        g = groups.get(s["group"])
        if g is None:
            g = groups[s["group"]] = parser.add_argument_group(f"{s['group']} parameters")
        flag = "--" + s["name"].replace("_", "-")
        rng = "" if s["lo"] is None else f" [{s['lo']}..{s['hi']}]"
        h = f"{s['help']} (default {s['default']!r}{rng})".replace("%", "%%")
        if s["type"] is bool:
            g.add_argument(flag, dest=s["name"], action=argparse.BooleanOptionalAction, default=None, help=h)
        elif s["type"] is list:
            g.add_argument(flag, dest=s["name"], metavar="JSON", type=_json_list, default=None,
                           help=h + ' e.g. \'[[[0,0],[0.5,0],[0.5,0.5]]]\'')
        else:
            g.add_argument(flag, dest=s["name"], type=s["type"], default=None, metavar=s["type"].__name__.upper(),
                           help=h)


def _json_list(text: str):
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise argparse.ArgumentTypeError("JSON nested too deeply") from None
    if not isinstance(v, list):
        raise argparse.ArgumentTypeError("expected a JSON list of polygons")
    return v


def params_from_args(args: argparse.Namespace) -> Params:
    """Defaults <- config file <- flags; validated (raises ParameterError)."""
    p = Params.load(args.config) if getattr(args, "config", None) else Params()
    changes = {s["name"]: getattr(args, s["name"]) for s in spec() if getattr(args, s["name"], None) is not None}
    return p.replace(**changes) if changes else p


def with_demo(given: list[str], demo: bool, metavar: str, part: str = "") -> list[str]:
    """The command's inputs, and with --demo the demo clip shipped in the package (``part``: its
    sub-folder, e.g. "input"); at least one, else a one-line error."""
    out = [str(s) for s in given]
    if demo:
        from .sources import demo_path
        out.append(str(demo_path() / part) if part else str(demo_path()))
    if not out:
        raise KLMotionError(f"give at least one {metavar}, or --demo for the demo clip")
    return out
