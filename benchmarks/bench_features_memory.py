"""Peak memory of ``micmatch features`` on a 20-minute 48 kHz stereo file (issue 9: target < 300 MB).

Each configuration runs in its own process, which reports its peak resident memory (VmHWM of
/proc/self/status, the high-water mark of the new address space) when the command returns. The previous
implementation (whole file loaded as float64, features concatenated) is measured on the same file when its
sources are given with ``--old-src DIR`` (a checkout of an earlier revision's ``src``).

Usage: python bench_features_memory.py [--minutes 20] [--old-src DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import write_results

SRC = Path(__file__).resolve().parent.parent / "src"
SAMPLE_RATE = 48000

PEAK = ("def peak():\n    for line in open('/proc/self/status'):\n        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n")


def write_long_file(path: Path, minutes: float) -> None:
    """Stereo 16-bit noise with a slow level envelope, written in one-minute blocks (flat memory here too)."""
    rng = np.random.default_rng(0)
    n_block = 60 * SAMPLE_RATE
    with sf.SoundFile(path, "w", SAMPLE_RATE, 2, subtype="PCM_16") as f:
        for i in range(int(np.ceil(minutes))):
            n = min(n_block, int(minutes * 60 * SAMPLE_RATE) - i * n_block)
            env = 0.1 + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(n) / SAMPLE_RATE)
            f.write((rng.standard_normal((n, 2)) * env[:, None]).astype(np.float32))


def run(src: Path, args: list[str]) -> tuple[float, float]:
    """(peak MB, wall s) of ``micmatch`` with ``args`` in a fresh interpreter using the sources in ``src``."""
    script = (PEAK + f"import sys\nsys.path.insert(0, {str(src)!r})\nfrom micmatch.cli import main\n"
              f"try:\n    main({args!r}, standalone_mode=False)\nfinally:\n    print('PEAK', peak())\n")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                          env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - t0
    peak = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK")))
    return peak, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--old-src", type=Path, default=None)
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        write_long_file(wav, opts.minutes)
        size_mb = wav.stat().st_size / 2**20
        startup = subprocess.run([sys.executable, "-c", PEAK + f"import sys\nsys.path.insert(0, {str(SRC)!r})\n"
                                  "import micmatch.cli\nprint('PEAK', peak())"], check=True, capture_output=True,
                                 text=True).stdout.split()[-1]
        configs = [("this revision", SRC, "none"), ("this revision", SRC, "spec-mean-sub"),
                   ("this revision", SRC, "pcen-b")]
        if opts.old_src is not None:
            configs.append(("previous revision", opts.old_src, "none"))
        for label, src, norm in configs:
            out = Path(tmp) / "f.npz"
            peak, wall = run(src, ["features", str(wav), "-o", str(out), "--normalization", norm])
            with np.load(out) as z:
                shape = tuple(z["features"].shape)
            rows.append({"code": label, "normalization": norm, "peak_mb": round(peak, 1), "wall_s": round(wall, 1),
                         "features_shape": shape, "features_mb": round(np.prod(shape) * 4 / 2**20, 1)})
            print(rows[-1], flush=True)
    lines = [
        "# Peak memory of `micmatch features` (issue 9)",
        "",
        f"One {opts.minutes:g}-minute 48 kHz stereo 16-bit WAV ({size_mb:.0f} MB), default settings (n_fft 2048, hop "
        "512, 128 mel bands), ragged layout; each run in its own process, peak resident memory = VmHWM of "
        "/proc/self/status at the end. Produced by `python benchmarks/bench_features_memory.py --old-src DIR` "
        "(DIR: the `src` of the revision before this change). The machine was shared with other jobs, so the "
        "times are indicative only; the memory figures do not depend on the load.",
        "",
        f"Interpreter and imports alone (`import micmatch.cli`): {float(startup):.0f} MB.",
        "",
        "| code | normalization | peak memory (MB) | wall time (s) | features array | features size (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['code']} | {r['normalization']} | {r['peak_mb']:.0f} | {r['wall_s']:.0f} | "
                     f"{r['features_shape']} | {r['features_mb']:.0f} |")
    lines += ["", "Target: < 300 MB on the 20-minute file. The file is read in blocks of 262,144 samples and the mel "
              "frames are computed 512 at a time into one float32 array, so what remains is the interpreter, that "
              "array and the copies a normalization makes of it."]
    over = [f"{r['normalization']} ({r['code']}, {r['peak_mb']:.0f} MB)" for r in rows if r["peak_mb"] >= 300]
    lines.append("Over the target: " + (", ".join(over) if over else "none") + ". The normalizations hold the "
                 "features and their output at once (PCEN also float64 work on a few bands at a time).")
    write_results("features_memory", {"minutes": opts.minutes, "file_mb": size_mb, "startup_mb": float(startup),
                                      "runs": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
