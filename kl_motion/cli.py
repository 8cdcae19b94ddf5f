"""`kl-motion` command line: a thin layer over the model and the one parameter table.

Subcommands: eval, process, view, config.  Every parameter of the table is a flag
(``--kl-threshold 6``), and ``--config FILE`` reads a TOML file first; flags win.
Errors a user can cause are one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import KLMotionError, ParameterError
from .flags import add_param_arguments, params_from_args, with_demo
from .params import spec
from .threads import add_argument as add_threads_argument

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


# ----------------------------------------------------------------------------- commands
def cmd_config(args) -> int:
    if args.dump:
        rows = spec()
        w = max(len(r["name"]) for r in rows)
        group = None
        for r in rows:
            if r["group"] != group:
                group = r["group"]
                print(f"[{group}]")
            rng = "" if r["lo"] is None else f"{r['lo']} .. {r['hi']}"
            print(f"  {r['name']:<{w}}  default={r['default']!r:<8}  range={rng or '-':<16}  {r['help']}")
        return 0
    p = params_from_args(args)
    text = p.to_toml()
    if args.write:
        from pathlib import Path
        out = Path(args.write)
        if out.exists() and not args.force:
            raise KLMotionError(f"{out} exists (use --force to overwrite)")
        p.save(out)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate_sequence, format_table, mean_records, write_json
    from .threads import check, use_threads
    p = params_from_args(args)
    check(args.threads)
    from .analyzer import canonical, make_detector
    methods = ["kl_motion"] + [canonical(m) for m in (args.method or []) if canonical(m) != "kl_motion"]
    for m in methods:
        make_detector(m, p)          # an unknown or unavailable name: one line, before any work
    if args.no_kl:
        methods = methods[1:]
        if not methods:
            raise KLMotionError("--no-kl needs at least one --method")
    import cv2
    nthreads = use_threads(args.threads)
    sequences = with_demo(args.sequences, args.demo, "SEQ_DIR")
    records = []
    for seq in sequences:
        bar = _bar(args, desc=os.path.basename(os.path.normpath(seq)))
        cb = (lambda i, n, b=bar: (setattr(b, "total", n), b.update(1))) if bar else None
        try:
            records += evaluate_sequence(seq, methods, p, on_frame=cb)
        finally:
            if bar:
                bar.close()
    if len(sequences) > 1:
        records += mean_records(records)
    print(format_table(records))
    print(f"(ms/frame with {nthreads} numba thread(s), {cv2.getNumThreads()} OpenCV thread(s))")
    if args.json:
        write_json(records, args.json)
    return 0


def _bar(args, desc: str):
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(desc=desc, unit="frame", leave=False, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kl-motion", description="Motion detection with a KL-divergence motion score.")
    ap.add_argument("--version", action="version", version=f"kl-motion {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("eval", help="score sequences in the CDnet-2014 layout against their ground truth")
    e.add_argument("sequences", nargs="*", metavar="SEQ_DIR", help="sequence folders (input/, groundtruth/, temporalROI.txt)")
    e.add_argument("--demo", action="store_true", help="also score the demo clip shipped with the package")
    e.add_argument("--method", action="append", metavar="NAME",
                   help="also run this detector on the same frames (repeatable): mog2, knn (OpenCV + kl_motion's "
                        "cleanup and zones), mog2-raw, knn-raw (OpenCV alone); with cv2.bgsegm also gsoc, cnt, mog, "
                        "gmg, lsbp and their -raw twins")
    e.add_argument("--no-kl", action="store_true", help="do not run kl_motion itself (only the --method ones)")
    e.add_argument("--json", metavar="FILE", help="also write the numbers as JSON records")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_threads_argument(e)
    add_param_arguments(e)
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("config", help="print the parameters as TOML, or every parameter with --dump")
    c.add_argument("--dump", action="store_true", help="list every parameter with its default, range and help")
    c.add_argument("--write", metavar="FILE", help="write the TOML to FILE instead of printing it")
    c.add_argument("--force", action="store_true", help="overwrite FILE")
    add_param_arguments(c)
    c.set_defaults(func=cmd_config)

    try:
        from . import process_cmd
        pr = sub.add_parser("process", help="process videos, folders, cameras or streams headless into masks, events, stats")
        process_cmd.add_arguments(pr)
        add_param_arguments(pr)
        pr.set_defaults(func=process_cmd.run)
    except ImportError:
        pass

    v = sub.add_parser("view", help="open the desktop viewer")
    v.add_argument("source", nargs="?", help="camera index, file, image folder or URL (default: first camera, else the demo)")
    add_threads_argument(v)
    add_param_arguments(v)
    v.set_defaults(func=_cmd_view)
    return ap


def _cmd_view(args) -> int:
    try:
        from .gui.app import run as run_view
    except ImportError as e:
        raise KLMotionError(f"the viewer needs PySide6: {e}") from None
    return run_view(args)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "command", None):
        ap.print_help()
        return EXIT_ERROR
    try:
        return int(args.func(args) or 0)
    except KLMotionError as e:
        print(f"kl-motion: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kl-motion: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:  # never a traceback for a user; KL_MOTION_DEBUG=1 shows it
        if os.environ.get("KL_MOTION_DEBUG"):
            raise
        print(f"kl-motion: internal error: {type(e).__name__}: {e} (set KL_MOTION_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser", "add_param_arguments", "params_from_args", "ParameterError"]
