"""The matching pipeline: its old module name, its notes by kind, loudness measured once per signal, one overs
vocabulary."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from conftest import REPO

import micmatch
from micmatch.correct import correction_curve
from micmatch.demo import synth_voice
from micmatch.errors import ParameterError
from micmatch.render import OVERS as OVERS_POLICIES
from micmatch.render import resolve_overs as overs_policy
from micmatch.matchresult import NOTE_KINDS, MatchResult, Note
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

SR = 16000


def _voice(seed: int, seconds: float = 3.0) -> np.ndarray:
    x = synth_voice(int(seconds * SR), SR, np.random.default_rng(seed))
    return (x / np.abs(x).max() * 0.3).astype(np.float32)


def _device(x: np.ndarray, *, gain: float = 0.5) -> np.ndarray:
    sos = scipy.signal.butter(2, [250, 5000], btype="bandpass", fs=SR, output="sos")
    return (np.r_[np.zeros(300), scipy.signal.sosfilt(sos, x)][: x.size] * gain).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# The old module name, in a fresh interpreter (what is already imported decides how names resolve)

_CHECK = """
import sys, warnings
import numpy as np
warnings.simplefilter("error", DeprecationWarning)
order = sys.argv[1]
if order == "old-first":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from micmatch.match import MatchResult as OldResult, match as old_match
    import micmatch
elif order == "package-first":
    import micmatch
    assert micmatch.match.MatchResult.__name__ == "MatchResult"
    assert "micmatch.matching" not in sys.modules  # the package stays light until matching is used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from micmatch.match import MatchResult as OldResult, match as old_match
else:  # the new module first
    import micmatch.matching
    import micmatch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from micmatch.match import MatchResult as OldResult, match as old_match
import micmatch.match
import micmatch.matching as new
from micmatch.matchresult import MatchResult
assert callable(micmatch.match) and not isinstance(micmatch.match, type(sys))  # the function, never a module
assert micmatch.match.MatchResult is MatchResult and OldResult is MatchResult and new.MatchResult is MatchResult
assert old_match is new.match
try:
    from micmatch.match import read_target_curve
except DeprecationWarning as exc:
    assert "micmatch.matching.read_target_curve" in str(exc), exc
else:
    raise SystemExit("the old module name gave no DeprecationWarning")
rng = np.random.default_rng(0)
x = (rng.standard_normal(16000) * 0.1).astype(np.float32)
r = micmatch.match((x, 16000), (x, 16000), route="unaligned", loudness="keep")
assert isinstance(r, MatchResult) and r.audio.shape == (1, 16000)
print("ok", order)
"""


@pytest.mark.parametrize("order", ["old-first", "package-first", "new-first"])
def test_old_module_name_and_the_function_both_work_in_a_fresh_interpreter(order):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _CHECK, order], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ok {order}"


def test_star_import_from_the_old_name_gives_the_public_names():
    namespace: dict = {}
    with pytest.warns(DeprecationWarning, match="micmatch.matching"):
        exec("from micmatch.match import *", namespace)  # noqa: S102
    from micmatch import longterm, matching

    assert namespace["match"] is matching.match and namespace["MatchResult"] is MatchResult
    for name in ("long_term_distance_db", "long_term_spectrum_db", "read_target_curve", "third_octave_levels_db"):
        assert namespace[name] is getattr(longterm, name)


# ---------------------------------------------------------------------------------------------------------------
# Notes


def test_note_kinds_are_checked():
    assert Note("overs", "text").kind == "overs"
    with pytest.raises(ParameterError, match="note kind='loud'"):
        Note("loud", "text")
    assert set(NOTE_KINDS) == {"band", "loudness", "overs", "distance"}


def test_notes_carry_their_kind_and_warnings_their_text(tmp_path):
    ref = _voice(1)
    sf.write(tmp_path / "ref.wav", ref, SR, subtype="PCM_16")
    sf.write(tmp_path / "tgt.wav", _device(ref, gain=0.05), SR, subtype="PCM_16")
    r = micmatch.match(tmp_path / "tgt.wav", tmp_path / "ref.wav", tmp_path / "out.wav", loudness="-6LUFS")
    overs = [n for n in r.notes if n.kind == "overs"]
    assert len(overs) == 1 and overs[0].message.startswith("overs: the whole file was lowered by")
    assert r.warnings == [n.message for n in r.notes]


# ---------------------------------------------------------------------------------------------------------------
# Loudness: each signal measured once


def test_loudness_is_measured_once_per_signal(monkeypatch):
    from micmatch import matching

    real = matching.integrated_loudness
    seen: list[bytes] = []

    def counting(audio, sample_rate):
        seen.append(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        return real(audio, sample_rate)

    monkeypatch.setattr(matching, "integrated_loudness", counting)
    ref = _voice(2)
    r = matching.match((_device(ref), SR), (ref, SR))
    assert len(seen) == len(set(seen))  # never the same signal twice
    # target, reference, corrected, and the level-set result (which the report gives as the result's loudness)
    assert 4 <= len(seen) <= 6
    assert r.loudness_lufs["result"] == pytest.approx(r.loudness_lufs["reference"], abs=0.01)


# ---------------------------------------------------------------------------------------------------------------
# One overs vocabulary


def test_overs_vocabulary_and_the_old_spelling(tmp_path):
    assert OVERS_POLICIES == ("scale", "float", "clip")  # one tuple: micmatch.render.OVERS
    assert overs_policy("reduce") == "scale" and overs_policy("clip") == "clip"
    with pytest.raises(ParameterError, match="overs='limit'"):
        overs_policy("limit")
    ref = _voice(3)
    sf.write(tmp_path / "ref.wav", ref, SR, subtype="PCM_16")
    sf.write(tmp_path / "tgt.wav", _device(ref, gain=0.05), SR, subtype="PCM_16")
    new = micmatch.match(tmp_path / "tgt.wav", tmp_path / "ref.wav", tmp_path / "new.wav", loudness="-6LUFS",
                         overs="scale")
    with pytest.warns(DeprecationWarning, match="overs='reduce' is now called 'scale'"):
        old = micmatch.match(tmp_path / "tgt.wav", tmp_path / "ref.wav", tmp_path / "old.wav", loudness="-6LUFS",
                             overs="reduce")
    assert new.overs_reduction_db > 0 and old.overs_reduction_db == new.overs_reduction_db
    np.testing.assert_array_equal(sf.read(tmp_path / "old.wav")[0], sf.read(tmp_path / "new.wav")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new spelling warns of nothing
        micmatch.match((ref, SR), (ref, SR), overs="clip", route="unaligned")


# ---------------------------------------------------------------------------------------------------------------
# The correction from two level curves


def test_correction_from_levels_equals_the_responses_route():
    from micmatch.matching import _correction

    cfg = SpectralConfig(sample_rate=SR, n_fft=512, hop_length=128)
    f = cfg.frequencies
    rng = np.random.default_rng(5)
    dev = -40 + 6 * np.sin(f / 700) + rng.normal(0, 1, f.size) - np.where(f > 6000, 90.0, 0.0)
    ref = -35 + 3 * np.cos(f / 900) + rng.normal(0, 1, f.size)
    rs = ResponseSet(cfg, [DeviceResponse("target", dev, method="model"),
                           DeviceResponse("reference", ref, method="model")])
    for statistic in ("log", "power"):
        old = correction_curve(rs, "target", "reference", statistic=statistic, limit_band=(150.0, 5000.0),
                               strength=0.8, smoothing_octaves=1 / 6, max_boost_db=12.0, max_cut_db=18.0)
        new = _correction(dev, ref, cfg, band_hz=(150.0, 5000.0), statistic=statistic, strength=0.8,
                          smoothing_octaves=1 / 6, max_boost_db=12.0, max_cut_db=18.0)
        np.testing.assert_array_equal(new.gain_db, old.gain_db)
        assert new.settings == old.settings and (new.device, new.reference) == (old.device, old.reference)
