"""One vocabulary for remedies in the benchmark: every registry entry is a recipe, fitted entries are fitted
through one path, and the compute device is named --compute as in ``micmatch train``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_bench_mismatch import _corpus, _irs

from micmatch.cli import main


@pytest.fixture
def folders(tmp_path, rng):
    return _corpus(tmp_path / "corpus", rng), _irs(tmp_path / "irs", rng)


def _capture(monkeypatch):
    """Replace the benchmark run with one that records the configuration it was given."""
    import micmatch.bench.mismatch as mm

    seen = {}

    def fake_run(data_dir, irs_dir, *, config, **kwargs):
        seen["device"] = config.device
        raise SystemExit(0)

    monkeypatch.setattr(mm, "run_benchmark", fake_run)
    return seen


@pytest.mark.parametrize("flags, device, warned", [
    ([], "auto", False), (["--compute", "cpu"], "cpu", False), (["--device", "cpu"], "cpu", True),
    (["--compute", "cpu", "--device", "cpu"], "cpu", True),
])
def test_compute_names_the_torch_device_and_device_is_a_deprecated_alias(folders, tmp_path, monkeypatch, flags,
                                                                         device, warned):
    seen = _capture(monkeypatch)
    corpus, irs = folders
    res = CliRunner().invoke(main, ["bench", "mismatch", "--data", str(corpus), "--irs", str(irs), "-o",
                                    str(tmp_path / "out"), *flags])
    assert res.exit_code == 0, res.output
    assert seen["device"] == device
    assert ("--device is deprecated" in res.output) == warned


def test_compute_and_an_other_old_device_disagree(folders, tmp_path):
    corpus, irs = folders
    res = CliRunner().invoke(main, ["bench", "mismatch", "--data", str(corpus), "--irs", str(irs), "-o",
                                    str(tmp_path / "out"), "--compute", "cpu", "--device", "cuda"])
    assert res.exit_code == 1 and "--compute cpu and --device cuda disagree" in res.output


def test_device_is_hidden_from_help():
    res = CliRunner().invoke(main, ["bench", "mismatch", "--help"])
    assert "--compute" in res.output and "--device " not in res.output and "--device\n" not in res.output
