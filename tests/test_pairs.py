"""Training pairs: alignment of recorded pairs, the held-out split, and the seeded simulation of device pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import pink

from micmatch import pairs as P
from micmatch.errors import CorpusError, MeasurementError, MissingDependencyError

SR = 8000


def test_align_pair_recovers_offset_and_trims_to_overlap(rng):
    ref = pink(rng, SR, 6.0)
    dev = np.concatenate([np.zeros(321), 0.5 * ref, np.zeros(100)])
    pair = P.align_pair(ref, dev, SR)
    assert abs(pair.info["alignment"]["offset_s"] * SR - 321) < 0.05
    assert pair.reference.shape == pair.device.shape
    # The aligned device is the reference scaled by 0.5 (to float32 precision and the fractional-shift error).
    assert np.max(np.abs(pair.device - 0.5 * pair.reference)) < 1e-3


def test_align_pair_refuses_different_sounds(rng):
    with pytest.raises(MeasurementError, match="same sound"):
        P.align_pair(pink(rng, SR, 6.0), pink(rng, SR, 6.0), SR)


def test_align_pair_refuses_short_pairs(rng):
    ref = pink(rng, SR, 1.0)
    with pytest.raises(MeasurementError, match="at least 2 s"):
        P.align_pair(ref, ref.copy(), SR)


def test_split_pair_holds_out_the_end(rng):
    ref = pink(rng, SR, 5.0).astype(np.float32)
    pair = P.AlignedPair(ref, ref.copy(), SR)
    train, val = P.split_pair(pair, validation_fraction=0.2)
    assert train.reference.shape[-1] == 4 * SR and val.reference.shape[-1] == SR
    np.testing.assert_array_equal(np.concatenate([train.reference, val.reference]), ref)


def test_draw_is_seeded_and_json(rng):
    kwargs = {"devices": ["phone", "laptop"], "room": True, "noise": True, "clipping": True}
    a = P.draw_simulation(np.random.default_rng(5), **kwargs)
    b = P.draw_simulation(np.random.default_rng(5), **kwargs)
    assert a == b
    assert json.loads(json.dumps(a)) == a
    size, mic = np.asarray(a["room"]["size_m"]), np.asarray(a["room"]["mic_m"])
    assert np.all(mic > 0) and np.all(mic < size)


def test_simulated_pair_replays_from_logged_params(rng):
    x = pink(rng, SR, 3.0)
    params = P.draw_simulation(np.random.default_rng(1), devices=["phone"], noise=True, clipping=True)
    a = P.simulate_device(x, SR, json.loads(json.dumps(params)))
    b = P.simulate_device(x, SR, params)
    np.testing.assert_array_equal(a, b)
    # The noise is at the drawn SNR below the signal: the residual after removing the noiseless version.
    clean = P.simulate_device(x, SR, {**params, "snr_db": None, "drive_db": None})
    noisy = P.simulate_device(x, SR, {**params, "drive_db": None})
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - params["snr_db"]) < 0.3


def test_room_pair_stays_aligned(rng):
    pytest.importorskip("pyroomacoustics")
    x = pink(rng, SR, 4.0)
    params = P.draw_simulation(np.random.default_rng(2), devices=["studio"], room=True)
    pair = P.simulate_pair(x, SR, params)
    # The direct path is at lag 0: the cross-correlation peaks there.
    c = np.correlate(pair.device[:SR], pair.reference[:SR], mode="full")
    assert abs(int(np.argmax(c)) - (SR - 1)) <= 1


def test_room_without_pyroomacoustics_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)  # makes the import fail as if not installed
    room = {"size_m": [4, 4, 3], "rt60_s": 0.3, "source_m": [1, 1, 1], "mic_m": [2, 2, 1]}
    with pytest.raises(MissingDependencyError, match=r"micmatch\[room\]"):
        P.room_impulse_response(room, SR)


def test_pairs_csv(tmp_path):
    (tmp_path / "pairs.csv").write_text("reference,device\nr1.wav,d1.wav\n")
    assert P.read_pairs_csv(tmp_path / "pairs.csv") == [(tmp_path / "r1.wav", tmp_path / "d1.wav")]
    (tmp_path / "bad.csv").write_text("ref,dev\na,b\n")
    with pytest.raises(CorpusError, match="columns 'reference' and 'device'"):
        P.read_pairs_csv(tmp_path / "bad.csv")
