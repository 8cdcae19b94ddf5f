"""`kl-motion config` and `kl-motion eval` as a user runs them: the README's `config > my.toml`
round trip, `--dump`, `--write`, eval's error paths, `--no-kl` and the mean row."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kl_motion.params import Params, spec
from kl_motion.sources import demo_path

DEMO = demo_path()


def kl(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kl_motion", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kl-motion: error:"), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# ----------------------------------------------------------------------------- config
def test_config_dump_lists_every_parameter_with_default_range_and_help():
    r = kl("config", "--dump")
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        if line.startswith("  "):
            name = line.split()[0]
            rows[name] = line
    table = spec()
    assert list(rows) == [t["name"] for t in table]              # every one, in the table's order
    for t in table:
        line = rows[t["name"]]
        assert f"default={t['default']!r}" in line
        assert t["help"] in line
        if t["lo"] is not None:
            assert f"range={t['lo']} .. {t['hi']}" in line
    groups = [l for l in r.stdout.splitlines() if l.startswith("[")]
    assert groups == [f"[{g}]" for g in dict.fromkeys(t["group"] for t in table)]


def test_config_redirected_to_a_file_reads_back(tmp_path):
    """README: `kl-motion config > my.toml` writes a config file to edit; `--config my.toml` reads it."""
    r = kl("config")
    assert r.returncode == 0, r.stderr
    (tmp_path / "my.toml").write_text(r.stdout)
    assert Params.load(tmp_path / "my.toml") == Params()
    # flags go into the file; the file, edited, comes back with the edit
    r = kl("config", "--kl-threshold", "17.5", "--min-area", "33", "--detect-shadows")
    assert r.returncode == 0, r.stderr
    text = r.stdout.replace("min_area = 33", "min_area = 44")
    assert text != r.stdout
    (tmp_path / "edited.toml").write_text(text)
    want = Params(kl_threshold=17.5, min_area=44, detect_shadows=True)
    assert Params.load(tmp_path / "edited.toml") == want
    # and a command reading it with --config prints it back unchanged, a flag overriding it
    r = kl("config", "--config", tmp_path / "edited.toml", "--history", "321")
    assert r.returncode == 0, r.stderr
    (tmp_path / "again.toml").write_text(r.stdout)
    assert Params.load(tmp_path / "again.toml") == want.replace(history=321)


def test_config_write_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "p.toml"
    r = kl("config", "--write", out, "--kl-threshold", "12")
    assert r.returncode == 0, r.stderr
    assert Params.load(out).kl_threshold == 12
    r = kl("config", "--write", out, "--kl-threshold", "13")
    one_line_error(r, str(out), "exists", "--force")
    assert Params.load(out).kl_threshold == 12                     # untouched
    r = kl("config", "--write", out, "--kl-threshold", "13", "--force")
    assert r.returncode == 0, r.stderr
    assert Params.load(out).kl_threshold == 13


# ----------------------------------------------------------------------------- eval
def _tiny_sequence(root: Path, name: str, n: int = 12, first: int = 4, size=(40, 32)) -> Path:
    """A CDnet-layout sequence: a square appears at frame 8; its ground truth says where."""
    w, h = size
    seq = root / name
    (seq / "input").mkdir(parents=True)
    (seq / "groundtruth").mkdir()
    for i in range(1, n + 1):
        f = np.full((h, w, 3), 90, np.uint8)
        g = np.zeros((h, w), np.uint8)
        if i >= 8:
            f[8:24, 10:26] = 230
            g[8:24, 10:26] = 255
        if i < first:
            g[:] = 85
        cv2.imwrite(str(seq / "input" / f"in{i:06d}.png"), f)
        cv2.imwrite(str(seq / "groundtruth" / f"gt{i:06d}.png"), g)
    (seq / "temporalROI.txt").write_text(f"{first} {n}\n")
    return seq


@pytest.mark.parametrize("damage, msg", [
    ("no_groundtruth", "not in the CDnet layout"),
    ("no_frames", "no frames"),
    ("bad_troi", "expected two frame numbers"),
    ("unreadable_gt", "cannot read ground truth"),
    ("unreadable_roi", "ROI.bmp: cannot read"),
    ("gt_size", "differs from ground truth"),
])
def test_eval_broken_sequences_are_one_line_errors(tmp_path, damage, msg):
    seq = _tiny_sequence(tmp_path, "s")
    if damage == "no_groundtruth":
        shutil.rmtree(seq / "groundtruth")
    elif damage == "no_frames":
        for p in (seq / "input").iterdir():
            p.unlink()
    elif damage == "bad_troi":
        (seq / "temporalROI.txt").write_text("first last\n")
    elif damage == "unreadable_gt":
        (seq / "groundtruth" / "gt000006.png").write_bytes(b"not a png")
    elif damage == "unreadable_roi":
        (seq / "ROI.bmp").write_bytes(b"not a bmp")
    elif damage == "gt_size":
        cv2.imwrite(str(seq / "groundtruth" / "gt000005.png"), np.zeros((10, 10), np.uint8))
    out = tmp_path / "scores.json"
    r = kl("eval", seq, "-q", "--json", out)
    one_line_error(r, msg)
    assert not out.exists()                                       # nothing half-written


def test_eval_no_kl_scores_only_the_named_methods(tmp_path):
    seq = _tiny_sequence(tmp_path, "s")
    out = tmp_path / "scores.json"
    r = kl("eval", seq, "-q", "--no-kl", "--method", "mog2-raw", "--json", out)
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    assert [x["method"] for x in recs] == ["mog2-raw"]
    assert "kl_motion" not in r.stdout.split("(ms/frame")[0]
    both = tmp_path / "both.json"
    assert kl("eval", seq, "-q", "--method", "mog2-raw", "--json", both).returncode == 0
    b = json.loads(both.read_text())
    assert [x["method"] for x in b] == ["kl_motion", "mog2-raw"]
    assert {k: b[1][k] for k in ("tp", "fp", "fn", "tn")} == {k: recs[0][k] for k in ("tp", "fp", "fn", "tn")}
    # --no-kl alone has nothing to score
    one_line_error(kl("eval", seq, "-q", "--no-kl"), "--no-kl needs at least one --method")


def test_eval_mean_row_of_several_sequences(tmp_path):
    a = _tiny_sequence(tmp_path, "a", n=12, first=4)
    b = _tiny_sequence(tmp_path, "b", n=16, first=10, size=(48, 40))
    out = tmp_path / "scores.json"
    r = kl("eval", a, b, "-q", "--method", "mog2-raw", "--json", out)
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    assert [x["sequence"].rsplit("/", 1)[-1] for x in recs] == ["a", "a", "b", "b", "mean", "mean"]
    per = [x for x in recs if x["sequence"] != "mean"]
    means = [x for x in recs if x["sequence"] == "mean"]
    assert [x["method"] for x in per] == ["kl_motion", "mog2-raw"] * 2
    assert [x["method"] for x in means] == ["kl_motion", "mog2-raw"]
    for m in means:
        rs = [x for x in per if x["method"] == m["method"]]
        assert len(rs) == 2
        for k in ("tp", "fp", "fn", "tn", "frames_scored"):               # counts: summed
            assert m[k] == rs[0][k] + rs[1][k]
        for k in ("recall", "precision", "f_measure", "pwc", "specificity", "fpr", "fnr"):   # rates: mean of the rows
            assert m[k] == pytest.approx((rs[0][k] + rs[1][k]) / 2)
        assert m["ms_per_frame"] == pytest.approx((rs[0]["ms_per_frame"] + rs[1]["ms_per_frame"]) / 2)
    assert per[0]["frames_scored"] == 9 and per[2]["frames_scored"] == 7
    # the two sequences score differently, so a mean that is one of them shows
    assert per[0]["f_measure"] != per[2]["f_measure"] or per[0]["pwc"] != per[2]["pwc"]
    # the table prints the mean rows too
    table = r.stdout.split("(ms/frame")[0]
    mean_lines = [l for l in table.splitlines() if l.startswith("mean")]
    assert len(mean_lines) == 2
    k = means[0]
    assert f"{k['f_measure']:.3f}" in mean_lines[0] and str(k["tp"]) in mean_lines[0]


# ----------------------------------------------------------------------------- exit codes of main()
def test_main_returns_the_commands_exit_code(tmp_path, capsys):
    """In-process: main() returns what the command returns (process: 2 when an input failed),
    2 for an error or no command, and 0 for success."""
    from kl_motion.cli import main
    assert main(["config", "--write", str(tmp_path / "p.toml")]) == 0
    assert main(["process", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([]) == 2                                         # no command: the help, and an error code
    assert "COMMAND" in capsys.readouterr().out
    assert main(["config", "--kl-threshold", "-1"]) == 2
    assert capsys.readouterr().err.startswith("kl-motion: error:")


def test_view_without_pyside6_is_a_one_line_error(tmp_path):
    """A broken Qt install (PySide6 that cannot be imported) is one line, not a traceback."""
    fake = tmp_path / "site" / "PySide6"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('this PySide6 is broken')\n")
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "kl_motion", "view", str(DEMO / "input")], capture_output=True,
                       text=True, timeout=120, env=env)
    one_line_error(r, "the viewer needs PySide6", "this PySide6 is broken")


def test_main_turns_unexpected_errors_into_one_line_and_a_closed_pipe_into_success(monkeypatch, capsys):
    """A bug in a command is one line naming it (exit 1), unless KL_MOTION_DEBUG asks for the
    traceback; a reader that closes the pipe early (`| head`) is not an error (exit 0)."""
    import kl_motion.cli as cli

    def boom(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "cmd_config", boom)
    monkeypatch.delenv("KL_MOTION_DEBUG", raising=False)
    assert cli.main(["config"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kl-motion: internal error: RuntimeError: boom (set KL_MOTION_DEBUG=1 for details)"]
    monkeypatch.setenv("KL_MOTION_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["config"])

    def closed(args):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "cmd_config", closed)
    assert cli.main(["config"]) == 0


def test_eval_checks_the_method_names_before_any_work(tmp_path):
    r = kl("eval", tmp_path / "nothere", "--method", "nosuch", "-q")
    one_line_error(r, "unknown detector")


def test_progress_bar_only_on_a_terminal_and_not_when_quiet(monkeypatch):
    import argparse
    import io
    import kl_motion.cli as cli

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = cli._bar(argparse.Namespace(quiet=False), "seq")
    assert bar is not None and not bar.leave
    bar.close()
    assert cli._bar(argparse.Namespace(quiet=True), "seq") is None
    assert cli._bar(argparse.Namespace(), "seq") is not None                 # no -q option: a bar
    monkeypatch.setattr(sys, "stderr", io.StringIO())                       # not a terminal: none
    assert cli._bar(argparse.Namespace(quiet=False), "seq") is None
