"""The acceptance check of the unaligned estimate on real audio through real microphone responses.

16 spoken-digit clips (FSDD, 8 kHz) "recorded" by two MicIRP microphones (their impulse responses, resampled to
8 kHz, delay compensated). The responses are estimated per device without using the pairing. Checks: the
estimated relative response is within 1.0 dB RMS of the truth over 100 Hz to 0.45 x sample rate, and correcting
device a's recordings toward b at least halves their log spectral distance to b's versions. The truth is the
relative response as a Hann-windowed STFT of n_fft sees it (spectral.windowed_power_response_db): what an
estimate from recordings converges to. A synthetic twin (synthetic sources, synthetic IRs) always runs.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from micmatch import audio, metrics, simulate, spectral
from micmatch.correct import apply_correction, correction_curve
from micmatch.demo import synth_corpus
from micmatch.estimate import estimate_responses

SR = 8000
N_FFT = 512  # 64 ms: FSDD clips are 0.3-0.9 s, so every clip holds several frames
HOP = 128
BAND = (100.0, 0.45 * SR)


def _check_pair(clips: list[np.ndarray], ir_a, ir_b, method: str = "stft") -> tuple[float, float, float]:
    rec_a = [simulate.apply_ir(c, ir_a, SR) for c in clips]
    rec_b = [simulate.apply_ir(c, ir_b, SR) for c in clips]
    responses = estimate_responses({"a": rec_a, "b": rec_b}, SR, n_fft=N_FFT, hop_length=HOP)
    h_a = ir_a.ir if isinstance(ir_a, simulate.ImpulseResponse) else ir_a
    h_b = ir_b.ir if isinstance(ir_b, simulate.ImpulseResponse) else ir_b
    truth = spectral.windowed_power_response_db(h_a, N_FFT) - spectral.windowed_power_response_db(h_b, N_FFT)
    err = metrics.response_error_db(responses.relative_db("a", "b"), truth, responses.frequencies, band=BAND)
    corr = correction_curve(responses, "a", "b")
    before, after = [], []
    for x, y in zip(rec_a, rec_b):
        z = apply_correction(x, SR, corr, method=method)
        before.append(metrics.log_spectral_distance(y, x, SR, n_fft=N_FFT, hop_length=HOP))
        after.append(metrics.log_spectral_distance(y, z, SR, n_fft=N_FFT, hop_length=HOP))
    return err, float(np.mean(before)), float(np.mean(after))


def _fsdd_clips(data_dir, seed: int) -> list[np.ndarray]:
    with (data_dir / "fsdd" / "metadata.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    pick = np.random.default_rng(seed).choice(len(rows), size=16, replace=False)
    return [audio.load(data_dir / "fsdd" / rows[i]["filename"], channels="mix", dtype="float64")[0][0] for i in pick]


@pytest.mark.data
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fsdd_through_micirp_pair(data_dir, seed):
    with (data_dir / "micirp" / "metadata.csv").open(newline="") as fh:
        irs = list(csv.DictReader(fh))
    rng = np.random.default_rng(100 + seed)
    i, j = rng.choice(len(irs), size=2, replace=False)
    ir_a = simulate.load_ir(data_dir / "micirp" / irs[i]["file"], SR)
    ir_b = simulate.load_ir(data_dir / "micirp" / irs[j]["file"], SR)
    err, before, after = _check_pair(_fsdd_clips(data_dir, seed), ir_a, ir_b)
    pair = f"{irs[i]['device']} vs {irs[j]['device']}"
    assert err < 1.0, f"{pair}: response error {err:.2f} dB RMS"
    assert after <= 0.5 * before, f"{pair}: LSD {before:.2f} -> {after:.2f} dB"


def _synthetic_ir(rng: np.random.Generator) -> np.ndarray:
    """A microphone-like IR: a peak, a few resonances and a decaying noise tail (about 50 ms at 8 kHz)."""
    n = 400
    t = np.arange(n)
    h = rng.standard_normal(n) * 0.05 * np.exp(-t / 60)
    for _ in range(3):
        f = rng.uniform(200, 3500)
        h += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * t / SR) * np.exp(-t / rng.uniform(10, 40))
    h[0] += 1.0
    return h


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["stft", "fir"])
def test_synthetic_twin(seed, method):
    rng = np.random.default_rng(seed)
    # Room noise 36 dB below the clips' level, recorded by both devices like the background noise of FSDD's
    # clips: the synthetic sources alone hold digital silence between sounds, where a correction's pre-ringing
    # (linear-phase FIR) would dominate the LSD of frames that no real recording has.
    sources = synth_corpus(16, SR, seed=seed, seconds=1.0)
    clips = [x + rng.standard_normal(x.size) * 10 ** (-60 / 20) for _, x in sources]
    err, before, after = _check_pair(clips, _synthetic_ir(rng), _synthetic_ir(rng), method=method)
    assert err < 1.0, f"response error {err:.2f} dB RMS"
    assert after <= 0.5 * before, f"LSD {before:.2f} -> {after:.2f} dB"
