"""The converter's three forms (pure, offset, stochastic): identity at a zero difference, the noise path, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from micmatch.errors import ConfigMismatchError, ParameterError
from micmatch.learn.converter_augment import ConverterAugment
from micmatch.learn.converter_model import FORMS, Converter, ConverterConfig
from micmatch.learn.converter_train import ConverterTrainConfig, train_converter

N_MELS = 12
SMALL = ConverterConfig(n_mels=N_MELS, channels=8, n_blocks=2, film_channels=4, film_hidden=16)


def _features(seed=0, n=3, frames=40):
    return torch.as_tensor(np.random.default_rng(seed).normal(-50, 15, (n, N_MELS, frames)), dtype=torch.float32)


def _randomized(model: Converter, seed: int = 1) -> Converter:
    """The output layer given random weights, as training would (it starts at zero)."""
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.output.weight, std=0.3)
    return model.eval()


@pytest.mark.parametrize("form", FORMS)
def test_zero_difference_and_no_floor_is_the_identity_at_initialisation(form):
    # The output layer starts at zero, the floor path is skipped without a floor, so the only change is float32
    # rounding of x + 0: tolerance 1e-4 dB (features of about -50 dB carry ~4e-6 dB of float32 resolution).
    model = Converter(SMALL.with_form(form)).eval()
    x = _features()
    y = model(x, torch.zeros(N_MELS), None, generator=torch.Generator().manual_seed(0))
    assert model.config.form == form
    assert torch.max(torch.abs(y - x)) < 1e-4


def test_offset_form_adds_the_difference_and_pure_form_does_not():
    x, d = _features(), torch.linspace(-6, 6, N_MELS)
    offset = Converter(SMALL.with_form("offset")).eval()(x, d)
    pure = Converter(SMALL.with_form("pure")).eval()(x, d)
    assert torch.allclose(offset, x + d[None, :, None], atol=1e-4)
    assert torch.allclose(pure, x, atol=1e-4)


@torch.no_grad()
def test_floor_path_adds_the_floor_in_power_with_texture_within_its_bound():
    model = Converter(SMALL.with_form("stochastic")).eval()
    x = torch.full((2, N_MELS, 200), -120.0)  # silence: only the floor is left
    floor = torch.full((N_MELS,), -60.0)
    y = model(x, torch.zeros(N_MELS), floor, generator=torch.Generator().manual_seed(0))
    # Untrained: correction 0, so the output is the floor times a Gamma(4)/4 fluctuation: mean power = the floor
    # (within 0.3 dB over 2400 draws, whose standard error is ~0.05 dB), and frames differ (texture, not a constant).
    mean_power_db = 10 * torch.log10(torch.mean(10 ** (y / 10)))
    assert abs(float(mean_power_db) + 60.0) < 0.3
    assert float(y.std()) > 1.0
    loud = model(torch.zeros(1, N_MELS, 20), torch.zeros(N_MELS), floor, generator=torch.Generator().manual_seed(0))
    assert torch.max(torch.abs(loud)) < 1e-3  # a 0 dB signal is untouched by a -60 dB floor (+0.00004 dB)


def test_noise_path_changes_the_output_and_a_seed_replays_it():
    model = _randomized(Converter(SMALL.with_form("stochastic")))
    x, d, floor = _features(), torch.linspace(-3, 3, N_MELS), torch.full((N_MELS,), -70.0)
    a = model(x, d, floor, generator=torch.Generator().manual_seed(5))
    b = model(x, d, floor, generator=torch.Generator().manual_seed(5))
    c = model(x, d, floor, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert float(torch.mean(torch.abs(a - c)).detach()) > 0.01
    # Without the floor the noise channels still move the output once the network is trained.
    a0 = model(x, d, None, generator=torch.Generator().manual_seed(5))
    c0 = model(x, d, None, generator=torch.Generator().manual_seed(6))
    assert float(torch.mean(torch.abs(a0 - c0)).detach()) > 0.01
    np.testing.assert_array_equal(model.convert(x.numpy(), d.numpy(), floor.numpy(), seed=3),
                                  model.convert(x.numpy(), d.numpy(), floor.numpy(), seed=3))


def test_stochastic_training_needs_floors_records_them_and_replays_from_its_seed(tmp_path):
    rng = np.random.default_rng(0)
    feats = {"reference": rng.normal(-40, 10, (6, N_MELS, 20)), "dev": rng.normal(-45, 10, (6, N_MELS, 20))}
    band = {"reference": np.zeros(N_MELS), "dev": rng.normal(0, 3, N_MELS)}
    floors = {"reference": np.full(N_MELS, -90.0), "dev": np.full(N_MELS, -60.0)}
    train = ConverterTrainConfig(epochs=1, batch_size=4, n_frames=8, device="cpu", progress=False,
                                 discriminator_channels=4)
    cfg = SMALL.with_form("stochastic")
    with pytest.raises(ParameterError, match="noise floor .* missing for reference, dev"):
        train_converter(feats, band, config=cfg, train=train)
    one = train_converter(feats, band, floors=floors, config=cfg, train=train)
    two = train_converter(feats, band, floors=floors, config=cfg, train=train)
    assert all(torch.equal(p, q) for p, q in zip(one.state_dict().values(), two.state_dict().values()))
    np.testing.assert_array_equal(one.floors["dev"], floors["dev"])
    again = Converter.load(one.save(tmp_path / "c.conv"))
    assert again.config.form == "stochastic" and again.config.noise_channels == cfg.noise_channels
    x = _features().numpy()
    np.testing.assert_array_equal(again.convert(x, band["dev"], floors["dev"], seed=1),
                                  one.convert(x, band["dev"], floors["dev"], seed=1))


def test_augmentation_draws_floors_and_replays():
    model = _randomized(Converter(SMALL.with_form("stochastic")))
    targets = {"a": np.linspace(-5, 5, N_MELS), "b": np.zeros(N_MELS)}
    floors = {"a": np.full(N_MELS, -60.0), "b": np.full(N_MELS, -70.0)}
    aug = ConverterAugment(model, targets=targets, floors=floors, p=1.0, synthetic_fraction=0.0)
    params = aug.draw(3, generator=np.random.default_rng(0))
    assert params["floor"] == params["target"]
    x = _features()
    assert torch.equal(aug(x, params), aug(x, params))
    with pytest.raises(ConfigMismatchError, match="floor of 'a'"):
        ConverterAugment(model, targets=targets, floors={"a": np.zeros(3)})


def test_form_and_noise_settings_are_checked():
    with pytest.raises(ParameterError, match="form='noisy'"):
        SMALL.with_form("noisy")
    with pytest.raises(ParameterError, match="noise_channels"):
        ConverterConfig(noise_channels=-1)
