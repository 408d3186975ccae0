"""Correction speed: micmatch's FIR and STFT paths against scipy.signal.lfilter and librosa, side by side.

Workload (issue 2): ten minutes of 44.1 kHz mono float32 audio, a correction with real structure (from two
measured-looking responses), one core.
  FIR : micmatch overlap-save (correct.fir_filter, 1025 taps, delay compensated) vs scipy.signal.lfilter with
        the same float32 taps (how the seed's public code applied its filter). The design (firls, about 0.1 s,
        once per correction) is timed separately.
  STFT: micmatch (method="stft", n_fft 2048, hop 512) vs librosa.stft -> gain -> librosa.istft, same n_fft/hop.
Both micmatch outputs are checked against their references (max abs difference reported).

Run: .venv/bin/python benchmarks/bench_correct.py [--minutes 10 --repeats 5]
"""

from __future__ import annotations

import argparse

from _common import median_time, single_thread_env, write_results

single_thread_env()

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402


def make_correction(sample_rate: int):
    from micmatch.correct import Correction
    from micmatch.spectral import frequencies

    f = frequencies(sample_rate, 2048)
    # A phone-like difference: low cut, presence bump, top roll-off (-40..+10 dB span as in METHODS.md section 9).
    gain = (-40 * np.exp(-np.maximum(f, 1) / 150) + 8 * np.exp(-((np.log2(np.maximum(f, 1) / 3000)) ** 2) / 0.3)
            - 12 * np.clip((f - 10000) / 10000, 0, 1))
    return Correction("phone", "studio", sample_rate, 2048, gain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import librosa

    from micmatch.correct import apply_correction
    from micmatch.fir import design_fir, fir_filter

    sr = 44100
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(int(args.minutes * 60 * sr)) * 0.05).astype(np.float32)
    corr = make_correction(sr)
    taps = design_fir(corr, n_taps=1025).astype(np.float32)
    delay = (taps.size - 1) // 2

    def fir_ours():
        return fir_filter(x, taps)

    def fir_lfilter():
        return scipy.signal.lfilter(taps, np.float32(1.0), x)

    gain = corr.gain.astype(np.float32)[:, None]

    def stft_ours():
        return apply_correction(x, sr, corr, method="stft", hop_length=512)

    def stft_librosa():
        spec = librosa.stft(x, n_fft=2048, hop_length=512)
        return librosa.istft(spec * gain, hop_length=512, n_fft=2048, length=x.size)

    t_design, _ = median_time(lambda: design_fir(corr, n_taps=1025), repeats=args.repeats)
    t_fir, _ = median_time(fir_ours, repeats=args.repeats)
    t_lf, _ = median_time(fir_lfilter, repeats=max(1, args.repeats // 2))
    t_st, _ = median_time(stft_ours, repeats=args.repeats)
    t_lr, _ = median_time(stft_librosa, repeats=args.repeats)
    # Agreement: FIR output equals lfilter's with the linear-phase delay removed; STFT output close to librosa's
    # (different frame grids at the edges; compare the interior).
    ref = fir_lfilter()[delay:]
    fir_diff = float(np.abs(fir_ours()[: ref.size] - ref).max())
    mid = slice(sr, x.size - sr)
    stft_diff = float(np.abs(stft_ours()[mid] - stft_librosa()[mid]).max())
    audio_s = x.size / sr
    data = {"minutes": args.minutes, "repeats": args.repeats, "sample_rate": sr, "n_taps": 1025,
            "median_s": {"fir_design_firls": t_design, "fir_micmatch": t_fir, "fir_lfilter": t_lf, "stft_micmatch": t_st, "stft_librosa": t_lr},
            "fir_speedup": t_lf / t_fir, "stft_speedup": t_lr / t_st, "fir_max_abs_diff": fir_diff,
            "stft_max_abs_diff": stft_diff}
    md = [
        "# Correction speed (issue 2)", "",
        f"{args.minutes:.0f} min of 44.1 kHz mono float32 audio, one core, median of {args.repeats} runs "
        f"({max(1, args.repeats // 2)} for lfilter), one run of `benchmarks/bench_correct.py`.", "",
        "| path | median time (s) | x real time | speed-up | max abs difference to reference |",
        "|---|---|---|---|---|",
        f"| scipy.signal.lfilter, 1025 taps | {t_lf:.2f} | {audio_s / t_lf:.0f} | 1.00 | |",
        f"| micmatch FIR (overlap-save), 1025 taps | {t_fir:.2f} | {audio_s / t_fir:.0f} | {t_lf / t_fir:.2f} | "
        f"{fir_diff:.1e} |",
        f"| librosa stft -> gain -> istft | {t_lr:.2f} | {audio_s / t_lr:.0f} | 1.00 | |",
        f"| micmatch STFT | {t_st:.2f} | {audio_s / t_st:.0f} | {t_lr / t_st:.2f} | {stft_diff:.1e} |",
        "", f"FIR design (firls, 1025 taps), once per correction: {t_design:.3f} s.",
        "", f"Targets: FIR >= 8x lfilter ({t_lf / t_fir:.1f}x); STFT >= 2.5x librosa ({t_lr / t_st:.1f}x).",
    ]
    print(write_results("correct", data, "\n".join(md)).read_text())


if __name__ == "__main__":
    main()
