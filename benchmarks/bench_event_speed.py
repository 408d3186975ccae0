"""Speed and peak memory of ``micmatch.event`` on 6 devices x 10 minutes at 44.1 kHz (targets: faster than real
time on 2 cores, peak memory under 1 GB).

The event is synthetic and seeded: one source (noise under a bursty, speech-like envelope) heard by six devices,
each through its own filter (a different low and high cut and a tilt), starting up to 20 s late and stopping up to
20 s early, its clock running up to +-100 ppm fast or slow, plus its own noise; 16-bit mono WAV. The event runs in a
child process, which reports its wall time and its peak resident memory (``ru_maxrss``) when it returns.

Usage: python bench_event_speed.py [--devices 6] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
from _common import write_results

SRC = Path(__file__).resolve().parent.parent / "src"
SR = 44100

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {src!r})
from micmatch.eventmode import event
t0 = time.perf_counter()
res = event({files!r}, {out!r}, reference={files!r}[0])
wall = time.perf_counter() - t0
print(json.dumps({{"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "reference": res.reference, "drift_ppm": {{n: res.clocks[n].drift_ppm for n in res.names}},
                   "start_s": {{n: res.clocks[n].start_s for n in res.names}},
                   "seams": res.seam_summary}}))
"""


def write_devices(folder: Path, devices: int, minutes: float) -> tuple[list[str], dict]:
    """The source heard by each device, written in 30 s blocks (the generator's memory stays flat too)."""
    import soxr

    rng = np.random.default_rng(0)
    n = int(minutes * 60 * SR)
    truth, files = {}, []
    designs = []
    for d in range(devices):
        lo, hi = 80 + 60 * d, 16000 - 1500 * d
        sos = scipy.signal.butter(2, [lo, hi], btype="band", fs=SR, output="sos")
        tilt = scipy.signal.butter(1, 2000 + 500 * d, fs=SR, output="sos")
        designs.append((sos, tilt, 0.3 + 0.1 * d))
    starts = [0.0] + list(rng.uniform(0, 20, devices - 1))
    stops = [minutes * 60] + list(minutes * 60 - rng.uniform(0, 20, devices - 1))
    ppms = [0.0] + list(rng.uniform(-100, 100, devices - 1))
    writers, streams, states = [], [], []
    for d in range(devices):
        path = folder / f"dev{d}.wav"
        files.append(str(path))
        writers.append(sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16"))
        streams.append(soxr.ResampleStream(SR, SR / (1 + ppms[d] * 1e-6), 1, dtype="float32", quality="HQ"))
        states.append([scipy.signal.sosfilt_zi(designs[d][0]) * 0, scipy.signal.sosfilt_zi(designs[d][1]) * 0])
        # The device makes SR / (1 + ppm 1e-6) samples per second of the source: its clock runs slow by that factor.
        truth[f"dev{d}"] = {"start_s": starts[d], "stop_s": stops[d],
                            "drift_ppm": (1.0 / (1.0 + ppms[d] * 1e-6) - 1.0) * 1e6}
    block = 30 * SR
    env_state = np.zeros(1)
    for s in range(0, n, block):
        m = min(block, n - s)
        env = np.repeat(np.abs(rng.standard_normal(m // (SR // 8) + 1)) + 0.05, SR // 8)[:m]
        env, env_state = scipy.signal.lfilter([0.02], [1, -0.98], env, zi=env_state)
        x = rng.standard_normal(m) * env * 0.2
        last = s + m >= n
        for d in range(devices):
            sos, tilt, mix = designs[d]
            y, states[d][0] = scipy.signal.sosfilt(sos, x, zi=states[d][0])
            t, states[d][1] = scipy.signal.sosfilt(tilt, y, zi=states[d][1])
            y = (mix * y + (1 - mix) * t).astype(np.float32)
            lo, hi = int(starts[d] * SR) - s, int(stops[d] * SR) - s
            y = y[max(lo, 0) : max(min(hi, m), 0)]
            y = streams[d].resample_chunk(y, last=last)
            if y.size:
                writers[d].write(np.clip(y + 1e-4 * rng.standard_normal(y.shape), -1, 1))
    for w in writers:
        w.close()
    return files, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        files, truth = write_devices(tmp, args.devices, args.minutes)
        made = time.perf_counter() - t0
        out = tmp / "out"
        code = CHILD.format(src=str(SRC), files=files, out=str(out))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        got = json.loads(run.stdout.strip().splitlines()[-1])
    audio_s = args.minutes * 60
    sync_err = {n: 1e3 * abs(got["start_s"][n] - got["start_s"]["dev0"] - truth[n]["start_s"])
                for n in got["start_s"]}
    drift_err = {n: abs(got["drift_ppm"][n] - truth[n]["drift_ppm"]) for n in got["drift_ppm"]}
    data = {"devices": args.devices, "minutes": args.minutes, "sample_rate": SR, "generate_s": made,
            "wall_s": got["wall_s"], "peak_rss_mb": got["peak_rss_mb"], "real_time_factor": audio_s / got["wall_s"],
            "start_error_ms": sync_err, "drift_ppm": got["drift_ppm"], "drift_error_ppm": drift_err, "truth": truth, "seams": got["seams"],
            "targets": {"faster_than_real_time": got["wall_s"] < audio_s, "peak_under_1GB": got["peak_rss_mb"] < 1024}}
    md = (f"# Event mode speed and memory\n\n{args.devices} devices x {args.minutes:g} min at {SR} Hz (16-bit mono, "
          f"synthetic, seeded), one `micmatch.event` call in a child process.\n\n"
          f"| wall time | x real time (event length / wall) | peak RSS | largest start error | largest drift error |\n"
          f"|---|---|---|---|---|\n| {got['wall_s']:.1f} s | {audio_s / got['wall_s']:.2f} | "
          f"{got['peak_rss_mb']:.0f} MB | {max(sync_err.values()):.3f} ms | {max(drift_err.values()):.2f} ppm |\n\n"
          f"Seams (every pair at regular points): {got['seams']['seams']}, median frame LSD "
          f"{got['seams']['median_frame_lsd_db']['before']} -> {got['seams']['median_frame_lsd_db']['after']} dB, "
          f"median loudness jump {got['seams']['median_abs_loudness_jump_lu']['before']} -> "
          f"{got['seams']['median_abs_loudness_jump_lu']['after']} LU.\n\nTargets: faster than real time "
          f"({'met' if got['wall_s'] < audio_s else 'missed'}), peak memory under 1 GB "
          f"({'met' if got['peak_rss_mb'] < 1024 else 'missed'}).\n")
    print(md)
    write_results("event_speed", data, md)


if __name__ == "__main__":
    main()
