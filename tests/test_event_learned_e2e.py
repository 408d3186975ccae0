"""`event(..., learned=fit_event_devices)` end to end: the real learned residual through the streaming pipeline.

A noisy device (the reference plus its own noise, which no static correction removes) overlaps the reference for
30 s: the residual is trained on it, and the stem must equal the static stem run through the kept fit's ``apply``
on the whole signal (blocks on the fit's frame grid give the samples of one piece)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("torch")

from micmatch.eventmode import event  # noqa: E402
from micmatch.learn import event_residual  # noqa: E402
from test_event import device, source, write  # noqa: E402


def test_event_with_the_learned_residual_end_to_end(tmp_path, monkeypatch):
    x = source(31, 36)
    a = write(tmp_path / "a.wav", device(x, start_s=0, seconds=34))
    noisy = device(x, start_s=2, seconds=34, b=(1.0, -0.6), seed=1)
    noisy = noisy + 0.05 * np.random.default_rng(5).standard_normal(noisy.shape).astype(np.float32)
    b = write(tmp_path / "b.wav", noisy)
    fits = {}

    def fit_and_keep(pairs, sample_rate, progress=None):
        fits.update(event_residual.fit_event_devices(pairs, sample_rate, progress=progress))
        return fits

    monkeypatch.setattr("micmatch.eventstream.BLOCK_S", 1.3)  # many blocks, none a multiple of the hop
    plain = event([a, b], tmp_path / "plain", reference=a, loudness="keep")
    res = event([a, b], tmp_path / "out", reference=a, loudness="keep", learned=fit_and_keep)
    fit = fits["b"]
    summary = json.loads(res.event_json.read_text())["recordings"]["b"]["learned"]
    assert summary["kept"] == fit.kept and summary["figures"] == json.loads(json.dumps(fit.figures))
    assert fit.figures and fit.reason
    got, want_plain = sf.read(str(res.stems["b"]))[0], sf.read(str(plain.stems["b"]))[0]
    assert got.shape == want_plain.shape
    if fit.kept:
        # The static stem through apply() in one piece, compared where the device recorded, a context away from its
        # edges (there the pipeline's fit sees the static correction's own edge, the whole-signal one silence);
        # 24-bit stems. The network runs in float32 on batches of frames whose size differs block by block, which
        # moves a few gains by up to ~1e-4 relative in loud frames (measured 7e-5 at most on this signal, median
        # 3e-8); frames off the network's grid differ by 1e-3 and more.
        want = fit.apply(want_plain.astype(np.float32))
        on = np.flatnonzero(want_plain)
        lo, hi = on[0], on[-1] + 1
        inner = slice(lo + fit.context, hi - fit.context)
        diff = np.abs(got[inner] - want[inner])
        assert np.max(diff) < 3e-4 and np.median(diff) < 1e-6
        assert not np.any(got[:lo]) and not np.any(got[hi:])
    else:
        assert np.max(np.abs(got - want_plain)) < 1e-6
