"""The one path for writing a processed file (micmatch.render) and the shared framing of micmatch.spectral."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from micmatch import audio
from micmatch.errors import AudioError, ParameterError
from micmatch.render import (
    OVERS,
    Processor,
    process_array,
    render_file,
    resolve_overs,
    stream_with_context,
)
from micmatch.spectral import frame_view, hann, overlap_add, overlap_add_processor

SR = 16000


def _moving_sum(width: int) -> Processor:
    """out[t] = sum of in[t - width : t + width + 1]: a processor that needs context on both sides."""

    def func(seg: np.ndarray) -> np.ndarray:
        c = np.cumsum(np.concatenate([np.zeros(seg.shape[:-1] + (1,), np.float32), seg], axis=-1), axis=-1)
        return c[..., 2 * width + 1 :] - c[..., : -2 * width - 1]

    return Processor(func, width, width, 1000)


def test_overs_vocabulary_and_its_alias():
    assert OVERS == ("scale", "float", "clip")
    assert [resolve_overs(o) for o in ("scale", "float", "clip", "reduce")] == ["scale", "float", "clip", "scale"]
    with pytest.raises(ParameterError, match="overs='limit' must be one of"):
        resolve_overs("limit")


@pytest.mark.parametrize("chunk", [1, 7, 999, 1000, 1001, 5000])
def test_streaming_does_not_depend_on_the_chunking(rng, chunk):
    x = rng.standard_normal((2, 4321)).astype(np.float32)
    p = _moving_sum(3)
    whole = process_array(x, p)
    parts = np.concatenate(list(stream_with_context((x[:, i : i + chunk] for i in range(0, x.shape[-1], chunk)),
                                                    p.func, left=p.left, right=p.right, block=p.block)), axis=-1)
    np.testing.assert_array_equal(parts, whole)
    padded = np.pad(x.astype(np.float64), ((0, 0), (3, 3)))
    expected = np.stack([np.convolve(row, np.ones(7), mode="valid") for row in padded])
    np.testing.assert_allclose(whole, expected, atol=1e-4)  # float32 running sums


def test_a_file_keeps_its_format_and_subtype_without_a_processor(tmp_path, rng):
    x = (rng.standard_normal((2, 3000)) * 0.1).astype(np.float32)
    src = tmp_path / "in.flac"
    sf.write(str(src), x.T, SR, subtype="PCM_24")
    out = render_file(src, tmp_path / "out" / "x.flac")
    info = sf.info(str(out.output))
    assert (info.format, info.subtype, info.channels, info.frames) == ("FLAC", "PCM_24", 2, 3000)
    assert out.action == "ok" and out.message == "" and out.input == src.resolve()
    np.testing.assert_array_equal(sf.read(str(out.output), dtype="float32")[0], sf.read(str(src), dtype="float32")[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.flac"]  # no staging file left


def test_overs_policies_on_an_integer_output(tmp_path):
    x = np.zeros(2000, np.float32)
    x[100] = 2.0  # +6 dBFS
    x[200] = -0.5
    src = audio.save(tmp_path / "hot.wav", x, SR, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"hot\.wav: processed peak \+6\.0 dBFS; scaled by -6\.1 dB"):
        scaled = render_file(src, tmp_path / "s.wav", subtype="PCM_16")
    y = sf.read(str(scaled.output))[0]
    assert scaled.action == "scaled" and scaled.peak == pytest.approx(2.0)
    assert np.abs(y).max() == pytest.approx(10 ** (-0.1 / 20), abs=1e-4)
    assert y[200] == pytest.approx(-0.5 * 10 ** (-0.1 / 20) / 2.0, abs=1e-4)
    floated = render_file(src, tmp_path / "f.wav", subtype="PCM_16", overs="float", warn=False)
    assert floated.action == "float" and sf.info(str(floated.output)).subtype == "FLOAT"
    assert sf.read(str(floated.output))[0][100] == pytest.approx(2.0)
    clipped = render_file(src, tmp_path / "c.wav", subtype="PCM_16", overs="clip", warn=False)
    assert clipped.action == "clipped" and clipped.message.endswith("1 samples clipped at full scale")
    assert sf.read(str(clipped.output))[0][100] == pytest.approx(1.0, abs=1e-4)
    reduced = render_file(src, tmp_path / "r.wav", subtype="PCM_16", overs="reduce", warn=False)
    assert reduced.action == "scaled"


def test_an_array_source_with_a_processor(tmp_path, rng):
    x = (rng.standard_normal((1, 5000)) * 0.01).astype(np.float32)
    r = render_file(x, tmp_path / "y.wav", _moving_sum(2), sample_rate=SR, subtype="PCM_24", verb="summed",
                    name="mic.wav")
    assert sf.info(str(r.output)).subtype == "PCM_24" and str(r.input) == "mic.wav"
    np.testing.assert_allclose(sf.read(str(r.output))[0], process_array(x, _moving_sum(2))[0], atol=2e-7)
    assert sf.info(str(render_file(x[0], tmp_path / "z.wav", sample_rate=SR).output)).subtype == "FLOAT"


def test_refusals(tmp_path, rng):
    src = audio.save(tmp_path / "a.wav", (rng.standard_normal(500) * 0.1).astype(np.float32), SR)
    with pytest.raises(AudioError, match="output would overwrite the input"):
        render_file(src, src)
    with pytest.raises(ParameterError, match="sample_rate must be given"):
        render_file(np.zeros(100, np.float32), tmp_path / "b.wav")
    with pytest.raises(ParameterError, match="overs='none' must be one of"):
        render_file(src, tmp_path / "c.wav", overs="none")
    assert not (tmp_path / "b.wav").exists() and not (tmp_path / "c.wav").exists()


def test_frame_view_and_overlap_add(rng):
    x = rng.standard_normal(1000)
    frames = frame_view(x, 256, 64)
    np.testing.assert_array_equal(frames, np.lib.stride_tricks.sliding_window_view(x, 256)[::64])
    assert frame_view(x[:100], 256, 64).shape == (0, 256)
    total = 256 + 64 * (frames.shape[0] - 1)
    expected = np.zeros(total)
    for k, f in enumerate(frames):
        expected[k * 64 : k * 64 + 256] += f
    np.testing.assert_allclose(overlap_add(np.array(frames), 64, total), expected, atol=1e-12)
    np.testing.assert_allclose(overlap_add(np.array(frames), 64, total + 3)[:total], expected, atol=1e-12)


def test_overlap_add_processor_reconstructs_at_unity(rng):
    n, hop = 256, 64
    window = hann(n).astype(np.float32)
    synthesis = window / np.float32(np.sum(window * window) / hop)
    func = overlap_add_processor(lambda frames: frames * window, n, hop, synthesis)
    length = n + 40 * hop  # a whole number of hops, as the streaming engine's segments are
    x = rng.standard_normal((2, length)).astype(np.float32)
    y = func(x)
    assert y.shape == (2, length - 2 * (n - hop))
    np.testing.assert_allclose(y, x[:, n - hop : length - (n - hop)], atol=1e-5)
    with pytest.raises(ParameterError, match="hop_length=100 must divide frame_length=256"):
        overlap_add_processor(lambda f: f, n, 100, synthesis)
