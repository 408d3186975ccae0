"""One default feature configuration chosen by rate, and ``micmatch features`` files whose classes agree: settings
from the rule or from --feature-stats, --classes-from, --split, a note for clips shorter than a few frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import pink
from test_cli_features import OPTS, _run

from micmatch import extract
from micmatch import features as F
from micmatch.audio import save
from micmatch.bench.data import MismatchConfig
from micmatch.errors import FeatureError
from micmatch.logmel import default_settings


@pytest.mark.parametrize(("rate", "expected"), [
    (8000, (512, 128, 40)), (16000, (1024, 256, 64)), (22050, (1024, 256, 64)), (44100, (2048, 512, 128)),
    (48000, (2048, 512, 128))])
def test_the_rule_and_every_default_follow_it(rate, expected):
    got = default_settings(rate)
    assert (got["n_fft"], got["hop_length"], got["n_mels"]) == expected
    assert got["n_fft"] <= 0.064 * rate < 2 * got["n_fft"]  # the largest power of two within 64 ms
    cfg = F.LogMelConfig(sample_rate=rate)
    assert (cfg.n_fft, cfg.hop_length, cfg.n_mels) == expected
    assert MismatchConfig().logmel(rate) == cfg
    assert MismatchConfig.quick().logmel(rate).n_mels == 32  # explicit settings are kept


def test_explicit_settings_are_kept_and_hop_follows_n_fft():
    assert F.LogMelConfig() == F.LogMelConfig(sample_rate=44100, n_fft=2048, hop_length=512, n_mels=128)
    cfg = F.LogMelConfig(sample_rate=16000, n_fft=512)
    assert (cfg.hop_length, cfg.n_mels) == (128, 64)
    assert F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=512).hop_length == 512
    assert F.LogMelConfig.from_json(cfg.to_json()) == cfg


@pytest.fixture
def digits(tmp_path, rng):
    """Four classes of 8 kHz clips, two devices, and a metadata CSV with a split column."""
    root = tmp_path / "digits"
    rows = ["filename,label,device,split"]
    for k, label in enumerate("0123"):
        for device in ("a", "b"):
            name = f"{label}_{device}.wav"
            save(root / name, pink(rng, 8000, 0.3 + 0.05 * k), 8000, subtype="FLOAT")
            rows.append(f"{name},{label},{device},{'test' if label in '37' or k == 3 else 'train'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_features_take_the_default_for_the_rate(digits, tmp_path):
    out = tmp_path / "f.npz"
    result = _run(digits, "-o", out, "--label-from", f"csv:{digits / 'metadata.csv'}")
    assert result.exit_code == 0, result.output
    assert "8000 Hz, n_fft 512, hop 128, n_mels 40" in result.output
    assert extract.load_features(out).config == F.LogMelConfig(sample_rate=8000)


def test_a_test_set_of_some_classes_gets_the_training_indices(digits, tmp_path):
    csv = f"csv:{digits / 'metadata.csv'}"
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    assert _run(digits, "-o", train, "--label-from", csv, *OPTS).exit_code == 0
    result = _run(digits / "3_a.wav", digits / "1_b.wav", "-o", test, "--label-from", csv,
                  "--classes-from", train, *OPTS)
    assert result.exit_code == 0, result.output
    doc = extract.load_features(test)
    assert doc.classes == ["0", "1", "2", "3"]
    assert dict(zip(doc.labels, doc.label_index.tolist())) == {"3": 3, "1": 1}
    listed = tmp_path / "listed.npz"
    assert _run(digits / "3_a.wav", "-o", listed, "--label-from", csv, "--classes-from", "0,1,2,3",
                *OPTS).exit_code == 0
    assert extract.load_features(listed).label_index.tolist() == [3]
    # A label outside the list is reported, the file left out, the exit code 1.
    result = _run(digits / "3_a.wav", digits / "1_b.wav", "-o", tmp_path / "x.npz", "--label-from", csv,
                  "--classes-from", "0,1", *OPTS)
    assert result.exit_code == 1 and "label '3' is not one of --classes-from's 2 classes" in result.output
    with pytest.raises(FeatureError, match=r"labels \['9'\] are not among classes"):
        extract.save_features(tmp_path / "y.npz", [np.zeros((2, 3))], layout="ragged", files=["x"], devices=["a"],
                              labels=["9"], config=F.LogMelConfig(), normalization="none", settings={},
                              classes=["0"])


def test_split_reads_the_metadata_split_column(digits, tmp_path):
    csv = f"csv:{digits / 'metadata.csv'}"
    out = tmp_path / "test.npz"
    result = _run(digits, "-o", out, "--label-from", csv, "--split", "test", *OPTS)
    assert result.exit_code == 0, result.output
    doc = extract.load_features(out)
    assert sorted(doc.labels) == ["3", "3"] and doc.settings["split"] == "test"
    assert "--split test: 2 file(s) kept, 6 in other splits left out" in result.output
    result = _run(digits, "-o", out, "--split", "test", *OPTS)
    assert result.exit_code == 1 and "--split reads the 'split' column" in result.output


def test_feature_stats_give_their_settings_and_short_clips_get_a_note(digits, tmp_path):
    stats = tmp_path / "gms.json"
    train = tmp_path / "train.npz"
    result = _run(digits, "-o", train, "--normalization", "gms", "--save-feature-stats", stats, *OPTS)
    assert result.exit_code == 0, result.output
    out = tmp_path / "test.npz"
    result = _run(digits / "3_a.wav", "-o", out, "--normalization", "gms", "--feature-stats", stats)
    assert result.exit_code == 0, result.output
    assert extract.load_features(out).config == extract.load_features(train).config
    result = _run(digits / "3_a.wav", "-o", tmp_path / "long.npz", "--n-fft", "4096", "--hop", "2048")
    assert result.exit_code == 0 and "note: 1 clip(s) give fewer than 4 frames" in result.output
    assert json.loads(str(np.load(out)["settings"]))["split"] is None
