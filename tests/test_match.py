"""The one-call matching flow, its statistics (log and power), band/strength, loudness, report and command."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from click.testing import CliRunner
from conftest import REPO

from micmatch.cli import main
from micmatch.correct import (
    band_taper,
    correction_curve,
    response_level_db,
    signal_band,
)
from micmatch.demo import synth_voice
from micmatch.errors import ParameterError
from micmatch.estimate import array_stats
from micmatch.loudness import (
    integrated_loudness,
    parse_loudness,
    peak_reduction_db,
    true_peak_db,
)
from micmatch.longterm import (
    long_term_distance_db,
    read_target_curve,
    third_octave_levels_db,
)
from micmatch.matching import match
from micmatch.response import (
    DeviceResponse,
    LogSpectrumStats,
    ResponseSet,
    SpectralConfig,
)
from micmatch.logstats import LogPowerAccumulator
from micmatch.spectral import frame_view, analysis_window

SR = 22050


def _voice(seed: int, seconds: float = 4.0) -> np.ndarray:
    x = synth_voice(int(seconds * SR), SR, np.random.default_rng(seed))
    return (x / np.abs(x).max() * 0.3).astype(np.float32)


def _device(x: np.ndarray, *, delay: int = 700, gain: float = 0.5) -> np.ndarray:
    """A small 'tablet': a band-pass tilt, a delay and a level change."""
    sos = scipy.signal.butter(2, [250, 6000], btype="bandpass", fs=SR, output="sos")
    y = scipy.signal.sosfilt(sos, x) * gain
    return np.r_[np.zeros(delay), y][: x.size].astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Power sums in the streaming statistics


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("relative_gate_db", [None, 30.0])
def test_power_sum_equals_the_float64_reference(rng, use_kernel, relative_gate_db):
    x = (rng.standard_normal(40000) * np.r_[np.full(20000, 0.1), np.full(20000, 0.0005)]).astype(np.float32)
    acc = LogPowerAccumulator(n_fft=1024, hop_length=256, relative_gate_db=relative_gate_db, use_kernel=use_kernel)
    acc.update(x[:5001])
    acc.update(x[5001:])
    frames = frame_view(x.astype(np.float64), 1024, 256)
    power = np.abs(np.fft.rfft(frames * analysis_window(1024, dtype=np.float64), axis=-1)) ** 2
    level = 10 * np.log10(power.sum(axis=1))
    # Which frames the relative gate keeps is checked by the statistics' own tests; here: the same frames as
    # the log sums, and their power summed. float32 spectra: relative error ~1e-6.
    kept = power if relative_gate_db is None else power[level >= level.max() - relative_gate_db - 1.0]
    assert acc.n_frames == kept.shape[0]
    np.testing.assert_allclose(acc.sum_power, kept.sum(axis=0), rtol=1e-4)


def test_power_statistic_round_trips_and_merges(tmp_path, rng):
    cfg = SpectralConfig(sample_rate=SR, n_fft=512, hop_length=128)
    a = array_stats(rng.standard_normal(SR) * 0.1, cfg)
    b = array_stats(rng.standard_normal(SR) * 0.01, cfg)
    merged = a + b
    np.testing.assert_allclose(merged.sum_power, a.sum_power + b.sum_power)
    # Power mean of two levels 20 dB apart sits ~3 dB below the louder one; the log mean sits halfway (-10 dB).
    assert np.median(merged.power_db - a.power_db) == pytest.approx(-2.96, abs=0.3)
    assert np.median(merged.mean_db - a.mean_db) == pytest.approx(-10.0, abs=0.3)
    rs = ResponseSet(cfg, [DeviceResponse.from_stats("x", merged)])
    rs.save(tmp_path / "r.json")
    back = ResponseSet.load(tmp_path / "r.json")
    np.testing.assert_allclose(back["x"].stats.power_db, merged.power_db)
    old = LogSpectrumStats(merged.sum_db, merged.sum_sq_db, merged.n_frames, 1)  # a file from before power sums
    with pytest.raises(ParameterError, match="no power statistics"):
        response_level_db(DeviceResponse.from_stats("old", old), "power")
    with pytest.raises(ParameterError, match="sum_power must be non-negative"):
        LogSpectrumStats(merged.sum_db, merged.sum_sq_db, 1, 1, sum_power=-merged.sum_power)


# ---------------------------------------------------------------------------------------------------------------
# Band and strength


def _model_set(a_db, b_db, cfg):
    return ResponseSet(cfg, [DeviceResponse("a", a_db, method="model"), DeviceResponse("b", b_db, method="model")])


def test_band_taper_is_one_inside_zero_outside_and_smooth():
    f = np.linspace(0, 11025, 2049)
    w = band_taper(f, (200.0, 4000.0), transition_octaves=0.5)
    assert (w[(f >= 200) & (f <= 4000)] == 1).all()
    assert (w[(f > 0) & (f <= 200 / 2**0.5)] == 0).all() and (w[f >= 4000 * 2**0.5] == 0).all()
    up = w[(f >= 4000) & (f <= 4000 * 2**0.5)]
    assert (np.diff(up) <= 0).all() and 0 < up[len(up) // 2] < 1
    with pytest.raises(ParameterError, match="low < high"):
        band_taper(f, (300.0, 200.0))


def test_auto_band_stops_the_edge_boost_and_strength_scales():
    cfg = SpectralConfig(sample_rate=SR, n_fft=1024, hop_length=256)
    f = cfg.frequencies
    # Device a recorded nothing below 80 Hz or above 5 kHz (60 dB down): the old clamp boosted +20 dB there.
    a = np.where((f < 80) | (f > 5000), -60.0, 0.0) + 3 * np.sin(f / 500)
    rs = _model_set(a, np.zeros_like(f), cfg)
    clamped = correction_curve(rs, "a", "b")
    assert clamped.gain_db[f > 6000].max() == 20.0
    lo, hi = signal_band([a, np.zeros_like(f)], f)
    assert 60 < lo < 110 and 4500 < hi < 5100
    banded = correction_curve(rs, "a", "b", limit_band="auto")
    assert np.abs(banded.gain_db[f > hi * 2 ** (1 / 3)]).max() == 0.0
    inside = (f > 200) & (f < 4000)
    np.testing.assert_allclose(banded.gain_db[inside], -a[inside])
    half = correction_curve(rs, "a", "b", limit_band="auto", strength=0.5)
    np.testing.assert_allclose(half.gain_db, 0.5 * banded.gain_db)
    assert banded.settings["band_hz"] == [pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01)]
    with pytest.raises(ParameterError, match="strength=1.5"):
        correction_curve(rs, "a", "b", strength=1.5)
    # Outside the band cuts stay (they never raise noise) unless outside="flat"; boosts fade to 0 dB.
    loud = _model_set(np.where(f > 5000, 12.0, 0.0), np.where(f > 5000, -60.0, 0.0), cfg)
    kept = correction_curve(loud, "a", "b", limit_band=(100.0, 4000.0))
    assert kept.gain_db[f > 8000].min() == -30.0  # the cut, at its clamp
    flat = correction_curve(loud, "a", "b", limit_band=(100.0, 4000.0), outside="flat")
    assert np.abs(flat.gain_db[f > 8000]).max() == 0.0
    with pytest.raises(ParameterError, match="outside='both'"):
        correction_curve(loud, "a", "b", limit_band=(100.0, 4000.0), outside="both")


def test_weighted_mean_reference():
    cfg = SpectralConfig(sample_rate=SR, n_fft=512, hop_length=128)
    f = cfg.frequencies
    rs = ResponseSet(cfg, [DeviceResponse(n, v, method="model") for n, v in
                           (("d", np.zeros_like(f)), ("r1", np.full_like(f, 3.0)), ("r2", np.full_like(f, 9.0)))])
    c = correction_curve(rs, "d", ":mean", reference_weights={"r1": 3.0, "r2": 1.0})
    np.testing.assert_allclose(c.gain_db, 4.5)


# ---------------------------------------------------------------------------------------------------------------
# Loudness


def test_loudness_of_a_full_scale_sine_and_true_peak():
    t = np.arange(SR * 3) / SR
    sine = np.sin(2 * np.pi * 997 * t)
    # BS.1770-4 section 2.1: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS (the -0.691 constant cancels
    # the K-weighting's gain near 1 kHz); 0.1 LU allows for pyloudnorm's filter at 22.05 kHz.
    assert integrated_loudness(sine, SR) == pytest.approx(-3.01, abs=0.1)
    # A sine at fs/4 sampled 45 degrees off its peaks: samples at 0.707, true peak 1.0 (0 dBTP).
    quarter = np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4)
    assert 20 * np.log10(np.abs(quarter).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(quarter, SR) == pytest.approx(0.0, abs=0.3)
    assert peak_reduction_db(quarter, SR) == pytest.approx(1.0, abs=0.3)
    assert integrated_loudness(sine[: SR // 10], SR) is None  # shorter than one 400 ms block


@pytest.mark.parametrize("text,value", [("match", "match"), ("keep", "keep"), ("-23LUFS", -23.0),
                                        ("-16 lufs", -16.0), (-14, -14.0)])
def test_parse_loudness(text, value):
    assert parse_loudness(text) == value


@pytest.mark.parametrize("bad", ["loud", "-23dB", "5LUFS"])
def test_parse_loudness_rejects(bad):
    with pytest.raises(ParameterError, match="loudness="):
        parse_loudness(bad)


# ---------------------------------------------------------------------------------------------------------------
# The flow


@pytest.mark.parametrize("statistic", ["power", "log"])
def test_match_same_sound_takes_the_aligned_route_and_helps(statistic):
    ref = _voice(1)
    tgt = _device(ref)
    r = match((tgt, SR), (ref, SR), statistic=statistic)
    assert r.route == "aligned" and "same sound" in r.route_reason
    assert r.alignment.offset_samples == pytest.approx(700, abs=1.0)
    assert r.distance_db["after"] < 0.5 * r.distance_db["before"]
    assert r.frame_lsd_db["after"] < r.frame_lsd_db["before"]
    assert r.loudness_lufs["result"] == pytest.approx(r.loudness_lufs["reference"], abs=0.05)
    assert r.helped and r.audio.shape == (1, tgt.size) and r.audio.dtype == np.float32


def test_match_different_material_falls_back_to_unaligned():
    r = match((_device(_voice(2)), SR), (_voice(3), SR), statistic="log", loudness="keep")
    assert r.route == "unaligned" and "no credible alignment" in r.route_reason
    assert r.frame_lsd_db is None
    assert r.loudness_lufs["result"] == pytest.approx(r.loudness_lufs["target"], abs=0.05)


def test_match_strength_zero_changes_only_the_level():
    ref = _voice(4)
    tgt = _device(ref)
    r = match((tgt, SR), (ref, SR), strength=0.0, loudness="keep")
    np.testing.assert_allclose(r.correction.gain_db, 0.0)
    np.testing.assert_allclose(r.audio[0], tgt, atol=2e-4)


def test_match_files_keeps_format_and_reduces_overs(tmp_path):
    ref = _voice(5)
    tgt = _device(ref, gain=0.05)
    sf.write(tmp_path / "ref.wav", ref, SR, subtype="PCM_16")
    sf.write(tmp_path / "tgt.wav", tgt, SR, subtype="PCM_16")
    r = match(tmp_path / "tgt.wav", tmp_path / "ref.wav", tmp_path / "out.wav", loudness="-6LUFS")
    assert sf.info(tmp_path / "out.wav").subtype == "PCM_16"
    assert r.overs_reduction_db > 0 and any("lowered" in w for w in r.warnings)
    assert true_peak_db(sf.read(tmp_path / "out.wav")[0], SR) <= -1.0 + 0.1
    with pytest.raises(Exception, match="overwrite the input"):
        match(tmp_path / "tgt.wav", tmp_path / "ref.wav", tmp_path / "tgt.wav")


def test_match_target_curve_and_errors(tmp_path):
    curve = tmp_path / "curve.csv"
    curve.write_text("frequency,raw\n20,0\n1000,0\n2000,-6\n20000,-6\n", encoding="utf-8")
    f = np.array([20.0, 1000.0, 1414.2, 2000.0, 30000.0])
    np.testing.assert_allclose(read_target_curve(curve, f), [0, 0, -3, -6, -6], atol=0.01)
    r = match((_voice(6), SR), curve)
    assert r.route == "curve"
    bad = tmp_path / "bad.csv"
    bad.write_text("freq,gain\n1,2\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="'frequency' and 'raw'"):
        match((_voice(6), SR), bad)
    with pytest.raises(ParameterError, match="2 reference weights for 1"):
        match((_voice(6), SR), (_voice(7), SR), reference_weights=[1, 2])
    with pytest.raises(ParameterError, match="route 'aligned' needs exactly one"):
        match((_voice(6), SR), [(_voice(7), SR), (_voice(8), SR)], route="aligned")


def test_third_octave_distance_ignores_level_and_sees_tilt():
    f = np.linspace(0, 22050, 4097)
    base = -20 * np.log10(np.maximum(f, 20) / 1000)
    centres, _ = third_octave_levels_db(base, f)
    assert centres[0] == pytest.approx(100, rel=0.03) and centres[-1] == pytest.approx(16000, rel=0.03)
    assert long_term_distance_db(base + 7.0, base, f) == pytest.approx(0.0, abs=1e-9)
    assert long_term_distance_db(base + 3 * np.log2(np.maximum(f, 20) / 1000), base, f) > 5.0


# ---------------------------------------------------------------------------------------------------------------
# Command and README


def _write_pair(folder, names=("tablet.wav", "studio.wav")):
    ref = _voice(9)
    sf.write(folder / names[1], ref, SR, subtype="PCM_16")
    sf.write(folder / names[0], _device(ref), SR, subtype="PCM_16")


def test_cli_match_writes_file_and_report(tmp_path):
    _write_pair(tmp_path)
    res = CliRunner().invoke(main, ["match", str(tmp_path / "tablet.wav"), str(tmp_path / "studio.wav"), "-o",
                                    str(tmp_path / "out.wav"), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "aligned route" in res.output and "long-term distance" in res.output
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["distance_db"]["after"] < summary["distance_db"]["before"]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "spectra.png" in html and (tmp_path / "rep" / "spectrograms.png").stat().st_size > 1000


def test_cli_match_batch_keeps_going(tmp_path):
    _write_pair(tmp_path)
    takes = tmp_path / "takes"
    takes.mkdir()
    for name in ("a.wav", "b.wav"):
        (takes / name).write_bytes((tmp_path / "tablet.wav").read_bytes())
    (takes / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    res = CliRunner().invoke(main, ["match", str(takes), str(tmp_path / "studio.wav"), "-o", str(tmp_path / "out"),
                                    "--loudness", "-3LUFS"])
    assert res.exit_code == 1
    assert (tmp_path / "out" / "a.wav").is_file() and (tmp_path / "out" / "b.wav").is_file()
    assert "broken.wav" in res.output and "1 of 3 file(s) failed" in res.output
    assert res.output.count("were lowered as a whole") == 1  # one overs warning per batch


def _readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Match two recordings in one call\s*$(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert m, "README.md needs a '## Match two recordings in one call' section"
    return m.group(1)


def test_readme_match_examples_run_as_written(tmp_path, monkeypatch):
    section = _readme_section()
    monkeypatch.chdir(tmp_path)
    _write_pair(tmp_path)
    bash = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    commands = [ln for ln in bash.splitlines() if ln.startswith("micmatch match")]
    assert commands
    for line in commands[:1]:
        res = CliRunner().invoke(main, shlex.split(line)[1:])
        assert res.exit_code == 0, res.output
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    # The README, run as written.
    exec(compile(code, "README.md (match)", "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert (tmp_path / "tablet_matched.wav").is_file() and (tmp_path / "report" / "report.html").is_file()


def test_cli_says_when_the_result_is_further_from_the_reference(tmp_path, monkeypatch):
    import dataclasses

    import micmatch.matching as match_module

    _write_pair(tmp_path)
    real = match_module.match

    def worse(*args, **kwargs):
        # A real match whose figures are then swapped, as a bad pairing would give: after > before.
        r = real(*args, **kwargs)
        return dataclasses.replace(r, distance_db={"before": 1.0, "after": 2.5})

    monkeypatch.setattr(match_module, "match", worse)
    res = CliRunner().invoke(main, ["match", str(tmp_path / "tablet.wav"), str(tmp_path / "studio.wav"), "-o",
                                    str(tmp_path / "out.wav")])
    assert res.exit_code == 0, res.output
    assert "further from the reference than the input" in res.output


def test_analysis_n_fft_follows_the_rate_and_short_inputs():
    from micmatch.matching import MIN_N_FFT, analysis_n_fft

    assert [analysis_n_fft(sr, 10**7) for sr in (8000, 16000, 44100, 48000)] == [1024, 2048, 4096, 4096]
    assert analysis_n_fft(8000, 3142) == 512  # a spoken digit of 0.4 s: at least four frames
    assert analysis_n_fft(44100, 100) == MIN_N_FFT


def test_match_short_clips_at_8khz():
    sr = 8000
    rng = np.random.default_rng(7)
    ref = rng.standard_normal(3200).astype(np.float32) * 0.1
    tgt = scipy.signal.lfilter([1.0, 0.6], [1.0], rng.standard_normal(3000)).astype(np.float32) * 0.1
    r = match((tgt, sr), (ref, sr), route="unaligned")
    assert r.correction.n_fft == 512 and r.distance_db["after"] < r.distance_db["before"]
    assert any("whole band is corrected" in w for w in r.warnings)  # steady noise never pauses


def test_cli_match_output_rule_and_skip_existing(tmp_path):
    _write_pair(tmp_path)
    tablet, studio = str(tmp_path / "tablet.wav"), str(tmp_path / "studio.wav")
    res = CliRunner().invoke(main, ["match", tablet, studio, "-o", studio])
    assert res.exit_code == 1 and "micmatch: error:" in res.output and "studio.wav" in res.output
    takes = tmp_path / "takes"
    takes.mkdir()
    for name in ("a.wav", "b.wav"):
        (takes / name).write_bytes((tmp_path / "tablet.wav").read_bytes())
    out = takes / "matched"  # inside the target folder: left out of the walk, never matched again
    args = ["match", str(takes), studio, "-o", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    (out / "b.wav").unlink()
    stamp = (out / "a.wav").stat().st_mtime_ns
    res = CliRunner().invoke(main, [*args, "--skip-existing"])
    assert res.exit_code == 0 and "1 output(s) already there, skipped" in res.output
    assert (out / "b.wav").is_file() and (out / "a.wav").stat().st_mtime_ns == stamp
    assert not (out / "matched").exists()


def test_match_says_why_the_loudness_was_kept_for_a_short_reference():
    sr = 8000
    rng = np.random.default_rng(8)
    r = match((rng.standard_normal(8000).astype(np.float32) * 0.1, sr),
              (rng.standard_normal(2400).astype(np.float32) * 0.1, sr), route="unaligned")
    assert any("too short (under 0.4 s)" in w for w in r.warnings)
    assert r.loudness_lufs["result"] == pytest.approx(r.loudness_lufs["target"], abs=0.05)


def test_cli_match_of_a_file_with_itself_does_not_warn(tmp_path):
    sf.write(tmp_path / "a.wav", _voice(3), SR, subtype="PCM_16")
    res = CliRunner().invoke(main, ["match", str(tmp_path / "a.wav"), str(tmp_path / "a.wav"), "-o",
                                    str(tmp_path / "out.wav")])
    assert res.exit_code == 0, res.output
    assert "long-term distance 0.00 -> 0.00 dB" in res.output and "further" not in res.output


def test_match_distances_cover_the_band_both_recordings_have(rng):
    from micmatch.matchresult import DISTANCE_TOLERANCE_DB

    # A 48 kHz target whose content differs from the reference only above 3.6 kHz, where an 8 kHz reference has
    # nothing: measured over the reference's band, the two are alike; a note says where the band stops.
    ref8 = _voice(4, 3.0)
    ref8 = scipy.signal.resample_poly(ref8, 8000, SR).astype(np.float32)
    target = scipy.signal.resample_poly(ref8, 6, 1).astype(np.float32)
    target += (0.05 * scipy.signal.sosfilt(scipy.signal.butter(8, 6000, "highpass", fs=48000, output="sos"),
                                           rng.standard_normal(target.size))).astype(np.float32)
    res = match((target, 48000), (ref8, 8000), route="unaligned")
    assert res.distance_db["before"] < 1.0  # over the whole 48 kHz band it would be tens of dB
    notes = [n.message for n in res.notes if n.kind == "band" and "8000 Hz" in n.message]
    assert notes == ["a reference was recorded at 8000 Hz: its band ends at 4000 Hz, below the target's (24000 Hz); "
                     "distances are measured up to 3600 Hz"]
    same = match((target, 48000), (target, 48000), route="unaligned")
    assert same.helped and not [n for n in same.notes if n.kind in ("band", "distance")]
    assert abs(same.distance_db["after"] - same.distance_db["before"]) <= DISTANCE_TOLERANCE_DB
