"""The torch twins agree with the numpy functions, batch by batch, on CPU and (when present) CUDA.

Tolerances: float64 comparisons on CPU follow the same formulas in another library, so they agree to about 1e-9
(FFT and summation order differ); float32 runs (and every CUDA run) are compared to float64 numpy with a
tolerance scaled by the values' magnitude (about 1e-4 relative, float32 rounding through FFTs and logs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import pink

torch = pytest.importorskip("torch")

from micmatch import augment as A  # noqa: E402
from micmatch import features as F  # noqa: E402
from micmatch.audio import save  # noqa: E402
from micmatch.errors import UnknownDeviceError  # noqa: E402
from micmatch.learn import transforms as T  # noqa: E402

CFG = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def _dtype(device):
    """float64 on CPU (tight comparisons), float32 on GPUs (the type they are used with)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def _tol(device, scale=1.0):
    return {"atol": 1e-9 * scale, "rtol": 1e-9} if device.type == "cpu" else {"atol": 2e-4 * scale, "rtol": 1e-4}


def _t(x, device):
    """Tensors (and modules, with ``.to(device, _dtype(device))``) in the dtype of the device's comparison."""
    return torch.as_tensor(np.asarray(x), dtype=_dtype(device), device=device)


def _np(t):
    return t.detach().cpu().double().numpy()


def _audio(rng, n=3, seconds=0.5):
    return np.stack([pink(rng, 16000, seconds) for _ in range(n)])


def _features(rng, shape=(3, 40, 30)):
    return rng.normal(-40.0, 8.0, size=shape) + rng.normal(0.0, 5.0, size=shape[:-1] + (1,))


def _check_batch_consistency(module, batch, *args, **tol):
    """Item i of the batched output equals the module applied to item i alone."""
    whole = module(batch, *args)
    for i in range(batch.shape[0]):
        sub_args = [a[i : i + 1] for a in args]
        np.testing.assert_allclose(_np(module(batch[i : i + 1], *sub_args))[0], _np(whole[i]), **tol)


# ---------------------------------------------------------------------------------------------------------------
# Front end


def test_logmel_matches_numpy(rng, device):
    audio = _audio(rng)
    module = T.LogMel(CFG).to(device, _dtype(device))
    out = module(_t(audio, device))
    ref = F.log_mel(audio, 16000, config=CFG)
    assert out.shape == ref.shape == (3, 40, 63)
    np.testing.assert_allclose(_np(out), ref, **_tol(device, scale=1e3 if device.type == "cuda" else 1.0))
    _check_batch_consistency(module, _t(audio, device), **_tol(device, scale=1e3))


def test_logmel_matches_librosa(rng):
    librosa = pytest.importorskip("librosa")
    audio = _audio(rng)
    lib = librosa.power_to_db(librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, hop_length=128, n_mels=40, pad_mode="constant", dtype=np.float64),
        amin=1e-10, top_db=None)
    np.testing.assert_allclose(_np(T.LogMel(CFG).double()(torch.from_numpy(audio))), lib, atol=1e-9)


def test_logmel_magnitude_and_channels(rng):
    cfg = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=32, power=1.0, fmin=50.0)
    audio = _audio(rng, 2).reshape(2, 1, -1).repeat(2, axis=1)
    out = T.LogMel(cfg).double()(torch.from_numpy(audio))
    assert out.shape == (2, 2, 32, 1 + audio.shape[-1] // 160)
    np.testing.assert_allclose(out.numpy(), F.log_mel(audio, 16000, config=cfg), atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Normalizations


def test_simple_normalizations_match_numpy(rng, device):
    x = _features(rng)
    xt = _t(x, device)
    tol = _tol(device, scale=100)
    cases = [
        (T.SpectrogramMeanSubtraction(), F.spectrogram_mean_subtraction(x)),
        (T.CepstralMeanSubtraction(40, 13), F.cepstral_mean_subtraction(x, n_ceps=13)),
        (T.MedianFilterResidual((7, 21)), F.median_filter_residual(x)),
        (T.Rasta(0.98), F.rasta(x, pole=0.98)),
        (T.BandOffset(np.linspace(-6, 6, 40)), F.apply_band_offset(x, np.linspace(-6, 6, 40))),
    ]
    for module, ref in cases:
        module = module.to(device, _dtype(device))
        np.testing.assert_allclose(_np(module(xt)), ref, **tol, err_msg=type(module).__name__)
        _check_batch_consistency(module, xt, **tol)


@pytest.mark.parametrize("preset", sorted(F.PCEN_PRESETS))
def test_pcen_matches_numpy(rng, device, preset):
    mel = F.mel_spectrogram(_audio(rng), 16000, config=CFG) * 2.0**31
    module = T.PCEN.preset(preset, 16000, hop_length=128, input_scale=1.0).to(device)
    out = module(_t(mel, device))
    ref = F.pcen(mel, 16000, hop_length=128, **F.PCEN_PRESETS[preset])
    np.testing.assert_allclose(_np(out), ref, **_tol(device, scale=10))
    _check_batch_consistency(module, _t(mel, device), **_tol(device, scale=10))


def test_fitted_normalizers_match_numpy(rng, device):
    train = _features(rng, (4, 40, 30))
    g = F.GlobalNormalizer("gmsvn").fit(train, config=CFG)
    module = T.GlobalNormalize(g).to(device, _dtype(device))
    np.testing.assert_allclose(_np(module(_t(train, device))), g.transform(train, config=CFG), **_tol(device, 10))
    names = ["a", "b", "a", "c"]
    p = F.PerDeviceStandardizer().fit(train, names, config=CFG)
    module = T.PerDeviceStandardize(p).to(device, _dtype(device))
    idx = module.index(names)
    out = module(_t(train, device), idx)
    np.testing.assert_allclose(_np(out), p.transform(train, names, config=CFG), **_tol(device, 10))
    _check_batch_consistency(module, _t(train, device), idx, **_tol(device, 10))
    with pytest.raises(UnknownDeviceError, match="device 'z' was not in the fitting set"):
        module.index(["a", "z"])


def test_normalization_module_errors():
    with pytest.raises(F.FeatureError, match="=4 must be a positive odd integer"):
        T.MedianFilterResidual((4, 21))
    with pytest.raises(F.FeatureError, match="pole=1.2"):
        T.Rasta(1.2)
    with pytest.raises(F.FeatureError, match="n_frames=3"):
        T.Rasta()(torch.zeros(1, 4, 3))
    with pytest.raises(F.FeatureError, match="preset 'c' unknown"):
        T.PCEN.preset("c", 16000)
    with pytest.raises(F.FeatureError, match="time_constant=0"):
        T.PCEN(16000, time_constant=0)


# ---------------------------------------------------------------------------------------------------------------
# Augmentations


def test_mixup_matches_numpy(rng, device):
    x = _features(rng, (4, 40, 10))
    params = A.draw_mixup(np.random.default_rng(1), 4)
    for domain in ("log", "linear"):
        module = T.Mixup(0.4, domain=domain)
        np.testing.assert_allclose(_np(module(_t(x, device), params)), A.apply_mixup(x, params, domain=domain),
                                   **_tol(device, 100))
    labels = np.array([0, 2, 1, 1])
    np.testing.assert_allclose(_np(T.Mixup.mix_labels(torch.tensor(labels, device=device), params, n_classes=3)),
                               A.mix_labels(labels, params, n_classes=3), atol=1e-6)
    with pytest.raises(A.AugmentError, match="pass n_classes"):
        T.Mixup.mix_labels(torch.tensor(labels), params)
    with pytest.raises(A.AugmentError, match="domain='dB'"):
        T.Mixup(domain="dB")


def test_feature_augmentations_match_numpy(rng, device):
    x = _features(rng, (3, 2, 40, 10))
    xt = _t(x, device)
    g = torch.Generator().manual_seed(5)
    synth = T.SyntheticResponse(CFG, domain="features")
    out = synth(xt, generator=g)
    np.testing.assert_allclose(
        _np(out), A.apply_synthetic_response_features(x, synth.last_params, config=CFG), **_tol(device, 100))
    fa = T.FilterAugment(mode="linear")
    out = fa(xt, generator=g)
    np.testing.assert_allclose(_np(out), A.apply_filter_augment(x, fa.last_params), **_tol(device, 100))
    ms = T.FreqMixStyle(p=1.0)
    out = ms(xt, generator=g)
    assert ms.last_params["apply"]
    np.testing.assert_allclose(_np(out), A.apply_freq_mixstyle(x, ms.last_params), **_tol(device, 100))
    # The same torch seed draws the same parameters, which replay identically through JSON.
    again = T.FilterAugment(mode="linear")
    again(xt, generator=torch.Generator().manual_seed(5).manual_seed(5))
    replay = json.loads(json.dumps(fa.last_params))
    assert torch.equal(fa(xt, replay), fa(xt, fa.last_params))


def test_waveform_augmentations_match_numpy(rng, device, tmp_path):
    audio = _audio(rng, 3, 0.4)
    at = _t(audio, device)
    params = A.draw_synthetic_response(np.random.default_rng(2), 3)
    wave = T.SyntheticResponse(CFG, domain="waveform")
    np.testing.assert_allclose(_np(wave(at, params)), A.apply_synthetic_response(audio, 16000, params),
                               **_tol(device))
    eq = T.ParametricEQ(16000)
    eq_params = eq.draw(3, generator=np.random.default_rng(3))
    np.testing.assert_allclose(_np(eq(at, eq_params)), A.apply_parametric_eq(audio, 16000, eq_params),
                               **_tol(device))
    with pytest.raises(A.AugmentError, match="drawn for sample_rate=16000 but this module runs at 8000"):
        T.ParametricEQ(8000)(at, eq_params)
    h = np.zeros(200)
    h[30:34] = [0.2, 0.9, 0.3, -0.1]
    save(tmp_path / "ir" / "mic.wav", h, 16000, subtype="FLOAT")
    ir = T.DeviceIR(tmp_path / "ir", 16000, p=1.0)
    ir_params = {"ir": [ir.numpy.irs[0], None, ir.numpy.irs[0]]}
    np.testing.assert_allclose(_np(ir(at, ir_params)), A.apply_device_ir(audio, 16000, ir_params), **_tol(device))
    drawn = ir.draw(3, generator=torch.Generator().manual_seed(0))
    assert drawn["ir"] == [ir.numpy.irs[0]] * 3
    with pytest.raises(A.AugmentError, match="domain='time'"):
        T.SyntheticResponse(CFG, domain="time")


def test_augmentations_draw_from_torch_default_generator_without_one():
    x = torch.randn(2, 40, 5, dtype=torch.float64)
    torch.manual_seed(5)
    a = T.FilterAugment()(x)
    torch.manual_seed(5)
    b = T.FilterAugment()(x)
    assert torch.equal(a, b) and not torch.equal(a, x)
    with pytest.raises(A.AugmentError, match="generator=3 must be"):
        T.FilterAugment()(x, generator=3)


def test_torch_generator_seeds_reproduce(rng):
    x = torch.from_numpy(_features(rng, (4, 40, 10)))
    a = T.Mixup()(x, generator=torch.Generator().manual_seed(11))
    b = T.Mixup()(x, generator=torch.Generator().manual_seed(11))
    c = T.Mixup()(x, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_learn_package_names_the_extra_when_torch_is_missing(monkeypatch):
    import importlib
    import sys

    from micmatch.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" raise ImportError
    monkeypatch.delitem(sys.modules, "micmatch.learn", raising=False)
    with pytest.raises(MissingDependencyError, match=r"micmatch\[torch\]"):
        importlib.import_module("micmatch.learn")
    monkeypatch.delitem(sys.modules, "micmatch.learn", raising=False)


def test_unbatched_features_keep_their_shape_and_match_the_batched_item(rng):
    x = torch.from_numpy(_features(rng, (1, 40, 12)))
    for module in (T.SyntheticResponse(CFG, domain="features"), T.FilterAugment(), T.Mixup(), T.FreqMixStyle(p=1.0)):
        single = module(x[0], generator=torch.Generator().manual_seed(2))
        assert single.shape == (40, 12), type(module).__name__
        batched = module(x, module.last_params)
        assert torch.equal(single, batched[0]), type(module).__name__
