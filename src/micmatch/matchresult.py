"""What one match did: the matched audio, its figures and its notes (:class:`MatchResult`, :class:`Note`).

Kept apart from :mod:`micmatch.matching` and free of numpy at import, so that ``micmatch`` can export the result
type without loading the signal-processing modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from micmatch.errors import ParameterError

if TYPE_CHECKING:
    import numpy as np

    from micmatch.align import Alignment
    from micmatch.correct import Correction

#: What a note is about, so that readers (the command line, a report) pick notes without reading their text:
#: ``band``: where the correction acts; ``loudness``: why the wanted loudness could not be set; ``overs``: the
#: whole file was lowered to keep its true peak in an integer format; ``distance``: the result is further from the
#: reference than the input.
NOTE_KINDS = ("band", "loudness", "overs", "distance")
#: Long-term distances (dB RMS over 1/3-octave bands) that differ by less than this are taken as equal: the
#: result is measured again after the STFT correction, the level step and requantisation, which move the figure
#: by hundredths of a dB even when nothing was changed (``match a.wav a.wav``). Only a larger rise is reported
#: as "further from the reference".
DISTANCE_TOLERANCE_DB = 0.05


@dataclass(frozen=True)
class Note:
    """One remark of :func:`micmatch.matching.match` for the person who asked for it.

    Attributes
    ----------
    kind : str
        One of :data:`NOTE_KINDS`.
    message : str
        The remark as printed, one line.
    """

    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in NOTE_KINDS:
            raise ParameterError(f"note kind={self.kind!r} must be one of {NOTE_KINDS}")


@dataclass
class MatchResult:
    """What :func:`micmatch.matching.match` did.

    Attributes
    ----------
    audio : np.ndarray [shape=(channels, n_samples), dtype=float32]
        The matched target (level set, overs handled), at ``sample_rate``.
    sample_rate : int
    correction : Correction
        The tone correction applied (dB per bin; level is set separately).
    route : {"aligned", "unaligned", "curve"}
    route_reason : str
    gain_db : float
        Whole-file gain applied after the correction (loudness, then overs).
    overs_reduction_db : float
        Part of ``gain_db`` that removed overs (0 when none).
    loudness_lufs : dict
        ``target``, ``reference`` (None for a curve) and ``result`` integrated loudness (LUFS).
    distance_db : dict
        Long-term 1/3-octave distance to the reference, ``before`` and ``after`` (dB RMS over bands, level removed).
    frame_lsd_db : dict or None
        Frame log spectral distance ``before`` / ``after`` (aligned route only).
    alignment : Alignment or None
    output : Path or None
    notes : list of Note
        Remarks, each with its kind (:data:`NOTE_KINDS`); :attr:`warnings` has their text.
    spectra_db : dict
        ``frequencies_hz`` and the long-term power spectra (dB) of ``target``, ``reference`` and ``result``.
    """

    audio: np.ndarray
    sample_rate: int
    correction: Correction
    route: str
    route_reason: str
    gain_db: float
    overs_reduction_db: float
    loudness_lufs: dict
    distance_db: dict
    frame_lsd_db: dict | None = None
    alignment: Alignment | None = None
    output: Path | None = None
    notes: list[Note] = field(default_factory=list)
    spectra_db: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """The notes' messages, in order."""
        return [note.message for note in self.notes]

    @property
    def helped(self) -> bool:
        """True unless the result is further from the reference on the long-term spectrum than the input (by more
        than :data:`DISTANCE_TOLERANCE_DB`)."""
        return self.distance_db["after"] <= self.distance_db["before"] + DISTANCE_TOLERANCE_DB

    def summary(self) -> dict:
        """The figures as plain JSON-ready values."""
        out = {"route": self.route, "route_reason": self.route_reason, "sample_rate": self.sample_rate,
               "gain_db": round(self.gain_db, 3), "overs_reduction_db": round(self.overs_reduction_db, 3),
               "loudness_lufs": {k: None if v is None else round(v, 3) for k, v in self.loudness_lufs.items()},
               "distance_db": {k: round(v, 3) for k, v in self.distance_db.items()},
               "correction": {k: v for k, v in self.correction.settings.items()}}
        if self.frame_lsd_db is not None:
            out["frame_lsd_db"] = {k: round(v, 3) for k, v in self.frame_lsd_db.items()}
        if self.alignment is not None:
            out["alignment"] = self.alignment.to_json()
        if self.output is not None:
            out["output"] = str(self.output)
        return out


__all__ = ["NOTE_KINDS", "MatchResult", "Note"]
