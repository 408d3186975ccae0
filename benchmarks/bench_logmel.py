"""Log-mel extraction speed on CPU: micmatch's torch LogMel on a batch vs librosa on the same clips.

Same clips, same settings (the Spectrum Correction paper's: 44.1 kHz, n_fft 2048, hop 512; 128 mel bands), float32, measured side by
side in one run; the figure that matters is the ratio. librosa is timed both clip by clip and on the whole batch
(it accepts ``(batch, n_samples)``), and the faster of the two is the reference. The numpy path
(``micmatch.features.log_mel``) is listed too. Every result is checked against librosa's values.

Usage: python benchmarks/bench_logmel.py [--clips 32] [--seconds 10] [--repeats 5]
Writes benchmarks/results/logmel.md and logmel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from micmatch.features import LogMelConfig, log_mel
from micmatch.learn.transforms import LogMel

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up (allocations, FFT plans)
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-mels", type=int, default=128)
    args = ap.parse_args()

    cfg = LogMelConfig(sample_rate=44100, n_fft=2048, hop_length=512, n_mels=args.n_mels)
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((args.clips, int(args.seconds * cfg.sample_rate))) * 0.1).astype(np.float32)
    opts = {"sr": cfg.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "n_mels": cfg.n_mels,
            "pad_mode": "constant"}

    def librosa_each():
        return np.stack([librosa.power_to_db(librosa.feature.melspectrogram(y=c, **opts), amin=1e-10, top_db=None)
                         for c in clips])

    def librosa_batch():
        return librosa.power_to_db(librosa.feature.melspectrogram(y=clips, **opts), amin=1e-10, top_db=None)

    module = LogMel(cfg).float()
    batch = torch.from_numpy(clips)

    def torch_batch():
        with torch.inference_mode():
            return module(batch).numpy()

    def numpy_batch():
        return log_mel(clips, cfg.sample_rate, config=cfg)

    rows = {}
    for name, fn in [("librosa, clip by clip", librosa_each), ("librosa, whole batch", librosa_batch),
                     ("micmatch numpy log_mel, batch", numpy_batch), ("micmatch torch LogMel, batch", torch_batch)]:
        seconds, out = timed(fn, args.repeats)
        rows[name] = {"seconds": seconds, "max_abs_diff_db_vs_librosa": None, "out": out}
    ref = rows["librosa, whole batch"]["out"]
    audio_s = args.clips * args.seconds
    best_librosa = min(rows["librosa, clip by clip"]["seconds"], rows["librosa, whole batch"]["seconds"])
    for r in rows.values():
        r["max_abs_diff_db_vs_librosa"] = float(np.abs(r.pop("out") - ref).max())
        r["realtime_x"] = audio_s / r["seconds"]
        r["speed_vs_best_librosa"] = best_librosa / r["seconds"]

    meta = {"clips": args.clips, "seconds_per_clip": args.seconds, "repeats": args.repeats,
            "config": cfg.to_json(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "librosa": librosa.__version__, "numpy": np.__version__, "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logmel.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    lines = [
        "# Log-mel extraction on CPU: torch batch vs librosa",
        "",
        f"{args.clips} clips x {args.seconds:g} s of noise at 44.1 kHz, float32; n_fft 2048, hop 512, "
        f"{cfg.n_mels} mel bands, dB with amin 1e-10. Median of {args.repeats} runs after a warm-up, all in one run "
        f"of `python benchmarks/bench_logmel.py` ({meta['cpus']} CPUs, torch {meta['torch']} with "
        f"{meta['torch_threads']} threads, librosa {meta['librosa']}). Compare the ratios, not absolute times.",
        "",
        "| method | time (s) | x real time | speed vs best librosa | max abs diff vs librosa (dB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['seconds']:.3f} | {r['realtime_x']:.0f} | {r['speed_vs_best_librosa']:.2f}x | "
                     f"{r['max_abs_diff_db_vs_librosa']:.1e} |")
    target = rows["micmatch torch LogMel, batch"]["speed_vs_best_librosa"]
    lines += ["", f"Target (torch at least as fast as librosa): {'met' if target >= 1.0 else 'NOT met'} "
                  f"({target:.2f}x)."]
    (RESULTS / "logmel.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
