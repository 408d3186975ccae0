"""Batch FIR correction: one filter design per batch against one design per file, side by side in one run.

400 short 16-bit files (1 s, 44.1 kHz) corrected with ``correct_file(method="fir")`` (1025 taps, firls, linear
phase) twice: once designing the filter for every file (the FIR cache emptied before each file: what ``correct``
did before it designed once per batch) and once with the filter designed once for the batch (what ``micmatch
correct --method fir`` does now). Outputs of the two runs are compared (identical). The machine is shared by
several users: compare the ratio, not the absolute times.

    PYTHONPATH=src python benchmarks/bench_fir_batch.py [--files 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import single_thread_env, write_pcm16_clips, write_results

single_thread_env()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    from bench_correct import make_correction

    from micmatch import fir
    from micmatch.correct import correct_file

    sr = 44100
    corr = make_correction(sr)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_pcm16_clips(tmp / "in", args.files, args.seconds, sr)
        times = {}
        for mode in ("per_file_design", "one_design_per_batch"):
            out = tmp / mode
            fir._FIR_CACHE.clear()
            t0 = time.perf_counter()
            taps = fir.design_fir(corr) if mode == "one_design_per_batch" else None
            for f in files:
                if mode == "per_file_design":
                    fir._FIR_CACHE.clear()
                correct_file(f, out / f.name, corr, method="fir", taps=taps, warn=False)
            times[mode] = time.perf_counter() - t0
        diff = max(float(np.abs(sf.read(tmp / "per_file_design" / f.name)[0] -
                                sf.read(tmp / "one_design_per_batch" / f.name)[0]).max()) for f in files[:20])
    ratio = times["per_file_design"] / times["one_design_per_batch"]
    lines = ["# Batch FIR correction: one design per batch vs one per file", "",
             (f"{args.files} files of {args.seconds:g} s (44.1 kHz, 16-bit), `correct_file(method='fir')`, 1025 taps "
             "(firls), one process, both variants in one run on a shared 2-core machine (other users' jobs ran "
             "too: compare the ratio)."), "",
             "| variant | total time (s) | per file (ms) |", "|---|---|---|",
             (f"| design per file (before) | {times['per_file_design']:.1f} | "
             f"{1000 * times['per_file_design'] / args.files:.1f} |"),
             (f"| one design per batch (now) | {times['one_design_per_batch']:.1f} | "
             f"{1000 * times['one_design_per_batch'] / args.files:.1f} |"), "",
             (f"Speed-up: **{ratio:.1f}x** (target >= 10x). Max abs difference between the two outputs "
             f"(first 20 files): {diff:.1e}."), "",
             f"Command: `PYTHONPATH=src python benchmarks/bench_fir_batch.py --files {args.files}`"]
    md = write_results("fir_batch", {"files": args.files, "seconds": args.seconds, "times_s": times,
                                     "speedup": ratio, "max_abs_difference": diff}, "\n".join(lines))
    print(md.read_text())


if __name__ == "__main__":
    main()
