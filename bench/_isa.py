"""Which instruction set numba built the kernels for, and re-running a benchmark with another one.

``--isa avx2`` in bench/speed.py, bench/pipeline.py and bench/busy.py re-runs the whole script
(kl_motion and OpenCV's MOG2 alike, so MOG2 stays the same-run reference) in a subprocess with

    NUMBA_CPU_NAME=znver3 NUMBA_CPU_FEATURES=        (set, empty: the named CPU's own features)
    NUMBA_CACHE_DIR=<a directory of its own>

so numba generates AVX2 code on an AVX-512 machine (the CPU name alone keeps the host's
AVX-512 features).  The cache directory is separate because numba's cache index is keyed by
CPU name and features anyway, and a separate one keeps the default cache (next to the package)
as it is.  ``sse2`` (``x86-64``, no extra features) is there for comparison.

``kernel_isa()`` looks at the machine code of the kernels module's functions that the model called
(``kernels._band3`` / ``_band1``, the per-band work, ``_step``, the parallel loop that calls them by
address, and the helpers compiled on their own) and counts
the vector registers it uses: zmm = AVX-512, ymm = AVX/AVX2, xmm only = SSE.  numba refuses
``inspect_asm`` for code loaded from its cache, so the object code is read back from the cache
entry of each compiled signature and disassembled with objdump; a freshly compiled function
(no cache entry) is read with ``inspect_asm``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ISA_ENV = {
    "native": {},
    "avx2": {"NUMBA_CPU_NAME": "znver3", "NUMBA_CPU_FEATURES": ""},
    "sse2": {"NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": ""},
}
CHILD_FLAG = "KL_MOTION_BENCH_ISA"       # set in the child: do not re-exec again


def default_cache_dir(isa: str) -> Path:
    return ROOT / "bench" / ".numba-cache" / isa


def add_argument(ap) -> None:
    ap.add_argument("--isa", choices=sorted(ISA_ENV), default="native",
                    help="code numba generates for the kl_motion kernels: native (this CPU) or avx2 / sse2 "
                         "(re-runs this script in a subprocess with NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set "
                         "and a NUMBA_CACHE_DIR of its own); MOG2 runs in the same process either way")
    ap.add_argument("--numba-cache", type=Path, default=None,
                    help="NUMBA_CACHE_DIR for --isa avx2/sse2 (default bench/.numba-cache/ISA)")


def isa_env(isa: str, cache: Path | None = None) -> dict[str, str]:
    """Environment for a child process that makes numba build ``isa`` code."""
    env = dict(os.environ)
    if isa == "native":
        for k in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
            env.pop(k, None)
        return env
    env.update(ISA_ENV[isa])
    d = cache or default_cache_dir(isa)
    d.mkdir(parents=True, exist_ok=True)
    env["NUMBA_CACHE_DIR"] = str(d)
    return env


def reexec_if_needed(args, argv: list[str] | None = None) -> int | None:
    """Parent side of --isa: run this same script in a subprocess with the ISA's environment and
    return its exit code; None when this process should do the work itself (native, or the child)."""
    if args.isa == "native" or os.environ.get(CHILD_FLAG) == args.isa:
        return None
    env = isa_env(args.isa, args.numba_cache)
    env[CHILD_FLAG] = args.isa
    shown = " ".join(f"{k}={env[k]}" for k in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_CACHE_DIR"))
    print(f"--isa {args.isa}: running in a subprocess with {shown}", flush=True)
    cmd = [sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    return subprocess.call(cmd, env=env)


def numba_target() -> str:
    """What numba was told to compile for (CPU name and features), as a short text."""
    from numba.core import config
    name = config.CPU_NAME or "host"
    feats = config.CPU_FEATURES
    feats = "host's" if feats is None else (repr(feats) if feats else "the named CPU's own (set, empty)")
    return f"NUMBA_CPU_NAME={name}, features {feats}"


_REG = re.compile(r"%?\b([xyz]mm)\d+\b")


def _count(asm: str) -> dict[str, int]:
    c = {"zmm": 0, "ymm": 0, "xmm": 0}
    for m in _REG.finditer(asm):
        c[m.group(1)] += 1
    return c


def _find_bytes(obj, prefix: bytes):
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj) if bytes(obj).startswith(prefix) else None
    if isinstance(obj, (tuple, list)):
        for o in obj:
            r = _find_bytes(o, prefix)
            if r is not None:
                return r
    if isinstance(obj, dict):
        for o in obj.values():
            r = _find_bytes(o, prefix)
            if r is not None:
                return r
    return None


def _objdump(elf: bytes) -> str:
    tool = shutil.which("objdump") or shutil.which("llvm-objdump")
    if tool is None:
        raise RuntimeError("objdump not found (binutils)")
    with tempfile.NamedTemporaryFile(suffix=".o") as f:
        f.write(elf)
        f.flush()
        return subprocess.run([tool, "-d", "--no-show-raw-insn", f.name], capture_output=True, text=True,
                              check=True).stdout


def cached_object(disp, sig) -> bytes | None:
    """The object code (ELF) of ``disp`` compiled for ``sig``, read back from its numba cache entry (None:
    no entry)."""
    data = disp._cache._cache_file.load(disp._cache._index_key(sig, disp.targetctx.codegen()))
    return _find_bytes(data, b"\x7fELF") if data is not None else None


def dispatcher_asm(disp) -> list[tuple[str, str]]:
    """(signature text, assembly) of every signature ``disp`` compiled or loaded in this process."""
    out = []
    for sig in dict.fromkeys([*disp._cache_hits, *disp._cache_misses]):
        elf = cached_object(disp, sig)
        if elf is not None:
            out.append((str(sig), _objdump(elf)))
    if not out:       # compiled fresh without a cache entry: numba can print it
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for sig, asm in disp.inspect_asm().items():
                out.append((str(sig), asm))
    return out


def classify(c: dict[str, int]) -> str:
    if c["zmm"]:
        return "AVX-512 (zmm registers)"
    if c["ymm"]:
        return "AVX2 (ymm registers, no zmm)"
    return "SSE (xmm registers only)"


def kernel_isa() -> dict:
    """The instruction set of the model's kernels compiled in this process (run the model first)."""
    from kl_motion import kernels
    rows = []
    total = {"zmm": 0, "ymm": 0, "xmm": 0}
    from numba.core.registry import CPUDispatcher
    for name in sorted(vars(kernels)):
        disp = getattr(kernels, name)
        # every numba function of the kernels module compiled (or loaded) in this process by a Python
        # call: the parallel step functions, whose object code includes the functions they call
        if not isinstance(disp, CPUDispatcher) or not disp.overloads:
            continue
        for sig, asm in dispatcher_asm(disp):
            c = _count(asm)
            rows.append(dict(function=f"kernels.{name}", zmm=c["zmm"], ymm=c["ymm"], xmm=c["xmm"], isa=classify(c)))
            for k in total:
                total[k] += c[k]
    return dict(target=numba_target(), isa=classify(total) if rows else "unknown (no kernel compiled yet)",
                functions=rows)


def print_kernel_isa(info: dict | None = None) -> dict:
    info = info or kernel_isa()
    print(f"kernels built for: {info['isa']}  [{info['target']}]")
    for r in info["functions"]:
        print(f"  {r['function']}: {r['zmm']} zmm, {r['ymm']} ymm, {r['xmm']} xmm register operands")
    return info
