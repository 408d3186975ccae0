"""Event mode: many recordings of one event onto one timeline, one sound, with seam figures (synthetic, seeded)."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from click.testing import CliRunner
from conftest import room_ir

from micmatch.align import estimate_alignment
from micmatch.cli import main
from micmatch.errors import ParameterError
from micmatch.eventmode import event

SR = 16000


def source(seed: int, seconds: float, sr: int = SR) -> np.ndarray:
    """A sound of one event: noise under a slowly varying, bursty envelope (pauses and loud parts, like speech)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    env = np.repeat(np.abs(rng.standard_normal(int(seconds * 8) + 1)) + 0.05, sr // 8)[:n]
    env = scipy.signal.lfilter([0.02], [1, -0.98], env)
    return rng.standard_normal(n) * env * 0.05


def device(x: np.ndarray, *, start_s: float, seconds: float, ppm: float = 0.0, b=(1.0,), rate: int = SR,
           seed: int = 0) -> np.ndarray:
    """A device's recording of ``x`` (at :data:`SR`): filtered by ``b``, from ``start_s`` for ``seconds``, its
    clock ``ppm`` fast (scipy's polyphase resampler, independent of the soxr one the timeline uses), at ``rate``."""
    y = scipy.signal.lfilter(b, [1.0], x)[int(start_s * SR) : int((start_s + seconds) * SR)]
    for r in (Fraction(1_000_000 + int(ppm), 1_000_000), Fraction(rate, SR)):  # two steps: short filters
        if r != 1:
            y = scipy.signal.resample_poly(y, r.numerator, r.denominator)
    return y + 1e-5 * np.random.default_rng(seed).standard_normal(y.shape)


def write(path, x, rate=SR):
    sf.write(str(path), np.asarray(x).T if np.ndim(x) > 1 else x, rate, subtype="PCM_24")
    return path


def test_offset_and_drift_land_on_the_timeline_within_1ms(tmp_path):
    x = source(1, 40)
    a = write(tmp_path / "a.wav", device(x, start_s=0.0, seconds=30.0))
    b = write(tmp_path / "b.wav", device(x, start_s=3.7, seconds=34.0, ppm=100, b=(1.0, -0.5), seed=1))
    res = event([a, b], tmp_path / "out", reference=a)
    clock = res.clocks["b"]
    # b's local time t lies at source time 3.7 + t / (1 + 100e-6); the reference's clock is the source's.
    for t in (0.0, 15.0, 34.0 * (1 + 100e-6)):
        truth = 3.7 + t / (1 + 100e-6)
        assert abs(clock.start_s + clock.rate * t - truth) < 1e-3
    assert abs(clock.drift_ppm - 100) < 5
    # The stems themselves line up: b's stem against a's over their overlap, to well within 1 ms.
    sa = sf.read(str(res.stems["a"]))[0]
    sb = sf.read(str(res.stems["b"]))[0]
    lo, hi = int(4 * SR), int(29 * SR)
    al = estimate_alignment(sa[lo:hi], sb[lo:hi], SR)
    assert abs(al.offset_samples) < 1e-3 * SR and abs(al.drift_ppm) < 5


def test_a_recording_of_another_event_is_left_out_with_one_line(tmp_path):
    x = source(2, 30)
    files = [write(tmp_path / "a.wav", device(x, start_s=0, seconds=20)),
             write(tmp_path / "b.wav", device(x, start_s=8, seconds=20, b=(1.0, 0.4))),
             write(tmp_path / "other.wav", source(99, 15))]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if "other" in ln]
    assert len(lines) == 1 and "left out" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "event.json"]
    assert "seams (every pair at regular points)" in r.stdout


def test_a_device_linked_through_another_gets_the_sum_of_the_links(tmp_path):
    """c overlaps only b, b overlaps a (the reference): c's correction is the sum of c->b and b->a, within
    0.1 dB (the same overlaps measured in one run or in two), and within 1 dB of the true one."""
    x = source(3, 50)
    hb, hc = (1.0, -0.5), (1.0, 0.6)
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=20, seed=1))
    b = write(tmp_path / "b.wav", device(x, start_s=12, seconds=26, b=hb, seed=2))
    c = write(tmp_path / "c.wav", device(x, start_s=30, seconds=20, b=hc, seed=3))
    full = event([a, b, c], tmp_path / "abc", reference=a)
    assert full.routes["c"] == ["c", "b", "a"]
    seams = full.seam_summary
    assert seams["seams"] >= 2
    assert seams["median_frame_lsd_db"]["after"] < 0.6 * seams["median_frame_lsd_db"]["before"]
    assert seams["median_abs_loudness_jump_lu"]["after"] < 0.5
    cb = event([b, c], tmp_path / "bc", reference=b).corrections["c"]
    ba = event([a, b], tmp_path / "ab", reference=a).corrections["b"]
    chained = full.corrections["c"]
    f = np.fft.rfftfreq(chained.n_fft, 1 / SR)
    band = (f >= 200) & (f <= 6000)
    assert np.max(np.abs(chained.gain_db - (cb.gain_db + ba.gain_db))[band]) < 0.1
    _, h = scipy.signal.freqz(hc, worN=f, fs=SR)
    truth = -20 * np.log10(np.abs(h))
    truth -= np.median(truth[band])
    err = chained.gain_db - truth
    assert np.max(np.abs(err - np.median(err[band]))[band]) < 1.0


def test_identical_recordings_come_out_unchanged(tmp_path):
    x = device(source(4, 15), start_s=0, seconds=15)
    a = write(tmp_path / "a.wav", x)
    b = write(tmp_path / "b.wav", x)
    res = event([a, b], tmp_path / "out")
    for name in ("a", "b"):
        assert np.max(np.abs(res.corrections[name].gain_db)) < 0.01
        y = sf.read(str(res.stems[name]))[0]
        assert y.shape == x.shape
        assert np.max(np.abs(y - x)) < 1e-3
    assert res.seam_summary["median_frame_lsd_db"]["after"] < 0.1


def test_stems_share_one_length_and_rate(tmp_path):
    x = source(5, 40)
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=20))
    stereo = device(x, start_s=10, seconds=25, rate=22050, ppm=-60, b=(1.0, 0.3))
    b = write(tmp_path / "b.wav", np.stack([stereo, 0.5 * stereo]), rate=22050)
    c = write(tmp_path / "c.wav", device(x, start_s=5, seconds=12, rate=8000, b=(1.0, -0.3)), rate=8000)
    for rate, expected in ((None, SR), (48000, 48000)):
        res = event([a, b, c], tmp_path / f"out{rate}", reference=a, sample_rate=rate)
        infos = [sf.info(str(p)) for p in res.stems.values()]
        assert {i.samplerate for i in infos} == {expected}
        assert {i.frames for i in infos} == {res.n_samples}
        assert abs(res.n_samples / expected - 35.0) < 0.01
        assert [i.channels for i in infos] == [1, 2, 1]
        # Three overlapping pairs make a cycle: the solved timeline agrees with each pair's own measurement.
        assert len(res.link_residuals_ms) == 3 and max(abs(r) for r in res.link_residuals_ms) < 0.5
        # Seams with the 8 kHz device are judged below its own band edge, levels matched over that band.
        lsd = res.seam_summary["median_frame_lsd_db"]
        assert res.seam_summary["seams"] == 3 and lsd["after"] < 0.5 * lsd["before"]


def test_a_cut_list_outside_the_event_is_refused_in_one_line(tmp_path):
    x = source(6, 30)
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=20))
    b = write(tmp_path / "b.wav", device(x, start_s=5, seconds=20, b=(1.0, 0.4)))
    cuts = tmp_path / "cuts.csv"
    cuts.write_text("time_s,device\n0,a\n12,b\n40,a\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["event", str(a), str(b), "-o", str(out), "--cuts", str(cuts)])
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "outside the event" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    cuts.write_text("time_s,device\n0,a\n12,b\n")
    res = event([a, b], out, cuts=cuts)
    assert res.cut_track.name == "cuts.wav" and sf.info(str(res.cut_track)).frames == res.n_samples
    seam = res.seams[0]
    assert (seam["from"], seam["to"]) == ("a", "b")
    assert seam["frame_lsd_db_after"] < seam["frame_lsd_db_before"]
    assert abs(seam["loudness_jump_lu_after"]) < 0.5


def test_bad_inputs_are_refused(tmp_path):
    a = write(tmp_path / "a.wav", source(7, 5))
    with pytest.raises(ParameterError, match="2 to 20"):
        event([a], tmp_path / "out")
    (tmp_path / "sub").mkdir()
    a2 = write(tmp_path / "sub" / "a.wav", source(7, 5))
    with pytest.raises(ParameterError, match="both be written"):
        event([a, a2], tmp_path / "out")


def test_readme_event_examples_run_as_written(tmp_path, monkeypatch):
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Event mode: many recordings of one event\s*$(.*?)(?=^## |\Z)", text,
                        flags=re.MULTILINE | re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    x = source(8, 40)
    write(tmp_path / "camera.wav", device(x, start_s=0, seconds=20))
    write(tmp_path / "phone1.wav", device(x, start_s=5, seconds=20, b=(1.0, -0.4), seed=1))
    write(tmp_path / "phone2.wav", device(x, start_s=15, seconds=20, b=(1.0, 0.4), seed=2))
    bash = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    line = next(ln for ln in bash.splitlines() if ln.startswith("micmatch event"))
    r = CliRunner().invoke(main, shlex.split(line)[1:])
    assert r.exit_code == 0, r.output
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    exec(compile(code, "README.md (event)", "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert sorted(p.name for p in (tmp_path / "event").iterdir()) == ["camera.wav", "event.json", "phone1.wav",
                                                                      "phone2.wav"]


def test_a_rerun_into_a_folder_inside_the_input_folder_leaves_its_stems_out(tmp_path):
    x = source(9, 30)
    takes = tmp_path / "takes"
    takes.mkdir()
    write(takes / "a.wav", device(x, start_s=0, seconds=20))
    write(takes / "b.wav", device(x, start_s=6, seconds=20, b=(1.0, 0.4)))
    for _ in range(2):
        r = CliRunner().invoke(main, ["event", str(takes), "-o", str(takes / "event")])
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (takes / "event").iterdir()) == ["a.wav", "b.wav", "event.json"]


def test_the_reference_chosen_is_the_widest_band_and_the_reason_says_so(tmp_path):
    x = source(10, 30)
    low = scipy.signal.firwin(101, 2500, fs=SR)  # a device that records only up to 2.5 kHz
    a = write(tmp_path / "narrow.wav", device(x, start_s=0, seconds=20, b=low))
    b = write(tmp_path / "wide.wav", device(x, start_s=5, seconds=20, b=(1.0, 0.2), seed=1))
    res = event([a, b], tmp_path / "out")
    assert res.reference == "wide" and "widest band" in res.reference_reason
    assert res.routes["narrow"] == ["narrow", "wide"]


def test_an_inverted_recording_is_placed_on_time_and_its_stem_turned_over(tmp_path):
    """b's chain inverts the signal: it still lands within 1 ms, event.json says so, and its stem is turned over
    so that it adds to the reference's stem instead of cancelling it."""
    x = source(4, 30)
    a = write(tmp_path / "a.wav", device(x, start_s=0.0, seconds=20.0))
    b = write(tmp_path / "b.wav", -device(x, start_s=5.0, seconds=20.0, b=(1.0, -0.4), seed=2))
    res = event([a, b], tmp_path / "out", reference=a)
    assert res.polarities == {"a": 1, "b": -1}
    assert abs(res.clocks["b"].start_s - 5.0) < 1e-3
    summary = json.loads(res.event_json.read_text())
    assert summary["recordings"]["b"]["polarity"] == -1
    assert any("inverted" in n for n in summary["notes"])
    sa = sf.read(str(res.stems["a"]))[0]
    sb = sf.read(str(res.stems["b"]))[0]
    lo, hi = int(6 * SR), int(19 * SR)
    assert np.corrcoef(sa[lo:hi], sb[lo:hi])[0, 1] > 0.5


@pytest.mark.parametrize("seed", range(6))
def test_phones_far_from_the_source_in_a_room_land_on_the_direct_sound(tmp_path, seed):
    """Two phones 3 and 9 ms from the source in a room (RT60 0.7 s, direct sound 9 dB below the reverberation), the
    second started 2.1 s later: it lands within 1 ms of where the direct sound puts it. Correlating the recordings
    as they are put it 1.3, 17 and 14 ms off for seeds 0, 2 and 5; the onset-emphasised copies do not."""
    rng = np.random.default_rng(seed)
    x = source(seed, 50)
    ya = scipy.signal.fftconvolve(x, room_ir(rng, SR, delay_s=0.003, rt60_s=0.7, drr_db=-9.0))[: x.size]
    yb = scipy.signal.fftconvolve(x, room_ir(rng, SR, delay_s=0.009, rt60_s=0.7, drr_db=-9.0))[: x.size]
    a = write(tmp_path / "a.wav", ya[: 40 * SR] + 1e-5 * rng.standard_normal(40 * SR))
    b = write(tmp_path / "b.wav", yb[int(2.1 * SR) : 47 * SR] + 1e-5 * rng.standard_normal(47 * SR - int(2.1 * SR)))
    res = event([a, b], tmp_path / "out", reference=a)
    # b's sample 0 holds what was emitted at 2.1 - 0.009 s, which reached a 0.003 s after its emission
    assert abs(res.clocks["b"].start_s - (2.1 - 0.006)) < 1e-3
