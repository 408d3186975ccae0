"""``bench mismatch`` says how sure it is: a progress line from the start, 95 % intervals on every accuracy and on
gap closed, column definitions, the undertraining line, time per recipe with what dominates, and augmentation IRs
left out by name."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_bench_mismatch import _tiny, setup  # noqa: F401  (a fixture)

pytest.importorskip("torch")

from micmatch.bench.mismatch import run_benchmark, write_results  # noqa: E402
from micmatch.bench.report import COLUMNS, undertrained_line  # noqa: E402
from micmatch.errors import AudioError  # noqa: E402


def test_a_tiny_run_reports_intervals_definitions_times_and_undertraining(setup, tmp_path):  # noqa: F811
    corpus, irs, aug = setup
    lines = []
    result = run_benchmark(corpus, irs, recipes=["baseline", "ideal", "sc"], seeds=[0, 1], config=_tiny(),
                           aug_irs_dir=aug, log=lines.append)
    assert lines[0].startswith("bench mismatch: 3 recipe(s) x 2 seed(s); loading the corpus")
    assert lines[1].startswith("data ready") and lines[2].startswith("recipe 1/3 baseline")
    s = result.summary()
    acc = s["sc"]["unseen_accuracy"]
    assert acc["ci95"] == pytest.approx(12.706 * acc["std"] / np.sqrt(2), rel=1e-3)
    assert "gap_closed_ci95" in s["sc"]
    md = write_results(result, tmp_path / "out", chart=False)["md"].read_text()
    mean = acc["mean"] * 100
    assert f"[{mean - acc['ci95'] * 100:.1f}, {mean + acc['ci95'] * 100:.1f}]" in md
    assert all(c in md for c in COLUMNS) and "95 % t interval" in md
    assert "log-mel n_fft 128, hop 64, 16 mel bands" in md
    assert "| recipe | total | fitting | training per seed | most of the time |" in md
    assert "statistics or corrections" in md or "correcting the waveforms" in md
    # The undertraining line appears exactly when the best reference accuracy is below 90 %.
    assert ("**Undertrained**" in md) == (max(r["reference_accuracy"]["mean"] for r in s.values()) < 0.9)
    low = {name: [{d: {"accuracy": 0.6, "macro_f1": 0.5} for d in r} for r in per_seed]
           for name, per_seed in result.runs.items()}
    md = write_results(replace(result, runs=low), tmp_path / "low", chart=False)["md"].read_text()
    assert "**Undertrained**: the best reference accuracy is 60.0%" in md
    high = {name: [{d: {"accuracy": 0.95, "macro_f1": 0.9} for d in r} for r in per_seed]
            for name, per_seed in result.runs.items()}
    assert undertrained_line(replace(result, runs=high).summary()) is None
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(doc["info"]["recipe_time"]) == {"baseline", "ideal", "sc"}


def test_augmentation_irs_are_left_out_by_name(setup):  # noqa: F811
    corpus, irs, aug = setup
    names = sorted(p.stem for p in aug.glob("*.wav"))
    result = run_benchmark(corpus, irs, recipes=["baseline"], seeds=[0], config=_tiny(epochs=1), aug_irs_dir=aug,
                           exclude_aug_irs=names[:1])
    assert result.plan.to_json()["aug_irs"] == names[1:]
    with pytest.raises(AudioError, match="--exclude-aug-irs nope: no such impulse response"):
        run_benchmark(corpus, irs, recipes=["baseline"], seeds=[0], config=_tiny(epochs=1), aug_irs_dir=aug,
                      exclude_aug_irs=["nope"])


def test_train_converter_leaves_out_named_irs(setup, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from micmatch.cli import main
    from micmatch.device_models import exclude_named

    corpus, irs, _ = setup
    files = sorted(irs.glob("*.wav"))
    assert exclude_named(files, [files[0].stem]) == files[1:]
    with pytest.raises(AudioError, match="leaves no impulse response"):
        exclude_named(files, [f.stem for f in files])
    res = CliRunner().invoke(main, ["train", "converter", "--data", str(corpus), "--irs", str(irs),
                                    "--exclude-irs", "nope", "-o", str(tmp_path / "c.pt")])
    assert res.exit_code == 1 and "--exclude-irs nope: no such impulse response" in res.output
