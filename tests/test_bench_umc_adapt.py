"""Recipes umc and umc-synth in the adaptation track: trained on the reference's and the known devices' clips,
never on a test clip; the converter's forms and discriminators on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
from test_bench_mismatch import _tiny, setup  # noqa: F401  (a fixture)

import micmatch.bench.run as bench_run
import micmatch.converter_entry as entry
from micmatch.bench.mismatch import run_benchmark
from micmatch.errors import ParameterError

UMC = dict(umc_epochs=1, umc_clips=24, track="adapt", adapt_clips=8, epochs=1)


@pytest.fixture
def spy(monkeypatch):
    """Records the clips and labels every converter is fitted on, and the benchmark's data."""
    seen: dict = {"fits": []}
    fit, prepare = entry.fit_converter, bench_run.prepare_data

    def fit_spy(waves, paths, **kwargs):
        seen["fits"].append((np.array(waves, copy=True), list(kwargs.get("devices") or []), kwargs))
        return fit(waves, paths, **kwargs)

    def prepare_spy(*args, **kwargs):
        seen["data"] = prepare(*args, **kwargs)
        return seen["data"]

    monkeypatch.setattr(entry, "fit_converter", fit_spy)
    monkeypatch.setattr(bench_run, "prepare_data", prepare_spy)
    return seen


def test_adapt_converter_trains_on_known_devices_and_never_on_a_test_clip(setup, spy):  # noqa: F811
    corpus, irs, _ = setup
    result = run_benchmark(corpus, irs, recipes=["baseline", "umc", "umc-synth"], seeds=[0],
                           config=_tiny(**UMC))
    data = spy["data"]
    assert len(spy["fits"]) == 1, "umc and umc-synth share one converter"
    waves, labels, kwargs = spy["fits"][0]
    unseen = [d.name for d in data.plan.role("unseen")]
    assert kwargs["known"] and set(labels) == {data.plan.reference.name, *unseen}
    assert labels.count(unseen[0]) == 8  # its adaptation clips
    # No training clip of the converter is a test clip, clean or as any device recorded it (exact rows: the
    # recordings are cached and deterministic, so a leak would match bit for bit).
    tests = [data.test_waves] + [data.test_set(i) for i in range(len(data.plan.names))]
    test_rows = {row.tobytes() for t in tests for row in np.asarray(t, dtype=waves.dtype)}
    assert not any(row.tobytes() in test_rows for row in waves), "a test clip leaked into the converter's training"
    info = result.info["umc_converter"]
    assert info["form"] == "stochastic" and set(info["devices"]) == set(unseen)
    assert set(result.runs) == {"baseline", "umc", "umc-synth"}


def test_leak_check_catches_a_leak(setup, spy, monkeypatch):  # noqa: F811
    """The check above fails when the adaptation clips are the test clips (a deliberate leak)."""
    import micmatch.bench.umc as bench_umc

    corpus, irs, _ = setup
    real = bench_umc.fit_data

    def leaky(data, ideal):
        return [(i, (lambda i=i: data.test_set(i)[:8]) if callable(r) else r) for i, r in real(data, ideal)]

    monkeypatch.setattr(bench_umc, "fit_data", leaky)
    run_benchmark(corpus, irs, recipes=["umc"], seeds=[0], config=_tiny(**UMC))
    data, (waves, _, _) = spy["data"], spy["fits"][0]
    test_rows = {row.tobytes() for i in range(len(data.plan.names)) for row in data.test_set(i)}
    assert any(row.tobytes() in test_rows for row in waves)


@pytest.mark.parametrize("form,disc", [("pure", "per-device"), ("offset", "conditional"),
                                       ("stochastic", "conditional")])
def test_umc_forms_and_discriminators_run(setup, form, disc):  # noqa: F811
    corpus, irs, _ = setup
    result = run_benchmark(corpus, irs, recipes=["umc"], seeds=[0],
                           config=_tiny(umc_form=form, umc_discriminator=disc, **UMC))
    info = result.info["umc_converter"]
    assert info["form"] == form and info["discriminator"] == {"per-device": "per-domain"}.get(disc, disc)


def test_umc_generalize_unchanged_and_bad_discriminator_refused(setup):  # noqa: F811
    corpus, irs, aug = setup
    result = run_benchmark(corpus, irs, recipes=["umc"], seeds=[0], aug_irs_dir=aug,
                           config=_tiny(epochs=1, umc_epochs=1, umc_clips=24, umc_devices=2))
    assert result.info["umc_converter"]["form"] == "offset"
    assert "trained_on" not in result.info["umc_converter"]
    with pytest.raises(ParameterError, match="discriminator='both'"):
        entry.fit_converter(np.zeros((2, 100)), [], config=None, preset="cpu-smoke", epochs=1, n_clips=2,
                            n_devices=1, norm=None, seed=0, compute="cpu", progress=False, discriminator="both")


def test_cli_umc_form_and_discriminator(setup, tmp_path):  # noqa: F811
    import json

    from click.testing import CliRunner

    from micmatch.cli import main

    corpus, irs, _ = setup
    args = ["bench", "mismatch", "--data", str(corpus), "--irs", str(irs), "--recipes", "umc", "--seeds", "1",
            "--seen", "1", "--unseen", "2", "--track", "adapt", "--adapt-clips", "8", "--epochs", "1",
            "--umc-epochs", "1", "--n-fft", "128", "--hop-length", "64", "--n-mels", "16", "--compute", "cpu"]
    bad = CliRunner().invoke(main, [*args, "--umc-form", "noisy", "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "noisy" in bad.output
    res = CliRunner().invoke(main, [*args, "--umc-form", "pure", "--umc-discriminator", "per-device",
                                    "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["config"]["umc_form"] == "pure"
    assert doc["info"]["umc_converter"]["form"] == "pure"
    assert doc["info"]["umc_converter"]["discriminator"] == "per-domain"
