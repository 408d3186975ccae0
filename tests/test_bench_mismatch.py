"""The device-mismatch benchmark on a tiny synthetic corpus and IR folder (seconds), its errors and its metrics."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micmatch.bench.mismatch import (
    MismatchConfig, Recipe, check_disjoint, compose, load_result, merge_results, parse_recipe, plan_devices,
    run_benchmark, write_results,
)
from micmatch.errors import ConfigMismatchError, CorpusError
from micmatch.metrics import device_gap, gap_closed, macro_f1, per_device_accuracy

SR = 8000


def _corpus(root: Path, rng: np.random.Generator) -> Path:
    """Three classes of noisy tones (300, 900, 2000 Hz), 14 clips each, with a train/test column."""
    (root / "audio").mkdir(parents=True)
    rows = ["filename,label,split,speaker"]
    t = np.arange(int(0.25 * SR)) / SR
    for label, f in enumerate((300.0, 900.0, 2000.0)):
        for k in range(14):
            x = 0.3 * np.sin(2 * np.pi * f * (1 + 0.02 * rng.standard_normal()) * t)
            x = x + 0.05 * rng.standard_normal(t.size)
            name = f"audio/{label}_{k}.wav"
            sf.write(str(root / name), x.astype(np.float32), SR)
            rows.append(f"{name},{label},{'test' if k < 4 else 'train'},s{k % 2}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def _irs(folder: Path, rng: np.random.Generator, n: int = 4, prefix: str = "mic") -> Path:
    """Short impulse responses with different colourations (a decaying noise burst smoothed by k taps)."""
    folder.mkdir(parents=True)
    for k in range(n):
        h = np.zeros(64)
        h[3] = 1.0
        h[4:40] = rng.standard_normal(36) * 0.3 * np.exp(-np.arange(36) / 6)
        h = np.convolve(h, np.ones(k + 1) / (k + 1))[:64]
        sf.write(str(folder / f"{prefix}{k}.wav"), h.astype(np.float32), 16000, subtype="FLOAT")
    return folder


@pytest.fixture
def setup(tmp_path, rng):
    corpus, irs = _corpus(tmp_path / "corpus", rng), _irs(tmp_path / "irs", rng)
    return corpus, irs, _irs(tmp_path / "aug", rng, n=2, prefix="aug")


def _tiny(**overrides) -> MismatchConfig:
    base = dict(n_seen=1, n_unseen=2, seen_fraction=0.2, calibration_clips=4, clip_s=0.25, n_fft=128,
                hop_length=64, n_mels=16, sc_n_fft=128, epochs=3, batch_size=8, device="cpu", progress=False)
    base.update(overrides)
    return MismatchConfig(**base)


def test_plan_devices_seeded_and_named(setup):
    _, irs, aug = setup
    files = sorted(irs.glob("*.wav"))
    a = plan_devices(files, n_seen=1, n_unseen=2, seed=1)
    b = plan_devices(files, n_seen=1, n_unseen=2, seed=1)
    assert a == b
    assert a.reference.name == "original" and a.reference.path is None
    assert len(a.role("seen")) == 1 and len(a.role("unseen")) == 2
    named = plan_devices(files, seen=["mic2"], unseen=["mic0"], reference="mic3", aug_from_rest=True)
    assert named.to_json() == {"reference": "mic3", "seen": ["mic2"], "unseen": ["mic0"], "aug_irs": ["mic1"]}


@pytest.mark.parametrize("kwargs, match", [
    (dict(unseen=["nope"]), "unseen device 'nope' is not among the impulse responses"),
    (dict(seen=["mic0"], unseen=["mic0"]), "a device has two roles"),
    (dict(n_seen=2, n_unseen=3), "5 more devices are needed but only 4"),
    (dict(n_seen=0, n_unseen=0), "at least one seen or unseen device"),
    (dict(n_seen=-1), "n_seen=-1 and n_unseen=6 must be >= 0"),
])
def test_plan_devices_errors(setup, kwargs, match):
    files = sorted(setup[1].glob("*.wav"))
    with pytest.raises(CorpusError, match=match):
        plan_devices(files, **kwargs)


def test_augmentation_irs_must_not_be_test_devices(setup, tmp_path):
    _, irs, _ = setup
    files = sorted(irs.glob("*.wav"))
    plan = plan_devices(files, seen=[], unseen=["mic0", "mic1"])
    # Same name, different folder.
    same_name = tmp_path / "dup" / "mic0.wav"
    same_name.parent.mkdir()
    sf.write(str(same_name), np.r_[1.0, np.zeros(10)].astype(np.float32), SR)
    with pytest.raises(CorpusError, match="has the name of test device 'mic0'"):
        check_disjoint(plan.devices, [same_name])
    # Same content under another name.
    renamed = tmp_path / "dup" / "renamed.wav"
    shutil.copy(files[1], renamed)
    with pytest.raises(CorpusError, match="same content as test device 'mic1'"):
        plan_devices(files, seen=[], unseen=["mic0", "mic1"], aug_irs=[renamed])
    with pytest.raises(CorpusError, match="two impulse responses are named 'mic0'"):
        plan_devices([files[0], same_name])


def test_recipes_compose_and_refuse_unknown():
    r = parse_recipe("sc+mixup+spec-mean-sub")
    assert r.name == "sc+mixup+spec-mean-sub"
    assert r.correct and r.batch_augment == ("mixup",) and r.clip_norms == ("spec-mean-sub",)
    assert parse_recipe("pcen+dir-aug").compress == "pcen"
    with pytest.raises(CorpusError, match="unknown recipe\\(s\\) nope"):
        parse_recipe("baseline+nope")
    with pytest.raises(CorpusError, match="is empty"):
        parse_recipe("+")
    with pytest.raises(CorpusError, match="both replace the log compression"):
        compose(Recipe("a", compress="pcen"), Recipe("b", compress="other"))


def test_recipe_with_a_path_argument_is_one_registry_entry(setup, tmp_path, monkeypatch):
    """A remedy that reads a file (as a trained model would) is one step and one recipe: ``name:PATH``."""
    import torch

    from micmatch.bench import recipes as rc

    class FileGain(torch.nn.Module):
        def __init__(self, path):
            super().__init__()
            self.gain = float(Path(path).read_text())

        def forward(self, x, *, generator=None):
            return x * self.gain

    monkeypatch.setattr(rc, "STEPS", dict(rc.STEPS))
    monkeypatch.setattr(rc, "RECIPES", dict(rc.RECIPES))
    rc.register_step("file-gain", rc.Step("wave_augment", lambda data, arg: FileGain(arg), takes="PATH"))
    rc.register_recipe(Recipe("file-gain", wave_augment=("file-gain",), argument="PATH", description="gain"))
    gain = tmp_path / "gain.txt"
    gain.write_text("0.5")
    r = rc.parse_recipe(f"file-gain:{gain}+mixup")
    assert r.name == f"file-gain:{gain}+mixup" and r.wave_augment == (f"file-gain:{gain}",)
    assert r.batch_augment == ("mixup",)
    with pytest.raises(CorpusError, match="recipe file-gain needs an argument: write file-gain:PATH"):
        rc.parse_recipe("file-gain")
    with pytest.raises(CorpusError, match="recipe sc takes no argument"):
        rc.parse_recipe("sc:x")
    with pytest.raises(CorpusError, match="is taken"):
        rc.register_recipe(Recipe("sc"))
    with pytest.raises(CorpusError, match="argument=None but its steps take PATH"):
        rc.register_recipe(Recipe("other", wave_augment=("file-gain",)))
    with pytest.raises(CorpusError, match="unregistered step"):
        rc.register_recipe(Recipe("other", clip_norms=("nope",)))
    corpus, irs, _ = setup
    result = run_benchmark(corpus, irs, recipes=[f"file-gain:{gain}"], seeds=[0], config=_tiny(epochs=1))
    assert set(result.runs) == {f"file-gain:{gain}"}


@pytest.mark.parametrize("recipe", ["baseline", "pcen", "spec-mean-sub", "cms", "median", "rasta", "pcen+rasta"])
def test_torch_front_end_matches_the_numpy_features(recipe, rng):
    """The torch pipeline computes the features the numpy functions define (float64 in, to rounding)."""
    from types import SimpleNamespace

    import torch

    from micmatch import features as feat
    from micmatch.bench.pipeline import FrontEnd, compute_features

    cfg = _tiny()
    data = SimpleNamespace(config=cfg, sample_rate=SR, aug_irs=[], plan=None)
    r = parse_recipe(recipe)
    waves = 0.1 * rng.standard_normal((5, int(cfg.clip_s * SR)))
    got = compute_features(FrontEnd(r, data), waves, device=torch.device("cpu"), dtype=torch.float64).numpy()
    lm = cfg.logmel(SR)
    if r.compress == "pcen":
        mel = feat.mel_spectrogram(waves, SR, config=lm)
        want = feat.pcen(mel * float(2**31), SR, hop_length=lm.hop_length, **feat.PCEN_PRESETS["b"])
    else:
        want = feat.log_mel(waves, SR, config=lm)
    numpy_norms = {"spec-mean-sub": feat.spectrogram_mean_subtraction, "cms": feat.cepstral_mean_subtraction,
                   "median": feat.median_filter_residual, "rasta": feat.rasta}
    for norm in r.clip_norms:
        want = numpy_norms[norm](want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-6)


def test_every_step_runs_in_the_torch_pipeline_and_replays(setup):
    corpus, irs, aug = setup
    kwargs = dict(recipes=["dir-aug+pcen+filteraugment", "synth-fr-aug+median+freq-mixstyle+device-std",
                           "cms+rasta+spec-mean-sub"], seeds=[0], config=_tiny(epochs=2), aug_irs_dir=aug)
    first = run_benchmark(corpus, irs, **kwargs)
    assert first.runs == run_benchmark(corpus, irs, **kwargs).runs
    for runs in first.runs.values():
        assert all(0.0 <= runs[0][d]["accuracy"] <= 1.0 for d in first.plan.names)


def test_benchmark_runs_is_deterministic_and_writes_results(setup, tmp_path):
    corpus, irs, aug = setup
    kwargs = dict(recipes=["baseline", "ideal", "sc", "device-std+mixup"], seeds=[0, 1],
                  config=_tiny(), aug_irs_dir=aug)
    first = run_benchmark(corpus, irs, **kwargs)
    second = run_benchmark(corpus, irs, **kwargs)
    assert first.runs == second.runs  # same seeds -> the same table
    s = first.summary()
    assert s["baseline"]["gap_closed"] == pytest.approx(0.0) or s["baseline"]["gap_closed"] is None
    for name in kwargs["recipes"]:
        acc = s[name]["unseen_accuracy"]["mean"]
        assert 0.0 <= acc <= 1.0
        assert set(s[name]["devices"]) == set(first.plan.names)
    # The tones are easy: the reference device is learnt above chance (1/3) even in 3 epochs.
    assert s["baseline"]["reference_accuracy"]["mean"] > 0.4
    paths = write_results(first, tmp_path / "out", command="micmatch bench mismatch ...")
    doc = json.loads(paths["json"].read_text())
    assert doc["plan"]["reference"] == "original" and doc["seeds"] == [0, 1]
    assert "| baseline |" in paths["md"].read_text() and paths["png"].stat().st_size > 1000
    # Parts of one run merge; a part scored differently is refused.
    loaded = load_result(paths["json"])
    assert loaded.runs == first.runs
    part = replace(loaded, runs={"baseline": loaded.runs["baseline"], "mixup": loaded.runs["sc"]})
    assert set(merge_results([loaded, part]).runs) == set(loaded.runs) | {"mixup"}
    bad = replace(loaded, runs={"baseline": loaded.runs["sc"]})
    with pytest.raises(CorpusError, match="recipe 'baseline' scored differently"):
        merge_results([loaded, bad])
    with pytest.raises(CorpusError, match="differ in devices, settings or seeds"):
        merge_results([loaded, replace(loaded, seeds=[0])])


def test_benchmark_errors(setup):
    corpus, irs, _ = setup
    with pytest.raises(CorpusError, match="recipe dir-aug needs augmentation impulse responses"):
        run_benchmark(corpus, irs, recipes=["dir-aug"], seeds=[0], config=_tiny())
    with pytest.raises(CorpusError, match="list one twice"):
        run_benchmark(corpus, irs, recipes=["sc", "sc"], seeds=[0], config=_tiny())
    with pytest.raises(CorpusError, match="leaves no training clips"):
        run_benchmark(corpus, irs, recipes=["baseline"], seeds=[0],
                      config=_tiny(n_seen=2, n_unseen=1, seen_fraction=0.6))
    with pytest.raises(CorpusError, match="calibration_clips=0 must be >= 1"):
        run_benchmark(corpus, irs, recipes=["baseline"], seeds=[0], config=_tiny(calibration_clips=0))


def test_cli_quick_smoke(setup, tmp_path):
    from click.testing import CliRunner

    from micmatch.cli import main

    corpus, irs, aug = setup
    out = tmp_path / "cli"
    args = ["bench", "mismatch", "--data", str(corpus), "--irs", str(irs), "--aug-irs", str(aug), "--quick",
            "--recipes", "baseline,ideal,sc", "--seeds", "1", "--epochs", "2", "--seen", "1", "--unseen", "1",
            "--calibration-clips", "4", "--device", "cpu", "-o", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (out / "results.md").is_file() and (out / "accuracy.png").is_file()
    res = CliRunner().invoke(main, args[:-2] + ["--recipes", "", "-o", str(out)])
    assert res.exit_code == 1 and "--recipes is empty" in res.output
    merged = tmp_path / "merged"
    res = CliRunner().invoke(main, ["bench", "merge", str(out / "results.json"), "-o", str(merged)])
    assert res.exit_code == 0, res.output
    assert json.loads((merged / "results.json").read_text())["runs"] == json.loads(
        (out / "results.json").read_text())["runs"]


def test_classification_metrics():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    # Per class F1 = 2TP / (2TP + FP + FN): class 0: 2/(2+1+1) = 0.5; 1: 4/(4+1+0) = 0.8; 2: 2/(2+0+1) = 2/3.
    assert macro_f1(y, p) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A listed class that never occurs counts as F1 0 (as sklearn with labels=...).
    assert macro_f1(y, p, n_classes=4) == pytest.approx((0.5 + 0.8 + 2 / 3) / 4)
    assert per_device_accuracy(y, p, ["a", "b"] * 3) == {"a": 1.0, "b": pytest.approx(1 / 3)}
    assert device_gap({"ref": 0.9, "x": 0.6, "y": 0.8}, "ref") == pytest.approx(0.2)
    assert gap_closed(0.75, 0.6, 0.9) == pytest.approx(0.5)
    assert gap_closed(0.7, 0.7, 0.7) is None
    with pytest.raises(ConfigMismatchError, match="must be equal and 1-D"):
        macro_f1(y, p[:3])
    with pytest.raises(ValueError, match="y_true is empty"):
        macro_f1([], [])
    with pytest.raises(ConfigMismatchError, match="devices.shape=\\(2,\\) must equal"):
        per_device_accuracy(y, p, ["a", "b"])
    with pytest.raises(KeyError, match="reference 'z' is not among"):
        device_gap({"a": 1.0}, "z")
    with pytest.raises(ValueError, match="at least one device besides the reference"):
        device_gap({"a": 1.0}, "a")


def test_devices_record_through_their_drawn_chain_by_default(setup):
    from micmatch.bench.data import prepare_data
    from micmatch.corpus import load_corpus
    from micmatch.simulate import list_irs, record_with_ir

    corpus, irs, _ = setup
    cfg = _tiny()
    plan = plan_devices(list_irs(irs), n_seen=1, n_unseen=2, seed=0)
    data = prepare_data(load_corpus(corpus, seed=0), plan, cfg)
    tested = [d.name for d in plan.devices if d.path is not None]
    assert sorted(data.chains) == sorted(tested)
    assert prepare_data(load_corpus(corpus, seed=0), plan, cfg).chains == data.chains  # drawn from the data seed
    plain = prepare_data(load_corpus(corpus, seed=0), plan, replace(cfg, device_chain=False))
    assert plain.chains == {}
    i = plan.names.index(tested[-1])
    ir_only = record_with_ir(data.test_waves, SR, data.irs[tested[-1]])
    np.testing.assert_allclose(plain.test_set(i), ir_only, atol=1e-6)
    assert np.abs(data.test_set(i) - ir_only).max() > 1e-3  # the chain changes the recording
    # Training and test recordings of one device draw their own noise.
    assert not np.allclose(data.record(data.test_waves[:2], i, "train"), data.record(data.test_waves[:2], i, "test"))
    with pytest.raises(CorpusError, match="set device_chain=False"):
        prepare_data(load_corpus(corpus, seed=0), plan, replace(cfg, noise_floor_db=-60.0))
