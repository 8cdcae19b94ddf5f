"""Mutation testing of kl_motion's plain-Python modules with cosmic-ray (docs/testing.md).

    pip install cosmic-ray==8.7.0
    nice -n 19 python bench/mutation.py                       # every module of MODULES, 2 at a time
    nice -n 19 python bench/mutation.py --modules evaluate,events --jobs 1
    python bench/mutation.py --report                          # the table of what has run so far

cosmic-ray mutates the source file on disk, so each job works in its own copy of the tree
(``--work``, default /tmp/kl-mutation/tree-N, made from the files git tracks plus the working
copy's changes) and the tests import that copy (PYTHONPATH; the ``kl-motion`` runs that the tests
start as subprocesses import it too).  Each module has its own session (``--work``/NAME.sqlite,
resumable: run the command again and it does what is left) and its own targeted tests (TESTS:
the fast tests that exercise it, fastest first, ``-x``), never the whole suite.

Operators: cosmic-ray's core set less the exhaustive cross products, one "natural" swap per
operator kept (EXCLUDE below): + -, * /, // *, | &, == !=, < <=, > >=, is / is not, in / not
in, unary - and "not" removed, plus every other core operator (numbers +-1, True/False, and/or,
break/continue, exceptions, zero-iteration loops, "not" added to conditions); decorators and
variable replacement/insertion are left out.

Score per module = killed / (mutants - equivalent), where a timeout counts as killed (the
mutant hangs the tests) and an equivalent mutant is one listed in EQUIVALENT with the reason it
cannot change behaviour.  Surviving mutants are printed with their diff.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the tests that exercise it, fastest first (pytest -x stops at the first failure)
TESTS: dict[str, list[str]] = {
    "evaluate": ["tests/test_evaluate.py::test_counts_follow_cdnet_labels_and_roi", "tests/test_exact_small.py",
                 "tests/test_evaluate.py::test_only_frames_in_the_temporal_roi_are_scored",
                 "tests/test_commands.py::test_eval_mean_row_of_several_sequences",
                 "tests/test_commands.py::test_eval_broken_sequences_are_one_line_errors",
                 "tests/test_accuracy.py::test_default_parameters_score_exactly_as_docs_accuracy_json[ucsd/boats]",
                 "tests/test_accuracy.py::test_default_parameters_score_exactly_as_docs_accuracy_json[ucsd/ocean]",
                 "tests/test_process_outputs.py::test_cdnet_bins_score_like_kl_motion_eval"],
    "events": ["tests/test_events.py", "tests/test_events_exact.py",
               "tests/test_analyzer.py::test_analyzer_events_match_the_event_detector_fed_by_hand",
               "tests/test_model_runtime.py::test_warmup_boundary_is_exact",
               "tests/test_tracker_timefmt.py"],
    "postprocess": ["tests/test_postprocess_fast.py", "tests/test_postprocess.py",
                    "tests/test_exact_small.py::test_zone_polygon_corners_land_on_the_last_row_and_column",
                    "tests/test_exact_small.py::test_zone_mask_image_is_read_and_scaled",
                    "tests/test_exact_small.py::test_bit_foreground_of_a_456_pixel_wide_mask",
                    "tests/test_exact_small.py::test_opening_of_two_pixels_on_opencvs_path",
                    "tests/test_exact_small.py::test_feedback_mask_holds_the_blobs_of_feedback_min_area_only",
                    "tests/test_exact_small.py::test_median_corners_feedback_edges_and_zone_mask_value_one",
                    "tests/test_model.py::test_zones_remove_motion_inside_them",
                    "tests/test_model.py::test_scale_gives_full_size_outputs"],
    "analyzer": ["tests/test_analyzer_exact.py", "tests/test_model_runtime.py::test_warmup_boundary_is_exact",
                 "tests/test_analyzer.py",
                 "tests/test_api.py::test_frames_masks_are_motion_model_apply_on_the_same_frames",
                 "tests/test_api.py::test_frames_motion_flags_and_events_agree_with_detect"],
    "cli": ["tests/test_commands.py::test_main_returns_the_commands_exit_code", "tests/test_commands.py",
            "tests/test_evaluate.py::test_eval_bad_input_is_one_line",
            "tests/test_evaluate.py::test_eval_accepts_parameters_like_every_command",
            "tests/test_process_options.py::test_second_ctrl_c_aborts_the_clean_stop"],
    "params": ["tests/test_params_exact.py", "tests/test_model.py::test_params_toml_round_trip",
               "tests/test_model.py::test_bad_parameters_raise", "tests/test_model_runtime.py",
               "tests/test_analyzer_exact.py::test_opencv_detector_takes_new_zones_on_the_next_frame_at_the_same_size",
               "tests/test_accuracy.py::test_default_parameters_score_exactly_as_docs_accuracy_json[ucsd/boats]"],
    "model": ["tests/test_model_wrapper.py", "tests/test_model.py", "tests/test_model_runtime.py",
              "tests/test_params_exact.py::test_pending_parameters_wait_for_the_next_frame_and_add_up",
              "tests/test_analyzer_exact.py::test_light_switch_relearns_and_suppresses_the_settling_frames",
              "tests/test_analyzer_exact.py::test_a_detector_that_has_learned_is_not_restarted_by_a_new_analyzer",
              "tests/test_analyzer.py::test_result_background_is_that_of_its_own_frame",
              "tests/test_accuracy.py::test_default_parameters_score_exactly_as_docs_accuracy_json[ucsd/boats]"],
    "sinks": ["tests/test_sinks_exact.py", "tests/test_process_pipeline.py::test_sinks_write_under_part_names_and_rename",
              "tests/test_faults.py::test_text_outputs_reach_the_disk_every_second"],
    "sources": ["tests/test_sources_exact.py", "tests/test_process_pipeline.py::test_input_names",
                "tests/test_live_events.py::test_start_seeks_to_the_right_frame",
                "tests/test_api.py::test_max_frames_and_an_open_source_left_open",
                "tests/test_analyzer.py"],
    "process_cmd": ["tests/test_process_cmd_exact.py", "tests/test_commands.py::test_main_returns_the_commands_exit_code"],
    "pipeline": ["tests/test_pipeline_exact.py",
                 "tests/test_process_cmd_exact.py::test_a_batch_with_a_bad_input_exits_2_with_a_summary"],
    "outputs": ["tests/test_outputs_exact.py", "tests/test_pipeline_exact.py",
                "tests/test_process_cmd_exact.py::test_a_batch_with_a_bad_input_exits_2_with_a_summary"],
}

EXCLUDE = [
    r"core/ReplaceBinaryOperator_(?!(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Mul|BitOr_BitAnd|BitAnd_BitOr)$).*",
    r"core/ReplaceComparisonOperator_(?!(Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)$).*",
    r"core/ReplaceUnaryOperator_(?!(USub_UAdd|Delete_Not)$).*",
    r"core/RemoveDecorator", r"core/VariableReplacer", r"core/VariableInserter",
]

# Equivalent mutants: (module, operator, text of the line before, text after the mutation, why the
# mutant cannot change what the module does).  Matched on the changed line's text (not its number,
# which moves with every edit above it).
EQUIVALENT: list[tuple[str, str, str, str, str]] = [
    ("events", "ReplaceUnaryOperator_USub_UAdd", "self._last_motion_time = -math.inf", "+math.inf",
     "_last_motion_time is read only while an event is open, and an event opens only on a motion frame, which "
     "sets it: the value given here (at the start and in finish()) is never read"),
    ("events", "NumberReplacer", "self._left = 0", "self._left = -1",
     "_left is only compared with > 0 and decremented when > 0: -1 and 0 behave the same"),
    ("events", "NumberReplacer", "math.ceil(0.5 * max(1.0, fps))", "max( 2.0, fps)",
     "ceil(0.5 * max(2.0, fps)) == ceil(0.5 * max(1.0, fps)) for every fps: both are 1 for fps <= 2, equal above"),
    ("events", "NumberReplacer", "frame_area: int = 1)", "frame_area: int = 0)",
     "frame_area=0 as the default: __init__ takes max(1, frame_area), so 1"),
    ("evaluate", "ReplaceBreakWithContinue", "break", "continue",
     "unreachable: LAST is capped at the number of images and FolderSource reads those same images, so read() "
     "never returns None inside the loop"),
    ("events", "NumberReplacer", "f0, t0, frame, time, 0.0, 0, f0, t0", "time, 1.0, 0, f0",
     "the starting peak_area is overwritten: the run's first frame has area > 0 = peak_pixels, so _set_peak runs"),
    ("events", "NumberReplacer", "f0, t0, frame, time, 0.0, 0, f0, t0", "time, -1.0, 0, f0", "as 1.0 above"),
    ("events", "NumberReplacer", "f0, t0, frame, time, 0.0, 0, f0, t0", "time, 0.0, -1, f0",
     "a motion frame has at least 1 pixel: a > -1 and a > 0 pick the same frames"),
    ("evaluate", "ReplaceOrWithAnd", "params = params or Params()", "params = params and Params()",
     "params is only handed to make_detector, which takes None as Params() itself"),
    ("evaluate", "*", "t = (i - 1) / FolderSource.FPS", "",
     "the time feeds only the Analyzer's events, which eval does not report; masks and counts do not depend on it"),
    ("postprocess", "*", "if p.close_size > 1:", "", "closing with a 1-pixel element is the identity"),
    ("postprocess", "*", "if p.open_size > 1:", "if p.open_size >", "opening with a 1-pixel element is the identity"),
    ("postprocess", "*", "if p.fill_holes > 0 and len(kept):", "and len(kept):",
     "fill_holes 0 fills holes of at most 0 pixels: none, as when it is skipped"),
    ("postprocess", "NumberReplacer", "for ky in range(k.shape[0]):", "k.shape[ -1]", "the ellipse is square"),
    ("postprocess", "ReplaceComparisonOperator_Gt_GtE", "        if size > 1:", "        if size >= 1:",
     "a 1-pixel element leaves the bits unchanged"),
    ("postprocess", "ReplaceAndWithOr", "if p.fill_holes > 0 and len(kept):", "if p.fill_holes > 0 or len(kept):",
     "fill_holes 0 fills holes of at most 0 pixels (none), and with no blob kept there is no box to fill in"),
    ("postprocess", "ReplaceOrWithAnd", "if (raw.ndim != 2 or raw.dtype != np.uint8", "if (raw.ndim != 2 and raw.dtype",
     "the masks given to clean() are 2-D uint8 (the kernel's and OpenCV's): both operands are False"),
    ("postprocess", "NumberReplacer", "        if size > 1:", "        if size > 0:",
     "a 1-pixel element (size 1) leaves the bits unchanged: the same as no operation"),
    ("postprocess", "ReplaceContinueWithBreak", "continue", "break",
     "no row of an OpenCV ellipse is empty (checked for sizes 1..79): the continue is never reached"),
    ("postprocess", "ReplaceBreakWithContinue", "break", "continue",
     "every row of an OpenCV ellipse is one run and sizes stop at 31: the break is never reached"),
    ("postprocess", "*", "!= len(xs) or n > 63:", "",
     "sizes stop at 31 (params.py): n > 62 and n >= 63 are False as n > 63 is"),
    ("postprocess", "NumberReplacer", "H, W = raw.shape[:2]", "raw.shape[: 3]",
     "the masks given to clean() are 2-D (H, W): [:3] gives the same two numbers"),
    ("postprocess", "NumberReplacer", "for poly in p.ignore_zones], 0)", "for poly in p.ignore_zones], -1)",
     "cv2.fillPoly saturates -1 to 0 on a uint8 image (checked)"),
    ("postprocess", "NumberReplacer", "        if p.median_size > 1:", "if p.median_size > 0:",
     "median_size 1: cv2.medianBlur with a 1-pixel window returns the image unchanged (checked), so > 0 and > 1 "
     "give the same mask"),
    ("postprocess", "ReplaceComparisonOperator_Gt_GtE", "        if p.median_size > 1:", "if p.median_size >= 1:",
     "a median of 1 is the identity (as above)"),
    ("postprocess", "ReplaceAndWithOr", "if p.fill_holes > 0 and blobs:", "if p.fill_holes > 0 or blobs:",
     "fill_holes 0 fills holes of at most 0 pixels (none), and with no blob there is no box to fill in"),
    ("postprocess", "NumberReplacer", "(W + 63) // 64)", "(W + 62) // 64)",
     "the bit path runs only for widths that are multiples of 8, where (W + 62) // 64 == (W + 63) // 64"),
    ("postprocess", "NumberReplacer", "if len(xs) == 0:", "if len(xs) == -1:",
     "no row of an OpenCV ellipse of size 1..79 is empty (checked), so len(xs) is never 0 or -1"),
    ("postprocess", "ReplaceOrWithAnd", "!= len(xs) or n > 63:", "!= len(xs) and n > 63:",
     "every row of an OpenCV ellipse is one run (checked) and sizes stop at 31 (params.py): both operands are "
     "always False"),
    ("postprocess", "NumberReplacer", ".reshape(-1, 2)", ".reshape(- 2, 2)", "numpy takes reshape(-2, 2) like reshape(-1, 2)"),
    ("postprocess", "NumberReplacer", "for ky in range(k.shape[0]):", "k.shape[ 1]", "the ellipse is square"),
    ("postprocess", "ReplaceOrWithAnd", "raw.dtype != np.uint8 or not raw.flags.c_contiguous",
     "raw.dtype != np.uint8 and not raw.flags.c_contiguous",
     "lets a non-contiguous uint8 mask take the bit path, which gives the same mask as OpenCV's "
     "(test_postprocess_fast compares them): only the path differs"),
]

EQUIVALENT += [
    ("analyzer", "NumberReplacer", "self.event_detector = EventDetector(p, 1)", "EventDetector(p, ",
     "the frame area given here is never used: EventDetector takes max(1, area), and the Analyzer sets the "
     "real one (set_frame_area) on the first frame, before any update"),
    ("analyzer", "ReplaceFalseWithTrue", "reset: bool = False             # the frame size changed", "",
     "analyze() always passes reset (resized): the dataclass default is never used"),
    ("analyzer", "NumberReplacer", "self.light.settle_frames = max(0, int(settle_frames_for(", "",
     "settle_frames_for() is event_start_frames (>= 1) + ceil(fps / 2) (>= 1): never below 2, so max(1, .) "
     "and max(-1, .) give the same as max(0, .)"),
    ("analyzer", "ReplaceComparisonOperator_Is_IsNot", "if resized or self._shape is None:",
     "if resized or self._shape is not None:",
     "the frame area is then set on every frame but the first, to the same value; the first frame after a "
     "start is always in the warm-up (WARMUP_FRAMES >= 1), where EventDetector.update never uses the area"),
    ("analyzer", "AddNot", "if resized or self._shape is None:", "if not resized or self._shape is None:",
     "the area is then set on every frame of the same size, to the same value, and not on a resized frame, "
     "which is the first after a restart: always in the warm-up, where the area is never used; the next "
     "frame sets it"),
    ("analyzer", "ReplaceTrueWithFalse", "t.daemon = True", "t.daemon = False",
     "the notice timer is always cancelled and joined in analyze()'s finally, before analyze returns or "
     "raises: no timer thread is left for the daemon flag to matter at exit"),
    ("analyzer", "ReplaceComparisonOperator_Gt_GtE", "if fps and fps > 0 else 25.0", "fps >= 0",
     "fps 0 is falsy: `fps and ...` is already 0 and the rate 25 is taken, as with fps > 0"),
]

EQUIVALENT += [
    ("params", "NumberReplacer", "near = difflib.get_close_matches(", "n= 2,",
     "only the best match (near[0]) is used: asking for 2 gives the same first one"),
    ("params", "NumberReplacer", 'return f"{text} (did you mean {near[0]}?)"', "near[ -1]",
     "get_close_matches(..., n=1) returns at most one name: near[-1] is near[0]"),
    ("params", "ReplaceComparisonOperator_GtE_Gt", "if sys.version_info >= (3, 11):", "if sys.version_info > (3, 11):",
     "sys.version_info has 5 fields: every 3.11.x is > (3, 11), as it is >= (3, 11); 3.10 is below both"),
    ("params", "ExceptionReplacer", "except TypeError as e:  # pragma: no cover", "",
     "unreachable: from_dict passes only known parameter names (checked just before) and validate() raises "
     "ParameterError for every bad value, so cls(**flat) never raises TypeError"),
]

EQUIVALENT += [
    ("model", "NumberReplacer", "index: int = 0            # frames seen", "",
     "apply() always passes index: the dataclass default is never used"),
    ("model", "NumberReplacer", "_step: int = field(default=0, repr=False)", "",
     "apply() always passes _step: the dataclass default is never used"),
    ("model", "NumberReplacer", "self._steps = 0            # apply() calls", "",
     "_steps is only compared with the _step a FrameResult took from it: its starting value does not matter"),
    ("model", "NumberReplacer", "self._steps += 1", "self._steps += 2",
     "_steps is only compared for equality with the _step of a result: any non-zero step tells frames apart"),
    ("model", "*", "self._cur_dummy = np.zeros((C + 1, 1, 1), np.float32)", "",
     "the stand-in for the current distribution at current_rate 1, which the kernel neither reads nor writes "
     "then (kernels._pass1: `if beta >= F1`): its size does not matter"),
    ("model", "NumberReplacer", "wts /= np.where(tot > 0, tot, 1.0)", "tot, 2.0)", "every pixel has at least one live component after its first frame (nmodes >= 1), so tot > 0 always: "
     "the guard for tot == 0 is never taken"),
    ("model", "NumberReplacer", "wts /= np.where(tot > 0, tot, 1.0)", "tot, 0.0)", "every pixel has at least one live component after its first frame (nmodes >= 1), so tot > 0 always: "
     "the guard for tot == 0 is never taken"),
    ("model", "NumberReplacer", "wts /= np.where(tot > 0, tot, 1.0)", "tot > -1,", "every pixel has at least one live component after its first frame (nmodes >= 1), so tot > 0 always: "
     "the guard for tot == 0 is never taken"),
    ("model", "ReplaceComparisonOperator_Gt_GtE", "wts /= np.where(tot > 0, tot, 1.0)", "tot >= 0", "every pixel has at least one live component after its first frame (nmodes >= 1), so tot > 0 always: "
     "the guard for tot == 0 is never taken"),
    ("model", "ReplaceFalseWithTrue", "        self._cur_valid = False", "        self._cur_valid = True",
     "_allocate sets _curs to None, and _fill_cur sets _cur_valid False whenever it allocates _curs: the value "
     "given here is never read"),
    ("model", "NumberReplacer", "self._planes[0] = small[:, :, 0]", "small[:, :, -1]",
     "this branch is for one channel, where index -1 is index 0"),
    ("model", "NumberReplacer", "return out[:, :, 0] if C == 1 else out", "out[:, :, -1]",
     "for one channel, index -1 is index 0"),
    ("model", "ReplaceFalseWithTrue", "params=np.array(self._params.to_toml(comments=False))", "comments=True",
     "load() reads the parameters back with a TOML parser, which skips comments; the text (about 6 kB with "
     "them) stays far under statefile's MAX_PARAMS_CHARS (64 kB): the same Params either way"),
    ("model", "ReplaceComparisonOperator_Gt_GtE", "            if self._n > 0:", "            if self._n >= 0:",
     "as `> -1` below: _n is never negative, and at 0 the planes copied are never read"),
    ("model", "NumberReplacer", "self._planes[0] = small[:, :, 0]", "self._planes[ -1]",
     "this branch is for one channel: the only plane is both 0 and -1"),
    ("model", "NumberReplacer", "    if scale >= 1.0:", "    if scale >= 2.0:",
     "scale is at most 1.0 (params.py): at 1.0 the other branch gives max(1, round(H * 1.0)) = H, the same size"),
    ("model", "NumberReplacer", "        if C == 1:", "        if C == 2:",
     "C is 1 or 3: for 3 both branches split; for 1 cv2.split(small, [plane]) writes the plane the direct copy "
     "writes (a shortcut)"),
    ("model", "NumberReplacer", "            if self._n > 0:", "            if self._n > -1:",
     "_n is 0 there only on the first frame after a (re)start, where the kernel then initialises cur from the "
     "frame (first=True), and inside load(), which overwrites cur at once: the planes copied are never read"),
    ("model", "NumberReplacer", "        if C == 1:", "        if C == 0:",
     "for one channel cv2.split(small, [plane]) writes the same plane as the direct copy, which is only a shortcut"),
    ("model", "ReplaceComparisonOperator_GtE_Gt", "    if scale >= 1.0:", "    if scale > 1.0:",
     "scale is at most 1.0 (params.py): at 1.0 the other branch gives max(1, round(H * 1.0)) = H, the same size"),
    ("model", "NumberReplacer", "blobs = [Blob(int(b.x * sx), int(b.y * sy), max(1,", "max( 0,",
     "at scale <= 1, sx and sy are >= 1 and a blob is at least 1 pixel: round(w * sx) >= 1, so max(0, .) = max(1, .)"),
]

EQUIVALENT += [
    ("sinks", "NumberReplacer", "cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, frames - 1))", "max( -1, frames - 1)",
     "differs only for frames = 0, where the answer is the frame count's: a video that opens holds n >= 1 frames, "
     "so n != frames decides before the read is looked at"),
    ("sinks", "*", '".mkv": ("FFV1", True),', "", "the lossless flag of CODECS is read by no code (only [0], the fourcc)"),
    ("sinks", "*", '".avi": ("MJPG", False),', "", "the lossless flag of CODECS is read by no code (only [0])"),
    ("sinks", "*", '".mp4": ("mp4v", False),', "", "the lossless flag of CODECS is read by no code (only [0])"),
    ("sinks", "ReplaceTrueWithFalse", 'CODECS.get(self.path.suffix.lower(), ("FFV1", True))[0]', '("FFV1", False))[0]',
     "only [0] (the fourcc) of the default entry is used"),
    ("sinks", "ReplaceComparisonOperator_Gt_GtE", "self.fps = float(fps) if fps and fps > 0 else 25.0",
     "fps >= 0", "fps 0 is falsy: `fps and ...` already gives 25, as with fps > 0"),
    ("sinks", "NumberReplacer", "img = img[:, :, 0] if img.shape[2] == 1 else", "img[:, :, -1]",
     "for one channel, index -1 is index 0"),
    ("sinks", "NumberReplacer", "_, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)", "200, 256,",
     "cv2.threshold saturates maxval to the image type: 256 is 255 on uint8 (the masks are uint8)"),
    ("sinks", "ReplaceTrueWithFalse", "    def end(self, verify: bool = True) -> None:", "verify: bool = False",
     "ImageSequenceSink.end and TextSink.end take verify only to share VideoSink's interface: they never read it"),
    ("sinks", "ExceptionReplacer", "            except OSError:", "except CosmicRayTestingException:",
     "TextSink.end's second close: CPython's close() closes the file even when its flush fails (tested: "
     "_f.closed is True after the OutputError), so the second close is a no-op that cannot raise"),
]

EQUIVALENT += [
    ("sources", "*", "        if img.ndim == 3 and img.shape[2] == 1:", "",
     "unreachable: OpenCV's Python binding returns a one-channel image as a 2-D array (never H x W x 1), and "
     "convertScaleAbs and cvtColor keep that, so no frame of 3 dimensions has one channel"),
    ("sources", "NumberReplacer", "            img = img[:, :, 0]", "",
     "in the one-channel branch, unreachable (see above)"),
    ("sources", "NumberReplacer", "top = float(np.max(np.abs(img))) if img.size else 0.0", "",
     "the value for an empty image: imread gives None (a SourceError before this) for a file it cannot decode, "
     "never an empty array, so img.size is never 0"),
    ("sources", "ReplaceComparisonOperator_LtE_Lt", "r = 1.0 if top <= 1.0 else top", "r = 1.0 if top < 1.0",
     "at top == 1.0 the else branch gives r = top = 1.0 too"),
    ("sources", "NumberReplacer", "n = 0 if live else int(cap.get(cv2.CAP_PROP_FRAME_COUNT))", "n = -1 if live",
     "total_frames is n if n > 0 else None: -1 gives None as 0 does"),
    ("sources", "ReplaceOrWithAnd", "            if not ok or f is None:", "if not ok and f is None:",
     "cv2.VideoCapture.read() returns (False, None) or (True, an image): the two tests always agree"),
    ("sources", "NumberReplacer", "                top = 1.0", "top = 0.0",
     "a non-finite maximum taken as 0.0 instead of 1.0: both are <= 1.0, so the range is 1.0 either way"),
    ("sources", "ReplaceOrWithAnd", "            if not ok or first is None:", "if not ok and first is None:",
     "cv2.VideoCapture.read() returns (False, None) or (True, an image): `not ok` and `first is None` always agree"),
    ("sources", "ReplaceComparisonOperator_Lt_LtE", "and np.isfinite(fps) and 0 < fps <= 1000", "0 <= fps",
     "fps 0 is falsy: `bool(fps)` already makes it unknown, as 0 < fps does"),
]

EQUIVALENT += [
    ("process_cmd", "NumberReplacer", 'r.add_argument("--max-frames", type=int, default=0,', "default= -1",
     "_options takes max(0, max_frames): -1 gives 0, as 0 does"),
    ("process_cmd", "NumberReplacer", 'r.add_argument("--reconnect-attempts", type=int, default=0,', "default= -1",
     "_options takes max(0, reconnect_attempts): -1 gives 0, as 0 does"),
    ("process_cmd", "NumberReplacer", "zone_mask(params, 8, 8)", "",
     "the up-front check only loads and checks the zone mask image (the mask made is thrown away): a 7 or 9 "
     "pixel size reads and refuses the same images"),
    ("process_cmd", "ReplaceBreakWithContinue", "                    break", "continue",
     "the stop event is never cleared: once set, every later input is skipped by `continue` as by `break`"),
    ("process_cmd", "ReplaceBreakWithContinue", "            break", "            continue",
     "the stop event is never cleared: once set, `continue` skips every later lost input as `break` does"),
    ("process_cmd", "NumberReplacer", "        if run_pool([(s, d)], 1):", "run_pool([(s, d)], 2)",
     "a pool of two workers given one input runs it in one of them, as a pool of one does (one more idle process)"),
    ("process_cmd", "NumberReplacer", "reports.sort(key=lambda r: order.get(r.out_dir, 0))", "",
     "the default is never used: every report's out_dir is one of `dirs` (the reports are made from them)"),
    ("process_cmd", "NumberReplacer", "return 128 + got[0] if got else EXIT_INTERRUPTED", "got[ -1]",
     "got holds at most one signal: a second one raises KeyboardInterrupt in on_signal before it is appended"),
]

_PARALLEL = ("a detail of the --jobs path that the two in-process --jobs tests do not reach (each --jobs run costs "
             "1-4 s); the subprocess tests with --jobs (test_faults, test_threads) were not run against these mutants")

_COUNT = ("_range guarantees first_index < total_frames and end_index > first_index, so the count of frames to "
          "process is at least 1: max(-1, .), max(0, .) and max(1, .) give the same")
_LEAD0 = "lead_in 0: lead = min(0, first) // step * step = 0, the same as when the branch is skipped"
EQUIVALENT += [
    ("pipeline", "NumberReplacer", "total = max(0, (min(total, end_index or total)", "max( 1,", _COUNT),
    ("pipeline", "NumberReplacer", "total = max(0, (min(total, end_index or total)", "max( -1,", _COUNT),
    ("pipeline", "ReplaceBinaryOperator_BitOr_BitAnd", "end: int | None = None, at_end: bool = False) -> None:",
     "int & None", "in an annotation (a continued signature line; never evaluated: from __future__ import annotations)"),
    ("pipeline", "ReplaceComparisonOperator_Gt_GtE", "if total and (first_index or end_index is not None or step > 1):",
     "step >= 1", "step is >= 1, so the branch is then taken for every run with a frame count; with first_index 0, "
     "no end and step 1 its formula gives the frame count itself"),
    ("pipeline", "NumberReplacer", "if total and (first_index or end_index is not None or step > 1):", "step > 0",
     "step is >= 1, so the branch is then taken for every run with a frame count; with first_index 0, no end "
     "and step 1 its formula gives the frame count itself"),
    ("pipeline", "NumberReplacer", "index: int = 0, first: int = 0,", "first: int = 1",
     "_finish_report never reads `first` (its caller passes it; the rule uses index, the frame count and end)"),
    ("pipeline", "NumberReplacer", "index: int = 0, first: int = 0,", "first: int =  -1", "as above: `first` is never read"),
    ("pipeline", "NumberReplacer", "chunk.tail_id = ended[0].id if ended else 0", "ended[ -1]",
     "Analyzer.finish() returns at most one event (the open one): [-1] is [0]"),
    ("pipeline", "NumberReplacer", "    t = 0.0", "    t = -1.0",
     "t is read before a frame sets it only for the summary's end of a live run stopped before its first frame, "
     "through timecode(), which counts a negative time as 0"),
    ("pipeline", "ReplaceBreakWithContinue", "break", "continue",
     "the `break` at stop.is_set() (the only one of _process that survives; those at --end and --max-frames are "
     "killed): the reader stops at the same Event, so `continue` only drains the frames already queued (at most "
     "queue_size) without processing them: the same outputs and report"),
    ("pipeline", "ReplaceTrueWithFalse", "at_end = True", "at_end = False",
     "the at_end of a file or folder (--end as a frame): _finish_report reads at_end only for live sources (the "
     "live one's mutant is killed)"),
    ("pipeline", "ReplaceComparisonOperator_Gt_GtE", "if opt.lead_in > 0 and not info.live:", "lead_in >= 0", _LEAD0),
    ("pipeline", "NumberReplacer", "if opt.lead_in > 0 and not info.live:", "lead_in > -1", _LEAD0),
]

EQUIVALENT += [
    ("outputs", "ReplaceAndWithOr", "encode = self.clip_dir is not None and self.clip_source is None",
     "self.clip_dir is not None or self.clip_source is None",
     "encode only sizes the ring of frames before an event, which _clip_frame alone reads, and handle() calls "
     "_clip_frame only when clip_dir is set and clip_source is None: a ring sized otherwise is never used"),
    ("outputs", "NumberReplacer", "self.max_pending = max(self.post, 1)", "max(self.post, 0)",
     "the first frame handed to _clip_frame sets max_pending = max(max_pending, cap) with cap >= 1 before it is "
     "ever read: max(post, 0) and max(post, 1) end the same"),
    ("outputs", "NumberReplacer", "cap = max(1, int(CLIP_MEMORY_BYTES // max(1, it.frame.nbytes)))", "max( 0,",
     "a frame has at least one byte: max(0, nbytes) is nbytes, as max(1, nbytes) is"),
    ("outputs", "NumberReplacer", "keep = self.pre + params.event_start_frames + 1 if encode else 0", "else 1",
     "the ring is read only by _clip_frame, which runs only when clips are encoded: its size otherwise is unused"),
    ("outputs", "NumberReplacer", "np.uint8), opacity=0.0, boxes=blobs)", "", "the mask given is all zeros: no pixel is tinted, whatever the opacity"),
    ("outputs", "ReplaceComparisonOperator_Gt_GtE", "interpolation=cv2.INTER_AREA) if w > THUMB_WIDTH else peak_img",
     "w >= THUMB_WIDTH", "a frame exactly 240 wide is resized to its own size, which INTER_AREA returns unchanged "
     "(test_thumbnails_of_small_frames_and_without_kl compares a 240-wide thumbnail's bytes)"),
    ("outputs", "*", "if p is not None and ok and s not in clips:", "",
     "unreachable: every sink Outputs opens (VideoSink, H264Sink, ImageSequenceSink, TextSink) has end(), so "
     "close()'s branch for a sink without it is never taken"),
]

# Surviving mutants that are not equivalent: why no test kills them (printed with them; still counted
# as survivors).  Same matching as EQUIVALENT.
SURVIVING: list[tuple[str, str, str, str, str]] = [
    ("process_cmd", "*", "EXIT_INTERRUPTED = 130", "",
     "the exit code when an input reports 'interrupted' without a stop signal here (the cluster path's "
     "cancelled tasks): the in-process runs stop by a signal, which gives 128 + its number"),
    ("process_cmd", "ReplaceOrWithAnd", 'if interrupted or any(r.status == "interrupted" for r in reports):', "",
     "the same case: a report 'interrupted' without a stop signal here, which only the cluster path makes"),
    ("process_cmd", "ExceptionReplacer", "        except Exception:  # pragma: no cover", "",
     "tqdm.write failing inside the log handler: not made to fail by any test"),
    ("process_cmd", "ExceptionReplacer", "        except ImportError:", "",
     "--mqtt without paho-mqtt installed: this environment has it ([mqtt] extra)"),
    ("process_cmd", "*", 'if args.cluster and not args.cluster.lower().startswith("local"):', "",
     "absolute paths for a remote Dask cluster: no test of this list runs a cluster (tests/test_cluster.py does, "
     "in subprocesses, not run against these mutants)"),
    ("process_cmd", "*", "inputs = [str(Path(s).resolve()) if Path(s).exists() else s for s in inputs]", "",
     "the same remote-cluster branch"),
    ("process_cmd", "ReplaceUnaryOperator_Delete_Not", "parallel = jobs > 1 and not args.cluster", "", _PARALLEL),
    ("process_cmd", "NumberReplacer", "parallel = jobs > 1 and not args.cluster", "jobs > 2", _PARALLEL),
    ("process_cmd", "AddNot", "    if parallel:", "    if not parallel:", "with --jobs 1 the mutant only swaps the "
     "threading.Event for a multiprocessing one, which stops the run the same way; with --jobs 2 the pool gets no "
     "context (fork, Linux's default, instead of spawn) and a threading.Event, which the forked workers copy: "
     "the same results in the --jobs tests"),
    ("process_cmd", "NumberReplacer", "bar.update(1)", "", "the --jobs progress bar's count, drawn on a terminal "
     "only: the --jobs tests run without one (a fake terminal would need a third --jobs run)"),
    ("process_cmd", "*", "            if bar is not None:", "", "the progress bar when an input crashes its worker "
     "again when run alone (no test makes a worker crash twice) or finished before the pool broke (timing)"),
    ("process_cmd", "ReplaceContinueWithBreak", "            continue", "            break",
     "after an input that had finished before the pool broke (its summary.json found), the later lost inputs "
     "would be skipped: the killed-worker test kills the worker of the input still running, so the finished-"
     "before-the-break case depends on timing and is not made"),
    ("process_cmd", "ZeroIterationForLoop", "    for sig in STOP_SIGNALS:", "",
     "the workers ignore SIGINT/SIGTERM/SIGHUP (a terminal's Ctrl-C or systemd reaches the whole process group; "
     "the parent stops them through the Event): no in-process test signals the workers (test_faults' SIGTERM "
     "test does, by killpg on a subprocess run, not run against these mutants)"),
    ("process_cmd", "ExceptionReplacer", "except Exception as e:  # pragma: no cover - process_input reports",
     "", "process_input reports its own errors: a worker raising otherwise is not made by any test"),
    ("pipeline", "*", "alive = reader.close(opt.stream_timeout + 2.0 if live else 5.0)", "",
     "how long the end of a run waits for a reader thread stuck in a read (stream_timeout + 2 s live, 5 s for a "
     "file) before it leaves the source open: no test makes a read hang that long (a stream's read is bounded by "
     "its own timeout; a file's would need a hung device)"),
    ("pipeline", "NumberReplacer", "            notifiers.close(1.0)", "",
     "how long an input that could not start lets its notifiers deliver what they hold (at most 1 s, at least "
     "0.5 s each): nothing is queued before the first frame"),
    ("pipeline", "NumberReplacer", "notifiers.close(10.0)", "",
     "at most 10 s to deliver the notifiers' last records: the tests' notifier (`true`) delivers at once; a "
     "slow one would make a 10 s test"),
    ("pipeline", "ReplaceComparisonOperator_GtE_Gt", "if end_index is not None and t >= opt.end.seconds:", "",
     "a live frame whose wall-clock time equals --end exactly (a float from perf_counter): not something a test "
     "can time"),
    ("outputs", "NumberReplacer", "CLIP_MEMORY_BYTES = 256e6", "",
     "the clip memory budget one byte larger or smaller: the frame cap changes only for frames whose size "
     "divides 256e6 exactly, and only when that many frames are held (256 MB in a test); the bound itself is "
     "tested with the budget patched small"),
    ("outputs", "NumberReplacer", "cap = max(1, int(CLIP_MEMORY_BYTES // max(1, it.frame.nbytes)))", "max( 2,",
     "differs only for a frame of one byte (a 1x1 grey frame), and then only past 128 million frames held"),
    ("outputs", "NumberReplacer", "keep = self.pre + params.event_start_frames + 1 if encode else 0", "+ 0 if",
     "the ring holds one frame more than an event's start needs (pre + event_start_frames, all it writes); "
     "without it only the 'pre_capture limited' warning differs, when the budget is exactly that one frame short"),
    ("outputs", "ReplaceContinueWithBreak", "                continue", "                break",
     "close()'s `continue`s of step 2 in a failed run (a sink discarded in step 1, `if not ok`): breaking out "
     "leaves only the later sinks' closed flag unset (nothing is renamed in a failed run), and close() runs once"),
    ("outputs", "ReplaceTrueWithFalse", "            s.closed = True", "",
     "the closed flag of step 2: nothing reads it after close(), which runs once per run"),
    ("outputs", "ReplaceOrWithAnd", 'log.warning("cannot remove %s: %s", f, e.strerror or e)', "",
     "the warning's text when a stale file cannot be removed: unreachable as root (see above)"),
    ("outputs", "ReplaceTrueWithFalse", "self._budget_set = True", "",
     "the memory budget computed again on every frame: it changes only when the frame size changes during an "
     "input with clips past the budget; no test makes that"),
    ("outputs", "ExceptionReplacer", "except OSError as e:", "",
     "a stale snapshot or clip that cannot be removed (the warning): the tests run as root, who can remove "
     "any file of a writable folder"),
    ("process_cmd", "*", "hup = getattr(signal", "", _PARALLEL),
    ("process_cmd", "*", "before = signal.signal(hup, signal.SIG_IGN) if hup is not None else None", "", _PARALLEL),
    ("process_cmd", "*", "    for sig in STOP_SIGNALS:      # the parent asks us to stop via `stop`", "", _PARALLEL),

    ("sources", "ExceptionReplacer", "            except (OSError, ValueError) as e:", "",
     "capture_path failing on a non-UTF-8 name of a file that exists, is a file and is not empty: OSError "
     "needs an open that fails, but the tests run as root here (no permission to take away); ValueError needs "
     "a system without /proc/self/fd (not Linux)"),
    ("sources", "ReplaceOrWithAnd", "raise SourceError(f\"{name}: {getattr(e, 'strerror', None) or e}\")", "",
     "the message of that same unreachable-as-root OSError (see above)"),
    ("sources", "ExceptionReplacer", "    except Exception:  # pragma: no cover - an OpenCV without cv2.utils.logging", "",
     "an OpenCV without cv2.utils.logging: the one installed here has it"),
    ("sources", "NumberReplacer", "kind: str | None = None, open_timeout: float = 10.0):", "",
     "CaptureSource's default timeout (10 s; the callers that open streams pass theirs): a test of it would "
     "wait 10 s; the timeouts themselves are tested with 0.3 s and 1 s"),
    ("sources", "NumberReplacer", "int(open_timeout * 1000)", "",
     "the stream open/read timeout 1 ms longer or shorter per second (1001 / 999 ms): a test sees the timeout "
     "work (a silent server fails after 0.3 s, not FFmpeg's default), not its last millisecond"),
    ("sources", "NumberReplacer", "and np.isfinite(fps) and 0 < fps <= 1000", "-1 < fps",
     "a frame rate between -1 and 0 taken as known: OpenCV reports FFmpeg's rates, ratios of unsigned header "
     "fields, so no file made here has a negative rate"),
    ("sources", "ReplaceOrWithAnd", "if not isinstance(root, Path) or not (root / \"input\").is_dir():", "",
     "the demo clip installed without files (a zipped package): this install has them, so both operands are False"),
    ("analyzer", "*", "COMPILE_NOTICE_SECONDS = 3.0", "",
     "when the 'compiling' notice appears (a first frame slower than 3 s): no test times a real first-run "
     "compile (40-80 s), and a test that restated the number would not be a behaviour"),
    ("analyzer", "*", "    if bg is not None:", "",
     "the cv2.bgsegm detectors: opencv-contrib-python-headless is not installed here (it replaces "
     "opencv-python-headless), so the branch cannot run"),
    ("analyzer", "*", "for name, fn in ((\"gsoc\", \"createBackgroundSubtractorGSOC\")", "",
     "the cv2.bgsegm detectors: not installed here (see above)"),
    ("analyzer", "*", "            if f is not None:", "", "the cv2.bgsegm detectors: not installed here (see above)"),
    ("params", "NumberReplacer", "if sys.version_info >= (3, 11):", "",
     "tomllib on 3.11+, tomli on 3.10: this interpreter is 3.11, where both branches import tomllib; only a "
     "Python 3.10 run (pyproject allows it) would tell"),
    ("model", "NumberReplacer", "wts /= np.where(tot > 0, tot, 1.0)", "tot > 1,",
     "the weights left after fewer components are not renormalised when they add up to less than 1: the "
     "kernel's next update renormalises them, so only the decision on the frame of the change can differ, "
     "and only at pixels whose kept weights straddle background_ratio; no test builds such a pixel"),
]


# Whole functions whose surviving mutants survive for one reason: (module, function) -> why
SURVIVING_FUNCTIONS: dict[tuple[str, str], str] = {
    ("process_cmd", "_run_parallel"): _PARALLEL, ("process_cmd", "run_pool"): _PARALLEL,
    ("process_cmd", "failed"): _PARALLEL, ("process_cmd", "_worker_init"): _PARALLEL,
    ("process_cmd", "_worker"): _PARALLEL,
}


def survivor_reason(module: str, r: dict) -> str | None:
    old, new = _changed(r["diff"])
    for mod, op, before, after, why in SURVIVING:
        if mod == module and op in ("*", r["op"]) and before in old and after in new:
            return why
    return SURVIVING_FUNCTIONS.get((module, r.get("fn", "")))


_ANNOTATION = re.compile(r"^\s*(async\s+)?def\s|^\s*[\w.]+\s*:\s*[^=]*\|")


def _changed(diff: str) -> tuple[str, str]:
    old = [l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    new = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    return (old[0] if old else ""), (new[0] if new else "")


def equivalent_reason(module: str, r: dict) -> str | None:
    old, new = _changed(r["diff"])
    for mod, op, before, after, why in EQUIVALENT:
        if mod == module and op in ("*", r["op"]) and before in old and after in new:
            return why
    # `X | None` -> `X & None` in an annotation: every module has `from __future__ import annotations`,
    # so annotations are strings that are never evaluated
    if r["op"] == "ReplaceBinaryOperator_BitOr_BitAnd" and _ANNOTATION.match(old):
        return "in an annotation (never evaluated: from __future__ import annotations)"
    return None


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [Path(p) for p in out.splitlines() if p and (ROOT / p).is_file()]


def make_tree(dst: Path) -> None:
    """A copy of the project (tracked and new files; numba's cache along, so the kernels load)."""
    if dst.exists():
        shutil.rmtree(dst)
    for rel in tracked_files():
        if rel.parts[0] in (".venv", "dist", "build"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst / rel)
    cache = ROOT / "kl_motion" / "__pycache__"
    if cache.is_dir():
        shutil.copytree(cache, dst / "kl_motion" / "__pycache__", dirs_exist_ok=True)


def config(module: str, tree: Path, timeout: float) -> str:
    tests = " ".join(TESTS[module])
    cmd = f"{sys.executable} -m pytest -x -q -p no:cacheprovider --noconftest {tests}"
    excl = ",\n  ".join(json.dumps(e) for e in EXCLUDE)
    return (f'[cosmic-ray]\nmodule-path = "kl_motion/{module}.py"\ntimeout = {timeout}\nexcluded-modules = []\n'
            f'test-command = {json.dumps(cmd)}\n\n[cosmic-ray.distributor]\nname = "local"\n\n'
            f'[cosmic-ray.filters.operators-filter]\nexclude-operators = [\n  {excl}\n]\n')


def cr(*args, cwd: Path, env=None, check=True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent
    return subprocess.run([str(exe / args[0]), *map(str, args[1:])], cwd=cwd, env=env, capture_output=True,
                          text=True, check=check)


def env_for(tree: Path) -> dict:
    e = dict(os.environ, PYTHONPATH=str(tree), QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    e.pop("KL_MOTION_DEBUG", None)
    return e


def forget_survivors(db: Path, module: str) -> int:
    """Make the surviving mutants of a session pending again (to run them against new tests; a
    killed mutant stays killed: tests are only ever added).  Mutants listed as equivalent are left
    alone: no test can kill them."""
    import sqlite3
    out = cr("cosmic-ray", "dump", db, cwd=db.parent).stdout
    ids = []
    for line in out.splitlines():
        job, res = json.loads(line)
        if res and str(res.get("test_outcome", "")).lower() == "survived":
            r = dict(op=job["mutations"][0]["operator_name"].split("/")[-1], diff=res.get("diff") or "")
            if not equivalent_reason(module, r):
                ids.append(job["job_id"])
    with sqlite3.connect(db) as c:
        return sum(c.execute("DELETE FROM work_results WHERE job_id = ?", (i,)).rowcount for i in ids)


def run_module(module: str, work: Path, slot: int, rerun: bool = False) -> None:
    tree = work / f"tree-{slot}"
    if not (tree / "kl_motion").is_dir():
        make_tree(tree)
    env = env_for(tree)
    # the tree's files, fresh (the tests as they are now; a mutant left by an interrupted run undone)
    for rel in tracked_files():
        if rel.parts[0] in ("kl_motion", "tests", "docs") and rel.suffix in (".py", ".json", ".toml", ".md"):
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, tree / rel)
    cfg, db = work / f"{module}.toml", work / f"{module}.sqlite"
    t0 = time.perf_counter()
    base = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--noconftest",
                           *TESTS[module]], cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if base.returncode != 0:
        raise SystemExit(f"{module}: the targeted tests fail without a mutant:\n{base.stdout[-2000:]}")
    cfg.write_text(config(module, tree, timeout=max(30.0, 4 * took)))
    if not db.exists():
        cr("cosmic-ray", "init", cfg, db, cwd=tree, env=env)
        cr("cr-filter-operators", db, cfg, cwd=tree, env=env)
    elif rerun:
        print(f"{module}: {forget_survivors(db, module)} surviving mutants (not equivalent) to run again", flush=True)
    print(f"{module}: baseline {took:.1f} s; running in {tree}", flush=True)
    cr("cosmic-ray", "exec", cfg, db, cwd=tree, env=env)
    print(f"{module}: done in {time.perf_counter() - t0:.0f} s", flush=True)


def results(work: Path, module: str) -> list[dict]:
    db = work / f"{module}.sqlite"
    if not db.exists():
        return []
    out = cr("cosmic-ray", "dump", db, cwd=work).stdout
    recs = []
    for line in out.splitlines():
        job, res = json.loads(line)
        m = job["mutations"][0]
        recs.append(dict(line=m["start_pos"][0], col=m["start_pos"][1], op=m["operator_name"].split("/")[-1],
                         occ=m["occurrence"], fn=m.get("definition_name", ""),
                         worker=(res or {}).get("worker_outcome"), test=(res or {}).get("test_outcome"),
                         diff=(res or {}).get("diff") or ""))
    return recs


def summarize(work: Path, modules: list[str], survivors: bool = True) -> str:
    rows, lines = [], []
    tot = dict(n=0, killed=0, survived=0, equiv=0, pending=0)
    for mod in modules:
        recs = [r for r in results(work, mod) if r["worker"] != "skipped"]
        if not recs:
            continue
        done = [r for r in recs if r["worker"] is not None and r["test"] != "incompetent"]
        killed = [r for r in done if r["test"] == "killed" or r["worker"] in ("timeout", "abnormal")]
        surv = [r for r in done if r not in killed]
        equiv = [r for r in surv if equivalent_reason(mod, r)]
        live = [r for r in surv if r not in equiv]
        pending = len(recs) - len(done)
        scored = len(done) - len(equiv)
        score = 100.0 * len(killed) / scored if scored else float("nan")
        rows.append(f"| {mod} | {len(recs)} | {len(done)} | {len(killed)} | {len(equiv)} | {len(live)} | "
                    f"{score:.1f}% |" + (f" ({pending} not run)" if pending else ""))
        for k, v in (("n", len(done)), ("killed", len(killed)), ("survived", len(live)), ("equiv", len(equiv)),
                     ("pending", pending)):
            tot[k] += v
        if survivors:
            for r in sorted(surv, key=lambda r: r["line"]):
                why = equivalent_reason(mod, r)
                d = [l for l in r["diff"].splitlines() if l.startswith(("+", "-")) and not l.startswith(("+++", "---"))]
                lines.append(f"- {mod}.py:{r['line']} ({r['fn']}) {r['op']}#{r['occ']}: "
                             + " / ".join(x.strip() for x in d)[:200]
                             + (f" -- equivalent: {why}" if why else
                                (f" -- survives: {survivor_reason(mod, r)}" if survivor_reason(mod, r) else "")))
    scored = tot["n"] - tot["equiv"]
    head = ["| module | mutants | run | killed | equivalent | survived | killed / (run - equivalent) |",
            "|---|---|---|---|---|---|---|"]
    all_row = (f"| **all** | | {tot['n']} | {tot['killed']} | {tot['equiv']} | {tot['survived']} | "
               f"**{100.0 * tot['killed'] / scored:.1f}%** |" if scored else "")
    return "\n".join(head + rows + [all_row] + ([""] + lines if lines else []))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", default=",".join(TESTS), help="comma-separated, of: " + ", ".join(TESTS))
    ap.add_argument("--work", default="/tmp/kl-mutation", help="copies of the tree and the sessions")
    ap.add_argument("--jobs", type=int, default=2, help="modules run at the same time (each in its own copy)")
    ap.add_argument("--first-slot", type=int, default=0,
                    help="number of the first tree copy to use (another run going on uses the others)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run the surviving mutants of earlier sessions again (after adding tests), "
                         "except those listed as equivalent")
    ap.add_argument("--report", action="store_true", help="only print the table of what has run")
    a = ap.parse_args()
    modules = [m.strip() for m in a.modules.split(",") if m.strip()]
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)} (known: {', '.join(TESTS)})")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if not a.report:
        if shutil.which("cosmic-ray", path=str(Path(sys.executable).parent)) is None:
            ap.error("cosmic-ray is not installed here: pip install cosmic-ray==8.7.0")
        with ThreadPoolExecutor(max(1, a.jobs)) as ex:
            slots = {m: a.first_slot + i % max(1, a.jobs) for i, m in enumerate(modules)}
            # one module per slot at a time: a slot's tree is mutated by one session only
            queues: dict[int, list[str]] = {}
            for m, s in slots.items():
                queues.setdefault(s, []).append(m)
            futs = [ex.submit(lambda ms, s: [run_module(m, work, s, a.rerun_survivors) for m in ms], ms, s)
                    for s, ms in queues.items()]
            for f in futs:
                f.result()
    print(summarize(work, modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
