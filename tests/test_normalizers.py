"""Learned normalizers: identity at initialisation, recovery of a static EQ, streaming, model files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import pink

from micmatch.errors import ConfigMismatchError, MeasurementError, ModelError
from micmatch.learn import normalizer as N
from micmatch.learn.eq_net import EQNet
from micmatch.learn.normalizer import Normalizer
from micmatch.learn.normalizer_train import _long_term_loss, fit_eq_net, fit_ratio_net
from micmatch.learn.ratio_net import RatioNet
from micmatch.pairs import AlignedPair
from micmatch.simulate import DeviceModel, Section
from micmatch.spectral import frequencies, stft

SR = 8000
EQ = DeviceModel("eq", (Section("peak", 1000.0, 6.0, 1.0), Section("highshelf", 2500.0, -6.0)))


def _identity(context: int = 0) -> Normalizer:
    model = RatioNet(129, context=context, hidden=16)
    return Normalizer("ratio-net", model, SR, {"n_fft": 256, "hop_length": 64}, {})


@pytest.fixture(scope="module")
def eq_model():
    rng = np.random.default_rng(7)
    x = pink(rng, SR, 6.0)
    pair = AlignedPair(x.astype(np.float32), EQ.record(x, SR).astype(np.float32), SR)
    return fit_ratio_net([pair], hidden=64, epochs=25, learning_rate=3e-3, batch_size=128, progress=False,
                           compute="cpu", seed=1)


@pytest.mark.parametrize("context", [0, 2])
def test_untrained_ratio_net_reconstructs_exactly(rng, context):
    x = rng.standard_normal((2, 3 * SR)).astype(np.float32) * 0.1
    y = _identity(context).apply(x, SR)
    # Zero ratio: only float32 rounding of the FFT round trip remains (about 1e-7 of full scale).
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 2e-6


def test_apply_does_not_depend_on_block_size(eq_model, rng, monkeypatch):
    x = pink(rng, SR, 3.3).astype(np.float32)
    whole = eq_model.apply(x, SR)
    monkeypatch.setattr(N, "BLOCK_SAMPLES", 1024)
    np.testing.assert_array_equal(eq_model.apply(x, SR), whole)


def test_trained_ratio_net_recovers_static_eq(eq_model, rng):
    x = pink(rng, SR, 4.0)  # held-out audio
    dev = EQ.record(x, SR)
    out = eq_model.apply(dev.astype(np.float32), SR)
    f = frequencies(SR, 256)

    def lt(a):
        return 10 * np.log10(np.mean(np.abs(stft(a, n_fft=256, hop_length=64)) ** 2, axis=-1))

    applied = lt(out) - lt(dev)
    truth = -EQ.magnitude_db(f, SR)
    band = (f >= 100) & (f <= 3800)
    err = np.sqrt(np.mean((applied - truth)[band] ** 2))
    assert err < 0.5, f"RMS error {err:.2f} dB"
    assert eq_model.summary["validation_lsd_db"] < eq_model.summary["validation_lsd_uncorrected_db"] / 2


def test_save_load_round_trip_is_bit_exact(eq_model, tmp_path, rng):
    path = eq_model.save(tmp_path / "m.mmm")
    back = Normalizer.load(path)
    assert back.method == "ratio-net" and back.sample_rate == SR and back.config == eq_model.config
    for (k, a), (k2, b) in zip(eq_model.model.state_dict().items(), back.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = pink(rng, SR, 1.0).astype(np.float32)
    np.testing.assert_array_equal(back.apply(x, SR), eq_model.apply(x, SR))
    header = json.loads(path.read_bytes()[23 : 23 + int.from_bytes(path.read_bytes()[15:23], "little")])
    assert header["summary"]["validation_lsd_db"] == eq_model.summary["validation_lsd_db"]
    assert header["micmatch_version"] and header["config"]["n_fft"] == 256


def test_truncated_and_tampered_files_are_refused(eq_model, tmp_path):
    data = eq_model.save(tmp_path / "m.mmm").read_bytes()
    (tmp_path / "cut.mmm").write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelError, match="truncated"):
        Normalizer.load(tmp_path / "cut.mmm")
    flipped = bytearray(data)
    flipped[-500] ^= 0xFF
    (tmp_path / "bad.mmm").write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match="checksum"):
        Normalizer.load(tmp_path / "bad.mmm")
    (tmp_path / "other.mmm").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a micmatch model file"):
        Normalizer.load(tmp_path / "other.mmm")


def test_header_edited_to_another_architecture_is_refused(eq_model, tmp_path):
    from micmatch.learn.modelfile import read_model_file, write_model_file

    header, state = read_model_file(eq_model.save(tmp_path / "m.mmm"))
    header["architecture"]["hidden"] = 32
    write_model_file(tmp_path / "edit.mmm", header, state)
    with pytest.raises(ModelError, match="do not fit together"):
        Normalizer.load(tmp_path / "edit.mmm")


def test_wrong_rate_refused_unless_resampling(eq_model, rng):
    x = pink(rng, 16000, 1.0).astype(np.float32)
    with pytest.raises(ConfigMismatchError, match="trained at 8000 Hz"):
        eq_model.apply(x, 16000)
    y = eq_model.apply(x, 16000, resample=True)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_pairs_too_short_to_train(rng):
    x = pink(rng, SR, 1.0).astype(np.float32)
    with pytest.raises(MeasurementError, match="at least 2 s"):
        fit_ratio_net([AlignedPair(x, x.copy(), SR)], progress=False)


def test_eq_net_fft_layers_match_direct_convolutions():
    from torch.nn import functional as F

    torch.manual_seed(0)
    m = EQNet(window=512, channels=4).double()
    x = torch.randn(3, 512, dtype=torch.float64)

    def direct(x, latent):
        x1 = F.conv1d(F.pad(x[:, None], (32, 31)), m.conv_weight[:, None, :])
        x2 = F.softplus(F.conv1d(F.pad(x1.abs(), (64, 63)), m.local_weight[:, None, :], m.local_bias, groups=4))
        z = F.max_pool1d(x2, 16)
        if latent:
            z = F.softplus(m.dense2(F.softplus(m.dense1(z))))
        y = F.conv_transpose1d(x1 * torch.repeat_interleave(z, 16, dim=-1), m.conv_weight[:, None, :])
        return y[:, 0, 32 : 32 + 512]

    for latent in (True, False):
        torch.testing.assert_close(m(x, latent=latent), direct(x, latent), rtol=1e-9, atol=1e-9)


def test_eq_net_trains_saves_and_reloads(rng, tmp_path):
    x = pink(rng, SR, 4.0)
    pair = AlignedPair(x.astype(np.float32), (0.5 * EQ.record(x, SR)).astype(np.float32), SR)
    model = fit_eq_net([pair], window=1024, channels=4, epochs_autoencoder=1, epochs=3, batch_size=16, progress=False,
                         compute="cpu")
    s = model.summary
    assert s["epochs_run"] == 3 and np.isfinite(s["validation_lsd_db"])
    back = Normalizer.load(model.save(tmp_path / "eq.mmm"))
    np.testing.assert_array_equal(back.apply(x.astype(np.float32), SR), model.apply(x.astype(np.float32), SR))


def test_long_term_loss_measures_the_mean_power_difference(rng):
    ref = torch.as_tensor(rng.normal(-40.0, 10.0, (50, 129)), dtype=torch.float32)
    # A uniform gain of 3 dB moves the mean power by exactly 3 dB in every bin (0 Hz left out).
    assert float(_long_term_loss(ref + 3.0, ref)) == pytest.approx(3.0, abs=1e-3)
    assert float(_long_term_loss(ref, ref)) < 2e-3  # sqrt of the 1e-6 guard
    # Frame-wise gains that change the level of single frames but not the mean power cost nothing: swapping two
    # frames between estimate and reference leaves both means equal.
    swapped = ref[torch.randperm(50, generator=torch.Generator().manual_seed(0))]
    assert float(_long_term_loss(swapped, ref)) < 2e-3
