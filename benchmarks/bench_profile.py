"""Profiling throughput: micmatch's statistics path against a naive librosa pipeline, side by side in one run.

Workload (issues 2 and 18): 44.1 kHz 16-bit WAV clips, n_fft 2048, hop 512; per-bin sums of log magnitude per device.
  naive   : librosa.load (float32, native rate) + librosa.stft + log + per-bin sums, one process
  micmatch: estimate.profile_files with 1 worker process and with 2 worker processes
  micmatch without its C kernel (numpy path), 1 worker: what the kernel adds
  whole processes: `micmatch profile DIR -o r.json --device-from dir --jobs N` against a `python -c` running the
  naive pipeline, start-up included (what a user times)
  start-up: `micmatch --help` and `micmatch profile --help` against `python -c "import numpy, soundfile"`
Also measures peak memory (max RSS of a child process) of `micmatch profile` on a one-hour file.
Every figure is the median of --repeats runs after one warm-up; configurations alternate within each round, so
a machine whose load changes during the run slows them alike. Ratios within one run are what to compare.

Run: .venv/bin/python benchmarks/bench_profile.py [--files 200 --seconds 15 --repeats 5] [--skip-memory]
     [--note "quiet machine"]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import single_thread_env, write_pcm16_clips, write_results

single_thread_env()

import numpy as np  # noqa: E402

N_FFT, HOP, SR = 2048, 512, 44100
NAIVE_SCRIPT = """
import sys, numpy as np, librosa
total = np.zeros({n_bins})
for p in sys.argv[1:]:
    y, _ = librosa.load(p, sr=None, mono=True)
    mag = np.abs(librosa.stft(y, n_fft={n_fft}, hop_length={hop}))
    total += np.log(np.maximum(mag, 1e-10)).sum(axis=1)
"""


def naive_librosa(paths: list[Path], n_fft: int, hop: int) -> np.ndarray:
    import librosa

    total = np.zeros(n_fft // 2 + 1)
    for p in paths:
        y, _ = librosa.load(p, sr=None, mono=True)
        mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
        total += np.log(np.maximum(mag, 1e-10)).sum(axis=1)
    return total


def micmatch_profile(paths: list[Path], sample_rate: int, n_fft: int, hop: int, jobs: int, kernel: bool = True):
    from micmatch import logstats
    from micmatch.estimate import profile_files
    from micmatch.response import SpectralConfig

    saved = logstats._logpower
    if not kernel:
        logstats._logpower = None

    try:
        config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop)
        responses, failures = profile_files(paths, ["dev"] * len(paths), config, jobs=jobs)
    finally:
        logstats._logpower = saved
    if failures:
        raise SystemExit(f"profiling failed on {len(failures)} files, e.g. {failures[0]}")
    return responses


def _micmatch_command() -> list[str]:
    script = Path(sys.executable).with_name("micmatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "micmatch"]


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alternate(funcs: dict[str, object], repeats: int) -> dict[str, float]:
    """Median wall time of each function; one warm-up each, then ``repeats`` rounds taking them in turn."""
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for func in funcs.values():
        func()
    for _ in range(repeats):
        for name, func in funcs.items():
            t0 = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-processes", action="store_true", help="skip the whole-process and start-up rows")
    ap.add_argument("--note", default="", help="a line about the machine's state, written with the results")
    args = ap.parse_args()
    from micmatch import logstats

    if logstats._logpower is None:
        raise SystemExit("micmatch was built without its C kernel; reinstall with a C compiler to benchmark it")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        paths = write_pcm16_clips(tmp / "clips" / "dev", args.files, args.seconds, SR)
        audio_s = args.files * args.seconds
        one = micmatch_profile(paths, SR, N_FFT, HOP, 1)
        two = micmatch_profile(paths, SR, N_FFT, HOP, 2)
        same = all(np.array_equal(getattr(one["dev"].stats, k), getattr(two["dev"].stats, k))
                   for k in ("sum_db", "sum_sq_db", "sum_power"))
        rows = alternate({
            "naive librosa (load + stft + log)": lambda: naive_librosa(paths, N_FFT, HOP),
            "micmatch, 1 worker": lambda: micmatch_profile(paths, SR, N_FFT, HOP, 1),
            "micmatch, 2 workers": lambda: micmatch_profile(paths, SR, N_FFT, HOP, 2),
            "micmatch numpy path (no C kernel), 1 worker":
                lambda: micmatch_profile(paths, SR, N_FFT, HOP, 1, kernel=False),
        }, args.repeats)
        processes = startup = None
        if not args.skip_processes:
            mm = _micmatch_command()
            naive = NAIVE_SCRIPT.format(n_bins=N_FFT // 2 + 1, n_fft=N_FFT, hop=HOP)
            prof = [*mm, "profile", str(tmp / "clips"), "-o", str(tmp / "r.json"), "--device-from", "dir",
                    "--n-fft", str(N_FFT), "--hop", str(HOP)]
            processes = alternate({
                "naive librosa, whole process": lambda: _run([sys.executable, "-c", naive, *map(str, paths)]),
                "micmatch profile --jobs 1": lambda: _run([*prof, "--jobs", "1"]),
                "micmatch profile --jobs 2": lambda: _run([*prof, "--jobs", "2"]),
            }, args.repeats)
            startup = alternate({
                'python -c "import numpy, soundfile"': lambda: _run([sys.executable, "-c", "import numpy, soundfile"]),
                "micmatch --help": lambda: _run([*mm, "--help"]),
                "micmatch profile --help": lambda: _run([*mm, "profile", "--help"]),
            }, max(args.repeats, 5))
        memory = None if args.skip_memory else peak_memory_one_hour(tmp, SR)
    load_after = os.getloadavg()
    t_naive = rows["naive librosa (load + stft + log)"]
    t_one, t_two = rows["micmatch, 1 worker"], rows["micmatch, 2 workers"]
    machine_line = (f"{cpu_model()}, {os.cpu_count()} CPUs, C kernel variant {logstats._logpower.isa()}; load average "
                    f"{load_before[0]:.1f} before and {load_after[0]:.1f} after the run")
    data = {"files": args.files, "seconds_per_file": args.seconds, "sample_rate": SR, "n_fft": N_FFT, "hop": HOP,
            "repeats": args.repeats, "median_s": rows, "speedup_1_worker": t_naive / t_one,
            "speedup_2_workers": t_naive / t_two, "whole_processes_median_s": processes, "startup_median_s": startup,
            "jobs_1_equals_jobs_2": same, "memory_one_hour": memory, "cpu_model": cpu_model(),
            "kernel_isa": logstats._logpower.isa(), "load_average": [load_before[0], load_after[0]],
            "note": args.note}
    md = [
        "# Profiling throughput (issues 2 and 18)", "",
        f"{args.files} clips x {args.seconds:.0f} s, 44.1 kHz 16-bit WAV, n_fft {N_FFT}, hop {HOP}; median of "
        f"{args.repeats} runs, all in one run of `benchmarks/bench_profile.py`, configurations taken in turn. "
        f"BLAS/OpenMP pinned to one thread.", "",
        f"Machine: {machine_line}." + (f" {args.note}" if args.note else ""), "",
        "| pipeline (in one process, after imports) | median time (s) | x real time | speed-up vs naive |",
        "|---|---|---|---|",
    ]
    for name, t in rows.items():
        md.append(f"| {name} | {t:.2f} | {audio_s / t:.0f} | {t_naive / t:.2f} |")
    md += ["", f"Targets: >= 2.5x with 1 worker ({t_naive / t_one:.2f}x), >= 4.5x with 2 workers "
               f"({t_naive / t_two:.2f}x). Statistics with 1 and 2 workers identical: {same}."]
    if processes:
        t_proc = processes["naive librosa, whole process"]
        md += ["", "| whole process, start-up included | median time (s) | x real time | speed-up vs naive |",
               "|---|---|---|---|"]
        md += [f"| {name} | {t:.2f} | {audio_s / t:.0f} | {t_proc / t:.2f} |" for name, t in processes.items()]
    if startup:
        base = startup['python -c "import numpy, soundfile"']
        md += ["", "| start-up | median time (s) | x `import numpy, soundfile` |", "|---|---|---|"]
        md += [f"| `{name}` | {t:.3f} | {t / base:.1f} |" for name, t in startup.items()]
        md += ["", "Target: each `--help` at most 3x the start-up of `python -c \"import numpy, soundfile\"`."]
    if memory:
        md += ["", f"Peak memory profiling a one-hour 44.1 kHz mono file ({memory['file_mb']:.0f} MB): "
                   f"{memory['peak_rss_mb']:.0f} MB peak RSS of the `micmatch profile` process, of which "
                   f"{memory['startup_rss_mb']:.0f} MB is the interpreter and imports (target < 300 MB)."]
    print(write_results("profile", data, "\n".join(md)).read_text())


if __name__ == "__main__":
    main()
