"""Recipes umc (converter trained in the run) and umc:CONVERTER in the mismatch benchmark, on a tiny corpus."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_bench_mismatch import SR, _corpus, _irs, _tiny

from micmatch.bench.mismatch import compose, parse_recipe, run_benchmark
from micmatch.bench.umc import converter_devices
from micmatch.errors import CorpusError
from micmatch.learn.converter_model import ConverterConfig
from micmatch.learn.converter_train import ConverterTrainConfig, train_converter

UMC = dict(umc_epochs=1, umc_clips=24, umc_devices=2)


@pytest.fixture
def setup(tmp_path, rng):
    corpus, irs = _corpus(tmp_path / "corpus", rng), _irs(tmp_path / "irs", rng)
    return corpus, irs, _irs(tmp_path / "aug", rng, n=3, prefix="aug")


def _converter(n_mels: int, *, devices: dict | None = None, seed: int = 0):
    """A tiny converter trained for a few steps on random features (only its settings matter here)."""
    rng = np.random.default_rng(seed)
    feats = {"reference": rng.normal(-40, 10, (8, n_mels, 20)), "dev": rng.normal(-45, 10, (8, n_mels, 20))}
    band = {"reference": np.zeros(n_mels), "dev": rng.normal(0, 3, n_mels)}
    cfg = _tiny()
    fcfg = cfg.logmel(SR) if n_mels == cfg.n_mels else type(cfg.logmel(SR))(sample_rate=SR, n_fft=cfg.n_fft,
                                                                             hop_length=cfg.hop_length, n_mels=n_mels)
    return train_converter(feats, band, config=ConverterConfig(channels=8, n_blocks=1, film_channels=4, film_hidden=8),
                           train=ConverterTrainConfig(epochs=1, batch_size=4, n_frames=8, device="cpu",
                                                      progress=False, discriminator_channels=4),
                           feature_config=fcfg, info={"simulated_devices": devices or {}})


def test_umc_trains_a_converter_on_augmentation_devices_only_and_is_deterministic(setup):
    corpus, irs, aug = setup
    kwargs = dict(recipes=["baseline", "umc", "umc+sc"], seeds=[0], config=_tiny(epochs=1, **UMC), aug_irs_dir=aug)
    first = run_benchmark(corpus, irs, **kwargs)
    assert first.runs == run_benchmark(corpus, irs, **kwargs).runs
    info = first.info["umc_converter"]
    tested = {d.name for d in first.plan.devices if d.path is not None}
    assert info["devices"] and set(info["devices"]) <= {p.stem for p in aug.glob("*.wav")}
    assert not set(info["devices"]) & tested
    assert set(first.runs) == {"baseline", "umc", "umc+sc"}


def test_the_trained_converter_is_saved_and_reusable(setup, tmp_path):
    from micmatch.bench.mismatch import write_results
    from micmatch.learn.converter_model import Converter

    corpus, irs, aug = setup
    cfg = _tiny(epochs=1, umc_norm="none", **UMC)
    result = run_benchmark(corpus, irs, recipes=["umc"], seeds=[0], config=cfg, aug_irs_dir=aug)
    paths = write_results(result, tmp_path / "out", chart=False)
    assert Converter.load(paths["converter"]).config.norm == "none"
    again = run_benchmark(corpus, irs, recipes=[f"umc:{paths['converter']}"], seeds=[0], config=cfg, aug_irs_dir=aug)
    assert again.runs[f"umc:{paths['converter']}"] == result.runs["umc"]  # the same converter, the same draws


def test_umc_with_a_trained_converter_and_its_checks(setup, tmp_path):
    corpus, irs, aug = setup
    good = _converter(_tiny().n_mels).save(tmp_path / "good.conv")
    result = run_benchmark(corpus, irs, recipes=[f"umc:{good}"], seeds=[0], config=_tiny(epochs=1), aug_irs_dir=aug)
    assert set(result.runs) == {f"umc:{good}"} and "umc_converter" not in result.info
    other = _converter(_tiny().n_mels + 4).save(tmp_path / "other.conv")
    with pytest.raises(CorpusError, match="trained on log-mel features .* but the benchmark uses"):
        run_benchmark(corpus, irs, recipes=[f"umc:{other}"], seeds=[0], config=_tiny(epochs=1), aug_irs_dir=aug)
    # Trained on every IR of the folder, so on whichever device the plan draws for the test.
    leaky = _converter(_tiny().n_mels, devices={p.stem: {"ir": str(p)} for p in irs.glob("*.wav")})
    assert {p.stem for p in irs.glob("*.wav")} <= converter_devices(leaky)
    leaky.save(tmp_path / "leaky.conv")
    with pytest.raises(CorpusError, match="trained on test device"):
        run_benchmark(corpus, irs, recipes=[f"umc:{tmp_path / 'leaky.conv'}"], seeds=[0], config=_tiny(epochs=1),
                      aug_irs_dir=aug)


def test_umc_needs_augmentation_irs_and_log_features(setup):
    corpus, irs, _ = setup
    with pytest.raises(CorpusError, match="recipe umc trains a converter on augmentation devices"):
        run_benchmark(corpus, irs, recipes=["umc"], seeds=[0], config=_tiny(epochs=1, **UMC))
    with pytest.raises(CorpusError, match="cannot follow the compression 'pcen'"):
        parse_recipe("pcen+umc")
    with pytest.raises(CorpusError, match="cannot follow the compression 'pcen'"):
        compose(parse_recipe("umc"), parse_recipe("pcen"))
    assert parse_recipe("umc:x.conv").feature_augment == ("umc:x.conv",)
    assert parse_recipe("umc").feature_augment == ("umc",)


def test_feature_augmentation_changes_reference_rows_only_and_not_in_eval(rng):
    from micmatch.bench.pipeline import FrontEnd
    from micmatch.learn.converter_augment import ConverterAugment

    cfg = _tiny(aug_p=1.0)
    data = SimpleNamespace(config=cfg, sample_rate=SR, aug_irs=[], plan=None)
    front = FrontEnd(parse_recipe("baseline"), data)
    conv = _converter(cfg.n_mels)
    torch.nn.init.normal_(conv.output.weight, std=0.1)  # make the conversion visibly different from an offset
    front.feature_aug.append(ConverterAugment(conv, p=1.0, synthetic_fraction=1.0))
    waves = torch.as_tensor(0.1 * rng.standard_normal((6, int(cfg.clip_s * SR))), dtype=torch.float32)
    devices = torch.tensor([0, 1, 0, 2, 1, 0])
    plain = front.eval()(waves, devices)
    out = front.train()(waves, devices, generator=torch.Generator().manual_seed(0))
    changed = (out - plain).abs().amax(dim=(1, 2)) > 1e-3
    assert changed.tolist() == (devices == 0).tolist()
    assert torch.equal(front.eval()(waves, devices), plain)


def test_a_missing_converter_file_is_one_error_before_training(setup, tmp_path):
    from micmatch.errors import ModelError

    corpus, irs, aug = setup
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelError, match=f"{missing}: converter file not found"):
        run_benchmark(corpus, irs, recipes=["baseline", f"umc:{missing}"], seeds=[0], config=_tiny(epochs=1),
                      aug_irs_dir=aug)


def test_command_line_preset_choices_are_the_presets():
    # The choices are spelled out so that --help does not import torch; they must follow PRESETS.
    from micmatch.cli.bench import mismatch
    from micmatch.cli.converter import converter
    from micmatch.learn.converter_train import PRESETS

    for command, option in ((mismatch, "umc_preset"), (converter, "preset")):
        param = next(p for p in command.params if p.name == option)
        assert list(param.type.choices) == list(PRESETS)
