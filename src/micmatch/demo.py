"""The built-in demonstration: the whole matching flow on a synthetic corpus, with no download.

1. Synthesize varied source clips (voiced speech-like sounds with fricatives, noise bursts, percussive hits).
   All are spectrally dense, the material the unaligned estimate is made for; tonal material with empty bins
   between partials biases it towards each device's noise floor (README, "Limits").
2. "Record" every clip with each built-in device of :data:`micmatch.simulate.BUILTIN_DEVICES`
   (studio reference, phone, laptop, headset: response, noise floor), written as 16-bit WAV files.
3. Estimate every device's response from its recordings with ``profile`` (the pairing is not used).
4. Correct every device's recordings to the studio reference.
5. Report the error of each estimated relative response against the true one, and the log spectral distance
   between each device's recordings and the reference's before and after correction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal

from micmatch import audio as audio_io
from micmatch.correct import correct_file, correction_curve
from micmatch.estimate import profile_files
from micmatch.metrics import log_spectral_distance, response_error_db
from micmatch.outputs import atomic_path
from micmatch.plot import plot_responses, plot_spectrograms
from micmatch.response import SpectralConfig
from micmatch.simulate import BUILTIN_DEVICES

DEMO_SAMPLE_RATE = 16000
DEMO_REFERENCE = "studio"
CLIP_SECONDS = 3.0
#: Band over which errors are reported: 100 Hz to 0.45 x sample rate, as in the project's acceptance checks.
BAND = (100.0, 0.45 * DEMO_SAMPLE_RATE)


def _envelope(n: int, sr: int, rng: np.random.Generator, *, syllables: int) -> np.ndarray:
    """Smooth on/off envelope with ``syllables`` bumps and pauses between them."""
    env = np.zeros(n)
    edges = np.sort(rng.uniform(0, n, size=2 * syllables).astype(int))
    for a, b in edges.reshape(-1, 2):
        if b - a < sr // 20:
            continue
        env[a:b] = np.hanning(b - a)
    return env


def synth_voice(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Voiced speech-like sound: a glottal pulse train with vibrato through three moving formant resonators."""
    t = np.arange(n) / sr
    f0 = rng.uniform(95, 230) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    src = scipy.signal.lfilter([1.0], [1.0, -0.95], pulses)  # glottal roll-off
    out = np.zeros(n)
    seg = n // 4
    for k in range(4):  # four "vowels"
        x = src[k * seg : (k + 1) * seg]
        y = x.copy()
        for fmt, bw in zip(rng.uniform([300, 900, 2200], [800, 2200, 3400]), (80, 120, 200)):
            r = np.exp(-np.pi * bw / sr)
            y = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fmt / sr), r * r], y) * 4
        out[k * seg : (k + 1) * seg] = y
    out += 0.02 * rng.standard_normal(n) * np.std(out)  # breath
    # Fricatives ("s", "f"): short bursts of high-passed noise between the vowels.
    sos = scipy.signal.butter(2, min(rng.uniform(2500, 4500), sr * 0.4), "highpass", fs=sr, output="sos")
    hiss = scipy.signal.sosfilt(sos, rng.standard_normal(n)) * np.std(out) * 0.5
    return out * _envelope(n, sr, rng, syllables=5) + hiss * _envelope(n, sr, rng, syllables=2)


def synth_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise bursts with a random spectral tilt above 50 Hz (wind, traffic, applause-like)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec *= np.maximum(f, 50.0) ** (-rng.uniform(0.0, 0.5))  # flat below 50 Hz: no sub-audio rumble
    spec[f < 20.0] = 0
    return np.fft.irfft(spec, n) * _envelope(n, sr, rng, syllables=3)


def synth_hits(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Percussive hits: exponentially decaying filtered noise."""
    out = np.zeros(n)
    for _ in range(rng.integers(4, 10)):
        start = rng.integers(0, n - sr // 4)
        length = min(n - start, int(sr * rng.uniform(0.05, 0.4)))
        hit = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 6))
        lo = rng.uniform(80, 2000)
        sos = scipy.signal.butter(2, [lo, min(lo * rng.uniform(2, 8), sr * 0.45)], "bandpass", fs=sr, output="sos")
        out[start : start + length] += scipy.signal.sosfilt(sos, hit)
    return out


SOURCES: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "voice": synth_voice, "noise": synth_noise, "hits": synth_hits,
}


def synth_corpus(n_clips: int, sample_rate: int, *, seed: int = 0, seconds: float = CLIP_SECONDS) -> list[tuple[str, np.ndarray]]:
    """``n_clips`` named source clips cycling through :data:`SOURCES`, at -24 dBFS RMS with peaks below -12 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    kinds = list(SOURCES)
    clips = []
    for i in range(n_clips):
        kind = kinds[i % len(kinds)]
        x = SOURCES[kind](n, sample_rate, rng)
        x = x / max(np.sqrt(np.mean(x * x)), 1e-12) * 10 ** (-24 / 20)
        x = x * min(1.0, 0.25 / np.abs(x).max())
        clips.append((f"{i:02d}_{kind}", x))
    return clips


def run_demo(outdir: Path, *, n_clips: int = 12, seed: int = 0, progress: bool = False,
             echo: Callable[[str], None] = print) -> Path:
    """Run the demonstration into ``outdir``; returns the path of report.md."""
    sr = DEMO_SAMPLE_RATE
    outdir = Path(outdir)
    rec_dir = outdir / "recordings"
    rng = np.random.default_rng(seed + 1)
    clips = synth_corpus(n_clips, sr, seed=seed)
    echo(f"synthesized {len(clips)} source clips of {CLIP_SECONDS:.0f} s at {sr} Hz; recording with "
         f"{', '.join(BUILTIN_DEVICES)}")
    recordings: dict[str, dict[str, np.ndarray]] = {}
    files: list[Path] = []
    for name, model in BUILTIN_DEVICES.items():
        recordings[name] = {}
        for clip_name, x in clips:
            y = model.record(x, sr, rng=rng)
            path = audio_io.save(rec_dir / name / f"{clip_name}.wav", y.astype(np.float32), sr, subtype="PCM_16")
            recordings[name][clip_name] = audio_io.load(path)[0][0]
            files.append(path)

    config = SpectralConfig(sample_rate=sr, n_fft=2048, hop_length=512)
    # Only the files written above: a reused output folder may hold recordings of an earlier run.
    responses, failures = profile_files(files, [f.parent.name for f in files], config, jobs=1, progress=progress)
    if failures:
        raise RuntimeError(f"demo recordings failed to profile: {failures}")
    responses.save(outdir / "responses.json")
    plot_responses(responses, outdir / "responses.png", reference=DEMO_REFERENCE, smoothing_octaves=1 / 12)
    echo(f"estimated {len(responses)} responses -> {outdir / 'responses.json'}, {outdir / 'responses.png'}")

    freqs = responses.frequencies
    ref_model = BUILTIN_DEVICES[DEMO_REFERENCE]
    rows = []
    for name, model in BUILTIN_DEVICES.items():
        if name == DEMO_REFERENCE:
            continue
        truth = model.magnitude_db(freqs, sr) - ref_model.magnitude_db(freqs, sr)
        err = response_error_db(responses.relative_db(name, DEMO_REFERENCE), truth, freqs, band=BAND)
        # The band this device captures: its true response within 20 dB of its peak. Below that its output is
        # under its own noise floor, so no estimate from recordings can see the response there.
        dev_db = model.magnitude_db(freqs, sr)
        captured = (dev_db >= dev_db.max() - 20.0) & (freqs >= BAND[0]) & (freqs <= BAND[1])
        lo_c, hi_c = float(freqs[captured].min()), float(freqs[captured].max())
        err_c = response_error_db(responses.relative_db(name, DEMO_REFERENCE), truth, freqs, band=(lo_c, hi_c))
        corr = correction_curve(responses, name, DEMO_REFERENCE)
        lsd_before, lsd_after = [], []
        for clip_name, _ in clips:
            src = rec_dir / name / f"{clip_name}.wav"
            dst = outdir / "corrected" / name / f"{clip_name}.wav"
            correct_file(src, dst, corr, method="stft", overs="float")
            corrected = audio_io.load(dst)[0][0]
            ref = recordings[DEMO_REFERENCE][clip_name]
            lsd_before.append(log_spectral_distance(ref, recordings[name][clip_name], sr, n_fft=1024,
                                                    hop_length=256, band_hz=(lo_c, hi_c), active_db=30.0))
            lsd_after.append(log_spectral_distance(ref, corrected, sr, n_fft=1024, hop_length=256,
                                                   band_hz=(lo_c, hi_c), active_db=30.0))
        first = clips[0][0]
        plot_spectrograms(recordings[name][first], audio_io.load(outdir / "corrected" / name / f"{first}.wav")[0][0],
                          recordings[DEMO_REFERENCE][first], sr, outdir / f"spectrograms_{name}.png",
                          titles=(name, f"{name} corrected", DEMO_REFERENCE))
        rows.append({"device": name, "response_error_db": err, "captured_band_hz": [lo_c, hi_c],
                     "response_error_captured_db": err_c, "lsd_before_db": float(np.mean(lsd_before)),
                     "lsd_after_db": float(np.mean(lsd_after)), "max_boost_db": float(corr.gain_db.max()),
                     "max_cut_db": float(-corr.gain_db.min())})
        echo(f"  {name:8s} response error {err_c:5.2f} dB RMS over {lo_c:.0f}-{hi_c:.0f} Hz ({err:.2f} over "
             f"{BAND[0]:.0f}-{BAND[1]:.0f} Hz); LSD to {DEMO_REFERENCE} "
             f"{rows[-1]['lsd_before_db']:5.2f} -> {rows[-1]['lsd_after_db']:5.2f} dB")

    report = outdir / "report.md"
    lines = [
        "# micmatch demo report", "",
        f"{len(clips)} synthetic clips of {CLIP_SECONDS:.0f} s at {sr} Hz, recorded by the built-in device models "
        f"and corrected to `{DEMO_REFERENCE}` (STFT method, default regularisation: +20/-30 dB clamp).",
        "Response error: the estimated relative response (device minus reference, unaligned estimate, the pairing "
        "is not used) against the models' true one, dB RMS, over the band each device captures (its true response "
        "within 20 dB of its peak: below that its output is under its own noise floor) and over "
        f"{BAND[0]:.0f}-{BAND[1]:.0f} Hz. LSD: log spectral distance to the reference device's recording of the "
        "same clip (n_fft 1024, captured band, frames within 30 dB of the loudest), mean over clips.", "",
        "| device | captured band (Hz) | response error there (dB RMS) | error 100 Hz-0.45 fs (dB RMS) | "
        "LSD before (dB) | LSD after (dB) | largest boost (dB) | largest cut (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo_c, hi_c = r["captured_band_hz"]
        lines.append(f"| {r['device']} | {lo_c:.0f}-{hi_c:.0f} | {r['response_error_captured_db']:.2f} | "
                     f"{r['response_error_db']:.2f} | {r['lsd_before_db']:.2f} | "
                     f"{r['lsd_after_db']:.2f} | {r['max_boost_db']:.1f} | {r['max_cut_db']:.1f} |")
    lines += ["", "Devices:", ""]
    lines += [f"- `{m.name}`: {m.description}" for m in BUILTIN_DEVICES.values()]
    lines += ["", "Files: `responses.json`, `responses.png`, `spectrograms_<device>.png`, `recordings/`, `corrected/`."]
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(outdir / "report.json") as tmp:
        tmp.write_text(json.dumps({"sample_rate": sr, "band_hz": BAND, "devices": rows}, indent=1), encoding="utf-8")
    return report
