"""Make docs/report.png: `kl-motion process` on CDnet highway (several events: motion_area 0.06,
event_gap 0.4 s), then its report.html rendered by headless Chromium (Debian's `chromium`).

    .venv/bin/python docs/make_report_png.py [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.environ.get("KL_MOTION_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(ROOT / "docs" / "report.png"))
    a = ap.parse_args()
    seq = Path(a.data) / "cdnet" / "highway" / "input"
    if not seq.is_dir():
        raise SystemExit(f"{seq}: not found (set --data or KL_MOTION_DATA)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("chromium not found: apt-get install chromium")
    work = Path(tempfile.mkdtemp(prefix="klreport-"))
    subprocess.run([sys.executable, "-m", "kl_motion", "process", str(seq), "--out", str(work), "--snapshots",
                    "--no-mask", "--motion-area", "0.06", "--event-gap", "0.4", "-q"], check=True)
    page = work / "highway" / "report.html"
    if not page.exists():            # a kl-motion without the report output: build it here
        sys.path.insert(0, str(ROOT))
        from kl_motion.report import write_report
        write_report(work / "highway")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--hide-scrollbars", "--window-size=1180,1250", f"--screenshot={a.out}",
                    page.as_uri()], check=True, capture_output=True)
    print(f"{a.out} from {page}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
