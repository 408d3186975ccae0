"""FIR design accuracy: least squares (firls) against frequency sampling (firwin2), on real device corrections.

For pairs of measured microphone responses (MicIRP impulse responses in ../shared/data/micirp, or synthetic
device models when that folder is absent), the correction curve between them (default regularisation) is
designed as a 1025-tap linear-phase FIR both ways; the designed filter's magnitude is compared with the target
curve on the profile's bin grid. Reports max and RMS error (dB) over 200 Hz to 0.45 x sample rate (below about
100 Hz no 1025-tap filter can follow steep slopes: its resolution is 43 Hz at 44.1 kHz), and design time.

Run: .venv/bin/python benchmarks/bench_fir_design.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _common import write_results

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "micirp" / "ir"


def corrections(sample_rate: int):
    from micmatch.correct import correction_curve
    from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig
    from micmatch.simulate import BUILTIN_DEVICES, load_ir
    from micmatch.spectral import windowed_power_response_db

    config = SpectralConfig(sample_rate=sample_rate, n_fft=2048, hop_length=512)
    if DATA.is_dir():
        files = sorted(DATA.glob("*.wav"))
        rng = np.random.default_rng(0)
        pairs = [tuple(rng.choice(len(files), 2, replace=False)) for _ in range(10)]
        devices = {}
        for i in sorted({i for p in pairs for i in p}):
            ir = load_ir(files[i], sample_rate)
            devices[ir.name] = DeviceResponse(ir.name, windowed_power_response_db(ir.ir, 2048), method="impulse")
        names = [(load_ir(files[a], sample_rate).name, load_ir(files[b], sample_rate).name) for a, b in pairs]
        source = "MicIRP impulse responses (10 seeded pairs)"
    else:
        devices = {n: DeviceResponse(n, m.magnitude_db(config.frequencies, sample_rate), method="builtin")
                   for n, m in BUILTIN_DEVICES.items()}
        names = [(n, "studio") for n in devices if n != "studio"]
        source = "built-in device models (../shared/data absent)"
    responses = ResponseSet(config, devices.values())
    return [correction_curve(responses, d, r) for d, r in names], source


def main() -> None:
    from micmatch.fir import design_fir, fir_response_db

    sr = 44100
    corrs, source = corrections(sr)
    band = (200.0, 0.45 * sr)
    results = {}
    for design in ("firls", "firwin2"):
        max_err, rms_err, times = [], [], []
        for c in corrs:
            t0 = time.perf_counter()
            taps = design_fir(c, n_taps=1025, design=design)
            times.append(time.perf_counter() - t0)
            f = c.frequencies
            m = (f >= band[0]) & (f <= band[1])
            err = fir_response_db(taps, f[m], sr) - c.gain_db[m]
            max_err.append(float(np.abs(err).max()))
            rms_err.append(float(np.sqrt(np.mean(err**2))))
        results[design] = {"max_error_db_worst": max(max_err), "max_error_db_median": float(np.median(max_err)),
                           "rms_error_db_median": float(np.median(rms_err)), "design_s_median": float(np.median(times))}
    best = min(results, key=lambda d: results[d]["max_error_db_median"])
    md = ["# FIR design accuracy (issue 2)", "",
          f"1025-tap linear-phase FIRs for {len(corrs)} corrections from {source}, 44.1 kHz, error of the designed "
          f"magnitude against the target over {band[0]:.0f} Hz-{band[1]:.0f} Hz. `benchmarks/bench_fir_design.py`.", "",
          "| design | median max error (dB) | worst max error (dB) | median RMS error (dB) | design time (ms) |",
          "|---|---|---|---|---|"]
    for d, r in results.items():
        md.append(f"| {d} | {r['max_error_db_median']:.3f} | {r['max_error_db_worst']:.3f} | "
                  f"{r['rms_error_db_median']:.4f} | {1000 * r['design_s_median']:.1f} |")
    md += ["", f"Most accurate: {best} (micmatch's default)."]
    print(write_results("fir_design", {"source": source, "band_hz": band, "results": results, "best": best},
                        "\n".join(md)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
