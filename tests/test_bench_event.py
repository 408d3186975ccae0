"""The event-mode benchmark: its scene generator keeps a truth that the recordings agree with, and --quick runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_event  # noqa: E402
import event_scenes  # noqa: E402


def _mono16k(d) -> np.ndarray:
    from micmatch.audio import resample

    return resample(d.audio.astype(np.float64), d.rate, 16000)


def test_scene_truth_is_consistent(data_dir):
    """A tiny dry scene (3 devices, 20 s of music): the recordings lie where the truth says, measured by the
    alignment of each overlapping pair (within 1 ms: the microphone responses' own delays are a fraction of
    that); device 2 never overlaps the reference; the same seed gives the same scene."""
    from micmatch.align import estimate_alignment

    scene = event_scenes.make_scene(5, seconds=20.0, n_devices=3, source="music", data=data_dir, room=False)
    ref, d1, d2 = scene.devices
    assert ref.rate in (44100, 48000) and all(d.rate in event_scenes.RATES for d in scene.devices)
    assert all(abs(d.drift_ppm) <= 100 for d in scene.devices)
    # device 2 starts after the reference stopped: linked only through device 1
    assert d2.start_s > ref.start_s + ref.duration_s
    for a, b in ((ref, d1), (d1, d2)):
        al = estimate_alignment(_mono16k(b), _mono16k(a), 16000)
        # b's local time 0 lies at a's local time (truth on a's clock, a as reference)
        truth_s = b.truth_timeline(a, 0.0)
        assert abs(al.offset_samples / 16000 - truth_s) < 1e-3
    # the reference device's recording of each other device's moments: at the reference's rate, its span
    for d in (d1, d2):
        n = scene.truth[d.name].shape[-1]
        assert abs(n / ref.rate - d.duration_s / (1 + d.drift_ppm * 1e-6)) < 0.01
    again = event_scenes.make_scene(5, seconds=20.0, n_devices=3, source="music", data=data_dir, room=False,
                                    with_truth=False)
    np.testing.assert_array_equal(again.devices[2].audio, d2.audio)
    assert again.truth == {}


def test_quick_run_writes_results(data_dir, tmp_path):
    assert bench_event.main(["--quick", "--data", str(data_dir), "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "event.json").read_text())
    scene = data["room"]["scenes"][0]
    assert "failed" not in scene, scene
    assert len(scene["devices"]) == 3 and scene["rt60_s"] is not None
    assert scene["seams"]["median_frame_lsd_db"]["before"] is not None
    assert "long" not in data
    assert "In a room" in (tmp_path / "event.md").read_text()


def test_missing_data_skips_cleanly(tmp_path, capsys):
    assert bench_event.main(["--quick", "--data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().err
    assert not (tmp_path / "event.json").exists()


def test_scene_needs_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="micirp"):
        event_scenes.make_scene(0, seconds=5.0, n_devices=3, source="music", data=tmp_path, room=False)


def test_scene_parts_off_leaves_the_rest_of_the_scene(data_dir):
    """Chain parts left out are still drawn: same rates, spans and drifts as the full scene; the stripped chains
    hold None for those parts; without a noise floor a device's recording differs from the full one."""
    full = event_scenes.make_scene(5, seconds=20.0, n_devices=3, source="music", data=data_dir, room=False,
                                   with_truth=False)
    bare = event_scenes.make_scene(5, seconds=20.0, n_devices=3, source="music", data=data_dir, room=False,
                                   with_truth=False, parts_off=("noise", "dynamics"))
    for f, b in zip(full.devices, bare.devices):
        assert (f.rate, f.start_s, f.drift_ppm, f.ir) == (b.rate, b.start_s, b.drift_ppm, b.ir)
        assert b.chain["noise"] is None and b.chain["dynamics"] is None
        assert f.chain["noise"] is not None and f.chain["high_pass"] == b.chain["high_pass"]
        assert f.audio.shape == b.audio.shape and not np.array_equal(f.audio, b.audio)
