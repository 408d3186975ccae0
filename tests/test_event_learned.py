"""The learned residual correction of event mode: identity before training, frame-local, kept only where the
held-out part shows it better than the static correction."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from micmatch.errors import ConfigMismatchError  # noqa: E402
from micmatch.learn.event_residual import (  # noqa: E402
    EventFit,
    fit_event_devices,
    fit_residual,
    residual_fit,
)
from micmatch.learn.normalizer import Normalizer  # noqa: E402
from micmatch.learn.ratio_net import RatioNet  # noqa: E402

SR = 16000


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Coloured noise switched on and off in 125 ms syllables (pauses of pure silence), peak 0.5."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    syllable = SR // 8
    on = np.repeat(rng.uniform(size=n // syllable + 1) > 0.4, syllable)[:n].astype(float)
    x *= np.convolve(on, np.hanning(801) / 400.0, mode="same")
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def ratio_normalizer(*, random_last_layer: bool = False) -> Normalizer:
    n_fft, hop = 512, 128
    torch.manual_seed(1)
    model = RatioNet(n_fft // 2 + 1, context=1, hidden=16, layers=1, dropout=0.0)
    if random_last_layer:  # a model whose gains change from frame to frame (several dB)
        torch.nn.init.normal_(model.body[-1].weight, std=2.0)
    model.eval()
    return Normalizer("ratio-net", model, SR, {"n_fft": n_fft, "hop_length": hop})


def test_untrained_residual_is_identity():
    x = speechlike(3.0)
    fit = residual_fit(ratio_normalizer(), kept=True)
    y = fit.apply(x)
    # The last layer starts at zero: 0 dB in every bin; what is left is float32 STFT round-off (peak 0.5).
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-5


@pytest.mark.parametrize("n", [SR * 3, SR * 3 + 77])
def test_apply_preserves_length_and_is_frame_local(n):
    x = speechlike(4.0, seed=2)[:n].copy()
    before = x.copy()
    fit = residual_fit(ratio_normalizer(random_last_layer=True), kept=True)
    whole = fit.apply(x)
    assert whole.shape == x.shape and np.array_equal(x, before)
    assert np.max(np.abs(whole - x)) > 0.01  # the test model really changes the audio
    s, e = 40 * fit.hop, n - 3000  # a segment starting on the hop grid
    lo, hi = s - fit.context - (s - fit.context) % fit.hop, min(n, e + fit.context)
    part = fit.apply(x[lo:hi])[s - lo : e - lo]
    # Same frames, same gains: only float32 round-off differs.
    assert np.max(np.abs(part - whole[s:e])) < 1e-5


def test_not_kept_is_identity_and_checks_input():
    fit = EventFit(False, 0, {}, "not trained")
    x = speechlike(1.0)
    assert np.array_equal(fit.apply(x), x) and fit.apply(x) is not x
    with pytest.raises(Exception, match="1-D"):
        fit.apply(np.zeros((2, 100), np.float32))
    with pytest.raises(ConfigMismatchError):
        fit_residual(x, x[:-1], SR)


def test_too_short_pair_is_not_trained():
    x = speechlike(8.0)
    fit = fit_residual(x, x, SR)
    assert not fit.kept and "too short" in fit.reason and "8.0 s" in fit.reason
    assert np.array_equal(fit.apply(x), x)


def test_noise_static_eq_cannot_fix_is_learned_and_kept():
    ref = speechlike(24.0, seed=3)
    rng = np.random.default_rng(4)
    # Steady noise about 28 dB below the peaks: it fills the pauses, which no fixed equalizer can empty.
    dev = ref + (0.02 * rng.standard_normal(ref.shape[0])).astype(np.float32)
    fit = fit_residual(dev, ref, SR, seed=0)
    lsd = fit.figures["heldout_lsd_db"]
    assert fit.kept, fit.reason
    assert lsd["learned"] <= lsd["static"] - 0.1
    assert fit.figures["heldout_s"] == pytest.approx(6.0) and fit.figures["train_s"] == pytest.approx(18.0)
    y = fit.apply(dev)
    assert y.shape == dev.shape and np.isfinite(y).all()


def test_reverberation_is_learned_and_fit_is_reproducible():
    from scipy.signal import fftconvolve

    ref = speechlike(16.0, seed=6)
    rng = np.random.default_rng(7)
    t = np.arange(int(0.5 * SR)) / SR
    h = 0.3 * rng.standard_normal(t.size) * np.exp(-6.9 * t / 0.5)  # RT60 0.5 s tail, no direct-path change
    h[0] = 1.0
    dev = fftconvolve(ref, h)[: ref.shape[0]].astype(np.float32)
    a, b = fit_residual(dev, ref, SR, seed=1), fit_residual(dev, ref, SR, seed=1)
    assert a.kept, a.reason
    assert a.figures["heldout_lsd_db"]["learned"] <= a.figures["heldout_lsd_db"]["static"] - 0.1
    assert a.figures["heldout_lsd_db"] == b.figures["heldout_lsd_db"]  # same inputs and seed, same fit
    assert np.array_equal(a.apply(dev), b.apply(dev))


def test_identical_signals_are_not_kept():
    x = speechlike(12.0, seed=5)
    fits = fit_event_devices({"same": (x, x.copy()), "short": (x[: 4 * SR], x[: 4 * SR])}, SR)
    assert list(fits) == ["same", "short"]
    same = fits["same"]
    assert not same.kept and "left out" in same.reason
    assert same.figures["heldout_lsd_db"]["static"] == pytest.approx(0.0, abs=1e-6)
    assert np.array_equal(same.apply(x), x)
    assert not fits["short"].kept and "too short" in fits["short"].reason
    bad = x[: 4 * SR].copy()
    bad[10] = np.nan
    fits = fit_event_devices({"bad": (bad, x[: 4 * SR]), "short": (x[: 4 * SR], x[: 4 * SR])}, SR)
    assert not fits["bad"].kept and "NaN" in fits["bad"].reason and "too short" in fits["short"].reason
