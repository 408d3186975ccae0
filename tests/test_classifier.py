"""The seed 001 CNN, the deterministic training loop and safe checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from micmatch import __version__  # noqa: E402
from micmatch.errors import ConfigMismatchError, ModelError, ParameterError  # noqa: E402
from micmatch.learn.classifier import DeviceCNN, load_checkpoint, save_checkpoint  # noqa: E402
from micmatch.learn.classifier_train import TrainConfig, predict, train_classifier  # noqa: E402
from micmatch.learn.engine import count_parameters  # noqa: E402
from micmatch.learn.modelfile import read_model_file, write_model_file  # noqa: E402


def test_architecture_matches_seed_001_table_1():
    m = DeviceCNN(10, 40)
    # Seed 001 reports "about 71k" parameters for 10 classes; the count below follows from Table 1 exactly.
    assert count_parameters(m) == 70538
    convs = [layer for layer in m.features if isinstance(layer, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 32, 64, 64]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert m(torch.zeros(3, 40, 25)).shape == (3, 10)
    with pytest.raises(ParameterError, match="n_classes=1 must be >= 2"):
        DeviceCNN(1, 40)


def _toy(rng, n=96, n_mels=8, n_frames=12):
    """Two classes that differ by the level of the upper bands: learnable in a few epochs."""
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, n_mels, n_frames)).astype(np.float32)
    x[:, n_mels // 2 :, :] += 2.0 * y[:, None, None]
    return x, y


def test_training_learns_and_is_deterministic(rng):
    x, y = _toy(rng)
    cfg = TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, seed=5, device="cpu", progress=False)

    def fit():
        torch.manual_seed(0)
        m = DeviceCNN(2, 8)
        hist = train_classifier(m, x, y, config=cfg)
        return m, hist

    m1, h1 = fit()
    m2, h2 = fit()
    assert h1 == h2
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    acc = np.mean(predict(m1, x, device="cpu").argmax(1) == y)
    assert acc > 0.9
    assert h1[-1] < h1[0]


def test_front_end_runs_per_batch_on_the_inputs_and_mismatch_error(rng):
    x, y = _toy(rng, n=32)
    seen_rows = []

    def front_end(batch, rows, gen):
        # Each batch is the rows it says it is, and draws from the training's generator.
        assert torch.equal(batch, torch.as_tensor(x)[rows])
        seen_rows.append(rows.clone())
        return batch + 0.01 * torch.randn(batch.shape, generator=gen)

    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu", progress=False)
    torch.manual_seed(0)
    h1 = train_classifier(DeviceCNN(2, 8), x, y, config=cfg, front_end=front_end)
    assert sorted(torch.cat(seen_rows).tolist()) == sorted(list(range(32)) * 2)  # every clip once per epoch
    seen_rows.clear()
    torch.manual_seed(0)
    assert train_classifier(DeviceCNN(2, 8), x, y, config=cfg, front_end=front_end) == h1  # replays exactly
    with pytest.raises(ConfigMismatchError, match="inputs have 32 clips but labels 31"):
        train_classifier(DeviceCNN(2, 8), x, y[:31], config=cfg)
    with pytest.raises(ParameterError, match="epochs=0"):
        TrainConfig(epochs=0)


def test_checkpoint_round_trip_with_weights_only(tmp_path, rng):
    m = DeviceCNN(3, 8)
    m.set_normalization(torch.arange(8.0), torch.full((8,), 2.0))
    path = save_checkpoint(tmp_path / "m.pt", m, sample_rate=8000, extra={"classes": ["a", "b", "c"]})
    ck = load_checkpoint(path)
    assert ck.sample_rate == 8000 and ck.extra == {"classes": ["a", "b", "c"]}
    x = rng.standard_normal((4, 8, 10)).astype(np.float32)
    np.testing.assert_array_equal(predict(ck.model, x, device="cpu"), predict(m, x, device="cpu"))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ModelError, match="classifier file not found"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a micmatch model file"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    write_model_file(other, {"kind": "micmatch-classifier", "model_name": "resnet"}, {})
    with pytest.raises(ModelError, match="model_name='resnet' is not one of"):
        load_checkpoint(other)
    converter = tmp_path / "converter.pt"
    write_model_file(converter, {"kind": "micmatch-converter"}, {})
    with pytest.raises(ModelError, match="not a classifier model .kind='micmatch-converter'"):
        load_checkpoint(converter)


def test_checkpoint_with_a_config_or_weights_that_do_not_fit(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", DeviceCNN(3, 8), sample_rate=8000)
    header, state = read_model_file(path)
    wrong_config = tmp_path / "config.pt"
    write_model_file(wrong_config, {**header, "config": {"n_classes": 3, "bands": 8}}, state)
    with pytest.raises(ModelError, match="config or weights do not fit model 'device_cnn' .TypeError"):
        load_checkpoint(wrong_config)
    wrong_weights = tmp_path / "weights.pt"
    write_model_file(wrong_weights, {**header, "config": {"n_classes": 4, "n_mels": 8}}, state)
    with pytest.raises(ModelError, match="config or weights do not fit model 'device_cnn' .RuntimeError"):
        load_checkpoint(wrong_weights)


def _save_in_the_earlier_layout(path, model, *, sample_rate, extra, fmt=1):
    """What save_checkpoint wrote before the model-file format (a torch.save dict)."""
    torch.save({"model_name": model.model_name, "config": dict(model.config),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "sample_rate": sample_rate, "version": "0.9.0", "format": fmt, "extra": extra}, path)


def test_a_checkpoint_of_the_earlier_layout_still_loads(tmp_path, rng):
    m = DeviceCNN(3, 8)
    m.set_normalization(torch.arange(8.0), torch.full((8,), 2.0))
    _save_in_the_earlier_layout(tmp_path / "old.pt", m, sample_rate=16000, extra={"classes": ["a", "b", "c"]})
    ck = load_checkpoint(tmp_path / "old.pt")
    assert (ck.sample_rate, ck.version, ck.extra) == (16000, "0.9.0", {"classes": ["a", "b", "c"]})
    x = rng.standard_normal((4, 8, 10)).astype(np.float32)
    np.testing.assert_array_equal(predict(ck.model, x, device="cpu"), predict(m, x, device="cpu"))
    again = load_checkpoint(save_checkpoint(tmp_path / "new.pt", ck.model, sample_rate=16000, extra=ck.extra))
    assert again.version == __version__
    np.testing.assert_array_equal(predict(again.model, x, device="cpu"), predict(m, x, device="cpu"))
    _save_in_the_earlier_layout(tmp_path / "older.pt", m, sample_rate=16000, extra={}, fmt=0)
    with pytest.raises(ModelError, match="an earlier classifier file this micmatch cannot read; retrain it"):
        load_checkpoint(tmp_path / "older.pt")
