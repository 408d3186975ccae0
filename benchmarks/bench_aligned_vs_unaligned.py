"""Aligned vs unaligned spectrum correction on the same audio: error of the relative response against the truth.

Material: FSDD speech (8 kHz, clips concatenated in a seeded random order) through two real MicIRP microphone
impulse responses (resampled to 8 kHz), independent white noise 30 dB below each recording, and for the device a
start offset of 1.3 s and a clock drift of +60 ppm. The aligned estimate (``micmatch.aligned.estimate_pair``) sees
the pair; the unaligned estimate (``micmatch.estimate.estimate_responses``) sees the same two recordings as
unrelated material. Truth: ``ImpulseResponse.magnitude_db(n_fft)`` of the device IR minus the reference IR's.
Error: dB RMS over 100-3600 Hz (FSDD holds nothing above 4 kHz; speech holds little below 100 Hz).

Run: ``.venv/bin/python benchmarks/bench_aligned_vs_unaligned.py`` (about a minute on 2 cores; needs
../shared/data). Writes ``benchmarks/results/aligned_vs_unaligned.md`` and ``.json``.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

from micmatch.aligned import estimate_pair  # noqa: E402
from micmatch.audio import load  # noqa: E402
from micmatch.estimate import estimate_responses  # noqa: E402
from micmatch.simulate import apply_ir, load_ir  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SR, N_FFT, HOP = 8000, 1024, 256
SNR_DB, OFFSET_S, DRIFT_PPM = 30.0, 1.3, 60
BAND = (100.0, 3600.0)
PAIRS = [("Altec_639", "Beomic_1000"), ("Coles_4038", "IR_OktavaMK18Silver"), ("RCA_44BX_1", "Sony_C37Fet"),
         ("Shure315_flat", "IR_Lomo52A5M"), ("EV_RE20_Flat", "Toshiba_TypeK_flat")]
LENGTHS_S = [5.0, 10.0, 30.0]


def speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    files = sorted((DATA / "fsdd" / "audio").glob("*.wav"))
    parts, total = [], 0
    for i in rng.permutation(len(files)):
        x = load(files[i], channels="mix", dtype="float64")[0][0]
        parts.append(x)
        total += x.shape[-1]
        if total >= seconds * SR:
            break
    return np.concatenate(parts)[: int(seconds * SR)]


def one(rng: np.random.Generator, ref_name: str, dev_name: str, seconds: float) -> dict:
    x = speech(rng, seconds)
    ha = load_ir(DATA / "micirp" / "ir" / f"{ref_name}.wav", SR)
    hb = load_ir(DATA / "micirp" / "ir" / f"{dev_name}.wav", SR)
    ref, dev = apply_ir(x, ha, SR), apply_ir(x, hb, SR)
    ref = ref + rng.standard_normal(ref.shape[-1]) * np.std(ref) * 10 ** (-SNR_DB / 20)
    dev = dev + rng.standard_normal(dev.shape[-1]) * np.std(dev) * 10 ** (-SNR_DB / 20)
    ratio = Fraction(1_000_000 + DRIFT_PPM, 1_000_000)
    dev = scipy.signal.resample_poly(dev, ratio.numerator, ratio.denominator)
    dev = np.concatenate([rng.standard_normal(int(OFFSET_S * SR)) * np.std(dev) * 10 ** (-SNR_DB / 20), dev])
    truth = hb.magnitude_db(N_FFT) - ha.magnitude_db(N_FFT)
    pair = estimate_pair(ref, dev, SR, n_fft=N_FFT, hop_length=HOP)
    aligned = pair.responses.relative_db("device", "reference")
    unaligned = estimate_responses({"ref": [ref], "dev": [dev]}, SR, n_fft=N_FFT, hop_length=HOP).relative_db(
        "dev", "ref")
    f = pair.responses.frequencies
    band = (f >= BAND[0]) & (f <= BAND[1])

    def err(est):
        return float(np.sqrt(np.mean((est - truth)[band] ** 2)))

    return {"reference": ref_name, "device": dev_name, "seconds": seconds, "aligned_db": err(aligned),
            "unaligned_db": err(unaligned), "offset_s": pair.alignment.offset_samples / SR,
            "drift_ppm": pair.alignment.drift_ppm, "frames_used": pair.n_frames_used,
            "frames_total": pair.n_frames_total}


def main() -> None:
    rng = np.random.default_rng(2024)
    rows = [one(rng, a, b, s) for s in LENGTHS_S for a, b in PAIRS]
    RESULTS.mkdir(exist_ok=True)
    settings = {"sample_rate": SR, "n_fft": N_FFT, "hop_length": HOP, "snr_db": SNR_DB, "offset_s": OFFSET_S,
                "drift_ppm": DRIFT_PPM, "band_hz": BAND, "seed": 2024}
    (RESULTS / "aligned_vs_unaligned.json").write_text(
        json.dumps({"settings": settings, "machine": machine(), "rows": rows}, indent=1) + "\n")
    lines = [
        "# Aligned vs unaligned spectrum correction (same audio)",
        "",
        f"FSDD speech through two MicIRP microphone IRs at {SR} Hz, independent white noise {SNR_DB:.0f} dB below "
        f"each recording, device offset {OFFSET_S} s and drift +{DRIFT_PPM} ppm. Error of the device-minus-reference "
        f"response against the IRs' own magnitudes, dB RMS over {BAND[0]:.0f}-{BAND[1]:.0f} Hz "
        f"(n_fft {N_FFT}, hop {HOP}). Produced by `benchmarks/bench_aligned_vs_unaligned.py`.",
        "",
        "| reference | device | audio (s) | aligned (dB) | unaligned (dB) | est. drift (ppm) | frames used |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['reference']} | {r['device']} | {r['seconds']:.0f} | {r['aligned_db']:.2f} | "
                     f"{r['unaligned_db']:.2f} | {r['drift_ppm']:.1f} | {r['frames_used']}/{r['frames_total']} |")
    lines += ["", "| audio (s) | aligned, mean (dB) | unaligned, mean (dB) |", "|---:|---:|---:|"]
    for s in LENGTHS_S:
        sub = [r for r in rows if r["seconds"] == s]
        lines.append(f"| {s:.0f} | {np.mean([r['aligned_db'] for r in sub]):.2f} | "
                     f"{np.mean([r['unaligned_db'] for r in sub]):.2f} |")
    (RESULTS / "aligned_vs_unaligned.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
