"""micmatch match on simulated reverberant, noisy pairs: log vs power statistic, aligned vs unaligned route.

Each pair: a wideband speech-like source (micmatch.demo.synth_voice: glottal pulses through moving formants plus
high-passed fricative noise, content up to Nyquist; 44.1 kHz) recorded
- by the reference: through microphone IR A (MicIRP), close (no room), noise at -75 dB re speech RMS;
- by the target: through a shoebox room (pyroomacoustics image method, RT60 0.25-0.8 s, random positions), then
  microphone IR B, plus stationary pink-ish noise at an SNR of 15-35 dB, at another level, shifted in time.
Aligned pairs hold the same speech; unaligned pairs hold different speech of the same kind (the reference is
another draw). Figures per pair: long-term 1/3-octave distance (dB RMS over 100 Hz-16 kHz, level removed)
before/after, frame LSD before/after (aligned), loudness error of the result (LU), overs reduction.

    PYTHONPATH=src python benchmarks/bench_match.py [--pairs 24] [--data /work/shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

SR = 44100
SECONDS = 12.0


def speech(rng: np.random.Generator, seconds: float = SECONDS) -> np.ndarray:
    from micmatch.demo import synth_voice

    parts = [synth_voice(int(4 * SR), SR, rng) for _ in range(round(seconds / 4))]
    x = np.concatenate(parts)
    return x / np.sqrt(np.mean(x * x)) * 10 ** (-26 / 20)


def room_ir(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    import pyroomacoustics as pra

    dims = rng.uniform([4, 3, 2.5], [9, 7, 3.5])
    rt60 = float(rng.uniform(0.25, 0.8))
    e_abs, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SR, materials=pra.Material(e_abs), max_order=min(max_order, 30))
    room.add_source(rng.uniform([0.5, 0.5, 1.0], dims - [0.5, 0.5, 1.0]))
    room.add_microphone(rng.uniform([0.5, 0.5, 0.8], dims - [0.5, 0.5, 1.0]))
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    return h / np.abs(h).max(), rt60


def pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec *= 1.0 / np.sqrt(np.maximum(f, 50.0))
    y = np.fft.irfft(spec, n)
    return y / np.sqrt(np.mean(y * y))


def make_pair(rng, irs, *, aligned: bool):
    import scipy.signal

    from micmatch.simulate import apply_ir, load_ir

    a, b = rng.choice(len(irs), size=2, replace=False)
    ir_a, ir_b = load_ir(irs[a], SR), load_ir(irs[b], SR)
    src = speech(rng)
    ref_src = src if aligned else speech(rng)
    ref = apply_ir(ref_src, ir_a, SR)
    ref = ref + pink(rng, ref.size) * np.sqrt(np.mean(ref * ref)) * 10 ** (-75 / 20)
    h, rt60 = room_ir(rng)
    wet = scipy.signal.oaconvolve(src, h)[: src.size]
    tgt = apply_ir(wet, ir_b, SR)
    snr = float(rng.uniform(15, 35))
    tgt = tgt + pink(rng, tgt.size) * np.sqrt(np.mean(tgt * tgt)) * 10 ** (-snr / 20)
    shift = int(rng.integers(0, SR // 4))
    tgt = np.r_[np.zeros(shift), tgt][: tgt.size] * 10 ** (rng.uniform(-12, 0) / 20)
    ref = ref * 10 ** (rng.uniform(-6, 0) / 20)
    info = {"reference_mic": Path(irs[a]).stem, "target_mic": Path(irs[b]).stem, "rt60_s": round(rt60, 3),
            "snr_db": round(snr, 1), "shift_s": round(shift / SR, 4)}
    return tgt.astype(np.float32), ref.astype(np.float32), info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--data", default=os.environ.get("MICMATCH_DATA", str(Path(__file__).resolve().parents[2] /
                                                                           "shared" / "data")))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from micmatch.matching import match

    irs = sorted((Path(args.data) / "micirp" / "ir").glob("*.wav"))
    if not irs:
        sys.exit(f"no MicIRP impulse responses under {args.data}/micirp/ir")
    rng = np.random.default_rng(args.seed)
    rows = []
    t0 = time.perf_counter()
    for i in range(args.pairs):
        for kind in ("same", "different"):
            tgt, ref, info = make_pair(rng, irs, aligned=kind == "same")
            for statistic in ("log", "power"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = match((tgt, SR), (ref, SR), statistic=statistic, overs="scale")
                row = {"pair": i, "material": kind, "statistic": statistic, "route": r.route, **info,
                       "lt_before_db": r.distance_db["before"], "lt_after_db": r.distance_db["after"],
                       "loudness_error_lu": (r.loudness_lufs["result"] - r.loudness_lufs["reference"]),
                       "overs_reduction_db": r.overs_reduction_db}
                if r.frame_lsd_db:
                    row["lsd_before_db"], row["lsd_after_db"] = r.frame_lsd_db["before"], r.frame_lsd_db["after"]
                rows.append(row)
        print(f"pair {i + 1}/{args.pairs} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    def stats(sel, key):
        v = np.array([r[key] for r in sel if key in r], dtype=float)
        return {"median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max()),
                "min": float(v.min())} if v.size else None

    summary = {}
    for kind in ("same", "different"):
        for statistic in ("log", "power"):
            sel = [r for r in rows if r["material"] == kind and r["statistic"] == statistic]
            summary[f"{kind}/{statistic}"] = {
                "pairs": len(sel), "routes": sorted({r["route"] for r in sel}),
                "lt_before_db": stats(sel, "lt_before_db"), "lt_after_db": stats(sel, "lt_after_db"),
                "worse_than_before": sum(r["lt_after_db"] > r["lt_before_db"] for r in sel),
                "lt_after_le_1db": sum(r["lt_after_db"] <= 1.0 for r in sel),
                "abs_loudness_error_lu": stats([{"e": abs(r["loudness_error_lu"])} for r in sel], "e"),
                "lsd_before_db": stats(sel, "lsd_before_db"), "lsd_after_db": stats(sel, "lsd_after_db"),
                "files_with_overs_reduction": sum(r["overs_reduction_db"] > 0 for r in sel),
                "max_overs_reduction_db": max(r["overs_reduction_db"] for r in sel)}
    lines = ["# micmatch match on simulated reverberant, noisy pairs", "",
             (f"{args.pairs} pairs with the same speech (aligned route expected) and {args.pairs} with different "
             "speech of the same kind (unaligned route), each matched with both statistics. Source: synthetic "
             "wideband speech-like material (micmatch.demo.synth_voice, 44.1 kHz, 12 s). Reference: MicIRP "
             "microphone A, close, noise -75 dB. Target: pyroomacoustics shoebox room (RT60 0.25-0.8 s), MicIRP "
             "microphone B, pink noise at SNR 15-35 dB, level -12..0 dB, shifted 0-0.25 s. Distances: long-term "
             "1/3-octave (dB RMS over 100 Hz-16 kHz, level removed); frame LSD on the aligned pair "
             "(loud frames). Loudness: ITU-R BS.1770 integrated, result minus reference."), "",
             ("| material | statistic | route | long-term before (median) | after (median / max) | after <= 1 dB "
             "| worse than before | frame LSD before -> after (median) | abs loudness error max (LU) "
             "| files lowered for overs |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        kind, statistic = key.split("/")
        lsd = (f"{s['lsd_before_db']['median']:.2f} -> {s['lsd_after_db']['median']:.2f}" if s["lsd_after_db"]
               else "n/a")
        lines.append(f"| {kind} | {statistic} | {', '.join(s['routes'])} | {s['lt_before_db']['median']:.2f} | "
                     f"{s['lt_after_db']['median']:.2f} / {s['lt_after_db']['max']:.2f} | "
                     f"{s['lt_after_le_1db']}/{s['pairs']} | {s['worse_than_before']} | {lsd} | "
                     f"{s['abs_loudness_error_lu']['max']:.3f} | {s['files_with_overs_reduction']} "
                     f"(max {s['max_overs_reduction_db']:.1f} dB) |")
    lines += ["", f"Run time {time.perf_counter() - t0:.0f} s on a shared 2-core machine (times not compared).",
              ("Command: `PYTHONPATH=src python benchmarks/bench_match.py --pairs " f"{args.pairs}`")]
    md = write_results("match", {"pairs": args.pairs, "seed": args.seed, "summary": summary, "rows": rows},
                       "\n".join(lines))
    print(md.read_text())


if __name__ == "__main__":
    main()
