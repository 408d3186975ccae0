"""Every registry entry, parametrized over the registry so a new entry is tested without new code.

For each entry: the numpy function and the torch twin agree; unbatched input keeps its shape; augmentations are
identity in ``.eval()`` and replay exactly from a generator or from logged (JSON) parameters; every module sits in
``nn.Sequential(...).apply(fn)``.

Tolerance of the numpy/torch comparison: both run in float64; they differ only by FFT and summation order, so
they agree to 1e-9 relative to the values' magnitude (PCEN and the log-mel reach |x| ~ 100, hence the scaling).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import pink

torch = pytest.importorskip("torch")

from micmatch import features as F  # noqa: E402
from micmatch import registry  # noqa: E402
from micmatch.audio import save  # noqa: E402
from micmatch.errors import ParameterError  # noqa: E402

CFG = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
DEVICES = ["a", "b", "a"]


@pytest.fixture
def ir_folder(tmp_path):
    for i, taps in enumerate(([0.2, 0.9, 0.3, -0.1], [0.5, -0.4, 0.2, 0.1])):
        h = np.zeros(160)
        h[20 + i : 24 + i] = taps
        save(tmp_path / "irs" / f"mic{i}.wav", h, 16000, subtype="FLOAT")
    return str(tmp_path / "irs")


def _input(entry, rng, what=None):
    """A batch of 3 items of what the entry takes (or ``what``), float64."""
    what = what or entry.input
    if what == "waveform" and entry.params.get("domain", "waveform") == "waveform":
        return np.stack([pink(rng, 16000, 0.25) for _ in range(3)])
    feats = rng.normal(-40.0, 8.0, size=(3, CFG.n_mels, 30)) + rng.normal(0.0, 5.0, size=(3, CFG.n_mels, 1))
    return np.power(10.0, feats / 10.0) if what == "mel" else feats


def _params(entry, ir_folder):
    """Defaults plus the values an entry cannot default (an IR folder)."""
    extra = {"dir-aug": {"irs": ir_folder, "p": 0.7}}
    return entry.parameters(extra.get(entry.name))


def _build(entry, x, params):
    """(numpy function of x, torch module, torch call) for a non-augmentation entry."""
    if entry.fitted:
        items = x if entry.fit_domain == entry.input else _input(entry, np.random.default_rng(5), entry.fit_domain)
        state = entry.fit(list(items), config=CFG, devices=DEVICES, reference=DEVICES[0], **params)
        module = entry.torch(config=CFG, state=state, **params)
        if entry.per_device:
            def call(m, t):
                index = module.index(DEVICES[: t.shape[0]]) if t.dim() == 3 else module.index(DEVICES[:1])[0]
                return m(t, index)
            def numpy_fn(a):
                return entry.numpy(a, config=CFG, state=state, devices=DEVICES[: len(a)], **params)
            return numpy_fn, module, call
        return (lambda a: entry.numpy(a, config=CFG, state=state, **params)), module, lambda m, t: m(t)
    return (lambda a: entry.numpy(a, config=CFG, **params)), entry.torch(config=CFG, **params), lambda m, t: m(t)


def _close(actual, expected):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9 * scale)


PLAIN = [e.name for e in registry.entries() if e.kind != "augmentation"]
# Fitted augmentations (the device converter) hold a trained network: tests/test_registry_fitted.py.
AUGMENTATIONS = [e.name for e in registry.entries("augmentation") if not e.fitted]


@pytest.mark.parametrize("name", PLAIN)
def test_numpy_and_torch_agree_and_unbatched_keeps_shape(name, rng, ir_folder):
    entry = registry.get(name)
    x = _input(entry, rng)
    params = _params(entry, ir_folder)
    numpy_fn, module, call = _build(entry, x, params)
    module = module.double()
    expected = numpy_fn(x)
    out = call(module, torch.from_numpy(x)).numpy()
    _close(out, expected)
    single = call(module, torch.from_numpy(x[0])).numpy()
    assert single.shape == out.shape[1:]
    _close(single, out[0])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_numpy_and_torch_agree_on_the_same_draw(name, rng, ir_folder):
    entry = registry.get(name)
    x = _input(entry, rng)
    params = _params(entry, ir_folder)
    drawn = entry.draw(np.random.default_rng(4), x.shape[0], config=CFG, **params)
    expected = entry.numpy(x, drawn, config=CFG, **params)
    module = entry.torch(config=CFG, **params).double()
    _close(module(torch.from_numpy(x), drawn).numpy(), expected)
    assert not np.array_equal(expected, x) or name in ("freq-mixstyle",)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_shapes_eval_identity_and_replay(name, rng, ir_folder):
    entry = registry.get(name)
    params = _params(entry, ir_folder)
    x = torch.from_numpy(_input(entry, rng))
    module = entry.torch(config=CFG, **params)
    # Unbatched input comes back with its own shape (not a broadcast batch).
    assert module(x[0], generator=torch.Generator().manual_seed(0)).shape == x[0].shape
    # The same generator seed replays; logged JSON parameters replay exactly.
    a = module(x, generator=torch.Generator().manual_seed(7))
    logged = json.loads(json.dumps(module.last_params))
    b = module(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(module(x, logged), a)
    assert a.shape == x.shape
    # torch's default generator is used without one, and torch.manual_seed makes it repeatable.
    torch.manual_seed(3)
    c = module(x)
    torch.manual_seed(3)
    assert torch.equal(module(x), c)
    # Identity in eval mode, whatever the generator.
    module.eval()
    assert torch.equal(module(x, generator=torch.Generator().manual_seed(7)), x)


@pytest.mark.parametrize("name", PLAIN + AUGMENTATIONS)
def test_every_module_composes_in_sequential_apply_and_to(name, rng, ir_folder):
    entry = registry.get(name)
    params = _params(entry, ir_folder)
    if entry.fitted:
        _, module, _ = _build(entry, _input(entry, rng), params)
    else:
        module = entry.torch(config=CFG, **params)
    seen = []
    chain = torch.nn.Sequential(module).apply(lambda m: seen.append(type(m).__name__))
    assert type(module).__name__ in seen and "Sequential" in seen
    chain.to(torch.device("cpu"), torch.float32)


def test_logmel_then_augmentations_in_one_sequential(rng):
    chain = torch.nn.Sequential(registry.get("log-mel").torch(config=CFG),
                                registry.get("filteraugment").torch(config=CFG, **registry.get("filteraugment").params),
                                registry.get("spec-mean-sub").torch(config=CFG))
    chain.apply(lambda m: None)
    x = torch.from_numpy(np.stack([pink(rng, 16000, 0.25) for _ in range(2)]))
    assert chain(x).shape == (2, CFG.n_mels, 1 + x.shape[-1] // CFG.hop_length)
    assert chain(x[0]).shape == (CFG.n_mels, 1 + x.shape[-1] // CFG.hop_length)
    chain.eval()
    expected = F.spectrogram_mean_subtraction(F.log_mel(x.numpy(), 16000, config=CFG))
    _close(chain.double()(x).numpy(), expected)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_stateless_modules_script_and_the_front_end_exports(rng):
    from micmatch.learn import transforms as T

    x = torch.from_numpy(rng.normal(size=(2, 40, 12)))
    for module in (T.SpectrogramMeanSubtraction(), T.BandOffset(np.linspace(-3, 3, 40)),
                   T.CepstralMeanSubtraction(40, 13)):
        scripted = torch.jit.script(module.double())
        assert torch.allclose(scripted(x), module(x))
    logmel = T.LogMel(CFG)
    audio = torch.from_numpy(np.stack([pink(rng, 16000, 0.25) for _ in range(2)])).float()
    exported = torch.export.export(logmel, (audio,)).module()
    assert torch.allclose(exported(audio), logmel(audio))


def test_names_aliases_and_parameters():
    assert registry.names("front-end") == ["log-mel", "mel"]
    assert set(registry.names("normalization")) == {"sc", "spec-mean-sub", "median", "cms", "pcen-a", "pcen-b",
                                                    "rasta", "device-std", "gms", "gmsvn"}
    assert set(AUGMENTATIONS) == {"mixup", "dir-aug", "synth-fr-aug", "filteraugment", "freq-mixstyle"}
    for old, new in registry.ALIASES.items():
        with pytest.warns(FutureWarning, match=f"use '{new}'"):
            assert registry.get(old).name == new
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.get("median").name == "median"
    with pytest.raises(ParameterError, match="unknown normalization 'mixup'"):
        registry.get("mixup", kind="normalization")
    with pytest.raises(ParameterError, match="median: unknown parameter.*sizes; known: size"):
        registry.get("median").parameters({"sizes": [3, 3]})
    with pytest.raises(ParameterError, match="already registered"):
        registry.register(registry.get("median"))
    with pytest.raises(ParameterError, match="sc needs state="):
        registry.get("sc").numpy(np.zeros((40, 5)), config=CFG, state=None, devices=["a"])
    for entry in registry.entries():
        json.dumps(entry.params)  # JSON parameters, no objects
        assert entry.description and "\n" not in entry.description


@pytest.mark.parametrize("name", [n for n in AUGMENTATIONS if "p" in registry.get(n).params])
def test_p_zero_leaves_every_item_unchanged_in_training_mode(name, rng, ir_folder):
    entry = registry.get(name)
    params = {**_params(entry, ir_folder), "p": 0.0}
    x = torch.from_numpy(_input(entry, rng))
    module = entry.torch(config=CFG, **params).train()
    out = module(x, generator=torch.Generator().manual_seed(1))
    # Exact for the feature-domain ones; the zero-phase filter of a flat 0 dB curve rounds at 1e-15.
    torch.testing.assert_close(out, x, rtol=0.0, atol=1e-12)
    params["p"] = 1.5
    with pytest.raises(ParameterError, match="p=1.5 must be a probability"):
        entry.torch(config=CFG, **params)
