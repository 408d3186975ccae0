"""Spectrum correction (``sc``) on a chained device with a noise floor: the floor-gated estimate against the plain one."""

from __future__ import annotations

import numpy as np
import pytest

from micmatch.logmel import LogMelConfig, log_mel
from micmatch.simulate import apply_device_chain, draw_device_chain
from micmatch.spectrum_correction import SpectrumCorrection, floor_gates_db, matched_gates

SR = 8000
CFG = LogMelConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=40)


def _clips(rng: np.random.Generator, n: int) -> np.ndarray:
    """Speech-like clips: a pink burst of random length and level, zero padded to 1 s (as the benchmark's)."""
    out = np.zeros((n, SR), dtype=np.float32)
    f = np.fft.rfftfreq(SR, 1 / SR)
    for i in range(n):
        m = int(rng.uniform(0.3, 0.7) * SR)
        spec = np.fft.rfft(rng.standard_normal(SR)) / np.sqrt(np.maximum(f, 50.0))
        spec[0] = 0.0
        x = np.fft.irfft(spec, SR)[:m] * np.hanning(m) ** 0.5
        out[i, :m] = x / np.sqrt(np.mean(x**2)) * 10 ** (rng.uniform(-30, -10) / 20)
    return out


def _chain(noise_db: float) -> dict:
    chain = draw_device_chain(np.random.default_rng(3), SR, noise_floor_db=(noise_db, noise_db), agc_probability=0.0,
                              level_db=(0.0, 0.0))
    return chain


def _errors(chain: dict, seed: int = 0) -> dict[str, float]:
    """The estimate against the truth: boosts are left to the signal-to-floor limit (not cuts only) and the level
    is matched, so that the curve shows the estimate."""
    rng = np.random.default_rng(seed)
    ref, clean = _clips(rng, 80), _clips(rng, 16)
    quiet = apply_device_chain(clean, SR, {**chain, "noise": None}).astype(np.float32)
    noisy = apply_device_chain(clean, SR, chain).astype(np.float32)
    base = log_mel(clean, SR, config=CFG)
    diff = log_mel(quiet, SR, config=CFG) - base
    active = base > base.max(axis=(1, 2), keepdims=True) - 40.0
    truth = np.clip([np.mean(diff[:, k][active[:, k]]) for k in range(CFG.n_mels)], -20.0, 30.0)
    out = {}
    for name, waves in (("quiet", quiet), ("noisy", noisy)):
        for method, margin in (("old", None), ("new", 15.0)):
            sc = SpectrumCorrection.fit(list(ref) + list(waves), ["ref"] * len(ref) + ["dev"] * len(waves), SR,
                                        reference="ref", n_fft=256, floor_margin_db=margin, floor_boost_db=None,
                                        level="match")
            out[f"{method} {name}"] = sc
            out[f"{method} {name} rms"] = float(np.sqrt(np.mean((-sc.band_db("dev", config=CFG) - truth) ** 2)))
    return out


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_floor_gated_estimate_beats_plain_one_on_a_noisy_chained_device():
    r = _errors(_chain(-50.0))
    # The plain estimate counts pauses that hold only the floor; gated, the error falls by at least 2 dB RMS.
    assert r["old noisy rms"] > 4.0, r["old noisy rms"]
    assert r["new noisy rms"] < r["old noisy rms"] - 2.0, (r["new noisy rms"], r["old noisy rms"])
    assert r["new noisy"].relative_gates["dev"] < 30.0


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_noise_free_device_keeps_the_plain_estimate():
    r = _errors(_chain(-50.0))
    assert r["new quiet"].relative_gates == {}
    np.testing.assert_allclose(r["new quiet"].corrections["dev"].gain_db, r["old quiet"].corrections["dev"].gain_db,
                               atol=1e-9)


def test_floor_detection_skips_digital_silence_and_stationary_signals(rng):
    clips = _clips(rng, 8)
    assert floor_gates_db(list(clips), n_fft=256, hop_length=64) is None  # zero padding: no floor
    steady = rng.standard_normal((4, SR)) * 0.1  # no pauses: every frame is signal, none is near a floor
    assert floor_gates_db(list(steady), n_fft=256, hop_length=64) is None


def test_matched_gates_follow_loudness_rank():
    gates = np.array([10.0, 20.0, 30.0])
    peaks = np.array([-40.0, -30.0, -20.0])
    out = matched_gates(gates, peaks, np.array([-5.0, -50.0, -25.0]))
    assert out[1] == pytest.approx(10.0) and out[0] == pytest.approx(30.0) and out[2] == pytest.approx(20.0)


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_no_boost_where_a_device_holds_only_its_floor():
    """A device low-passed at 1.5 kHz (8th order) over a -50 dBFS floor: towards the full-band reference the
    curve asks for a large boost above the corner, where the device holds only noise. Limited by the device's
    signal-to-floor ratio, that boost stays under 3 dB there (the unlimited curve asks for over 10 dB), and
    below the corner, where the signal stands well above the floor, the curve is unchanged (levels matched, so
    that the curves compare bin by bin)."""
    rng = np.random.default_rng(5)
    ref, clean = _clips(rng, 80), _clips(rng, 40)
    chain = {**_chain(-50.0), "low_pass": {"freq_hz": 1500.0, "order": 8}, "high_pass": None}
    waves = apply_device_chain(clean, SR, chain).astype(np.float32)
    labels = ["ref"] * len(ref) + ["dev"] * len(waves)
    fits = {m: SpectrumCorrection.fit(list(ref) + list(waves), labels, SR, reference="ref", n_fft=256,
                                      boost_margin_db=m, floor_boost_db=None, level="match") for m in (None, 6.0)}
    f = np.fft.rfftfreq(256, 1 / SR)
    free, limited = fits[None].corrections["dev"].gain_db, fits[6.0].corrections["dev"].gain_db
    high, low = (f >= 2500) & (f <= 3500), (f >= 200) & (f <= 1000)
    assert free[high].max() > 10.0
    assert limited[high].max() < 3.0
    np.testing.assert_allclose(limited[low], free[low], atol=1e-9)
    cuts = SpectrumCorrection.fit(list(ref) + list(waves), labels, SR, reference="ref", n_fft=256, level="match")
    gain = cuts.corrections["dev"].gain_db
    assert gain.max() <= 0.0  # by default a device with a floor gets cuts only
    np.testing.assert_allclose(gain, np.minimum(limited, 0.0), atol=1e-9)


def test_a_device_without_a_floor_gets_no_boost_limit():
    """Pauses of digital silence: no floor, no limit (the curve is the plain one). A steady signal without pauses
    (noise at one level throughout) shows no floor either: its quietest frames are signal, and limiting by them
    would forbid every boost."""
    from micmatch.spectrum_correction import boost_limits_db

    rng = np.random.default_rng(6)
    assert boost_limits_db(list(_clips(rng, 8)), n_fft=256, hop_length=64) is None
    steady = [0.1 * rng.standard_normal(SR) + 1e-4 * rng.standard_normal(SR) for _ in range(4)]
    assert boost_limits_db(steady, n_fft=256, hop_length=64) is None
    with_pauses = [np.concatenate([w[: SR // 2], 1e-4 * rng.standard_normal(SR // 2)]) for w in steady]
    assert boost_limits_db(with_pauses, n_fft=256, hop_length=64) is not None


def test_level_keep_corrects_tone_and_leaves_the_level():
    """A device 6 dB quieter with a 1 kHz shelf: level="match" brings it up by 6 dB as well; level="keep"
    removes only the shelf, so the curve averages 0 dB over the bins where the device records sound and its
    shape equals the matched curve's within 1e-9 dB (a constant shift). Noise-free device: no boost limit."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(8)
    ref = list(_clips(rng, 40))
    b, a = [1.0, -0.5], [1.0, 0.0]  # a gentle high-pass tilt
    dev = [0.5 * lfilter(b, a, c).astype(np.float32) for c in _clips(rng, 40)]
    labels = ["ref"] * len(ref) + ["dev"] * len(dev)
    fits = {lv: SpectrumCorrection.fit(ref + dev, labels, SR, reference="ref", n_fft=256, level=lv)
            for lv in ("match", "keep")}
    match, keep = fits["match"].corrections["dev"].gain_db, fits["keep"].corrections["dev"].gain_db
    shift = match - keep
    np.testing.assert_allclose(shift, shift[0], atol=1e-9)
    assert shift[0] > 3.0  # the matched curve carries the 6 dB of level (less the tilt's mean)
    from micmatch.spectrum_correction import level_kept_db, long_term_power

    power = long_term_power(dev, n_fft=256, hop_length=64)
    sound = 10 * np.log10(power) >= 10 * np.log10(power).max() - 40.0
    assert abs(np.mean(keep[sound])) < 1e-9
    np.testing.assert_allclose(level_kept_db(match, power), keep, atol=1e-9)
    with pytest.raises(Exception, match="level='loud' is not one of match, keep"):
        SpectrumCorrection.fit(ref + dev, labels, SR, reference="ref", n_fft=256, level="loud")


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_level_keep_leaves_a_device_with_cuts_only_the_cuts_of_its_tone():
    """A device 6 dB quieter than the reference, tilted up towards high frequencies, over a -60 dBFS floor: it
    gets cuts only, and every bin of the level-matched curve asks for a boost, so level="match" leaves it
    within 0.5 dB of flat. level="keep" takes the level out before the limit: the tone's cuts remain (the
    high band, several dB), equal within 1e-9 dB to the unlimited curve's tone clamped to cuts."""
    from scipy.signal import lfilter

    from micmatch.spectrum_correction import boost_limits_db, level_kept_db, long_term_power

    rng = np.random.default_rng(9)
    ref = list(_clips(rng, 40))
    dev = [(0.5 * lfilter([1.0, -0.5], [1.0, 0.0], c) + 1e-3 * rng.standard_normal(SR)).astype(np.float32)
           for c in _clips(rng, 40)]
    labels = ["ref"] * len(ref) + ["dev"] * len(dev)

    def fit(**kw):
        return SpectrumCorrection.fit(ref + dev, labels, SR, reference="ref", n_fft=256, **kw).corrections["dev"]

    match, keep = fit(level="match").gain_db, fit(level="keep").gain_db
    free = fit(boost_margin_db=None).gain_db
    above_floor = boost_limits_db(dev, n_fft=256, hop_length=64)
    assert above_floor is not None and free.min() > 0.0  # a floor, and every bin wants a boost
    f = np.fft.rfftfreq(256, 1 / SR)
    high = (f >= 2500) & (f <= 3500)
    assert np.max(np.abs(match)) < 0.5
    assert keep.max() <= 0.0 and keep[high].mean() < -2.0
    power = long_term_power(dev, n_fft=256, hop_length=64)
    np.testing.assert_allclose(keep, np.minimum(level_kept_db(free, power, limit_db=above_floor), 0.0), atol=1e-9)


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_level_auto_lowers_but_never_raises_the_level_of_devices_with_a_floor():
    """Three devices in one fit, the same tilt: noise-free and 6 dB down; over a -60 dBFS floor and 6 dB down;
    over the same floor and 12 dB up. With level="auto" the noise-free one gets exactly its level="match"
    curve, the quiet noisy one exactly its level="keep" curve (its level is not raised) and the loud noisy one
    exactly its level="match" curve (its level is brought down): within 1e-9 dB, the same arithmetic."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(10)
    ref = list(_clips(rng, 40))
    tilted = [lfilter([1.0, -0.5], [1.0, 0.0], c) for c in _clips(rng, 40)]
    clean = [(0.5 * c).astype(np.float32) for c in tilted]
    noisy = [(0.5 * c + 1e-3 * rng.standard_normal(SR)).astype(np.float32) for c in tilted]
    loud = [(4.0 * c + 1e-3 * rng.standard_normal(SR)).astype(np.float32) for c in tilted]
    names = ("clean", "noisy", "loud")
    labels = ["ref"] * len(ref) + [n for n in names for _ in range(len(tilted))]
    fits = {lv: SpectrumCorrection.fit(ref + clean + noisy + loud, labels, SR, reference="ref", n_fft=256, level=lv)
            for lv in ("match", "keep", "auto")}
    curve = {(lv, d): fits[lv].corrections[d].gain_db for lv in fits for d in names}
    np.testing.assert_allclose(curve["auto", "clean"], curve["match", "clean"], atol=1e-9)
    np.testing.assert_allclose(curve["auto", "noisy"], curve["keep", "noisy"], atol=1e-9)
    np.testing.assert_allclose(curve["auto", "loud"], curve["match", "loud"], atol=1e-9)
    assert np.max(np.abs(curve["match", "clean"] - curve["keep", "clean"])) > 3.0  # the two levels differ
    assert np.mean(curve["auto", "loud"]) < -6.0 < np.mean(curve["keep", "loud"])


def test_the_benchmark_passes_sc_level_to_the_fit():
    from types import SimpleNamespace

    from micmatch import registry
    from micmatch.bench.data import MismatchConfig
    from micmatch.bench.recipes import STEPS

    for level in ("match", "keep", "auto"):
        settings = STEPS["sc"].settings(SimpleNamespace(config=MismatchConfig(sc_level=level)))
        assert settings["level"] == level
    assert registry.get("sc").params["level"] == "auto"


@pytest.mark.filterwarnings("ignore:.*DC offset")
def test_device_estimate_shows_the_attenuation_a_correction_declines_to_undo():
    """The device estimate behind known-aug and the converter's conditioning is the response, not a correction:
    a device low-passed at 1.5 kHz over a -50 dBFS floor reads at least 10 dB down in the bands above 2.5 kHz
    (against 500-1000 Hz), although its correction curve, cuts only, boosts nothing there."""
    from micmatch.device_estimate import estimate_devices
    from micmatch.logmel import mel_frequencies

    rng = np.random.default_rng(5)
    ref, clean = _clips(rng, 80), _clips(rng, 40)
    chain = {**_chain(-50.0), "low_pass": {"freq_hz": 1500.0, "order": 8}, "high_pass": None}
    waves = apply_device_chain(clean, SR, chain).astype(np.float32)
    shift = estimate_devices(ref, {"dev": waves}, SR, config=CFG, n_fft=256, reference="ref")["dev"]["shift_db"]
    centres = mel_frequencies(CFG.n_mels + 2, fmax=SR / 2)[1:-1]  # the triangles' centres
    high, mid = (centres >= 2500) & (centres <= 3500), (centres >= 500) & (centres <= 1000)
    assert np.mean(shift[mid]) - np.mean(shift[high]) > 10.0
