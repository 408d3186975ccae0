"""One vocabulary for remedies: every registry entry is a benchmark recipe and every normalization a
``micmatch features --normalization`` choice; fitted entries (sc, device-std, gms, gmsvn, umc) fit through one
call, and the benchmark fits them through one path."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import pink
from test_cli_features import OPTS, _run, corpus  # noqa: F401  (a fixture)

from micmatch import registry
from micmatch.errors import ParameterError
from micmatch.logmel import LogMelConfig

CFG = LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32)


def test_the_registry_imports_without_torch():
    code = "import sys; import micmatch.registry, micmatch.features; print('torch' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_umc_and_the_other_fitted_entries_are_listed():
    assert "umc" in registry.names("augmentation")
    fitted = {e.name: (e.fit_domain, e.fit_on) for e in registry.entries() if e.fitted}
    assert fitted == {"sc": ("waveform", "per-device"), "device-std": ("log-mel", "per-device"),
                      "gms": ("log-mel", "training"), "gmsvn": ("log-mel", "training"),
                      "umc": ("waveform", "reference")}
    with pytest.raises(ParameterError, match="rasta is not fitted"):
        registry.fit("rasta", [], config=CFG)
    with pytest.raises(ParameterError, match="fit_on='elsewhere' must be one of"):
        registry.Transform("x", "normalization", "x", "log-mel", numpy=abs, torch=abs, fit=abs, fit_on="elsewhere")


def test_sc_fits_per_device_and_corrects_features_and_waveforms(rng):
    """A device 6.02 dB quieter: its band dB vector is +6.02 dB; features and waveforms come back to the
    reference's."""
    clips = [pink(rng, 16000, 0.5) for _ in range(3)]
    waves = np.stack(clips + [0.5 * c for c in clips])
    devices = ["studio"] * 3 + ["phone"] * 3
    state, params = registry.fit("sc", list(waves), config=CFG, devices=devices, reference="studio",
                                 params={"n_fft": 512})
    assert params["n_fft"] == 512 and state.devices == ["phone", "studio"]
    np.testing.assert_allclose(state.band_db("phone", config=CFG), 20 * np.log10(2), atol=1e-6)
    np.testing.assert_array_equal(state.band_db("studio", config=CFG), 0.0)
    from micmatch.features import log_mel

    feats = log_mel(waves, 16000, config=CFG)
    out = registry.get("sc").numpy(feats, config=CFG, state=state, devices=devices, **params)
    np.testing.assert_allclose(out[3:], feats[:3], atol=1e-4)
    fixed = state.correct(waves, [0, 0, 0, 1, 1, 1], 16000, names=["studio", "phone"])
    np.testing.assert_array_equal(fixed[:3], waves[:3])
    assert np.abs(fixed[3:]).max() == pytest.approx(np.abs(waves[:3]).max(), rel=0.05)
    with pytest.raises(ParameterError, match="sc needs reference="):
        registry.fit("sc", list(waves), config=CFG, devices=devices)
    with pytest.raises(ParameterError, match="sc needs devices="):
        registry.fit("sc", list(waves), config=CFG, reference="studio")
    from micmatch.errors import UnknownDeviceError

    with pytest.raises(UnknownDeviceError, match="device 'laptop' has no correction"):
        state.band_db("laptop", config=CFG)


@pytest.fixture(scope="module")
def converter(tmp_path_factory):
    """A converter fitted through the registry on a few clips (one epoch of the smallest preset)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("irs")
    from micmatch.audio import save

    for i, taps in enumerate(([0.2, 0.9, 0.3, -0.1], [0.5, -0.4, 0.2, 0.1])):
        h = np.zeros(160)
        h[20 + i : 24 + i] = taps
        save(folder / f"mic{i}.wav", h, 16000, subtype="FLOAT")
    rng = np.random.default_rng(0)
    waves = np.stack([pink(rng, 16000, 0.5) for _ in range(6)])
    state, params = registry.fit("umc", waves, config=CFG, params={"irs": str(folder), "epochs": 1, "n_clips": 4,
                                                                   "n_devices": 2, "compute": "cpu"})
    return state, params


def test_umc_fits_a_converter_whose_augmentation_replays(converter, rng):
    import torch

    state, params = converter
    entry = registry.get("umc")
    assert isinstance(state, torch.nn.Module) and state.feature_config == CFG
    assert sorted(state.info["simulated_devices"])  # trained on the two impulse responses' chains
    x = rng.normal(-40.0, 8.0, size=(4, CFG.n_mels, 20))
    drawn = entry.draw(np.random.default_rng(1), 4, config=CFG, state=state, **params)
    assert json.loads(json.dumps(drawn)) == drawn
    module = entry.torch(config=CFG, state=state, **params)
    expected = entry.numpy(x, drawn, config=CFG, state=state, **params)
    got = module.double()(torch.from_numpy(x), drawn).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * 40)
    assert module.eval() is module


def test_umc_loads_a_saved_converter(converter, tmp_path):
    state, _ = converter
    path = state.save(tmp_path / "c.pt")
    back = registry.get("umc").load(path, config=CFG)
    assert back.config == state.config


# ----------------------------------------------------------------------------------------------------------------
# Every entry is a recipe


def _recipe_name(entry) -> str:
    return "baseline" if entry.kind == "front-end" else entry.name


@pytest.mark.parametrize("name", registry.names())
def test_every_registry_entry_is_a_recipe_whose_steps_build(name):
    from micmatch.bench.recipes import STEPS, parse_recipe

    entry = registry.get(name)
    recipe = parse_recipe(_recipe_name(entry))
    if entry.kind == "front-end":
        assert recipe.steps() == []
        return
    assert recipe.steps() == [name]
    step = STEPS[name]
    assert (step.fitted == name) == entry.fitted
    if entry.fitted or name == "dir-aug":
        return  # built once fitted (below) / needs augmentation impulse responses (test_bench_mismatch)
    pytest.importorskip("torch")
    from test_bench_mismatch import SR, _tiny

    from micmatch.bench.pipeline import FrontEnd

    data = SimpleNamespace(config=_tiny(), sample_rate=SR, aug_irs=[], plan=None)
    FrontEnd(recipe, data)


def test_the_new_normalization_recipes_run_in_the_benchmark(tmp_path, rng):
    pytest.importorskip("torch")
    from test_bench_mismatch import _corpus, _irs, _tiny

    from micmatch.bench.mismatch import run_benchmark

    clips, irs = _corpus(tmp_path / "corpus", rng), _irs(tmp_path / "irs", rng)
    recipes = ["gms", "gmsvn", "pcen-a", "pcen-b+device-std+gms"]
    result = run_benchmark(clips, irs, recipes=recipes, seeds=[0], config=_tiny(epochs=1))
    assert set(result.runs) == set(recipes)
    for runs in result.runs.values():
        assert all(0.0 <= runs[0][d]["accuracy"] <= 1.0 for d in result.plan.names)


def test_the_benchmark_fits_each_state_once_per_data(tmp_path, rng):
    """sc and sc+mixup share the corrections; ideal (another training set) fits its own."""
    pytest.importorskip("torch")
    from test_bench_mismatch import _corpus, _irs, _tiny

    from micmatch.bench.data import prepare_data
    from micmatch.bench.fitting import FittedStates, waveform_states
    from micmatch.bench.plan import plan_devices
    from micmatch.bench.recipes import parse_recipe
    from micmatch.corpus import load_corpus
    from micmatch.simulate import list_irs

    clips, irs = _corpus(tmp_path / "corpus", rng), _irs(tmp_path / "irs", rng)
    plan = plan_devices(list_irs(irs), n_seen=1, n_unseen=2, seed=0)
    data = prepare_data(load_corpus(clips, seed=0), plan, _tiny())
    store = FittedStates()
    a = waveform_states(parse_recipe("sc"), data, store)["sc"]
    b = waveform_states(parse_recipe("sc+mixup"), data, store)["sc"]
    c = waveform_states(parse_recipe("ideal+sc"), data, store)["sc"]
    assert a is b and c is not a and [n for n, _ in store.trained] == ["sc", "sc"]
    assert sorted(a.corrections) == sorted(d.name for d in plan.devices if d.role != "reference")


# ----------------------------------------------------------------------------------------------------------------
# Every normalization is a features choice


@pytest.mark.parametrize("name", registry.names("normalization"))
def test_every_normalization_is_a_features_choice(corpus, tmp_path, name):  # noqa: F811
    args = []
    if name == "sc":
        from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

        rs = ResponseSet(SpectralConfig(sample_rate=16000, n_fft=512, hop_length=128),
                         [DeviceResponse("studio", np.zeros(257), method="builtin"),
                          DeviceResponse("phone", np.full(257, -6.0), method="builtin")])
        rs.save(tmp_path / "r.json")
        args = ["--responses", tmp_path / "r.json", "--reference", "studio"]
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--normalization", name, *args, *OPTS)
    assert result.exit_code == 0, result.output
    with np.load(out) as z:
        assert str(z["normalization"]) == name and np.isfinite(z["features"]).all()


def test_feature_statistics_flags_and_their_old_spellings(corpus, tmp_path):  # noqa: F811
    stats, out = tmp_path / "gms.json", tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--normalization", "gms", "--save-feature-stats", stats, *OPTS)
    assert result.exit_code == 0 and "deprecated" not in result.output and stats.is_file()
    again = tmp_path / "g.npz"
    result = _run(corpus, "-o", again, "--normalization", "gms", "--feature-stats", stats, *OPTS)
    assert result.exit_code == 0, result.output
    with np.load(out) as a, np.load(again) as b:
        np.testing.assert_array_equal(a["features"], b["features"])
    old = tmp_path / "old.npz"
    result = _run(corpus, "-o", old, "--normalization", "gms", "--normalizer", stats, *OPTS)
    assert result.exit_code == 0 and "--normalizer is deprecated" in result.output
    result = _run(corpus, "-o", old, "--normalization", "gms", "--feature-stats", stats, "--normalizer",
                  tmp_path / "f.npz", *OPTS)
    assert result.exit_code == 1 and "--feature-stats and --normalizer disagree" in result.output
    result = _run(corpus, "-o", old, "--feature-stats", stats, *OPTS)
    assert result.exit_code == 1 and "--feature-stats applies to device-std, gms, gmsvn" in result.output
    help_text = CliRunner().invoke(__import__("micmatch.cli", fromlist=["main"]).main, ["features", "--help"]).output
    assert "--feature-stats" in help_text and "--normalizer" not in help_text
