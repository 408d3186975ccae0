"""Event mode in blocks: placing, stems, the consensus reference, clipped recordings and the learned hook
(synthetic, seeded; the signals of tests/test_event.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from micmatch import eventcorrect, eventstream
from micmatch.errors import ParameterError
from micmatch.eventmode import event
from micmatch.eventsync import Clock, place
from test_event import SR, device, source, write


@pytest.mark.parametrize("clock, in_rate, out_rate", [
    (Clock(1.2345, 1 / (1 + 80e-6), 7.0), 44100, 48000),  # drift and another rate: one soxr stream
    (Clock(0.30001, 1.0, 7.0), 44100, 44100),  # a fraction of a sample only: the windowed-sinc shift
    (Clock(-0.5, 1.0, 7.0), 16000, 16000),  # on the grid: moved only
])
def test_block_placement_equals_whole_placement(tmp_path, monkeypatch, clock, in_rate, out_rate):
    """Placing a file block by block (blocks of 0.37 s, not a divisor of anything) gives the samples of placing it
    in one piece, within float32 rounding (1e-6 of full scale: the soxr stream and the shift filter see the same
    samples whatever the blocks)."""
    x = (np.random.default_rng(0).standard_normal((2, in_rate * 7)) * 0.1).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(str(path), x.T, in_rate, subtype="FLOAT")
    n = 9 * out_rate
    whole = place(x, in_rate, clock, out_rate=out_rate, start_s=-0.5, n_samples=n)
    monkeypatch.setattr(eventstream, "BLOCK_S", 0.37)
    placer = eventstream.Placer(in_rate, clock, out_rate=out_rate, start_s=-0.5, n_samples=n, channels=2)
    store = eventstream.PlacedStore(tmp_path / "placed.raw", 2, (0, n))
    store.write(placer, path)
    assert np.max(np.abs(store.read(0, n) - whole)) < 1e-6


def test_the_shift_filter_passes_the_audio_band_unchanged():
    """Fractional shift against the exact one (a pure delay in the frequency domain) on a sound below 0.85 x
    Nyquist: error below -80 dB."""
    x = scipy.signal.sosfilt(scipy.signal.butter(10, 0.8 * 8000, fs=SR, output="sos"),
                             np.random.default_rng(1).standard_normal(SR * 2))
    frac = 0.37
    placer = eventstream.Placer(SR, Clock(-frac / SR, 1.0, 2.0), out_rate=SR, start_s=0.0, n_samples=2 * SR,
                                channels=1)
    got = np.concatenate([b for _, b in placer.blocks([x[np.newaxis].astype(np.float32)])], axis=-1)[0]
    n = 4 * x.shape[0]
    exact = np.fft.irfft(np.fft.rfft(x, n) * np.exp(2j * np.pi * np.fft.rfftfreq(n) * frac), n)[: x.shape[0]]
    mid = slice(SR // 2, 3 * SR // 2)
    err = got[mid] - exact[mid]
    assert 10 * np.log10(np.mean(err**2) / np.mean(exact[mid] ** 2)) < -80


def test_small_blocks_give_the_same_stems(tmp_path, monkeypatch):
    """An event processed in 0.7 s blocks (and 4 s pieces of the overlaps) gives the stems of one processed in
    blocks longer than the files, within 1e-5 (24-bit rounding of samples that differ by float32 rounding, and
    loudness gains that differ in the 6th digit)."""
    x = source(21, 45)
    files = [write(tmp_path / "a.wav", device(x, start_s=0, seconds=30)),
             write(tmp_path / "b.wav", device(x, start_s=8, seconds=30, ppm=80, b=(1.0, -0.4), seed=1)),
             write(tmp_path / "c.wav", np.stack([device(x, start_s=20, seconds=25, b=(1.0, 0.5), seed=2)] * 2))]
    monkeypatch.setattr(eventstream, "BLOCK_S", 100.0)
    whole = event(files, tmp_path / "whole", reference=files[0])
    monkeypatch.setattr(eventstream, "BLOCK_S", 0.7)
    small = event(files, tmp_path / "small", reference=files[0])
    assert small.n_samples == whole.n_samples
    for name in whole.names:
        a, b = sf.read(str(whole.stems[name]))[0], sf.read(str(small.stems[name]))[0]
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) < 1e-5, name
        assert abs(whole.gains_db[name] - small.gains_db[name]) < 1e-4


def test_loudness_from_100ms_energies_matches_the_meter():
    """The gated loudness from per-100 ms K-weighted energies agrees with pyloudnorm's integrated loudness of the
    whole signal within 0.05 LU (the blocks start on the 100 ms grid rather than at the signal's first sample)."""
    from micmatch.loudness import integrated_loudness

    x = np.stack([device(source(22, 20), start_s=0, seconds=20), 0.5 * device(source(23, 20), start_s=0,
                                                                              seconds=20)])
    meter = eventcorrect.LoudnessMeter(SR, 2)
    for s in range(0, x.shape[-1], 12345):
        meter.add(x[:, s : s + 12345])
    got = eventcorrect.gated_loudness(meter.steps(), meter.weights, meter.step, 0, x.shape[-1])
    assert abs(got - integrated_loudness(x, SR)) < 0.05


def test_consensus_corrects_every_device_towards_the_mean(tmp_path):
    """With the consensus reference the corrections are the ones towards the reference minus their mean: the
    reference gets the negated mean, and the corrections sum to zero across devices (inside the band, before
    clamps)."""
    x = source(24, 40)
    files = [write(tmp_path / "a.wav", device(x, start_s=0, seconds=30)),
             write(tmp_path / "b.wav", device(x, start_s=5, seconds=30, b=(1.0, -0.5), seed=1)),
             write(tmp_path / "c.wav", device(x, start_s=8, seconds=30, b=(1.0, 0.5), seed=2))]
    plain = event(files, tmp_path / "plain")
    cons = event(files, tmp_path / "cons", reference="consensus")
    assert cons.reference == plain.reference and "consensus" in cons.reference_reason
    f = np.fft.rfftfreq(cons.corrections["a"].n_fft, 1 / SR)
    band = (f >= 300) & (f <= 5000)
    mean = np.mean([plain.corrections[n].gain_db for n in plain.names], axis=0)
    for n in plain.names:
        assert np.max(np.abs(cons.corrections[n].gain_db - (plain.corrections[n].gain_db - mean))[band]) < 0.3, n
    assert np.max(np.abs(cons.corrections[cons.reference].gain_db[band])) > 1.0  # the reference is corrected too
    assert np.max(np.abs(np.sum([cons.corrections[n].gain_db for n in cons.names], axis=0)[band])) < 0.5


def test_a_clipped_recording_is_not_chosen_as_reference(tmp_path):
    """The widest, cleanest recording is clipped (0.5% of its samples at the clip level): the other is chosen and
    the reason says why."""
    x = source(25, 30)
    wide = device(x, start_s=0, seconds=20)
    level = np.percentile(np.abs(wide), 99.5)
    low = scipy.signal.firwin(101, 3000, fs=SR)
    a = write(tmp_path / "wide.wav", np.clip(wide, -level, level) / level * 0.99)
    b = write(tmp_path / "narrow.wav", device(x, start_s=5, seconds=20, b=low, seed=1))
    res = event([a, b], tmp_path / "out")
    assert res.reference == "narrow"
    assert "clipped" in res.reference_reason and "wide" in res.reference_reason
    ok = event([write(tmp_path / "wide2.wav", wide), b], tmp_path / "out2")
    assert ok.reference == "wide2"


@dataclass
class FakeFit:
    """A learned correction stand-in: a short FIR (frame-local with ``context`` = its length)."""

    taps: np.ndarray
    kept: bool = True
    reason: str = "held-out LSD 1.0 dB against 1.5 dB static"
    figures: dict = field(default_factory=lambda: {"held_out_lsd_db": 1.0, "static_lsd_db": 1.5})

    @property
    def context(self) -> int:
        return len(self.taps)

    def apply(self, x: np.ndarray) -> np.ndarray:
        assert x.ndim == 1 and x.dtype == np.float32
        return np.convolve(x, self.taps, mode="full")[: x.shape[-1]].astype(np.float32)


def test_learned_fit_applied_block_by_block_equals_the_whole_signal():
    """``apply`` run on blocks with ``context`` samples each side, cropped, equals it on the whole signal (float32
    tolerance: the same products summed in the same order)."""
    fit = FakeFit(np.array([0.6, 0.3, -0.2, 0.1], dtype=np.float32))
    x = np.random.default_rng(2).standard_normal((2, 10007)).astype(np.float32)
    chunks = [x[:, s : s + 999] for s in range(0, x.shape[-1], 999)]
    got = np.concatenate(list(eventstream.apply_with_context(chunks, fit.apply, fit.context, 1234)), axis=-1)
    want = np.stack([fit.apply(ch) for ch in x])
    assert got.shape == x.shape and np.max(np.abs(got - want)) < 1e-6


@dataclass
class FramedFit:
    """A stand-in whose result depends on its frame grid: each ``hop`` frame from the start of its input is scaled
    by a gain that follows the frame's level (as a network's per-frame gains do)."""

    hop: int = 512
    kept: bool = True
    reason: str = ""
    figures: dict = field(default_factory=dict)

    @property
    def context(self) -> int:
        return 3 * self.hop

    def apply(self, x: np.ndarray) -> np.ndarray:
        n = -(-x.shape[-1] // self.hop) * self.hop
        frames = np.pad(x, (0, n - x.shape[-1])).reshape(-1, self.hop)
        gain = 1.0 / (1.0 + np.sqrt(np.mean(frames**2, axis=1, keepdims=True)))
        return (frames * gain).reshape(-1)[: x.shape[-1]].astype(np.float32)


def test_a_framed_fit_gives_the_whole_signal_with_blocks_off_its_grid():
    """Blocks of 1234 samples are not a multiple of the hop of 512: without rounding them onto the fit's frame grid
    the frames differ block by block (tested both ways, so the test can fail)."""
    fit = FramedFit()
    x = np.random.default_rng(4).standard_normal((1, 20011)).astype(np.float32)
    x[:, 7000:] *= np.linspace(0.1, 3.0, 13011, dtype=np.float32)
    chunks = [x[:, s : s + 999] for s in range(0, x.shape[-1], 999)]
    want = fit.apply(x[0])
    got = np.concatenate(list(eventstream.apply_with_context(chunks, fit.apply, fit.context, 1234, fit.hop)), -1)
    assert np.max(np.abs(got[0] - want)) < 1e-6
    off = np.concatenate(list(eventstream.apply_with_context(chunks, fit.apply, fit.context, 1234)), -1)
    assert np.max(np.abs(off[0] - want)) > 1e-3


def test_the_learned_hook_gets_aligned_pairs_and_its_fit_is_applied(tmp_path):
    x = source(26, 40)
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=30))
    b = write(tmp_path / "b.wav", device(x, start_s=5, seconds=30, b=(1.0, -0.5), seed=1))
    c = write(tmp_path / "c.wav", device(x, start_s=28, seconds=12, b=(1.0, 0.5), seed=2))  # b only
    seen = {}
    taps = np.array([0.5], dtype=np.float32)  # -6 dB: easy to see in the stem

    def learned(pairs, sample_rate, progress=None):
        seen.update(pairs=pairs, rate=sample_rate)
        return {name: FakeFit(taps, kept=(name == "b")) for name in pairs}

    plain = event([a, b, c], tmp_path / "plain", reference=a, loudness="keep")
    res = event([a, b, c], tmp_path / "out", reference=a, loudness="keep", learned=learned)
    assert seen["rate"] == SR and set(seen["pairs"]) == {"b"}
    dev, ref = seen["pairs"]["b"]
    assert dev.dtype == np.float32 and ref.dtype == np.float32 and dev.shape == ref.shape
    assert abs(dev.shape[0] / SR - 25.0) < 0.1  # the whole overlap (shorter than 120 s)
    # Time-aligned: the two pieces agree best at lag 0 (the static correction fixes magnitude, not phase, so the
    # correlation stays below 1).
    lags = {lag: np.corrcoef(np.roll(dev, lag)[8:-8], ref[8:-8])[0, 1] for lag in range(-3, 4)}
    assert max(lags, key=lags.get) == 0 and lags[0] > 0.85
    sb, pb = sf.read(str(res.stems["b"]))[0], sf.read(str(plain.stems["b"]))[0]
    assert np.max(np.abs(sb - 0.5 * pb)) < 1e-5
    summary = res.summary()["recordings"]
    assert summary["b"]["learned"] == {"kept": True, "reason": FakeFit(taps).reason,
                                       "figures": {"held_out_lsd_db": 1.0, "static_lsd_db": 1.5}}
    assert summary["c"]["learned"]["kept"] is False and "directly" in summary["c"]["learned"]["reason"]
    assert "learned" not in summary["a"] or summary["a"]["learned"] is None


def _long_term_distance(a: np.ndarray, b: np.ndarray) -> float:
    from micmatch.longterm import long_term_distance_db, long_term_spectrum_db
    from micmatch.response import SpectralConfig

    config = SpectralConfig(sample_rate=SR, n_fft=2048, hop_length=512)
    sa, sb = (long_term_spectrum_db(np.asarray(x, dtype=np.float64), config) for x in (a, b))
    return long_term_distance_db(sa, sb, config.frequencies, band_hz=(100.0, 7000.0))


def test_the_power_statistic_brings_a_noisy_device_closer_over_time_than_log(tmp_path):
    """A device with a coloured response and a noise floor that fills the source's pauses: comparing long-term
    power spectra (the default) leaves the stem's long-term spectrum nearer the reference's than the mean log ratio
    of aligned frames does, which counts the floor in the pauses as part of the response (the reason for the
    default; the simulated-event benchmark shows the same on phones)."""
    x = source(12, 40)
    x = x * np.repeat(np.random.default_rng(7).uniform(size=40 * 4) > 0.4, SR // 4)[: x.size]  # pauses, as speech
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=40))
    floor = scipy.signal.lfilter([1.0], [1.0, -0.7], np.random.default_rng(3).standard_normal(x.size)) * 3e-3
    b = write(tmp_path / "b.wav", device(x, start_s=0, seconds=40, b=(1.0, -0.8), seed=1) + floor)
    got = {}
    for stat in ("power", "log"):
        res = event([a, b], tmp_path / stat, reference=a, loudness="keep", statistic=stat)
        assert res.corrections["b"].settings["statistic"] == stat
        stem, ref = (sf.read(str(res.stems[n]))[0] for n in ("b", "a"))
        got[stat] = _long_term_distance(stem, ref)
    assert got["power"] < 1.0 and got["power"] < got["log"] - 0.3, got


def test_an_unknown_statistic_is_refused(tmp_path):
    x = source(13, 10)
    a, b = (write(tmp_path / f"{n}.wav", device(x, start_s=0, seconds=10)) for n in "ab")
    with pytest.raises(ParameterError, match="statistic"):
        event([a, b], tmp_path / "out", statistic="median")


def test_a_link_curves_level_is_that_of_the_sound_not_of_the_noise_above_it():
    """Speech (its sound below 4 kHz) at 44.1 kHz: the bins above hold only the two noise floors, 15 dB apart, and
    are most of the band. The curve's level comes from the bins with sound (0 dB there), not from the floors'
    difference, which the plain median over the band returned; power everywhere keeps the plain median."""
    from micmatch.eventcorrect import sound_level

    f = np.fft.rfftfreq(4096, 1 / 44100)
    gain = np.where(f <= 4000, 0.0, 15.0) + 0.1 * np.sin(f / 300)
    ref_db = np.where(f <= 4000, -20.0 - 5 * np.log2(np.maximum(f, 100) / 100) / 5.3, -62.0)
    band = (50.0, 16000.0)
    inside = (f >= band[0]) & (f <= band[1])
    assert np.median(gain[inside]) > 14.0
    assert abs(sound_level(gain, f, band, ref_db)) < 0.2
    assert sound_level(gain, f, band, np.zeros_like(f)) == pytest.approx(np.median(gain[inside]))


def test_a_link_on_a_reflection_is_dropped_where_the_others_still_connect_everything():
    """Three recordings linked in a loop; one pair measured 8 ms off (a reflection). The solved timeline follows
    the two that agree, the bad one is dropped with its residual; a link that alone connects a recording stays."""
    from micmatch.eventsync import PairLink, consistent_links, solve_timeline

    durations = [60.0, 60.0, 60.0]
    good = [PairLink(0, 1, -5.0, 0.0, 40.0, 30.0, mid_s=30.0, span_s=50.0),
            PairLink(1, 2, -7.0, 0.0, 40.0, 30.0, mid_s=30.0, span_s=50.0)]
    bad = PairLink(0, 2, -12.008, 0.0, 30.0, 20.0, mid_s=30.0, span_s=50.0)
    kept, dropped = consistent_links(durations, good + [bad], 0)
    assert kept == good and [lk for lk, _ in dropped] == [bad]
    assert dropped[0][1] < -1.5  # its residual against the timeline solved with it: part of the 8 ms
    clocks = solve_timeline(durations, kept, 0)
    assert clocks[2].start_s == pytest.approx(12.0, abs=1e-6)
    kept, dropped = consistent_links(durations, [good[0], bad], 0)  # no loop: nothing to compare with
    assert len(kept) == 2 and not dropped
