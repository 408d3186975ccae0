"""Registry factories and module classes share one set of defaults: ``entry.torch(config=cfg)`` builds every
entry (with only the data it cannot default: ``irs=`` for dir-aug, ``state=`` for a fitted entry) and equals its
class built by keyword with the class's own defaults; PCEN refuses dB input with one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import pink
from test_registry_fitted import converter  # noqa: F401  (a fixture)

torch = pytest.importorskip("torch")

from micmatch import registry  # noqa: E402
from micmatch.audio import save  # noqa: E402
from micmatch.errors import FeatureError  # noqa: E402
from micmatch.learn import transforms as T  # noqa: E402
from micmatch.learn.converter_augment import ConverterAugment  # noqa: E402
from micmatch.logmel import LogMelConfig  # noqa: E402

CFG = LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32)
DEVICES = ["a", "b", "a", "b"]


@pytest.fixture(scope="module")
def irs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("default-irs")
    for i in range(2):
        h = np.zeros(64)
        h[4 + i] = 1.0
        h[10 + i] = 0.3
        save(folder / f"mic{i}.wav", h, 16000, subtype="FLOAT")
    return str(folder)


@pytest.fixture(scope="module")
def states(converter):  # noqa: F811
    rng = np.random.default_rng(3)
    waves = [pink(rng, 16000, 0.25) * (1.0 + i) for i in range(4)]
    feats = np.stack([rng.normal(-40.0, 6.0, size=(CFG.n_mels, 20)) for _ in range(4)])
    fitted = {"sc": registry.fit("sc", waves, config=CFG, devices=DEVICES, reference="a")[0]}
    for name in ("device-std", "gms", "gmsvn"):
        fitted[name] = registry.fit(name, feats, config=CFG, devices=DEVICES)[0]
    fitted["umc"] = converter[0]
    return fitted


def _by_class(name: str, data: dict):
    """The class of each entry built by keyword with its defaults (the data passed as the entry gets it)."""
    state = data.get("state")
    return {
        "log-mel": lambda: T.LogMel(CFG), "mel": lambda: T.MelSpectrogram(CFG),
        "sc": lambda: T.PerDeviceStandardize(state.standardizer(config=CFG)),
        "spec-mean-sub": T.SpectrogramMeanSubtraction, "median": T.MedianFilterResidual,
        "cms": lambda: T.CepstralMeanSubtraction(CFG.n_mels), "rasta": T.Rasta,
        "pcen-a": lambda: T.PCEN.preset("a", CFG.sample_rate, CFG.hop_length),
        "pcen-b": lambda: T.PCEN(CFG.sample_rate, hop_length=CFG.hop_length),
        "device-std": lambda: T.PerDeviceStandardize(state), "gms": lambda: T.GlobalNormalize(state),
        "gmsvn": lambda: T.GlobalNormalize(state), "mixup": T.Mixup,
        "dir-aug": lambda: T.DeviceIR(data["irs"], CFG.sample_rate),
        "synth-fr-aug": lambda: T.SyntheticResponse(CFG), "filteraugment": T.FilterAugment,
        "freq-mixstyle": T.FreqMixStyle,
        "umc": lambda: ConverterAugment(state, targets=_targets(data["irs"])),
    }[name]()


def _targets(folder):
    from pathlib import Path

    from micmatch.conditioning import ir_band_response

    return {p.stem: ir_band_response(str(p), config=CFG) for p in sorted(Path(folder).glob("*.wav"))}


def _same(a, b) -> bool:
    """Equal settings: the same class, public attributes and buffers (recursively through sub-modules)."""
    if isinstance(a, torch.nn.Module):
        if type(a) is not type(b) or a.state_dict().keys() != b.state_dict().keys():
            return False
        if not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())):
            return False
        public = [k for k in vars(a) if not k.startswith("_")]
        return all(_same(vars(a)[k], vars(b).get(k)) for k in public)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)):
        return np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


def _data(entry, states, irs) -> dict:
    data = {}
    if entry.fitted:
        data["state"] = states[entry.name]
    if "irs" in entry.params and (entry.name == "dir-aug" or entry.fitted):
        data["irs"] = irs
    return data


@pytest.mark.parametrize("name", registry.names())
def test_every_entry_builds_with_its_defaults_and_equals_its_class(name, states, irs):
    entry = registry.get(name)
    data = _data(entry, states, irs)
    module = entry.torch(config=CFG, **data)
    assert _same(module, _by_class(name, data))
    # An override of one parameter leaves the others at their defaults.
    if "p" in entry.params:
        half = entry.torch(config=CFG, **data, p=0.25)
        assert half.p == 0.25 and _same({k: v for k, v in vars(half).items() if k not in ("p", "numpy")},
                                        {k: v for k, v in vars(module).items() if k not in ("p", "numpy")})


def test_keyword_construction_with_the_registry_defaults():
    fa = registry.get("filteraugment").torch(config=CFG, p=0.5)
    assert _same(fa, T.FilterAugment(p=0.5))
    assert T.FilterAugment(p=0.5).p == 0.5 and T.FilterAugment().n_bands == (3, 5)
    assert T.SyntheticResponse(CFG).domain == registry.get("synth-fr-aug").params["domain"] == "waveform"
    pcen = T.PCEN(16000)
    assert pcen.input_scale == registry.get("pcen-b").params["input_scale"] == 2.0**31
    assert pcen.gain == registry.get("pcen-b").params["gain"]
    with pytest.raises(registry.ParameterError, match="filteraugment: unknown parameter"):
        registry.get("filteraugment").torch(config=CFG, gain=3.0)
    with pytest.raises(registry.ParameterError, match="dir-aug needs irs"):
        registry.get("dir-aug").torch(config=CFG)
    with pytest.raises(registry.ParameterError, match="gms needs state="):
        registry.get("gms").torch(config=CFG)


def test_the_linear_mel_front_end_feeds_pcen_and_log_mel_is_refused(rng):
    x = torch.from_numpy(np.stack([pink(rng, 16000, 0.25) for _ in range(2)]))
    mel = registry.get("mel").torch(config=CFG)
    out = torch.nn.Sequential(mel, registry.get("pcen-b").torch(config=CFG))(x)
    assert out.shape == (2, CFG.n_mels, 1 + x.shape[-1] // CFG.hop_length) and torch.isfinite(out).all()
    np.testing.assert_allclose(mel(x).numpy(), registry.get("mel").numpy(x.numpy(), config=CFG), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(T.LogMel(CFG)(x).numpy(), 10 * np.log10(np.maximum(mel(x).numpy(), CFG.amin)),
                               atol=1e-9)
    for name in ("pcen-a", "pcen-b"):
        chain = torch.nn.Sequential(registry.get("log-mel").torch(config=CFG), registry.get(name).torch(config=CFG))
        with pytest.raises(FeatureError, match=r"takes linear mel energies .* looks like log-mel in dB"):
            chain(x)
        with pytest.raises(FeatureError, match="looks like log-mel in dB"):
            registry.get(name).numpy(registry.get("log-mel").numpy(x.numpy(), config=CFG), config=CFG)


def test_mixup_returns_mixed_targets():
    x = torch.arange(12.0).reshape(3, 2, 2)
    y = torch.tensor([0, 1, 2])
    m = T.Mixup(alpha=1.0)
    params = {"lam": [0.25, 1.0, 0.5], "perm": [1, 0, 2]}
    out, soft = m(x, params, targets=y, n_classes=3)
    np.testing.assert_allclose(soft.numpy(), [[0.25, 0.75, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(out[0].numpy(), 0.25 * x[0].numpy() + 0.75 * x[1].numpy())
    same, hard = m.eval()(x, targets=y, n_classes=3)
    assert same is x and torch.equal(hard, torch.eye(3, dtype=hard.dtype))


def test_fit_takes_tensors_or_a_features_file(tmp_path):
    from micmatch.errors import ConfigMismatchError
    from micmatch.extract import save_features

    rng = np.random.default_rng(5)
    feats = [rng.normal(-40.0, 6.0, size=(CFG.n_mels, 12)) for _ in range(4)]
    expected, _ = registry.fit("device-std", feats, config=CFG, devices=DEVICES)
    from_tensor, _ = registry.fit("device-std", torch.from_numpy(np.stack(feats)), config=CFG, devices=DEVICES)
    # The fixed layout pads the last two clips: the padding is left out of the fit.
    padded = [np.pad(x, ((0, 0), (0, 3 * (i // 2)))) for i, x in enumerate(feats)]
    save_features(tmp_path / "train.npz", [np.pad(x, ((0, 0), (0, 3 - x.shape[1] + 12))) for x in padded],
                  layout="fixed", files=[f"{i}.wav" for i in range(4)], devices=DEVICES, labels=None, config=CFG,
                  normalization="none", settings={}, lengths=[12] * 4)
    from_file, _ = registry.fit("device-std", tmp_path / "train.npz")
    for d in ("a", "b"):
        np.testing.assert_allclose(from_tensor.mean(d), expected.mean(d), rtol=1e-12)
        np.testing.assert_allclose(from_file.mean(d), expected.mean(d), rtol=1e-5)
        np.testing.assert_allclose(from_file.std(d), expected.std(d), rtol=1e-4)
    with pytest.raises(ConfigMismatchError, match="its features have"):
        registry.fit("gms", str(tmp_path / "train.npz"), config=LogMelConfig(sample_rate=16000))
    with pytest.raises(registry.ParameterError, match="sc fits on waveform"):
        registry.fit("sc", str(tmp_path / "train.npz"), reference="a")
    with pytest.raises(registry.ParameterError, match="gms: pass config="):
        registry.fit("gms", feats)


def test_pcen_takes_the_default_hop_for_the_rate():
    cfg = LogMelConfig(sample_rate=8000)
    assert _same(T.PCEN(8000), registry.get("pcen-b").torch(config=cfg))
    assert _same(T.PCEN.preset("a", 8000), registry.get("pcen-a").torch(config=cfg))
