"""The README's "Use micmatch in your own training loop" blocks run as written, on a tiny synthetic corpus: 8 kHz
clips of ten tone classes, two impulse responses, and a converter trained for one epoch."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import REPO, pink

torch = pytest.importorskip("torch")

SECTION = "Use micmatch in your own training loop"


def _blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(rf"^## {SECTION}\s*$(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if section is None:
        pytest.fail(f"README.md has no '## {SECTION}' section")
    return re.findall(r"```python\n(.*?)```", section.group(1), flags=re.DOTALL)


def test_the_section_sits_right_after_the_machine_learning_section():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    assert heads[heads.index("For machine learning") + 1] == SECTION


def test_the_training_loop_example_runs(tmp_path, monkeypatch, capsys):
    from micmatch import registry
    from micmatch.audio import save
    from micmatch.features import LogMelConfig

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    sr, n = 8000, 4000
    t = np.arange(n) / sr
    labels = np.arange(20) % 10
    waves = np.stack([0.3 * np.sin(2 * np.pi * (300 + 250 * k) * t) + 0.05 * pink(rng, sr, n / sr)
                      for k in labels]).astype(np.float32)
    for i in range(2):
        h = np.zeros(64)
        h[4 + i], h[9 + 2 * i] = 1.0, 0.4
        save(tmp_path / "irs" / f"mic{i}.wav", h, sr, subtype="FLOAT")
    torch.manual_seed(0)
    state, _ = registry.fit("umc", waves, config=LogMelConfig(sample_rate=sr),
                            params={"irs": "irs", "epochs": 1, "n_clips": 6, "n_devices": 2, "compute": "cpu"})
    state.save("converter.pt")

    namespace = {"__name__": "__readme__", "waves": torch.from_numpy(waves), "labels": torch.from_numpy(labels)}
    blocks = _blocks()
    assert len(blocks) == 3
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md ({SECTION}, block {i + 1})", "exec"), namespace)
    assert 0.0 <= namespace["accuracy"] <= 1.0 and (tmp_path / "gms.json").is_file()
    assert namespace["x"].shape == (20, 40, 1 + n // 128) and torch.isfinite(namespace["x"]).all()
    assert "looks like log-mel in dB" in capsys.readouterr().out
