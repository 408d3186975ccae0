"""Profiling throughput: micmatch's statistics path against a naive librosa pipeline, side by side.

Workload (issue 2): 44.1 kHz 16-bit WAV clips, n_fft 2048, hop 512; per-bin sums of log magnitude per device.
  naive   : librosa.load (float32, native rate) + librosa.stft + log + per-bin sums, one process
  micmatch: estimate.profile_files with 1 worker process and with 2 worker processes
  micmatch without its C kernel (numpy path), 1 worker: what the kernel adds
Also measures peak memory (max RSS of a child process) of `micmatch profile` on a one-hour file.

Run: .venv/bin/python benchmarks/bench_profile.py [--files 200 --seconds 10 --repeats 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import median_time, single_thread_env, write_pcm16_clips, write_results

single_thread_env()

import numpy as np  # noqa: E402


def naive_librosa(paths: list[Path], n_fft: int, hop: int) -> np.ndarray:
    import librosa

    total = np.zeros(n_fft // 2 + 1)
    for p in paths:
        y, _ = librosa.load(p, sr=None, mono=True)
        mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
        total += np.log(np.maximum(mag, 1e-10)).sum(axis=1)
    return total


def micmatch_profile(paths: list[Path], sample_rate: int, n_fft: int, hop: int, jobs: int, kernel: bool = True):
    from micmatch import spectral
    from micmatch.estimate import profile_files
    from micmatch.response import SpectralConfig

    saved = spectral._logpower
    if not kernel:
        spectral._logpower = None

    try:
        config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop)
        responses, failures = profile_files(paths, ["dev"] * len(paths), config, jobs=jobs)
    finally:
        spectral._logpower = saved
    assert not failures
    return responses


def peak_memory_one_hour(tmp: Path, sample_rate: int) -> dict:
    """Write a one-hour 16-bit file in blocks and profile it in a child process; report the child's max RSS."""
    import soundfile as sf

    path = tmp / "one_hour" / "long.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    block = sample_rate * 60
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=1, subtype="PCM_16") as f:
        for _ in range(60):
            f.write((rng.standard_normal(block) * 0.05).astype(np.float32))
    out = tmp / "long.json"
    # The child reports its own peak resident memory from /proc/self/status (VmHWM belongs to the new address
    # space made at exec). getrusage's ru_maxrss would not do: Linux carries it across exec, so a child forked
    # from this process (which holds librosa and numba) would report this process's peak.
    peak = ("def peak():\n    for line in open('/proc/self/status'):\n        if line.startswith('VmHWM:'):\n"
            "            return int(line.split()[1])\n")
    script = (peak + "import sys\nfrom micmatch.cli import main\n"
              f"sys.argv=['micmatch','profile',{str(path)!r},'-o',{str(out)!r},'--device-from','name:long']\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\nprint(peak(), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    startup = subprocess.run([sys.executable, "-c", peak + "import micmatch.cli\nprint(peak())"],
                             check=True, capture_output=True, text=True)
    return {"file_mb": path.stat().st_size / 1e6, "peak_rss_mb": peak_kib / 1024,
            "startup_rss_mb": int(startup.stdout.strip()) / 1024, "duration_s": 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    sr, n_fft, hop = 44100, 2048, 512
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        paths = write_pcm16_clips(tmp / "clips", args.files, args.seconds, sr)
        audio_s = args.files * args.seconds
        t_naive, _ = median_time(lambda: naive_librosa(paths, n_fft, hop), repeats=args.repeats)
        t_one, _ = median_time(lambda: micmatch_profile(paths, sr, n_fft, hop, 1), repeats=args.repeats)
        t_two, _ = median_time(lambda: micmatch_profile(paths, sr, n_fft, hop, 2), repeats=args.repeats)
        t_np, _ = median_time(lambda: micmatch_profile(paths, sr, n_fft, hop, 1, kernel=False),
                              repeats=args.repeats)
        memory = None if args.skip_memory else peak_memory_one_hour(tmp, sr)
    from micmatch import spectral

    if spectral._logpower is None:
        raise SystemExit("micmatch was built without its C kernel; reinstall with a C compiler to benchmark it")
    rows = [("naive librosa (load + stft + log)", t_naive), ("micmatch, 1 worker", t_one),
            ("micmatch, 2 workers", t_two), ("micmatch numpy path (no C kernel), 1 worker", t_np)]
    data = {"files": args.files, "seconds_per_file": args.seconds, "sample_rate": sr, "n_fft": n_fft, "hop": hop,
            "repeats": args.repeats, "median_s": {k: v for k, v in rows},
            "speedup_1_worker": t_naive / t_one, "speedup_2_workers": t_naive / t_two, "memory_one_hour": memory}
    md = [
        "# Profiling throughput (issue 2)", "",
        f"{args.files} clips x {args.seconds:.0f} s, 44.1 kHz 16-bit WAV, n_fft {n_fft}, hop {hop}; median of "
        f"{args.repeats} runs, all in one run of `benchmarks/bench_profile.py`. BLAS/OpenMP pinned to one thread.", "",
        "| pipeline | median time (s) | x real time | speed-up vs naive |", "|---|---|---|---|",
    ]
    for name, t in rows:
        md.append(f"| {name} | {t:.2f} | {audio_s / t:.0f} | {t_naive / t:.2f} |")
    md += ["", f"Targets: >= 2.5x with 1 worker ({t_naive / t_one:.2f}x), >= 4.5x with 2 workers "
               f"({t_naive / t_two:.2f}x)."]
    if memory:
        md += ["", f"Peak memory profiling a one-hour 44.1 kHz mono file ({memory['file_mb']:.0f} MB): "
                   f"{memory['peak_rss_mb']:.0f} MB peak RSS of the `micmatch profile` process, of which "
                   f"{memory['startup_rss_mb']:.0f} MB is the interpreter and imports (target < 300 MB)."]
    print(write_results("profile", data, "\n".join(md)).read_text())


if __name__ == "__main__":
    main()
