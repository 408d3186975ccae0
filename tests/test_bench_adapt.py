"""The adaptation track of the mismatch benchmark: adaptation clips set aside, never test clips, known-aug."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_bench_mismatch import _tiny, setup  # noqa: F401  (a fixture)

from micmatch.bench.data import prepare_data
from micmatch.bench.known import KnownDeviceAugment
from micmatch.bench.mismatch import parse_recipe, plan_devices, run_benchmark, write_results
from micmatch.bench.run import track_info
from micmatch.corpus import load_corpus
from micmatch.errors import CorpusError
from micmatch.simulate import list_irs


def _data(setup, **overrides):  # noqa: F811
    corpus, irs, _ = setup
    config = _tiny(**overrides)
    plan = plan_devices(list_irs(irs), n_seen=config.n_seen, n_unseen=config.n_unseen, seed=config.data_seed)
    return prepare_data(load_corpus(corpus, seed=config.data_seed), plan, config)


def test_adapt_clips_never_include_a_test_clip(setup):  # noqa: F811
    data = _data(setup, track="adapt", adapt_clips=8)
    files = data.files
    assert len(files["adapt"]) == len(set(files["adapt"])) == 8
    assert not set(files["adapt"]) & set(files["test"]), "an adaptation clip is a test clip"
    assert not set(files["adapt"]) & set(files["train"]), "an adaptation clip is also a labelled training clip"
    assert len(files["train"]) == 30 - 8 and data.train_waves.shape[0] == 22
    # By content too: no adaptation clip equals a test clip, and the unseen devices calibrate on exactly them.
    for a in data.adapt_waves:
        assert not np.any(np.all(data.test_waves == a, axis=1))
    unseen = [i for i, d in enumerate(data.plan.devices) if d.role == "unseen"]
    for i in unseen:
        np.testing.assert_array_equal(data.calibration_set(i), data.record(data.adapt_waves, i, "adapt"))


def test_generalize_track_is_unchanged(setup):  # noqa: F811
    data = _data(setup)
    assert data.files["adapt"] == () and data.adapt_waves.shape[0] == 0
    assert data.train_waves.shape[0] == 30 and data.calibration.size == 4


def test_too_small_corpus_fails_in_one_line_before_training(setup, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from micmatch.cli import main

    corpus, irs, _ = setup
    res = CliRunner().invoke(main, ["bench", "mismatch", "--data", str(corpus), "--irs", str(irs), "--quick",
                                    "--recipes", "baseline,sc", "--seeds", "1", "--seen", "1", "--unseen", "1",
                                    "--track", "adapt", "--adapt-clips", "16", "--compute", "cpu",
                                    "-o", str(tmp_path / "out")])
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if "adapt-clips" in line]
    assert len(errors) == 1 and "lower --adapt-clips" in errors[0], res.output
    assert "recipe 1/" not in res.output and "data ready" not in res.output


def test_known_aug_needs_the_adapt_track(setup):  # noqa: F811
    corpus, irs, _ = setup
    with pytest.raises(CorpusError, match="--track adapt"):
        run_benchmark(corpus, irs, recipes=["known-aug"], seeds=[0], config=_tiny())


def test_adapt_track_tiny_run_labels_its_track(setup, tmp_path):  # noqa: F811
    corpus, irs, _ = setup
    config = _tiny(track="adapt", adapt_clips=8, epochs=2)
    result = run_benchmark(corpus, irs, recipes=["baseline", "sc", "device-std", "known-aug"], seeds=[0],
                           config=config)
    assert result.info["track"]["name"] == "adapt" and result.info["track"]["adapt_clips"] == 8
    paths = write_results(result, tmp_path, chart=False)
    doc = json.loads(paths["json"].read_text())
    assert doc["config"]["track"] == "adapt" and doc["info"]["track"]["name"] == "adapt"
    assert "- track: **adapt**" in paths["md"].read_text()
    assert set(result.runs) == {"baseline", "sc", "device-std", "known-aug"}
    # umc trains on the known devices' clips in the adapt track, and the results say so.
    assert "known devices' adaptation clips" in track_info(config, [parse_recipe("umc")])["umc"]
    assert track_info(_tiny(), [parse_recipe("umc")])["name"] == "generalize"


def test_known_device_augment_draws_towards_the_devices():
    devices = {"a": {"shift_db": np.full(4, -6.0), "floor_db": np.full(4, -200.0)},
               "b": {"shift_db": np.zeros(4), "floor_db": np.full(4, -20.0)}}
    x = torch.full((8, 4, 5), -10.0)
    aug = KnownDeviceAugment(devices, p=1.0).train()
    params = {"apply": [True] * 8, "device": [0, 1] * 4, "texture_seed": 3}
    y = aug(x, params)
    torch.testing.assert_close(y[0], x[0] - 6.0)  # a: the shift alone (its floor is far below)
    assert (y[1] > x[1]).all()  # b: its floor at -20 dB adds power
    torch.testing.assert_close(aug(x, params), y)  # replayed from the same parameters
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(aug(x, generator=g1), aug(x, generator=g2))
    torch.testing.assert_close(KnownDeviceAugment(devices, p=0.0).train()(x), x)
    torch.testing.assert_close(aug.eval()(x), x)
