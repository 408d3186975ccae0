"""Parametric EQ fit on measured microphone pairs: how close <= N peaking/shelving biquads come to the correction.

Every pair (device d, reference r) of MicIRP microphones (random ordered pairs, seeded): the responses are the IRs'
magnitudes (n_fft 4096 at 44.1 kHz), the correction d -> r is micmatch's default for the commands (band where both
have signal, raised-cosine edges, clamps +20/-30 dB) with 1/6-octave smoothing (as parametric EQ tools fit
smoothed curves), and :func:`micmatch.parametric.fit_parametric` fits it with at most ``--filters`` filters. The
error is the RMS over the fit's log-spaced grid (1/24 octave) of fit minus correction, over the correction's band.

    PYTHONPATH=src python benchmarks/bench_parametric.py [--pairs 80 --filters 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

SR = 44100
N_FFT = 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=80)
    ap.add_argument("--filters", type=int, default=10)
    ap.add_argument("--smooth", type=float, default=1 / 6)
    ap.add_argument("--data", default=os.environ.get("MICMATCH_DATA", str(Path(__file__).resolve().parents[2] /
                                                                           "shared" / "data")))
    args = ap.parse_args()
    from micmatch.correct import correction_curve
    from micmatch.parametric import fit_parametric
    from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig
    from micmatch.simulate import load_ir

    irs = sorted((Path(args.data) / "micirp" / "ir").glob("*.wav"))
    if len(irs) < 2:
        sys.exit(f"no MicIRP impulse responses under {args.data}/micirp/ir")
    cfg = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=N_FFT // 4)
    devices = [DeviceResponse(p.stem, load_ir(p, SR).magnitude_db(N_FFT), method="impulse") for p in irs]
    rs = ResponseSet(cfg, devices)
    rng = np.random.default_rng(0)
    names = list(rs)
    rows = []
    t0 = time.perf_counter()
    for _ in range(args.pairs):
        d, r = rng.choice(len(names), size=2, replace=False)
        corr = correction_curve(rs, names[d], names[r], smoothing_octaves=args.smooth or None, limit_band="auto")
        eq = fit_parametric(corr, n_filters=args.filters)
        f = np.geomspace(eq.band_hz[0], eq.band_hz[1], 400)
        rows.append({"device": names[d], "reference": names[r], "band_hz": list(eq.band_hz),
                     "filters": len(eq.filters), "rms_error_db": eq.rms_error_db,
                     "max_abs_error_db": float(np.abs(eq.response_db(f) - corr.interpolate_db(f)).max()),
                     "correction_span_db": float(np.ptp(corr.interpolate_db(f))), "preamp_db": eq.preamp_db})
    err = np.array([r["rms_error_db"] for r in rows])
    span = np.array([r["correction_span_db"] for r in rows])
    q = {k: float(np.percentile(err, p)) for k, p in (("p10", 10), ("median", 50), ("p90", 90), ("max", 100))}
    summary = {"pairs": len(rows), "filters": args.filters, "smoothing_octaves": args.smooth,
               "rms_error_db": q, "within_1db": int((err <= 1.0).sum()),
               "median_correction_span_db": float(np.median(span)),
               "median_filters_used": float(np.median([r["filters"] for r in rows]))}
    worst = sorted(rows, key=lambda r: -r["rms_error_db"])[:5]
    lines = ["# Parametric EQ fit on MicIRP microphone pairs", "",
             (f"{len(rows)} random ordered pairs of the {len(names)} MicIRP microphones; correction with the commands' "
             f"defaults and 1/{round(1 / args.smooth)}-octave smoothing; at most {args.filters} biquads (peaking, "
             "low/high shelf) plus a flat gain; error = RMS of fit minus correction over the correction's band "
             "(1/24-octave grid)."), "",
             "| RMS error p10 | median | p90 | max | pairs within 1.0 dB | median correction span | median filters |",
             "|---|---|---|---|---|---|---|",
             (f"| {q['p10']:.2f} dB | {q['median']:.2f} dB | {q['p90']:.2f} dB | {q['max']:.2f} dB | "
             f"{summary['within_1db']}/{len(rows)} | {summary['median_correction_span_db']:.1f} dB | "
             f"{summary['median_filters_used']:.0f} |"), "", "Worst pairs:", ""]
    lines += [f"- {r['device']} -> {r['reference']}: {r['rms_error_db']:.2f} dB RMS (span "
              f"{r['correction_span_db']:.1f} dB, band {r['band_hz'][0]:.0f}-{r['band_hz'][1]:.0f} Hz)" for r in worst]
    lines += ["", f"Run time {time.perf_counter() - t0:.0f} s on a shared 2-core machine.",
              (f"Command: `PYTHONPATH=src python benchmarks/bench_parametric.py --pairs {args.pairs} "
              f"--filters {args.filters}`")]
    md = write_results("parametric", {"summary": summary, "rows": rows}, "\n".join(lines))
    print(md.read_text())


if __name__ == "__main__":
    main()
