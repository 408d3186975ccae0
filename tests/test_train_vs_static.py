"""The held-out rule shared by ``event --learned`` and ``micmatch train``: one split, one measure, the static
correction fitted on the training part, and a warning when the learned model loses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pytest.importorskip("torch")

from conftest import pink  # noqa: E402
from test_normalizers import EQ, SR  # noqa: E402

from micmatch.cli import main  # noqa: E402
from micmatch.errors import ParameterError  # noqa: E402
from micmatch.learn.heldout import (  # noqa: E402
    compare_on_pairs,
    comparison_lines,
    heldout_lsd_db,
    split_point,
    verdict,
)
from micmatch.pairs import AlignedPair  # noqa: E402


def test_split_point():
    assert split_point(100 * SR, SR, fraction=0.25, min_heldout_s=3.0) == 75 * SR
    assert split_point(10 * SR, SR, fraction=0.25, min_heldout_s=3.0) == 7 * SR  # 3 s rather than 2.5 s
    assert split_point(10 * SR, SR, fraction=0.25, min_heldout_s=3.0, min_train_s=8.0) is None
    assert split_point(2 * SR, SR, fraction=0.25, min_heldout_s=3.0) is None
    with pytest.raises(ParameterError):
        split_point(100, SR, fraction=1.0)


def test_verdict_needs_the_margin():
    assert verdict(5.0, 4.85)[0] is True
    keep, reason = verdict(5.0, 4.95)
    assert keep is False and "5.00" in reason and "4.95" in reason
    assert verdict(5.0, 5.3)[0] is False
    assert verdict(float("nan"), 1.0)[0] is False


def test_heldout_lsd_ignores_level_and_sees_colour(rng):
    x = pink(rng, SR, 4.0)
    assert heldout_lsd_db(x, 0.3 * x, SR) == pytest.approx(0.0, abs=1e-6)  # the level is the loudness step's job
    assert heldout_lsd_db(x, EQ.record(x, SR), SR) > 1.0


def test_compare_on_pairs_fits_static_on_the_training_part(rng):
    x = pink(rng, SR, 10.0)
    pair = AlignedPair(x.astype(np.float32), EQ.record(x, SR).astype(np.float32), SR)
    fig = compare_on_pairs([pair], lambda d: d.copy(), validation_fraction=0.2)
    assert fig["heldout_s"] == pytest.approx(2.0) and fig["pairs"] == 1
    # An identity "learned" model scores exactly no correction; a linear EQ is what the static correction fixes.
    assert fig["learned_db"] == pytest.approx(fig["uncorrected_db"])
    assert fig["static_db"] < 0.5 * fig["uncorrected_db"]
    line, warning = comparison_lines(fig)
    assert "no correction" in line and "static" in line and "learned" in line
    assert warning is not None and "worse than the static correction" in warning
    assert comparison_lines({**fig, "learned_db": fig["static_db"] - 0.2})[1] is None
    short = AlignedPair(x[:SR].astype(np.float32), x[:SR].astype(np.float32), SR)
    assert compare_on_pairs([short], lambda d: d, validation_fraction=0.2) is None


def test_train_prints_three_figures_and_warns_when_worse(tmp_path, rng):
    x = pink(rng, SR, 6.0)
    sf.write(tmp_path / "ref.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "dev.wav", np.concatenate([np.zeros(200), EQ.record(x, SR)]), SR, subtype="FLOAT")
    # One epoch of a tiny network cannot reach what the static correction does on a fixed equalizer.
    r = CliRunner().invoke(main, ["train", "ratio-net", "--reference", str(tmp_path / "ref.wav"), "--device",
                                  str(tmp_path / "dev.wav"), "-o", str(tmp_path / "m.mmm"), "--epochs", "1",
                                  "--hidden", "8", "--compute", "cpu"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = r.stdout if hasattr(r, "stdout") else r.output
    line = next(s for s in out.splitlines() if s.startswith("held-out LSD"))
    assert "no correction" in line and "static" in line and "learned" in line
    err = r.stderr if hasattr(r, "stderr") else r.output
    warnings = [s for s in err.splitlines() if s.startswith("micmatch: warning:")]
    assert len(warnings) == 1 and "worse than the static correction" in warnings[0]
    # The figures are kept in the model file's summary.
    raw = (tmp_path / "m.mmm").read_bytes()
    assert b'"heldout_comparison"' in raw
    from micmatch.learn.normalizer import Normalizer

    fig = Normalizer.load(tmp_path / "m.mmm").summary["heldout_comparison"]
    assert fig["learned_db"] > fig["static_db"]
    json.dumps(fig)
