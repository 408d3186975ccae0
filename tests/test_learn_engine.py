"""The training engine (compute device, determinism, early stopping, parameter count), model-file kinds, and the
numpy-only modules that left the torch package."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from micmatch.errors import ModelError, ParameterError  # noqa: E402
from micmatch.learn import engine  # noqa: E402
from micmatch.learn.modelfile import read_model_file, write_model_file  # noqa: E402


def test_select_device_has_one_vocabulary():
    assert engine.select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert engine.select_device().type == expected
    with pytest.raises(ParameterError, match="compute='gpu' must be 'auto', 'cpu' or 'cuda'"):
        engine.select_device("gpu")


def test_asking_for_cuda_without_it_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match="compute='cuda' but no CUDA device is available") as info:
        engine.select_device("cuda")
    assert "\n" not in str(info.value)
    assert engine.select_device("auto") == torch.device("cpu")


def test_deterministic_restores_the_previous_setting():
    before = torch.are_deterministic_algorithms_enabled()
    with engine.deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_count_parameters_counts_trainable_ones():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    assert engine.count_parameters(model) == 3 * 4 + 4 + 4 * 2 + 2
    model[0].requires_grad_(False)
    assert engine.count_parameters(model) == 4 * 2 + 2


def _line_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 1, generator=gen)
    y = 3.0 * x - 1.0
    return x, y


def test_fit_supervised_learns_and_keeps_the_best_weights():
    x, y = _line_problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)

    def loss(idx):
        return torch.mean((model(x[idx]) - y[idx]) ** 2)

    def validate():
        with torch.no_grad():
            return float(torch.mean((model(x) - y) ** 2))

    start = validate()
    best, best_epoch, history = engine.fit_supervised(
        model, loss, validate, n=64, batch_size=8, epochs=40, patience=5, learning_rate=0.05,
        generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), best=start, progress=False)
    assert best < 0.01 * start and best == pytest.approx(validate(), abs=1e-6)
    assert 1 <= best_epoch <= len(history) <= 40
    assert min(history) == pytest.approx(best, abs=1e-4)


def test_fit_supervised_stops_early_and_never_leaves_a_worse_model():
    x, y = _line_problem()
    model = torch.nn.Linear(1, 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def validate():  # every epoch scores worse than the starting weights
        return 1.0

    best, best_epoch, history = engine.fit_supervised(
        model, lambda idx: torch.mean((model(x[idx]) - y[idx]) ** 2), validate, n=64, batch_size=8, epochs=50,
        patience=3, learning_rate=0.1, generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
        best=0.5, progress=False)
    assert (best, best_epoch, history) == (0.5, 0, [1.0, 1.0, 1.0])
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_a_model_file_of_another_kind_is_refused(tmp_path):
    path = write_model_file(tmp_path / "m.mmm", {"kind": "micmatch-converter", "x": 1}, {"w": torch.ones(2)})
    header, state = read_model_file(path, kind="micmatch-converter")
    assert header["x"] == 1 and torch.equal(state["w"], torch.ones(2))
    with pytest.raises(ModelError, match="not a normalizer model .kind='micmatch-converter'"):
        read_model_file(path, kind="micmatch-normalizer")
    with pytest.raises(ModelError, match="normalizer file not found"):
        read_model_file(tmp_path / "none.mmm", kind="micmatch-normalizer")


def test_numpy_only_modules_import_without_torch():
    code = textwrap.dedent("""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError(f"{name} is blocked")

        sys.meta_path.insert(0, NoTorch())
        import micmatch.conditioning, micmatch.domains, micmatch.pairs
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
