"""``micmatch features``: output layout, normalizations, fitted normalizers, bad files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import pink

from micmatch import features as F
from micmatch.audio import save
from micmatch.cli import main
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig


@pytest.fixture
def corpus(tmp_path, rng):
    """Two devices (folders) that recorded the same two clips, 16 kHz; the 'phone' is 6.02 dB quieter."""
    root = tmp_path / "clips"
    clips = [pink(rng, 16000, seconds) for seconds in (0.5, 0.7)]
    for device, gain in (("studio", 1.0), ("phone", 0.5)):
        for i, clip in enumerate(clips):
            save(root / device / f"{i}.wav", clip * gain, 16000, subtype="FLOAT")
    return root


def _run(*args):
    return CliRunner().invoke(main, ["features", *map(str, args)])


OPTS = ["--n-fft", "512", "--hop", "128", "--n-mels", "32"]


def test_features_layout_and_values(corpus, tmp_path):
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, *OPTS)
    assert result.exit_code == 0, result.output
    with np.load(out) as z:  # allow_pickle is False by default: the file holds no objects
        feats, offsets, files, devices = z["features"], z["offsets"], z["files"], z["devices"]
        config = F.LogMelConfig.from_json(json.loads(str(z["config"])))
        assert str(z["normalization"]) == "none"
    assert config == F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32)
    assert list(devices) == ["phone", "phone", "studio", "studio"]
    assert list(np.diff(offsets)) == [63, 88, 63, 88] and feats.shape == (32, offsets[-1])
    from micmatch.audio import load

    audio, _ = load(files[1], dtype="float64")
    np.testing.assert_allclose(feats[:, offsets[1] : offsets[2]], F.log_mel(audio[0], 16000, config=config),
                               atol=1e-3)


@pytest.mark.parametrize("norm", ["spec-mean-sub", "cms", "median", "pcen-a", "rasta", "gmsvn"])
def test_each_normalization_runs_and_matches_the_library(corpus, tmp_path, norm):
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--normalization", norm, "--duration-s", "0.5", *OPTS)
    assert result.exit_code == 0, result.output
    with np.load(out) as z:
        batch = z["features"]
        assert json.loads(str(z["settings"]))["layout"] == "fixed"
    assert batch.shape == (4, 32, 63)
    if norm in ("spec-mean-sub", "cms"):
        np.testing.assert_allclose(batch.mean(axis=-1), 0.0, atol=1e-3)
    elif norm == "gmsvn":
        flat = batch.transpose(1, 0, 2).reshape(32, -1).astype(np.float64)
        np.testing.assert_allclose(flat.mean(axis=1), 0.0, atol=1e-3)
        np.testing.assert_allclose(flat.std(axis=1), 1.0, atol=1e-3)
    elif norm == "pcen-a":
        assert batch.min() >= 0.0
    elif norm == "rasta":
        np.testing.assert_allclose(batch[:, :, :4], 0.0)
    else:
        assert np.abs(np.median(batch, axis=(1, 2))).max() < 3.0


def test_fixed_layout_with_labels_from_a_metadata_csv(corpus, tmp_path):
    (corpus / "metadata.csv").write_text("filename,label\nstudio/0.wav,dog\nstudio/1.wav,cat\nphone/0.wav,dog\n"
                                         "phone/1.wav,cat\n")
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--frames", "80", "--label-from", f"csv:{corpus / 'metadata.csv'}", *OPTS)
    assert result.exit_code == 0, result.output
    from micmatch.audio import load
    from micmatch.extract import load_features

    fs = load_features(out)
    assert fs.layout == "fixed" and fs.features.shape == (4, 32, 80)
    assert fs.labels == ["dog", "cat", "dog", "cat"] and fs.classes == ["cat", "dog"]
    assert list(fs.label_index) == [1, 0, 1, 0]
    # Clip 0 is 0.5 s (63 frames of audio): padded with zeros to 80 frames; clip 1 (0.7 s) is cropped.
    assert list(fs.lengths) == [63, 80, 63, 80]
    audio, _ = load(fs.files[0], dtype="float64")
    padded = np.pad(audio[0], (0, 79 * 128 - audio.shape[-1]))
    np.testing.assert_allclose(fs.features[0], F.log_mel(padded, 16000, config=fs.config), atol=1e-3)
    with np.load(out) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_label_from_dir_and_missing_labels(corpus, tmp_path):
    out = tmp_path / "f.npz"
    assert _run(corpus, "-o", out, "--label-from", "regex:/(\\d)\\.wav$", *OPTS).exit_code == 0
    with np.load(out) as z:
        assert list(z["labels"]) == ["0", "1", "0", "1"] and list(z["classes"]) == ["0", "1"]
    (corpus / "m.csv").write_text("filename,label\n0.wav,dog\n")
    result = _run(corpus, "-o", out, "--label-from", f"csv:{corpus / 'm.csv'}", *OPTS)
    assert result.exit_code == 1 and "1.wav: no label from --label-from" in result.output
    with np.load(out) as z:
        assert len(z["files"]) == 2


@pytest.mark.parametrize(("old", "new"), [("mean", "spec-mean-sub"), ("medfilt", "median"), ("pcen", "pcen-b")])
def test_old_normalization_names_still_work_with_a_deprecation_line(corpus, tmp_path, old, new):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    result = _run(corpus, "-o", a, "--normalization", old, *OPTS)
    assert result.exit_code == 0 and f"--normalization {old} is deprecated" in result.output
    assert f"use --normalization {new}" in result.output
    assert _run(corpus, "-o", b, "--normalization", new, *OPTS).exit_code == 0
    with np.load(a) as za, np.load(b) as zb:
        assert str(za["normalization"]) == new
        np.testing.assert_array_equal(za["features"], zb["features"])


def test_help_lists_every_registered_normalization():
    from micmatch import registry

    text = CliRunner().invoke(main, ["features", "--help"]).output
    text = re.sub(r"-\n\s+", "-", text)  # click wraps long help lines at hyphens too
    for name in registry.names("normalization"):
        assert name in text
    result = _run(".", "-o", "x.npz", "--normalization", "bogus")
    assert result.exit_code == 2 and "'bogus' is not one of none, sc," in result.output


def test_per_device_standardization_removes_the_level_difference(corpus, tmp_path):
    out, saved = tmp_path / "f.npz", tmp_path / "norm.json"
    result = _run(corpus, "-o", out, "--normalization", "device-std", "--save-normalizer", saved, *OPTS)
    assert result.exit_code == 0, result.output
    norm = F.load_feature_stats(saved)
    assert norm.devices == ["phone", "studio"]
    # The phone is 6.02 dB quieter in every band (same clips); float32 audio files limit the precision.
    np.testing.assert_allclose(norm.mean("studio") - norm.mean("phone"), 20 * np.log10(2), atol=1e-3)
    with np.load(out) as z:
        f, o = z["features"], z["offsets"]
    # After per-device standardization the two devices' copies of each clip are identical.
    np.testing.assert_allclose(f[:, o[0] : o[2]], f[:, o[2] : o[4]], atol=1e-3)
    # Re-applying the saved normalizer gives the same features.
    again = tmp_path / "g.npz"
    assert _run(corpus, "-o", again, "--normalization", "device-std", "--normalizer", saved, *OPTS).exit_code == 0
    with np.load(out) as a, np.load(again) as b:
        np.testing.assert_allclose(a["features"], b["features"], atol=1e-5)
    # A normalizer fitted on another configuration is refused.
    result = _run(corpus, "-o", again, "--normalization", "device-std", "--normalizer", saved,
                  "--n-fft", "512", "--hop", "256", "--n-mels", "32")
    assert result.exit_code == 1 and "hop_length=256" in result.output


def test_spectrum_correction_brings_the_phone_to_the_studio(corpus, tmp_path):
    config = SpectralConfig(sample_rate=16000, n_fft=512, hop_length=128)
    rs = ResponseSet(config, [DeviceResponse("studio", np.zeros(257), method="builtin"),
                              DeviceResponse("phone", np.full(257, -20 * np.log10(2)), method="builtin")])
    rs.save(tmp_path / "r.json")
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--responses", tmp_path / "r.json", "--reference", "studio",
                  "--normalization", "gms", *OPTS)
    assert result.exit_code == 0, result.output
    plain = tmp_path / "p.npz"
    assert _run(corpus, "-o", plain, *OPTS).exit_code == 0
    with np.load(out) as c, np.load(plain) as p:
        o = p["offsets"]
        # Corrected minus plain: +6.02 dB on phone frames, 0 on studio frames, up to the one GMS mean shift.
        diff = c["features"].astype(np.float64) - p["features"]
        phone, studio = diff[:, : o[2]].mean(), diff[:, o[2] :].mean()
        assert abs((phone - studio) - 20 * np.log10(2)) < 1e-3


def test_bad_files_are_reported_and_the_rest_written(corpus, tmp_path):
    (corpus / "phone" / "broken.wav").write_bytes(b"RIFF1234WAVEjunk")
    save(corpus / "studio" / "other_rate.wav", np.zeros(4000) + 0.01, 8000, subtype="FLOAT")
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, *OPTS)
    assert result.exit_code == 1
    assert "broken.wav" in result.output and "sample_rate=8000 differs" in result.output
    assert "2 file(s) could not be used" in result.output
    with np.load(out) as z:
        assert len(z["files"]) == 4


def test_option_errors(corpus, tmp_path):
    out = tmp_path / "f.npz"
    result = _run(corpus, "-o", out, "--responses", tmp_path, *OPTS)
    assert result.exit_code != 0
    result = _run(corpus, "-o", out, "--reference", "studio", *OPTS)
    assert result.exit_code == 1 and "--responses and --reference go together" in result.output
    saved = tmp_path / "g.json"
    F.GlobalNormalizer("gms").fit(np.zeros((1, 32, 3)), config={"sample_rate": 16000}).save(saved)
    result = _run(corpus, "-o", out, "--normalizer", saved, *OPTS)
    assert result.exit_code == 1 and "--normalizer applies to" in result.output
    result = _run(corpus, "-o", out, "--normalization", "gmsvn", "--normalizer", saved, *OPTS)
    assert result.exit_code == 1 and "not 'gmsvn'" in result.output
    result = _run(corpus, "-o", out, "--hop", "4096")
    assert result.exit_code == 1 and "hop_length=4096" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(empty, "-o", out)
    assert result.exit_code == 1 and "no audio files found" in result.output
    assert "Example" in CliRunner().invoke(main, ["features", "--help"]).output


def test_no_usable_file_is_an_error(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"not audio")
    result = _run(folder / "a.wav", "-o", tmp_path / "f.npz", "--sample-rate", "16000")
    assert result.exit_code == 1 and "no input file could be turned into features" in result.output
    assert not (tmp_path / "f.npz").exists()


def test_unreadable_inputs_without_a_rate_are_an_error(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not audio")
    result = _run(tmp_path / "a.wav", "-o", tmp_path / "f.npz")
    assert result.exit_code == 1 and "none of the input files can be read" in result.output


def test_sc_alone_is_the_band_offset_and_needs_responses(corpus, tmp_path):
    config = SpectralConfig(sample_rate=16000, n_fft=512, hop_length=128)
    rs = ResponseSet(config, [DeviceResponse("studio", np.zeros(257), method="builtin"),
                              DeviceResponse("phone", np.full(257, -20 * np.log10(2)), method="builtin")])
    rs.save(tmp_path / "r.json")
    result = _run(corpus, "-o", tmp_path / "x.npz", "--normalization", "sc", *OPTS)
    assert result.exit_code == 1 and "--normalization sc needs --responses" in result.output
    sc, plain = tmp_path / "sc.npz", tmp_path / "p.npz"
    assert _run(corpus, "-o", sc, "--normalization", "sc", "--responses", tmp_path / "r.json", "--reference",
                "studio", "--duration-s", "0.5", *OPTS).exit_code == 0
    assert _run(corpus, "-o", plain, "--duration-s", "0.5", *OPTS).exit_code == 0
    with np.load(sc) as a, np.load(plain) as b:
        diff = a["features"].astype(np.float64) - b["features"]
    # Phone clips (first two) gain 6.02 dB in every band; studio clips are unchanged.
    np.testing.assert_allclose(diff[:2], 20 * np.log10(2), atol=1e-3)
    np.testing.assert_allclose(diff[2:], 0.0, atol=1e-6)
