"""The streaming statistics of a profile: the C kernel, the numpy fallback and a float64 reference agree, and the
figures of a fixed corpus stay what they were before the statistics were fused into one pass.

Recorded figures live in ``tests/data/statistics/fixed_corpus.json``;
``MICMATCH_RECORD_STATISTICS=1 pytest tests/test_statistics_kernel.py`` records them again, on purpose only.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micmatch import logstats, spectral
from micmatch.errors import DCOffsetWarning
from micmatch.estimate import array_stats, file_stats
from micmatch.response import SpectralConfig

RECORDED = Path(__file__).parent / "data" / "statistics" / "fixed_corpus.json"
RECORD = os.environ.get("MICMATCH_RECORD_STATISTICS") == "1"
SR = 44100
#: Bins whose figures are recorded (0 Hz, low, mid, high and Nyquist of n_fft 2048; clipped for smaller n_fft).
PROBE_BINS = (0, 1, 7, 46, 140, 300, 512, 801, 1000, 1024)

needs_kernel = pytest.mark.skipif(logstats._logpower is None,
                                  reason="micmatch was built without its C kernel (python setup.py build_ext)")


def _corpus_signal(seed: int = 1812) -> np.ndarray:
    """4.5 s at 44.1 kHz: noise at 0, -12 and -45 dB re its loudest part, digital silence, a tone over noise, a
    slow fade (many frame levels per block): every gate has frames on both sides."""
    rng = np.random.default_rng(seed)
    seg = SR // 2
    t = np.arange(seg) / SR
    parts = [rng.standard_normal(seg) * 0.2,
             rng.standard_normal(seg) * 0.2 * 10 ** (-12 / 20),
             np.zeros(seg),
             rng.standard_normal(seg) * 0.2 * 10 ** (-45 / 20),
             0.3 * np.sin(2 * np.pi * 997.0 * t) + rng.standard_normal(seg) * 0.01,
             rng.standard_normal(4 * seg) * 0.2 * np.linspace(1.0, 1e-3, 4 * seg)]
    return np.clip(np.concatenate(parts), -1.0, 1.0 - 2**-15)


def _dc_signal(seed: int = 99) -> np.ndarray:
    """2 s at 44.1 kHz: noise, then a constant offset with sound 40 dB below it (DC-dominated frames), then noise."""
    rng = np.random.default_rng(seed)
    n = SR // 2
    return np.concatenate([rng.standard_normal(n) * 0.1, 0.5 + rng.standard_normal(2 * n) * 0.005 * 0.01,
                           rng.standard_normal(n) * 0.05])


#: name -> (signal maker, n_fft, hop, gate_db, relative_gate_db, source)
CASES = {
    "int16-default-gates": (_corpus_signal, 2048, 512, -80.0, 30.0, "file"),
    "int16-absolute-gate-only": (_corpus_signal, 2048, 512, -80.0, None, "file"),
    "float-no-gates": (_corpus_signal, 512, 128, None, None, "array"),
    "float-dc-offset": (_dc_signal, 1024, 256, -80.0, 30.0, "array"),
}


def _stats(name: str, tmp_path: Path):
    make, n_fft, hop, gate_db, rel_db, source = CASES[name]
    config = SpectralConfig(sample_rate=SR, n_fft=n_fft, hop_length=hop, gate_db=gate_db, relative_gate_db=rel_db)
    x = make()
    if source == "array":
        # The dc case's DC-dominated frames hold sound below both gates (pauses with an offset): left out silently.
        with warnings.catch_warnings():
            warnings.simplefilter("error", DCOffsetWarning)
            return array_stats(x, config), x
    path = tmp_path / f"{name}.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    decoded, _ = sf.read(path, dtype="float64")
    return file_stats(path, config), decoded


def reference_statistics(x: np.ndarray, *, n_fft: int, hop_length: int, gate_db: float | None,
                         relative_gate_db: float | None, floor_db: float = spectral.DEFAULT_FLOOR_DB) -> dict:
    """Every statistic of a profile, straight from the definitions in float64 (no chunking, no grouping)."""
    w = spectral.analysis_window(n_fft, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), n_fft)[::hop_length]
    power = np.abs(np.fft.rfft(frames * w, axis=-1)) ** 2
    two_sided = 2.0 * power.sum(axis=1) - power[:, 0] - power[:, -1]
    low = power[:, 0] + 2.0 * power[:, 1]
    dc = (two_sided - low < logstats.DC_REST_SHARE * two_sided) & (two_sided > 0)
    level_db = 10.0 * np.log10(np.maximum(two_sided / (n_fft * np.sum(w * w)), 1e-30))
    keep = ~dc
    if gate_db is not None:
        keep &= level_db >= gate_db
    if relative_gate_db is not None and keep.any():
        bins = np.floor(level_db / logstats.LEVEL_STEP_DB)
        keep &= bins >= bins[keep].max() - np.floor(relative_gate_db / logstats.LEVEL_STEP_DB)
    log_db = 10.0 * np.log10(power[keep] + 10.0 ** (floor_db / 10.0))
    return {"sum_db": log_db.sum(axis=0), "sum_sq_db": (log_db**2).sum(axis=0), "sum_power": power[keep].sum(axis=0),
            "n_frames": int(keep.sum()), "n_gated": int((~keep).sum()), "n_dc": int(dc.sum())}


# ---------------------------------------------------------------------------------------------------------------
# The kernel's one pass against its numpy twin, on the same complex spectra


@pytest.fixture(params=["avx512", "avx2", "baseline"])
def isa(request):
    """Each variant of the C kernel this CPU can run (the module picks the best one at import)."""
    if logstats._logpower is None:
        pytest.skip("micmatch was built without its C kernel (python setup.py build_ext)")
    try:
        previous = logstats._logpower.use_isa(request.param)
    except ValueError:
        pytest.skip(f"this CPU or build has no {request.param} variant")
    yield request.param
    logstats._logpower.use_isa(previous)


@pytest.mark.parametrize("n_bins", [1025, 257, 9, 1])
@pytest.mark.parametrize("with_slots", [False, True])
def test_kernel_pass_equals_numpy_pass(rng, isa, n_bins, with_slots):
    n, n_slots = 96, 5
    spec = (rng.standard_normal((n, n_bins)) + 1j * rng.standard_normal((n, n_bins))).astype(np.complex64)
    spec *= np.logspace(-9, 0, n, dtype=np.float32)[:, None]  # levels spanning 180 dB, some near the floor
    spec[3] = 0  # digital silence: the floor alone
    slots = rng.integers(-1, n_slots, n).astype(np.int32) if with_slots else None
    out = {}
    for name, func, data in (("c", logstats._accumulate_kernel, spec),
                             ("numpy", logstats._accumulate_numpy, logstats._power(spec))):
        arrays = [np.full((n_slots, n_bins), 0.25) for _ in range(3)]  # accumulates onto what is there
        func(data, slots, *arrays, logstats._floor_power(-160.0))
        out[name] = arrays
    for (c, ref), what in zip(zip(out["c"], out["numpy"]), ("log sums", "squares", "power sums")):
        # Each dB value is a float32 in both (polynomial log against libm's): they differ by the log's 2e-7 dB and
        # float32 rounding (6e-8 relative, 1e-5 dB at -160 dB). The numpy path sums one row's frames of a chunk
        # in float32, one after another (at most 96 x 6e-8 relative), the kernel in float64: 5e-6 relative, or
        # 1e-4 dB where log values of either sign cancel and 1e-2 dB^2 on squares (2 |l| dl per value).
        atol = {"log sums": 1e-4, "squares": 1e-2, "power sums": 1e-12}[what]
        np.testing.assert_allclose(c, ref, rtol=5e-6, atol=atol, err_msg=what)
    if with_slots:
        untouched = np.setdiff1d(np.arange(n_slots), slots)
        np.testing.assert_array_equal(out["c"][0][untouched], 0.25)


def test_frame_power_kernel_equals_numpy(rng, isa):
    spec = (rng.standard_normal((50, 1025)) + 1j * rng.standard_normal((50, 1025))).astype(np.complex64)
    spec[7] = 0
    two_sided, low = logstats._frame_power_kernel(spec)
    ref_two, ref_low = logstats._frame_power_numpy(logstats._power(spec))
    # float32 squares summed in float32 lanes (kernel) or float64 (numpy): 1e-6 relative.
    np.testing.assert_allclose(two_sided, ref_two, rtol=1e-6)
    np.testing.assert_allclose(low, ref_low, rtol=1e-6)
    assert two_sided[7] == 0 and low[7] == 0


def _chunks(rng, n_bins=257):
    """Complex64 chunks whose frame levels rise slowly, then by 10 level bins, then by far more than the relative
    gate, with DC-dominated frames, digital silence and frames below the absolute gate among them."""
    out = []
    for levels_db in ([-40, -45, -60, -41, -120, -39.7], [-42, -35, -70, -36, -38], [10, -40, -5, -30.2, -31]):
        spec = rng.standard_normal((len(levels_db), n_bins)) + 1j * rng.standard_normal((len(levels_db), n_bins))
        spec *= 10 ** (np.asarray(levels_db)[:, None] / 20)
        out.append(spec.astype(np.complex64))
    out[0][2] = 0  # digital silence
    out[1][2, 0] = 300.0  # a constant offset dominates this frame
    out[1][2, 2:] *= 1e-3
    return out


@pytest.mark.parametrize("relative_gate_db", [None, 30.0, 0.0])
@pytest.mark.parametrize("gate_db", [None, -80.0])
def test_chunk_kernel_equals_numpy_gating_and_sums(rng, isa, gate_db, relative_gate_db):
    """The kernel's one call per chunk (gates, DC rule, level ring, sums) leaves the accumulator exactly as the
    numpy steps do."""
    accs = [logstats.LogPowerAccumulator(n_fft=512, hop_length=128, gate_db=gate_db,
                                         relative_gate_db=relative_gate_db) for _ in range(2)]
    for spec in _chunks(rng):
        accs[0]._add_chunk(spec, kernel=True)
        accs[1]._add_chunk(spec, kernel=False)
    c, ref = accs
    np.testing.assert_array_equal(c._state, ref._state)
    np.testing.assert_array_equal(c._counts, ref._counts)
    assert c.n_dc == 1 and c.n_frames > 0
    # Same frames in the same rows; float32 values per bin, each dB value within ~1e-5 dB of the other path's,
    # summed as in the pass test: 5e-6 relative, or 1e-4 dB on log sums (values of either sign can cancel) and
    # 1e-2 dB^2 on squares (2 |l| dl per value with |l| up to 160 dB).
    np.testing.assert_allclose(c._sums, ref._sums, rtol=5e-6, atol=1e-4)
    np.testing.assert_allclose(c._squares, ref._squares, rtol=5e-6, atol=1e-2)
    np.testing.assert_allclose(c._powers, ref._powers, rtol=5e-6, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_window_kernel_equals_numpy(rng, isa, dtype):
    x = (rng.standard_normal(5000) * 3000).astype(dtype)
    n_fft, hop, n = 512, 128, 30
    window = spectral.analysis_window(n_fft, scale=1 / 32768)
    out = np.full((n, n_fft), np.nan, dtype=np.float32)
    logstats._logpower.window_frames(x[256:], n, n_fft, hop, window, out)
    expected = spectral.frame_view(x[256:], n_fft, hop)[:n] * window
    np.testing.assert_array_equal(out, expected)  # one float32 product per value in both: bit for bit


@needs_kernel
def test_kernel_refuses_wrong_sizes_and_unknown_isa():
    spec = np.zeros((4, 9), dtype=np.complex64)
    sums = np.zeros((2, 9))
    with pytest.raises(ValueError, match="slot index out of range"):
        logstats._accumulate_kernel(spec, np.array([0, 1, 2, -1], dtype=np.int32), sums, sums.copy(), sums.copy(),
                                    1e-16)
    with pytest.raises(ValueError, match="powers has"):
        logstats._accumulate_kernel(spec, None, sums, sums.copy(), np.zeros((2, 8)), 1e-16)
    with pytest.raises(ValueError, match="not available"):
        logstats._logpower.use_isa("no-such-isa")
    window, out = np.ones(8, dtype=np.float32), np.zeros((3, 8), dtype=np.float32)
    with pytest.raises(TypeError, match="int16 or float32"):
        logstats._logpower.window_frames(np.zeros(100), 3, 8, 4, window, out)
    with pytest.raises(ValueError, match="shorter than the frames"):
        logstats._logpower.window_frames(np.zeros(15, dtype=np.int16), 3, 8, 4, window, out)
    with pytest.raises(ValueError, match="out has"):
        logstats._logpower.window_frames(np.zeros(16, dtype=np.int16), 3, 8, 4, window, out[:2])
    with pytest.raises(ValueError, match="one row without the relative gate"):
        logstats._logpower.add_chunk(spec, 4, 9, (1.0, -1.0, 1e-3, 0.5, 2, False), np.zeros(3, dtype=np.int64),
                                     np.zeros(2, dtype=np.int64), sums, sums.copy(), sums.copy(), 1e-16)
    assert logstats._logpower.isa() in ("avx512", "avx2", "baseline")


# ---------------------------------------------------------------------------------------------------------------
# Whole statistics: C kernel, numpy fallback, float64 reference, recorded figures


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_statistics_equal_the_float64_reference(tmp_path, monkeypatch, name, use_kernel):
    if use_kernel and logstats._logpower is None:
        pytest.skip("micmatch was built without its C kernel")
    if not use_kernel:
        monkeypatch.setattr(logstats, "_logpower", None)
    _, n_fft, hop, gate_db, rel_db, _ = CASES[name]
    stats, x = _stats(name, tmp_path)
    ref = reference_statistics(x, n_fft=n_fft, hop_length=hop, gate_db=gate_db, relative_gate_db=rel_db)
    assert (stats.n_frames, stats.n_files) == (ref["n_frames"], 1)
    n = ref["n_frames"]
    # float32 spectra against float64: per-bin means within 1e-3 dB except 0 Hz and Nyquist, which are real and
    # can come near zero in a frame, where the float32 FFT's absolute rounding dominates their log (0.05 dB).
    inner = slice(1, -1)
    np.testing.assert_allclose(stats.sum_db[inner] / n, ref["sum_db"][inner] / n, atol=1e-3)
    np.testing.assert_allclose(stats.sum_db / n, ref["sum_db"] / n, atol=0.05)
    np.testing.assert_allclose(stats.sum_sq_db[inner] / n, ref["sum_sq_db"][inner] / n, rtol=1e-5, atol=1e-2)
    # Linear power: float32 products, relative error ~1e-6 of each frame's largest bins; 1e-4 relative per bin,
    # with an absolute allowance of 1e-6 of the loudest bin for bins far below it.
    np.testing.assert_allclose(stats.sum_power, ref["sum_power"], rtol=1e-4, atol=1e-6 * ref["sum_power"].max())


def _figures(stats) -> dict:
    n = stats.n_frames
    probe = [b for b in PROBE_BINS if b < stats.sum_db.size]
    mean = stats.sum_db / n
    return {"n_frames": int(n), "probe_bins": probe, "mean_db": mean[probe].tolist(),
            "mean_db_over_bins": float(mean.mean()), "mean_sq_db_over_bins": float((stats.sum_sq_db / n).mean()),
            "power_db": stats.power_db[probe].tolist(), "power_db_over_bins": float(stats.power_db.mean())}


@pytest.mark.parametrize("use_kernel", [True, False])
def test_fixed_corpus_figures_are_unchanged(tmp_path, monkeypatch, use_kernel):
    """Figures recorded from the statistics before they were fused into one pass (float32 spectra, C log sums and
    numpy power sums); both paths must still give them."""
    if use_kernel and logstats._logpower is None:
        pytest.skip("micmatch was built without its C kernel")
    if not use_kernel:
        monkeypatch.setattr(logstats, "_logpower", None)
    got = {name: _figures(_stats(name, tmp_path)[0]) for name in sorted(CASES)}
    if RECORD:
        if not use_kernel:
            pytest.skip("figures are recorded from the C kernel's path")
        RECORDED.parent.mkdir(parents=True, exist_ok=True)
        RECORDED.write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
        pytest.skip("figures recorded")
    expected = json.loads(RECORDED.read_text(encoding="utf-8"))
    for name, exp in expected.items():
        g = got[name]
        assert g["n_frames"] == exp["n_frames"], name
        # Same float32 arithmetic up to summation order and the log's implementation (kernel: polynomial within
        # 2e-7 dB; numpy: libm): 1e-4 dB on means, 1e-6 relative on the mean square.
        np.testing.assert_allclose(g["mean_db"], exp["mean_db"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(g["mean_db_over_bins"], exp["mean_db_over_bins"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(g["mean_sq_db_over_bins"], exp["mean_sq_db_over_bins"], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(g["power_db"], exp["power_db"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(g["power_db_over_bins"], exp["power_db_over_bins"], atol=1e-4, err_msg=name)


# ---------------------------------------------------------------------------------------------------------------
# The DC rule: a warning names frames whose sound the offset hid, not pauses that carry an offset


def _offset_after_noise(offset: float, sound_rms: float, seed: int = 5) -> np.ndarray:
    """0.5 s of noise at -20 dBFS, then 0.5 s of noise of ``sound_rms``, all on a constant ``offset``."""
    rng = np.random.default_rng(seed)
    n = SR // 2
    return offset + np.concatenate([rng.standard_normal(n) * 0.1, rng.standard_normal(n) * sound_rms])


@pytest.mark.parametrize("kernel", [True, False])
def test_dc_warning_only_where_the_offset_hides_sound_the_gates_keep(monkeypatch, kernel):
    if kernel and logstats._logpower is None:
        pytest.skip("micmatch was built without its C kernel (python setup.py build_ext)")
    if not kernel:
        monkeypatch.setattr(logstats, "_logpower", None)
    config = SpectralConfig(sample_rate=SR, n_fft=1024, hop_length=256)
    # Sound at -40 dBFS (20 dB below the loudest part, inside the relative gate) on an offset of 0.5: those
    # frames are dominated by the offset and their sound is lost: one warning counting them.
    with pytest.warns(DCOffsetWarning, match=r"audio: (\d+) of \d+ frames are dominated by a DC offset") as rec:
        array_stats(_offset_after_noise(0.5, 0.01), config)
    assert int(str(rec[0].message).split(": ")[1].split()[0]) >= 80  # about 0.5 s / 256 samples, all but edges
    # Pauses of a real recording: a small offset (0.4 %, -48 dBFS) over their noise floor (-80 dBFS, 60 dB below
    # the loudest part): the gates leave these frames out anyway, so no warning, and the same frames count as
    # without the offset (but for the one frame where the level changes, whose level the offset moves).
    with warnings.catch_warnings():
        warnings.simplefilter("error", DCOffsetWarning)
        with_offset = array_stats(_offset_after_noise(0.004, 1e-4), config)
        without = array_stats(_offset_after_noise(0.0, 1e-4), config)
    assert abs(with_offset.n_frames - without.n_frames) <= 1 and without.n_frames < 90


def test_real_clip_with_an_offset_in_its_pauses_does_not_warn(data_dir):
    # 4_lucas_47: about 0.4 % offset; half its 32 ms frames are pauses where the offset holds 99.9 % of the power
    # and the rest lies 60 dB below the spoken part.
    config = SpectralConfig(sample_rate=8000, n_fft=256, hop_length=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DCOffsetWarning)
        stats = file_stats(data_dir / "fsdd" / "audio" / "4_lucas_47.wav", config)
    assert stats.n_frames > 0


# ---------------------------------------------------------------------------------------------------------------
# The FFT of the statistics path: pocketfft called directly, or scipy.fft where that entry point is missing


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("n_fft", [16, 510, 2048])
def test_rfft_rows_equals_scipy(rng, monkeypatch, direct, n_fft):
    import scipy.fft

    if not direct:
        monkeypatch.setattr(logstats, "_pocketfft_r2c", None)
    frames = rng.standard_normal((7, n_fft)).astype(np.float32)
    expected = scipy.fft.rfft(frames, axis=-1)
    out = np.full((7, n_fft // 2 + 1), np.nan, dtype=np.complex64)
    got = logstats.rfft_rows(frames.copy(), out)
    assert got.dtype == np.complex64 and np.shares_memory(got, out)
    # The same pocketfft transform in float32 either way: equal to float32 rounding of the largest bin.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
